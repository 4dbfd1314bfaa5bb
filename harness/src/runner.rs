//! Runs case instances, each in its own child process.
//!
//! The child is this same binary re-executed with the hidden `__case`
//! subcommand. It is the leader of its own process group, and asks the
//! kernel to SIGKILL it if the runner thread that spawned it dies
//! (`PR_SET_PDEATHSIG`), so killing the runner — even with SIGKILL — kills
//! every case, and with them every namespace, link and socket they held.
//! A case that outlives its timeout has its whole process group killed.
//!
//! Up to `jobs` children run at once. Results come back as one JSON line on
//! the child's stdout; whatever the child wrote to stderr is kept (its tail)
//! for the failure report when the child dies without a result.
//!
//! With `repeat` N > 1 the whole selection runs N times (repetition 1 of
//! every instance, then repetition 2, …, the `jobs` slots kept full across
//! the boundaries); each result carries its repetition, and a per-instance
//! summary (outcome counts, duration spread) closes the run.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::case::{Attempt, CaseDef, CaseReport, Ctx, Outcome};
use crate::event::{CaseSummary, Event, RunHeader, Spread, Summary};
use crate::kernel::KernelInfo;
use crate::property::PropertySettings;

/// One case instance to run.
#[derive(Debug, Clone)]
pub struct Instance {
    /// The case.
    pub def: &'static CaseDef,
    /// `id` or `id[variant]`.
    pub name: String,
    /// The variant.
    pub variant: Option<&'static str>,
    /// Property settings of this instance alone (`explore` gives each run
    /// its own seed); `None`: the run's.
    pub property: Option<PropertySettings>,
}

/// Selects instances whose result name or id matches any filter: an exact
/// name, an id prefix (`tcp.` or `tcp`), or a glob with `*` and `?`
/// (`tcp.*`, `*.fill`). No filters selects everything.
pub fn select(catalog: &[&'static CaseDef], filters: &[String]) -> Vec<Instance> {
    let mut out = Vec::new();
    for def in catalog {
        for (name, variant) in def.instances() {
            let hit = filters.is_empty() || filters.iter().any(|f| matches_filter(f, def.id, &name));
            if hit {
                out.push(Instance {
                    def,
                    name,
                    variant,
                    property: None,
                });
            }
        }
    }
    out
}

/// Filter semantics (see [`select`]).
pub fn matches_filter(filter: &str, id: &str, name: &str) -> bool {
    if filter.contains('*') || filter.contains('?') {
        return glob(filter.as_bytes(), id.as_bytes()) || glob(filter.as_bytes(), name.as_bytes());
    }
    name == filter
        || id == filter
        || id.starts_with(filter) && (filter.ends_with('.') || id.as_bytes().get(filter.len()) == Some(&b'.'))
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Parallel case processes (≥ 1).
    pub jobs: usize,
    /// The binary to re-execute (normally `std::env::current_exe()`).
    pub exe: PathBuf,
    /// Multiplies every case's timeout (slow machines, emulated kernels).
    pub timeout_scale: f64,
    /// How many times the selection runs (≥ 1).
    pub repeat: usize,
    /// Seed, sequence count and explore mode for the property cases.
    pub property: PropertySettings,
    /// A failed case instance runs again, up to this many times; one that
    /// then passes is flaky (its failed attempts are kept in its report).
    pub retries: usize,
    /// Known kernel issues applied to every result (the built-in list and
    /// any `--known-issues FILE`).
    pub known_issues: Vec<crate::known_issues::KnownIssue>,
}

/// Runs every instance (`opts.repeat` times) and streams events to `sink`;
/// returns the summary.
pub fn run(kernel: KernelInfo, instances: Vec<Instance>, opts: &RunOptions, sink: &mut dyn FnMut(&Event)) -> Summary {
    let started = Instant::now();
    let repeat = opts.repeat.max(1);
    let total = instances.len() * repeat;
    let jobs = opts.jobs.max(1).min(total.max(1));
    // Kernel log and taint, drained after every case (crate::health).
    let health = crate::health::Monitor::open();
    let facts = kernel.clone();
    let facts = &facts;
    sink(&Event::RunStarted(RunHeader {
        schema: 1,
        kernel,
        cases: instances.len(),
        jobs,
        harness: env!("CARGO_PKG_VERSION").to_string(),
        repeat,
        health: Some(health.watch()),
    }));
    // Per instance, in catalog order: its tally and its durations.
    let mut tallies: Vec<(CaseSummary, Vec<u64>)> = if repeat > 1 {
        instances
            .iter()
            .map(|i| (CaseSummary::new(&i.name), Vec::new()))
            .collect()
    } else {
        Vec::new()
    };
    // The work is numbered, not queued: item k is instance k % n of
    // repetition k / n + 1 (a long --repeat holds no list of it).
    let next = AtomicUsize::new(0);
    let (instances, next, health) = (&instances, &next, &health);
    let (tx, rx) = mpsc::channel::<(usize, Event)>();
    let mut summary = Summary::default();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let tx = tx.clone();
            s.spawn(move || loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= total {
                    break;
                }
                let (rep, i) = (k / instances.len() + 1, k % instances.len());
                let inst = &instances[i];
                let _ = tx.send((
                    i,
                    Event::CaseStarted {
                        case: inst.name.clone(),
                    },
                ));
                health.case_started(k, &inst.name);
                let mut report = run_with_retries(inst, opts);
                health.case_finished(k, &mut report);
                crate::known_issues::apply(&mut report, inst.def.id, facts, &opts.known_issues);
                report.repetition = rep;
                let _ = tx.send((i, Event::CaseFinished(report)));
            });
        }
        drop(tx);
        for (i, ev) in rx {
            if let Event::CaseFinished(r) = &ev {
                summary.count(r);
                if let Some((tally, durations)) = tallies.get_mut(i) {
                    tally.count(r);
                    durations.push(r.duration_ms);
                }
            }
            sink(&ev);
        }
    });
    for (mut tally, durations) in tallies {
        tally.duration_ms = Spread::of(&durations);
        sink(&Event::CaseSummary(tally));
    }
    summary.duration_ms = started.elapsed().as_millis() as u64;
    sink(&Event::RunFinished(summary));
    summary
}

/// Runs `inst`, and again while it fails, up to `opts.retries` more times;
/// the failed attempts before the last go into its report.
fn run_with_retries(inst: &Instance, opts: &RunOptions) -> CaseReport {
    let mut report = run_child(inst, opts);
    let mut attempts = Vec::new();
    while report.outcome == Outcome::Fail && attempts.len() < opts.retries {
        attempts.push(Attempt::of(attempts.len() + 1, &report));
        report = run_child(inst, opts);
    }
    report.attempts = attempts;
    report
}

fn run_child(inst: &Instance, opts: &RunOptions) -> CaseReport {
    let start = Instant::now();
    let timeout = inst.def.timeout.mul_f64(opts.timeout_scale.max(0.01));
    let mut cmd = Command::new(&opts.exe);
    cmd.arg("__case").arg(inst.def.id);
    if let Some(v) = inst.variant {
        cmd.arg("--variant").arg(v);
    }
    cmd.args(inst.property.unwrap_or(opts.property).child_args());
    cmd.env("KHARNESS_PARENT_PID", std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let fail = |reason: String, stderr: &str| {
        let mut reason = reason;
        let tail = stderr.trim();
        if !tail.is_empty() {
            let t: String = tail
                .chars()
                .rev()
                .take(2000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            reason.push_str(&format!("; stderr: {t}"));
        }
        CaseReport::harness_failure(
            inst.name.clone(),
            inst.variant.map(str::to_string),
            reason,
            String::new(),
            start.elapsed().as_millis() as u64,
        )
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot start case process {}: {e}", opts.exe.display()), ""),
    };
    let pid = child.id() as i32;
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    // Readers finish at EOF, i.e. when the child and every process it forked
    // have closed the pipes; the waiter reports exit. The deadline applies to
    // the child's exit.
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::scope(|s| {
        let out_h = s.spawn(move || {
            let mut v = Vec::new();
            let _ = out.read_to_end(&mut v);
            v
        });
        let err_h = s.spawn(move || {
            let mut v = Vec::new();
            let _ = err.read_to_end(&mut v);
            v
        });
        // Wait for exit without reaping (WNOWAIT): while the child is a
        // zombie its pid, and so its process group id, cannot be reused, so
        // the killpg below can only reach our own processes.
        s.spawn(move || {
            use nix::sys::wait::{waitid, Id, WaitPidFlag};
            let _ = waitid(
                Id::Pid(nix::unistd::Pid::from_raw(pid)),
                WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
            );
            let _ = done_tx.send(());
        });
        let timed_out = done_rx.recv_timeout(timeout).is_err();
        // Kill the group either way: a case that exited may have left a
        // forked helper behind, which must not outlive it.
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        // Reaped here rather than by `child.wait()`, for its CPU time.
        let waited = crate::sys::wait4(pid);
        let cpu_ms = waited.as_ref().ok().map(|(_, ms)| *ms);
        let status = waited.map(|(st, _)| st);
        let stdout = out_h.join().expect("stdout reader");
        let stderr = String::from_utf8_lossy(&err_h.join().expect("stderr reader")).into_owned();
        if timed_out {
            return fail(format!("case process killed after its timeout of {timeout:?}"), &stderr);
        }
        let text = String::from_utf8_lossy(&stdout);
        let parsed = text
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<CaseReport>(l).ok());
        match (parsed, status) {
            (Some(mut r), _) => {
                r.duration_ms = start.elapsed().as_millis() as u64;
                r.cpu_ms = cpu_ms;
                r
            }
            (None, Ok(st)) => fail(format!("case process ended without a result ({st})"), &stderr),
            (None, Err(e)) => fail(format!("cannot wait for case process: {e}"), &stderr),
        }
    })
}

/// The child side: runs one case in this process and returns its report.
/// Called by the hidden `__case` subcommand.
pub fn run_in_process(def: &'static CaseDef, variant: Option<&'static str>, property: PropertySettings) -> CaseReport {
    // If the runner dies, so do we (and our namespaces with us). The check of
    // the parent pid closes the race where the runner died before prctl.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    if let Ok(want) = std::env::var("KHARNESS_PARENT_PID") {
        if want.parse::<i32>().ok() != Some(nix::unistd::getppid().as_raw()) {
            std::process::exit(70);
        }
    }
    let name = match variant {
        Some(v) => format!("{}[{}]", def.id, v),
        None => def.id.to_string(),
    };
    // Before private_tmp: the switch's directory may be under the temp dir.
    let injected_failure = test_flaky_first_attempt(&name);
    let scratch = private_tmp();
    let kernel = KernelInfo::probe();
    let mut ctx = Ctx::new(kernel, variant);
    ctx.property = property;
    if let Err(e) = scratch {
        ctx.note(format!(
            "scratch files go to the shared {}: {e}",
            std::env::temp_dir().display()
        ));
    }
    let start = Instant::now();
    let result = (def.run)(&mut ctx);
    if injected_failure {
        ctx.check_eq(
            "kharness.test_flaky.first_attempt",
            "passes",
            "failed on purpose",
            "the test-only fault switch KHARNESS_TEST_FLAKY",
        );
    }
    ctx.finish(name, result, start.elapsed())
}

/// TEST ONLY: the fault switch behind the `--retries` and `report diff`
/// tests. With `KHARNESS_TEST_FLAKY=DIR` in the environment, the first
/// attempt of every case instance run (or only of the instance named by
/// `KHARNESS_TEST_FLAKY_CASE`) fails on a check of its own (a file per
/// instance in DIR remembers that the first attempt happened), so the
/// attempt after it — a retry — passes: a flaky case, or without
/// `--retries` an injected failure, on demand. Never set it outside tests.
fn test_flaky_first_attempt(name: &str) -> bool {
    let Some(dir) = std::env::var_os("KHARNESS_TEST_FLAKY") else {
        return false;
    };
    if std::env::var("KHARNESS_TEST_FLAKY_CASE").is_ok_and(|only| only != name) {
        return false;
    }
    let file: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(std::path::Path::new(&dir).join(file))
        .is_ok()
}

/// Gives this process (and the threads and processes it starts from now on)
/// a mount namespace of its own with an empty tmpfs on the temp directory,
/// so whatever a case puts there (pathname sockets, scratch files) vanishes
/// with the case process, even when it is SIGKILLed before its cleanup.
/// Must run before the case starts threads: `unshare` applies to the
/// calling thread.
fn private_tmp() -> Result<(), String> {
    use nix::mount::{mount, MsFlags};
    use nix::sched::{unshare, CloneFlags};
    let tmp = std::env::temp_dir();
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
    // Private first: a mount under a shared / would propagate to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making / private: {e}"))?;
    mount(
        Some("tmpfs"),
        &tmp,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777,size=64m"),
    )
    .map_err(|e| format!("mount tmpfs on {}: {e}", tmp.display()))?;
    Ok(())
}

/// Default timeout for cases that do not need more.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::glob_family("tcp.*", "tcp.fill", "tcp.fill[veth]", true)]
    #[case::family("tcp", "tcp.fill", "tcp.fill", true)]
    #[case::family_with_dot("tcp.", "tcp.fill", "tcp.fill", true)]
    #[case::not_a_name_prefix("tc", "tcp.fill", "tcp.fill", false)]
    #[case::case_name_matches_its_variant("tcp.fill", "tcp.fill", "tcp.fill[loopback]", true)]
    #[case::variant("tcp.fill[loopback]", "tcp.fill", "tcp.fill[loopback]", true)]
    #[case::other_variant("tcp.fill[veth]", "tcp.fill", "tcp.fill[loopback]", false)]
    #[case::glob_name("*.fill", "tcp.fill", "tcp.fill", true)]
    #[case::other_family("unix.*", "tcp.fill", "tcp.fill", false)]
    #[case::one_char_glob("tcp.fil?", "tcp.fill", "tcp.fill", true)]
    fn filters(#[case] filter: &str, #[case] name: &str, #[case] instance: &str, #[case] matches: bool) {
        assert_eq!(
            matches_filter(filter, name, instance),
            matches,
            "{filter} on {instance}"
        );
    }
}
