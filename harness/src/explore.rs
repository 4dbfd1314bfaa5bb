//! `kharness explore`: the property cases with fresh random seeds until a
//! time budget is spent.
//!
//! Each round runs every selected property case once — or several times
//! when fewer cases than jobs are left, so that every job is busy — each run
//! in its own process as always, with a seed of its own (fresh, or the next
//! of `--seed S`, S+1, …; the case derives its RNG from the seed and its id,
//! see [`crate::property`]) and the explore settings: longer, wider sequences and no replay of the regression file
//! (`kharness run` replays it). A case that fails is reported with its seed,
//! its shrunk counterexample (the case's words), the disagreement and the
//! command that replays it, and leaves the later rounds: what it found is
//! found, and the budget goes to the others. Rounds start while time is
//! left; the last one may end after the budget.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::case::{CaseReport, Outcome};
use crate::event::Event;
use crate::kernel::KernelInfo;
use crate::property::PropertySettings;
use crate::runner::{self, Instance, RunOptions};

/// How to explore.
#[derive(Debug, Clone)]
pub struct ExploreOptions {
    /// Rounds start while less than this has elapsed.
    pub budget: Duration,
    /// Seed of the first round, then one more per round; `None`: fresh
    /// random seeds from /dev/urandom.
    pub seed: Option<u64>,
    /// Sequences per property per round; `None`: each case's explore count.
    pub cases: Option<u32>,
    /// Processes, executable, timeout scale (as `kharness run`).
    pub run: RunOptions,
}

/// What exploring tells its consumer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExploreEvent {
    /// One case's run in one round.
    Run {
        /// 1-based round.
        round: u32,
        /// The round's seed.
        seed: u64,
        /// Milliseconds since exploring began, when the run ended.
        elapsed_ms: u64,
        /// The case's report (its notes carry a counterexample).
        report: Box<CaseReport>,
    },
    /// The end.
    Summary(ExploreSummary),
}

/// Per case: how much was explored and what was found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CaseExploration {
    /// Result name.
    pub case: String,
    /// Runs (rounds the case took part in).
    pub runs: u32,
    /// Sequences generated over every run.
    pub sequences: u64,
    /// Runs that skipped (the case cannot run here).
    pub skipped: u32,
    /// The first failure: its seed, when it ended, and the replay command.
    pub found: Option<Finding>,
}

/// A failure exploring found.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Finding {
    /// The round's seed.
    pub seed: u64,
    /// Milliseconds from the start of exploring to the end of the failing run.
    pub elapsed_ms: u64,
    /// The minimal counterexample in words (`;`-separated steps), if the
    /// case reported one.
    pub counterexample: Option<String>,
    /// The first mismatch or the harness error.
    pub reason: Option<String>,
    /// The command that replays it.
    pub replay: String,
}

/// The end of exploring.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ExploreSummary {
    /// Rounds run.
    pub rounds: u32,
    /// Wall time.
    pub duration_ms: u64,
    /// Per case.
    pub cases: Vec<CaseExploration>,
}

impl ExploreSummary {
    /// Failures found.
    pub fn found(&self) -> usize {
        self.cases.iter().filter(|c| c.found.is_some()).count()
    }
}

/// A fresh seed from the kernel's random pool.
pub fn fresh_seed() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)) {
        Ok(()) => u64::from_le_bytes(b),
        // No /dev/urandom (a bare initramfs): the clock is fresh enough.
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

/// The command that replays one explore run of `case` with `seed`.
pub fn replay_command(case: &str, seed: u64, cases: Option<u32>) -> String {
    let mut c = format!("kharness run {case} --seed {seed} --deep");
    if let Some(n) = cases {
        c.push_str(&format!(" --cases {n}"));
    }
    c
}

/// Explores `instances` (property cases) until the budget is spent.
pub fn explore(
    kernel: KernelInfo,
    instances: Vec<Instance>,
    opts: &ExploreOptions,
    sink: &mut dyn FnMut(&ExploreEvent),
) -> ExploreSummary {
    let start = Instant::now();
    let mut summary = ExploreSummary {
        cases: instances
            .iter()
            .map(|i| CaseExploration {
                case: i.name.clone(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let mut live: Vec<Instance> = instances;
    // Runs per case and round: enough to keep every job busy when fewer
    // cases than jobs are left, each run with its own seed.
    let mut next_seed = opts.seed;
    while start.elapsed() < opts.budget && !live.is_empty() {
        summary.rounds += 1;
        let round = summary.rounds;
        let per_case = opts.run.jobs.max(1).div_ceil(live.len());
        let deadline = crate::property::unix_ms() + opts.budget.saturating_sub(start.elapsed()).as_millis() as u64;
        let mut runs = Vec::new();
        for _ in 0..per_case {
            for inst in &live {
                let seed = match &mut next_seed {
                    Some(s) => {
                        let this = *s;
                        *s = s.wrapping_add(1);
                        this
                    }
                    None => fresh_seed(),
                };
                let mut i = inst.clone();
                i.property = Some(PropertySettings {
                    seed: Some(seed),
                    cases: opts.cases,
                    explore: true,
                    deadline_unix_ms: Some(deadline),
                });
                runs.push(i);
            }
        }
        let mut run = opts.run.clone();
        run.repeat = 1;
        let mut reports = Vec::new();
        runner::run(kernel.clone(), runs.clone(), &run, &mut |ev| {
            if let Event::CaseFinished(r) = ev {
                reports.push(r.clone());
            }
        });
        // Results come back in the order they finished; the seed of each is
        // that of its run (the k-th result of a case name is its k-th run).
        let mut taken = vec![false; runs.len()];
        for report in reports {
            let k = runs
                .iter()
                .enumerate()
                .position(|(k, r)| !taken[k] && r.name == report.case)
                .unwrap_or(0);
            taken[k] = true;
            let seed = runs[k].property.and_then(|p| p.seed).unwrap_or(0);
            let elapsed_ms = start.elapsed().as_millis() as u64;
            if let Some(c) = summary.cases.iter_mut().find(|c| c.case == report.case) {
                c.runs += 1;
                c.sequences += report
                    .observations
                    .get("property.sequences")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                match report.outcome {
                    Outcome::Skip => c.skipped += 1,
                    Outcome::Fail if c.found.is_none() => {
                        c.found = Some(Finding {
                            seed,
                            elapsed_ms,
                            counterexample: report
                                .observations
                                .get("property.counterexample")
                                .and_then(|v| v.as_str())
                                .map(str::to_string),
                            reason: report.reason.clone(),
                            replay: replay_command(&report.case, seed, opts.cases),
                        });
                    }
                    _ => {}
                }
            }
            sink(&ExploreEvent::Run {
                round,
                seed,
                elapsed_ms,
                report: Box::new(report),
            });
        }
        // A case that failed or cannot run here leaves the rounds.
        live.retain(|i| {
            summary
                .cases
                .iter()
                .find(|c| c.case == i.name)
                .is_some_and(|c| c.found.is_none() && c.skipped == 0)
        });
    }
    summary.duration_ms = start.elapsed().as_millis() as u64;
    sink(&ExploreEvent::Summary(summary.clone()));
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_names_the_seed_and_the_deep_generators() {
        assert_eq!(
            replay_command("unix.gc_property", 42, None),
            "kharness run unix.gc_property --seed 42 --deep"
        );
        assert_eq!(
            replay_command("x.y", 1, Some(9)),
            "kharness run x.y --seed 1 --deep --cases 9"
        );
        assert_ne!(fresh_seed(), fresh_seed());
    }
}
