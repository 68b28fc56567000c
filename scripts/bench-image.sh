#!/usr/bin/env bash
# bench-image.sh [WORKDIR] — the `lifeboat image` benchmark of issue 3 (not a test).
#
# Builds a 2 GiB HAOS-like disk (GPT with the HAOS partition names; FAT boot, squashfs
# kernels, EROFS systems, U-Boot bootstate, ext4 overlay, and an ext4 data partition about 25 %
# full of mixed random and compressible files), attaches it as a loop device with
# --direct-io=on (so every run reads the disk, not the page cache), and reports, one run each:
#  (a) lifeboat --all to raw (hashing) vs dd iflag=direct bs=4M to a file   target >= 0.95x
#  (b) lifeboat --all to .zst vs dd iflag=direct bs=4M | zstd -T0 -3
#  (c) lifeboat used-only vs --all (raw): time ratio vs the used fraction     target <= 1.2x
#  (d) lifeboat vs partclone.ext4 on the data partition alone
# Then the same (a) and (c) on an SD-card-speed device: nbdkit's rate filter at 80 MB/s
# (a UHS-I card reads at most ~90 MB/s) through nbdfuse and a direct-io loop device.
# Needs root, losetup/partx, sfdisk, mkfs.vfat+mtools, mksquashfs, mkfs.erofs, mke2fs,
# zstd, partclone (apt-get install partclone), and a release build (cargo build --release).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LB=${LIFEBOAT:-$HERE/target/release/lifeboat}
W=${1:-/tmp/lifeboat-bench}
[ -x "$LB" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "needs root (loop devices)" >&2; exit 1; }
for t in losetup partx sfdisk mkfs.vfat mcopy mksquashfs mkfs.erofs mke2fs zstd partclone.ext4 dd; do
  command -v $t >/dev/null || { echo "missing $t" >&2; exit 1; }
done
mkdir -p "$W"; cd "$W"
rm -rf src out; mkdir -p src out
IMG=$W/haos-2g.img
MiB=$((1024*1024))

# The 2 GiB HAOS-like disk (built once; see bench-disk.sh).
# shellcheck source=scripts/bench-disk.sh
source "$HERE/scripts/bench-disk.sh"

L=$(losetup -f --show --direct-io=on "$IMG")
cleanup() { partx -d "$L" 2>/dev/null || true; losetup -d "$L"; }
trap cleanup EXIT
[ -e "${L}p8" ] || partx -a "$L"
P8=${L}p8

# Each timed run starts with no dirty pages left by the previous one (`sync`, not timed):
# otherwise the kernel writes the last run's 2 GiB back during the next and slows it.
t() { local s e; sync; s=$(date +%s.%N); "$@"; e=$(date +%s.%N); echo "$e - $s" | bc; }
# Where a run's time went: the pipeline stages from its manifest (busy and waiting per thread).
stages() {
  python3 - "$1" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
for p in m["phases"]:
    if p["name"].startswith("pipeline/") or p["name"] == "copy":
        r = p.get("bytes_per_second")
        print(f"|   {p['name']} | {p['seconds']:.2f} s | {r / 1e6:.0f} MB/s |" if r else f"|   {p['name']} | {p['seconds']:.2f} s | |")
PY
}
SIZE=$(blockdev --getsize64 "$L")
echo "disk: $SIZE bytes ($L, direct-io), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
# The ceilings: the device read alone, and one core's SHA-256 (what the whole-image hash,
# one sequential stream over every byte, can do at most).
TR_DD=$(t dd if="$L" of=/dev/null iflag=direct bs=4M status=none)
SHA=$(openssl speed -evp sha256 -bytes 16384 -seconds 2 2>/dev/null | awk '/^sha256/ {print $NF}' | tr -d k)
echo "device read (dd → /dev/null): $(python3 -c "print(f'{$SIZE/$TR_DD/1e6:.0f}')") MB/s; SHA-256 one core (openssl): $(python3 -c "print(f'{$SHA*1000/1e6:.0f}')") MB/s"

rm -rf out/*
TA_DD=$(t dd if="$L" of=out/dd.img iflag=direct bs=4M status=none)
TA_LB=$(t "$LB" image -q --all "$L" -o out/all.img)
TB_DD=$(t bash -c "dd if=$L iflag=direct bs=4M status=none | zstd -T0 -3 -q > out/dd.img.zst")
TB_LB=$(t "$LB" image -q --all "$L" -o out/all.img.zst)
TC_LB=$(t "$LB" image -q "$L" -o out/used.img)
USED=$(python3 -c "import json;print(json.load(open('out/used.img.manifest.json'))['mapped_bytes'])")
TD_PC=$(t sh -c "partclone.ext4 -q -c -s $P8 -o out/data.pc >/dev/null 2>&1")
TD_LB=$(t "$LB" image -q "$P8" -o out/data.img.zst)
TD_LBR=$(t "$LB" image -q "$P8" -o out/data.img)

# Correctness: the --all images equal dd's.
cmp -s out/all.img out/dd.img || { echo "MISMATCH: lifeboat --all raw differs from dd" >&2; exit 1; }
[ "$(zstd -dc out/all.img.zst | sha256sum)" = "$(zstd -dc out/dd.img.zst | sha256sum)" ] || { echo "MISMATCH zst" >&2; exit 1; }

r() { python3 -c "print(f'{$1:.2f}')"; }
mbs() { python3 -c "print(f'{$SIZE/$1/1e6:.0f}')"; }
FRAC=$(python3 -c "print(f'{$USED/$SIZE:.3f}')")
echo
echo "| run | time | throughput | ratio |"
echo "|---|---|---|---|"
echo "| (a) dd iflag=direct bs=4M → raw file | ${TA_DD} s | $(mbs $TA_DD) MB/s | |"
echo "| (a) lifeboat --all → .img (SHA-256 whole + per range) | ${TA_LB} s | $(mbs $TA_LB) MB/s | $(r "$TA_DD/$TA_LB")× dd's throughput (target ≥ 0.95) |"
echo "| (b) dd \| zstd -T0 -3 | ${TB_DD} s | $(mbs $TB_DD) MB/s | |"
echo "| (b) lifeboat --all → .img.zst | ${TB_LB} s | $(mbs $TB_LB) MB/s | $(r "$TB_DD/$TB_LB")× dd\|zstd's throughput |"
echo "| (c) lifeboat used-only → .img (used fraction $FRAC) | ${TC_LB} s | | $(r "$TC_LB/$TA_LB") of --all's time = $(r "($TC_LB/$TA_LB)/$FRAC") × used fraction (target ≤ 1.2) |"
echo "| (d) partclone.ext4 -c (data partition) | ${TD_PC} s | | |"
echo "| (d) lifeboat on the data partition → .img.zst / .img | ${TD_LB} s / ${TD_LBR} s | | $(r "$TD_PC/$TD_LB")× / $(r "$TD_PC/$TD_LBR")× partclone's speed |"
echo
echo "Stages of (a) lifeboat --all → .img:"
stages out/all.img.manifest.json
echo "Stages of (c) lifeboat used-only → .img:"
stages out/used.img.manifest.json

# --- the same at SD-card speed (80 MB/s = 640 Mbit/s for nbdkit's rate filter)
if command -v nbdkit >/dev/null && command -v nbdfuse >/dev/null; then
  mkdir -p mnt; rm -f nbdfuse.pid
  nbdfuse -P nbdfuse.pid mnt/disk.img [ nbdkit --filter=rate file "$IMG" rate=640M ] 2>nbdfuse.log &
  for i in $(seq 200); do [ -s nbdfuse.pid ] && break; sleep 0.05; done
  S=$(losetup -f --show -r --direct-io=on mnt/disk.img)
  rm -rf out/*
  TS_DD=$(t dd if="$S" of=out/dd.img iflag=direct bs=4M status=none)
  TS_LB=$(t "$LB" image -q --all "$S" -o out/all.img)
  TS_U=$(t "$LB" image -q "$S" -o out/used.img)
  TS_Z=$(t "$LB" image -q "$S" -o out/used.img.zst)
  losetup -d "$S"; fusermount3 -u mnt; wait || true
  cmp -s out/all.img out/dd.img || { echo "MISMATCH at card speed" >&2; exit 1; }
  echo "| (a) at 80 MB/s: dd iflag=direct bs=4M | ${TS_DD} s | $(mbs $TS_DD) MB/s | |"
  echo "| (a) at 80 MB/s: lifeboat --all → .img | ${TS_LB} s | $(mbs $TS_LB) MB/s | $(r "$TS_DD/$TS_LB")× dd's throughput |"
  echo "| (c) at 80 MB/s: lifeboat used-only → .img / .img.zst | ${TS_U} s / ${TS_Z} s | | $(r "$TS_U/$TS_LB") of --all's time = $(r "($TS_U/$TS_LB)/$FRAC") × used fraction |"
fi
echo
ls -l out | awk '{print $5, $9}'
