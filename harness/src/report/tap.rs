//! `--format tap`: TAP version 13 as kselftest prints it
//! (`ok N name`, `not ok N name`, `# SKIP reason`, `# XFAIL reason`, and
//! `# FLAKY` for a case that passed on a retry), with a
//! YAML block under each failure listing its mismatches. With `--repeat N`
//! the plan counts every repetition, each test line names its repetition,
//! and a comment line per case gives its counts and duration spread.

use std::io::Write;

use super::Reporter;
use crate::case::Outcome;
use crate::event::Event;

/// TAP 13 reporter.
pub struct Tap<W: Write> {
    out: W,
    n: usize,
    repeat: usize,
}

impl<W: Write> Tap<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        Tap { out, n: 0, repeat: 1 }
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ").replace('#', "\\#")
}

impl<W: Write> Reporter for Tap<W> {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        match event {
            Event::RunStarted(h) => {
                writeln!(self.out, "TAP version 13")?;
                writeln!(
                    self.out,
                    "# kharness {} on {} (tcp_info {} bytes, {})",
                    h.harness, h.kernel.release, h.kernel.tcp_info_len, h.kernel.privileges
                )?;
                self.repeat = h.repeat;
                writeln!(self.out, "1..{}", h.cases * h.repeat.max(1))?;
            }
            Event::CaseStarted { .. } => {}
            Event::CaseFinished(r) => {
                self.n += 1;
                let reason = r.reason.as_deref().map(one_line).unwrap_or_default();
                let name = if self.repeat > 1 {
                    format!("{} repetition {}", r.case, r.repetition)
                } else {
                    r.case.clone()
                };
                if r.is_flaky() {
                    let first = r.attempts[0].reason.as_deref().map(one_line).unwrap_or_default();
                    writeln!(
                        self.out,
                        "ok {} {} # FLAKY failed {} time(s) before passing: {}",
                        self.n,
                        name,
                        r.attempts.len(),
                        first
                    )?;
                    return self.out.flush();
                }
                match r.outcome {
                    Outcome::Pass => writeln!(self.out, "ok {} {}", self.n, name)?,
                    Outcome::Skip => writeln!(self.out, "ok {} {} # SKIP {}", self.n, name, reason)?,
                    Outcome::Xfail => writeln!(self.out, "ok {} {} # XFAIL {}", self.n, name, reason)?,
                    Outcome::Xpass => writeln!(self.out, "ok {} {} # XPASS {}", self.n, name, reason)?,
                    Outcome::Fail => {
                        writeln!(self.out, "not ok {} {}", self.n, name)?;
                        writeln!(self.out, "  ---")?;
                        writeln!(
                            self.out,
                            "  message: {}",
                            serde_json::to_string(&reason).unwrap_or_default()
                        )?;
                        if !r.mismatches.is_empty() {
                            writeln!(self.out, "  mismatches:")?;
                            for m in &r.mismatches {
                                writeln!(
                                    self.out,
                                    "    - counter: {}",
                                    serde_json::to_string(&m.counter).unwrap_or_default()
                                )?;
                                writeln!(
                                    self.out,
                                    "      expected: {}",
                                    serde_json::to_string(&m.expected).unwrap_or_default()
                                )?;
                                writeln!(self.out, "      observed: {}", m.observed)?;
                                writeln!(
                                    self.out,
                                    "      source: {}",
                                    serde_json::to_string(&m.source).unwrap_or_default()
                                )?;
                            }
                        }
                        writeln!(self.out, "  ...")?;
                    }
                }
            }
            Event::CaseSummary(c) => {
                let d = c.duration_ms;
                writeln!(
                    self.out,
                    "# {}: {} runs, pass:{} fail:{} xfail:{} xpass:{} skip:{}, duration min/median/max {}/{}/{} ms",
                    c.case, c.runs, c.passed, c.failed, c.xfailed, c.xpassed, c.skipped, d.min, d.median, d.max
                )?;
            }
            Event::RunFinished(s) => {
                writeln!(
                    self.out,
                    "# Totals: pass:{} fail:{} xfail:{} xpass:{} skip:{} error:0",
                    s.passed, s.failed, s.xfailed, s.xpassed, s.skipped
                )?;
                if s.flaky > 0 {
                    writeln!(self.out, "# Flaky: {} (passed on a retry, not in pass)", s.flaky)?;
                }
            }
        }
        self.out.flush()
    }
}
