#!/usr/bin/env bash
# run.sh [SECONDS] [TARGET...]
#
# Fuzz every target (or the ones named) for SECONDS each (default 60), one after another,
# on the stable toolchain (RUSTC_BOOTSTRAP=1 unlocks the -Z flags cargo-fuzz passes).
# Seeds come from seeds.sh, run first when fuzz/corpus is missing. Crashes land in
# fuzz/artifacts/<target>/ and each target's log in fuzz/artifacts/<target>/run.log.
# Prints executions and exec/s per target; exits 1 if any target crashed.
#
# Environment: SANITIZER (default none: the parsers are safe Rust, and without ASan the
# targets run several times faster; use SANITIZER=address for the cargo-fuzz default),
# FUZZ_ARGS (extra libFuzzer flags, e.g. "-jobs=2 -workers=2").
set -uo pipefail

FUZZ=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$FUZZ" || exit 2
SECS=${1:-60}
[ $# -gt 0 ] && shift
export RUSTC_BOOTSTRAP=1
SAN=${SANITIZER:-none}

command -v cargo-fuzz >/dev/null || { echo "run.sh: cargo install cargo-fuzz" >&2; exit 2; }
if [ $# -gt 0 ]; then TARGETS=("$@"); else mapfile -t TARGETS < <(cargo fuzz list); fi
[ -d corpus/inspect_image ] || bash "$FUZZ/seeds.sh" || exit 2

# Build once, then run the binaries directly: `cargo fuzz run` would rebuild whenever the
# sources change under a long run, and a build error is not a crash.
cargo fuzz build -s "$SAN" || { echo "run.sh: build failed" >&2; exit 2; }
BIN=target/$(rustc -vV | sed -n 's/^host: //p')/release

failed=()
printf '%-15s %8s %12s %9s  %s\n' target seconds executions exec/s result
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log=artifacts/$t/run.log
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    "$BIN/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$SECS" -print_final_stats=1 \
        -timeout=30 ${FUZZ_ARGS:-} "corpus/$t" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    if [ $rc -eq 0 ]; then res=ok; else res="CRASH (see $log)"; failed+=("$t"); fi
    printf '%-15s %8s %12s %9s  %s\n' "$t" "$SECS" "${runs:-?}" "${rate:-?}" "$res"
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "crashed: ${failed[*]}; inputs in fuzz/artifacts/<target>/" >&2
    exit 1
fi
