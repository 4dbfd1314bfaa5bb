#!/usr/bin/env bash
# The long reliability checks, and their figures. `cargo test --workspace`
# runs the same tests CI-sized; this runs them at full size:
#
#   kill       100 SIGKILLs of `kharness run` spread over a run, 20 of one
#              case process, 20 of `kharness matrix` (QEMU + host), 10 during
#              a kernel fetch: no process, namespace, mount, link or file left
#   hygiene    a full run and a full matrix (every kernel, every case): the
#              host namespace's network state unchanged
#   repeat     `kharness run --repeat 50` while a second process keeps every
#              CPU busy: every case gives the same verdict 50 times
#   hostile    bad input at every entry point
#   resources  peak RSS of `kharness run` and `kharness matrix`, threads and
#              fds at --jobs 16
#
# Needs root; QEMU, a cached kernel (~/.cache/kharness, from one
# `kharness matrix`) and the static build (ci/build-static.sh) for the
# matrix parts, which skip saying why without them. About 15 minutes on 2
# cores.
#   ci/reliability.sh [test-name …]      (default: all five)
# Sizes can be overridden: KHARNESS_KILL_POINTS, KHARNESS_CASE_KILL_POINTS,
# KHARNESS_MATRIX_KILL_POINTS, KHARNESS_FETCH_KILL_POINTS, KHARNESS_REPEAT,
# KHARNESS_RESOURCE_REPEAT.
set -uo pipefail
cd "$(dirname "$0")/.."

export KHARNESS_KILL_POINTS=${KHARNESS_KILL_POINTS:-100}
export KHARNESS_CASE_KILL_POINTS=${KHARNESS_CASE_KILL_POINTS:-20}
export KHARNESS_MATRIX_KILL_POINTS=${KHARNESS_MATRIX_KILL_POINTS:-20}
export KHARNESS_FETCH_KILL_POINTS=${KHARNESS_FETCH_KILL_POINTS:-10}
export KHARNESS_HYGIENE_FULL_MATRIX=${KHARNESS_HYGIENE_FULL_MATRIX:-1}
export KHARNESS_REPEAT=${KHARNESS_REPEAT:-50}
export KHARNESS_REPEAT_LOAD=${KHARNESS_REPEAT_LOAD:-1}
export KHARNESS_RESOURCE_REPEAT=${KHARNESS_RESOURCE_REPEAT:-5}

if [ "$(id -u)" != 0 ]; then
	echo "ci/reliability.sh: run as root (namespaces, mounts, the host snapshot)" >&2
	exit 2
fi
if ! command -v stress-ng >/dev/null && command -v apt-get >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng >/dev/null 2>&1 ||
		echo "ci/reliability.sh: no stress-ng; the load is shell busy loops"
fi
target=${CARGO_TARGET_DIR:-target}
if [ ! -x "$target/x86_64-unknown-linux-gnu/release/kharness" ] && command -v qemu-system-x86_64 >/dev/null; then
	bash ci/build-static.sh >/dev/null || exit 1
fi
cargo build --tests -p kharness-cli || exit 1

tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(hostile resources hygiene kill repeat)
log=$(mktemp -d "${TMPDIR:-/tmp}/kharness-reliability.XXXXXX")
failed=()
for t in "${tests[@]}"; do
	echo "== $t"
	start=$SECONDS
	# One test at a time: each counts the machine's processes and namespaces.
	if cargo test -p kharness-cli --test "$t" -- --nocapture --test-threads=1 >"$log/$t.log" 2>&1; then
		echo "   ok ($((SECONDS - start)) s)"
	else
		echo "   FAILED ($((SECONDS - start)) s): $log/$t.log"
		grep -E "panicked|left:|^  " "$log/$t.log" | grep -v "^  *[0-9]*: \|^  *at " | head -20 | sed 's/^/   /'
		failed+=("$t")
	fi
	# The figures each test printed (a line may follow libtest's "test NAME ... ").
	grep -oE "(kill|hygiene|repeat|hostile|resources): .*|^  +[a-z]+\.[a-z_]+.*|^  +(kill at|case) .*|^ +[0-9]+ ms .*" "$log/$t.log" | sed 's/^/   /'
done
if [ ${#failed[@]} -gt 0 ]; then
	echo "ci/reliability.sh: failed: ${failed[*]} (logs in $log)"
	exit 1
fi
echo "ci/reliability.sh: all passed (logs in $log)"
