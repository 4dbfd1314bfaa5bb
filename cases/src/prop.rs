//! What every property case shares: a proptest runner set up from the run's
//! [`PropertySettings`](kharness::property::PropertySettings), and one way
//! of turning the result into checks, notes and a replay command.
//!
//! * `kharness run`: the fixed default seed, the case's quick count, and the
//!   case's regression files (`fixtures/proptest-regressions/`) replayed
//!   first; a new failure is saved there.
//! * `kharness explore`: a fresh seed per run, no replay, the failure saved.
//! * Saved by the command, not the case process: a failure is written once
//!   the run is classified, and only if it is a failure ([`persist_finding`]).
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

/// The directory of the regression files: `fixtures/proptest-regressions/`
/// of the source tree, or `$KHARNESS_REGRESSIONS_DIR` (which the tests use).
fn regressions_dir() -> Option<std::path::PathBuf> {
    match std::env::var_os("KHARNESS_REGRESSIONS_DIR") {
        Some(d) => Some(std::path::PathBuf::from(d)),
        None => Some(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()?
                .join("fixtures/proptest-regressions"),
        ),
    }
}

/// The regression files as [`preload_regressions`] read them: whether the
/// directory existed, and each file's text by path.
struct Preloaded {
    dir_exists: bool,
    files: std::collections::BTreeMap<String, String>,
}

static PRELOADED: std::sync::OnceLock<Preloaded> = std::sync::OnceLock::new();

/// Reads every regression file now, for the case process to replay later.
///
/// A case process mounts a private tmpfs over the temp dir before its case
/// runs, so a source tree under `/tmp` (a CI checkout, say), or a
/// `$KHARNESS_REGRESSIONS_DIR` there, is hidden from it by then. The
/// `__case` command calls this first; without it (unit tests) the files are
/// read when they are needed.
pub fn preload_regressions() {
    let Some(dir) = regressions_dir() else { return };
    let mut files = std::collections::BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "txt") {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    files.insert(path.display().to_string(), text);
                }
            }
        }
    }
    let _ = PRELOADED.set(Preloaded {
        dir_exists: dir.is_dir(),
        files,
    });
}

/// The regression file of a property case, under [`regressions_dir`].
/// Outside the source tree (a matrix guest) there is none: nothing is
/// replayed or saved.
pub fn regressions_path(file: &str) -> Option<&'static str> {
    if file.is_empty() {
        return None;
    }
    let dir = regressions_dir()?;
    let exists = PRELOADED.get().map_or_else(|| dir.is_dir(), |p| p.dir_exists);
    // The same spelling as preload_regressions' keys (`Path::join`).
    exists.then(|| &*Box::leak(dir.join(file).display().to_string().into_boxed_str()))
}

/// The text of regression file `path`: preloaded, else read now.
fn regression_text(path: &str) -> Option<String> {
    match PRELOADED.get() {
        Some(p) => p.files.get(path).cloned(),
        None => std::fs::read_to_string(path).ok(),
    }
}

/// Test-only fault switch: with `KHARNESS_TEST_PROPERTY_FAULT=CASE_ID`,
/// every value of that case whose debug text has a length divisible by 7
/// fails as a disagreement, deterministically, so that the tests see the
/// whole path of a failure (shrinking, words, saving, replay) without a
/// kernel defect at hand.
fn injected_fault<T: Debug>(id: &str, v: &T) -> Result<(), String> {
    match std::env::var("KHARNESS_TEST_PROPERTY_FAULT") {
        Ok(want) if want == id && format!("{v:?}").len() % 7 == 0 => {
            Err("test-only fault (KHARNESS_TEST_PROPERTY_FAULT)".to_string())
        }
        _ => Ok(()),
    }
}

/// Failure persistence of every property run: replays the seeds of one
/// regression file (none under `explore`, which looks for new failures and
/// leaves the known ones to `run`), and keeps a new failure in memory
/// instead of writing it. Whether it is a failure at all is only known once
/// the run is classified (a known difference or a known issue makes it
/// xfail, and an xfail must not be replayed by every later run): the case
/// records it as `property.finding` and the `run` and `explore` commands
/// write it with [`persist_finding`] when the outcome is a failure. (The
/// case process could not always write it anyway: see
/// [`preload_regressions`].)
#[derive(Debug, Clone, Default)]
struct Capture {
    /// The regression file replayed, by path.
    replay: Option<&'static str>,
    /// The file name a failure is kept for (`NAME.txt` or `NAME.deep.txt`).
    file: String,
    /// (file, seed, shrunk value) of each failure, shared by the clones
    /// proptest makes.
    found: std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>,
}

impl FailurePersistence for Capture {
    fn load_persisted_failures2(&self, _source_file: Option<&'static str>) -> Vec<PersistedSeed> {
        let Some(text) = self.replay.and_then(regression_text) else {
            return Vec::new();
        };
        // As FileFailurePersistence reads it: `cc SEED # shrinks to …`.
        text.lines()
            .filter_map(|l| {
                let seed = l.split('#').next().unwrap_or("").trim();
                (!seed.is_empty()).then(|| seed.parse::<PersistedSeed>().ok()).flatten()
            })
            .collect()
    }
    fn save_persisted_failure2(
        &mut self,
        _source_file: Option<&'static str>,
        seed: PersistedSeed,
        shrunken: &dyn Debug,
    ) {
        // One line, as FileFailurePersistence writes it.
        let shrunk = format!("{shrunken:?}").replace(['\n', '\r'], " ");
        self.found
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((self.file.clone(), seed.to_string(), shrunk));
    }
    fn box_clone(&self) -> Box<dyn FailurePersistence> {
        Box::new(self.clone())
    }
    fn eq(&self, other: &dyn FailurePersistence) -> bool {
        other
            .as_any()
            .downcast_ref::<Self>()
            .is_some_and(|o| std::sync::Arc::ptr_eq(&o.found, &self.found) && o.file == self.file)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The shrunk value's debug text, written as is.
struct Verbatim<'a>(&'a str);

impl Debug for Verbatim<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Writes the failure an explore run recorded (`property.finding`) to its
/// case's deep regression file, so that every later `kharness run`
/// replays it; the caller does this only for a run whose outcome is a
/// failure. Returns the file written, `None` when the report holds no
/// finding (or there is no source tree to write to).
pub fn persist_finding(report: &kharness::CaseReport) -> Result<Option<String>, String> {
    let Some(f) = report.observations.get("property.finding") else {
        return Ok(None);
    };
    let field = |k: &str| f.get(k).and_then(|v| v.as_str());
    let (Some(file), Some(seed), Some(shrunk)) = (field("file"), field("seed"), field("shrunk")) else {
        return Err(format!("{}: property.finding is malformed: {f}", report.case));
    };
    let seed: PersistedSeed = seed
        .parse()
        .map_err(|()| format!("{}: property.finding has a bad seed {seed:?}", report.case))?;
    let Some(path) = regressions_path(file) else {
        return Ok(None);
    };
    FileFailurePersistence::Direct(path).save_persisted_failure2(None, seed, &Verbatim(shrunk));
    Ok(Some(path.to_string()))
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
    /// File name under `fixtures/proptest-regressions/` (empty: none).
    pub regressions: &'static str,
    /// Most shrink steps.
    pub max_shrink_iters: u32,
}

/// Sequences per chunk of an explore run (see [`Property::run`]).
const EXPLORE_CHUNK: u32 = 16;

/// What a property run found, for [`Property::report`].
pub struct Found<T> {
    /// Sequences the runner generated (replays of the regression file included).
    pub sequences: u32,
    /// The proptest result.
    pub result: Result<(), TestError<T>>,
}

/// The least time a failure found under a deadline gets to shrink (ms).
const MIN_SHRINK_MS: u64 = 5_000;

impl Property {
    /// Runs `test` (which keeps its own tallies in `Cell`s, as proptest
    /// wants an `Fn`) over values of `strategy(explore)` as the settings in
    /// `ctx` say, counting the sequences. Records `property.seed`,
    /// `property.cases` and `property.explore`.
    ///
    /// Two regression files: `NAME.txt` holds failures of the quick
    /// generators, `NAME.deep.txt` those `explore` found with the deep ones
    /// (a saved seed only means something with the generator that drew it).
    /// `kharness run` replays both, each with its own generator, before its
    /// own sequences; `explore` replays neither and saves to the deep file.
    pub fn run<S: Strategy>(
        &self,
        ctx: &mut Ctx,
        strategy: impl Fn(bool) -> S,
        test: impl Fn(S::Value) -> Result<(), String>,
    ) -> Found<S::Value> {
        let settings = ctx.property;
        let cases = settings.cases.unwrap_or(if settings.explore {
            self.explore_cases
        } else {
            self.quick_cases
        });
        ctx.observe_volatile("property.seed", settings.seed());
        ctx.observe("property.cases", cases);
        ctx.observe("property.explore", settings.explore);
        let sequences = std::cell::Cell::new(0u32);
        let failed = std::cell::Cell::new(false);
        let check = |v: S::Value| {
            // Out of budget: the remaining sequences are not run (and not
            // counted); the shrinking of a failure always is.
            if !failed.get() && sequences.get() > 0 && settings.past_deadline() {
                return Ok(());
            }
            sequences.set(sequences.get() + 1);
            let fault = injected_fault(self.id, &v);
            test(v).and(fault).map_err(|e| {
                failed.set(true);
                TestCaseError::fail(e)
            })
        };
        let deep = self.deep_regressions();
        let runner = |cases: u32, chunk: u8, persistence: Option<Box<dyn FailurePersistence>>| {
            let config = Config {
                cases,
                max_shrink_iters: self.max_shrink_iters,
                // Under a deadline (explore) shrinking gets what is left of
                // it, at least MIN_SHRINK: a failing sequence can take the
                // whole of its case's collector deadline per step.
                max_shrink_time: settings.ms_to_deadline().map_or(0, |ms| ms.max(MIN_SHRINK_MS) as u32),
                failure_persistence: persistence,
                // The case process is the unit of isolation; proptest must not fork.
                fork: false,
                ..Config::default()
            };
            let mut seed = settings.rng_seed(self.id);
            seed[31] ^= chunk;
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed))
        };
        // Failures are kept in memory (see Capture), tagged with the file
        // whose generator drew them.
        let found: std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>> = Default::default();
        let capture = |replay: Option<&'static str>, file: String| -> Option<Box<dyn FailurePersistence>> {
            Some(Box::new(Capture {
                replay,
                file,
                found: std::sync::Arc::clone(&found),
            }))
        };
        let deep_file = self
            .regressions
            .strip_suffix(".txt")
            .map(|stem| format!("{stem}.deep.txt"))
            .unwrap_or_default();
        let result = if settings.explore {
            // In chunks of EXPLORE_CHUNK sequences, each with its own RNG
            // (the seed with the chunk number), so that the deadline can
            // stop between chunks without generating the rest, and
            // `--seed S --deep` (every chunk) still replays what ran.
            let mut result = Ok(());
            for (k, start) in (0..cases).step_by(EXPLORE_CHUNK as usize).enumerate() {
                if k > 0 && settings.past_deadline() {
                    break;
                }
                let n = EXPLORE_CHUNK.min(cases - start);
                result = runner(n, k as u8, capture(None, deep_file.clone())).run(&strategy(true), check);
                if result.is_err() {
                    break;
                }
            }
            result
        } else {
            // What explore found, replayed with the deep generator (no new
            // sequences: cases 0), then the quick run after the quick
            // file's seeds.
            let replayed = match deep.filter(|p| regression_text(p).is_some()) {
                Some(p) => runner(0, 0, capture(Some(p), deep_file.clone())).run(&strategy(true), check),
                None => Ok(()),
            };
            match replayed {
                Ok(()) => runner(
                    cases,
                    0,
                    capture(regressions_path(self.regressions), self.regressions.to_string()),
                )
                .run(&strategy(false), check),
                failure => failure,
            }
        };
        let first = found.lock().unwrap_or_else(|e| e.into_inner()).first().cloned();
        if let Some((file, seed, shrunk)) = first.filter(|(file, _, _)| !file.is_empty()) {
            ctx.observe_volatile(
                "property.finding",
                serde_json::json!({"file": file, "seed": seed, "shrunk": shrunk}),
            );
        }
        Found {
            sequences: sequences.get(),
            result,
        }
    }

    /// The file `explore` saves to: `NAME.deep.txt` beside `NAME.txt`.
    fn deep_regressions(&self) -> Option<&'static str> {
        let stem = self.regressions.strip_suffix(".txt")?;
        regressions_path(&format!("{stem}.deep.txt"))
    }

    /// The command that replays this run.
    pub fn replay_command(&self, ctx: &Ctx) -> String {
        if ctx.property.explore {
            return kharness::explore::replay_command(self.id, ctx.property.seed(), ctx.property.cases);
        }
        let mut c = format!("kharness run {} --seed {}", self.id, ctx.property.seed());
        if let Some(n) = ctx.property.cases {
            c.push_str(&format!(" --cases {n}"));
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
        ctx.observe_volatile("property.sequences", found.sequences);
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
                let kept = ctx
                    .observed("property.finding")
                    .and_then(|f| f.get("file").and_then(|v| v.as_str()).map(str::to_string))
                    .and_then(|file| regressions_path(&file));
                if let Some(p) = kept {
                    ctx.note(format!(
                        "kept for {p} if the run is a failure (not a known difference): every `kharness run` \
                         replays that file first"
                    ));
                }
                if let Err(e) = replay(ctx, &minimal) {
                    ctx.note(format!("replay of the minimal counterexample: {e}"));
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kharness::{KernelInfo, Outcome};

    const P: Property = Property {
        id: "test.property",
        quick_cases: 32,
        explore_cases: 64,
        regressions: "",
        max_shrink_iters: 64,
    };

    fn ctx() -> Ctx {
        Ctx::new(
            KernelInfo {
                release: "6.1.0".into(),
                version: (6, 1, 0),
                tcp_info_len: 232,
                protocols: Default::default(),
                privileges: "root".into(),
                cpus: 2,
            },
            None,
        )
    }

    fn verdict(test: impl Fn(u32) -> Result<(), String>) -> (Outcome, Vec<String>) {
        let mut c = ctx();
        let found = P.run(&mut c, |_| 0u32..1000, test);
        let r = P.report(&mut c, found, |v| vec![format!("value {v}")], |_, _| Ok(()));
        let rep = c.finish("test.property".into(), r, std::time::Duration::ZERO);
        (rep.outcome, rep.notes)
    }

    #[test]
    fn a_sequence_that_errs_fails_the_case_and_is_shrunk() {
        // An error of any kind (a disagreement, or a request that failed
        // before it could be compared) fails the property: it is never only
        // a note under a PASS.
        let (outcome, notes) = verdict(|v| if v >= 10 { Err("reset failed".into()) } else { Ok(()) });
        assert_eq!(outcome, Outcome::Fail);
        assert!(notes.iter().any(|n| n.trim() == "value 10"), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("--seed 0")), "{notes:?}");
        assert_eq!(verdict(|_| Ok(())).0, Outcome::Pass);
    }

    #[test]
    fn the_seed_decides_the_values() {
        let seen = |seed| {
            let mut c = ctx();
            c.property.seed = Some(seed);
            let v = std::cell::RefCell::new(Vec::new());
            P.run(
                &mut c,
                |_| 0u32..1_000_000,
                |x| {
                    v.borrow_mut().push(x);
                    Ok(())
                },
            );
            v.into_inner()
        };
        assert_eq!(seen(1), seen(1));
        assert_ne!(seen(1), seen(2));
        assert_eq!(seen(1).len(), 32);
    }

    #[test]
    fn explore_keeps_a_failure_in_the_report_not_in_a_file() {
        // Whether it is a failure is decided after the case (a known
        // difference or issue makes it xfail): explore writes nothing
        // itself and leaves the finding to persist_finding.
        const Q: Property = Property {
            regressions: "test_only_never_written.txt",
            ..P
        };
        let mut c = ctx();
        c.property.explore = true;
        c.property.seed = Some(3);
        let found = Q.run(
            &mut c,
            |_| 0u32..1000,
            |v| if v >= 10 { Err("no".into()) } else { Ok(()) },
        );
        assert!(found.result.is_err());
        let f = c.observed("property.finding").expect("the finding is recorded").clone();
        assert_eq!(f["file"], "test_only_never_written.deep.txt");
        assert!(f["seed"].as_str().unwrap().parse::<PersistedSeed>().is_ok(), "{f}");
        assert_eq!(f["shrunk"], "10");
        let written = regressions_path("test_only_never_written.deep.txt");
        assert!(written.is_none_or(|p| !std::path::Path::new(p).exists()));
        // Without a failure nothing is recorded.
        let mut c = ctx();
        c.property.explore = true;
        Q.run(&mut c, |_| 0u32..1000, |_| Ok(()));
        assert!(c.observed("property.finding").is_none());
    }

    #[test]
    fn the_budget_stops_new_sequences_but_runs_one() {
        let mut c = ctx();
        c.property.deadline_unix_ms = Some(0);
        let n = std::cell::Cell::new(0);
        let found = P.run(
            &mut c,
            |_| 0u32..10,
            |_| {
                n.set(n.get() + 1);
                Ok(())
            },
        );
        assert_eq!((n.get(), found.sequences), (1, 1));
    }
}
