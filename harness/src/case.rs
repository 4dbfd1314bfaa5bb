//! What a case is, what it is given, and what it produces.
//!
//! A case is a [`CaseDef`]: its id (`family.case`), the documentation that
//! `kharness explain` prints, and a `run` function. `run` gets a [`Ctx`]
//! with the kernel facts, records observations and the model's predictions
//! through it, and returns `Ok(())` or a [`CaseError`] (skip, or a harness
//! error that prevented the case from observing anything). The runner turns
//! that into a [`CaseReport`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::kernel::KernelInfo;
use crate::model::{compare, Expect, Mismatch, Prediction, Value};
use crate::property::PropertySettings;

/// A case of the catalog.
#[derive(Debug, Clone, Copy)]
pub struct CaseDef {
    /// `family.case`, as in the catalog.
    pub id: &'static str,
    /// Variants run as separate results (`tcp.fill[veth]`); empty for one run.
    pub variants: &'static [&'static str],
    /// One line.
    pub summary: &'static str,
    /// What the case makes the kernel do.
    pub drives: &'static str,
    /// Which kernel interfaces it reads.
    pub observes: &'static str,
    /// What the model predicts.
    pub predicts: &'static str,
    /// Why the model is right: the kernel code or documentation behind it.
    pub why: &'static str,
    /// How the behaviour differs across kernel versions (or "none known").
    pub kernels: &'static str,
    /// The shell command closest to what the case observes.
    pub shell: &'static str,
    /// Catalog source (seed document).
    pub source: &'static str,
    /// Wall-clock limit for the case process.
    pub timeout: Duration,
    /// The scenario.
    pub run: fn(&mut Ctx) -> Result<(), CaseError>,
}

impl CaseDef {
    /// Result names of this case: `id` or `id[variant]` for each variant.
    pub fn instances(&self) -> Vec<(String, Option<&'static str>)> {
        if self.variants.is_empty() {
            vec![(self.id.to_string(), None)]
        } else {
            self.variants
                .iter()
                .map(|v| (format!("{}[{}]", self.id, v), Some(*v)))
                .collect()
        }
    }
}

/// Why a case did not produce a verdict of its own.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// A missing capability, protocol, module, sysctl or kernel version.
    #[error("skip: {0}")]
    Skip(String),
    /// The case could not set up or observe; reported as a failure with this
    /// text as the reason.
    #[error("{0}")]
    Harness(String),
}

macro_rules! harness_from {
    ($($t:ty),*) => {$(
        impl From<$t> for CaseError {
            fn from(e: $t) -> Self { CaseError::Harness(e.to_string()) }
        }
    )*};
}
harness_from!(
    std::io::Error,
    nix::Error,
    crate::topology::TopologyError,
    crate::netns::NetNsError,
    crate::netlink::NlError,
    crate::wait::Timeout
);

/// The five outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every prediction held.
    Pass,
    /// A prediction failed, or the case could not run.
    Fail,
    /// The case could not apply here (reason given).
    Skip,
    /// A named, documented kernel difference made predictions fail, and
    /// every failed prediction is one that difference explains.
    Xfail,
    /// A named kernel difference was declared, but none of the predictions
    /// it explains failed: the difference no longer occurs here (the model
    /// or the declaration is out of date). Not a failure.
    Xpass,
}

impl Outcome {
    /// Upper-case label for human output.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
            Outcome::Xfail => "XFAIL",
            Outcome::Xpass => "XPASS",
        }
    }
}

/// The result of one case instance, as every reporter sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseReport {
    /// `id` or `id[variant]`.
    pub case: String,
    /// The variant, if any.
    pub variant: Option<String>,
    /// The outcome.
    pub outcome: Outcome,
    /// Why it skipped, xfailed, xpassed or failed (first mismatch or harness error).
    pub reason: Option<String>,
    /// Wall time of the case process.
    pub duration_ms: u64,
    /// CPU time (user + system) of the case process and the children it
    /// reaped, as `wait4(2)` reports it; kernel work the case caused in
    /// other contexts (softirqs, workqueues such as namespace cleanup) is
    /// not in it. In a TCG guest this is where the guest's time goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<u64>,
    /// `uname -r` where it ran.
    pub kernel: String,
    /// Every figure the model was checked against, by name.
    pub observations: BTreeMap<String, Value>,
    /// Predictions that failed.
    pub mismatches: Vec<Mismatch>,
    /// Number of predictions checked.
    pub checks: usize,
    /// Free-form notes from the case (what it saw that is not a check).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Which repetition of the run this result belongs to (1-based;
    /// `kharness run --repeat N` runs the catalog N times).
    #[serde(default = "first_repetition")]
    pub repetition: usize,
    /// Observations whose value legitimately differs from run to run
    /// (ports, inodes, pids, timings, seeds): names, or globs with `*`.
    /// `kharness report diff` leaves them out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volatile: Vec<String>,
    /// With `kharness run --retries N`: the attempts before this one, which
    /// failed, in order (this report is the last attempt). A report whose
    /// earlier attempts failed and whose own outcome is not a failure is
    /// flaky ([`CaseReport::is_flaky`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
}

fn first_repetition() -> usize {
    1
}

/// One failed attempt of a case instance that was run again (`--retries`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based number of the attempt.
    pub attempt: usize,
    /// Its outcome (a failure: only failed attempts are retried).
    pub outcome: Outcome,
    /// Why it failed.
    pub reason: Option<String>,
    /// Wall time of its case process.
    pub duration_ms: u64,
    /// Its failed predictions.
    #[serde(default)]
    pub mismatches: Vec<Mismatch>,
    /// What it observed.
    #[serde(default)]
    pub observations: BTreeMap<String, Value>,
}

impl Attempt {
    /// The attempt `n` (1-based) that produced `r`.
    pub fn of(n: usize, r: &CaseReport) -> Attempt {
        Attempt {
            attempt: n,
            outcome: r.outcome,
            reason: r.reason.clone(),
            duration_ms: r.duration_ms,
            mismatches: r.mismatches.clone(),
            observations: r.observations.clone(),
        }
    }
}

impl CaseReport {
    /// The failure the harness reports for a case instance that gave no
    /// report of its own (its process could not start, ended without a
    /// result or ran out of time, or its kernel died under it): no
    /// observations and no checks, only the reason.
    pub fn harness_failure(
        case: String,
        variant: Option<String>,
        reason: String,
        kernel: String,
        duration_ms: u64,
    ) -> CaseReport {
        CaseReport {
            case,
            variant,
            outcome: Outcome::Fail,
            reason: Some(reason),
            duration_ms,
            cpu_ms: None,
            kernel,
            observations: Default::default(),
            mismatches: vec![],
            checks: 0,
            notes: vec![],
            repetition: 1,
            volatile: vec![],
            attempts: vec![],
        }
    }

    /// Failed at first and then did not: retried (`--retries`) and the last
    /// attempt passed (or skipped, or xfailed).
    pub fn is_flaky(&self) -> bool {
        !self.attempts.is_empty() && self.outcome != Outcome::Fail
    }

    /// The outcome's word as the reporters print it, lower case: the
    /// outcome's own, or `flaky`.
    pub fn verdict(&self) -> String {
        if self.is_flaky() {
            "flaky".to_string()
        } else {
            self.outcome.label().to_lowercase()
        }
    }

    /// Whether observation `name` was marked volatile (exactly or by a glob).
    pub fn is_volatile(&self, name: &str) -> bool {
        self.volatile
            .iter()
            .any(|v| volatile_match(v.as_bytes(), name.as_bytes()))
    }
}

/// `*` matches any run of characters; everything else itself.
fn volatile_match(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => volatile_match(&p[1..], s) || (!s.is_empty() && volatile_match(p, &s[1..])),
        (Some(a), Some(b)) if a == b => volatile_match(&p[1..], &s[1..]),
        _ => false,
    }
}

/// Everything a running case gets and records.
#[derive(Debug)]
pub struct Ctx {
    /// What the kernel says about itself.
    pub kernel: KernelInfo,
    /// The variant being run, if the case has variants.
    pub variant: Option<&'static str>,
    /// Seed, sequence count and explore mode for property cases.
    pub property: PropertySettings,
    observations: BTreeMap<String, Value>,
    predictions: Vec<Prediction>,
    known_differences: Vec<KnownDifference>,
    notes: Vec<String>,
    volatile: Vec<String>,
}

impl Ctx {
    /// A fresh context.
    pub fn new(kernel: KernelInfo, variant: Option<&'static str>) -> Ctx {
        Ctx {
            kernel,
            variant,
            property: PropertySettings::default(),
            observations: BTreeMap::new(),
            predictions: Vec::new(),
            known_differences: Vec::new(),
            notes: Vec::new(),
            volatile: Vec::new(),
        }
    }

    /// Records an observation (`null` for "the kernel did not report it").
    pub fn observe(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        self.observations.insert(name.into(), value.into());
    }

    /// Records an optional observation: `None` becomes `null` (absent).
    pub fn observe_opt<T: Into<Value>>(&mut self, name: impl Into<String>, value: Option<T>) {
        let v = value.map(Into::into).unwrap_or(Value::Null);
        self.observations.insert(name.into(), v);
    }

    /// Records an observation whose value legitimately differs from run to
    /// run on the same kernel (a port, an inode, a pid, a timing, a seed):
    /// `kharness report diff` does not call its change a difference.
    pub fn observe_volatile(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        let name = name.into();
        self.mark_volatile(name.clone());
        self.observe(name, value);
    }

    /// Marks observations volatile (see [`Ctx::observe_volatile`]) by name
    /// or by a glob with `*` (`"*.moved.*"`), whether recorded yet or not.
    pub fn mark_volatile(&mut self, pattern: impl Into<String>) {
        let p = pattern.into();
        if !self.volatile.contains(&p) {
            self.volatile.push(p);
        }
    }

    /// The model's claim about the observation `name`.
    pub fn predict(&mut self, name: impl Into<String>, expect: Expect, source: impl Into<String>) {
        self.predictions.push(Prediction {
            counter: name.into(),
            expect,
            source: source.into(),
        });
    }

    /// Records `observed` under `name` and the claim about it.
    pub fn check(
        &mut self,
        name: impl Into<String>,
        expect: Expect,
        observed: impl Into<Value>,
        source: impl Into<String>,
    ) {
        let name = name.into();
        self.observe(name.clone(), observed);
        self.predict(name, expect, source);
    }

    /// `check` with `Expect::Eq`.
    pub fn check_eq(
        &mut self,
        name: impl Into<String>,
        expected: impl Into<Value>,
        observed: impl Into<Value>,
        source: impl Into<String>,
    ) {
        self.check(name, Expect::Eq(expected.into()), observed, source);
    }

    /// An observation recorded so far.
    pub fn observed(&self, name: &str) -> Option<&Value> {
        self.observations.get(name)
    }

    /// Mismatches among the predictions made so far (for cases that stop
    /// early once a step has failed, like property tests).
    pub fn mismatches_so_far(&self) -> Vec<Mismatch> {
        compare(&self.observations, &self.predictions)
    }

    /// Declares a named kernel difference that explains the failure of the
    /// predictions about `observations` (exact names, or `prefix.*` for every
    /// name starting with `prefix.`). When those predictions fail, and no
    /// other prediction does, the outcome is `xfail` with this name and
    /// evidence; a failure outside `observations` is still `fail`; when none
    /// of them fails the outcome is `xpass` (the difference no longer occurs).
    pub fn known_difference(&mut self, name: impl Into<String>, evidence: impl Into<String>, observations: &[&str]) {
        self.known_differences.push(KnownDifference {
            name: name.into(),
            evidence: evidence.into(),
            scope: observations.iter().map(|s| s.to_string()).collect(),
        });
    }

    /// Adds a note to the report.
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// Builds a skip error (`return Err(ctx.skip("…"))` reads well).
    pub fn skip(&self, reason: impl Into<String>) -> CaseError {
        CaseError::Skip(reason.into())
    }

    /// Turns the recorded state and the run's result into a report.
    ///
    /// A mismatch that no declared difference explains makes the case fail,
    /// whatever `result` says: a skip returned after a failed prediction
    /// does not hide it.
    pub fn finish(self, case: String, result: Result<(), CaseError>, duration: Duration) -> CaseReport {
        let mismatches = compare(&self.observations, &self.predictions);
        let checks = self.predictions.len();
        let explains = |d: &KnownDifference, m: &Mismatch| d.scope.iter().any(|p| scope_matches(p, &m.counter));
        let unexplained = mismatches
            .iter()
            .find(|m| !self.known_differences.iter().any(|d| explains(d, m)));
        let occurred: Vec<&KnownDifference> = self
            .known_differences
            .iter()
            .filter(|d| mismatches.iter().any(|m| explains(d, m)))
            .collect();
        let absent: Vec<&KnownDifference> = self
            .known_differences
            .iter()
            .filter(|d| !mismatches.iter().any(|m| explains(d, m)))
            .collect();
        let named = |ds: &[&KnownDifference]| {
            ds.iter()
                .map(|d| format!("{}: {}", d.name, d.evidence))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let (outcome, reason) = match (result, unexplained) {
            (Err(CaseError::Harness(e)), _) => (Outcome::Fail, Some(format!("harness error: {e}"))),
            (Err(CaseError::Skip(r)), Some(m)) => (
                Outcome::Fail,
                Some(format!("{m} (recorded before the case skipped: {r})")),
            ),
            (Err(CaseError::Skip(r)), None) if occurred.is_empty() => (Outcome::Skip, Some(r)),
            (Err(CaseError::Skip(r)), None) => (
                Outcome::Xfail,
                Some(format!("{} (then skipped: {r})", named(&occurred))),
            ),
            (Ok(()), Some(m)) => (Outcome::Fail, Some(m.to_string())),
            (Ok(()), None) if checks == 0 => (
                Outcome::Fail,
                Some("the case checked nothing (no prediction was made)".to_string()),
            ),
            (Ok(()), None) if !absent.is_empty() => {
                let mut r = format!("did not occur: {}", named(&absent));
                if !occurred.is_empty() {
                    r.push_str(&format!("; occurred: {}", named(&occurred)));
                }
                (Outcome::Xpass, Some(r))
            }
            (Ok(()), None) if !occurred.is_empty() => (Outcome::Xfail, Some(named(&occurred))),
            (Ok(()), None) => (Outcome::Pass, None),
        };
        CaseReport {
            case,
            variant: self.variant.map(str::to_string),
            outcome,
            reason,
            duration_ms: duration.as_millis() as u64,
            cpu_ms: None,
            kernel: self.kernel.release.clone(),
            observations: self.observations,
            mismatches,
            checks,
            notes: self.notes,
            repetition: 1,
            volatile: self.volatile,
            attempts: Vec::new(),
        }
    }
}

/// A declared kernel difference and the observations it explains.
#[derive(Debug, Clone)]
struct KnownDifference {
    name: String,
    evidence: String,
    scope: Vec<String>,
}

/// `pattern` is an observation name, or `prefix.*` for every name under
/// `prefix.`.
fn scope_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel() -> KernelInfo {
        KernelInfo {
            release: "6.1.0".into(),
            version: (6, 1, 0),
            tcp_info_len: 232,
            protocols: BTreeMap::new(),
            privileges: "root".into(),
            cpus: 2,
        }
    }

    #[test]
    fn outcomes() {
        let mut c = Ctx::new(kernel(), None);
        c.check_eq("x", 1, 1, "s");
        assert_eq!(c.finish("t".into(), Ok(()), Duration::ZERO).outcome, Outcome::Pass);

        let mut c = Ctx::new(kernel(), None);
        c.check_eq("x", 1, 2, "s");
        let r = c.finish("t".into(), Ok(()), Duration::ZERO);
        assert_eq!(r.outcome, Outcome::Fail);
        assert_eq!(r.mismatches.len(), 1);

        let mut c = Ctx::new(kernel(), None);
        c.check_eq("x", 1, 2, "s");
        c.known_difference("old-kernel", "evidence", &["x"]);
        let r = c.finish("t".into(), Ok(()), Duration::ZERO);
        assert_eq!(r.outcome, Outcome::Xfail);
        assert_eq!(r.reason.as_deref(), Some("old-kernel: evidence"));

        let c = Ctx::new(kernel(), None);
        let r = c.finish("t".into(), Err(CaseError::Skip("no sctp".into())), Duration::ZERO);
        assert_eq!(r.outcome, Outcome::Skip);
        assert_eq!(r.reason.as_deref(), Some("no sctp"));

        // A case that checks nothing cannot pass.
        let c = Ctx::new(kernel(), None);
        assert_eq!(c.finish("t".into(), Ok(()), Duration::ZERO).outcome, Outcome::Fail);
    }

    #[test]
    fn a_known_difference_explains_only_its_observations() {
        // A mismatch outside the difference's scope fails the case.
        let mut c = Ctx::new(kernel(), None);
        c.check_eq("send.errno", "ok", "EOPNOTSUPP", "s");
        c.check_eq("other", 1, 2, "s");
        c.known_difference("old-kernel", "evidence", &["send.*"]);
        let r = c.finish("t".into(), Ok(()), Duration::ZERO);
        assert_eq!(r.outcome, Outcome::Fail);
        assert!(r.reason.unwrap().starts_with("other:"));

        // A prefix scope covers every name under it.
        let mut c = Ctx::new(kernel(), None);
        c.check_eq("send.errno", "ok", "EOPNOTSUPP", "s");
        c.check_eq("send.len", 1, 0, "s");
        c.check_eq("other", 1, 1, "s");
        c.known_difference("old-kernel", "evidence", &["send.*"]);
        assert_eq!(c.finish("t".into(), Ok(()), Duration::ZERO).outcome, Outcome::Xfail);

        // `send.*` is not `sendmsg`.
        assert!(scope_matches("send.*", "send.x"));
        assert!(!scope_matches("send.*", "sendmsg"));
        assert!(!scope_matches("send", "send.x"));
    }

    #[test]
    fn a_known_difference_that_does_not_occur_is_xpass() {
        let mut c = Ctx::new(kernel(), None);
        c.check_eq("x", 1, 1, "s");
        c.known_difference("old-kernel", "evidence", &["x"]);
        let r = c.finish("t".into(), Ok(()), Duration::ZERO);
        assert_eq!(r.outcome, Outcome::Xpass);
        assert_eq!(r.reason.as_deref(), Some("did not occur: old-kernel: evidence"));
        assert_eq!(Outcome::Xpass.label(), "XPASS");

        // Two differences, one occurring: the one that did not is reported.
        let mut c = Ctx::new(kernel(), None);
        c.check_eq("x", 1, 2, "s");
        c.check_eq("y", 1, 1, "s");
        c.known_difference("a", "ea", &["x"]);
        c.known_difference("b", "eb", &["y"]);
        let r = c.finish("t".into(), Ok(()), Duration::ZERO);
        assert_eq!(r.outcome, Outcome::Xpass);
        assert_eq!(r.reason.as_deref(), Some("did not occur: b: eb; occurred: a: ea"));
    }

    #[test]
    fn a_skip_does_not_hide_earlier_mismatches() {
        let mut c = Ctx::new(kernel(), None);
        c.check_eq("x", 1, 2, "s");
        let r = c.finish("t".into(), Err(CaseError::Skip("no sctp".into())), Duration::ZERO);
        assert_eq!(r.outcome, Outcome::Fail);
        assert_eq!(r.mismatches.len(), 1);
        assert!(r.reason.unwrap().contains("no sctp"));

        // An explained one is an xfail, not a skip.
        let mut c = Ctx::new(kernel(), None);
        c.check_eq("x", 1, 2, "s");
        c.known_difference("d", "e", &["x"]);
        let r = c.finish("t".into(), Err(CaseError::Skip("no sctp".into())), Duration::ZERO);
        assert_eq!(r.outcome, Outcome::Xfail);

        // Predictions that held before a skip leave it a skip.
        let mut c = Ctx::new(kernel(), None);
        c.check_eq("x", 1, 1, "s");
        let r = c.finish("t".into(), Err(CaseError::Skip("no sctp".into())), Duration::ZERO);
        assert_eq!(r.outcome, Outcome::Skip);
    }
}
