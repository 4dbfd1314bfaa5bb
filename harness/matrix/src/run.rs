//! Running the matrix: fetch kernels (one thread, in list order, so apt runs
//! once at a time), and boot them (up to `parallel` at once, each in its own
//! worker), streaming typed [`MatrixEvent`]s that the CLI turns into
//! progress. A kernel that cannot be fetched, booted or finished is
//! reported as such; the others go on.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use kharness::case::Outcome;

use super::apt::system_sources;
use super::cleanup::Cleanup;
use super::config::{KernelSource, KernelSpec};
use super::fetch::{ms, Fetcher, ReadyKernel};
use super::initramfs::{self, GuestConfig};
use super::modules::{ModuleState, ModuleTree};
use super::protocol::{decode, Message};
use super::qemu::{self, Accel, VmSpec};
use super::results::{KernelRun, KernelStatus, Matrix, ModuleReport, Recorder, SCHEMA};

/// How a matrix runs.
#[derive(Debug, Clone)]
pub struct MatrixOptions {
    /// Kernels to run, with their position in the full list.
    pub kernels: Vec<(usize, KernelSpec)>,
    /// Modules the guests load.
    pub modules: Vec<String>,
    /// Debian suites of the whole list (one sources list for all).
    pub suites: Vec<String>,
    /// Case filters.
    pub filters: Vec<String>,
    /// Cache root.
    pub cache_dir: PathBuf,
    /// Look for newer packages (apt-get update; ignore cached entries).
    pub refresh: bool,
    /// Archive URI overriding the system's sources.
    pub archive: Option<String>,
    /// The static kharness for `/init` (needed when a VM kernel is run).
    pub init_binary: Option<PathBuf>,
    /// The kharness to run the host kernel's catalog with.
    pub host_exe: PathBuf,
    /// Kernels run at once.
    pub parallel: usize,
    /// Wall-clock limit per kernel.
    pub vm_timeout: Duration,
    /// Case timeout scale in guests (default: 10 under TCG, 3 under KVM).
    pub timeout_scale: Option<f64>,
    /// Guest memory.
    pub mem_mb: usize,
    /// Force an accelerator instead of probing.
    pub accel: Option<Accel>,
    /// Case processes for the host kernel.
    pub host_jobs: usize,
    /// Case processes in each guest (default: two per virtual CPU).
    pub guest_jobs: Option<usize>,
    /// `--explore`: after the catalog, explore these property cases for
    /// this long on every kernel (the wall-clock limit grows by as much).
    pub explore: Option<(Duration, Vec<String>)>,
    /// Extra attempts of a failed case, on every kernel (`--retries`).
    pub retries: usize,
    /// Known kernel issues (the built-in list and `--known-issues`), and the
    /// team files to hand to the host kernel's `kharness run`.
    pub known_issues: Vec<kharness::known_issues::KnownIssue>,
    /// The `--known-issues` files, for the host kernel's run.
    pub known_issue_files: Vec<PathBuf>,
}

/// What a kernel is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for a slot.
    Queued,
    /// Resolving or downloading.
    Fetch,
    /// Writing the initramfs.
    Initramfs,
    /// QEMU started, no hello yet.
    Boot,
    /// Loading modules.
    Modules,
    /// Running cases.
    Cases,
}

impl Stage {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Queued => "queued",
            Stage::Fetch => "fetch",
            Stage::Initramfs => "initramfs",
            Stage::Boot => "boot",
            Stage::Modules => "modules",
            Stage::Cases => "cases",
        }
    }
}

/// Progress of a matrix run.
#[derive(Debug, Clone)]
pub enum MatrixEvent {
    /// A run-wide note (accelerator choice, log directory).
    Note(String),
    /// A kernel entered a stage.
    Stage {
        /// Kernel name.
        kernel: String,
        /// The stage.
        stage: Stage,
        /// Details (package, sizes, times).
        detail: String,
    },
    /// The number of cases a kernel will run.
    Total {
        /// Kernel name.
        kernel: String,
        /// Case instances.
        cases: usize,
    },
    /// One case finished on a kernel.
    Case {
        /// Kernel name.
        kernel: String,
        /// Result name.
        case: String,
        /// Outcome.
        outcome: Outcome,
    },
    /// A kernel is finished (any status).
    Finished(Box<KernelRun>),
}

type Sink<'a> = &'a (dyn Fn(MatrixEvent) + Sync);

enum Work {
    Host(usize, KernelSpec),
    Vm(usize, KernelSpec, Result<ReadyKernel, String>, u64),
}

struct Shared {
    qemu: Option<PathBuf>,
    accel: Mutex<Option<Accel>>,
    init: Option<PathBuf>,
    init_error: Option<String>,
    run_dir: PathBuf,
}

/// Runs every kernel of `opts` and returns the matrix. Scratch paths are
/// removed if the process is killed; the run's logs stay once it returns.
pub fn run(opts: &MatrixOptions, sink: Sink) -> Matrix {
    let cleanup = Arc::new(Cleanup::new(opts.host_exe.clone()));
    let m = run_with(opts, &cleanup, sink);
    if let Ok(c) = Arc::try_unwrap(cleanup) {
        c.finish();
    }
    m
}

/// [`run`], with the scratch paths (the run's log directory among them)
/// registered with `cleanup`: the caller calls [`Cleanup::finish`] once the
/// report is out, so a run killed before that leaves nothing.
pub fn run_with(opts: &MatrixOptions, cleanup: &Arc<Cleanup>, sink: Sink) -> Matrix {
    let started = Instant::now();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let run_dir = opts
        .cache_dir
        .join("runs")
        .join(format!("{stamp}-{}", std::process::id()));
    prune_runs(&opts.cache_dir.join("runs"), 8);
    let vm_kernels = opts
        .kernels
        .iter()
        .filter(|(_, k)| !matches!(k.source, KernelSource::Host))
        .count();
    let (init, init_error) = match (&opts.init_binary, vm_kernels) {
        (_, 0) => (None, None),
        (None, _) => (
            None,
            Some("no static kharness binary for the guest's /init (see --init-binary)".to_string()),
        ),
        (Some(p), _) => match std::fs::File::open(p) {
            Ok(_) => (Some(p.clone()), None),
            Err(e) => (None, Some(format!("cannot read the init binary {}: {e}", p.display()))),
        },
    };
    let qemu = qemu::find_qemu();
    // Everything written until the run ends is scratch: a killed run leaves
    // none of it behind (see `cleanup`).
    if vm_kernels > 0 {
        if let Err(e) = cleanup.remove_on_death(&run_dir) {
            sink(MatrixEvent::Note(format!(
                "{e}: a killed run would leave {} behind",
                run_dir.display()
            )));
        }
        let _ = std::fs::create_dir_all(&run_dir);
        sink(MatrixEvent::Note(format!("logs in {}", run_dir.display())));
    }
    let shared = Shared {
        qemu,
        accel: Mutex::new(opts.accel),
        init,
        init_error,
        run_dir,
    };
    let fetcher = Fetcher::new(
        opts.cache_dir.clone(),
        opts.suites.clone(),
        system_sources(Path::new("/")),
        opts.archive.clone(),
        opts.refresh,
    )
    .with_cleanup(Arc::clone(cleanup));
    fetcher.clean_stale();

    let (tx, rx) = mpsc::channel::<Work>();
    let rx = Mutex::new(rx);
    let results = Mutex::new(Vec::new());
    let slots = opts.parallel.max(1);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let vm_slots = slots.min(vm_kernels.max(1));
    let smp = (cores / vm_slots).clamp(1, 2);
    for (_, k) in &opts.kernels {
        sink(MatrixEvent::Stage {
            kernel: k.name.clone(),
            stage: Stage::Queued,
            detail: String::new(),
        });
    }
    std::thread::scope(|s| {
        let fetch_tx = tx.clone();
        let fetcher = &fetcher;
        let shared_ref = &shared;
        s.spawn(move || {
            // The host first: it needs no fetch.
            for (i, k) in &opts.kernels {
                if matches!(k.source, KernelSource::Host) {
                    let _ = fetch_tx.send(Work::Host(*i, k.clone()));
                }
            }
            for (i, k) in &opts.kernels {
                if matches!(k.source, KernelSource::Host) {
                    continue;
                }
                // Nothing to boot with: do not fetch either.
                let blocked = if shared_ref.qemu.is_none() {
                    Some("QEMU is not installed (qemu-system-x86_64 not on PATH); install it: apt-get install qemu-system-x86".to_string())
                } else {
                    shared_ref.init_error.clone()
                };
                if let Some(b) = blocked {
                    let _ = fetch_tx.send(Work::Vm(*i, k.clone(), Err(b), 0));
                    continue;
                }
                sink(MatrixEvent::Stage { kernel: k.name.clone(), stage: Stage::Fetch, detail: String::new() });
                let t = Instant::now();
                let r = fetcher.resolve(k);
                let _ = fetch_tx.send(Work::Vm(*i, k.clone(), r, ms(t)));
            }
        });
        drop(tx);
        for _ in 0..slots {
            s.spawn(|| loop {
                let work = { rx.lock().unwrap_or_else(|p| p.into_inner()).recv() };
                let Ok(work) = work else { break };
                let run = match work {
                    Work::Host(i, k) => run_host(i, &k, opts, sink),
                    Work::Vm(i, k, ready, fetch_ms) => run_vm_kernel(i, &k, ready, fetch_ms, smp, opts, &shared, sink),
                };
                sink(MatrixEvent::Finished(Box::new(run.clone())));
                results.lock().unwrap_or_else(|p| p.into_inner()).push(run);
            });
        }
    });
    // A run that booted nothing has no logs: no empty directory either.
    let _ = std::fs::remove_dir(&shared.run_dir);
    let mut kernels = results.into_inner().unwrap_or_else(|p| p.into_inner());
    kernels.sort_by_key(|k| k.index);
    Matrix {
        schema: SCHEMA,
        harness: env!("CARGO_PKG_VERSION").to_string(),
        kernels,
        wall_ms: ms(started),
        shard: None,
        differences: None,
    }
}

fn prune_runs(dir: &Path, keep: usize) {
    let Ok(d) = std::fs::read_dir(dir) else { return };
    let mut runs: Vec<PathBuf> = d.flatten().map(|e| e.path()).collect();
    runs.sort();
    if runs.len() > keep {
        for r in &runs[..runs.len() - keep] {
            let _ = std::fs::remove_dir_all(r);
        }
    }
}

/// `--accel auto`: TCG. KVM is opt-in (`--accel kvm`) because passing a
/// probe does not mean a kernel boots: on nested-virtualization hosts a
/// boot sector runs under KVM while a Linux kernel hangs before its first
/// console byte (seen with Debian 5.10 and `-cpu host` or `max`: an empty
/// console until the wall-clock limit), which would fail every guest.
fn choose_accel(shared: &Shared, sink: Sink) -> Accel {
    let mut a = shared.accel.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(a) = *a {
        return a;
    }
    sink(MatrixEvent::Note(
        "guests run under TCG; --accel kvm uses KVM where it boots kernels".into(),
    ));
    *a = Some(Accel::Tcg);
    Accel::Tcg
}

#[allow(clippy::too_many_arguments)]
fn run_vm_kernel(
    index: usize,
    spec: &KernelSpec,
    ready: Result<ReadyKernel, String>,
    fetch_ms: u64,
    smp: usize,
    opts: &MatrixOptions,
    shared: &Shared,
    sink: Sink,
) -> KernelRun {
    let t0 = Instant::now();
    let name = spec.name.clone();
    let mut run = KernelRun::new(&name, index, &spec.description);
    run.timings.fetch_ms = fetch_ms;
    let stage = |stage: Stage, detail: String| {
        sink(MatrixEvent::Stage {
            kernel: name.clone(),
            stage,
            detail,
        })
    };
    let ready = match ready {
        Ok(r) => r,
        Err(e) => {
            run.timings.total_ms = fetch_ms;
            return run.fail(KernelStatus::Unavailable, format!("kernel `{name}`: {e}"));
        }
    };
    run.source = ready.source.clone();
    run.notes.extend(ready.notes.iter().cloned());
    let (Some(qemu), Some(init)) = (shared.qemu.clone(), shared.init.clone()) else {
        return run.fail(KernelStatus::Unavailable, "QEMU or the init binary is missing");
    };

    // Modules: the closure of what the catalog needs, decompressed.
    stage(Stage::Initramfs, String::new());
    let t_init = Instant::now();
    let closure = match &ready.modules {
        Some(root) => match ModuleTree::open(root) {
            Ok(tree) => tree.closure(&opts.modules),
            Err(e) => {
                run.notes
                    .push(format!("cannot read modules tree {}: {e}", root.display()));
                Default::default()
            }
        },
        None => Default::default(),
    };
    for m in &opts.modules {
        let key = m.replace('-', "_");
        if !closure.states.contains_key(&key) {
            run.modules.push(ModuleReport {
                name: key,
                state: "missing".into(),
                detail: Some("no modules tree (give --modules)".into()),
            });
        }
    }
    for (n, st) in &closure.states {
        let (state, detail) = match st {
            ModuleState::Load => ("loaded", None),
            ModuleState::Builtin => ("builtin", None),
            ModuleState::Missing(d) => ("missing", Some(d.clone())),
            ModuleState::Unknown => (
                "unknown",
                Some("no module file, and no modules.builtin to tell whether it is built in".into()),
            ),
        };
        run.modules.push(ModuleReport {
            name: n.clone(),
            state: state.into(),
            detail,
        });
    }
    let dir = shared.run_dir.join(&name);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return run.fail(
            KernelStatus::Unavailable,
            format!("cannot create {}: {e}", dir.display()),
        );
    }
    let accel = choose_accel(shared, sink);
    run.accel = accel.name().into();
    let timeout_scale = opts
        .timeout_scale
        .unwrap_or(if accel == Accel::Kvm { 3.0 } else { 10.0 });
    let config = GuestConfig {
        schema: 1,
        filters: opts.filters.clone(),
        jobs: opts.guest_jobs.unwrap_or(2 * smp),
        timeout_scale,
        retries: opts.retries,
        known_issues: opts.known_issues.clone(),
        modules: closure.load.iter().map(|(n, _)| n.clone()).collect(),
        explore: opts
            .explore
            .as_ref()
            .map(|(budget, cases)| super::initramfs::GuestExplore {
                budget_ms: budget.as_millis() as u64,
                cases: cases.clone(),
            }),
    };
    let initrd = dir.join("initramfs.cpio");
    let size = match initramfs::build(&initrd, &init, &closure.load, &config) {
        Ok(s) => s,
        Err(e) => {
            return run.fail(
                KernelStatus::Unavailable,
                format!("cannot write the initramfs {}: {e}", initrd.display()),
            )
        }
    };
    run.timings.initramfs_ms = ms(t_init);
    stage(
        Stage::Boot,
        format!(
            "{} {} MiB initramfs, {} modules",
            accel.name(),
            size >> 20,
            closure.load.len()
        ),
    );

    // Boot and read.
    let vm = VmSpec {
        qemu,
        accel,
        kernel: ready.image.clone(),
        initrd: initrd.clone(),
        smp,
        mem_mb: opts.mem_mb,
        console: dir.join("console.log"),
        results: dir.join("results.jsonl"),
        timeout: opts.vm_timeout + opts.explore.as_ref().map_or(Duration::ZERO, |(b, _)| *b),
    };
    let mut rec = Recorder::default();
    let mut hello_at: Option<Duration> = None;
    let mut done_at: Option<Duration> = None;
    let end = qemu::run_vm(&vm, &mut |msg, at| {
        match &msg {
            Message::Hello { release, .. } => {
                hello_at = Some(at);
                stage(Stage::Modules, format!("{release} up in {:.1} s", at.as_secs_f64()));
            }
            Message::Header(h) => {
                sink(MatrixEvent::Total {
                    kernel: name.clone(),
                    cases: h.cases,
                });
                stage(Stage::Cases, format!("{} cases", h.cases));
            }
            Message::Result(r) => sink(MatrixEvent::Case {
                kernel: name.clone(),
                case: r.case.clone(),
                outcome: r.outcome,
            }),
            Message::Done { .. } => done_at = Some(at),
            _ => {}
        }
        rec.apply(&mut run, msg);
    });
    let _ = std::fs::remove_file(&initrd);
    run.timings.boot_ms = hello_at.map(|d| d.as_millis() as u64).unwrap_or(0);
    if let (Some(h), Some(d)) = (hello_at, done_at) {
        run.timings.catalog_ms = (d - h).as_millis() as u64;
    }
    let console = std::fs::read_to_string(&vm.console).unwrap_or_default();
    let splats = qemu::scan_console(&console);
    run.warnings = splats.iter().map(|s| s.describe()).collect();
    run.notes.push(format!("console log {}", vm.console.display()));
    match end {
        Err(e) => {
            rec.finish(&mut run, KernelStatus::NoBoot, &e);
        }
        Ok(end) => {
            for e in end.protocol_errors.iter().take(3) {
                run.notes.push(format!("results protocol: {e}"));
            }
            let why = if end.timed_out {
                format!(
                    "killed at the wall-clock limit of {} s (--vm-timeout, plus --explore)",
                    vm.timeout.as_secs()
                )
            } else if !rec.hello {
                let qerr = end.stderr.trim();
                if qerr.is_empty() {
                    format!(
                        "kernel `{name}` did not boot to /init (QEMU {}); see the console tail",
                        end.status.map(|s| s.to_string()).unwrap_or_default()
                    )
                } else {
                    format!(
                        "kernel `{name}` did not boot: QEMU said: {}; check that {} is an x86-64 kernel image (bzImage)",
                        qerr.lines().last().unwrap_or(qerr),
                        vm.kernel.display()
                    )
                }
            } else {
                format!(
                    "the guest stopped without `done` (QEMU {}); see the console tail",
                    end.status.map(|s| s.to_string()).unwrap_or_default()
                )
            };
            rec.finish(
                &mut run,
                if end.timed_out {
                    KernelStatus::TimedOut
                } else {
                    KernelStatus::Crashed
                },
                &why,
            );
        }
    }
    if run.status != KernelStatus::Completed {
        run.console_tail = qemu::tail(&console, 30);
    }
    // After `finish`, so a case the guest died in is charged with the oops.
    kharness::health::charge_console(&splats, run.results.iter_mut().map(|r| &mut r.report));
    if let (Some(want), Some(got)) = (&ready.release, &run.release) {
        if want != got {
            run.notes.push(format!("expected release {want}, the guest says {got}"));
        }
    }
    run.timings.total_ms = fetch_ms + ms(t0);
    run
}

fn run_host(index: usize, spec: &KernelSpec, opts: &MatrixOptions, sink: Sink) -> KernelRun {
    let t0 = Instant::now();
    let name = spec.name.clone();
    let mut run = KernelRun::new(&name, index, &spec.description);
    run.source = "host (native)".into();
    run.accel = "native".into();
    sink(MatrixEvent::Stage {
        kernel: name.clone(),
        stage: Stage::Cases,
        detail: "native".into(),
    });
    let mut cmd = Command::new(&opts.host_exe);
    cmd.args(["run", "--format", "json", "--jobs", &opts.host_jobs.to_string()])
        .args(["--retries", &opts.retries.to_string()])
        .args(
            opts.known_issue_files
                .iter()
                .flat_map(|f| [std::ffi::OsStr::new("--known-issues"), f.as_os_str()]),
        )
        .args(&opts.filters);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    kharness::sys::die_with_parent(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return run.fail(
                KernelStatus::Unavailable,
                format!("cannot start {}: {e}", opts.host_exe.display()),
            )
        }
    };
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let err_h = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    // The wall-clock limit applies to the host run too.
    let pid = child.id();
    let limit = opts.vm_timeout;
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let killer = std::thread::spawn(move || {
        if stop_rx.recv_timeout(limit).is_err() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            return true;
        }
        false
    });
    let mut rec = Recorder::default();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let Ok(Some(msg)) = decode(&line) else { continue };
        match &msg {
            Message::Header(h) => sink(MatrixEvent::Total {
                kernel: name.clone(),
                cases: h.cases,
            }),
            Message::Result(r) => sink(MatrixEvent::Case {
                kernel: name.clone(),
                case: r.case.clone(),
                outcome: r.outcome,
            }),
            Message::Summary(_) => rec.done = true,
            _ => {}
        }
        rec.apply(&mut run, msg);
    }
    let status = child.wait();
    let _ = stop_tx.send(());
    let killed = killer.join().unwrap_or(false);
    let stderr = err_h.join().unwrap_or_default();
    run.timings.catalog_ms = ms(t0);
    run.timings.total_ms = ms(t0);
    let code = status.as_ref().ok().and_then(|s| s.code());
    if !rec.hello && (code == Some(2) || code == Some(69)) {
        let msg = stderr.lines().last().unwrap_or("").trim().to_string();
        return run.fail(
            KernelStatus::Unavailable,
            format!("host: `kharness run` could not run: {msg}"),
        );
    }
    let why = if killed {
        format!("killed at the wall-clock limit of {} s", limit.as_secs())
    } else {
        format!(
            "`kharness run` ended without a summary ({}): {}",
            status.map(|s| s.to_string()).unwrap_or_default(),
            stderr.trim()
        )
    };
    rec.finish(
        &mut run,
        if killed {
            KernelStatus::TimedOut
        } else {
            KernelStatus::Crashed
        },
        &why,
    );
    if let (Some((budget, cases)), KernelStatus::Completed) = (&opts.explore, run.status) {
        explore_host(&mut run, opts, *budget, cases);
    }
    run
}

/// `--explore` on the host kernel: `kharness explore --format json` after the
/// catalog; its summary goes into the column.
fn explore_host(run: &mut KernelRun, opts: &MatrixOptions, budget: Duration, cases: &[String]) {
    let mut cmd = Command::new(&opts.host_exe);
    cmd.args(["explore", "--format", "json", "--jobs", &opts.host_jobs.to_string()])
        .arg("--time")
        .arg(format!("{}ms", budget.as_millis().max(1)))
        .args(cases);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    kharness::sys::die_with_parent(&mut cmd);
    match cmd.output() {
        Err(e) => run
            .notes
            .push(format!("explore: cannot start {}: {e}", opts.host_exe.display())),
        Ok(out) => {
            let summary = String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
                match serde_json::from_str::<kharness::explore::ExploreEvent>(l) {
                    Ok(kharness::explore::ExploreEvent::Summary(s)) => Some(s),
                    _ => None,
                }
            });
            match summary {
                Some(s) => run.explore = Some(s),
                None => run.notes.push(format!(
                    "explore: no summary ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
            }
        }
    }
}
