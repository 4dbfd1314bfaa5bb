//! What a matrix run produced: one [`KernelRun`] per kernel, gathered into a
//! [`Matrix`] that every matrix reporter reads and that `--format json`
//! writes (and `kharness report merge` reads back).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use kharness::case::{CaseReport, Outcome};
use kharness::kernel::KernelInfo;

use super::protocol::Message;

/// Format version of the matrix JSON.
pub const SCHEMA: u32 = 1;

/// Every kernel's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    /// [`SCHEMA`].
    pub schema: u32,
    /// Harness version.
    pub harness: String,
    /// The kernels run, in list order.
    pub kernels: Vec<KernelRun>,
    /// Wall time of the whole run (sum of the parts after a merge).
    pub wall_ms: u64,
    /// `[i, n]` when this is one shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<(usize, usize)>,
    /// What differs between the kernels (filled in before output; computed
    /// again after a merge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub differences: Option<super::diff::Differences>,
}

/// How far a kernel got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelStatus {
    /// The catalog ran to the end (`done` seen).
    Completed,
    /// A configuration error: unknown name, bad entry.
    Config,
    /// It could not be fetched, or nothing to boot it with (no QEMU, no static binary).
    Unavailable,
    /// The VM never said hello.
    NoBoot,
    /// The guest stopped without `done` (panic, oops, PID 1 died).
    Crashed,
    /// The VM outlived its wall-clock limit and was killed.
    TimedOut,
}

impl KernelStatus {
    /// Short label for tables.
    pub fn label(self) -> &'static str {
        match self {
            KernelStatus::Completed => "completed",
            KernelStatus::Config => "config error",
            KernelStatus::Unavailable => "not run",
            KernelStatus::NoBoot => "did not boot",
            KernelStatus::Crashed => "crashed",
            KernelStatus::TimedOut => "timed out",
        }
    }
}

/// A module's fate in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleReport {
    /// Module name.
    pub name: String,
    /// `loaded`, `builtin`, `missing`, `failed`, or `unknown` (no module
    /// file and no `modules.builtin`: possibly built in).
    pub state: String,
    /// Why it is missing or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Times measured for one kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// Resolving and fetching (0 when cached).
    pub fetch_ms: u64,
    /// Building the initramfs.
    pub initramfs_ms: u64,
    /// VM start to the guest's `hello`.
    pub boot_ms: u64,
    /// `hello` to `done` (the catalog, with module loading).
    pub catalog_ms: u64,
    /// Everything for this kernel.
    pub total_ms: u64,
}

/// One result with the kernel facts it was observed under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixResult {
    /// The case report (its `kernel` is the release it ran on).
    #[serde(flatten)]
    pub report: CaseReport,
    /// The `tcp_info` length that kernel returned.
    pub tcp_info_len: usize,
}

/// One kernel's column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelRun {
    /// Name from the kernel list.
    pub name: String,
    /// Position in the full list (orders merged shards).
    pub index: usize,
    /// One line.
    pub description: String,
    /// What was run: package and version, `host`, or a path.
    pub source: String,
    /// How it ran: `native`, `kvm`, `tcg`.
    pub accel: String,
    /// How far it got.
    pub status: KernelStatus,
    /// Why it did not complete, and what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Kernel facts from the guest's header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelInfo>,
    /// `uname -r` (from hello or header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Modules asked for, and what became of them.
    #[serde(default)]
    pub modules: Vec<ModuleReport>,
    /// Results, in the order they finished.
    #[serde(default)]
    pub results: Vec<MatrixResult>,
    /// Kernel warnings, BUGs and oopses seen on the console.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Last console lines, when the guest did not finish.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub console_tail: Vec<String>,
    /// Notes: fetch fallbacks, cache use, log locations.
    #[serde(default)]
    pub notes: Vec<String>,
    /// What `--explore` found on this kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explore: Option<kharness::explore::ExploreSummary>,
    /// Measured times.
    pub timings: Timings,
}

impl KernelRun {
    /// A kernel that has not run (yet).
    pub fn new(name: &str, index: usize, description: &str) -> KernelRun {
        KernelRun {
            name: name.to_string(),
            index,
            description: description.to_string(),
            source: String::new(),
            accel: String::new(),
            status: KernelStatus::Unavailable,
            problem: None,
            kernel: None,
            release: None,
            modules: Vec::new(),
            results: Vec::new(),
            warnings: Vec::new(),
            console_tail: Vec::new(),
            notes: Vec::new(),
            explore: None,
            timings: Timings::default(),
        }
    }

    /// Marks the kernel as not run, with the reason.
    pub fn fail(mut self, status: KernelStatus, problem: impl Into<String>) -> KernelRun {
        self.status = status;
        self.problem = Some(problem.into());
        self
    }

    /// The result for case `name`, if it ran.
    pub fn result(&self, name: &str) -> Option<&MatrixResult> {
        self.results.iter().find(|r| r.report.case == name)
    }

    /// Counts by outcome label (`PASS`, `FAIL`, `SKIP`, `XFAIL`, `XPASS`).
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for r in &self.results {
            *m.entry(r.report.outcome.label()).or_insert(0) += 1;
        }
        m
    }

    /// Modules that are not there, for skip reasons.
    pub fn missing_modules(&self) -> Vec<&ModuleReport> {
        self.modules
            .iter()
            .filter(|m| m.state == "missing" || m.state == "failed" || m.state == "unknown")
            .collect()
    }

    /// The reason shown for a result: the case's own, plus the missing
    /// module it names (a skip for "no SCTP" on a kernel whose sctp module
    /// failed to load says so).
    pub fn reason_of(&self, r: &CaseReport) -> Option<String> {
        let reason = r.reason.clone()?;
        if r.outcome != Outcome::Skip {
            return Some(reason);
        }
        let low = reason.to_lowercase();
        let causes: Vec<String> = self
            .missing_modules()
            .into_iter()
            .filter(|m| {
                let base = m.name.trim_end_matches("_diag");
                low.contains(&m.name) || (!base.is_empty() && low.contains(base))
            })
            .map(|m| {
                format!(
                    "module {} {}{}",
                    m.name,
                    m.state,
                    m.detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default()
                )
            })
            .collect();
        Some(if causes.is_empty() {
            reason
        } else {
            format!("{reason} ({})", causes.join("; "))
        })
    }
}

/// Feeds protocol messages into a [`KernelRun`].
#[derive(Debug, Default)]
pub struct Recorder {
    /// Case started and not finished.
    pub running: Vec<String>,
    /// `hello` seen.
    pub hello: bool,
    /// `done` seen.
    pub done: bool,
    /// `error` messages from the guest.
    pub errors: Vec<String>,
}

impl Recorder {
    /// Applies one message.
    pub fn apply(&mut self, run: &mut KernelRun, msg: Message) {
        match msg {
            Message::Hello { release, .. } => {
                self.hello = true;
                run.release = Some(release);
            }
            Message::Module { name, ok, error } => {
                if let Some(m) = run.modules.iter_mut().find(|m| m.name == name) {
                    if !ok {
                        m.state = "failed".into();
                        m.detail = error;
                    }
                } else {
                    run.modules.push(ModuleReport {
                        name,
                        state: if ok { "loaded" } else { "failed" }.into(),
                        detail: error,
                    });
                }
            }
            Message::Header(h) => {
                self.hello = true;
                run.release = Some(h.kernel.release.clone());
                run.kernel = Some(h.kernel);
            }
            Message::CaseStart { case } => self.running.push(case),
            Message::Result(report) => {
                self.running.retain(|c| *c != report.case);
                let tcp_info_len = run.kernel.as_ref().map(|k| k.tcp_info_len).unwrap_or(0);
                run.results.push(MatrixResult { report, tcp_info_len });
            }
            Message::Summary(_) => {}
            Message::Explore(s) => run.explore = Some(s),
            Message::Done { .. } => self.done = true,
            Message::Error { message } => self.errors.push(message),
        }
    }

    /// Closes the run: `done` → completed; otherwise the status given (crash
    /// or timeout), with the cases that were running failed with it.
    pub fn finish(&mut self, run: &mut KernelRun, otherwise: KernelStatus, why: &str) {
        if self.done && self.errors.is_empty() {
            run.status = KernelStatus::Completed;
            return;
        }
        let status = if !self.hello { KernelStatus::NoBoot } else { otherwise };
        let mut problem = why.to_string();
        if !self.errors.is_empty() {
            problem = format!("{problem}; guest said: {}", self.errors.join("; "));
        }
        for case in self.running.drain(..) {
            let report = CaseReport::harness_failure(
                case.clone(),
                None,
                format!("the kernel {} during this case: {why}", status.label()),
                run.release.clone().unwrap_or_default(),
                0,
            );
            let tcp_info_len = run.kernel.as_ref().map(|k| k.tcp_info_len).unwrap_or(0);
            run.results.push(MatrixResult { report, tcp_info_len });
        }
        run.status = if self.done { KernelStatus::Crashed } else { status };
        run.problem = Some(problem);
    }
}

/// The exit code of a matrix: 2 a configuration error, 1 a case failed or a
/// kernel crashed or hung during the catalog, 69 a kernel could not be run
/// (fetch, boot, no QEMU), 0 otherwise.
pub fn exit_code(m: &Matrix) -> i32 {
    let any = |f: &dyn Fn(&KernelRun) -> bool| m.kernels.iter().any(f);
    if any(&|k| k.status == KernelStatus::Config) {
        2
    } else if any(&|k| {
        matches!(k.status, KernelStatus::Crashed | KernelStatus::TimedOut)
            || k.results.iter().any(|r| r.report.outcome == Outcome::Fail)
            || k.explore.as_ref().is_some_and(|e| e.found() > 0)
    }) {
        1
    } else if any(&|k| matches!(k.status, KernelStatus::Unavailable | KernelStatus::NoBoot)) {
        69
    } else {
        0
    }
}

/// Every case name across the kernels, in first-seen order after `order`.
pub fn case_names(m: &Matrix, order: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let seen: std::collections::BTreeSet<&str> = m
        .kernels
        .iter()
        .flat_map(|k| k.results.iter().map(|r| r.report.case.as_str()))
        .collect();
    for o in order {
        if seen.contains(o.as_str()) && !out.contains(o) {
            out.push(o.clone());
        }
    }
    for k in &m.kernels {
        for r in &k.results {
            if !out.contains(&r.report.case) {
                out.push(r.report.case.clone());
            }
        }
    }
    out
}

/// Builds one matrix from shards: kernels concatenated in list order; the
/// same kernel in two parts is an error naming both.
pub fn merge(parts: Vec<(String, Matrix)>) -> Result<Matrix, String> {
    let mut kernels: Vec<(String, KernelRun)> = Vec::new();
    let mut wall = 0;
    for (file, m) in parts {
        if m.schema != SCHEMA {
            return Err(format!(
                "{file}: matrix schema {} is not understood (this kharness reads {SCHEMA})",
                m.schema
            ));
        }
        wall += m.wall_ms;
        for k in m.kernels {
            if let Some((other, _)) = kernels.iter().find(|(_, o)| o.name == k.name) {
                return Err(format!(
                    "kernel `{}` is in both {other} and {file}; merge each shard once",
                    k.name
                ));
            }
            kernels.push((file.clone(), k));
        }
    }
    kernels.sort_by_key(|(_, k)| k.index);
    Ok(Matrix {
        schema: SCHEMA,
        harness: env!("CARGO_PKG_VERSION").to_string(),
        kernels: kernels.into_iter().map(|(_, k)| k).collect(),
        wall_ms: wall,
        shard: None,
        differences: None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn report(case: &str, outcome: Outcome, reason: Option<&str>) -> CaseReport {
        CaseReport {
            case: case.into(),
            variant: None,
            outcome,
            reason: reason.map(str::to_string),
            duration_ms: 5,
            cpu_ms: None,
            kernel: "6.1.0-47-cloud-amd64".into(),
            observations: Default::default(),
            mismatches: vec![],
            checks: 3,
            notes: vec![],
            repetition: 1,
            volatile: vec![],
            attempts: vec![],
        }
    }

    pub(crate) fn sample() -> Matrix {
        let mut a = KernelRun::new("6.1", 1, "bookworm");
        a.status = KernelStatus::Completed;
        a.release = Some("6.1.0-47-cloud-amd64".into());
        a.modules.push(ModuleReport {
            name: "sctp".into(),
            state: "missing".into(),
            detail: Some("not in package".into()),
        });
        for (c, o, r) in [
            ("tcp.fill", Outcome::Pass, None),
            ("sctp.basic", Outcome::Skip, Some("kernel lacks SCTP")),
            (
                "tcp.info_diag",
                Outcome::Xfail,
                Some("tcp_info is 232 bytes before 6.2: evidence"),
            ),
        ] {
            a.results.push(MatrixResult {
                report: report(c, o, r),
                tcp_info_len: 232,
            });
        }
        let mut b = KernelRun::new("host", 4, "native");
        b.status = KernelStatus::Completed;
        b.results.push(MatrixResult {
            report: report("tcp.fill", Outcome::Fail, Some("x: expected 1, observed 0")),
            tcp_info_len: 280,
        });
        let c = KernelRun::new("5.10", 0, "bullseye").fail(KernelStatus::Unavailable, "cannot fetch");
        Matrix {
            schema: SCHEMA,
            harness: "0.1.0".into(),
            kernels: vec![c, a, b],
            wall_ms: 10,
            shard: None,
            differences: None,
        }
    }

    #[test]
    fn merge_orders_and_rejects_duplicates() {
        let m = sample();
        let mut p1 = m.clone();
        p1.kernels = vec![m.kernels[2].clone(), m.kernels[0].clone()];
        let mut p2 = m.clone();
        p2.kernels = vec![m.kernels[1].clone()];
        let merged = merge(vec![("a.json".into(), p1.clone()), ("b.json".into(), p2)]).unwrap();
        assert_eq!(
            merged.kernels.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
            ["5.10", "6.1", "host"]
        );
        assert_eq!(merged.kernels, m.kernels);
        let e = merge(vec![("a.json".into(), p1.clone()), ("c.json".into(), p1)]).unwrap_err();
        assert!(e.contains("a.json") && e.contains("c.json"), "{e}");
        // Through JSON, as the CLI does it.
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Matrix>(&text).unwrap(), m);
    }

    #[test]
    fn exit_codes_and_reasons() {
        let mut m = sample();
        assert_eq!(exit_code(&m), 1);
        m.kernels[2].results.clear();
        assert_eq!(exit_code(&m), 69);
        m.kernels.remove(0);
        assert_eq!(exit_code(&m), 0);
        let k = &m.kernels[0];
        let skip = &k.results[1].report;
        assert_eq!(
            k.reason_of(skip).unwrap(),
            "kernel lacks SCTP (module sctp missing: not in package)"
        );
        assert_eq!(
            case_names(&m, &["tcp.info_diag".into()]),
            ["tcp.info_diag", "tcp.fill", "sctp.basic"]
        );
    }

    #[test]
    fn recorder_crash_fails_running_case() {
        let mut run = KernelRun::new("6.1", 0, "");
        let mut rec = Recorder::default();
        rec.apply(
            &mut run,
            Message::Hello {
                release: "6.1.0".into(),
                uptime_ms: 1,
                harness: "x".into(),
            },
        );
        rec.apply(
            &mut run,
            Message::CaseStart {
                case: "tcp.fill".into(),
            },
        );
        rec.finish(&mut run, KernelStatus::Crashed, "no done");
        assert_eq!(run.status, KernelStatus::Crashed);
        assert_eq!(run.results[0].report.outcome, Outcome::Fail);
        let mut run = KernelRun::new("6.1", 0, "");
        Recorder::default().finish(&mut run, KernelStatus::Crashed, "no hello");
        assert_eq!(run.status, KernelStatus::NoBoot);
    }
}
