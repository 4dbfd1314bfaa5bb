//! Matrix reporters: a terminal table, markdown, a self-contained HTML page
//! and JUnit XML (one testsuite per kernel), all from the same [`Matrix`].
//!
//! ```text
//! case                 5.10             6.1              host
//!                      5.10.0-46-cloud  6.1.0-47-cloud   6.18.44-fc
//! tcp.fill[veth]       pass             pass             pass
//! tcp.info_diag        xfail [1]        pass             pass
//! sctp.basic           skip [2]         pass             skip [3]
//! ```
//!
//! Reasons go to a numbered footnote list (identical reasons share one
//! number); in HTML they are also on each cell's hover text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use kharness::case::Outcome;

use super::diff::{self, Differences, OUTCOME};
use super::results::{case_names, KernelRun, KernelStatus, Matrix};

/// The differences to show: the ones computed with the catalog's
/// explanations when the caller filled them in, else computed here.
pub fn differences_of(m: &Matrix, order: &[String]) -> Differences {
    m.differences
        .clone()
        .unwrap_or_else(|| diff::compute(m, order, &BTreeMap::new()))
}

/// The version a column shows under its name: the kernel's release.
/// The kernel's real version (Debian's `5.10.262`, from /proc/version in
/// the guest), with the release string where it says more (`6.1.0-41-rt-amd64`).
fn shown_version(k: &KernelRun) -> String {
    match (&k.kernel, &k.release) {
        (Some(info), Some(rel)) => {
            let (a, b, c) = info.version;
            let v = format!("{a}.{b}.{c}");
            if rel.starts_with(&v) {
                rel.clone()
            } else {
                format!("{v} ({rel})")
            }
        }
        (None, Some(rel)) => rel.clone(),
        _ => k.status.label().to_string(),
    }
}

fn diff_headline(d: &Differences) -> String {
    let n = d.count();
    format!(
        "differences: {} observation{} differ{} across {} kernel{} in {} case{}{}",
        n,
        if n == 1 { "" } else { "s" },
        if n == 1 { "s" } else { "" },
        d.kernels.len(),
        if d.kernels.len() == 1 { "" } else { "s" },
        d.cases.len(),
        if d.cases.len() == 1 { "" } else { "s" },
        if d.volatile_left_out > 0 {
            format!(
                " ({} volatile observation{} left out)",
                d.volatile_left_out,
                if d.volatile_left_out == 1 { "" } else { "s" }
            )
        } else {
            String::new()
        }
    )
}

/// Why a case's values differ, in words: the per-kernel gates and reasons,
/// failed predictions, and what the case documents.
fn diff_explanation(d: &Differences, c: &diff::CaseDiff) -> Vec<String> {
    let mut out = Vec::new();
    for (i, k) in d.kernels.iter().enumerate() {
        let mut parts: Vec<String> = Vec::new();
        if let Some(g) = c.gates.get(i).filter(|g| !g.is_empty()) {
            parts.push(g.join(", "));
        }
        let outcome = c
            .rows
            .iter()
            .find(|r| r.observation == OUTCOME)
            .and_then(|r| r.values.get(i).cloned().flatten());
        if let Some(r) = c.reasons.get(i).cloned().flatten() {
            let what = match outcome.as_deref() {
                Some("xfail") => "known issue",
                Some("skip") => "skipped",
                Some("FAIL") => "FAILED",
                _ => "reason",
            };
            parts.push(format!("{what}: {r}"));
        }
        for r in &c.rows {
            if let Some(Some(e)) = r.expected.get(i) {
                parts.push(format!("{}: {e}", r.observation));
            }
        }
        if !parts.is_empty() {
            out.push(format!("{k}: {}", parts.join("; ")));
        }
    }
    if let Some(e) = &c.explanation {
        out.push(format!("the model: {e}"));
    }
    out
}

/// The differences section of the terminal output.
pub fn differences_text(d: &Differences, color: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", diff_headline(d));
    if d.cases.is_empty() {
        return out;
    }
    const MAXW: usize = 28;
    let fit = |s: &str| -> String {
        let s = s.replace('\n', " ");
        if s.chars().count() > MAXW {
            let mut t: String = s.chars().take(MAXW - 1).collect();
            t.push('…');
            t
        } else {
            s
        }
    };
    let first_w = d
        .cases
        .iter()
        .flat_map(|c| std::iter::once(c.case.len()).chain(c.rows.iter().map(|r| r.observation.len() + 2)))
        .max()
        .unwrap_or(4)
        .min(48);
    let widths: Vec<usize> = (0..d.kernels.len())
        .map(|i| {
            d.cases
                .iter()
                .flat_map(|c| c.rows.iter())
                .map(|r| r.values[i].as_deref().map(|v| fit(v).chars().count() + 1).unwrap_or(1))
                .chain(std::iter::once(d.kernels[i].len()))
                .max()
                .unwrap_or(1)
        })
        .collect();
    let _ = write!(out, "{:<first_w$}", "");
    for (i, k) in d.kernels.iter().enumerate() {
        let _ = write!(out, "  {:<w$}", k, w = widths[i]);
    }
    out.push('\n');
    for c in &d.cases {
        let _ = writeln!(out, "{}", c.case);
        for r in &c.rows {
            let name = format!("  {}", r.observation);
            let _ = write!(out, "{:<first_w$}", fit_to(&name, first_w));
            for (i, v) in r.values.iter().enumerate() {
                let cell = match v {
                    None => "—".to_string(),
                    Some(v) => format!("{}{}", fit(v), if r.changed[i] { "*" } else { "" }),
                };
                let pad = format!("{cell:<w$}", w = widths[i]);
                let pad = if color && r.changed[i] {
                    format!("\x1b[1;33m{pad}\x1b[0m")
                } else {
                    pad
                };
                let _ = write!(out, "  {pad}");
            }
            out.push('\n');
        }
        for line in diff_explanation(d, c) {
            let _ = writeln!(out, "    {line}");
        }
    }
    out.push_str("(* differs from the first kernel that has the value)\n");
    out
}

fn fit_to(s: &str, w: usize) -> String {
    if s.chars().count() > w {
        let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
        t.push('…');
        t
    } else {
        s.to_string()
    }
}

/// The differences section in markdown.
pub fn differences_markdown(d: &Differences) -> String {
    let esc = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::new();
    let _ = writeln!(out, "### Differences\n\n{}\n", diff_headline(d));
    if d.cases.is_empty() {
        return out;
    }
    let _ = write!(out, "| case | observation |");
    for k in &d.kernels {
        let _ = write!(out, " {} |", esc(k));
    }
    let _ = write!(out, "\n|---|---|");
    for _ in &d.kernels {
        out.push_str("---|");
    }
    out.push('\n');
    for c in &d.cases {
        for r in &c.rows {
            let _ = write!(out, "| `{}` | `{}` |", esc(&c.case), esc(&r.observation));
            for (i, v) in r.values.iter().enumerate() {
                match v {
                    None => out.push_str(" — |"),
                    Some(v) if r.changed[i] => {
                        let _ = write!(out, " **{}** |", esc(v));
                    }
                    Some(v) => {
                        let _ = write!(out, " {} |", esc(v));
                    }
                }
            }
            out.push('\n');
        }
    }
    out.push('\n');
    for c in &d.cases {
        let _ = writeln!(out, "- `{}`:", esc(&c.case));
        for line in diff_explanation(d, c) {
            let _ = writeln!(out, "  - {}", esc(&line));
        }
    }
    out
}

/// One cell of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// `pass`, `FAIL`, `skip`, `xfail`, `XPASS`, `flaky` (failed, then passed
    /// on a retry), or `—` (not run).
    pub label: &'static str,
    /// Outcome, if the case ran.
    pub outcome: Option<Outcome>,
    /// Footnote number.
    pub note: Option<usize>,
    /// The reason (for hover text).
    pub reason: Option<String>,
}

/// The table, laid out once for every format.
#[derive(Debug, Clone)]
pub struct Table {
    /// Kernel names.
    pub kernels: Vec<String>,
    /// Kernel releases (or status).
    pub releases: Vec<String>,
    /// (case, cells).
    pub rows: Vec<(String, Vec<Cell>)>,
    /// (number, kernel, case, reason).
    pub notes: Vec<(usize, String, String, String)>,
    /// Per-kernel summary rows (label, values).
    pub facts: Vec<(String, Vec<String>)>,
}

fn secs(ms: u64) -> String {
    if ms == 0 {
        "—".into()
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// The CPU time of a kernel's cases, summed, and the case that used the
/// most (`41.2 s (raw.verdict_property 9.1)`): under TCG the guest's wall
/// time is this divided among its vCPUs.
fn case_cpu(k: &KernelRun) -> String {
    let with: Vec<(&str, u64)> = k
        .results
        .iter()
        .filter_map(|r| r.report.cpu_ms.map(|c| (r.report.case.as_str(), c)))
        .collect();
    let Some((top, most)) = with.iter().max_by_key(|(_, c)| *c) else {
        return "—".into();
    };
    let total: u64 = with.iter().map(|(_, c)| c).sum();
    format!("{} ({top} {:.1})", secs(total), *most as f64 / 1000.0)
}

/// Lays out the table; `order` gives the preferred case order (the catalog).
pub fn table(m: &Matrix, order: &[String]) -> Table {
    let cases = case_names(m, order);
    let mut notes: Vec<(usize, String, String, String)> = Vec::new();
    let mut by_text: BTreeMap<String, usize> = BTreeMap::new();
    let mut note_for = |kernel: &str, case: &str, text: String| -> usize {
        if let Some(n) = by_text.get(&text) {
            return *n;
        }
        let n = by_text.len() + 1;
        by_text.insert(text.clone(), n);
        notes.push((n, kernel.to_string(), case.to_string(), text));
        n
    };
    let mut rows = Vec::new();
    for case in &cases {
        let mut cells = Vec::new();
        for k in &m.kernels {
            let cell = match k.result(case) {
                None => Cell {
                    label: "—",
                    outcome: None,
                    note: None,
                    reason: None,
                },
                Some(r) => {
                    let reason = k.reason_of(&r.report);
                    let note = match (&reason, r.report.outcome) {
                        (Some(text), o) if o != Outcome::Pass => Some(note_for(&k.name, case, text.clone())),
                        _ => None,
                    };
                    let label = match r.report.outcome {
                        _ if r.report.is_flaky() => "flaky",
                        Outcome::Pass => "pass",
                        Outcome::Fail => "FAIL",
                        Outcome::Skip => "skip",
                        Outcome::Xfail => "xfail",
                        Outcome::Xpass => "XPASS",
                    };
                    let note = match (note, r.report.attempts.first()) {
                        (None, Some(a)) if r.report.is_flaky() => Some(note_for(
                            &k.name,
                            case,
                            format!(
                                "flaky: failed {} time(s) before passing; attempt {}: {}",
                                r.report.attempts.len(),
                                a.attempt,
                                a.reason.clone().unwrap_or_default()
                            ),
                        )),
                        (n, _) => n,
                    };
                    Cell {
                        label,
                        outcome: Some(r.report.outcome),
                        note,
                        reason,
                    }
                }
            };
            cells.push(cell);
        }
        rows.push((case.clone(), cells));
    }
    let col = |f: &dyn Fn(&KernelRun) -> String| m.kernels.iter().map(f).collect::<Vec<String>>();
    let mut facts = vec![
        ("status".to_string(), col(&|k| k.status.label().to_string())),
        (
            "tcp_info bytes".to_string(),
            col(&|k| {
                k.kernel
                    .as_ref()
                    .map(|i| i.tcp_info_len.to_string())
                    .unwrap_or("—".into())
            }),
        ),
        (
            "accel".to_string(),
            col(&|k| {
                if k.accel.is_empty() {
                    "—".into()
                } else {
                    k.accel.clone()
                }
            }),
        ),
        (
            "initramfs build".to_string(),
            col(&|k| {
                if k.timings.initramfs_ms == 0 && k.accel != "tcg" && k.accel != "kvm" {
                    "—".into()
                } else {
                    format!("{} ms", k.timings.initramfs_ms)
                }
            }),
        ),
        ("boot to hello".to_string(), col(&|k| secs(k.timings.boot_ms))),
        ("catalog".to_string(), col(&|k| secs(k.timings.catalog_ms))),
        ("case cpu (most)".to_string(), col(&case_cpu)),
        (
            "pass/fail/skip/xfail/xpass".to_string(),
            col(&|k| {
                let c = k.counts();
                let g = |l: &str| c.get(l).copied().unwrap_or(0);
                format!(
                    "{}/{}/{}/{}/{}",
                    g("PASS"),
                    g("FAIL"),
                    g("SKIP"),
                    g("XFAIL"),
                    g("XPASS")
                )
            }),
        ),
        (
            "modules missing".to_string(),
            col(&|k| {
                let miss: Vec<String> = k
                    .missing_modules()
                    .iter()
                    .map(|m| {
                        if m.state == "unknown" {
                            format!("{}?", m.name)
                        } else {
                            m.name.clone()
                        }
                    })
                    .collect();
                if miss.is_empty() {
                    "none".into()
                } else {
                    miss.join(" ")
                }
            }),
        ),
    ];
    let mut warn_cells = Vec::new();
    for k in &m.kernels {
        if k.warnings.is_empty() {
            warn_cells.push("0".to_string());
        } else {
            let n = note_for(&k.name, "(console)", format!("{}: {}", k.name, k.warnings.join(" | ")));
            warn_cells.push(format!("{} [{n}]", k.warnings.len()));
        }
    }
    facts.push(("kernel warnings".into(), warn_cells));
    if m.kernels.iter().any(|k| k.explore.is_some()) {
        let mut cells = Vec::new();
        for k in &m.kernels {
            let Some(ex) = &k.explore else {
                cells.push("—".to_string());
                continue;
            };
            let sequences: u64 = ex.cases.iter().map(|c| c.sequences).sum();
            let mut cell = format!("{} rounds, {sequences} seqs", ex.rounds);
            for c in &ex.cases {
                if let Some(f) = &c.found {
                    let n = note_for(
                        &k.name,
                        &c.case,
                        format!(
                            "{}: explore found {} after {:.1} s: {}{}; replay: {}",
                            k.name,
                            c.case,
                            f.elapsed_ms as f64 / 1000.0,
                            f.counterexample.as_deref().unwrap_or("(no counterexample in words)"),
                            f.reason.as_deref().map(|r| format!(" — {r}")).unwrap_or_default(),
                            f.replay
                        ),
                    );
                    cell.push_str(&format!(", FOUND {} [{n}]", c.case));
                }
            }
            cells.push(cell);
        }
        facts.push(("explore".into(), cells));
    }
    for k in &m.kernels {
        if let Some(p) = &k.problem {
            note_for(&k.name, "(kernel)", format!("{}: {}", k.name, p));
        }
    }
    let releases = col(&shown_version);
    Table {
        kernels: col(&|k| k.name.clone()),
        releases,
        rows,
        notes,
        facts,
    }
}

fn cell_text(c: &Cell) -> String {
    match c.note {
        Some(n) => format!("{} [{n}]", c.label),
        None => c.label.to_string(),
    }
}

/// The terminal table (`color` adds ANSI colours).
pub fn text(m: &Matrix, order: &[String], color: bool) -> String {
    let t = table(m, order);
    let mut out = String::new();
    let total_cases = t.rows.len();
    let _ = writeln!(
        out,
        "kharness matrix — {} kernel{}, {} case{}, {:.1} s wall",
        t.kernels.len(),
        if t.kernels.len() == 1 { "" } else { "s" },
        total_cases,
        if total_cases == 1 { "" } else { "s" },
        m.wall_ms as f64 / 1000.0
    );
    let first_w = t
        .rows
        .iter()
        .map(|(c, _)| c.len())
        .chain(t.facts.iter().map(|(l, _)| l.len()))
        .max()
        .unwrap_or(4)
        .max(4);
    let widths: Vec<usize> = (0..t.kernels.len())
        .map(|i| {
            let mut w = t.kernels[i].len().max(t.releases[i].len().min(24));
            for (_, cells) in &t.rows {
                w = w.max(cell_text(&cells[i]).len());
            }
            for (_, v) in &t.facts {
                w = w.max(v[i].chars().count().min(24));
            }
            w
        })
        .collect();
    let paint = |s: String, o: Option<Outcome>| -> String {
        if !color {
            return s;
        }
        let code = match o {
            Some(Outcome::Pass) => "32",
            Some(Outcome::Fail) => "1;31",
            Some(Outcome::Skip) => "33",
            Some(Outcome::Xfail) => "36",
            Some(Outcome::Xpass) => "35",
            None => "2",
        };
        format!("\x1b[{code}m{s}\x1b[0m")
    };
    let fit = |s: &str, w: usize| -> String {
        if s.chars().count() > w {
            let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
            t.push('…');
            t
        } else {
            format!("{s:<w$}")
        }
    };
    let _ = write!(out, "{:<first_w$}", "case");
    for (i, k) in t.kernels.iter().enumerate() {
        let _ = write!(out, "  {}", fit(k, widths[i]));
    }
    out.push('\n');
    let _ = write!(out, "{:<first_w$}", "");
    for (i, r) in t.releases.iter().enumerate() {
        let _ = write!(out, "  {}", fit(r, widths[i]));
    }
    out.push('\n');
    for (case, cells) in &t.rows {
        let _ = write!(out, "{case:<first_w$}");
        for (i, c) in cells.iter().enumerate() {
            let _ = write!(
                out,
                "  {}",
                paint(format!("{:<w$}", cell_text(c), w = widths[i]), c.outcome)
            );
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{}",
        "-".repeat(first_w + widths.iter().map(|w| w + 2).sum::<usize>())
    );
    for (label, vals) in &t.facts {
        let _ = write!(out, "{label:<first_w$}");
        for (i, v) in vals.iter().enumerate() {
            let _ = write!(out, "  {}", fit(v, widths[i]));
        }
        out.push('\n');
    }
    if !t.notes.is_empty() {
        out.push('\n');
        for (n, kernel, case, text) in &t.notes {
            if case.starts_with('(') {
                let _ = writeln!(out, "[{n}] {text}");
            } else {
                let _ = writeln!(out, "[{n}] {case} on {kernel}: {text}");
            }
        }
    }
    out.push('\n');
    out.push_str(&differences_text(&differences_of(m, order), color));
    out.push_str("\nkernels:\n");
    for k in &m.kernels {
        let src = if k.source.is_empty() {
            k.description.as_str()
        } else {
            k.source.as_str()
        };
        let _ = writeln!(
            out,
            "  {:<w$}  {src}",
            k.name,
            w = t.kernels.iter().map(|n| n.len()).max().unwrap_or(4)
        );
        for n in &k.notes {
            let _ = writeln!(
                out,
                "  {:<w$}    {n}",
                "",
                w = t.kernels.iter().map(|n| n.len()).max().unwrap_or(4)
            );
        }
    }
    for k in &m.kernels {
        if !k.console_tail.is_empty() {
            let _ = writeln!(out, "\nconsole tail of {} ({}):", k.name, k.status.label());
            for l in &k.console_tail {
                let _ = writeln!(out, "  | {l}");
            }
        }
    }
    let mut totals = [0usize; 5];
    for k in &m.kernels {
        for r in &k.results {
            totals[match r.report.outcome {
                Outcome::Pass => 0,
                Outcome::Fail => 1,
                Outcome::Skip => 2,
                Outcome::Xfail => 3,
                Outcome::Xpass => 4,
            }] += 1;
        }
    }
    let not_done = m.kernels.iter().filter(|k| k.status != KernelStatus::Completed).count();
    let flaky = m
        .kernels
        .iter()
        .flat_map(|k| &k.results)
        .filter(|r| r.report.is_flaky())
        .count();
    // The failures again, last, next to the totals: a CI log shows its tail,
    // and the table with its footnotes is far above it by then.
    let failed: Vec<(&str, &str, String)> = m
        .kernels
        .iter()
        .flat_map(|k| {
            k.results
                .iter()
                .filter(|r| r.report.outcome == Outcome::Fail)
                .map(move |r| {
                    let reason = k
                        .reason_of(&r.report)
                        .unwrap_or_else(|| "no reason recorded; the JSON report has its checks".into());
                    (k.name.as_str(), r.report.case.as_str(), reason)
                })
        })
        .collect();
    if !failed.is_empty() {
        out.push_str("\nfailed:\n");
        for (kernel, case, reason) in &failed {
            let _ = writeln!(out, "  {case} on {kernel}: {reason}");
        }
    }
    out.push('\n');
    let _ = writeln!(out, "{} passed, {} failed, {} skipped", totals[0], totals[1], totals[2]);
    let _ = writeln!(
        out,
        "{} xfailed, {} xpassed{}; {} of {} kernels did not complete",
        totals[3],
        totals[4],
        if flaky > 0 {
            format!(" ({flaky} of the passes flaky)")
        } else {
            String::new()
        },
        not_done,
        m.kernels.len()
    );
    out
}

/// Markdown: a table and the footnotes.
pub fn markdown(m: &Matrix, order: &[String]) -> String {
    let t = table(m, order);
    let esc = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::new();
    let _ = writeln!(out, "## kharness matrix\n");
    let _ = write!(out, "| case |");
    for (k, r) in t.kernels.iter().zip(&t.releases) {
        let _ = write!(out, " {}<br>`{}` |", esc(k), esc(r));
    }
    let _ = write!(out, "\n|---|");
    for _ in &t.kernels {
        out.push_str("---|");
    }
    out.push('\n');
    for (case, cells) in &t.rows {
        let _ = write!(out, "| `{}` |", esc(case));
        for c in cells {
            let icon = match c.outcome {
                Some(Outcome::Pass) => "✅ ",
                Some(Outcome::Fail) => "❌ ",
                Some(Outcome::Skip) => "⏭️ ",
                Some(Outcome::Xfail) => "⚠️ ",
                Some(Outcome::Xpass) => "❗ ",
                None => "",
            };
            let icon = if c.label == "flaky" { "🔁 " } else { icon };
            let note = c.note.map(|n| format!(" [^{n}]")).unwrap_or_default();
            let _ = write!(out, " {icon}{}{note} |", c.label);
        }
        out.push('\n');
    }
    for (label, vals) in &t.facts {
        let _ = write!(out, "| *{}* |", esc(label));
        for v in vals {
            let _ = write!(out, " {} |", esc(v));
        }
        out.push('\n');
    }
    out.push('\n');
    for (n, kernel, case, text) in &t.notes {
        if case.starts_with('(') {
            let _ = writeln!(out, "[^{n}]: {}", esc(text));
        } else {
            let _ = writeln!(out, "[^{n}]: `{}` on {}: {}", esc(case), esc(kernel), esc(text));
        }
    }
    out.push('\n');
    out.push_str(&differences_markdown(&differences_of(m, order)));
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A self-contained HTML page (no external resources).
pub fn html(m: &Matrix, order: &[String]) -> String {
    let t = table(m, order);
    let mut out = String::new();
    out.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>kharness matrix</title>\n<style>\n",
    );
    out.push_str(
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}\
th,td{border:1px solid #ccc;padding:.3em .7em;text-align:left;white-space:nowrap}\
th small{font-weight:normal;color:#666}td.case{font-family:monospace}\
.pass{background:#dff5df}.fail{background:#f8d0d0;font-weight:bold}.skip{background:#fbf1cc}\
.xfail{background:#d8ecf7}.xpass{background:#ecd8f7}.none{color:#999}tr.fact td{background:#f4f4f4}\
td[title]{cursor:help}ol.notes li{margin:.3em 0;white-space:pre-wrap}pre{background:#f4f4f4;padding:.5em}\
table.diff td{white-space:normal;max-width:22em;font-family:monospace}td.chg{background:#ffe08a;font-weight:bold}\
tr.dcase td{background:#eef;font-weight:bold}tr.why td{color:#444;font-family:inherit;font-size:90%}\n",
    );
    out.push_str("</style></head><body>\n");
    let _ = writeln!(
        out,
        "<h1>kharness matrix</h1>\n<p>{} kernels, {} cases, {:.1} s wall, kharness {}</p>",
        t.kernels.len(),
        t.rows.len(),
        m.wall_ms as f64 / 1000.0,
        html_escape(&m.harness)
    );
    let d = differences_of(m, order);
    let family = |case: &str| case.split(['.', '[']).next().unwrap_or(case).to_string();
    let mut families: Vec<String> = t.rows.iter().map(|(c, _)| family(c)).collect();
    families.sort();
    families.dedup();
    out.push_str("<p><label>family: <select id=\"fam\" onchange=\"filt(this.value)\"><option value=\"\">all</option>");
    for f in &families {
        let _ = write!(out, "<option>{}</option>", html_escape(f));
    }
    out.push_str("</select></label></p>\n");
    out.push_str(
        "<script>function filt(f){document.querySelectorAll('[data-family]').forEach(function(r){\
r.style.display=(!f||r.dataset.family===f)?'':'none'})}</script>\n",
    );
    let _ = writeln!(
        out,
        "<h2 id=\"differences\">Differences</h2>\n<p>{}</p>",
        html_escape(&diff_headline(&d))
    );
    if !d.cases.is_empty() {
        out.push_str("<table class=\"diff\">\n<tr><th>observation</th>");
        for (k, km) in d.kernels.iter().zip(&m.kernels) {
            let _ = write!(
                out,
                "<th>{}<br><small>{}</small></th>",
                html_escape(k),
                html_escape(&shown_version(km))
            );
        }
        out.push_str("</tr>\n");
        let span = d.kernels.len() + 1;
        for c in &d.cases {
            let fam = html_escape(&c.family);
            let _ = writeln!(
                out,
                "<tr class=\"dcase\" data-family=\"{fam}\"><td colspan=\"{span}\">{}</td></tr>",
                html_escape(&c.case)
            );
            for r in &c.rows {
                let _ = write!(
                    out,
                    "<tr data-family=\"{fam}\"><td>{}</td>",
                    html_escape(&r.observation)
                );
                for (i, v) in r.values.iter().enumerate() {
                    let title = r
                        .expected
                        .get(i)
                        .cloned()
                        .flatten()
                        .map(|e| format!(" title=\"{}\"", html_escape(&e)))
                        .unwrap_or_default();
                    match v {
                        None => out.push_str("<td class=\"none\">—</td>"),
                        Some(v) => {
                            let class = if r.changed[i] { " class=\"chg\"" } else { "" };
                            let _ = write!(out, "<td{class}{title}>{}</td>", html_escape(v));
                        }
                    }
                }
                out.push_str("</tr>\n");
            }
            let why = diff_explanation(&d, c);
            if !why.is_empty() {
                let _ = writeln!(
                    out,
                    "<tr class=\"why\" data-family=\"{fam}\"><td colspan=\"{span}\">{}</td></tr>",
                    why.iter().map(|w| html_escape(w)).collect::<Vec<_>>().join("<br>")
                );
            }
        }
        out.push_str("</table>\n");
    }
    out.push_str("<h2>All results</h2>\n");
    out.push_str("<table>\n<tr><th>case</th>");
    for (k, r) in t.kernels.iter().zip(&t.releases) {
        let _ = write!(out, "<th>{}<br><small>{}</small></th>", html_escape(k), html_escape(r));
    }
    out.push_str("</tr>\n");
    for (case, cells) in &t.rows {
        let _ = write!(
            out,
            "<tr data-family=\"{}\"><td class=\"case\">{}</td>",
            html_escape(&family(case)),
            html_escape(case)
        );
        for c in cells {
            let class = match c.outcome {
                Some(Outcome::Pass) => "pass",
                Some(Outcome::Fail) => "fail",
                Some(Outcome::Skip) => "skip",
                Some(Outcome::Xfail) => "xfail",
                Some(Outcome::Xpass) => "xpass",
                None => "none",
            };
            let title = c
                .reason
                .as_deref()
                .map(|r| format!(" title=\"{}\"", html_escape(r)))
                .unwrap_or_default();
            let note = c
                .note
                .map(|n| format!(" <a href=\"#n{n}\">[{n}]</a>"))
                .unwrap_or_default();
            let _ = write!(out, "<td class=\"{class}\"{title}>{}{note}</td>", c.label);
        }
        out.push_str("</tr>\n");
    }
    for (label, vals) in &t.facts {
        let _ = write!(out, "<tr class=\"fact\"><td>{}</td>", html_escape(label));
        for v in vals {
            let _ = write!(out, "<td>{}</td>", html_escape(v));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    if !t.notes.is_empty() {
        out.push_str("<h2>Notes</h2>\n<ol class=\"notes\">\n");
        for (n, kernel, case, text) in &t.notes {
            let what = if case.starts_with('(') {
                String::new()
            } else {
                format!("<code>{}</code> on {}: ", html_escape(case), html_escape(kernel))
            };
            let _ = writeln!(out, "<li id=\"n{n}\" value=\"{n}\">{what}{}</li>", html_escape(text));
        }
        out.push_str("</ol>\n");
    }
    if !d.cases.is_empty() {
        out.push_str("<h2>Differences explained</h2>\n<ul class=\"notes\">\n");
        for c in &d.cases {
            let rows: Vec<String> = c
                .rows
                .iter()
                .map(|r| {
                    let vals: Vec<String> = d
                        .kernels
                        .iter()
                        .zip(&r.values)
                        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
                        .collect();
                    format!("{}: {}", r.observation, vals.join(", "))
                })
                .collect();
            let _ = writeln!(
                out,
                "<li data-family=\"{}\"><code>{}</code> — {}<br>{}</li>",
                html_escape(&c.family),
                html_escape(&c.case),
                html_escape(&rows.join("; ")),
                diff_explanation(&d, c)
                    .iter()
                    .map(|w| html_escape(w))
                    .collect::<Vec<_>>()
                    .join("<br>")
            );
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<h2>Kernels</h2>\n");
    for k in &m.kernels {
        let _ = writeln!(
            out,
            "<details><summary><b>{}</b> — {} — {}</summary><p>{}</p><ul>",
            html_escape(&k.name),
            html_escape(&k.source),
            k.status.label(),
            html_escape(&k.description)
        );
        for n in &k.notes {
            let _ = writeln!(out, "<li>{}</li>", html_escape(n));
        }
        for md in &k.modules {
            let _ = writeln!(
                out,
                "<li>module {}: {}{}</li>",
                html_escape(&md.name),
                html_escape(&md.state),
                md.detail
                    .as_deref()
                    .map(|d| format!(" ({})", html_escape(d)))
                    .unwrap_or_default()
            );
        }
        out.push_str("</ul>\n");
        if !k.console_tail.is_empty() {
            let _ = writeln!(out, "<pre>{}</pre>", html_escape(&k.console_tail.join("\n")));
        }
        out.push_str("</details>\n");
    }
    out.push_str("</body></html>\n");
    out
}

/// JUnit XML: one testsuite per kernel; a kernel that did not complete has
/// a `boot` test case that fails with the reason.
pub fn junit(m: &Matrix) -> String {
    let mut report = Report::new("kharness matrix");
    report.set_time(Duration::from_millis(m.wall_ms));
    for k in &m.kernels {
        let mut suite = TestSuite::new(k.name.clone());
        if let Some(rel) = &k.release {
            suite.add_property(quick_junit::Property::new("release", rel.clone()));
        }
        if let Some(info) = &k.kernel {
            suite.add_property(quick_junit::Property::new(
                "tcp_info_len",
                info.tcp_info_len.to_string(),
            ));
        }
        suite.add_property(quick_junit::Property::new("source", k.source.clone()));
        if k.status != KernelStatus::Completed {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
            s.set_message(k.problem.clone().unwrap_or_else(|| k.status.label().to_string()));
            s.set_description(k.console_tail.join("\n"));
            let mut tc = TestCase::new(format!("{}.kernel", k.name), s);
            tc.set_classname(format!("kharness.{}", k.name));
            suite.add_test_case(tc);
        }
        for r in &k.results {
            let rep = &r.report;
            let family = rep.case.split('.').next().unwrap_or("cases");
            let status = match rep.outcome {
                Outcome::Pass | Outcome::Xfail | Outcome::Xpass => TestCaseStatus::success(),
                Outcome::Skip => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(k.reason_of(rep).unwrap_or_default());
                    s
                }
                Outcome::Fail => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(rep.reason.clone().unwrap_or_default());
                    s.set_description(
                        rep.mismatches
                            .iter()
                            .map(|x| x.to_string())
                            .collect::<Vec<_>>()
                            .join("\n"),
                    );
                    s
                }
            };
            let mut status = status;
            kharness::report::junit::add_attempts(&mut status, rep);
            let mut tc = TestCase::new(rep.case.clone(), status);
            tc.set_classname(format!("kharness.{}.{family}", k.name));
            tc.set_time(Duration::from_millis(rep.duration_ms));
            tc.set_assertions(rep.checks);
            if rep.is_flaky() {
                tc.set_system_out(format!(
                    "FLAKY: failed {} time(s), then {}",
                    rep.attempts.len(),
                    rep.outcome.label()
                ));
            } else if matches!(rep.outcome, Outcome::Xfail | Outcome::Xpass) {
                tc.set_system_out(format!(
                    "{}: {}",
                    rep.outcome.label(),
                    rep.reason.clone().unwrap_or_default()
                ));
            }
            suite.add_test_case(tc);
        }
        report.add_test_suite(suite);
    }
    report.to_string().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::sample;

    #[test]
    fn differences_come_first_in_html_and_after_the_table_in_text() {
        let mut m = crate::diff::tests::synthetic();
        let docs = BTreeMap::from([("tcp.info_diag".to_string(), "the struct grows in 6.2".to_string())]);
        m.differences = Some(diff::compute(&m, &[], &docs));
        let t = text(&m, &[], false);
        let head = "differences: 6 observations differ across 3 kernels in 3 cases (1 volatile observation left out)";
        assert!(t.contains(head), "{t}");
        let (table, after) = t.split_once(head).unwrap();
        assert!(table.contains("unix.pair") && !after.contains("unix.pair"), "{t}");
        let row = after
            .lines()
            .find(|l| l.trim_start().starts_with("client.getsockopt_len"))
            .unwrap();
        assert!(row.contains("232 ") && row.contains("240*"), "{row}");
        assert!(!after.contains("client.port"), "volatile shown: {after}");
        assert!(after.contains("the model: the struct grows in 6.2"), "{after}");
        assert!(after.contains("5.10: gate.af_unix_oob = before 5.15"), "{after}");
        assert!(after.contains("known issue: no MSG_OOB: evidence"), "{after}");
        assert!(after.contains("expected \"ok\" (queue_oob())"), "{after}");
        assert!(after.contains("skipped: kernel lacks SCTP"), "{after}");
        let only = differences_text(m.differences.as_ref().unwrap(), false);
        assert!(only.starts_with(head) && !only.contains("unix.pair"), "{only}");

        let md = markdown(&m, &[]);
        let (table, after) = md.split_once("### Differences").unwrap();
        assert!(table.contains("`unix.pair`"));
        assert!(
            after.contains("| `tcp.info_diag` | `client.getsockopt_len` | 232 | **240** | **240** |"),
            "{after}"
        );

        let h = html(&m, &[]);
        let diff_at = h.find("<h2 id=\"differences\">").unwrap();
        let all_at = h.find("<h2>All results</h2>").unwrap();
        assert!(diff_at < all_at);
        let view = &h[diff_at..all_at];
        assert!(
            view.contains("<td class=\"chg\">240</td>") && view.contains("<td>232</td>"),
            "{view}"
        );
        assert!(!view.contains("unix.pair") && !view.contains("client.port"), "{view}");
        assert!(h.contains("<option>tcp</option>") && h.contains("<option>unix</option>"));
        assert!(view.contains("data-family=\"sctp\""));
        assert!(h[all_at..].contains("Differences explained") && h[all_at..].contains("the struct grows in 6.2"));
        assert!(!h.contains("<script src") && !h.contains("href=\"http"));
    }

    #[test]
    fn renders_every_format() {
        let mut m = sample();
        m.kernels[2].results[0].report.cpu_ms = Some(1500);
        let order = vec![
            "tcp.fill".to_string(),
            "tcp.info_diag".to_string(),
            "sctp.basic".to_string(),
        ];
        let t = text(&m, &order, false);
        assert!(t.contains("tcp.fill"), "{t}");
        let row = t.lines().find(|l| l.starts_with("sctp.basic")).unwrap();
        assert!(
            row.contains("—") && row.contains("skip [") && row.contains("—"),
            "{row}"
        );
        assert!(
            t.contains("kernel lacks SCTP (module sctp missing: not in package)"),
            "{t}"
        );
        assert!(t.contains("1 passed, 1 failed, 1 skipped"), "{t}");
        let cpu = t.lines().find(|l| l.starts_with("case cpu (most)")).unwrap();
        assert!(cpu.contains("—") && cpu.contains("1.5 s (tcp.fill 1.5)"), "{cpu}");
        let (_, tail) = t.rsplit_once("\nfailed:\n").expect("failures recapped last");
        assert!(
            tail.starts_with("  tcp.fill on host: x: expected 1, observed 0\n"),
            "{tail}"
        );
        assert!(t.contains("5.10: kernel `") || t.contains("5.10: cannot fetch"), "{t}");
        let md = markdown(&m, &order);
        assert!(md.contains("| `tcp.fill` |") && md.contains("[^1]:"), "{md}");
        let h = html(&m, &order);
        assert!(
            h.contains("title=\"kernel lacks SCTP")
                && h.contains("class=\"fail\"")
                && !h.contains("<script src")
                && !h.contains("href=\"http")
        );
        let j = junit(&m);
        assert_eq!(j.matches("<testsuite ").count(), 3, "{j}");
        assert!(
            j.contains("kharness.6.1.tcp") && j.contains("<skipped") && j.contains("5.10.kernel"),
            "{j}"
        );
    }

    #[test]
    fn renders_xpass_in_every_format() {
        let mut m = sample();
        let k = m.kernels.iter_mut().find(|k| k.name == "host").unwrap();
        k.results.push(crate::results::MatrixResult {
            report: crate::results::tests::report("unix.oob", Outcome::Xpass, Some("did not occur: d: e")),
            tcp_info_len: 280,
        });
        let order = vec!["tcp.fill".to_string(), "unix.oob".to_string()];
        let t = text(&m, &order, false);
        let row = t.lines().find(|l| l.starts_with("unix.oob")).unwrap();
        assert!(row.contains("XPASS"), "{row}");
        assert!(t.contains("0/1/0/0/1"), "{t}");
        assert!(t.contains("1 xfailed, 1 xpassed;"), "{t}");
        assert!(markdown(&m, &order).contains("❗ XPASS"));
        assert!(html(&m, &order).contains("class=\"xpass\""));
        assert!(junit(&m).contains("XPASS: did not occur: d: e"));
    }
}
