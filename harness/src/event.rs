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
    /// How many case instances will run.
    pub cases: usize,
    /// Parallel case processes.
    pub jobs: usize,
    /// The harness version.
    pub harness: String,
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
        }
    }

    /// Total results.
    pub fn total(&self) -> usize {
        self.passed + self.failed + self.skipped + self.xfailed
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
    /// After the last case.
    RunFinished(Summary),
}
