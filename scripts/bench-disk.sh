# bench-disk.sh — sourced by bench-image.sh and bench-flash.sh (not run on its own).
#
# Builds $IMG once (marked by $IMG.done): a 2 GiB HAOS-like disk with a GPT carrying the HAOS
# partition names: FAT boot, squashfs kernels, EROFS systems, bootstate, ext4 overlay and an
# ext4 data partition ~25 % used by mixed random (incompressible) and text-like files. The
# content is deterministic. Expects the caller to be in its work directory with IMG set.

# --- deterministic content: random (incompressible) and text-like (compressible) files
# (the producers die of SIGPIPE when head has enough: that is expected, hence `|| true`)
rnd() { (openssl enc -aes-128-ctr -nosalt -pass pass:"$1" -in /dev/zero 2>/dev/null || true) | head -c "$2"; }
command -v openssl >/dev/null || rnd() { head -c "$2" /dev/urandom; }
txt() { (yes "$1 sensor.temperature state_changed 21.5 °C attributes friendly_name unit_of_measurement" || true) | head -c "$2"; }

if [ ! -e "$IMG.done" ]; then
  echo "building $IMG ..."
  rm -f "$IMG"; truncate -s 2G "$IMG"
  sfdisk -q "$IMG" <<'SF'
label: gpt
size=32MiB, type=uefi, name="hassos-boot"
size=24MiB, type=linux, name="hassos-kernel0"
size=256MiB, type=linux, name="hassos-system0"
size=24MiB, type=linux, name="hassos-kernel1"
size=256MiB, type=linux, name="hassos-system1"
size=8MiB, type=linux, name="hassos-bootstate"
size=96MiB, type=linux, name="hassos-overlay"
type=linux, name="hassos-data"
SF
  start() { sfdisk -J "$IMG" | python3 -c "import json,sys;print(json.load(sys.stdin)['partitiontable']['partitions'][$1-1]['start'])"; }
  size() { sfdisk -J "$IMG" | python3 -c "import json,sys;print(json.load(sys.stdin)['partitiontable']['partitions'][$1-1]['size'])"; }
  put() { dd if="$2" of="$IMG" bs=512 seek="$(start $1)" conv=notrunc,sparse status=none; }
  # boot: FAT16 with a few files
  truncate -s 32M src/boot.vfat; mkfs.vfat -F 16 -n HASSOS-BOOT src/boot.vfat >/dev/null
  rnd boot 6000000 > src/Image; txt cmdline 300 > src/cmdline.txt
  mcopy -i src/boot.vfat src/Image src/cmdline.txt ::; put 1 src/boot.vfat
  # kernels: squashfs of a 10 MB kernel; systems: EROFS of 150 MB mixed content
  mkdir -p src/k src/sys/usr/lib; rnd kernel 10000000 > src/k/Image
  mksquashfs src/k src/kernel.sqfs -comp lzo -noappend -quiet >/dev/null; put 2 src/kernel.sqfs; put 4 src/kernel.sqfs
  rnd system 90000000 > src/sys/usr/lib/libbig.so; txt sys 60000000 > src/sys/usr/lib/python.txt
  mkfs.erofs -zlz4hc src/system.erofs src/sys >/dev/null 2>&1; put 3 src/system.erofs; put 5 src/system.erofs
  # bootstate: U-Boot env sized area, mostly zeros
  # overlay and data: ext4, data ~25 % used
  mkdir -p src/ov/etc; txt hostname 4096 > src/ov/etc/hostname
  mke2fs -q -F -t ext4 -L hassos-overlay -d src/ov src/overlay.ext4 96M; put 7 src/overlay.ext4
  DATA_BYTES=$(( $(size 8) * 512 ))
  mkdir -p src/data/supervisor/homeassistant src/data/supervisor/backup src/data/docker
  rnd db 120000000 > src/data/supervisor/homeassistant/home-assistant_v2.db
  txt log 60000000 > src/data/supervisor/homeassistant/home-assistant.log
  rnd backup 150000000 > src/data/supervisor/backup/full.tar
  for i in $(seq 1 20); do rnd "layer$i" 2500000 > src/data/docker/layer$i; txt "cfg$i" 500000 > src/data/docker/cfg$i; done
  mke2fs -q -F -t ext4 -L hassos-data -d src/data src/data.ext4 $((DATA_BYTES / 1024))k; put 8 src/data.ext4
  rm -rf src; touch "$IMG.done"
fi
