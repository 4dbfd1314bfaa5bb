//! Kernel health around every case: a kernel that warns fails the test, even
//! when every counter matched.
//!
//! The runner process opens `/dev/kmsg` (read-only, non-blocking) when the
//! run starts and seeks to its end (`SEEK_END`: only records appended from
//! then on are read, never the host's older log). Each time a case process
//! has ended, the [`Monitor`] drains the records appended since the previous
//! drain (one record per `read(2)`, until `EAGAIN`) and reads
//! `/proc/sys/kernel/tainted`. What it finds is attributed to **every case
//! that was running at any moment of that interval** — with `--jobs 1` that
//! is exactly the case that just ended; with more jobs the report names the
//! others that ran at the same time, because the kernel log carries no
//! process of origin we could trust (a splat in a workqueue or softirq runs
//! on behalf of nobody).
//!
//! A finding turns the case's outcome into `fail` with a mismatch named
//! `kernel.log` (expected no splat, observed the quoted lines) or
//! `kernel.taint` (the new taint flags, decoded), so every reporter shows it
//! unchanged.
//!
//! # What counts
//!
//! Only records of the kernel facility (syslog facility 0) count. A write to
//! `/dev/kmsg` from user space is forced to `LOG_USER` when it names no
//! facility, and cannot name facility 0 (`devkmsg_write()` in
//! `kernel/printk/printk.c`: "If no prefix or no userspace facility is
//! specified, we enforce LOG_USER, to be able to reliably distinguish
//! kernel-generated messages from userspace-injected ones"). So another
//! process on the host logging through `/dev/kmsg` (systemd, a test suite
//! printing "WARNING: …") cannot fail a case; the kernel warning about
//! anything during the interval does, whoever made it warn: a kernel record
//! is global, and no record says who caused it. That is strict on purpose —
//! a run on a host where something else makes the kernel warn is not a clean
//! run — and the report says which cases shared the interval.
//!
//! Among kernel records, a line counts when it matches one of
//! [`PATTERNS`] (warnings, BUGs, oopses, sanitizer reports, refcount and
//! lockdep splats, hung tasks, RCU stalls, netdev reference leaks). Other
//! kernel chatter (a veth entering promiscuous mode, a martian source) does
//! not, and neither do `page allocation failure` (memory pressure, not a
//! defect) nor a user program's crash (`traps: prog[123] general protection
//! fault ip:…`, `segfault at …`).
//!
//! Taint: new bits among [`PROBLEM_TAINTS`] (W warning, D oops, B bad page,
//! L soft lockup, M machine check, …) fail the case; new bits that only say
//! where code came from (O out-of-tree or E unsigned module autoloaded by a
//! case, P proprietary, …) become a note.
//!
//! Records the kernel prints late (network namespace teardown runs in a
//! workqueue after the case process is gone; `unregister_netdevice: waiting
//! for` comes 10 s after the leak) land on the cases running when they
//! appear: attribution is by time. After the last case nothing is read.
//!
//! If the records between two drains overflow the kernel's ring buffer,
//! `read` fails once with `EPIPE`; the cases of that interval get a note that
//! records were lost.
//!
//! # Test switch
//!
//! `KHARNESS_TEST_KMSG_WARN=1` in the runner's environment makes it write,
//! as each case starts, a user-facility record
//! `kharness-selftest[PID]: WARNING: CPU: 0 PID: 1 at net/kharness/selftest.c:1 kharness_selftest+0x0/0x10`
//! to `/dev/kmsg`. The monitor of runner PID (and no other) takes its own
//! selftest records as kernel records, so a test can show that a warning
//! fails the case it happened in without breaking the kernel.
//!
//! # Console markers
//!
//! Inside a matrix guest ([`set_console_markers`]), the monitor also writes
//! `kharness: case start NAME` and `kharness: case end NAME` to `/dev/kmsg`
//! around each case; they reach the serial console in the log's own order,
//! so the host attributes console splats to cases ([`attribute_console`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::case::{CaseReport, Outcome};
use crate::model::{Mismatch, Value};

/// The environment switch that injects a selftest warning into every case.
pub const TEST_SWITCH: &str = "KHARNESS_TEST_KMSG_WARN";

/// The tag of selftest records (followed by `[PID]: `).
pub const SELFTEST_TAG: &str = "kharness-selftest";

/// The warning a selftest record carries (after its tag).
pub const SELFTEST_WARNING: &str = "WARNING: CPU: 0 PID: 1 at net/kharness/selftest.c:1 kharness_selftest+0x0/0x10";

/// Console marker written before a case starts (guest only).
pub const MARK_START: &str = "kharness: case start ";
/// Console marker written after a case ended (guest only).
pub const MARK_END: &str = "kharness: case end ";

/// Quoted lines kept per case (the rest are counted).
const MAX_LINES: usize = 20;

/// What marks a kernel log line as a sign of ill health: (substring, kind).
/// A line matches if it contains the substring; a substring written with a
/// leading `^` must start the message.
pub const PATTERNS: &[(&str, &str)] = &[
    // WARN_ON() and friends: "WARNING: CPU: 1 PID: 61 at lib/refcount.c:28 …";
    // before 4.x "WARNING: at …"; lockdep's reports ("WARNING: possible
    // circular locking dependency detected", "WARNING: suspicious RCU usage")
    // also start with "WARNING:". Anchored: boot-time notices put the word
    // after a subsystem prefix.
    ("^WARNING:", "warning"),
    // BUG() and the "BUG: …" reports: NULL dereference, KASAN, KFENCE,
    // sleeping in atomic context, soft lockup, bad page state.
    ("kernel BUG at", "BUG"),
    ("BUG:", "BUG"),
    ("Oops:", "oops"),
    // The kernel's own #GP ("general protection fault, probably for
    // non-canonical address …"; 6.x says "Oops: general protection fault").
    // Anchored: a user program's #GP is logged as "traps: prog[123] general
    // protection fault ip:… sp:…", which is no kernel defect.
    ("^general protection fault", "oops"),
    ("Kernel panic", "panic"),
    ("KASAN:", "KASAN"),
    ("UBSAN:", "UBSAN"),
    ("refcount_t:", "refcount"),
    ("ref_tracker:", "refcount"),
    ("possible circular locking dependency", "lockdep"),
    ("possible recursive locking detected", "lockdep"),
    ("inconsistent lock state", "lockdep"),
    ("blocked for more than", "hung task"),
    ("detected stall", "RCU stall"),
    ("self-detected stall", "RCU stall"),
    ("hard LOCKUP", "lockup"),
    ("unregister_netdevice: waiting for", "netdev reference leak"),
    ("list_add corruption", "list corruption"),
    ("list_del corruption", "list corruption"),
];

/// The kind of splat a kernel log message is, if it is one (see
/// [`PATTERNS`]).
pub fn classify(message: &str) -> Option<&'static str> {
    let m = strip_caller(message.trim_start());
    PATTERNS.iter().find_map(|(pat, kind)| {
        let hit = match pat.strip_prefix('^') {
            Some(p) => m.starts_with(p),
            None => m.contains(pat),
        };
        hit.then_some(*kind)
    })
}

/// Drops a console's caller id (`[  T80] `, `[    C1] `: CONFIG_PRINTK_CALLER).
fn strip_caller(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix('[') {
        if let Some((id, after)) = rest.split_once(']') {
            let id = id.trim();
            let mut c = id.chars();
            if matches!(c.next(), Some('T' | 'C')) && !id[1..].is_empty() && c.all(|d| d.is_ascii_digit()) {
                return after.trim_start();
            }
        }
    }
    line
}

/// Taint bits, in bit order: (letter, meaning). From `taint_flags[]` in
/// `kernel/panic.c` and Documentation/admin-guide/tainted-kernels.rst.
pub const TAINT_FLAGS: &[(char, &str)] = &[
    ('P', "proprietary module"),
    ('F', "module force-loaded"),
    ('S', "out-of-spec system"),
    ('R', "module force-unloaded"),
    ('M', "machine check"),
    ('B', "bad page"),
    ('U', "taint requested by user space"),
    ('D', "kernel died (oops or BUG)"),
    ('A', "ACPI table overridden"),
    ('W', "warning"),
    ('C', "staging driver"),
    ('I', "firmware bug workaround"),
    ('O', "out-of-tree module"),
    ('E', "unsigned module"),
    ('L', "soft lockup"),
    ('K', "live patch"),
    ('X', "auxiliary (distribution)"),
    ('T', "randstruct"),
    ('N', "in-kernel test"),
    ('J', "fwctl mutating command"),
];

/// Taint letters that mean something went wrong in the kernel (a new one
/// fails the case). The others say where loaded code came from and are
/// noted only.
pub const PROBLEM_TAINTS: &str = "FSRMBUDWIL";

/// `W (warning), D (kernel died …)` for the set bits of `mask`.
pub fn decode_taint(mask: u64) -> Vec<String> {
    (0..64)
        .filter(|b| mask & (1u64 << b) != 0)
        .map(|b| match TAINT_FLAGS.get(b) {
            Some((c, what)) => format!("{c} ({what})"),
            None => format!("bit {b}"),
        })
        .collect()
}

/// The flags set in `now` and not in `before`: (problems, the others),
/// decoded.
pub fn taint_delta(before: u64, now: u64) -> (Vec<String>, Vec<String>) {
    let new = now & !before;
    (decode_taint(new & problem_mask()), decode_taint(new & !problem_mask()))
}

fn problem_mask() -> u64 {
    TAINT_FLAGS
        .iter()
        .enumerate()
        .filter(|(_, (c, _))| PROBLEM_TAINTS.contains(*c))
        .fold(0, |m, (b, _)| m | 1 << b)
}

/// Reads `/proc/sys/kernel/tainted`.
pub fn read_taint() -> io::Result<u64> {
    let t = std::fs::read_to_string("/proc/sys/kernel/tainted")?;
    t.trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("tainted: {e}")))
}

/// One `/dev/kmsg` record: `PRI,SEQ,TS,FLAGS[,…];MESSAGE` then optional
/// ` KEY=VALUE` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Syslog facility (0 = kernel).
    pub facility: u32,
    /// Log level (0 emerg … 7 debug).
    pub level: u32,
    /// Sequence number.
    pub seq: u64,
    /// The message (non-printable bytes stay escaped as `\xNN`).
    pub message: String,
}

/// Parses one record as `read(2)` on `/dev/kmsg` returns it.
pub fn parse_record(raw: &str) -> Option<Record> {
    let (prefix, rest) = raw.split_once(';')?;
    let mut f = prefix.split(',');
    let pri: u32 = f.next()?.trim().parse().ok()?;
    let seq: u64 = f.next()?.trim().parse().ok()?;
    let message = rest.split('\n').next().unwrap_or("").to_string();
    Some(Record {
        facility: pri >> 3,
        level: pri & 7,
        seq,
        message,
    })
}

/// Whether the kernel log is read around each case, shown in the run
/// header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthWatch {
    /// `/dev/kmsg` is read after each case.
    pub kmsg: bool,
    /// `/proc/sys/kernel/tainted` is compared after each case.
    pub taint: bool,
    /// Why something is not watched; taint already set at the start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl HealthWatch {
    /// One line for the human header.
    pub fn describe(&self) -> String {
        let what = match (self.kmsg, self.taint) {
            (true, true) => "kernel log and taint watched",
            (true, false) => "kernel log watched, taint not",
            (false, true) => "kernel log NOT watched, taint watched",
            (false, false) => "kernel log and taint NOT watched",
        };
        if self.notes.is_empty() {
            what.to_string()
        } else {
            format!("{what} ({})", self.notes.join("; "))
        }
    }
}

/// What one case is charged with.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Findings {
    /// Splat lines (already cut to [`MAX_LINES`], `more` counts the rest).
    pub lines: Vec<String>,
    /// Lines not kept.
    pub more: usize,
    /// New problem taint flags, decoded.
    pub taint: Vec<String>,
    /// Other cases that ran in an interval with findings.
    pub alongside: Vec<String>,
    /// Lost records, provenance taints.
    pub notes: Vec<String>,
}

impl Findings {
    fn absorb(&mut self, d: &Drained, alongside: impl Iterator<Item = String>) {
        for l in &d.lines {
            if self.lines.len() < MAX_LINES {
                self.lines.push(l.clone());
            } else {
                self.more += 1;
            }
        }
        self.taint.extend(d.taint.iter().cloned());
        self.notes.extend(d.notes.iter().cloned());
        if !d.lines.is_empty() || !d.taint.is_empty() {
            for a in alongside {
                if !self.alongside.contains(&a) {
                    self.alongside.push(a);
                }
            }
        }
    }

    /// Marks the report: a `kernel.log` and/or `kernel.taint` mismatch and
    /// outcome `fail`; notes added either way.
    pub fn apply(self, r: &mut CaseReport) {
        let also = if self.alongside.is_empty() {
            String::new()
        } else {
            format!("; also running then: {}", self.alongside.join(", "))
        };
        let mut new = Vec::new();
        if !self.lines.is_empty() {
            let mut lines: Vec<Value> = self.lines.into_iter().map(Value::String).collect();
            if self.more > 0 {
                lines.push(Value::String(format!("… and {} more", self.more)));
            }
            new.push(Mismatch {
                counter: "kernel.log".into(),
                expected: "no kernel warning, BUG, oops or splat".into(),
                observed: Value::Array(lines),
                source: format!("/dev/kmsg records appended since the previous case ended{also}"),
            });
        }
        if !self.taint.is_empty() {
            new.push(Mismatch {
                counter: "kernel.taint".into(),
                expected: "no new taint flag".into(),
                observed: Value::String(self.taint.join(", ")),
                source: format!("/proc/sys/kernel/tainted since the previous case ended{also}"),
            });
        }
        r.notes.extend(self.notes);
        charge(r, new);
    }
}

/// Adds health mismatches to a report and fails it (a skip or xfail reason
/// is kept as a note).
fn charge(r: &mut CaseReport, new: Vec<Mismatch>) {
    if new.is_empty() {
        return;
    }
    if r.outcome != Outcome::Fail {
        if let Some(why) = r.reason.take() {
            r.notes.push(format!(
                "before the kernel health check: {} ({why})",
                r.outcome.label().to_lowercase()
            ));
        }
        r.outcome = Outcome::Fail;
        r.reason = Some(new[0].to_string());
    }
    for m in &new {
        r.observations.insert(m.counter.clone(), m.observed.clone());
    }
    r.checks += new.len();
    r.mismatches.extend(new);
}

/// What one drain found.
#[derive(Debug, Default)]
struct Drained {
    lines: Vec<String>,
    taint: Vec<String>,
    notes: Vec<String>,
}

static CONSOLE_MARKERS: AtomicBool = AtomicBool::new(false);

/// Makes monitors write `kharness: case start/end NAME` to `/dev/kmsg`
/// around each case (the matrix guest calls it; on a host it would only
/// clutter the log).
pub fn set_console_markers(on: bool) {
    CONSOLE_MARKERS.store(on, Ordering::Relaxed);
}

/// Writes one user-facility record. A fresh open each time: the
/// `printk.devkmsg=ratelimit` default limits writes per open file. The
/// newline matters: without it the ring buffer keeps the record open for a
/// continuation, and readers see it only once the next record arrives.
fn write_kmsg(text: &str) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open("/dev/kmsg")?;
    f.write_all(format!("{text}\n").as_bytes())
}

#[derive(Debug)]
struct State {
    kmsg: Option<File>,
    taint: Option<u64>,
    /// Cases running now, by work number.
    running: BTreeMap<usize, String>,
    /// Cases running at any moment since the last drain.
    interval: BTreeMap<usize, String>,
    /// Findings for cases still running.
    pending: BTreeMap<usize, Findings>,
}

/// Watches the kernel log and taint for a run (see the module docs).
#[derive(Debug)]
pub struct Monitor {
    state: Mutex<State>,
    watch: HealthWatch,
    selftest: Option<String>,
    markers: bool,
}

impl Monitor {
    /// Opens `/dev/kmsg` at its end and reads the taint mask.
    pub fn open() -> Monitor {
        let mut notes = Vec::new();
        let kmsg = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .and_then(|mut f| f.seek(SeekFrom::End(0)).map(|_| f))
        {
            Ok(f) => Some(f),
            Err(e) => {
                let mut why = Vec::new();
                if crate::privilege::in_user_namespace() {
                    why.push("in a user namespace");
                }
                if std::fs::read_to_string("/proc/sys/kernel/dmesg_restrict").is_ok_and(|t| t.trim() == "1") {
                    why.push("kernel.dmesg_restrict=1");
                }
                let errno = e
                    .raw_os_error()
                    .map(|n| {
                        let n = nix::errno::Errno::from_raw(n);
                        format!("{n:?} ({})", n.desc())
                    })
                    .unwrap_or_else(|| e.to_string());
                let why = if why.is_empty() {
                    String::new()
                } else {
                    format!(", {}", why.join(", "))
                };
                notes.push(format!("/dev/kmsg: {errno}{why}"));
                None
            }
        };
        let taint = match read_taint() {
            Ok(t) => {
                if t != 0 {
                    let letters: String = decode_taint(t).iter().filter_map(|s| s.chars().next()).collect();
                    notes.push(format!("tainted {letters} before the run"));
                }
                Some(t)
            }
            Err(e) => {
                notes.push(format!("/proc/sys/kernel/tainted: {e}"));
                None
            }
        };
        let selftest = (std::env::var(TEST_SWITCH).as_deref() == Ok("1") && kmsg.is_some())
            .then(|| format!("{SELFTEST_TAG}[{}]: ", std::process::id()));
        if selftest.is_some() {
            notes.push(format!("{TEST_SWITCH}=1: a selftest warning is written in every case"));
        }
        Monitor {
            watch: HealthWatch {
                kmsg: kmsg.is_some(),
                taint: taint.is_some(),
                notes,
            },
            state: Mutex::new(State {
                kmsg,
                taint,
                running: BTreeMap::new(),
                interval: BTreeMap::new(),
                pending: BTreeMap::new(),
            }),
            selftest,
            markers: CONSOLE_MARKERS.load(Ordering::Relaxed),
        }
    }

    /// What is watched, for the run header.
    pub fn watch(&self) -> HealthWatch {
        self.watch.clone()
    }

    /// Case `name` (work number `k`) is about to start.
    pub fn case_started(&self, k: usize, name: &str) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.running.insert(k, name.to_string());
        s.interval.insert(k, name.to_string());
        drop(s);
        if self.markers {
            let _ = write_kmsg(&format!("<12>{MARK_START}{name}"));
        }
        if let Some(tag) = &self.selftest {
            let _ = write_kmsg(&format!("<12>{tag}{SELFTEST_WARNING}"));
        }
    }

    /// Case `k` has ended (its process and process group are gone): drains
    /// the log, charges every case of the interval, and marks `report` with
    /// what it is charged with.
    pub fn case_finished(&self, k: usize, report: &mut CaseReport) {
        if self.markers {
            let _ = write_kmsg(&format!("<12>{MARK_END}{}", report.case));
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let drained = self.drain(&mut s);
        let interval = std::mem::take(&mut s.interval);
        for (&j, _) in interval.iter() {
            let others = interval.iter().filter(|(i, _)| **i != j).map(|(_, n)| n.clone());
            s.pending.entry(j).or_default().absorb(&drained, others);
        }
        s.running.remove(&k);
        s.interval = s.running.clone();
        let mine = s.pending.remove(&k).unwrap_or_default();
        drop(s);
        mine.apply(report);
    }

    fn drain(&self, s: &mut State) -> Drained {
        let mut d = Drained::default();
        if let Some(f) = s.kmsg.as_mut() {
            // CONSOLE_EXT_LOG_MAX (8 KiB) holds any record with its dictionary.
            let mut buf = vec![0u8; 16 * 1024];
            let mut lost = false;
            loop {
                match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let raw = String::from_utf8_lossy(&buf[..n]);
                        if let Some(line) = parse_record(&raw).and_then(|r| self.splat(&r)) {
                            d.lines.push(line);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.raw_os_error() == Some(libc::EPIPE) => lost = true,
                    Err(e) => {
                        d.notes.push(format!(
                            "/dev/kmsg: read failed ({e}); the kernel log is no longer read"
                        ));
                        s.kmsg = None;
                        break;
                    }
                }
            }
            if lost {
                d.notes
                    .push("kernel log records were overwritten before they were read (EPIPE): some may be lost".into());
            }
        }
        if let Some(before) = s.taint {
            if let Ok(now) = read_taint() {
                s.taint = Some(now | before);
                let (problems, other) = taint_delta(before, now);
                d.taint = problems;
                if !other.is_empty() {
                    d.notes.push(format!("new taint flags: {}", other.join(", ")));
                }
            }
        }
        d
    }

    /// The line to quote if `r` is a kernel splat (or this run's selftest).
    fn splat(&self, r: &Record) -> Option<String> {
        let message = if r.facility == 0 {
            r.message.as_str()
        } else {
            let tag = self.selftest.as_deref()?;
            r.message.strip_prefix(tag)?
        };
        classify(message).map(|_| r.message.clone())
    }
}

/// A splat seen on a guest console, with the cases running when it appeared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSplat {
    /// The console line, timestamp removed.
    pub line: String,
    /// Cases between their start and end markers at that point.
    pub cases: Vec<String>,
}

impl ConsoleSplat {
    /// `LINE (during CASE, CASE)`, or `(outside any case)`.
    pub fn describe(&self) -> String {
        if self.cases.is_empty() {
            format!("{} (outside any case)", self.line)
        } else {
            format!("{} (during {})", self.line, self.cases.join(", "))
        }
    }
}

/// Charges console splats to the cases they were attributed to: a result
/// without a `kernel.log` mismatch of its own (the guest's monitor missed
/// the lines: its log overflowed, or the guest died first) gets a
/// `kernel.console` mismatch quoting them, and fails.
pub fn charge_console<'a>(splats: &[ConsoleSplat], reports: impl Iterator<Item = &'a mut CaseReport>) {
    for r in reports {
        let lines: Vec<Value> = splats
            .iter()
            .filter(|s| s.cases.contains(&r.case))
            .take(MAX_LINES)
            .map(|s| Value::String(s.line.clone()))
            .collect();
        if lines.is_empty() || r.mismatches.iter().any(|m| m.counter == "kernel.log") {
            continue;
        }
        let others: Vec<String> = splats
            .iter()
            .filter(|s| s.cases.contains(&r.case))
            .flat_map(|s| s.cases.iter().filter(|c| **c != r.case).cloned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let also = if others.is_empty() {
            String::new()
        } else {
            format!("; also running then: {}", others.join(", "))
        };
        charge(
            r,
            vec![Mismatch {
                counter: "kernel.console".into(),
                expected: "no kernel warning, BUG, oops or splat".into(),
                observed: Value::Array(lines),
                source: format!("guest console between this case's start and end markers{also}"),
            }],
        );
    }
}

/// Attributes console splats to cases using the `kharness: case start/end`
/// markers the guest writes around each case. `lines` are console lines with
/// their timestamps removed.
pub fn attribute_console<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<ConsoleSplat> {
    let mut running: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for l in lines {
        if let Some(i) = l.find(MARK_START) {
            running.push(l[i + MARK_START.len()..].trim().to_string());
        } else if let Some(i) = l.find(MARK_END) {
            let n = l[i + MARK_END.len()..].trim();
            if let Some(p) = running.iter().position(|r| r == n) {
                running.remove(p);
            }
        } else if classify(l).is_some() {
            out.push(ConsoleSplat {
                line: l.chars().take(300).collect(),
                cases: running.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// Lines as printed by real kernels (syzbot reports, lore threads).
    #[rstest]
    #[case::warning_refcount(
        "WARNING: CPU: 1 PID: 61 at lib/refcount.c:28 refcount_warn_saturate+0xba/0x110",
        "warning"
    )]
    #[case::refcount_underflow("refcount_t: underflow; use-after-free.", "refcount")]
    #[case::refcount_addition_on_0("refcount_t: addition on 0; use-after-free.", "refcount")]
    #[case::lockdep_circular("WARNING: possible circular locking dependency detected", "warning")]
    #[case::kasan("BUG: KASAN: use-after-free in netif_receive_skb_internal+0x234/0x580", "BUG")]
    #[case::null_deref("BUG: kernel NULL pointer dereference, address: 0000000000000000", "BUG")]
    #[case::oops("Oops: 0000 [#1] PREEMPT SMP NOPTI", "oops")]
    #[case::general_protection_fault(
        "general protection fault, probably for non-canonical address 0xdffffc0000000000: 0000 [#1] PREEMPT SMP KASAN",
        "oops"
    )]
    #[case::kernel_bug_at("kernel BUG at net/core/skbuff.c:110!", "BUG")]
    #[case::ubsan("UBSAN: shift-out-of-bounds in net/sctp/transport.c:509:41", "UBSAN")]
    #[case::hung_task("INFO: task kworker/u4:4:5271 blocked for more than 143 seconds.", "hung task")]
    #[case::netdev_refcount_leak(
        "unregister_netdevice: waiting for lo to become free. Usage count = 2",
        "netdev reference leak"
    )]
    #[case::rcu_self_detected_stall("rcu: INFO: rcu_preempt self-detected stall on CPU", "RCU stall")]
    #[case::rcu_stall("rcu: INFO: rcu_sched detected stalls on CPUs/tasks:", "RCU stall")]
    #[case::soft_lockup("watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [swapper/0:1]", "BUG")]
    #[case::panic("Kernel panic - not syncing: panic_on_warn set ...", "panic")]
    #[case::printk_caller_warning("[   T80] WARNING: CPU: 6 PID: 80 at lib/refcount.c:28", "warning")]
    fn classifies_real_splats(#[case] line: &str, #[case] kind: &str) {
        assert_eq!(classify(line), Some(kind), "{line}");
    }

    /// Console lines that look alarming but are no kernel splat.
    #[rstest]
    #[case::promiscuous("r0: entered promiscuous mode")]
    #[case::martian("IPv4: martian source 198.18.0.2 from 198.19.255.1, on dev rp5064")]
    #[case::addrconf("IPv6: ADDRCONF(NETDEV_CHANGE): veth0: link becomes ready")]
    #[case::syn_flood("TCP: request_sock_TCP: Possible SYN flooding on port 198.18.0.1:80. Sending cookies.")]
    #[case::warning_mid_line("systemd[1]: printed WARNING: in the middle of a line")]
    #[case::user_gpf(
        "traps: a.out[4242] general protection fault ip:401136 sp:7ffd5c1f0a30 error:0 in a.out[401000+1000]"
    )]
    #[case::user_segfault(
        "a.out[4243]: segfault at 0 ip 0000000000401136 sp 00007ffd5c1f0a30 error 6 in a.out[401000+1000]"
    )]
    fn quiet_lines_are_not_splats(#[case] line: &str) {
        assert_eq!(classify(line), None, "{line}");
    }

    #[test]
    fn records_and_facilities() {
        let r =
            parse_record("4,342,311982332,-;WARNING: CPU: 0 PID: 9 at net/x.c:1 f+0x0/0x1\n SUBSYSTEM=net\n").unwrap();
        assert_eq!((r.facility, r.level, r.seq), (0, 4, 342));
        assert!(r.message.starts_with("WARNING: CPU: 0"));
        // A user-space write: facility LOG_USER (12 = 1 << 3 | 4).
        let u = parse_record("12,343,311982400,-;WARNING: CPU: 0 PID: 1 at fake").unwrap();
        assert_eq!(u.facility, 1);
        assert_eq!(parse_record("garbage"), None);
        let m = Monitor {
            state: Mutex::new(State {
                kmsg: None,
                taint: None,
                running: BTreeMap::new(),
                interval: BTreeMap::new(),
                pending: BTreeMap::new(),
            }),
            watch: HealthWatch {
                kmsg: false,
                taint: false,
                notes: vec![],
            },
            selftest: Some(format!("{SELFTEST_TAG}[77]: ")),
            markers: false,
        };
        assert!(m.splat(&r).is_some());
        // User-space records never count, however they look…
        assert_eq!(m.splat(&u), None);
        // …except this runner's own selftest record, not another runner's.
        let own = parse_record(&format!("12,1,1,-;{SELFTEST_TAG}[77]: {SELFTEST_WARNING}")).unwrap();
        let other = parse_record(&format!("12,1,1,-;{SELFTEST_TAG}[78]: {SELFTEST_WARNING}")).unwrap();
        assert!(m.splat(&own).is_some());
        assert_eq!(m.splat(&other), None);
    }

    #[test]
    fn taint_decoding() {
        assert_eq!(decode_taint(1 << 9), ["W (warning)"]);
        assert_eq!(decode_taint(1 << 7 | 1 << 12).len(), 2);
        assert_eq!(decode_taint(1 << 40), ["bit 40"]);
        let p = problem_mask();
        assert!(p & 1 << 9 != 0 && p & 1 << 7 != 0);
        assert!(p & 1 << 12 == 0 && p & 1 << 13 == 0 && p & 1 == 0);
        // Already tainted W and O: only new flags count; an unsigned module
        // (E) autoloaded during the case is a note, a death (D) a failure.
        let before = 1 << 9 | 1 << 12;
        assert_eq!(taint_delta(before, before), (vec![], vec![]));
        let (problems, other) = taint_delta(before, before | 1 << 7 | 1 << 13);
        assert_eq!(problems, ["D (kernel died (oops or BUG))"]);
        assert_eq!(other, ["E (unsigned module)"]);
    }

    fn report(outcome: Outcome) -> CaseReport {
        CaseReport {
            case: "tcp.x".into(),
            variant: None,
            outcome,
            reason: (outcome == Outcome::Skip).then(|| "no sctp".to_string()),
            duration_ms: 1,
            cpu_ms: None,
            kernel: String::new(),
            observations: Default::default(),
            mismatches: vec![],
            checks: 3,
            notes: vec![],
            repetition: 1,
            volatile: vec![],
            attempts: vec![],
        }
    }

    #[test]
    fn findings_fail_the_case() {
        let mut r = report(Outcome::Pass);
        Findings::default().apply(&mut r);
        assert_eq!(r.outcome, Outcome::Pass);

        let f = Findings {
            lines: vec!["WARNING: CPU: 0 PID: 1 at net/x.c:1 f+0x0/0x1".into()],
            alongside: vec!["udp.y".into()],
            ..Default::default()
        };
        let mut r = report(Outcome::Skip);
        f.apply(&mut r);
        assert_eq!(r.outcome, Outcome::Fail);
        assert_eq!(r.mismatches[0].counter, "kernel.log");
        assert!(r.reason.as_deref().unwrap().contains("net/x.c:1"));
        assert!(r.mismatches[0].source.contains("udp.y"));
        assert!(r.notes[0].contains("skip (no sctp)"));
        assert_eq!(r.checks, 4);

        let mut r = report(Outcome::Pass);
        Findings {
            taint: vec!["W (warning)".into()],
            ..Default::default()
        }
        .apply(&mut r);
        assert_eq!(r.outcome, Outcome::Fail);
        assert_eq!(r.mismatches[0].counter, "kernel.taint");
    }

    #[test]
    fn intervals_charge_every_case_running() {
        let m = Monitor {
            state: Mutex::new(State {
                kmsg: None,
                taint: None,
                running: BTreeMap::new(),
                interval: BTreeMap::new(),
                pending: BTreeMap::new(),
            }),
            watch: HealthWatch {
                kmsg: false,
                taint: false,
                notes: vec![],
            },
            selftest: None,
            markers: false,
        };
        // a and b run; a splat lands while both run; a ends, then c starts,
        // b ends, c ends.
        m.case_started(0, "a");
        m.case_started(1, "b");
        let d = Drained {
            lines: vec!["BUG: x".into()],
            ..Default::default()
        };
        {
            let mut s = m.state.lock().unwrap();
            let interval = s.interval.clone();
            for (&j, _) in interval.iter() {
                let others = interval.iter().filter(|(i, _)| **i != j).map(|(_, n)| n.clone());
                s.pending.entry(j).or_default().absorb(&d, others);
            }
        }
        let mut ra = report(Outcome::Pass);
        m.case_finished(0, &mut ra);
        m.case_started(2, "c");
        let mut rb = report(Outcome::Pass);
        m.case_finished(1, &mut rb);
        let mut rc = report(Outcome::Pass);
        m.case_finished(2, &mut rc);
        assert_eq!(ra.outcome, Outcome::Fail);
        assert!(ra.mismatches[0].source.contains("also running then: b"));
        assert_eq!(rb.outcome, Outcome::Fail);
        assert_eq!(rc.outcome, Outcome::Pass);
    }

    #[test]
    fn console_attribution() {
        let console = [
            "Linux version 6.1.0",
            "kharness: case start tcp.fill[veth]",
            "kharness: case start udp.gro",
            "WARNING: CPU: 0 PID: 1 at net/core/dev.c:123 foo+0x1/0x2",
            "kharness: case end tcp.fill[veth]",
            "BUG: kernel NULL pointer dereference, address: 0000000000000000",
            "kharness: case end udp.gro",
            "unregister_netdevice: waiting for lo to become free. Usage count = 2",
        ];
        let s = attribute_console(console.iter().copied());
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].cases, ["tcp.fill[veth]", "udp.gro"]);
        assert_eq!(s[1].cases, ["udp.gro"]);
        assert!(s[2].cases.is_empty());
        assert!(s[2].describe().ends_with("(outside any case)"));

        let mut tcp = report(Outcome::Pass);
        tcp.case = "tcp.fill[veth]".into();
        let mut udp = report(Outcome::Fail);
        udp.case = "udp.gro".into();
        // udp.gro's own monitor already quoted the kernel log: not twice.
        Findings {
            lines: vec!["BUG: kernel NULL pointer dereference".into()],
            ..Default::default()
        }
        .apply(&mut udp);
        let mut other = report(Outcome::Pass);
        charge_console(&s, [&mut tcp, &mut udp, &mut other].into_iter());
        assert_eq!(tcp.outcome, Outcome::Fail);
        assert_eq!(tcp.mismatches[0].counter, "kernel.console");
        assert!(tcp.mismatches[0].source.contains("also running then: udp.gro"));
        assert_eq!(udp.mismatches.len(), 1);
        assert_eq!(other.outcome, Outcome::Pass);
    }
}
