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

/// The four outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every prediction held.
    Pass,
    /// A prediction failed, or the case could not run.
    Fail,
    /// The case could not apply here (reason given).
    Skip,
    /// A named, documented kernel difference made predictions fail.
    Xfail,
}

impl Outcome {
    /// Upper-case label for human output.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
            Outcome::Xfail => "XFAIL",
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
    /// Why it skipped, xfailed or failed (first mismatch or harness error).
    pub reason: Option<String>,
    /// Wall time of the case process.
    pub duration_ms: u64,
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
    /// Observations that vary from run to run on one kernel (ports, inodes,
    /// timings, seeds): left out when kernels are compared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volatile: Vec<String>,
}

fn first_repetition() -> usize {
    1
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
    known_difference: Option<(String, String)>,
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
            known_difference: None,
            notes: Vec::new(),
            volatile: Vec::new(),
        }
    }

    /// Records an observation (`null` for "the kernel did not report it").
    pub fn observe(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        self.observations.insert(name.into(), value.into());
    }

    /// Records an observation whose value varies from run to run on one
    /// kernel (a port, an inode, a time, a seed): reported like any other,
    /// but left out when kernels are compared.
    pub fn observe_volatile(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        let name = name.into();
        if !self.volatile.contains(&name) {
            self.volatile.push(name.clone());
        }
        self.observations.insert(name, value.into());
    }

    /// Records an optional observation: `None` becomes `null` (absent).
    pub fn observe_opt<T: Into<Value>>(&mut self, name: impl Into<String>, value: Option<T>) {
        let v = value.map(Into::into).unwrap_or(Value::Null);
        self.observations.insert(name.into(), v);
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

    /// Declares a named kernel difference: if predictions fail on this run,
    /// the outcome is `xfail` with this name and evidence instead of `fail`.
    pub fn known_difference(&mut self, name: impl Into<String>, evidence: impl Into<String>) {
        self.known_difference = Some((name.into(), evidence.into()));
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
    pub fn finish(self, case: String, result: Result<(), CaseError>, duration: Duration) -> CaseReport {
        let mismatches = compare(&self.observations, &self.predictions);
        let checks = self.predictions.len();
        let (outcome, reason) = match result {
            Err(CaseError::Skip(r)) => (Outcome::Skip, Some(r)),
            Err(CaseError::Harness(e)) => (Outcome::Fail, Some(format!("harness error: {e}"))),
            Ok(()) if !mismatches.is_empty() => match &self.known_difference {
                Some((name, ev)) => (Outcome::Xfail, Some(format!("{name}: {ev}"))),
                None => (Outcome::Fail, Some(mismatches[0].to_string())),
            },
            Ok(()) if checks == 0 => (
                Outcome::Fail,
                Some("the case checked nothing (no prediction was made)".to_string()),
            ),
            Ok(()) => (Outcome::Pass, None),
        };
        CaseReport {
            case,
            variant: self.variant.map(str::to_string),
            outcome,
            reason,
            duration_ms: duration.as_millis() as u64,
            kernel: self.kernel.release.clone(),
            observations: self.observations,
            mismatches,
            checks,
            notes: self.notes,
            repetition: 1,
            volatile: self.volatile,
        }
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
        c.known_difference("old-kernel", "evidence");
        assert_eq!(c.finish("t".into(), Ok(()), Duration::ZERO).outcome, Outcome::Xfail);

        let c = Ctx::new(kernel(), None);
        let r = c.finish("t".into(), Err(CaseError::Skip("no sctp".into())), Duration::ZERO);
        assert_eq!(r.outcome, Outcome::Skip);
        assert_eq!(r.reason.as_deref(), Some("no sctp"));

        // A case that checks nothing cannot pass.
        let c = Ctx::new(kernel(), None);
        assert_eq!(c.finish("t".into(), Ok(()), Duration::ZERO).outcome, Outcome::Fail);
    }
}
