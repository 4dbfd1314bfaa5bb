//! `--format kcidb`: one [KCIDB](https://docs.kernelci.org/kcidb/)
//! submission (schema 5.3) for a run or a matrix, for kernel CI systems
//! that gather results from many origins.
//!
//! Per kernel: a checkout and a build (the kernel as packaged or built:
//! release, architecture, config name = the release's flavour, like
//! `cloud-amd64`). Per case instance: a test with path
//! `kharness.FAMILY.CASE[.VARIANT]` and status `PASS`, `FAIL` (a prediction
//! failed, or the kernel crashed during the case), `SKIP`, `ERROR` (the
//! harness broke in the case: no mismatch, only a harness error), or `MISS`
//! (a case that ran on other kernels but not on this one, because it did not
//! complete). The mismatches are the test's log excerpt. An xfail is a
//! `FAIL` with an incident of the KCIDB issue named after its known kernel
//! difference; a flaky case is a `PASS` with its failed attempts in `misc`.
//! Every id starts with the origin (`kharness:` unless `--kcidb-origin`).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use kharness::case::{CaseReport, Outcome};

use crate::results::{case_names, KernelRun, KernelStatus, Matrix};

/// The schema version this module writes.
pub const VERSION: (u32, u32) = (5, 3);

/// The default origin.
pub const DEFAULT_ORIGIN: &str = "kharness";

/// KCIDB limits a log excerpt to 16 KiB.
const EXCERPT_MAX: usize = 16 * 1024;

/// Checks an origin name (KCIDB: `^[a-z0-9_]+$`).
pub fn validate_origin(origin: &str) -> Result<(), String> {
    if !origin.is_empty()
        && origin
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(())
    } else {
        Err(format!(
            "--kcidb-origin `{origin}`: KCIDB origins are lower-case letters, digits and `_` (like `kharness` or `my_ci`)"
        ))
    }
}

/// One segment of a test path (KCIDB: `[a-zA-Z0-9_-]+`).
fn path_segment(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        "_".into()
    } else {
        out
    }
}

/// `kharness.FAMILY.CASE[.VARIANT]` for the result name `family.case[variant]`.
pub fn test_path(case: &str) -> String {
    let (id, variant) = match case.split_once('[') {
        Some((id, rest)) => (id, Some(rest.trim_end_matches(']'))),
        None => (case, None),
    };
    let mut parts = vec!["kharness".to_string()];
    parts.extend(id.split('.').map(path_segment));
    if let Some(v) = variant {
        parts.push(path_segment(v));
    }
    parts.join(".")
}

/// The flavour of a Debian-style release (`6.1.0-47-cloud-amd64` →
/// `cloud-amd64`): the dash-separated parts after the version and ABI
/// numbers; empty when there are none.
pub fn flavour(release: &str) -> String {
    let parts: Vec<&str> = release.split('-').collect();
    let first_word = parts
        .iter()
        .skip(1)
        .position(|p| p.chars().next().is_some_and(|c| c.is_ascii_alphabetic()))
        .map(|i| i + 1);
    match first_word {
        Some(i) => parts[i..].join("-"),
        None => String::new(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(20);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n… (truncated)", &s[..end])
}

/// Removes NUL characters, which no KCIDB string may hold.
fn clean(s: &str) -> String {
    s.replace('\0', "")
}

/// The known kernel difference an xfail names: `NAME: evidence`.
fn known_issue(r: &CaseReport) -> Option<(String, String)> {
    let reason = r.reason.as_deref()?;
    let (name, evidence) = reason.split_once(": ").unwrap_or((reason, ""));
    Some((name.trim().to_string(), evidence.trim().to_string()))
}

/// The KCIDB status of a result on a kernel.
pub fn status(r: &CaseReport) -> &'static str {
    match r.outcome {
        Outcome::Pass => "PASS",
        Outcome::Skip => "SKIP",
        Outcome::Xfail => "FAIL",
        Outcome::Fail if !r.mismatches.is_empty() => "FAIL",
        // The kernel crashed or hung while the case ran: the code failed.
        Outcome::Fail if r.reason.as_deref().is_some_and(|x| x.starts_with("the kernel ")) => "FAIL",
        Outcome::Fail => "ERROR",
        // Outcomes added later: the tested code was not found faulty.
        #[allow(unreachable_patterns)]
        _ => "PASS",
    }
}

fn log_excerpt(r: &CaseReport) -> String {
    let mut lines: Vec<String> = r.mismatches.iter().map(|m| m.to_string()).collect();
    if lines.is_empty() {
        lines.extend(r.reason.clone());
    }
    for a in &r.attempts {
        lines.push(format!(
            "attempt {} ({}): {}",
            a.attempt,
            a.outcome.label(),
            a.reason.clone().unwrap_or_default()
        ));
    }
    truncate(&clean(&lines.join("\n")), EXCERPT_MAX)
}

/// Builds the submission. `run_id` makes the test ids of this run unique
/// (checkouts and builds are named by kernel and release, so the same
/// kernel in two runs is one build). `catalog` is the case order used when
/// no kernel produced a result (for `MISS` tests).
pub fn submission(m: &Matrix, origin: &str, run_id: &str, catalog: &[String]) -> Value {
    let mut checkouts = Vec::new();
    let mut builds = Vec::new();
    let mut tests = Vec::new();
    let mut issues: BTreeMap<String, Value> = BTreeMap::new();
    let mut incidents = Vec::new();
    let mut expected = case_names(m, catalog);
    if expected.is_empty() {
        expected = catalog.to_vec();
    }
    for k in &m.kernels {
        let release = k.release.clone().unwrap_or_default();
        let key = if release.is_empty() {
            k.name.clone()
        } else {
            format!("{}:{release}", k.name)
        };
        let checkout_id = format!("{origin}:{key}");
        let build_id = format!("{origin}:{key}");
        checkouts.push(checkout(k, origin, &checkout_id, &release));
        builds.push(build(k, origin, &build_id, &checkout_id, &release));
        let environment = json!({
            "comment": clean(&match k.accel.as_str() {
                "" | "native" => format!("kernel {} on the host", k.name),
                accel => format!("kernel {} in a QEMU guest ({accel})", k.name),
            }),
            "misc": {"kernel": k.name, "accel": k.accel},
        });
        for r in &k.results {
            let rep = &r.report;
            let test_id = format!("{origin}:{run_id}:{}:{}:{}", k.name, rep.case, rep.repetition);
            let mut misc = json!({
                "outcome": rep.verdict(),
                "checks": rep.checks,
                "kernel_release": rep.kernel,
            });
            if rep.repetition > 1 {
                misc["repetition"] = json!(rep.repetition);
            }
            if !rep.attempts.is_empty() {
                misc["flaky"] = json!(rep.is_flaky());
                misc["attempts"] = json!(rep
                    .attempts
                    .iter()
                    .map(|a| json!({
                        "attempt": a.attempt,
                        "outcome": a.outcome.label().to_lowercase(),
                        "reason": a.reason.as_deref().map(clean),
                        "duration_ms": a.duration_ms,
                    }))
                    .collect::<Vec<_>>());
            }
            let mut test = json!({
                "id": clean(&test_id),
                "origin": origin,
                "build_id": clean(&build_id),
                "path": test_path(&rep.case),
                "status": status(rep),
                "duration": rep.duration_ms as f64 / 1000.0,
                "environment": environment,
                "misc": misc,
            });
            let excerpt = log_excerpt(rep);
            if !excerpt.is_empty() {
                test["log_excerpt"] = json!(excerpt);
            }
            if let Some(reason) = k.reason_of(rep) {
                test["comment"] = json!(truncate(&clean(&reason), 1024));
            }
            if rep.outcome == Outcome::Xfail {
                if let Some((name, evidence)) = known_issue(rep) {
                    let issue_id = clean(&format!("{origin}:{name}"));
                    issues.entry(issue_id.clone()).or_insert_with(|| {
                        json!({
                            "id": issue_id,
                            "version": 1,
                            "origin": origin,
                            "report_subject": clean(&name),
                            "comment": clean(&evidence),
                            "culprit": {"code": true, "tool": false, "harness": false},
                            "misc": {"kind": "known kernel difference"},
                        })
                    });
                    incidents.push(json!({
                        "id": clean(&format!("{test_id}:{name}")),
                        "origin": origin,
                        "issue_id": issue_id,
                        "issue_version": 1,
                        "build_id": clean(&build_id),
                        "test_id": clean(&test_id),
                        "present": true,
                        "comment": clean(&format!("{} on {}", rep.case, k.name)),
                    }));
                }
            }
            tests.push(test);
        }
        if k.status != KernelStatus::Completed {
            let problem = k.problem.clone().unwrap_or_else(|| k.status.label().to_string());
            for case in &expected {
                if k.result(case).is_some() {
                    continue;
                }
                tests.push(json!({
                    "id": clean(&format!("{origin}:{run_id}:{}:{case}:1", k.name)),
                    "origin": origin,
                    "build_id": clean(&build_id),
                    "path": test_path(case),
                    "status": "MISS",
                    "comment": truncate(&clean(&format!("not run: the kernel {}: {problem}", k.status.label())), 1024),
                    "environment": environment,
                }));
            }
        }
    }
    json!({
        "version": {"major": VERSION.0, "minor": VERSION.1},
        "checkouts": checkouts,
        "builds": builds,
        "tests": tests,
        "issues": issues.into_values().collect::<Vec<_>>(),
        "incidents": incidents,
    })
}

fn checkout(k: &KernelRun, origin: &str, id: &str, release: &str) -> Value {
    let mut c = json!({
        "id": clean(id),
        "origin": origin,
        "valid": !release.is_empty() || k.status == KernelStatus::Completed,
        "misc": {"kernel": k.name, "source": clean(&k.source)},
    });
    let comment = if release.is_empty() {
        format!("kernel {} ({})", k.name, k.description)
    } else {
        format!("Linux {release} ({})", k.description)
    };
    c["comment"] = json!(clean(&comment));
    if k.source.starts_with("linux-image") || k.description.to_lowercase().contains("debian") {
        c["tree_name"] = json!("debian");
    }
    c
}

fn build(k: &KernelRun, origin: &str, id: &str, checkout_id: &str, release: &str) -> Value {
    let flav = flavour(release);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x86_64",
        "aarch64" => "arm64",
        other => other,
    };
    let mut b = json!({
        "id": clean(id),
        "origin": origin,
        "checkout_id": clean(checkout_id),
        "architecture": path_segment(arch).to_lowercase().replace('-', "_"),
        "config_name": clean(if flav.is_empty() { &k.name } else { &flav }),
        "comment": clean(&format!("{} ({})", if release.is_empty() { &k.name } else { release }, k.source)),
        "misc": {
            "kernel": k.name,
            "release": release,
            "flavour": flav,
            "source": clean(&k.source),
            "status": k.status.label(),
        },
    });
    if let Some(info) = &k.kernel {
        b["misc"]["tcp_info_len"] = json!(info.tcp_info_len);
    }
    // The kernel existed and booted (or failed to): a kernel that could
    // not be fetched has no build to speak of.
    b["status"] = json!(match k.status {
        KernelStatus::Completed | KernelStatus::Crashed | KernelStatus::TimedOut | KernelStatus::NoBoot => "PASS",
        KernelStatus::Config | KernelStatus::Unavailable => "MISS",
    });
    b
}

/// A new run id: the time and this process, so two runs' tests differ.
pub fn run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{now}-{}", std::process::id())
}

/// `kharness run --format kcidb`: gathers the run's results and writes the
/// submission when it finishes (the run is one kernel, `host`).
pub struct Reporter<W: std::io::Write> {
    out: W,
    origin: String,
    run_id: String,
    catalog: Vec<String>,
    kernel: KernelRun,
}

impl<W: std::io::Write> Reporter<W> {
    /// Writes to `out` with ids under `origin`; `catalog` is the selection.
    pub fn new(out: W, origin: &str, catalog: Vec<String>) -> Self {
        let mut kernel = KernelRun::new("host", 0, "the running kernel");
        kernel.source = "host".into();
        kernel.accel = "native".into();
        Reporter {
            out,
            origin: origin.to_string(),
            run_id: run_id(),
            catalog,
            kernel,
        }
    }
}

impl<W: std::io::Write> kharness::report::Reporter for Reporter<W> {
    fn event(&mut self, event: &kharness::event::Event) -> std::io::Result<()> {
        use kharness::event::Event;
        match event {
            Event::RunStarted(h) => {
                self.kernel.release = Some(h.kernel.release.clone());
                self.kernel.kernel = Some(h.kernel.clone());
            }
            Event::CaseFinished(r) => {
                let tcp_info_len = self.kernel.kernel.as_ref().map(|k| k.tcp_info_len).unwrap_or(0);
                self.kernel.results.push(crate::results::MatrixResult {
                    report: r.clone(),
                    tcp_info_len,
                });
            }
            Event::RunFinished(s) => {
                self.kernel.status = KernelStatus::Completed;
                self.kernel.timings.catalog_ms = s.duration_ms;
                let m = Matrix {
                    schema: crate::results::SCHEMA,
                    harness: env!("CARGO_PKG_VERSION").to_string(),
                    kernels: vec![self.kernel.clone()],
                    wall_ms: s.duration_ms,
                    shard: None,
                    differences: None,
                };
                let doc = submission(&m, &self.origin, &self.run_id, &self.catalog);
                writeln!(self.out, "{}", serde_json::to_string_pretty(&doc).unwrap_or_default())?;
                self.out.flush()?;
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::{report, sample};
    use kharness::model::Mismatch;

    #[test]
    fn paths_and_flavours() {
        assert_eq!(test_path("tcp.fill"), "kharness.tcp.fill");
        assert_eq!(test_path("tcp.fill[veth]"), "kharness.tcp.fill.veth");
        assert_eq!(test_path("raw.rp_filter[a b]"), "kharness.raw.rp_filter.a_b");
        assert_eq!(flavour("6.1.0-47-cloud-amd64"), "cloud-amd64");
        assert_eq!(flavour("6.12.57+deb13-amd64"), "amd64");
        assert_eq!(flavour("6.13.0-rc1"), "rc1");
        assert_eq!(flavour("6.18.44"), "");
        assert!(validate_origin("kharness").is_ok());
        assert!(validate_origin("My-CI").is_err());
        assert!(validate_origin("").is_err());
    }

    #[test]
    fn statuses() {
        let mut f = report("a.x", Outcome::Fail, Some("x: expected 1, observed 0"));
        assert_eq!(status(&f), "ERROR", "no mismatch: the harness broke");
        f.mismatches.push(Mismatch {
            counter: "x".into(),
            expected: "1".into(),
            observed: 0.into(),
            source: "s".into(),
        });
        assert_eq!(status(&f), "FAIL");
        let crashed = report("a.x", Outcome::Fail, Some("the kernel crashed during this case: oops"));
        assert_eq!(status(&crashed), "FAIL");
        assert_eq!(status(&report("a.x", Outcome::Skip, Some("no"))), "SKIP");
        assert_eq!(status(&report("a.x", Outcome::Pass, None)), "PASS");
    }

    #[test]
    fn submission_of_the_sample_matrix() {
        let m = sample();
        let doc = submission(&m, "kharness", "r1", &[]);
        assert_eq!(doc["version"], json!({"major": 5, "minor": 3}));
        let n = |k: &str| doc[k].as_array().unwrap().len();
        assert_eq!(n("checkouts"), m.kernels.len());
        assert_eq!(n("builds"), m.kernels.len());
        let results: usize = m.kernels.iter().map(|k| k.results.len()).sum();
        assert!(n("tests") >= results);
        for t in doc["tests"].as_array().unwrap() {
            assert!(t["id"].as_str().unwrap().starts_with("kharness:r1:"), "{t}");
            assert!(t["path"].as_str().unwrap().starts_with("kharness."), "{t}");
        }
        // The sample's xfail becomes an issue and an incident.
        assert_eq!(n("issues"), 1, "{}", doc["issues"]);
        assert_eq!(n("incidents"), 1);
        assert_eq!(doc["incidents"][0]["issue_id"], doc["issues"][0]["id"]);
        // A kernel that did not complete has MISS tests for what it did not run.
        let incomplete = m.kernels.iter().any(|k| k.status != KernelStatus::Completed);
        let miss = doc["tests"].as_array().unwrap().iter().any(|t| t["status"] == "MISS");
        assert_eq!(incomplete, miss);
    }
}
