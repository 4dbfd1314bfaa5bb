#!/usr/bin/env bash
# The whole catalog as an unprivileged user: kharness enters a user namespace
# by itself (uid/gid maps written before any thread starts) and every case
# that needs what a user namespace cannot give skips and says what.
# Prints the table; exits 1 if any case failed (a skip is not a failure).
#   ci/rootless.sh [KHARNESS_BINARY] [UID]
set -euo pipefail
bin=${1:-target/debug/kharness}
uid=${2:-65534}
if [ "$(id -u)" != 0 ]; then
	# Already unprivileged: run directly.
	exec "$bin" run
fi
command -v setpriv >/dev/null || { echo "ci/rootless.sh: setpriv (util-linux) is needed to drop root" >&2; exit 69; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
install -m 0755 "$bin" "$dir/kharness"
chmod 0755 "$dir"
set +e
(cd "$dir" && setpriv --reuid="$uid" --regid="$uid" --clear-groups ./kharness run --format json) >"$dir/out.jsonl"
code=$?
set -e
python3 - "$dir/out.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    if r.get("type") == "header":
        print(f"privileges: {r['kernel']['privileges']}")
print(f"{'case':34} rootless")
for r in rows:
    if r.get("type") == "result":
        why = f"  ({r['reason']})" if r["outcome"] != "pass" else ""
        print(f"{r['case']:34} {r['outcome']}{why}")
for r in rows:
    if r.get("type") == "summary":
        print(f"rootless: {r['passed']} passed, {r['failed']} failed, {r['skipped']} skipped")
PY
exit "$code"
