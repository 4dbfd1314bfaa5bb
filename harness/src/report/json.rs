//! `--format json`: one JSON object per line.
//!
//! ```text
//! {"type":"header","schema":1,"kernel":{"release":"6.18.44",…},"cases":9,"jobs":2,…}
//! {"type":"result","case":"tcp.fill[veth]","outcome":"pass","reason":null,"duration_ms":41,
//!  "kernel":"6.18.44","observations":{"outq":…},"mismatches":[],"checks":14}
//! {"type":"summary","passed":9,"failed":0,"skipped":0,"xfailed":0,"xpassed":0,"duration_ms":812}
//! ```
//!
//! Every result carries its `repetition` (1 unless `--repeat`). With
//! `--retries N`, a result that failed and then passed has the outcome
//! `flaky`, its last attempt's outcome as `final_outcome` and its failed
//! attempts, each with its reason, mismatches and observations, in `attempts`;
//! the summary counts it under `flaky`. With
//! `--repeat N` (N > 1), one `case_summary` per case instance comes before
//! the summary:
//!
//! ```text
//! {"type":"case_summary","case":"tcp.loss","runs":50,"passed":49,"failed":1,"skipped":0,"xfailed":0,"xpassed":0,
//!  "failed_repetitions":[17],"duration_ms":{"min":210,"median":226,"max":310}}
//! ```

use std::io::Write;

use serde_json::{json, Value};

use super::Reporter;
use crate::event::Event;

/// JSON-lines reporter.
pub struct Json<W: Write> {
    out: W,
}

impl<W: Write> Json<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        Json { out }
    }
}

fn tagged(ty: &str, v: impl serde::Serialize) -> Value {
    let mut v = serde_json::to_value(v).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("type".into(), json!(ty));
    }
    v
}

/// The inverse of the flaky rewrite above, for readers of result lines
/// (`report diff`, the matrix's host run): `outcome` back to the last
/// attempt's outcome, so the line reads as a [`CaseReport`](crate::case::CaseReport)
/// (whose failed `attempts` say it was flaky).
pub fn unflake(v: &mut Value) {
    if v["outcome"] == "flaky" {
        if let Some(m) = v.as_object_mut() {
            let last = m.remove("final_outcome").unwrap_or(json!("pass"));
            m.insert("outcome".into(), last);
        }
    }
}

impl<W: Write> Reporter for Json<W> {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        let line = match event {
            Event::RunStarted(h) => tagged("header", h),
            Event::CaseStarted { .. } => return Ok(()),
            Event::CaseFinished(r) => {
                let mut v = tagged("result", r);
                if r.is_flaky() {
                    // Flaky is its own word; the last attempt's outcome stays
                    // readable as `final_outcome`, and every failed attempt
                    // is in `attempts`.
                    v["final_outcome"] = v["outcome"].take();
                    v["outcome"] = json!("flaky");
                }
                v
            }
            Event::CaseSummary(c) => tagged("case_summary", c),
            Event::RunFinished(s) => tagged("summary", s),
        };
        writeln!(self.out, "{line}")?;
        self.out.flush()
    }
}
