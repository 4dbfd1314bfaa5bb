#!/usr/bin/env bash
# kharness in kernel CI, on this host: every kharness command of the example
# workflow ci/github-ci.yml, plus the checks that the CI features work.
#   1. flaky: a case made to fail once by the test-only fault switch
#      KHARNESS_TEST_FLAKY passes on its retry and is reported `flaky`
#      (exit 0), and exit 1 with --flaky-fails;
#   2. baseline: two real runs, the second with one injected failure:
#      `report diff` exits 1 and names it; two clean runs diff to exit 0;
#   3. the workflow's matrix steps on the host kernel (shard 5/5 of
#      fixtures/kernels.toml is `host`: no VM): merge, diff against the last
#      good report, markdown for the pull request, KCIDB;
#   4. KCIDB documents from `run`, `matrix` and `report merge` (and the full
#      matrix of ci/matrix.sh, if it ran) validated against the official
#      schema (kcidb-io in a venv, ci/kcidb-venv.sh), and the integration
#      tests of harness/cli/tests/ci.rs with the validator required.
# Leaves everything in target/ci-workflow/. Exit 0 when every check holds.
#   ci/ci-workflow.sh [KHARNESS_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/kharness}
out=target/ci-workflow
rm -rf "$out"
mkdir -p "$out"
py=$(bash ci/kcidb-venv.sh)
fail() {
	echo "ci/ci-workflow.sh: FAILED: $*" >&2
	exit 1
}
expect_exit() { # expect_exit CODE COMMAND...
	local want=$1
	shift
	set +e
	"$@"
	local got=$?
	set -e
	[ "$got" = "$want" ] || fail "\`$*\` exited $got, expected $want"
}

echo "== 1. flaky verdict (test-only fault switch)"
mkdir -p "$out/switch"
KHARNESS_TEST_FLAKY=$out/switch "$bin" run tcp.refused --retries 2 --format json >"$out/flaky.json" ||
	fail "a flaky case must exit 0"
grep -q '"outcome":"flaky"' "$out/flaky.json" || fail "no flaky result in $out/flaky.json"
grep -q '"flaky":1' "$out/flaky.json" || fail "the summary does not count the flaky case"
rm -rf "$out/switch" && mkdir -p "$out/switch"
expect_exit 1 env KHARNESS_TEST_FLAKY="$out/switch" "$bin" run tcp.refused --retries 1 --flaky-fails >"$out/flaky.txt"
grep -q 'FLAKY  tcp.refused' "$out/flaky.txt" || fail "human output lacks FLAKY"
cat "$out/flaky.txt"

echo "== 2. report diff between two real runs, one regression injected"
cases=(tcp.refused tcp.sndbuf_setget unix.abstract procfs.socket_inode)
"$bin" run "${cases[@]}" --format json >"$out/base.json"
"$bin" run "${cases[@]}" --format json >"$out/again.json"
rm -rf "$out/switch" && mkdir -p "$out/switch"
set +e
KHARNESS_TEST_FLAKY=$out/switch KHARNESS_TEST_FLAKY_CASE=tcp.sndbuf_setget \
	"$bin" run "${cases[@]}" --format json >"$out/new.json"
set -e
"$bin" report diff "$out/base.json" "$out/again.json" || fail "two clean runs must diff to exit 0"
expect_exit 1 "$bin" report diff "$out/base.json" "$out/new.json" >"$out/diff.txt"
cat "$out/diff.txt"
grep -q 'tcp.sndbuf_setget: pass → fail' "$out/diff.txt" || fail "the diff does not name the regression"

echo "== 3. the workflow's steps on the host kernel"
# As a kernel job of ci/github-ci.yml: one shard of the matrix.
set +e
"$bin" matrix --shard 5/5 --retries 2 --known-issues ci/team-known-issues.toml --case 'tcp.*' --case 'unix.*' --format json >"$out/part-5.json"
code=$?
set -e
[ "$code" = 0 ] || fail "kharness matrix --shard 5/5 exited $code"
"$bin" report merge "$out"/part-*.json >/dev/null
# As the report job: merge the shards, compare with the last good report,
# write the pull-request comment and the KCIDB submission.
"$bin" report merge "$out"/part-*.json --format json >"$out/matrix.json"
"$bin" report merge "$out"/part-*.json --format markdown >"$out/matrix.md"
mkdir -p "$out/last-good"
cp "$out/matrix.json" "$out/last-good/matrix.json"
"$bin" report diff "$out/last-good/matrix.json" "$out/matrix.json" --format markdown >"$out/diff.md" ||
	fail "a matrix against itself must diff to exit 0"
"$bin" report merge "$out"/part-*.json --format kcidb --kcidb-origin kharness >"$out/kcidb.json"

echo "== 4. KCIDB documents against the official schema"
"$bin" run tcp.refused tcp.fill --format kcidb >"$out/run.kcidb.json"
"$bin" matrix host --case tcp.refused --format kcidb >"$out/matrix-host.kcidb.json"
docs=("$out/run.kcidb.json" "$out/matrix-host.kcidb.json" "$out/kcidb.json")
if [ -s target/matrix/matrix.json ]; then
	# The full matrix of ci/matrix.sh (every kernel of fixtures/kernels.toml).
	set +e
	"$bin" report merge target/matrix/matrix.json --format kcidb >"$out/full-matrix.kcidb.json"
	set -e
	docs+=("$out/full-matrix.kcidb.json")
fi
"$py" ci/kcidb_validate.py "${docs[@]}" || fail "a KCIDB document is invalid"
KHARNESS_KCIDB_PYTHON=$py KHARNESS_REQUIRE_ALL=1 cargo test -q -p kharness-cli --test ci ||
	fail "harness/cli/tests/ci.rs"
echo "ci/ci-workflow.sh: every check held; outputs in $out/"
