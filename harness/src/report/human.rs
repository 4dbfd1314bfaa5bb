//! The default output: a header saying what was tested, one line per case,
//! every mismatch of a failure under it, and a closing count line.
//!
//! ```text
//! kharness 0.1.0 — kernel 6.18.44 (tcp_info 280 bytes), root, 2 jobs, 9 cases
//! protocols: NETLINK PACKET RAW TCP UDP UNIX; absent: SCTP
//!   PASS  tcp.fill[veth]          41 ms  14 checks
//!   FAIL  tcp.refused             12 ms
//!         Tcp.OutRsts(server): expected 1, observed 0 (tcp_v4_send_reset)
//!   SKIP  sctp.one_to_one          1 ms  kernel lacks CONFIG_IP_SCTP
//!
//! 8 passed, 1 failed, 1 skipped
//! 0 xfailed; 0.81 s wall
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
}

impl<W: Write> Human<W> {
    /// Writes to `out`; `color` adds ANSI colours; `verbose` prints every
    /// observation of every case.
    pub fn new(out: W, color: bool, verbose: bool) -> Self {
        Human { out, color, verbose }
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
                writeln!(
                    self.out,
                    "kharness {} — kernel {} (tcp_info {} bytes), {}, {} job{}, {} case{}",
                    h.harness,
                    k.release,
                    k.tcp_info_len,
                    k.privileges,
                    h.jobs,
                    if h.jobs == 1 { "" } else { "s" },
                    h.cases,
                    if h.cases == 1 { "" } else { "s" }
                )?;
                let present: Vec<&str> = k.protocols.iter().filter(|(_, v)| **v).map(|(n, _)| n.as_str()).collect();
                let absent: Vec<&str> = k.protocols.iter().filter(|(_, v)| !**v).map(|(n, _)| n.as_str()).collect();
                writeln!(self.out, "protocols: {}; absent: {}", present.join(" "), if absent.is_empty() { "none".into() } else { absent.join(" ") })?;
            }
            Event::CaseStarted { .. } => {}
            Event::CaseFinished(r) => {
                let (code, label) = match r.outcome {
                    Outcome::Pass => ("32", "PASS"),
                    Outcome::Fail => ("1;31", "FAIL"),
                    Outcome::Skip => ("33", "SKIP"),
                    Outcome::Xfail => ("36", "XFAIL"),
                };
                let tail = match r.outcome {
                    Outcome::Pass => format!("{} checks", r.checks),
                    _ => r.reason.clone().unwrap_or_default(),
                };
                let first_line = if r.outcome == Outcome::Fail && !r.mismatches.is_empty() {
                    format!("{} of {} checks failed", r.mismatches.len(), r.checks)
                } else {
                    tail
                };
                writeln!(self.out, "  {}  {:<32} {:>6} ms  {}", self.paint(code, &format!("{label:<5}")), r.case, r.duration_ms, first_line)?;
                if r.outcome == Outcome::Fail || r.outcome == Outcome::Xfail {
                    for m in &r.mismatches {
                        writeln!(self.out, "         {}", self.paint("31", &m.to_string()))?;
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
            Event::RunFinished(s) => {
                writeln!(self.out)?;
                // The count line stands alone, in the plain form CI tools read.
                let line = format!("{} passed, {} failed, {} skipped", s.passed, s.failed, s.skipped);
                let code = if s.failed > 0 { "1;31" } else { "1;32" };
                writeln!(self.out, "{}", self.paint(code, &line))?;
                writeln!(self.out, "{} xfailed; {:.2} s wall", s.xfailed, s.duration_ms as f64 / 1000.0)?;
            }
        }
        self.out.flush()
    }
}
