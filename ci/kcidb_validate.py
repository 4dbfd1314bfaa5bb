#!/usr/bin/env python3
"""Validates KCIDB documents against the official schema (the kcidb-io
package: pip install kcidb-io), exactly version 5.3, the one kharness
writes. Usage: kcidb_validate.py FILE... (or a document on stdin).
Exit 0 if every document is valid, 1 if one is not (the error is printed)."""
import json
import sys

import jsonschema
import kcidb_io

SCHEMA = kcidb_io.schema.V5_3


def check(name, text):
    try:
        data = json.loads(text)
    except ValueError as e:
        print(f"{name}: not JSON: {e}", file=sys.stderr)
        return False
    if (data.get("version") or {}) != {"major": SCHEMA.major, "minor": SCHEMA.minor}:
        print(f"{name}: version {data.get('version')} is not "
              f"{{'major': {SCHEMA.major}, 'minor': {SCHEMA.minor}}}", file=sys.stderr)
        return False
    try:
        SCHEMA.validate_exactly(data)
    except jsonschema.exceptions.ValidationError as e:
        print(f"{name}: invalid KCIDB {SCHEMA.major}.{SCHEMA.minor}: {e.message} "
              f"at {'/'.join(str(p) for p in e.absolute_path)}", file=sys.stderr)
        return False
    counts = ", ".join(f"{len(data.get(k, []))} {k}" for k in
                       ("checkouts", "builds", "tests", "issues", "incidents"))
    print(f"{name}: valid KCIDB {SCHEMA.major}.{SCHEMA.minor} ({counts})")
    return True


def main():
    files = sys.argv[1:]
    if not files:
        return 0 if check("<stdin>", sys.stdin.read()) else 1
    ok = True
    for f in files:
        with open(f, encoding="utf-8") as fh:
            ok = check(f, fh.read()) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
