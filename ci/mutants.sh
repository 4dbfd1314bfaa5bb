#!/usr/bin/env bash
# Mutation testing of the code that states what the kernel should do: the
# models (harness/src/model.rs, tcpinfo.rs, procfs.rs) and every case's
# prediction code (cases/src/). cargo-mutants changes one thing at a time
# (a return value, an operator, a match arm) and runs the unit tests and the
# catalog against it; a mutant that no test notices ("missed") is a claim of
# the model that nothing checks.
#
#   ci/mutants.sh sample   a fixed, small list of model functions (minutes; CI runs it)
#   ci/mutants.sh full     every file above (hours on 2 cores)
#   ci/mutants.sh FILE...  these files only
#
# Prints the score per file (caught / (caught + missed); unviable mutants,
# which do not compile, are not counted) and the missed mutants, and fails
# if one is missed that ci/mutants-equivalent.txt does not list as
# equivalent (a mutant no test can tell from the original, with the reason).
# Mutants are applied in place (the tree is restored after each); reports
# are left in target/mutants/.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo mutants --version >/dev/null 2>&1; then
	echo "ci/mutants.sh: installing cargo-mutants (once; a few minutes)" >&2
	cargo install --locked cargo-mutants >/dev/null
fi

mode=${1:-sample}
out=target/mutants
mkdir -p "$out"

# One run: a name, the test filter (libtest takes one), cargo-mutants
# arguments selecting the mutants. The tests are the unit tests of the core
# and of the cases and the catalog (every case through the real binary), as
# in `cargo test`; the filter keeps those that exercise the file.
run() {
	local name=$1 filter=$2
	shift 2
	echo "ci/mutants.sh: $name" >&2
	# Exit codes: 0 all caught, 2 some missed, 3 timeouts; 1 and 4 are
	# cargo-mutants' own failures.
	set +e
	cargo mutants --in-place --no-shuffle --baseline skip --timeout 600 \
		--output "$out/$name" "$@" \
		-- -p kharness -p kharness-cases -p kharness-cli --lib --test catalog \
		-- "$filter" >"$out/$name.log" 2>&1
	local code=$?
	set -e
	if [ "$code" = 1 ] || [ "$code" = 4 ]; then
		echo "ci/mutants.sh: cargo mutants failed ($code); see $out/$name.log" >&2
		tail -20 "$out/$name.log" >&2
		exit 1
	fi
}

case "$mode" in
sample)
	# The models every kernel-version difference goes through: the tcp_info
	# length table, the unix.oob version/config gate, and the SCTP refusal
	# rule. A few minutes here.
	run tcpinfo info --file harness/src/tcpinfo.rs --re 'expected_len_for'
	run oob oob --file cases/src/unix/oob.rs --re 'stream_model'
	;;
full)
	run model "" --file harness/src/model.rs
	run tcpinfo "" --file harness/src/tcpinfo.rs
	run procfs "" --file harness/src/procfs.rs
	run cases "" --file 'cases/src/**/*.rs'
	;;
*)
	for f in "$@"; do
		run "$(basename "$f" .rs)" "" --file "$f"
	done
	;;
esac

# The score per file, from the caught/missed/timeout/unviable lists that
# cargo-mutants writes (`FILE:LINE:COL: what was changed`). A mutant is named
# in ci/mutants-equivalent.txt as `FILE: what was changed` (no line, so the
# list survives edits elsewhere in the file).
python3 - "$out" ci/mutants-equivalent.txt <<'EOF'
import sys, pathlib, collections, re
out, equiv_path = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
equivalent = set()
if equiv_path.exists():
    for line in equiv_path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            equivalent.add(line.split(" # ")[0].strip())
per_file = collections.defaultdict(collections.Counter)
missed = []
for kind in ["caught", "missed", "timeout", "unviable"]:
    for f in sorted(out.glob(f"*/mutants.out/{kind}.txt")):
        for line in f.read_text().splitlines():
            m = re.match(r"^(.*?):\d+:\d+: (.*)$", line.strip())
            if not m:
                continue
            file, what = m.group(1), m.group(2)
            per_file[file][kind] += 1
            if kind == "missed":
                missed.append((f"{file}: {what}", f"{file}: {what}" in equivalent))
print(f'{"file":<40} {"caught":>6} {"missed":>6} {"timeout":>7} {"unviable":>8}  score')
total = collections.Counter()
for file, c in sorted(per_file.items()):
    total.update(c)
    scored = c["caught"] + c["missed"]
    score = f'{100 * c["caught"] / scored:.0f}%' if scored else "-"
    print(f'{file:<40} {c["caught"]:>6} {c["missed"]:>6} {c["timeout"]:>7} {c["unviable"]:>8}  {score}')
scored = total["caught"] + total["missed"]
print(f'{"total":<40} {total["caught"]:>6} {total["missed"]:>6} {total["timeout"]:>7} {total["unviable"]:>8}  '
      + (f'{100 * total["caught"] / scored:.0f}%' if scored else "-"))
for name, eq in missed:
    print(f'  missed{" (equivalent)" if eq else ""}: {name}')
unexplained = [n for n, eq in missed if not eq]
if unexplained:
    print(f"ci/mutants.sh: {len(unexplained)} missed mutant(s) not listed in {equiv_path}", file=sys.stderr)
    sys.exit(1)
if not per_file:
    print("ci/mutants.sh: no mutant was tested", file=sys.stderr)
    sys.exit(1)
EOF
