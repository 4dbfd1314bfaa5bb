//! The results protocol: versioned JSON lines the guest writes on its second
//! serial port (`/dev/ttyS1`), and the host reads back.
//!
//! ```text
//! {"v":1,"type":"hello","release":"6.1.0-47-cloud-amd64","uptime_ms":2140,"harness":"0.1.0"}
//! {"v":1,"type":"module","name":"veth","ok":true,"error":null}
//! {"v":1,"type":"header","schema":1,"kernel":{…KernelInfo…},"cases":11,"jobs":1,"harness":"0.1.0"}
//! {"v":1,"type":"case_start","case":"tcp.fill[veth]"}
//! {"v":1,"type":"result",…CaseReport…}
//! {"v":1,"type":"summary","passed":11,…}
//! {"v":1,"type":"done","exit":0}
//! ```
//!
//! A missing `done` means the guest crashed or was killed. The `header`,
//! `result` and `summary` lines are those of `kharness run --format json`
//! (which has no `v`), so the host kernel's run is read by the same parser.

use serde::{Deserialize, Serialize};

use kharness::case::CaseReport;
use kharness::event::{RunHeader, Summary};

/// The protocol version this harness writes and reads.
pub const VERSION: u64 = 1;

/// One line of the protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// First line: PID 1 is running.
    Hello {
        /// `uname -r`.
        release: String,
        /// Guest uptime when it was written (kernel boot time).
        uptime_ms: u64,
        /// Harness version inside the guest.
        harness: String,
    },
    /// One module load.
    Module {
        /// Module name.
        name: String,
        /// Loaded (or already present).
        ok: bool,
        /// The error, when not.
        error: Option<String>,
    },
    /// The run header (kernel facts after module loading).
    Header(RunHeader),
    /// A case process started.
    CaseStart {
        /// Result name.
        case: String,
    },
    /// A case finished.
    Result(CaseReport),
    /// Totals.
    Summary(Summary),
    /// What `--explore` found after the catalog.
    Explore(kharness::explore::ExploreSummary),
    /// The guest finished cleanly and is powering off.
    Done {
        /// The catalog runner's exit status.
        exit: i32,
    },
    /// The guest could not do what it was asked (it then powers off).
    Error {
        /// What went wrong.
        message: String,
    },
}

/// Encodes a message as one line (without newline), with `"v"`.
pub fn encode(msg: &Message) -> String {
    let mut v = serde_json::to_value(msg).unwrap_or(serde_json::Value::Null);
    if let serde_json::Value::Object(m) = &mut v {
        m.insert("v".into(), VERSION.into());
    }
    v.to_string()
}

/// Decodes one line. `Ok(None)` for a line that is not a protocol message
/// (blank, or serial noise); `Err` for a message of another version or a
/// malformed one.
pub fn decode(line: &str) -> Result<Option<Message>, String> {
    let line = line.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    let Some(start) = line.find('{') else { return Ok(None) };
    let mut v: serde_json::Value = match serde_json::from_str(&line[start..]) {
        Ok(v) => v,
        Err(_) => return Ok(None),
    };
    let Some(obj) = v.as_object_mut() else { return Ok(None) };
    if !obj.contains_key("type") {
        return Ok(None);
    }
    match obj.remove("v") {
        None => {}
        Some(n) if n.as_u64() == Some(VERSION) => {}
        Some(n) => {
            return Err(format!(
                "results protocol version {n} is not understood (this kharness reads {VERSION})"
            ))
        }
    }
    if v["type"] == "result" {
        kharness::report::json::unflake(&mut v);
    }
    serde_json::from_value(v)
        .map(Some)
        .map_err(|e| format!("malformed message: {e}"))
}

/// Splits a growing byte stream into complete lines.
#[derive(Debug, Default)]
pub struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    /// Adds bytes; returns the lines completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(i) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=i).collect();
            out.push(String::from_utf8_lossy(&line).trim_end().to_string());
        }
        out
    }

    /// The incomplete tail, if any.
    pub fn rest(&mut self) -> Option<String> {
        (!self.pending.is_empty()).then(|| {
            String::from_utf8_lossy(&std::mem::take(&mut self.pending))
                .trim()
                .to_string()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kharness::case::Outcome;

    #[test]
    fn round_trip_and_noise() {
        let msgs = vec![
            Message::Hello {
                release: "6.1.0-47-cloud-amd64".into(),
                uptime_ms: 2100,
                harness: "0.1.0".into(),
            },
            Message::Module {
                name: "veth".into(),
                ok: false,
                error: Some("ENOENT".into()),
            },
            Message::CaseStart {
                case: "tcp.fill[veth]".into(),
            },
            Message::Summary(Summary {
                passed: 1,
                ..Default::default()
            }),
            Message::Done { exit: 0 },
        ];
        for m in &msgs {
            let line = encode(m);
            assert!(line.contains("\"v\":1"), "{line}");
            // The tty adds \r; the console may glue noise in front.
            assert_eq!(decode(&format!("\u{0}xx{line}\r")).unwrap().as_ref(), Some(m));
        }
        assert_eq!(decode("").unwrap(), None);
        assert_eq!(decode("[    1.234] random kernel text").unwrap(), None);
        assert_eq!(decode("{\"half\":").unwrap(), None);
        assert!(decode("{\"v\":2,\"type\":\"hello\"}")
            .unwrap_err()
            .contains("version 2"));
        assert!(decode("{\"v\":1,\"type\":\"hello\"}")
            .unwrap_err()
            .contains("malformed"));
    }

    #[test]
    fn reads_run_json_lines() {
        // `kharness run --format json` output, as the host kernel produces it.
        let result = r#"{"type":"result","case":"tcp.refused","variant":null,"outcome":"skip","reason":"no sctp","duration_ms":12,"kernel":"6.18.44","observations":{"a":1},"mismatches":[],"checks":0}"#;
        let Some(Message::Result(r)) = decode(result).unwrap() else {
            panic!()
        };
        assert_eq!((r.case.as_str(), r.outcome), ("tcp.refused", Outcome::Skip));
        let header = r#"{"type":"header","schema":1,"kernel":{"release":"6.18.44","version":[6,18,44],"tcp_info_len":280,"protocols":{"TCP":true},"privileges":"root","cpus":2},"cases":11,"jobs":2,"harness":"0.1.0"}"#;
        let Some(Message::Header(h)) = decode(header).unwrap() else {
            panic!()
        };
        assert_eq!(h.kernel.tcp_info_len, 280);
        // Older headers have no `health`; newer ones say what was watched.
        assert_eq!(h.health, None);
        let watched = header.replace(
            "\"jobs\":2,",
            "\"jobs\":2,\"health\":{\"kmsg\":false,\"taint\":true,\"notes\":[\"/dev/kmsg: EPERM\"]},",
        );
        let Some(Message::Header(h)) = decode(&watched).unwrap() else {
            panic!()
        };
        let w = h.health.unwrap();
        assert!(!w.kmsg && w.taint);
        assert!(w.describe().contains("NOT watched") && w.describe().contains("EPERM"));
    }

    #[test]
    fn line_buffer() {
        let mut b = LineBuffer::default();
        assert!(b.push(b"{\"a\"").is_empty());
        assert_eq!(b.push(b":1}\r\n{\"b\""), ["{\"a\":1}"]);
        assert_eq!(b.rest().as_deref(), Some("{\"b\""));
    }
}
