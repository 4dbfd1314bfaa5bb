//! Reporters: consumers of the [`Event`](crate::event::Event) stream.
//!
//! - [`human::Human`]: the default, coloured on a TTY.
//! - [`json::Json`]: one JSON object per line (`header`, `result`…, `summary`).
//! - [`tap::Tap`]: TAP 13, in the form kselftest prints.
//! - [`junit::Junit`]: a JUnit XML file, written when the run finishes.

pub mod human;
pub mod json;
pub mod junit;
pub mod tap;

use crate::event::Event;

/// Something that turns events into output.
pub trait Reporter {
    /// Handles one event. Errors writing output are reported once, by the
    /// caller, and do not stop the run.
    fn event(&mut self, event: &Event) -> std::io::Result<()>;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::case::{CaseReport, Outcome};
    use crate::event::{RunHeader, Summary};
    use crate::kernel::KernelInfo;

    fn events() -> Vec<Event> {
        let kernel = KernelInfo {
            release: "6.1.0-41-cloud-amd64".into(),
            version: (6, 1, 158),
            tcp_info_len: 232,
            protocols: BTreeMap::new(),
            privileges: "root".into(),
            cpus: 2,
        };
        let report = CaseReport {
            case: "unix.oob".into(),
            variant: None,
            outcome: Outcome::Xpass,
            reason: Some("did not occur: no-oob: evidence".into()),
            duration_ms: 3,
            cpu_ms: None,
            kernel: kernel.release.clone(),
            observations: BTreeMap::new(),
            mismatches: vec![],
            checks: 4,
            notes: vec![],
            repetition: 1,
            volatile: vec![],
            attempts: vec![],
        };
        let mut summary = Summary::default();
        summary.add(Outcome::Xpass);
        vec![
            Event::RunStarted(RunHeader {
                schema: 1,
                kernel,
                cases: 1,
                jobs: 1,
                harness: "0".into(),
                repeat: 1,
                health: None,
            }),
            Event::CaseFinished(report),
            Event::RunFinished(summary),
        ]
    }

    fn render(r: &mut dyn Reporter) {
        for e in events() {
            r.event(&e).unwrap();
        }
    }

    #[test]
    fn every_reporter_shows_xpass() {
        let mut out = Vec::new();
        render(&mut human::Human::new(&mut out, false, false));
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("XPASS  unix.oob") && text.contains("did not occur: no-oob"),
            "{text}"
        );
        assert!(text.contains("0 xfailed, 1 xpassed;"), "{text}");

        let mut out = Vec::new();
        render(&mut json::Json::new(&mut out));
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(r#""outcome":"xpass""#) && text.contains(r#""xpassed":1"#),
            "{text}"
        );

        let mut out = Vec::new();
        render(&mut tap::Tap::new(&mut out));
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("ok 1 unix.oob # XPASS did not occur"), "{text}");
        assert!(text.contains("xpass:1"), "{text}");

        let dir = tempfile::Builder::new()
            .prefix("kharness-junit-xpass-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("junit.xml");
        render(&mut junit::Junit::new(path.clone()));
        let xml = std::fs::read_to_string(&path).unwrap();
        assert!(
            xml.contains("XPASS: did not occur") && !xml.contains("<failure"),
            "{xml}"
        );
    }
}
