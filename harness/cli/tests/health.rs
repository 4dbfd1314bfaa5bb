//! Kernel health: a kernel warning during a case fails it, quoting the
//! line, even when every counter matched; without one the case passes.
//!
//! The warning comes from the test switch `KHARNESS_TEST_KMSG_WARN=1`: the
//! runner writes a marked `WARNING: CPU: …` record to /dev/kmsg as each case
//! starts, and takes its own marked records (and no other user-space record)
//! as kernel records (harness/src/health.rs).

mod common;

use std::process::Command;

use serde_json::Value;

use common::*;

const LINE: &str = "WARNING: CPU: 0 PID: 1 at net/kharness/selftest.c:1 kharness_selftest+0x0/0x10";

/// The JSON lines of `kharness run ARGS`, with the switch on or off.
fn run(args: &[&str], switch: bool) -> (i32, Vec<Value>) {
    let mut c = Command::new(BIN);
    c.arg("run").args(args).args(["--format", "json"]);
    if switch {
        c.env("KHARNESS_TEST_KMSG_WARN", "1");
    } else {
        c.env_remove("KHARNESS_TEST_KMSG_WARN");
    }
    let out = c.output().expect("run kharness");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

/// Whether this process could read the kernel log (root, or dmesg_restrict=0).
fn kmsg_readable() -> bool {
    std::fs::File::open("/dev/kmsg").is_ok()
}

fn of_type<'a>(lines: &'a [Value], t: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["type"] == t).collect()
}

fn main() {
    common::run_tests(&[
        (
            "a_kernel_warning_fails_the_case_that_was_running",
            a_kernel_warning_fails_the_case_that_was_running,
        ),
        ("without_a_warning_the_case_passes", without_a_warning_the_case_passes),
    ]);
}

/// Root and a readable /dev/kmsg, or why not (the test is then ignored).
fn require_kmsg() -> TestResult {
    require_root("reading /dev/kmsg")?;
    if kmsg_readable() {
        Ok(())
    } else {
        not_run("/dev/kmsg cannot be read here")
    }
}

fn a_kernel_warning_fails_the_case_that_was_running() -> TestResult {
    require_kmsg()?;
    // Two repetitions: each must quote its own warning, once — not the
    // previous repetition's (the log is read from where the last drain
    // stopped, and from the end of the log at the start).
    let (code, lines) = run(&["tcp.refused", "--jobs", "1", "--repeat", "2"], true);
    assert_eq!(code, 1, "a warning must fail the run: {lines:?}");
    let header = &of_type(&lines, "header")[0];
    assert_eq!(header["health"]["kmsg"], true, "{header}");
    let results = of_type(&lines, "result");
    assert_eq!(results.len(), 2);
    for r in results {
        assert_eq!(r["outcome"], "fail", "{r}");
        // Every counter of the case itself matched: the only mismatch is
        // the kernel log's.
        let m = r["mismatches"].as_array().unwrap();
        assert_eq!(m.len(), 1, "{r}");
        assert_eq!(m[0]["counter"], "kernel.log");
        let quoted: Vec<&str> = m[0]["observed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(quoted.len(), 1, "exactly this case's warning: {quoted:?}");
        assert!(quoted[0].ends_with(LINE), "{quoted:?}");
        assert!(r["reason"].as_str().unwrap().contains("kharness_selftest"), "{r}");
    }
    // The human report quotes the line under the FAIL.
    let out = Command::new(BIN)
        .args(["run", "tcp.refused"])
        .env("KHARNESS_TEST_KMSG_WARN", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("kernel health: kernel log and taint watched"), "{text}");
    assert!(text.contains("FAIL") && text.contains(LINE), "{text}");
    Ok(())
}

fn without_a_warning_the_case_passes() -> TestResult {
    require_kmsg()?;
    let (code, lines) = run(&["tcp.refused"], false);
    let results = of_type(&lines, "result");
    assert_eq!(code, 0, "{results:?}");
    assert_eq!(results[0]["outcome"], "pass");
    assert_eq!(of_type(&lines, "header")[0]["health"]["kmsg"], true);
    Ok(())
}
