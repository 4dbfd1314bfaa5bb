#!/usr/bin/env bash
# Makes (once) a Python venv with the kcidb-io package — the official KCIDB
# schema — for validating kharness's `--format kcidb` documents, and prints
# its python. Never touches the system Python's packages.
#   ci/kcidb-venv.sh [DIR]      (default: target/kcidb-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(realpath -m "${1:-target/kcidb-venv}")
py=$venv/bin/python
if [ -x "$py" ] && "$py" -c 'import kcidb_io, jsonschema' 2>/dev/null; then
	echo "$py"
	exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
	else
		echo "ci/kcidb-venv.sh: python3 cannot make a venv; install python3-venv" >&2
		exit 69
	fi
fi
rm -rf "$venv"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install -q kcidb-io >&2
"$py" -c 'import kcidb_io; v = kcidb_io.schema.LATEST; print(f"kcidb-io: latest schema {v.major}.{v.minor}")' >&2
echo "$py"
