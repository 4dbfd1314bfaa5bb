#!/usr/bin/env bash
# Time to detection: how many of N fresh-seed explorations of one property
# case find a failing sequence within a budget, and the median time to it.
# "Found" is the first run whose random sequences failed
# (property.failing_sequences = 1), whatever the verdict: a defect the case
# names is an xfail, but the search still had to reach it.
#   ci/time-to-detection.sh CASE [RUNS=10] [BUDGET=60s] [KHARNESS_BINARY] [JOBS=2]
set -euo pipefail
case_id=${1:?give a property case id, e.g. unix.gc_property}
runs=${2:-10}
budget=${3:-60s}
bin=${4:-target/release/kharness}
jobs=${5:-2}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for i in $(seq 1 "$runs"); do
	# A private regression directory: what one run saves must not be
	# replayed by the next (explore does not replay, but keep them apart).
	mkdir -p "$out/reg$i"
	KHARNESS_REGRESSIONS_DIR="$out/reg$i" "$bin" explore "$case_id" --time "$budget" --jobs "$jobs" \
		--format json >"$out/run$i.jsonl" || true
done
python3 - "$out" "$runs" "$budget" "$case_id" <<'PY'
import json, statistics, sys, os
out, runs, budget, case = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
times, seqs = [], []
for i in range(1, runs + 1):
    found = None
    for line in open(os.path.join(out, f"run{i}.jsonl")):
        ev = json.loads(line)
        if ev.get("type") != "run":
            continue
        rep = ev["report"]
        if rep["observations"].get("property.failing_sequences") == 1 and found is None:
            found = (ev["elapsed_ms"], ev["seed"], rep["outcome"])
    if found:
        times.append(found[0] / 1000)
        print(f"run {i}: found after {found[0] / 1000:.1f} s (seed {found[1]}, {found[2]})")
    else:
        print(f"run {i}: not found within {budget}")
med = f"{statistics.median(times):.1f} s" if times else "—"
print(f"{case}: {len(times)} of {runs} fresh-seed explorations found a failing sequence within {budget}; median {med}")
PY
