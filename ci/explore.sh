#!/usr/bin/env bash
# Explores every property case on the running kernel with fresh seeds for a
# short budget (default 30 s), keeps the JSON lines, prints the human table,
# and exits 1 if a failure was found (its seed, minimal counterexample and
# replay command are in the output; it is also saved under
# fixtures/proptest-regressions/NAME.deep.txt, which `kharness run` replays).
#   ci/explore.sh [KHARNESS_BINARY] [BUDGET] [RESULTS_FILE]
set -euo pipefail
bin=${1:-target/debug/kharness}
budget=${2:-30s}
out=${3:-target/kharness-explore.jsonl}
mkdir -p "$(dirname "$out")"
set +e
"$bin" explore --time "$budget" --format json >"$out"
code=$?
set -e
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    if r.get("type") == "run":
        rep = r["report"]
        print(f"round {r['round']:>3}  seed {r['seed']:<20} {rep['case']:<28} {rep['outcome']}")
        if rep["outcome"] == "fail":
            for n in rep.get("notes", []):
                print(f"    {n}")
s = [r for r in rows if r.get("type") == "summary"]
if s:
    s = s[0]
    found = [c for c in s["cases"] if c.get("found")]
    print(f"explore: {s['rounds']} rounds in {s['duration_ms'] / 1000:.1f} s, "
          f"{sum(c['sequences'] for c in s['cases'])} sequences, {len(found)} failure(s) found")
    for c in found:
        f = c["found"]
        print(f"  FOUND {c['case']} after {f['elapsed_ms'] / 1000:.1f} s: {f['replay']}")
PY
exit "$code"
