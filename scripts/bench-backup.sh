#!/usr/bin/env bash
# Benchmark: decrypt + extract a ~1 GiB SecureTar v2 and v3 backup with lifeboat and with
# Python securetar (PyPI, streaming like Supervisor: tarfile "r|gz" over the cipher stream).
# Prints wall time, peak memory (max RSS) and the ratio. Not part of `cargo test`.
#   scripts/bench-backup.sh [WORKDIR]   (default target/bench-backup; needs ~5 GiB free)
# Also prints user+system CPU seconds of each side (the box is shared: wall time is noisy).
# OUT=DIR extracts there instead of WORKDIR (e.g. OUT=/dev/shm: no disk writeback in the
# figures). Each side starts after a sync, so neither waits on the other's dirty pages.
# On a shared box, give the run its own CPU share (docs/performance.md):
#   setsid bash -c 'echo -10 > /proc/self/autogroup; LIFEBOAT=... scripts/bench-backup.sh'
# Content: 512 MiB of random bytes (like media, incompressible) and 640 MiB of base64 text
# (compresses to ~75 %), in 128 MiB files, so each backup is about 1 GiB.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-target/bench-backup}
mkdir -p "$work"
work=$(cd "$work" && pwd)
venv=$work/securetar-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check securetar==2026.10.0
fi
py=$venv/bin/python
tool=$PWD/tests/backup/securetar_tool.py
# LIFEBOAT=path/to/lifeboat skips the build (e.g. a copy taken while others rebuild the tree).
if [ -n "${LIFEBOAT:-}" ]; then
  lb=$(realpath "$LIFEBOAT")
else
  cargo build --release -q
  lb=$PWD/target/release/lifeboat
fi

src=$work/src
if [ ! -f "$src/.complete" ]; then
  rm -rf "$src"; mkdir -p "$src/media" "$src/text" "$src/.storage"
  for i in 1 2 3 4; do head -c $((128 << 20)) /dev/urandom > "$src/media/clip$i.bin"; done
  for i in 1 2 3 4 5; do head -c $((96 << 20)) /dev/urandom | base64 > "$src/text/log$i.txt"; done
  echo '{"data":{}}' > "$src/.storage/auth"
  touch "$src/.complete"
fi
echo "hunter2" > "$work/pw"
out=${OUT:-$work}
mkdir -p "$out"

measure() { # label command...  -> "seconds maxrss_kib cpu_seconds"
  local out; out=$({ /usr/bin/time -f "%e %M %U %S" "${@:2}" >/dev/null; } 2>&1 | tail -1)
  read -r e m u s <<<"$out"
  echo "$e $m $(python3 -c "print(f'{$u+$s:.2f}')")"
}

for v in 2 3; do
  b=$work/backup-v$v.tar
  [ -f "$b" ] || "$py" "$tool" make "$src" "$b" "$v" hunter2
  size=$(stat -c %s "$b")
  sync
  rm -rf "$out/py-out" "$out/lb-out"
  sync
  read -r pt pm pc < <(measure py "$py" "$tool" extract "$b" hunter2 "$out/py-out")
  sync
  read -r lt lm lc < <(measure lb "$lb" backup extract "$b" -o "$out/lb-out" --password-file "$work/pw")
  # The two extractions hold the same files.
  (cd "$out/py-out/homeassistant" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$work/py.sum"
  (cd "$out/lb-out/homeassistant" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$work/lb.sum"
  cmp -s "$work/py.sum" "$work/lb.sum" || { echo "v$v: extracted trees differ"; exit 1; }
  ratio=$(python3 -c "print(f'{$pt/$lt:.1f}')")
  printf 'v%s backup %d MiB: python securetar %ss (CPU %ss, max RSS %d MiB), lifeboat %ss (CPU %ss, max RSS %d MiB): %sx faster\n' \
    "$v" $((size >> 20)) "$pt" "$pc" $((pm >> 10)) "$lt" "$lc" $((lm >> 10)) "$ratio"
  rm -rf "$out/py-out" "$out/lb-out"
done
