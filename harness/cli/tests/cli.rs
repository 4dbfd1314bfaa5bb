//! The command line's contract: exit codes, clear errors with nothing left
//! behind, and the machine-readable formats.

use std::process::Command;

use rstest::rstest;
use serde_json::Value;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_kharness");

fn kharness(args: &[&str]) -> (i32, String, String) {
    output(Command::new(BIN).args(args))
}

fn output(c: &mut Command) -> (i32, String, String) {
    let out = c.output().expect("run kharness");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh directory under the temp dir, removed when the guard drops (even
/// on a failed assertion). Only kharness itself sees it: case processes mount
/// a private tmpfs over the temp dir.
fn tmpdir(tag: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("kharness-test-{tag}-"))
        .tempdir()
        .unwrap()
}

/// A fresh directory case processes see too (not under the temp dir),
/// removed when the guard drops.
fn shared_dir(tag: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("{tag}-"))
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

/// Each row is refused with exit 2 and a short message naming the fault,
/// and nothing is created: not where the refused `--junit` paths point, not
/// in the working directory (`{dir}` in a row is a fresh empty directory,
/// also the working directory of the run).
#[rstest]
#[case::unknown_case(&["run", "no.such.case"], "no case matches `no.such.case`")]
#[case::empty_filter(&["run", ""], "empty filter")]
#[case::jobs_zero(&["run", "--jobs", "0"], "--jobs 0 is out of range")]
#[case::jobs_negative(&["run", "--jobs", "-3"], "--jobs -3 is out of range")]
#[case::jobs_huge(&["run", "--jobs", "100000"], "--jobs 100000 is out of range")]
#[case::jobs_not_a_number(&["run", "--jobs", "two"], "invalid value")]
#[case::timeout_scale_zero(&["run", "--timeout-scale", "0"], "--timeout-scale")]
#[case::junit_is_a_directory(&["run", "--junit", "{dir}"], "is a directory")]
#[case::junit_in_a_missing_directory(&["run", "--junit", "{dir}/no/such/dir/report.xml"], "does not exist")]
#[case::explain_unknown_case(&["explain", "tcp.nope"], "no case `tcp.nope`")]
#[case::list_matches_nothing(&["list", "zzz*"], "no case matches")]
#[case::unknown_subcommand(&["frobnicate"], "unrecognized subcommand")]
#[case::cases_zero(&["run", "--cases", "0"], "--cases 0 is out of range")]
#[case::seed_negative(&["run", "--seed", "-1"], "unexpected argument '-1'")]
#[case::seed_not_a_number(&["run", "--seed", "x"], "invalid value")]
#[case::explore_time_zero(&["explore", "--time", "0s"], "out of range")]
#[case::explore_time_unknown_unit(&["explore", "--time", "5 fortnights"], "unknown unit")]
#[case::explore_time_not_a_duration(&["explore", "--time", "soon"], "not a duration")]
#[case::explore_not_a_property_case(&["explore", "tcp.fill"], "no property case")]
#[case::explore_cases_zero(&["explore", "--cases", "0"], "--cases 0 is out of range")]
#[case::matrix_explore_bad_duration(&["matrix", "host", "--explore", "1x"], "--explore")]
#[case::matrix_explore_not_a_property_case(
    &["matrix", "host", "--case", "tcp.fill", "--explore", "5s"],
    "no property case"
)]
fn bad_input_is_exit_2_with_a_message_and_nothing_created(#[case] args: &[&str], #[case] needle: &str) {
    let tmp = tmpdir("bad");
    let dir = tmp.path();
    let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", dir.to_str().unwrap())).collect();
    let (code, _out, err) = output(Command::new(BIN).args(&args).current_dir(dir));
    assert_eq!(code, 2, "{args:?} should exit 2; stderr: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: stderr should mention `{needle}`: {err}"
    );
    assert!(
        err.lines().filter(|l| !l.trim().is_empty()).count() <= 4,
        "{args:?}: a short message, got: {err}"
    );
    // Nothing was created, by the refused --junit paths or anything else.
    assert!(!dir.join("no").exists());
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0, "{args:?} left files");
}

#[test]
fn list_and_explain_cover_every_case() {
    let (code, out, _) = kharness(&["list", "--format", "json"]);
    assert_eq!(code, 0);
    let ids: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for tcp in [
        "tcp.fill",
        "tcp.drain",
        "tcp.ops_property",
        "tcp.notsent_lowat",
        "tcp.sndbuf_setget",
        "tcp.info_diag",
        "tcp.refused",
        "tcp.loss",
    ] {
        assert!(ids.iter().any(|i| i == tcp), "{tcp} missing from kharness list");
    }
    let mut uniq = ids.clone();
    uniq.dedup();
    for id in uniq {
        let (code, out, err) = kharness(&["explain", &id]);
        assert_eq!(code, 0, "{err}");
        for section in [
            "Drives:",
            "Observes:",
            "Predicts:",
            "Why:",
            "Kernel versions:",
            "By hand:",
        ] {
            assert!(out.contains(section), "explain {id} lacks {section}");
        }
    }
}

#[test]
fn json_tap_and_junit_reports() {
    let tmp = tmpdir("fmt");
    let dir = tmp.path();
    let junit = dir.join("r.xml");
    let (code, out, err) = kharness(&[
        "run",
        "tcp.refused",
        "tcp.sndbuf_setget",
        "--format",
        "json",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    assert_eq!(lines.first().unwrap()["type"], "header");
    assert!(lines[0]["kernel"]["tcp_info_len"].as_u64().unwrap() >= 104);
    assert_eq!(lines.last().unwrap()["type"], "summary");
    let results: Vec<&Value> = lines.iter().filter(|l| l["type"] == "result").collect();
    assert_eq!(results.len(), 2);
    for r in results {
        for key in [
            "case",
            "outcome",
            "reason",
            "duration_ms",
            "cpu_ms",
            "kernel",
            "observations",
            "mismatches",
        ] {
            assert!(r.get(key).is_some(), "result lacks {key}: {r}");
        }
        // The case process's own CPU time (wait4): some, and never more
        // than its wall time allows on the CPUs there are.
        let (cpu, wall) = (r["cpu_ms"].as_u64().unwrap(), r["duration_ms"].as_u64().unwrap());
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        assert!(cpu <= wall * cpus + 10, "{r}");
        assert_eq!(r["outcome"], "pass", "{r}");
        assert!(!r["observations"].as_object().unwrap().is_empty());
    }
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<testsuite") && xml.contains("tcp.refused"), "{xml}");

    let (code, out, _) = kharness(&["run", "tcp.refused", "--format", "tap"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("TAP version 13\n"), "{out}");
    assert!(out.contains("1..1") && out.contains("ok 1 tcp.refused"), "{out}");
}

/// The whole path of a failure `explore` finds, with the test-only fault
/// switch standing in for a kernel defect: shrunk, told in words, given its
/// replay command, saved to the deep regression file, and replayed by every
/// later `kharness run`, which then fails with the same counterexample.
#[test]
fn explore_finds_saves_and_run_replays() {
    // Under the temp dir, which case processes hide behind their private
    // tmpfs (as they hide a checkout under /tmp): they read the regression
    // files before that, and the commands write them.
    let tmp = tmpdir("explore");
    let dir = tmp.path();
    let run = |args: &[&str], fault: bool| {
        let mut c = Command::new(BIN);
        c.args(args).env("KHARNESS_REGRESSIONS_DIR", dir);
        if fault {
            c.env("KHARNESS_TEST_PROPERTY_FAULT", "unix.fd_property");
        }
        let out = c.output().expect("run kharness");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // --jobs 1: one run a round, so the finding and the saved seed are one.
    let (code, out) = run(
        &[
            "explore",
            "unix.fd_property",
            "--time",
            "20s",
            "--seed",
            "5",
            "--jobs",
            "1",
        ],
        true,
    );
    assert_eq!(code, 1, "a finding exits 1: {out}");
    for needle in [
        "FOUND  unix.fd_property (round 1, seed ",
        "minimal counterexample",
        "socketpair",
        "first disagreement: test-only fault",
        "replay: kharness run unix.fd_property --seed ",
    ] {
        assert!(out.contains(needle), "explore output lacks `{needle}`:\n{out}");
    }
    assert!(dir.join("unix_fd_property.deep.txt").is_file(), "the finding was saved");
    std::fs::remove_file(dir.join("unix_fd_property.deep.txt")).unwrap();
    let (_, json) = run(
        &[
            "explore",
            "unix.fd_property",
            "--time",
            "20s",
            "--seed",
            "5",
            "--jobs",
            "1",
            "--format",
            "json",
        ],
        true,
    );
    let summary: Value = serde_json::from_str(json.lines().last().unwrap()).unwrap();
    let found = &summary["cases"][0]["found"];
    let words = found["counterexample"].as_str().unwrap().to_string();
    // The saved seed is replayed by run, with the deep generator: the same
    // minimal counterexample, before any sequence of its own.
    let (code, json) = run(&["run", "unix.fd_property", "--cases", "1", "--format", "json"], true);
    assert_eq!(code, 1);
    let result: Value = json
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["type"] == "result")
        .unwrap();
    assert_eq!(result["outcome"], "fail");
    assert_eq!(
        result["observations"]["property.counterexample"].as_str(),
        Some(words.as_str())
    );
    // Without the fault the replayed sequence meets the model.
    let (code, _) = run(&["run", "unix.fd_property", "--cases", "1"], false);
    assert_eq!(code, 0);
    // Only a failure is saved: unix.oob_property names its MSG_OOB defects
    // where the kernel has them (xfail) and passes elsewhere; either way
    // nothing is saved for every later run to replay. (That a property
    // failure the case then names is kept in the report and not written
    // is prop.rs's explore_keeps_a_failure_in_the_report_not_in_a_file.)
    let (code, out) = run(&["explore", "unix.oob_property", "--time", "3s", "--seed", "9"], false);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("unix.oob_property"), "{out}");
    assert!(
        !dir.join("unix_oob_property.deep.txt").exists(),
        "an xfail was saved for replay:\n{out}"
    );
    // `run` saves a failure of the quick generator to the quick file.
    std::fs::remove_file(dir.join("unix_fd_property.deep.txt")).unwrap();
    let (code, out) = run(&["run", "unix.fd_property"], true);
    assert_eq!(code, 1, "{out}");
    assert!(dir.join("unix_fd_property.txt").is_file(), "{out}");
    assert!(!dir.join("unix_fd_property.deep.txt").exists(), "{out}");
}

#[test]
fn explore_spends_its_budget_and_prints_every_seed() {
    let (code, out, err) = kharness(&["explore", "tcp.sndbuf_setget", "--time", "2s", "--seed", "77"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("seed 77"), "{out}");
    // Every run prints its seed: 77, 78, … (several runs a round when
    // fewer cases than jobs are left).
    let mut seeds: Vec<u64> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("round "))
        .map(|l| l.split_whitespace().nth(3).unwrap().parse().unwrap())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "{out}");
    assert_eq!(seeds, (77..77 + seeds.len() as u64).collect::<Vec<_>>(), "{out}");
}

/// Known issues as data: the built-in list names route.state_machine's IPv6
/// dump defect where the kernel shows it; a team's entry whose observation
/// passes is an xpass, which `--strict-xpass` turns into exit 1; a bad list
/// is refused before anything runs.
#[test]
fn known_issues_match_xpass_and_refuse_bad_lists() {
    let tmp = shared_dir("known");
    let dir = tmp.path();
    let team = dir.join("team.toml");
    std::fs::write(
        &team,
        r#"[[issue]]
id = "test-only-refused-rst"
case = "tcp.refused"
observations = ["server.Tcp.OutRsts"]
evidence = "test-only entry"
reason = "an entry whose observation passes on every kernel"
"#,
    )
    .unwrap();
    let team_s = team.to_str().unwrap();
    let (code, out, err) = kharness(&["run", "tcp.refused", "--known-issues", team_s, "--format", "json"]);
    assert_eq!(code, 0, "xpass is not a failure: {out}{err}");
    let result: Value = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["type"] == "result")
        .unwrap();
    assert_eq!(result["outcome"], "xpass", "{result}");
    assert!(result["reason"].as_str().unwrap().contains("test-only-refused-rst"));
    let (code, _, _) = kharness(&["run", "tcp.refused", "--known-issues", team_s, "--strict-xpass"]);
    assert_eq!(code, 1, "--strict-xpass makes an xpass fail the run");

    // explain lists the built-in entry of a case.
    let (_, out, _) = kharness(&["explain", "route.state_machine"]);
    assert!(out.contains("ipv6-dump-omits-route-between-ecmp-siblings"), "{out}");

    // A bad list: exit 2, the file and the fault named, nothing run.
    std::fs::write(
        &team,
        "[[issue]]\nid = \"x\"\ncase = \"tcp.refused\"\nevidence = \"e\"\nreason = \"r\"\nfrom = \"six\"\n",
    )
    .unwrap();
    let (code, out, err) = kharness(&["run", "tcp.refused", "--known-issues", team_s]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("team.toml") && err.contains("not a number"), "{err}");
    assert!(out.is_empty());
}
