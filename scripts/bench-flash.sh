#!/usr/bin/env bash
# bench-flash.sh [WORKDIR] — the `lifeboat flash` benchmark of issue 4 (not a test).
#
# Builds the 2 GiB HAOS-like disk of scripts/bench-image.sh (same recipe: GPT with the HAOS
# partitions, data partition ~25 % full), makes its used-blocks image with `lifeboat image`
# (IMG + IMG.bmap, about a quarter mapped), then flashes that image to a 2 GiB loop device
# over a sparse file (attached --direct-io=on, so writes and reads reach the backing disk,
# not only the page cache), one run each, the image file warm in the page cache for all:
#   lifeboat flash (bmap, SHA-256 per range, read-back of every written byte) 
#   bmaptool copy (bmap, SHA-256 per range, no read-back)
#   dd oflag=direct bs=4M conv=fsync (every byte, no check)
# and prints the times and ratios (target: lifeboat <= 1.1x bmaptool's time). Each result is
# checked: the target's partitions must equal the image's.
# Needs root, losetup/partx, sfdisk, mkfs.vfat+mtools, mksquashfs, mkfs.erofs, mke2fs,
# bmaptool (apt-get install bmap-tools), and a release build (cargo build --release).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LB=${LIFEBOAT:-$HERE/target/release/lifeboat}
W=${1:-/tmp/lifeboat-bench-flash}
[ -x "$LB" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "needs root (loop devices)" >&2; exit 1; }
for t in losetup partx blkdiscard blockdev sfdisk mkfs.vfat mcopy mksquashfs mkfs.erofs mke2fs bmaptool dd bc python3; do
  command -v $t >/dev/null || { echo "missing $t" >&2; exit 1; }
done
mkdir -p "$W"; cd "$W"
rm -rf src; mkdir -p src out
IMG=$W/haos-2g.img
MiB=$((1024*1024))

# The 2 GiB HAOS-like disk (built once; see bench-disk.sh).
# shellcheck source=scripts/bench-disk.sh
source "$HERE/scripts/bench-disk.sh"


# The used-blocks image and its bmap, made once.
if [ ! -e out/used.img.done ]; then
  rm -f out/used.img*
  S=$(losetup -f --show -r "$IMG")
  "$LB" image -q "$S" -o out/used.img
  losetup -d "$S"
  touch out/used.img.done
fi
U=$W/out/used.img
SIZE=$(stat -c %s "$U")
MAPPED=$(python3 -c "import json;print(json.load(open('$U.manifest.json'))['mapped_bytes'])")

rm -f target.bin; truncate -s 2G target.bin
T=$(losetup -f --show --direct-io=on target.bin)
cleanup() { partx -d "$T" 2>/dev/null || true; losetup -d "$T"; }
trap cleanup EXIT

t() { local s e; s=$(date +%s.%N); "$@"; e=$(date +%s.%N); echo "$e - $s" | bc; }
blank() { # no table, and nothing of the last result in the page cache
  partx -d "$T" 2>/dev/null || true; blkdiscard -f "$T"   # holes in the backing file: all zeros
  blockdev --flushbufs "$T"; sync; }
check() { # the target's partitions equal the image's
  sfdisk -J "$U" | python3 -c "
import json,sys
for p in json.load(sys.stdin)['partitiontable']['partitions']: print(p['start'], p['size'])" |
  while read -r s n; do
    cmp -s <(dd if="$U" bs=4M skip=$((s * 512)) count=$((n * 512)) iflag=skip_bytes,count_bytes status=none) \
           <(dd if="$T" bs=4M skip=$((s * 512)) count=$((n * 512)) iflag=skip_bytes,count_bytes status=none) ||
      { echo "MISMATCH after $1 at sector $s" >&2; exit 1; }
  done
}
cat "$U" > /dev/null   # the image warm in the page cache for every tool
echo "image: $SIZE bytes, $MAPPED mapped ($(python3 -c "print(f'{$MAPPED/$SIZE*100:.0f}')") %); target $T (2 GiB, direct-io loop), $(nproc) cores"

blank; TL=$(t "$LB" flash -q --yes "$U" "$T"); check lifeboat
blank; TB=$(t bmaptool -q copy --bmap "$U.bmap" "$U" "$T"); check bmaptool
blank; TD=$(t dd if="$U" of="$T" bs=4M oflag=direct conv=fsync status=none); check dd
# lifeboat's phases, from its JSON (a second run)
blank; "$LB" flash --json --yes "$U" "$T" > flash.json 2>/dev/null
PH=$(python3 -c "
import json; t=json.load(open('flash.json'))['timings']
print(f\"write {t['write_s']:.2f} s, read-back {t['readback_s']:.2f} s, total {t['total_s']:.2f} s\")")

r() { python3 -c "print(f'{$1:.2f}')"; }
echo
echo "| run | time | ratio |"
echo "|---|---|---|"
echo "| lifeboat flash (bmap, read-back included) | ${TL} s | $(r "$TL/$TB")× bmaptool's time (target ≤ 1.1) |"
echo "| bmaptool copy (bmap, no read-back) | ${TB} s | 1.00 |"
echo "| dd oflag=direct bs=4M conv=fsync (every byte) | ${TD} s | $(r "$TD/$TB")× bmaptool's time |"
echo
echo "lifeboat's phases (second run): $PH"
