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
