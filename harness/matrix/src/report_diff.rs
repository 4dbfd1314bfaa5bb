//! `kharness report diff BASE NEW`: what changed between two reports of
//! the same catalog — a run report (`kharness run --format json`) or a
//! matrix report (`kharness matrix --format json`, `report merge`).
//!
//! Results are matched by kernel (the matrix column name; `host` for a run
//! report) and case instance. A change of outcome is a **regression** when
//! a case that passed, xfailed, skipped or was flaky now fails, and a
//! **fix** when a failing case now passes or xfails; any other change of
//! outcome (pass → skip, pass → flaky…) is listed with the reason the new
//! report gives. Cases only in one report are new or removed; a kernel that
//! completed before and not now is a regression of its own. On the same
//! kernel release, every figure whose value moved is an **observation
//! change**, except those the case marked volatile (ports, inodes, pids,
//! timings, seeds) and those whose names look like durations.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use kharness::case::{CaseReport, Outcome};
use kharness::model::Value;

use crate::results::{KernelStatus, Matrix};

/// One side of the comparison: kernels by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Side {
    /// What the report is (`run report`, `matrix report`).
    pub kind: &'static str,
    /// Kernel name → what ran there.
    pub kernels: BTreeMap<String, KernelSide>,
}

/// One kernel's results in a report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KernelSide {
    /// `uname -r`, when known.
    pub release: Option<String>,
    /// Whether the catalog ran to the end there (and if not, how far).
    pub status: Option<KernelStatus>,
    /// Case instance → its result (with `--repeat`, the worst repetition).
    pub results: BTreeMap<String, CaseReport>,
}

/// Reads a report: a matrix JSON document, or the JSON lines of a run.
pub fn load(text: &str) -> Result<Side, String> {
    if let Ok(m) = serde_json::from_str::<Matrix>(text) {
        return Ok(from_matrix(&m));
    }
    let mut side = Side {
        kind: "run report",
        ..Side::default()
    };
    let mut host = KernelSide {
        status: Some(KernelStatus::Completed),
        ..KernelSide::default()
    };
    let mut lines = 0;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: not JSON ({e})", n + 1))?;
        lines += 1;
        match v["type"].as_str() {
            Some("header") => host.release = v["kernel"]["release"].as_str().map(str::to_string),
            Some("result") => {
                kharness::report::json::unflake(&mut v);
                let r: CaseReport =
                    serde_json::from_value(v).map_err(|e| format!("line {}: not a kharness result ({e})", n + 1))?;
                let keep = match host.results.get(&r.case) {
                    Some(old) => severity(&r) > severity(old),
                    None => true,
                };
                if keep {
                    host.results.insert(r.case.clone(), r);
                }
            }
            _ => {}
        }
    }
    if lines == 0 {
        return Err(
            "empty; give a report written by `kharness run --format json` or `kharness matrix --format json`".into(),
        );
    }
    if host.release.is_none() && host.results.is_empty() {
        return Err("neither a matrix report nor the JSON lines of a run (no header, no result)".into());
    }
    side.kernels.insert("host".into(), host);
    Ok(side)
}

/// The kernels of a matrix report.
pub fn from_matrix(m: &Matrix) -> Side {
    let mut side = Side {
        kind: "matrix report",
        ..Side::default()
    };
    for k in &m.kernels {
        let mut results: BTreeMap<String, CaseReport> = BTreeMap::new();
        for r in &k.results {
            let keep = match results.get(&r.report.case) {
                Some(old) => severity(&r.report) > severity(old),
                None => true,
            };
            if keep {
                results.insert(r.report.case.clone(), r.report.clone());
            }
        }
        side.kernels.insert(
            k.name.clone(),
            KernelSide {
                release: k.release.clone(),
                status: Some(k.status),
                results,
            },
        );
    }
    side
}

/// Which of two repetitions of a case speaks for it: a failure first, then
/// a flaky one.
fn severity(r: &CaseReport) -> u8 {
    match r.outcome {
        Outcome::Fail => 3,
        _ if r.is_flaky() => 2,
        Outcome::Pass => 0,
        _ => 1,
    }
}

/// A case whose outcome changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Kernel name.
    pub kernel: String,
    /// Case instance.
    pub case: String,
    /// Its verdict in the base report (`pass`, `fail`, `skip`, `xfail`, `flaky`).
    pub from: String,
    /// Its verdict in the new report.
    pub to: String,
    /// Why, from the report that explains it (the new failure's first
    /// mismatch, the skip's reason, the old failure a fix removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// A case in only one of the reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// Kernel name.
    pub kernel: String,
    /// Case instance.
    pub case: String,
    /// Its verdict in the report that has it.
    pub verdict: String,
}

/// A kernel added, removed, or whose run got further or less far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelChange {
    /// Kernel name.
    pub kernel: String,
    /// Status in the base report (`absent` when not there).
    pub from: String,
    /// Status in the new report.
    pub to: String,
    /// A completed kernel that no longer completes.
    pub regression: bool,
}

/// A figure whose value moved between the runs on the same kernel release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservationChange {
    /// Kernel name.
    pub kernel: String,
    /// Case instance.
    pub case: String,
    /// Observation name.
    pub name: String,
    /// Its base value (`null`: not recorded).
    pub from: Value,
    /// Its new value.
    pub to: Value,
}

/// Everything that changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diff {
    /// Label of the base report (its path).
    pub base: String,
    /// Label of the new report.
    pub new: String,
    /// Cases that no longer pass, xfail, skip or flake, but fail.
    pub regressions: Vec<Change>,
    /// Cases that failed and now pass or xfail.
    pub fixes: Vec<Change>,
    /// Other outcome changes, with the reason.
    pub changes: Vec<Change>,
    /// Kernels added, removed, or with another status.
    pub kernels: Vec<KernelChange>,
    /// Cases only in the new report.
    pub new_cases: Vec<Presence>,
    /// Cases only in the base report (on a kernel that completed in both).
    pub removed_cases: Vec<Presence>,
    /// Figures that moved, on the same kernel release.
    pub observations: Vec<ObservationChange>,
    /// Figures that moved but are volatile or durations (not listed).
    pub volatile_ignored: usize,
    /// Kernels whose releases differ, so whose figures were not compared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub release_changed: Vec<String>,
}

impl Diff {
    /// Whether anything got worse (the `report diff` exit code 1).
    pub fn has_regression(&self) -> bool {
        !self.regressions.is_empty() || self.kernels.iter().any(|k| k.regression)
    }
}

/// Whether an observation name looks like a duration or a time, which no
/// two runs share (`duration_ms`, `connect.elapsed_us`, `tcpi_rtt`).
pub fn looks_like_duration(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase();
    ["duration", "elapsed", "latency", "wall", "jiffies"]
        .iter()
        .any(|w| last.contains(w))
        || [
            "_ms", "_us", "_ns", "_usec", "_msec", "_nsec", "_secs", "_sec", "_time", "rtt", "rttvar",
        ]
        .iter()
        .any(|s| last.ends_with(s))
        || last.starts_with("time_")
        || last.starts_with("rtt")
}

fn status_word(s: Option<KernelStatus>) -> String {
    s.map(|s| s.label().to_string()).unwrap_or_else(|| "absent".into())
}

fn first_reason(r: &CaseReport) -> Option<String> {
    if r.is_flaky() {
        return r.attempts[0]
            .reason
            .clone()
            .map(|x| format!("failed on attempt 1: {x}"));
    }
    r.reason.clone()
}

/// Compares `base` with `new`.
pub fn diff(base: &Side, new: &Side, base_label: &str, new_label: &str) -> Diff {
    let mut d = Diff {
        base: base_label.to_string(),
        new: new_label.to_string(),
        ..Diff::default()
    };
    let mut names: Vec<&String> = base.kernels.keys().chain(new.kernels.keys()).collect();
    names.sort();
    names.dedup();
    for kernel in names {
        let (b, n) = (base.kernels.get(kernel), new.kernels.get(kernel));
        let (bs, ns) = (b.and_then(|k| k.status), n.and_then(|k| k.status));
        if b.is_none() || n.is_none() || bs != ns {
            d.kernels.push(KernelChange {
                kernel: kernel.clone(),
                from: if b.is_some() { status_word(bs) } else { "absent".into() },
                to: if n.is_some() { status_word(ns) } else { "absent".into() },
                regression: bs == Some(KernelStatus::Completed) && ns != Some(KernelStatus::Completed),
            });
        }
        let empty = KernelSide::default();
        let (b, n) = (b.unwrap_or(&empty), n.unwrap_or(&empty));
        let same_release = b.release.is_some() && b.release == n.release;
        if b.release.is_some() && n.release.is_some() && !same_release {
            d.release_changed.push(format!(
                "{kernel}: {} → {}",
                b.release.as_deref().unwrap_or("?"),
                n.release.as_deref().unwrap_or("?")
            ));
        }
        let new_completed = ns == Some(KernelStatus::Completed);
        for (case, nr) in &n.results {
            if !b.results.contains_key(case) {
                d.new_cases.push(Presence {
                    kernel: kernel.clone(),
                    case: case.clone(),
                    verdict: nr.verdict(),
                });
            }
        }
        for (case, br) in &b.results {
            let Some(nr) = n.results.get(case) else {
                // A kernel that stopped early is one kernel change, not a
                // list of every case it did not reach.
                if new_completed {
                    d.removed_cases.push(Presence {
                        kernel: kernel.clone(),
                        case: case.clone(),
                        verdict: br.verdict(),
                    });
                }
                continue;
            };
            let (from, to) = (br.verdict(), nr.verdict());
            if from != to {
                let change = |why: Option<String>| Change {
                    kernel: kernel.clone(),
                    case: case.clone(),
                    from: from.clone(),
                    to: to.clone(),
                    why,
                };
                if nr.outcome == Outcome::Fail {
                    d.regressions.push(change(first_reason(nr)));
                } else if br.outcome == Outcome::Fail && matches!(nr.outcome, Outcome::Pass | Outcome::Xfail) {
                    d.fixes.push(change(br.reason.clone().map(|r| format!("was: {r}"))));
                } else {
                    // pass → skip says why it skipped; skip → pass why it
                    // used to; pass → xfail names the known difference.
                    let why = first_reason(nr).or_else(|| first_reason(br).map(|r| format!("was: {r}")));
                    d.changes.push(change(why));
                }
            }
            if same_release && br.outcome != Outcome::Skip && nr.outcome != Outcome::Skip {
                let mut keys: Vec<&String> = br.observations.keys().chain(nr.observations.keys()).collect();
                keys.sort();
                keys.dedup();
                for name in keys {
                    let (bv, nv) = (
                        br.observations.get(name).unwrap_or(&Value::Null),
                        nr.observations.get(name).unwrap_or(&Value::Null),
                    );
                    if bv == nv {
                        continue;
                    }
                    if br.is_volatile(name) || nr.is_volatile(name) || looks_like_duration(name) {
                        d.volatile_ignored += 1;
                        continue;
                    }
                    d.observations.push(ObservationChange {
                        kernel: kernel.clone(),
                        case: case.clone(),
                        name: name.clone(),
                        from: bv.clone(),
                        to: nv.clone(),
                    });
                }
            }
        }
    }
    d
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "(absent)".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn where_(kernel: &str, case: &str, single: bool) -> String {
    if single {
        case.to_string()
    } else {
        format!("{case} on {kernel}")
    }
}

/// Whether every entry is on one kernel (a run report): then kernels are
/// not named.
fn single_kernel(d: &Diff) -> bool {
    let mut ks: Vec<&str> = d
        .regressions
        .iter()
        .chain(&d.fixes)
        .chain(&d.changes)
        .map(|c| c.kernel.as_str())
        .chain(d.new_cases.iter().chain(&d.removed_cases).map(|p| p.kernel.as_str()))
        .chain(d.observations.iter().map(|o| o.kernel.as_str()))
        .chain(d.kernels.iter().map(|k| k.kernel.as_str()))
        .collect();
    ks.sort();
    ks.dedup();
    ks.len() <= 1 && d.kernels.is_empty()
}

/// The one-line verdict.
pub fn headline(d: &Diff) -> String {
    let kernel_regressions = d.kernels.iter().filter(|k| k.regression).count();
    format!(
        "{} regression{}{}, {} fix{}, {} other outcome change{}, {} new case{}, {} removed, {} figure{} moved",
        d.regressions.len(),
        if d.regressions.len() == 1 { "" } else { "s" },
        if kernel_regressions > 0 {
            format!(" (and {kernel_regressions} kernel(s) that no longer complete)")
        } else {
            String::new()
        },
        d.fixes.len(),
        if d.fixes.len() == 1 { "" } else { "es" },
        d.changes.len(),
        if d.changes.len() == 1 { "" } else { "s" },
        d.new_cases.len(),
        if d.new_cases.len() == 1 { "" } else { "s" },
        d.removed_cases.len(),
        d.observations.len(),
        if d.observations.len() == 1 { "" } else { "s" },
    )
}

/// Plain text.
pub fn text(d: &Diff) -> String {
    let single = single_kernel(d);
    let mut out = String::new();
    let _ = writeln!(out, "kharness report diff: {} → {}", d.base, d.new);
    let section = |out: &mut String, title: &str, rows: Vec<String>| {
        if !rows.is_empty() {
            let _ = writeln!(out, "\n{title} ({}):", rows.len());
            for r in rows {
                let _ = writeln!(out, "  {r}");
            }
        }
    };
    let change_rows = |cs: &[Change]| -> Vec<String> {
        cs.iter()
            .map(|c| {
                format!(
                    "{}: {} → {}{}",
                    where_(&c.kernel, &c.case, single),
                    c.from,
                    c.to,
                    c.why
                        .as_deref()
                        .map(|w| format!(" — {}", one_line(w)))
                        .unwrap_or_default()
                )
            })
            .collect()
    };
    let kernel_rows: Vec<String> = d
        .kernels
        .iter()
        .map(|k| {
            format!(
                "{}: {} → {}{}",
                k.kernel,
                k.from,
                k.to,
                if k.regression { " (REGRESSION)" } else { "" }
            )
        })
        .collect();
    section(&mut out, "KERNELS", kernel_rows);
    section(&mut out, "REGRESSIONS", change_rows(&d.regressions));
    section(&mut out, "FIXES", change_rows(&d.fixes));
    section(&mut out, "OTHER OUTCOME CHANGES", change_rows(&d.changes));
    let presence = |ps: &[Presence]| -> Vec<String> {
        ps.iter()
            .map(|p| format!("{} ({})", where_(&p.kernel, &p.case, single), p.verdict))
            .collect()
    };
    section(&mut out, "NEW CASES", presence(&d.new_cases));
    section(&mut out, "REMOVED CASES", presence(&d.removed_cases));
    section(
        &mut out,
        "OBSERVATION CHANGES",
        d.observations
            .iter()
            .map(|o| {
                format!(
                    "{} {}: {} → {}",
                    where_(&o.kernel, &o.case, single),
                    o.name,
                    show(&o.from),
                    show(&o.to)
                )
            })
            .collect(),
    );
    if !d.release_changed.is_empty() {
        let _ = writeln!(
            out,
            "\nfigures not compared (another kernel release): {}",
            d.release_changed.join("; ")
        );
    }
    let _ = writeln!(out, "\n{}", headline(d));
    let _ = writeln!(
        out,
        "{} moved figure(s) left out as volatile or durations",
        d.volatile_ignored
    );
    out
}

/// Markdown, for a pull-request comment: the headline, then a table per
/// kind of change (observation changes folded away, at most 100 rows).
pub fn markdown(d: &Diff) -> String {
    let single = single_kernel(d);
    let esc = |s: &str| one_line(s).replace('|', "\\|");
    let mut out = String::new();
    let icon = if d.has_regression() { "❌" } else { "✅" };
    let _ = writeln!(out, "## kharness: {icon} {}\n", headline(d));
    let _ = writeln!(out, "Base `{}`, new `{}`.\n", esc(&d.base), esc(&d.new));
    if !d.kernels.is_empty() {
        let _ = writeln!(out, "### Kernels\n\n| kernel | before | now |\n|---|---|---|");
        for k in &d.kernels {
            let mark = if k.regression { " ❌" } else { "" };
            let _ = writeln!(out, "| {} | {} | {}{mark} |", esc(&k.kernel), k.from, k.to);
        }
        out.push('\n');
    }
    for (title, cs) in [
        ("Regressions", &d.regressions),
        ("Fixes", &d.fixes),
        ("Other outcome changes", &d.changes),
    ] {
        if cs.is_empty() {
            continue;
        }
        let _ = writeln!(out, "### {title}\n\n| case | before | now | why |\n|---|---|---|---|");
        for c in cs {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                esc(&where_(&c.kernel, &c.case, single)),
                c.from,
                c.to,
                esc(c.why.as_deref().unwrap_or(""))
            );
        }
        out.push('\n');
    }
    for (title, ps) in [("New cases", &d.new_cases), ("Removed cases", &d.removed_cases)] {
        if ps.is_empty() {
            continue;
        }
        let list: Vec<String> = ps
            .iter()
            .map(|p| format!("`{}` ({})", esc(&where_(&p.kernel, &p.case, single)), p.verdict))
            .collect();
        let _ = writeln!(out, "### {title}\n\n{}\n", list.join(", "));
    }
    if !d.observations.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>{} observation change(s) on the same kernel release</summary>\n\n| case | figure | before | now |\n|---|---|---|---|",
            d.observations.len()
        );
        for o in d.observations.iter().take(100) {
            let _ = writeln!(
                out,
                "| `{}` | `{}` | {} | {} |",
                esc(&where_(&o.kernel, &o.case, single)),
                esc(&o.name),
                esc(&show(&o.from)),
                esc(&show(&o.to))
            );
        }
        if d.observations.len() > 100 {
            let _ = writeln!(out, "\n… and {} more.", d.observations.len() - 100);
        }
        out.push_str("\n</details>\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::report;

    fn side(results: Vec<CaseReport>) -> Side {
        let mut k = KernelSide {
            release: Some("6.1.0".into()),
            status: Some(KernelStatus::Completed),
            results: BTreeMap::new(),
        };
        for r in results {
            k.results.insert(r.case.clone(), r);
        }
        let mut s = Side {
            kind: "run report",
            kernels: BTreeMap::new(),
        };
        s.kernels.insert("host".into(), k);
        s
    }

    fn with_obs(mut r: CaseReport, obs: &[(&str, i64)]) -> CaseReport {
        for (k, v) in obs {
            r.observations.insert(k.to_string(), (*v).into());
        }
        r
    }

    #[test]
    fn classifies_every_kind_of_change() {
        let base = side(vec![
            report("a.regressed", Outcome::Pass, None),
            report("a.xfail_to_fail", Outcome::Xfail, Some("old-kernel: evidence")),
            report("a.fixed", Outcome::Fail, Some("x: expected 1, observed 0")),
            report("a.now_skips", Outcome::Pass, None),
            report("a.removed", Outcome::Pass, None),
            report("a.same", Outcome::Pass, None),
        ]);
        let new = side(vec![
            report("a.regressed", Outcome::Fail, Some("y: expected 2, observed 3")),
            report("a.xfail_to_fail", Outcome::Fail, Some("z")),
            report("a.fixed", Outcome::Pass, None),
            report("a.now_skips", Outcome::Skip, Some("kernel lacks SCTP")),
            report("a.added", Outcome::Pass, None),
            report("a.same", Outcome::Pass, None),
        ]);
        let d = diff(&base, &new, "base", "new");
        let cases = |cs: &[Change]| cs.iter().map(|c| c.case.clone()).collect::<Vec<_>>();
        assert_eq!(cases(&d.regressions), ["a.regressed", "a.xfail_to_fail"]);
        assert_eq!(d.regressions[0].why.as_deref(), Some("y: expected 2, observed 3"));
        assert_eq!(cases(&d.fixes), ["a.fixed"]);
        assert_eq!(cases(&d.changes), ["a.now_skips"]);
        assert_eq!(d.changes[0].why.as_deref(), Some("kernel lacks SCTP"));
        assert_eq!(d.new_cases.len(), 1);
        assert_eq!(d.removed_cases[0].case, "a.removed");
        assert!(d.has_regression());
        assert!(text(&d).contains("a.regressed: pass → fail — y: expected 2"));
        assert!(markdown(&d).contains("### Regressions"));

        // Nothing changed: no regression, nothing listed.
        let d = diff(&base, &base, "b", "b");
        assert!(!d.has_regression() && d.changes.is_empty() && d.observations.is_empty());
    }

    #[test]
    fn observations_skip_volatile_and_durations() {
        let mut b = with_obs(
            report("a.x", Outcome::Pass, None),
            &[("port", 1000), ("count", 3), ("connect_ms", 5), ("same", 1)],
        );
        b.volatile = vec!["port".into()];
        let mut n = with_obs(
            report("a.x", Outcome::Pass, None),
            &[("port", 2000), ("count", 4), ("connect_ms", 9), ("same", 1)],
        );
        n.volatile = vec!["port".into()];
        let d = diff(&side(vec![b.clone()]), &side(vec![n.clone()]), "b", "n");
        assert_eq!(d.observations.len(), 1, "{:?}", d.observations);
        assert_eq!(d.observations[0].name, "count");
        assert_eq!(d.volatile_ignored, 2);
        assert!(!d.has_regression());
        // Another release: figures are not compared.
        let mut other = side(vec![n]);
        other.kernels.get_mut("host").unwrap().release = Some("6.12.0".into());
        let d = diff(&side(vec![b]), &other, "b", "n");
        assert!(d.observations.is_empty() && d.release_changed.len() == 1);
    }

    #[test]
    fn glob_volatile_and_duration_names() {
        let mut r = report("a.x", Outcome::Pass, None);
        r.volatile = vec!["*.moved.*".into()];
        assert!(r.is_volatile("sender.moved.Tcp.OutSegs"));
        assert!(!r.is_volatile("sender.Tcp.OutSegs"));
        assert!(looks_like_duration("connect.elapsed_us"));
        assert!(looks_like_duration("client.tcpi_rtt"));
        assert!(looks_like_duration("duration_ms"));
        assert!(!looks_like_duration("TcpExt.TCPTimeouts"));
        assert!(!looks_like_duration("server.Tcp.OutRsts"));
    }

    #[test]
    fn kernel_that_stops_completing_is_a_regression() {
        let base = side(vec![report("a.x", Outcome::Pass, None)]);
        let mut new = side(vec![]);
        new.kernels.get_mut("host").unwrap().status = Some(KernelStatus::Crashed);
        let d = diff(&base, &new, "b", "n");
        assert!(d.has_regression());
        assert!(
            d.removed_cases.is_empty(),
            "the crash is one change, not a removed list"
        );
        assert_eq!(d.kernels[0].to, "crashed");
    }

    #[test]
    fn flaky_is_its_own_verdict() {
        let b = report("a.x", Outcome::Pass, None);
        let mut n = report("a.x", Outcome::Pass, None);
        let failed = report("a.x", Outcome::Fail, Some("q: expected 1, observed 2"));
        n.attempts = vec![kharness::case::Attempt::of(1, &failed)];
        let d = diff(&side(vec![b]), &side(vec![n]), "b", "n");
        assert!(!d.has_regression());
        assert_eq!(d.changes[0].to, "flaky");
        assert!(d.changes[0].why.as_deref().unwrap().contains("attempt 1"));
    }

    #[test]
    fn loads_run_lines_with_a_flaky_result() {
        let r = report("a.x", Outcome::Pass, None);
        let mut line = serde_json::to_value(&r).unwrap();
        line["type"] = "result".into();
        line["final_outcome"] = "pass".into();
        line["outcome"] = "flaky".into();
        let text =
            format!("{{\"type\":\"header\",\"kernel\":{{\"release\":\"6.1.0\"}}}}\n{line}\n{{\"type\":\"summary\"}}\n");
        let s = load(&text).unwrap();
        assert_eq!(s.kernels["host"].release.as_deref(), Some("6.1.0"));
        assert_eq!(s.kernels["host"].results["a.x"].outcome, Outcome::Pass);
        assert!(load("").is_err());
        assert!(load("{\"x\":1}").is_err());
        assert!(load("not json").is_err());
    }
}
