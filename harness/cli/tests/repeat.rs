//! No flakes: `kharness run --repeat N` runs the catalog N times, and every
//! case must give the same verdict every time (pass — or skip, with its
//! reason — in all N). The per-case table (runs, duration min/median/max,
//! outcome counts) is printed.
//!
//! `KHARNESS_REPEAT` sets N (default 5; ci/reliability.sh runs 50).
//! `KHARNESS_REPEAT_LOAD=1` keeps every CPU busy meanwhile with a second
//! process (stress-ng if installed, else shell busy loops).
//!
//! Also the `--repeat` contract: repetition numbers on results, one
//! `case_summary` per case, the human table, exit 1 when a repetition fails.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use serde_json::Value;

use common::*;

static SERIAL: Mutex<()> = Mutex::new(());

/// Busy loops on every CPU until dropped.
struct Load(Vec<Child>, String);

impl Load {
    fn start() -> Load {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        if let Ok(c) = Command::new("stress-ng")
            .args(["--cpu", &cpus.to_string(), "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            return Load(vec![c], format!("stress-ng --cpu {cpus}"));
        }
        let kids = (0..cpus)
            .map(|_| {
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .expect("sh")
            })
            .collect();
        Load(kids, format!("{cpus} shell busy loops"))
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for c in &mut self.0 {
            // stress-ng's workers are its children: its group goes with it.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            );
            let _ = c.wait();
        }
    }
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn every_case_gives_the_same_verdict_every_time() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let n = env_usize("KHARNESS_REPEAT", 5);
    let load = (env_usize("KHARNESS_REPEAT_LOAD", 0) > 0).then(Load::start);
    let t = std::time::Instant::now();
    let (code, out, err) = kharness(&["run", "--repeat", &n.to_string(), "--format", "json"]);
    let wall = t.elapsed();
    let under = load
        .as_ref()
        .map(|l| format!(", under load ({})", l.1))
        .unwrap_or_default();
    drop(load);
    let lines = json_lines(&out);
    let summaries: Vec<&Value> = lines.iter().filter(|v| v["type"] == "case_summary").collect();
    let cases = lines[0]["cases"].as_u64().unwrap() as usize;
    assert_eq!(lines[0]["repeat"], n as u64);
    assert_eq!(summaries.len(), if n > 1 { cases } else { 0 });
    eprintln!("repeat: kharness run --repeat {n}{under}: {:.1} s", wall.as_secs_f64());
    eprintln!(
        "  {:<32} {:>5} {:>6} {:>6} {:>6}  outcomes",
        "case", "runs", "min", "median", "max"
    );
    let mut flaky = Vec::new();
    for s in &summaries {
        let (runs, passed, failed, skipped, xfailed, xpassed) = (
            s["runs"].as_u64().unwrap(),
            s["passed"].as_u64().unwrap(),
            s["failed"].as_u64().unwrap(),
            s["skipped"].as_u64().unwrap(),
            s["xfailed"].as_u64().unwrap(),
            s["xpassed"].as_u64().unwrap(),
        );
        let d = &s["duration_ms"];
        eprintln!(
            "  {:<32} {:>5} {:>6} {:>6} {:>6}  {passed} pass, {failed} fail, {skipped} skip, {xfailed} xfail, {xpassed} xpass",
            s["case"].as_str().unwrap(),
            runs,
            d["min"].as_u64().unwrap_or(0),
            d["median"].as_u64().unwrap_or(0),
            d["max"].as_u64().unwrap_or(0)
        );
        let same = runs == n as u64 && failed == 0 && (passed + xfailed == runs || skipped == runs || xpassed == runs);
        if !same {
            let reasons: Vec<String> = lines
                .iter()
                .filter(|r| r["type"] == "result" && r["case"] == s["case"] && r["outcome"] != "pass")
                .map(|r| {
                    format!(
                        "#{} {}: {}",
                        r["repetition"],
                        r["outcome"],
                        r["reason"].as_str().unwrap_or("")
                    )
                })
                .collect();
            flaky.push(format!("{}: {}", s["case"].as_str().unwrap(), reasons.join("; ")));
        }
    }
    assert!(
        flaky.is_empty(),
        "cases that did not give the same verdict in all {n} runs:\n  {}",
        flaky.join("\n  ")
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn repeat_reports_each_repetition_and_fails_if_one_fails() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // Passing: each result carries its repetition; human output ends with the table.
    let (code, out, err) = kharness(&["run", "tcp.refused", "unix.oob", "--repeat", "3"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 cases × 3 repetitions"), "{out}");
    assert!(out.contains("tcp.refused #3"), "{out}");
    let table = out
        .split("per case over 3 repetitions:")
        .nth(1)
        .unwrap_or_else(|| panic!("no per-case table: {out}"));
    for c in ["tcp.refused", "unix.oob"] {
        let row = table
            .lines()
            .find(|l| l.trim_start().starts_with(c))
            .unwrap_or_else(|| panic!("no row for {c}: {table}"));
        assert!(
            row.contains(" 3 ") && row.contains("3 passed") && row.contains(" ms "),
            "{row}"
        );
    }
    assert!(out.contains("6 passed, 0 failed"), "{out}");

    // Failing: cases killed at a hundredth of their timeout fail in every
    // repetition; the run exits 1 and the summary names the repetitions.
    let (code, out, _) = kharness(&[
        "run",
        "tcp.drain[loopback]",
        "--repeat",
        "2",
        "--timeout-scale",
        "0.001",
        "--format",
        "json",
    ]);
    assert_eq!(code, 1);
    let lines = json_lines(&out);
    let reps: Vec<u64> = lines
        .iter()
        .filter(|v| v["type"] == "result" && v["case"] == "tcp.drain[loopback]")
        .map(|v| v["repetition"].as_u64().unwrap())
        .collect();
    assert_eq!(
        {
            let mut r = reps;
            r.sort();
            r
        },
        [1, 2]
    );
    let drain = lines
        .iter()
        .find(|v| v["type"] == "case_summary" && v["case"] == "tcp.drain[loopback]")
        .expect("a case_summary");
    assert_eq!(
        (drain["runs"].as_u64(), drain["failed"].as_u64()),
        (Some(2), Some(2)),
        "{drain}"
    );
    assert_eq!(drain["failed_repetitions"], serde_json::json!([1, 2]));
    let d = &drain["duration_ms"];
    assert!(
        d["min"].as_u64() <= d["median"].as_u64() && d["median"].as_u64() <= d["max"].as_u64(),
        "{d}"
    );
    let summary = lines.last().unwrap();
    assert_eq!(
        (summary["type"].as_str(), summary["failed"].as_u64()),
        (Some("summary"), Some(2)),
        "{summary}"
    );
}
