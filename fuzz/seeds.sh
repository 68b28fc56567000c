#!/usr/bin/env bash
# seeds.sh [FIXTURE_DIR]
#
# Fill fuzz/corpus/<target>/ with seeds cut from the HAOS fixture images (built by
# tests/fixtures/haos/mkhaos.sh into FIXTURE_DIR, or into a temporary directory when none
# is given or it holds no images) and from a few tiny filesystems made here. Nothing it
# writes is committed (fuzz/corpus is in .gitignore). Needs the fixture tools (see
# tests/fixtures/haos/README.md); mtools, debugfs, mksquashfs and mkfs.erofs are used here too.
set -euo pipefail

FUZZ=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$FUZZ")
C=$FUZZ/corpus
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lifeboat-seeds.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export LC_ALL=C TZ=UTC SOURCE_DATE_EPOCH=1787227200 MTOOLSRC=/dev/null MTOOLS_SKIP_CHECK=1

FIX=${1:-}
if [ -z "$FIX" ] || ! compgen -G "$FIX/*.img" >/dev/null; then
    FIX=${FIX:-$WORK/fixtures}
    echo "seeds: building fixture images into $FIX"
    bash "$ROOT/tests/fixtures/haos/mkhaos.sh" "$FIX" >/dev/null
fi

echo "seeds: building the seed tool"
(cd "$FUZZ" && cargo build --quiet --release --example mkseed)
MK=$FUZZ/target/release/examples/mkseed

for t in table table_image fs_probe fat erofs squashfs bootenv haos_text backup inspect_image \
    geometry health_pages image_input; do
    mkdir -p "$C/$t"
done

for img in "$FIX"/*.img; do
    n=$(basename "$img" .img)
    "$MK" traced "$img" "$C/inspect_image/$n" 2>/dev/null
    "$MK" traced-table "$img" "$C/table_image/$n" 2>/dev/null
    cp "$C/table_image/$n" "$C/geometry/$n" 2>/dev/null || true
    "$MK" cut "$img" "$C/table/$n" 0 32768
    while read -r num start size fs _name; do
        "$MK" cut "$img" "$C/fs_probe/$n-p$num" "$start" 4096
        case $fs in
        vfat)
            # The whole volume as a sparse image (its non-zero sectors), and its files.
            "$MK" sparse "$img" "$C/fat/$n-p$num" "$start" "$size"
            dd if="$img" of="$WORK/boot.img" bs=1M iflag=skip_bytes,count_bytes \
                skip="$start" count="$size" status=none
            for f in config.txt cmdline.txt tryboot.txt cmdline-tryboot.txt rauc.db; do
                mcopy -n -i "$WORK/boot.img" "::/$f" "$C/haos_text/$n-$f" 2>/dev/null || true
            done
            mcopy -n -i "$WORK/boot.img" ::/EFI/BOOT/grubenv "$C/bootenv/$n-grubenv" 2>/dev/null || true
            ;;
        erofs) "$MK" cut "$img" "$C/erofs/$n-p$num" "$start" "$size" trim ;;
        ext4)
            dd if="$img" of="$WORK/ext.img" bs=1M iflag=skip_bytes,count_bytes \
                skip="$start" count="$size" status=none
            for f in /rauc.db /supervisor/backup/a519c354.tar \
                /supervisor/core/backup/Automatic_backup_2026.8.2_2026-08-13_04.51_03918274.tar; do
                debugfs -R "dump $f $WORK/dump" "$WORK/ext.img" >/dev/null 2>&1 || continue
                [ -s "$WORK/dump" ] || continue
                case $f in
                *.tar)
                    cp "$WORK/dump" "$C/backup/$n-$(basename "$f")"
                    tar -xOf "$WORK/dump" ./backup.json >"$C/backup/$n-$(basename "$f").json" 2>/dev/null || true
                    ;;
                *) cp "$WORK/dump" "$C/haos_text/$n-p$num-rauc.db" ;;
                esac
                rm -f "$WORK/dump"
            done
            ;;
        -)
            # Possibly a bootstate partition: its first bytes at each U-Boot env size.
            for sz in 8192 16384 32768; do
                "$MK" cut "$img" "$WORK/env" "$start" "$sz"
                if tr -d '\0' <"$WORK/env" | head -c1 | grep -q .; then
                    cp "$WORK/env" "$C/bootenv/$n-p$num-$sz"
                fi
            done
            ;;
        esac
    done < <("$MK" parts "$img")
done

# Tiny filesystems with the files the readers look for, in every compression the tools offer.
T=$WORK/tree
mkdir -p "$T/usr/lib" "$T/etc/rauc" "$T/dir/sub"
cat >"$T/usr/lib/os-release" <<'EOF'
NAME="Home Assistant OS"
VERSION="17.1"
ID=haos
VERSION_ID=17.1
PRETTY_NAME="Home Assistant OS 17.1"
CPE_NAME=cpe:2.3:o:home-assistant:haos:17.1:*:production:*:*:*:rpi4-64:*
HOME_URL=https://hass.io/
VARIANT="Raspberry Pi 4 64-bit"
VARIANT_ID=rpi4-64
SUPERVISOR_MACHINE=raspberrypi4-64
EOF
cp "$T/usr/lib/os-release" "$C/haos_text/os-release"
ln -sf ../usr/lib/os-release "$T/etc/os-release"
printf '[system]\ncompatible=haos-rpi4-64\nbootloader=uboot\n' >"$T/etc/rauc/system.conf"
head -c 20000 /dev/zero | tr '\0' 'x' >"$T/dir/sub/filler"
ln -sf loop2 "$T/dir/loop1"
ln -sf loop1 "$T/dir/loop2"
for comp in gzip xz lzma lz4 zstd lzo; do
    # (SOURCE_DATE_EPOCH fixes the times; mksquashfs refuses -all-time beside it.)
    mksquashfs "$T" "$C/squashfs/$comp" -comp "$comp" -noappend -all-root -quiet \
        -b 4096 >/dev/null 2>&1 || true
done
for comp in "" "-zlz4" "-zlz4hc"; do
    mkfs.erofs --quiet -T0 $comp "$C/erofs/mini${comp:-plain}" "$T" >/dev/null 2>&1 || true
done

# A small FAT12 volume with a long name, a subdirectory and a fragmented file.
truncate -s 2M "$WORK/fat12.img"
mkfs.vfat --invariant -i 12345678 -n LIFEBOAT "$WORK/fat12.img" >/dev/null
printf 'os_prefix=slot-A/\n' >"$WORK/config.txt"
mcopy -i "$WORK/fat12.img" "$WORK/config.txt" ::/config.txt
mmd -i "$WORK/fat12.img" ::/a-long-directory-name
mcopy -i "$WORK/fat12.img" "$T/usr/lib/os-release" ::/a-long-directory-name/os-release.txt
"$MK" sparse "$WORK/fat12.img" "$C/fat/mini-fat12"

# Text parsers: hand-written samples beside what the images hold.
printf 'console=tty1 root=PARTUUID=a3ec664e-32ce-4665-95ea-7ae90ce9aa20 rootwait rauc.slot=B\n' \
    >"$C/haos_text/cmdline"
printf '[all]\nos_prefix=slot-B/\n[pi5]\ndtoverlay=vc4-kms-v3d\n[tryboot]\nos_prefix=slot-A/\n' \
    >"$C/haos_text/config"
printf '{"slug":"a519c354","name":"x","date":"2026-08-20T04:45:00+00:00","type":"full","protected":true}' \
    >"$C/backup/min.json"

# Health pages: the real ATA SMART blobs (decoder 3, skdump's format) and zeroed pages of
# each decoder's size, one per decoder (the first byte picks it).
i=0
for b in "$ROOT"/../shared/fixtures/ata-smart/blobs/*; do
    [ -f "$b" ] || continue
    { printf '\003'; cat "$b"; } >"$C/health_pages/blob-$i"
    i=$((i + 1))
done
for d in $(seq 0 23); do
    { printf "\\$(printf '%03o' "$d")"; head -c 512 /dev/zero; } >"$C/health_pages/zero-$d"
done

# Image inputs: the start of a fixture image raw and in every container ImageInput reads.
first=$(compgen -G "$FIX/*.img" | head -n 1)
head -c 65536 "$first" >"$WORK/small.img"
cp "$WORK/small.img" "$C/image_input/raw"
gzip -9 -c "$WORK/small.img" >"$C/image_input/gz"
zstd -q -19 -c "$WORK/small.img" >"$C/image_input/zst" 2>/dev/null || true
xz -c "$WORK/small.img" >"$C/image_input/xz" 2>/dev/null || true
xz -T2 --block-size=4KiB -c "$WORK/small.img" >"$C/image_input/xz-blocks" 2>/dev/null || true
bzip2 -c "$WORK/small.img" >"$C/image_input/bz2" 2>/dev/null || true
(cd "$WORK" && zip -q -9 "$C/image_input/zip" small.img && zip -q -0 "$C/image_input/zip-stored" small.img) 2>/dev/null || true

du -sh "$C"/* | sed 's|'"$C"'/||'
