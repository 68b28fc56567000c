#!/usr/bin/env bash
# Builds the guest initramfs for the health VM test: busybox, the storage driver modules of
# the cached Debian kernel (dependency-ordered by the host's kmod), smartctl and nvme-cli
# with their shared libraries, the lifeboat binary under test (with its libraries), /init
# and the guest test script. Usage: build-initramfs.sh OUT_DIR LIFEBOAT_BINARY
# Env: LIFEBOAT_QEMU_CACHE (default /var/cache/lifeboat-qemu, made by setup.sh).
set -euo pipefail
OUT=$1; BIN=$2
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${LIFEBOAT_QEMU_CACHE:-/var/cache/lifeboat-qemu}
KV=$(cat "$CACHE/kernel-version")
KROOT=$CACHE/kroot
IR=$OUT/initramfs
rm -rf "$IR"; mkdir -p "$IR"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,share,lib/modules}
cp "$CACHE/bbroot/bin/busybox" "$IR/bin/busybox"
for a in $("$IR/bin/busybox" --list); do
  # Skip the applet named busybox: /bin/busybox would become a self-link (ELOOP at boot).
  [ "$a" = busybox ] || [ -e "$IR/bin/$a" ] || ln -s busybox "$IR/bin/$a"
done
MODS="sdhci-pci mmc_block nvme ahci sd_mod sg xhci-pci usb-storage uas virtio_pci 9pnet_virtio 9p"
: > "$IR/etc/modules.order"
for m in $MODS; do
  modprobe -d "$KROOT" -S "$KV" --show-depends "$m" | awk '$1=="insmod"{print $2}'
done | awk '!s[$0]++' | while read -r f; do
  rel=${f#"$KROOT"/lib/modules/"$KV"/}
  mkdir -p "$IR/lib/modules/$(dirname "$rel")"
  cp "$f" "$IR/lib/modules/$rel"
  echo "/lib/modules/$rel" >> "$IR/etc/modules.order"
done
copy_with_libs() {
  local b=$1 dest=$2
  mkdir -p "$IR$(dirname "$dest")"; cp "$b" "$IR$dest"
  ldd "$b" | grep -o '/[^ ]*' | while read -r l; do cp -L --parents "$l" "$IR" 2>/dev/null || true; done
}
copy_with_libs "$(command -v smartctl)" /usr/sbin/smartctl
copy_with_libs "$(command -v nvme)" /usr/sbin/nvme
copy_with_libs "$BIN" /usr/bin/lifeboat
printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' > "$IR/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$IR/etc/group"
install -m755 "$HERE/init" "$IR/init"
install -m755 "$HERE/guest.sh" "$IR/guest.sh"
(cd "$IR" && find . | cpio -o -H newc --quiet) > "$OUT/initramfs.cpio"
