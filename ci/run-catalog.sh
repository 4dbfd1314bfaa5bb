#!/usr/bin/env bash
# Runs the whole catalog with JSON output, keeps the results, prints a
# summary, and exits non-zero if any case failed.
#   ci/run-catalog.sh [KHARNESS_BINARY] [RESULTS_FILE]
set -euo pipefail
bin=${1:-target/debug/kharness}
out=${2:-target/kharness-results.jsonl}
mkdir -p "$(dirname "$out")"
set +e
"$bin" run --format json --junit "${out%.jsonl}.xml" >"$out"
code=$?
set -e
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    if r.get("type") == "result":
        extra = "" if r["outcome"] == "pass" else f"  ({r.get('reason')})"
        print(f"{r['outcome']:>5}  {r['case']:<36} {r['duration_ms']:>6} ms{extra}")
s = [r for r in rows if r.get("type") == "summary"]
if s:
    s = s[0]
    print(f"xfailed: {s['xfailed']}; xpassed: {s.get('xpassed', 0)}; wall: {s['duration_ms']} ms")
    print(f"catalog: {s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped")
PY
exit "$code"
