//! Inside the VM: the static `kharness` is `/init`.
//!
//! PID 1 mounts `/proc`, `/sys`, `/dev` (devtmpfs), `/tmp` and `/run`, says
//! `hello` on the results port, loads the modules with `finit_module(2)`,
//! then starts `/init __init --runner` and reaps every process until that
//! runner exits (PID 1 inherits orphans, and must reap them without
//! stealing the runner's own children — hence two processes). The runner
//! probes the kernel and runs the catalog through the normal
//! [`kharness::runner`], which re-executes `/init __case …` for each
//! case. PID 1 then powers off with `reboot(RB_POWER_OFF)`; it never exits
//! (that would panic the kernel).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;

use kharness::case::CaseDef;
use kharness::event::Event;
use kharness::kernel::KernelInfo;
use kharness::runner::{self, RunOptions};

use super::initramfs::{GuestConfig, CONFIG_PATH, MODULE_DIR, RESULTS_PORT};
use super::protocol::{encode, Message};

fn say(msg: &str) {
    eprintln!("kharness-init: {msg}");
}

fn open_port() -> Option<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(RESULTS_PORT)
        .map_err(|e| say(&format!("cannot open {RESULTS_PORT}: {e}")))
        .ok()
}

fn send(port: &mut Option<File>, msg: &Message) {
    if let Some(p) = port {
        let line = encode(msg) + "\n";
        if let Err(e) = p.write_all(line.as_bytes()) {
            say(&format!("cannot write to {RESULTS_PORT}: {e}"));
        }
    }
}

fn read_config() -> Result<GuestConfig, String> {
    let text = std::fs::read(CONFIG_PATH).map_err(|e| format!("cannot read {CONFIG_PATH}: {e}"))?;
    serde_json::from_slice(&text).map_err(|e| format!("{CONFIG_PATH}: {e}"))
}

fn mount_all() -> Vec<String> {
    use nix::mount::{mount, MsFlags};
    let mut errors = Vec::new();
    for (src, target, fstype) in [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
        ("tmpfs", "/tmp", "tmpfs"),
        ("tmpfs", "/run", "tmpfs"),
    ] {
        let _ = std::fs::create_dir_all(target);
        if let Err(e) = mount(Some(src), target, Some(fstype), MsFlags::MS_NOSUID, None::<&str>) {
            errors.push(format!("mount {fstype} on {target}: {e}"));
        }
    }
    errors
}

fn uptime_ms() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|s| s.parse::<f64>().ok()))
        .map(|s| (s * 1000.0) as u64)
        .unwrap_or(0)
}

fn load_module(name: &str) -> Result<(), String> {
    let path = format!("{MODULE_DIR}/{name}.ko");
    let f = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    match nix::kmod::finit_module(&f, c"", nix::kmod::ModuleInitFlags::empty()) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
        Err(e) => Err(format!("finit_module: {e}")),
    }
}

fn power_off() -> ! {
    nix::unistd::sync();
    let e = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    say(&format!("power off failed: {e:?}"));
    // PID 1 must never return (the kernel would panic): wait for signals
    // that will not come.
    loop {
        nix::unistd::pause();
    }
}

/// PID 1: set up, load modules, run the catalog in a child, power off.
pub fn pid1() -> ! {
    let mount_errors = mount_all();
    let mut port = open_port();
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    send(
        &mut port,
        &Message::Hello {
            release,
            uptime_ms: uptime_ms(),
            harness: env!("CARGO_PKG_VERSION").to_string(),
        },
    );
    for e in &mount_errors {
        say(e);
    }
    let config = match read_config() {
        Ok(c) => c,
        Err(e) => {
            send(&mut port, &Message::Error { message: e });
            power_off();
        }
    };
    for m in &config.modules {
        let r = load_module(m);
        send(
            &mut port,
            &Message::Module {
                name: m.clone(),
                ok: r.is_ok(),
                error: r.err(),
            },
        );
    }
    drop(port);
    let child = Command::new("/init").args(["__init", "--runner"]).spawn();
    let outcome = match child {
        Err(e) => Some(format!("cannot start the catalog runner: {e}")),
        Ok(child) => {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            reap_until(pid)
        }
    };
    if let Some(message) = outcome {
        let mut port = open_port();
        send(&mut port, &Message::Error { message });
    }
    power_off();
}

/// Reaps every child until `runner` exits; `Some(reason)` if it failed.
fn reap_until(runner: nix::unistd::Pid) -> Option<String> {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(p, code)) if p == runner => {
                return (code != 0).then(|| format!("the catalog runner exited with status {code}"));
            }
            Ok(WaitStatus::Signaled(p, sig, _)) if p == runner => {
                return Some(format!("the catalog runner was killed by {sig}"));
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Some(format!("waitpid: {e}")),
        }
    }
}

/// The runner process (`/init __init --runner`): the catalog, streamed to
/// the results port. Returns the process exit status.
pub fn run_catalog(catalog: &[&'static CaseDef]) -> i32 {
    let mut port = open_port();
    if port.is_none() {
        return 3;
    }
    let config = match read_config() {
        Ok(c) => c,
        Err(e) => {
            send(&mut port, &Message::Error { message: e });
            return 2;
        }
    };
    let exe = std::env::current_exe().unwrap_or_else(|_| "/init".into());
    let instances = runner::select(catalog, &config.filters);
    let kernel = KernelInfo::probe();
    let opts = RunOptions {
        jobs: config.jobs.max(1),
        exe,
        timeout_scale: config.timeout_scale,
        repeat: 1,
        property: Default::default(),
        retries: config.retries,
        known_issues: config.known_issues.clone(),
    };
    // Case start/end markers on the console, for the host to attribute
    // console splats to cases (kharness::health).
    kharness::health::set_console_markers(true);
    runner::run(kernel, instances, &opts, &mut |ev: &Event| {
        let msg = match ev {
            Event::RunStarted(h) => Message::Header(h.clone()),
            Event::CaseStarted { case } => Message::CaseStart { case: case.clone() },
            Event::CaseFinished(r) => Message::Result(r.clone()),
            Event::RunFinished(s) => Message::Summary(*s),
            // A guest runs the catalog once: no per-case summaries.
            Event::CaseSummary(_) => return,
        };
        send(&mut port, &msg);
    });
    if let Some(ex) = &config.explore {
        let instances: Vec<_> = runner::select(catalog, &config.filters)
            .into_iter()
            .filter(|i| ex.cases.iter().any(|c| c == i.def.id))
            .collect();
        let opts = kharness::explore::ExploreOptions {
            budget: std::time::Duration::from_millis(ex.budget_ms),
            seed: None,
            cases: None,
            run: opts.clone(),
        };
        let kernel = KernelInfo::probe();
        let summary = kharness::explore::explore(kernel, instances, &opts, &mut |_| {});
        send(&mut port, &Message::Explore(summary));
    }
    send(&mut port, &Message::Done { exit: 0 });
    0
}
