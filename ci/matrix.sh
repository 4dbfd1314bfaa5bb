#!/usr/bin/env bash
# The kernel-version matrix: the catalog on every kernel of
# fixtures/kernels.toml (Debian's under QEMU, and the host natively).
#   ci/matrix.sh [kharness matrix arguments…]     e.g. ci/matrix.sh 6.1 host
# Installs QEMU when missing, builds the static kharness for the guests'
# /init, runs the matrix, prints the table, and leaves the reports in
# target/matrix/: matrix.json (input of `kharness report merge`),
# matrix.html, matrix.xml (JUnit), matrix.md, matrix.kcidb.json (KCIDB 5.3,
# validated by ci/ci-workflow.sh). Kernels are cached under
# ~/.cache/kharness (or $XDG_CACHE_HOME/kharness): a second run downloads
# nothing. Exit code: that of `kharness matrix` (0 ok, 1 a case failed,
# 2 usage/configuration, 69 a kernel could not be fetched or booted).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v qemu-system-x86_64 >/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
	else
		echo "ci/matrix.sh: qemu-system-x86_64 is missing; install qemu-system-x86 (as root: apt-get install qemu-system-x86)" >&2
		exit 69
	fi
fi

bash ci/build-static.sh
bin=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/kharness
out=target/matrix
mkdir -p "$out"

set +e
"$bin" matrix --format json --html "$out/matrix.html" --junit "$out/matrix.xml" "$@" >"$out/matrix.json"
code=$?
set -e
if [ -s "$out/matrix.json" ]; then
	"$bin" report merge "$out/matrix.json" --format markdown >"$out/matrix.md" || true
	"$bin" report merge "$out/matrix.json" --format kcidb >"$out/matrix.kcidb.json" || true
	"$bin" report merge "$out/matrix.json" || true
fi
echo "ci/matrix.sh: reports in $out/ (exit $code)"
exit "$code"
