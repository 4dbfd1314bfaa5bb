#!/usr/bin/env bash
# Fuzzes every kharness parser that reads kernel or file input (fuzz/, one
# cargo-fuzz target per parser; see fuzz/README.md).
#
#   bash ci/fuzz.sh short [TARGET…]   # CI: each target ~15 s (FUZZ_SECONDS)
#   bash ci/fuzz.sh long  [TARGET…]   # each until 10 million executions or 30 minutes
#   bash ci/fuzz.sh list              # the targets
#   bash ci/fuzz.sh build             # build only
#
# Works on the stable toolchain: cargo-fuzz's flags (-Zsanitizer=address,
# sancov) are nightly-only, and RUSTC_BOOTSTRAP=1 lets stable rustc take them.
# AddressSanitizer is on by default (rustc ships its runtime); set
# FUZZ_SANITIZER=none to build without it, in fuzz/target/sanitizer-none/
# beside the ASan build (2-10x faster here; catches panics, overflows, hangs
# and the RSS limit, but not memory errors in C dependencies, and
# -malloc_limit_mb needs a sanitizer's malloc hooks).
#
# Every run is bounded: -rss_limit_mb=512 and -malloc_limit_mb=256 (an
# unbounded allocation is a crash), -timeout=5 per input (a hang is a crash).
# Seeds come from fixtures/fuzz-corpus/TARGET (real kernel output and real
# files, captured by fuzz/capture-corpus.py); what the fuzzer finds goes to
# fuzz/corpus/TARGET (not committed), crashes to fuzz/artifacts/TARGET/, logs
# and a summary table to fuzz/logs/. The script exits 1 when any target found
# a crash, printing how to reproduce it.
#
# Environment: FUZZ_JOBS (targets at once, default 2), FUZZ_SECONDS (short
# run per target, default 15), FUZZ_RUNS / FUZZ_MAX_SECONDS (long run,
# default 10000000 / 1800), FUZZ_SANITIZER (address | none).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ="$ROOT/fuzz"
MODE="${1:-short}"
[ $# -gt 0 ] && shift
JOBS="${FUZZ_JOBS:-2}"
SANITIZER="${FUZZ_SANITIZER:-address}"
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
# One target dir per sanitizer, so an ASan build and a plain one coexist.
TARGET_DIR=()
BIN="$FUZZ/target/$TRIPLE/release"
if [ "$SANITIZER" != address ]; then
    TARGET_DIR=(--target-dir "$FUZZ/target/sanitizer-$SANITIZER")
    BIN="$FUZZ/target/sanitizer-$SANITIZER/$TRIPLE/release"
fi
LIMITS=(-rss_limit_mb=512 -malloc_limit_mb=256 -timeout=5 -print_final_stats=1)

export RUSTC_BOOTSTRAP=1
# A small quarantine keeps the RSS of long runs under -rss_limit_mb.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0:detect_leaks=0:quarantine_size_mb=32}"
# The fuzz crate is its own workspace with its own target dir.
unset CARGO_TARGET_DIR

targets() {
    sed -n 's/^name = "\(.*\)"$/\1/p' "$FUZZ/Cargo.toml" | grep -v '^kharness-fuzz$'
}

ensure_cargo_fuzz() {
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "fuzz: installing cargo-fuzz" >&2
        cargo install cargo-fuzz --locked
    fi
}

build() {
    ensure_cargo_fuzz
    echo "fuzz: building targets (sanitizer: $SANITIZER)" >&2
    (cd "$FUZZ" && cargo fuzz build -O --debug-assertions --sanitizer "$SANITIZER" "${TARGET_DIR[@]}")
}

# run_one TARGET MODE: one libFuzzer run; appends a summary row.
run_one() {
    local t="$1" mode="$2" budget
    local corpus="$FUZZ/corpus/$t" seeds="$ROOT/fixtures/fuzz-corpus/$t"
    local art="$FUZZ/artifacts/$t" log="$FUZZ/logs/$t.$mode.log"
    mkdir -p "$corpus" "$art" "$seeds"
    if [ "$mode" = short ]; then
        budget=(-max_total_time="${FUZZ_SECONDS:-15}")
    else
        budget=(-runs="${FUZZ_RUNS:-10000000}" -max_total_time="${FUZZ_MAX_SECONDS:-1800}")
    fi
    local start end rc=0
    start=$(date +%s.%N)
    # New inputs are written to the first directory only: fixtures stay as captured.
    "$BIN/$t" "${LIMITS[@]}" "${budget[@]}" -artifact_prefix="$art/" "$corpus" "$seeds" >"$log" 2>&1 || rc=$?
    end=$(date +%s.%N)
    local execs eps wall files crashes
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }')
    files=$(( $(find "$corpus" -type f | wc -l) + $(find "$seeds" -type f | wc -l) ))
    crashes=$(find "$art" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$SANITIZER" "${execs:-?}" "$wall" "${eps:-?}" "$files" "$crashes" "$rc" >>"$FUZZ/logs/summary.$mode.tsv"
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        echo "fuzz: $t FAILED (exit $rc, $crashes artifact(s)); log: $log" >&2
        grep -E '^(==[0-9]+==ERROR|SUMMARY|thread .* panicked|.*panicked at)' "$log" | head -5 >&2 || true
        for a in "$art"/*; do
            [ -e "$a" ] && echo "  reproduce: $BIN/$t $a" >&2
        done
        return 1
    fi
    echo "fuzz: $t ok: ${execs:-?} executions in ${wall} s (${eps:-?}/s), corpus $files files" >&2
}

campaign() {
    local mode="$1"; shift
    local list=("$@")
    [ ${#list[@]} -eq 0 ] && mapfile -t list < <(targets)
    build
    mkdir -p "$FUZZ/logs"
    printf 'target\tsanitizer\texecutions\twall_s\texec_per_s\tcorpus_files\tcrashes\texit\n' >"$FUZZ/logs/summary.$mode.tsv"
    local t
    for t in "${list[@]}"; do
        [ -x "$BIN/$t" ] || { echo "fuzz: no target $t (bash ci/fuzz.sh list)" >&2; exit 2; }
        run_one "$t" "$mode" &
        while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do
            wait -n || true
        done
    done
    wait || true
    # The table is the record: one row per target, none with a crash.
    local tsv="$FUZZ/logs/summary.$mode.tsv" rows bad
    column -t -s $'\t' "$tsv" 2>/dev/null || cat "$tsv"
    rows=$(($(wc -l <"$tsv") - 1))
    bad=$(awk -F'\t' 'NR > 1 && ($7 != 0 || $8 != 0)' "$tsv" | wc -l)
    bad=$((bad + ${#list[@]} - rows))
    echo "fuzz: $((${#list[@]} - bad)) passed, $bad failed"
    [ "$bad" -eq 0 ]
}

case "$MODE" in
    list) targets ;;
    build) build ;;
    short | long) campaign "$MODE" "$@" ;;
    *) echo "usage: bash ci/fuzz.sh short|long|list|build [TARGET…]" >&2; exit 2 ;;
esac
