//! Every case of the catalog as a test: one trial per case instance, run
//! through the real `kharness` binary (so each case gets its own process and
//! namespaces, exactly as in `kharness run`).
//!
//! pass, xfail and xpass → ok; skip → ignored, with the case's reason; fail → failed,
//! with every mismatch. Without root the binary enters a user namespace by
//! itself; where that is impossible it exits 69 and every trial fails saying
//! so.

use std::process::Command;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kharness");

fn instances() -> Vec<String> {
    let out = Command::new(BIN)
        .args(["list", "--format", "json"])
        .output()
        .expect("run kharness list");
    assert!(
        out.status.success(),
        "kharness list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["case"].as_str().map(str::to_string))
        .collect()
}

fn run_case(name: &str) -> Result<Completion, Failed> {
    let out = Command::new(BIN)
        .args(["run", name, "--format", "json", "--jobs", "1"])
        .output()
        .map_err(|e| Failed::from(format!("cannot run kharness: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "result" && v["case"] == name);
    let Some(r) = result else {
        return Err(format!(
            "no result for {name} (exit {:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    };
    let reason = r["reason"].as_str().unwrap_or("").to_string();
    match r["outcome"].as_str() {
        Some("pass") | Some("xfail") | Some("xpass") => Ok(Completion::Completed),
        Some("skip") => Ok(Completion::ignored_with(reason)),
        _ => {
            let mut msg = format!("{name} failed: {reason}");
            for m in r["mismatches"].as_array().into_iter().flatten() {
                msg.push_str(&format!(
                    "\n  {}: expected {}, observed {} ({})",
                    m["counter"].as_str().unwrap_or("?"),
                    m["expected"].as_str().unwrap_or("?"),
                    m["observed"],
                    m["source"].as_str().unwrap_or("")
                ));
            }
            Err(msg.into())
        }
    }
}

fn main() {
    let args = Arguments::from_args();
    let trials = instances()
        .into_iter()
        .map(|name| {
            let n = name.clone();
            Trial::ignorable_test(name, move || run_case(&n))
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
