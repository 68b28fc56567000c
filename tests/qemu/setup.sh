#!/usr/bin/env bash
# Prepares the QEMU health-test rig on a Debian bookworm machine (run as root; .ci/run calls
# it). Installs QEMU (bookworm-backports when reachable, else bookworm's own), smartmontools,
# nvme-cli and kmod, then fetches (not installs) the Debian kernel image and busybox-static
# into $LIFEBOAT_QEMU_CACHE (default /var/cache/lifeboat-qemu) and extracts the uncompressed
# vmlinux for a fast PVH boot. Everything comes from the Debian archive. Guarded: a second
# run with the cache in place only checks and returns in about a second.
set -euo pipefail
CACHE=${LIFEBOAT_QEMU_CACHE:-/var/cache/lifeboat-qemu}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
APT=(-o DPkg::Lock::Timeout=600 -y -qq --no-install-recommends)

need_pkgs=""
for p in smartmontools nvme-cli kmod cpio python3; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs="$need_pkgs $p"
done
if [ -n "$need_pkgs" ] || ! command -v qemu-system-x86_64 >/dev/null; then
  # QEMU 10 from bookworm-backports is what docs/storage-health was checked with; bookworm's
  # QEMU 7.2 has the same NVMe/AHCI/SD models and is the fallback.
  if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
    uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [ -n "$uri" ] || uri=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$uri" ] || uri=http://deb.debian.org/debian
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$uri" | $SUDO tee /etc/apt/sources.list.d/lifeboat-backports.sources >/dev/null
  fi
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  # shellcheck disable=SC2086
  [ -z "$need_pkgs" ] || $SUDO apt-get install "${APT[@]}" $need_pkgs >/dev/null
  if ! command -v qemu-system-x86_64 >/dev/null; then
    $SUDO apt-get install "${APT[@]}" -t bookworm-backports qemu-system-x86 >/dev/null ||
      $SUDO apt-get install "${APT[@]}" qemu-system-x86 >/dev/null
  fi
fi

$SUDO mkdir -p "$CACHE"
$SUDO chown "$(id -u):$(id -g)" "$CACHE"
cd "$CACHE"
if [ ! -s vmlinux ] || [ ! -s kernel-version ] || [ ! -x bbroot/bin/busybox ]; then
  kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  if [ -z "$kpkg" ]; then  # package lists missing or stale: refresh once
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
    kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  fi
  [ -n "$kpkg" ] || { echo "setup: cannot find the kernel package behind linux-image-amd64" >&2; exit 1; }
  rm -rf dl kroot bbroot vmlinux kernel-version
  mkdir dl && (cd dl && apt-get download "$kpkg" busybox-static >/dev/null 2>&1) ||
    { echo "setup: apt-get download $kpkg busybox-static failed" >&2; exit 1; }
  dpkg-deb -x dl/"$kpkg"_*.deb kroot
  dpkg-deb -x dl/busybox-static_*.deb bbroot
  kv=${kpkg#linux-image-}
  depmod -b "$CACHE/kroot" "$kv"
  python3 - "kroot/boot/vmlinuz-$kv" vmlinux <<'PY'
import lzma, sys
d = open(sys.argv[1], 'rb').read()
pos = d.find(b'\xfd7zXZ\x00')
while pos >= 0:
    try:
        out = lzma.LZMADecompressor().decompress(d[pos:])
        if out[:4] == b'\x7fELF':
            open(sys.argv[2], 'wb').write(out)
            break
    except lzma.LZMAError:
        pass
    pos = d.find(b'\xfd7zXZ\x00', pos + 1)
else:
    sys.exit("no XZ-compressed ELF kernel found in " + sys.argv[1])
PY
  rm -rf dl
  echo "$kv" > kernel-version
fi
echo "setup: QEMU rig ready in $CACHE (kernel $(cat kernel-version), $(qemu-system-x86_64 --version | head -1))"
