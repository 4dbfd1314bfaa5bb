//! `kharness explore`: argument checks and the two outputs (human, JSON
//! lines) of [`kharness::explore`].

use std::io::Write;
use std::time::Duration;

use kharness::explore::{self, ExploreEvent, ExploreOptions, ExploreSummary};
use kharness::runner::RunOptions;
use kharness::{KernelInfo, Outcome};

use crate::{CliError, ExitCode};

pub(crate) const AFTER: &str = "Examples:
  kharness explore                         every property case, 60 s
  kharness explore unix --time 5m          the unix family's property cases, five minutes
  kharness explore --seed 1234 --time 30s  seeds 1234, 1235, … (a reproducible exploration)
  kharness explore --format json           one JSON object per run, then a summary

Each round runs every selected property case once with one fresh seed
(printed), longer and wider sequences than `kharness run` uses, and without
replaying the regression files first. A failure is shrunk to a minimal
counterexample, printed in words with the mismatch, saved to the case's file
under fixtures/proptest-regressions/ (every later `kharness run` replays it)
and given the exact command that replays it:
  kharness run CASE --seed S --deep

Exit codes: 0 nothing found, 1 a failure found, 2 usage error,
            69 the harness could not run.";

#[derive(clap::Args, Debug)]
pub(crate) struct ExploreArgs {
    /// Property case ids, family prefixes or globs; none means every property case.
    filters: Vec<String>,
    /// Time budget: rounds start while it lasts (`90`, `90s`, `5m`, `1h`).
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    time: String,
    /// Seed of the first round (then S+1, S+2, …); default: fresh random seeds.
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Sequences per property per round (default: each case's explore count).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    cases: Option<i64>,
    /// Case processes in parallel (default: number of CPUs).
    #[arg(long, short, allow_negative_numbers = true)]
    jobs: Option<i64>,
    /// `human` or `json`.
    #[arg(long, value_enum, default_value_t = Fmt::Human)]
    format: Fmt,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
enum Fmt {
    /// One line per round, a block per failure, a table at the end.
    Human,
    /// One JSON object per case run, then a summary.
    Json,
}

/// Parses `90`, `90s`, `5m`, `1h`, `500ms`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; write 90, 90s, 5m or 1h"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("`{s}`: unknown unit `{unit}`; use ms, s, m or h")),
    };
    if d.is_zero() || d > Duration::from_secs(7 * 24 * 3600) {
        return Err(format!("`{s}` is out of range; give a budget from 1 ms to 7 days"));
    }
    Ok(d)
}

pub(crate) fn explore(args: ExploreArgs) -> Result<ExitCode, CliError> {
    let budget = parse_duration(&args.time).map_err(|e| CliError::Usage(format!("--time {e}")))?;
    let jobs = crate::validate_jobs(args.jobs)?;
    let cases = match args.cases {
        None => None,
        Some(n) if (1..=1_000_000).contains(&n) => Some(n as u32),
        Some(n) => {
            return Err(CliError::Usage(format!(
                "--cases {n} is out of range; give a number of sequences per property from 1 to 1000000"
            )))
        }
    };
    let selected = crate::select_nonempty(&args.filters)?;
    let instances: Vec<_> = selected
        .into_iter()
        .filter(|i| kharness_cases::PROPERTY_CASES.contains(&i.def.id))
        .collect();
    if instances.is_empty() {
        return Err(CliError::Usage(format!(
            "no property case among {:?}; the property cases are {}",
            args.filters,
            kharness_cases::PROPERTY_CASES.join(", ")
        )));
    }
    crate::enter_privileged()?;
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Harness(format!("cannot find own executable to run cases: {e}")))?;
    let kernel = KernelInfo::probe();
    let opts = ExploreOptions {
        budget,
        seed: args.seed,
        cases,
        run: RunOptions {
            jobs,
            exe,
            timeout_scale: 1.0,
            repeat: 1,
            property: Default::default(),
            retries: 0,
            known_issues: kharness::known_issues::built_in(),
        },
    };
    let mut out = std::io::stdout().lock();
    if args.format == Fmt::Human {
        let _ = writeln!(
            out,
            "kharness explore — kernel {}, {} property cases, {:?} budget, {} jobs, {}",
            kernel.release,
            instances.len(),
            budget,
            jobs,
            match args.seed {
                Some(s) => format!("seeds from {s}"),
                None => "fresh seeds".to_string(),
            }
        );
    }
    let mut line: Vec<String> = Vec::new();
    let mut current_round = 0;
    let summary = explore::explore(kernel, instances, &opts, &mut |ev| {
        // A failure (not an xfail: a known difference is no new finding)
        // goes to its case's deep regression file, replayed by every run.
        if let ExploreEvent::Run { report, .. } = ev {
            if report.outcome == Outcome::Fail {
                match kharness_cases::prop::persist_finding(report) {
                    Ok(Some(p)) if args.format == Fmt::Human => {
                        let _ = writeln!(out, "  saved {} in {p}", report.case);
                    }
                    Ok(_) => {}
                    Err(e) => eprintln!("kharness explore: {e}"),
                }
            }
        }
        match args.format {
            Fmt::Json => {
                let _ = writeln!(out, "{}", serde_json::to_string(ev).expect("event serialises"));
            }
            Fmt::Human => human_event(&mut out, ev, &mut line, &mut current_round),
        }
    });
    if args.format == Fmt::Human {
        human_summary(&mut out, &summary);
    }
    Ok(if summary.found() > 0 {
        ExitCode::CaseFailed
    } else {
        ExitCode::Ok
    })
}

fn human_event(out: &mut impl Write, ev: &ExploreEvent, line: &mut Vec<String>, current: &mut u32) {
    match ev {
        ExploreEvent::Run {
            round,
            seed,
            elapsed_ms,
            report,
        } => {
            if *round != *current {
                *current = *round;
                line.clear();
            }
            let seqs = report
                .observations
                .get("property.sequences")
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            let word = match report.outcome {
                Outcome::Pass => format!("ok ({seqs})"),
                o => o.label().to_lowercase(),
            };
            let _ = writeln!(
                out,
                "  round {round:<4} seed {seed:<20} {:>7.1} s  {:<28} {word}",
                *elapsed_ms as f64 / 1000.0,
                report.case
            );
            if report.outcome == Outcome::Fail {
                let _ = writeln!(out, "\n  FOUND  {} (round {round}, seed {seed})", report.case);
                for n in &report.notes {
                    let _ = writeln!(out, "         {n}");
                }
                for m in report.mismatches.iter().take(8) {
                    let _ = writeln!(out, "         mismatch: {m}");
                }
                if report.notes.is_empty() {
                    if let Some(r) = &report.reason {
                        let _ = writeln!(out, "         {r}");
                    }
                }
                if !report.notes.iter().any(|n| n.starts_with("replay:")) {
                    let _ = writeln!(
                        out,
                        "         replay: {}",
                        explore::replay_command(&report.case, *seed, None)
                    );
                }
                let _ = writeln!(out);
            } else if report.outcome == Outcome::Skip {
                let _ = writeln!(
                    out,
                    "         skips here: {}",
                    report.reason.as_deref().unwrap_or("no reason given")
                );
            }
        }
        ExploreEvent::Summary(_) => {}
    }
}

fn human_summary(out: &mut impl Write, s: &ExploreSummary) {
    let _ = writeln!(
        out,
        "\n{} rounds in {:.1} s; {} failure(s) found",
        s.rounds,
        s.duration_ms as f64 / 1000.0,
        s.found()
    );
    let _ = writeln!(out, "  {:<28} {:>5} {:>10}  found", "case", "runs", "sequences");
    for c in &s.cases {
        let found = match &c.found {
            Some(f) => format!("after {:.1} s: {}", f.elapsed_ms as f64 / 1000.0, f.replay),
            None if c.skipped > 0 => "skipped here".to_string(),
            None => "—".to_string(),
        };
        let _ = writeln!(out, "  {:<28} {:>5} {:>10}  {found}", c.case, c.runs, c.sequences);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-3s").is_err());
    }
}
