//! The typed event stream a run produces. Reporters (human, JSON, TAP,
//! JUnit) and tests consume the same events; the runner never formats output.

use serde::{Deserialize, Serialize};

use crate::case::{CaseReport, Outcome};
use crate::kernel::KernelInfo;

/// The header of a run: what was tested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunHeader {
    /// Format version of the JSON stream.
    pub schema: u32,
    /// The kernel facts.
    pub kernel: KernelInfo,
    /// How many case instances will run (each `repeat` times).
    pub cases: usize,
    /// Parallel case processes.
    pub jobs: usize,
    /// The harness version.
    pub harness: String,
    /// How many times the catalog runs (`--repeat`); results carry their
    /// repetition.
    #[serde(default = "one")]
    pub repeat: usize,
    /// Whether the kernel log and taint are watched around each case, and
    /// if not why (absent in headers of older harnesses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::HealthWatch>,
}

fn one() -> usize {
    1
}

/// Totals at the end of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Cases skipped.
    pub skipped: usize,
    /// Cases that failed on a named kernel difference.
    pub xfailed: usize,
    /// Cases that failed and then passed when run again (`--retries`);
    /// not counted in `passed`.
    #[serde(default)]
    pub flaky: usize,
    /// Cases whose named kernel difference did not occur.
    #[serde(default)]
    pub xpassed: usize,
    /// Wall time of the whole run.
    pub duration_ms: u64,
}

impl Summary {
    /// Counts one result.
    pub fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Pass => self.passed += 1,
            Outcome::Fail => self.failed += 1,
            Outcome::Skip => self.skipped += 1,
            Outcome::Xfail => self.xfailed += 1,
            Outcome::Xpass => self.xpassed += 1,
        }
    }

    /// Counts one result: flaky apart, the others by their outcome.
    pub fn count(&mut self, r: &CaseReport) {
        if r.is_flaky() {
            self.flaky += 1;
        } else {
            self.add(r.outcome);
        }
    }

    /// Total results.
    pub fn total(&self) -> usize {
        self.passed + self.failed + self.skipped + self.xfailed + self.xpassed + self.flaky
    }
}

/// Minimum, median and maximum of a set of durations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spread {
    /// Shortest, in ms.
    pub min: u64,
    /// Median (the lower middle one of an even count), in ms.
    pub median: u64,
    /// Longest, in ms.
    pub max: u64,
}

impl Spread {
    /// The spread of `values` (all zero when empty).
    pub fn of(values: &[u64]) -> Spread {
        let mut v = values.to_vec();
        v.sort_unstable();
        match (v.first(), v.last()) {
            (Some(&min), Some(&max)) => Spread {
                min,
                median: v[(v.len() - 1) / 2],
                max,
            },
            _ => Spread::default(),
        }
    }
}

/// One case instance over every repetition of a `--repeat` run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseSummary {
    /// Result name.
    pub case: String,
    /// Repetitions that produced a result.
    pub runs: usize,
    /// Outcome counts.
    pub passed: usize,
    /// Failed repetitions.
    pub failed: usize,
    /// Skipped repetitions.
    pub skipped: usize,
    /// Xfailed repetitions.
    pub xfailed: usize,
    /// Repetitions that failed and then passed when run again (counted
    /// under their final outcome too).
    #[serde(default)]
    pub flaky: usize,
    /// Xpassed repetitions.
    #[serde(default)]
    pub xpassed: usize,
    /// The repetitions that failed (1-based), in order.
    pub failed_repetitions: Vec<usize>,
    /// Duration of the case process over the repetitions.
    pub duration_ms: Spread,
}

impl CaseSummary {
    /// An empty summary for `case`.
    pub fn new(case: &str) -> CaseSummary {
        CaseSummary {
            case: case.to_string(),
            runs: 0,
            passed: 0,
            failed: 0,
            skipped: 0,
            xfailed: 0,
            flaky: 0,
            xpassed: 0,
            failed_repetitions: Vec::new(),
            duration_ms: Spread::default(),
        }
    }

    /// Counts one result of this case (the durations' spread is set apart,
    /// from every duration at once).
    pub fn count(&mut self, r: &CaseReport) {
        self.runs += 1;
        if r.is_flaky() {
            self.flaky += 1;
        }
        match r.outcome {
            Outcome::Pass => self.passed += 1,
            Outcome::Fail => {
                self.failed += 1;
                self.failed_repetitions.push(r.repetition);
                self.failed_repetitions.sort_unstable();
            }
            Outcome::Skip => self.skipped += 1,
            Outcome::Xfail => self.xfailed += 1,
            Outcome::Xpass => self.xpassed += 1,
        }
    }
}

/// One event of a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Before any case starts.
    RunStarted(RunHeader),
    /// A case process was started.
    CaseStarted {
        /// Result name.
        case: String,
    },
    /// A case finished (any outcome).
    CaseFinished(CaseReport),
    /// With `--repeat` N > 1: one per case instance, in catalog order, after
    /// the last result and before `RunFinished`.
    CaseSummary(CaseSummary),
    /// After the last case.
    RunFinished(Summary),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xpass_is_counted() {
        let mut s = Summary::default();
        for o in [Outcome::Pass, Outcome::Xpass, Outcome::Xfail, Outcome::Xpass] {
            s.add(o);
        }
        assert_eq!((s.passed, s.xfailed, s.xpassed, s.total()), (1, 1, 2, 4));
    }

    #[test]
    fn spread() {
        assert_eq!(Spread::of(&[]), Spread::default());
        assert_eq!(
            Spread::of(&[7]),
            Spread {
                min: 7,
                median: 7,
                max: 7
            }
        );
        assert_eq!(
            Spread::of(&[9, 1, 5]),
            Spread {
                min: 1,
                median: 5,
                max: 9
            }
        );
        assert_eq!(
            Spread::of(&[4, 1, 3, 2]),
            Spread {
                min: 1,
                median: 2,
                max: 4
            }
        );
    }
}
