//! The command line's contract: exit codes, clear errors with nothing left
//! behind, and the machine-readable formats.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kharness");

fn kharness(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run kharness");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kharness-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn bad_input_is_exit_2_with_a_message_and_nothing_created() {
    let dir = tmpdir("bad");
    let junit_in_missing_dir = dir.join("no/such/dir/report.xml");
    let junit_dir = dir.to_str().unwrap().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", "no.such.case"], "no case matches `no.such.case`"),
        (vec!["run", ""], "empty filter"),
        (vec!["run", "--jobs", "0"], "--jobs 0 is out of range"),
        (vec!["run", "--jobs", "-3"], "--jobs -3 is out of range"),
        (vec!["run", "--jobs", "100000"], "--jobs 100000 is out of range"),
        (vec!["run", "--jobs", "two"], "invalid value"),
        (vec!["run", "--timeout-scale", "0"], "--timeout-scale"),
        (vec!["run", "--junit", &junit_dir], "is a directory"),
        (
            vec!["run", "--junit", junit_in_missing_dir.to_str().unwrap()],
            "does not exist",
        ),
        (vec!["explain", "tcp.nope"], "no case `tcp.nope`"),
        (vec!["list", "zzz*"], "no case matches"),
        (vec!["frobnicate"], "unrecognized subcommand"),
        (vec!["run", "--cases", "0"], "--cases 0 is out of range"),
        (vec!["run", "--seed", "-1"], "unexpected argument '-1'"),
        (vec!["run", "--seed", "x"], "invalid value"),
        (vec!["explore", "--time", "0s"], "out of range"),
        (vec!["explore", "--time", "5 fortnights"], "unknown unit"),
        (vec!["explore", "--time", "soon"], "not a duration"),
        (vec!["explore", "tcp.fill"], "no property case"),
        (vec!["explore", "--cases", "0"], "--cases 0 is out of range"),
        (vec!["matrix", "host", "--explore", "1x"], "--explore"),
        (
            vec!["matrix", "host", "--case", "tcp.fill", "--explore", "5s"],
            "no property case",
        ),
    ];
    for (args, needle) in cases {
        let (code, _out, err) = kharness(&args);
        assert_eq!(code, 2, "{args:?} should exit 2; stderr: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: stderr should mention `{needle}`: {err}"
        );
        assert!(
            err.lines().filter(|l| !l.trim().is_empty()).count() <= 4,
            "{args:?}: a short message, got: {err}"
        );
    }
    // Nothing was created by the refused --junit paths.
    assert!(!dir.join("no").exists());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
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
    let dir = tmpdir("fmt");
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
            "kernel",
            "observations",
            "mismatches",
        ] {
            assert!(r.get(key).is_some(), "result lacks {key}: {r}");
        }
        assert_eq!(r["outcome"], "pass", "{r}");
        assert!(!r["observations"].as_object().unwrap().is_empty());
    }
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<testsuite") && xml.contains("tcp.refused"), "{xml}");

    let (code, out, _) = kharness(&["run", "tcp.refused", "--format", "tap"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("TAP version 13\n"), "{out}");
    assert!(out.contains("1..1") && out.contains("ok 1 tcp.refused"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The whole path of a failure `explore` finds, with the test-only fault
/// switch standing in for a kernel defect: shrunk, told in words, given its
/// replay command, saved to the deep regression file, and replayed by every
/// later `kharness run`, which then fails with the same counterexample.
#[test]
fn explore_finds_saves_and_run_replays() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("explore-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str], fault: bool| {
        let mut c = Command::new(BIN);
        c.args(args).env("KHARNESS_REGRESSIONS_DIR", &dir);
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
    let _ = std::fs::remove_dir_all(&dir);
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
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("known-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
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
    let _ = std::fs::remove_dir_all(&dir);
}
