//! `--junit FILE`: JUnit XML (via `quick-junit`), one testsuite per family,
//! written when the run finishes. Skips are `<skipped>`, xfails and xpasses are passes
//! with the kernel difference (and its label) in `system-out`, failures carry every mismatch.
//! A case that failed and then passed on a retry (`--retries`) is a success
//! with one `<flakyFailure>` per failed attempt and `FLAKY` in `system-out`.
//! With `--repeat N` each repetition is a test case of its own, named
//! `case (repetition K)`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestRerun, TestSuite};

use super::Reporter;
use crate::case::{CaseReport, Outcome};
use crate::event::Event;

/// JUnit reporter; writes `path` on `RunFinished`.
pub struct Junit {
    path: PathBuf,
    kernel: String,
    repeat: usize,
    results: Vec<CaseReport>,
}

impl Junit {
    /// Will write to `path`.
    pub fn new(path: PathBuf) -> Self {
        Junit {
            path,
            kernel: String::new(),
            repeat: 1,
            results: Vec::new(),
        }
    }

    /// Builds the XML for the results so far.
    pub fn to_xml(&self, total: Duration) -> String {
        let mut report = Report::new(format!("kharness on {}", self.kernel));
        report.set_time(total);
        let mut suites: BTreeMap<String, Vec<&CaseReport>> = BTreeMap::new();
        for r in &self.results {
            let family = r.case.split('.').next().unwrap_or("cases").to_string();
            suites.entry(family).or_default().push(r);
        }
        for (family, rs) in suites {
            let mut suite = TestSuite::new(family.clone());
            for r in rs {
                let status = match r.outcome {
                    Outcome::Pass | Outcome::Xfail | Outcome::Xpass => TestCaseStatus::success(),
                    Outcome::Skip => {
                        let mut s = TestCaseStatus::skipped();
                        s.set_message(r.reason.clone().unwrap_or_default());
                        s
                    }
                    Outcome::Fail => {
                        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                        s.set_message(r.reason.clone().unwrap_or_default());
                        let body: Vec<String> = r.mismatches.iter().map(|m| m.to_string()).collect();
                        s.set_description(body.join("\n"));
                        s
                    }
                };
                let name = if self.repeat > 1 {
                    format!("{} (repetition {})", r.case, r.repetition)
                } else {
                    r.case.clone()
                };
                let mut status = status;
                add_attempts(&mut status, r);
                let mut tc = TestCase::new(name, status);
                tc.set_classname(format!("kharness.{family}"));
                tc.set_time(Duration::from_millis(r.duration_ms));
                tc.set_assertions(r.checks);
                if r.is_flaky() {
                    tc.set_system_out(format!(
                        "FLAKY: failed {} time(s), then {}",
                        r.attempts.len(),
                        r.outcome.label()
                    ));
                } else if matches!(r.outcome, Outcome::Xfail | Outcome::Xpass) {
                    tc.set_system_out(format!(
                        "{}: {}",
                        r.outcome.label(),
                        r.reason.clone().unwrap_or_default()
                    ));
                }
                suite.add_test_case(tc);
            }
            report.add_test_suite(suite);
        }
        report.to_string().unwrap_or_default()
    }
}

/// The failed attempts of a retried case (`--retries`), as JUnit reruns:
/// `<flakyFailure>` under a test that then passed, `<rerunFailure>` under
/// one that failed every time.
pub fn add_attempts(status: &mut TestCaseStatus, r: &CaseReport) {
    for a in &r.attempts {
        let mut rerun = TestRerun::new(NonSuccessKind::Failure);
        rerun.set_time(Duration::from_millis(a.duration_ms));
        rerun.set_message(format!(
            "attempt {}: {}",
            a.attempt,
            a.reason.clone().unwrap_or_default()
        ));
        let body: Vec<String> = a.mismatches.iter().map(|m| m.to_string()).collect();
        rerun.set_description(body.join("\n"));
        status.add_rerun(rerun);
    }
}

impl Reporter for Junit {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        match event {
            Event::RunStarted(h) => {
                self.kernel = h.kernel.release.clone();
                self.repeat = h.repeat;
            }
            Event::CaseFinished(r) => {
                // The XML holds no observations: keep the memory of long
                // (`--repeat`) runs to what it needs.
                let mut r = r.clone();
                r.observations.clear();
                r.notes.clear();
                for a in &mut r.attempts {
                    a.observations.clear();
                }
                self.results.push(r);
            }
            Event::RunFinished(s) => {
                let xml = self.to_xml(Duration::from_millis(s.duration_ms));
                std::fs::write(&self.path, xml)?;
            }
            Event::CaseStarted { .. } | Event::CaseSummary(_) => {}
        }
        Ok(())
    }
}
