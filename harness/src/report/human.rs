//! The default output: a header saying what was tested, one line per case,
//! every mismatch of a failure under it, and a closing count line.
//!
//! ```text
//! kharness 0.1.0 — kernel 6.18.44 (tcp_info 280 bytes), root, 2 jobs, 9 cases
//! protocols: NETLINK PACKET RAW TCP UDP UNIX; absent: SCTP
//! kernel health: kernel log and taint watched
//!   PASS  tcp.fill[veth]          41 ms  14 checks
//!   FAIL  tcp.refused             12 ms
//!         Tcp.OutRsts(server): expected 1, observed 0 (tcp_v4_send_reset)
//!   SKIP  sctp.one_to_one          1 ms  kernel lacks CONFIG_IP_SCTP
//!
//! 8 passed, 1 failed, 1 skipped
//! 0 xfailed, 0 xpassed; 0.81 s wall
//! ```
//!
//! With `--repeat N` each result line names its repetition (`#3`), and a
//! table closes the run: per case, its runs, the spread of its duration and
//! its outcome counts, with the repetitions that failed.
//!
//! ```text
//! per case over 50 repetitions:        runs    min median    max
//!   tcp.fill[veth]                       50      9     12     41 ms  50 passed
//!   tcp.loss                             50    210    226    310 ms  49 passed, 1 failed (#17)
//! ```

use std::io::Write;

use super::Reporter;
use crate::case::Outcome;
use crate::event::Event;

/// Human reporter.
pub struct Human<W: Write> {
    out: W,
    color: bool,
    verbose: bool,
    repeat: usize,
    summaries: usize,
}

impl<W: Write> Human<W> {
    /// Writes to `out`; `color` adds ANSI colours; `verbose` prints every
    /// observation of every case.
    pub fn new(out: W, color: bool, verbose: bool) -> Self {
        Human {
            out,
            color,
            verbose,
            repeat: 1,
            summaries: 0,
        }
    }

    /// Colour and label of an outcome.
    fn style(outcome: Outcome) -> (&'static str, &'static str) {
        match outcome {
            Outcome::Pass => ("32", "PASS"),
            Outcome::Fail => ("1;31", "FAIL"),
            Outcome::Skip => ("33", "SKIP"),
            Outcome::Xfail => ("36", "XFAIL"),
            #[allow(unreachable_patterns)] // outcomes added later print their own label
            other => ("36", other.label()),
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

impl<W: Write> Reporter for Human<W> {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        match event {
            Event::RunStarted(h) => {
                let k = &h.kernel;
                self.repeat = h.repeat;
                writeln!(
                    self.out,
                    "kharness {} — kernel {} (tcp_info {} bytes), {}, {} job{}, {} case{}{}",
                    h.harness,
                    k.release,
                    k.tcp_info_len,
                    k.privileges,
                    h.jobs,
                    if h.jobs == 1 { "" } else { "s" },
                    h.cases,
                    if h.cases == 1 { "" } else { "s" },
                    if h.repeat > 1 {
                        format!(" × {} repetitions", h.repeat)
                    } else {
                        String::new()
                    }
                )?;
                let present: Vec<&str> = k
                    .protocols
                    .iter()
                    .filter(|(_, v)| **v)
                    .map(|(n, _)| n.as_str())
                    .collect();
                let absent: Vec<&str> = k
                    .protocols
                    .iter()
                    .filter(|(_, v)| !**v)
                    .map(|(n, _)| n.as_str())
                    .collect();
                writeln!(
                    self.out,
                    "protocols: {}; absent: {}",
                    present.join(" "),
                    if absent.is_empty() {
                        "none".into()
                    } else {
                        absent.join(" ")
                    }
                )?;
                if let Some(w) = &h.health {
                    writeln!(self.out, "kernel health: {}", w.describe())?;
                }
            }
            Event::CaseStarted { .. } => {}
            Event::CaseFinished(r) => {
                let (code, label) = if r.is_flaky() {
                    ("35", "FLAKY")
                } else {
                    Self::style(r.outcome)
                };
                let tail = if r.is_flaky() {
                    format!(
                        "failed {} time{} before this {}",
                        r.attempts.len(),
                        if r.attempts.len() == 1 { "" } else { "s" },
                        r.outcome.label().to_lowercase()
                    )
                } else {
                    match r.outcome {
                        Outcome::Pass => format!("{} checks", r.checks),
                        _ => r.reason.clone().unwrap_or_default(),
                    }
                };
                let first_line = if r.outcome == Outcome::Fail && !r.mismatches.is_empty() {
                    format!("{} of {} checks failed", r.mismatches.len(), r.checks)
                } else {
                    tail
                };
                let name = if self.repeat > 1 {
                    format!("{} #{}", r.case, r.repetition)
                } else {
                    r.case.clone()
                };
                writeln!(
                    self.out,
                    "  {}  {:<32} {:>6} ms  {}",
                    self.paint(code, &format!("{label:<5}")),
                    name,
                    r.duration_ms,
                    first_line
                )?;
                if r.outcome == Outcome::Fail || r.outcome == Outcome::Xfail {
                    for m in &r.mismatches {
                        writeln!(self.out, "         {}", self.paint("31", &m.to_string()))?;
                    }
                }
                for a in &r.attempts {
                    let why = match a.mismatches.len() {
                        0 => a.reason.clone().unwrap_or_default(),
                        n => format!("{n} check{} failed", if n == 1 { "" } else { "s" }),
                    };
                    writeln!(
                        self.out,
                        "         attempt {}: {} in {} ms: {why}",
                        a.attempt,
                        a.outcome.label(),
                        a.duration_ms,
                    )?;
                    for m in &a.mismatches {
                        writeln!(self.out, "           {}", self.paint("31", &m.to_string()))?;
                    }
                }
                if self.verbose {
                    for (k, v) in &r.observations {
                        writeln!(self.out, "         {k} = {v}")?;
                    }
                    for n in &r.notes {
                        writeln!(self.out, "         note: {n}")?;
                    }
                }
            }
            Event::CaseSummary(c) => {
                if self.summaries == 0 {
                    writeln!(self.out)?;
                    writeln!(
                        self.out,
                        "{:<36} {:>4} {:>6} {:>6} {:>6}",
                        format!("per case over {} repetitions:", self.repeat),
                        "runs",
                        "min",
                        "median",
                        "max"
                    )?;
                }
                self.summaries += 1;
                let mut counts = Vec::new();
                for (n, what) in [
                    (c.passed, "passed"),
                    (c.failed, "failed"),
                    (c.skipped, "skipped"),
                    (c.xfailed, "xfailed"),
                    (c.flaky, "flaky"),
                    (c.xpassed, "xpassed"),
                ] {
                    if n > 0 {
                        counts.push(format!("{n} {what}"));
                    }
                }
                if !c.failed_repetitions.is_empty() {
                    let reps: Vec<String> = c.failed_repetitions.iter().map(|r| format!("#{r}")).collect();
                    counts.push(format!("failed in {}", reps.join(" ")));
                }
                let counts = counts.join(", ");
                let counts = if c.failed > 0 || c.runs < self.repeat {
                    self.paint("1;31", &counts)
                } else {
                    counts
                };
                let d = c.duration_ms;
                writeln!(
                    self.out,
                    "  {:<34} {:>4} {:>6} {:>6} {:>6} ms  {}",
                    c.case, c.runs, d.min, d.median, d.max, counts
                )?;
            }
            Event::RunFinished(s) => {
                writeln!(self.out)?;
                // The count line stands alone, in the plain form CI tools read.
                let line = format!("{} passed, {} failed, {} skipped", s.passed, s.failed, s.skipped);
                let code = if s.failed > 0 { "1;31" } else { "1;32" };
                writeln!(self.out, "{}", self.paint(code, &line))?;
                let flaky = if s.flaky > 0 {
                    self.paint("35", &format!(", {} flaky", s.flaky))
                } else {
                    String::new()
                };
                writeln!(
                    self.out,
                    "{} xfailed, {} xpassed{flaky}; {:.2} s wall",
                    s.xfailed,
                    s.xpassed,
                    s.duration_ms as f64 / 1000.0
                )?;
            }
        }
        self.out.flush()
    }
}
