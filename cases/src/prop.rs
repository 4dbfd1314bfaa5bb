//! What every property case shares: a proptest runner set up from the run's
//! [`PropertySettings`](kharness::property::PropertySettings), and one way
//! of turning the result into checks, notes and a replay command.
//!
//! * `kharness run`: the fixed default seed, the case's quick count, and the
//!   case's regression file (`fixtures/proptest-regressions/`) replayed
//!   first; a new failure is saved there.
//! * `kharness explore`: a fresh seed per run, no replay, the failure saved.
//! * A failure is reported as the shrunk, minimal counterexample in words
//!   (the case's `describe`), the first disagreement, and the command that
//!   replays it (`kharness run CASE --seed S`).

use std::any::Any;
use std::fmt::Debug;

use kharness::{CaseError, Ctx};
use proptest::strategy::Strategy;
use proptest::test_runner::{
    Config, FailurePersistence, FileFailurePersistence, PersistedSeed, RngAlgorithm, TestCaseError, TestError, TestRng,
    TestRunner,
};

/// The regression file of a property case, under `fixtures/proptest-regressions/`.
/// Outside the source tree (a matrix guest) there is none: nothing is
/// replayed or saved.
pub fn regressions_path(file: &str) -> Option<&'static str> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/proptest-regressions");
    std::path::Path::new(dir)
        .is_dir()
        .then(|| &*Box::leak(format!("{dir}/{file}").into_boxed_str()))
}

/// Saves failures like `FileFailurePersistence` but replays nothing:
/// `explore` looks for new failures and leaves the known ones to `run`.
#[derive(Debug, Clone, PartialEq)]
struct SaveOnly(FileFailurePersistence);

impl FailurePersistence for SaveOnly {
    fn load_persisted_failures2(&self, _source_file: Option<&'static str>) -> Vec<PersistedSeed> {
        Vec::new()
    }
    fn save_persisted_failure2(
        &mut self,
        source_file: Option<&'static str>,
        seed: PersistedSeed,
        shrunken: &dyn Debug,
    ) {
        self.0.save_persisted_failure2(source_file, seed, shrunken)
    }
    fn box_clone(&self) -> Box<dyn FailurePersistence> {
        Box::new(self.clone())
    }
    fn eq(&self, other: &dyn FailurePersistence) -> bool {
        other.as_any().downcast_ref::<Self>() == Some(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A property of one case: its id, quick default count, regression file.
#[derive(Debug, Clone, Copy)]
pub struct Property {
    /// The case id (`unix.gc_property`), for the seed and the replay command.
    pub id: &'static str,
    /// Sequences per run under `kharness run` when `--cases` is not given.
    pub quick_cases: u32,
    /// Sequences per run under `explore` when `--cases` is not given.
    pub explore_cases: u32,
    /// File name under `fixtures/proptest-regressions/`.
    pub regressions: &'static str,
    /// Most shrink steps.
    pub max_shrink_iters: u32,
}

/// What a property run found, for [`Property::report`].
pub struct Found<T> {
    /// Sequences the runner generated (replays of the regression file included).
    pub sequences: u32,
    /// The proptest result.
    pub result: Result<(), TestError<T>>,
}

impl Property {
    /// Runs `test` (which keeps its own tallies in `Cell`s, as proptest
    /// wants an `Fn`) over values of `strategy` as the settings in `ctx` say,
    /// counting the sequences. Records `property.seed`, `property.cases` and
    /// `property.explore`.
    pub fn run<S: Strategy>(
        &self,
        ctx: &mut Ctx,
        strategy: &S,
        test: impl Fn(S::Value) -> Result<(), String>,
    ) -> Found<S::Value> {
        let settings = ctx.property;
        let cases = settings.cases.unwrap_or(if settings.explore {
            self.explore_cases
        } else {
            self.quick_cases
        });
        let persistence: Option<Box<dyn FailurePersistence>> =
            regressions_path(self.regressions).map(|p| -> Box<dyn FailurePersistence> {
                let file = FileFailurePersistence::Direct(p);
                if settings.explore {
                    Box::new(SaveOnly(file))
                } else {
                    Box::new(file)
                }
            });
        let config = Config {
            cases,
            max_shrink_iters: self.max_shrink_iters,
            failure_persistence: persistence,
            // The case process is the unit of isolation; proptest must not fork.
            fork: false,
            ..Config::default()
        };
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &settings.rng_seed(self.id));
        let mut runner = TestRunner::new_with_rng(config, rng);
        ctx.observe_volatile("property.seed", settings.seed());
        ctx.observe("property.cases", cases);
        ctx.observe("property.explore", settings.explore);
        let sequences = std::cell::Cell::new(0u32);
        let result = runner.run(strategy, |v| {
            sequences.set(sequences.get() + 1);
            test(v).map_err(TestCaseError::fail)
        });
        Found {
            sequences: sequences.get(),
            result,
        }
    }

    /// The command that replays this run.
    pub fn replay_command(&self, ctx: &Ctx) -> String {
        let mut c = format!("kharness run {} --seed {}", self.id, ctx.property.seed());
        if let Some(n) = ctx.property.cases {
            c.push_str(&format!(" --cases {n}"));
        }
        if ctx.property.explore {
            c.push_str(" --explore");
        }
        c
    }

    /// Turns a run into the report: `property.sequences` observed,
    /// `property.failing_sequences` checked against 0 (it is 1 when proptest
    /// found a counterexample), and for a failure the minimal counterexample
    /// in words (`describe`), the first disagreement, the replay command and
    /// where it was saved, then `replay` re-runs the minimal value with
    /// every step recorded in `ctx` so that its mismatches are the case's.
    pub fn report<T>(
        &self,
        ctx: &mut Ctx,
        found: Found<T>,
        describe: impl Fn(&T) -> Vec<String>,
        replay: impl FnOnce(&mut Ctx, &T) -> Result<(), String>,
    ) -> Result<(), CaseError> {
        ctx.observe("property.sequences", found.sequences);
        let failing = u32::from(matches!(found.result, Err(TestError::Fail(..))));
        ctx.check_eq(
            "property.failing_sequences",
            0u32,
            failing,
            "every generated sequence meets the model (a failure is shrunk, replayed below and saved)",
        );
        match found.result {
            Ok(()) => Ok(()),
            Err(TestError::Abort(why)) => Err(CaseError::Harness(format!("property run aborted: {why}"))),
            Err(TestError::Fail(reason, minimal)) => {
                let words = describe(&minimal);
                ctx.observe("property.counterexample", words.join("; "));
                ctx.observe("property.disagreement", reason.to_string());
                ctx.observe("property.replay", self.replay_command(ctx));
                ctx.note(format!("minimal counterexample ({} steps):", words.len()));
                for w in &words {
                    ctx.note(format!("  {w}"));
                }
                ctx.note(format!("first disagreement: {reason}"));
                ctx.note(format!("replay: {}", self.replay_command(ctx)));
                if let Some(p) = regressions_path(self.regressions) {
                    ctx.note(format!("saved in {p}: every `kharness run` replays it first"));
                }
                if let Err(e) = replay(ctx, &minimal) {
                    ctx.note(format!("replay of the minimal counterexample: {e}"));
                }
                Ok(())
            }
        }
    }
}
