//! Resource bounds of the runner itself (not its case processes, not QEMU):
//! peak RSS (VmHWM) of `kharness run` and of `kharness matrix` under 64 MiB,
//! and the runner's threads and fds bounded by its job count while many
//! cases run at once (`--jobs 16`). The figures are printed.
//!
//! The runner's own /proc entries are sampled every millisecond until it
//! exits; VmHWM only grows, so the last sample bounds the peak from below
//! by at most the last millisecond's growth.
//!
//! `KHARNESS_RESOURCE_REPEAT` (default 2) sets how many times the catalog
//! runs at --jobs 16.

mod common;

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::*;

static SERIAL: Mutex<()> = Mutex::new(());

const RSS_LIMIT_KIB: u64 = 64 * 1024;

/// Peaks of one process over its life.
#[derive(Debug, Default)]
struct Peaks {
    hwm_kib: u64,
    threads: u64,
    fds: u64,
    /// Its children alive at once (case processes, QEMU…).
    children: u64,
    samples: u64,
}

fn status_field(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Samples `pid` until it is gone.
fn sample(pid: u32) -> Peaks {
    let mut p = Peaks::default();
    let dir = format!("/proc/{pid}");
    // Until it is gone, or a zombie (which has no memory left to report).
    while let Some((status, hwm)) = std::fs::read_to_string(format!("{dir}/status"))
        .ok()
        .and_then(|s| status_field(&s, "VmHWM:").map(|h| (s, h)))
    {
        p.hwm_kib = p.hwm_kib.max(hwm);
        p.threads = p.threads.max(status_field(&status, "Threads:").unwrap_or(0));
        p.fds = p.fds.max(
            std::fs::read_dir(format!("{dir}/fd"))
                .map(|d| d.count() as u64)
                .unwrap_or(0),
        );
        // Each thread lists the children it started.
        let kids: u64 = std::fs::read_dir(format!("{dir}/task"))
            .map(|d| {
                d.flatten()
                    .map(|t| {
                        std::fs::read_to_string(t.path().join("children"))
                            .map(|c| c.split_whitespace().count() as u64)
                            .unwrap_or(0)
                    })
                    .sum()
            })
            .unwrap_or(0);
        p.children = p.children.max(kids);
        p.samples += 1;
        std::thread::park_timeout(Duration::from_millis(1));
    }
    p
}

/// Runs `cmd` and samples it; returns its exit code, stdout and peaks.
fn measure(mut cmd: Command) -> (i32, String, Peaks) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kharness");
    let pid = child.id();
    let sampler = std::thread::spawn(move || sample(pid));
    let out = child.wait_with_output().unwrap();
    let peaks = sampler.join().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        peaks,
    )
}

fn run_at_jobs_16_stays_bounded() -> TestResult {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let jobs = 16u64;
    let repeat = env_usize("KHARNESS_RESOURCE_REPEAT", 2);
    let mut cmd = Command::new(BIN);
    cmd.args([
        "run",
        "--format",
        "json",
        "--jobs",
        &jobs.to_string(),
        "--repeat",
        &repeat.to_string(),
    ]);
    let (code, out, p) = measure(cmd);
    let results = out.lines().filter(|l| l.contains("\"type\":\"result\"")).count();
    let failed: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("\"type\":\"result\"") && l.contains("\"outcome\":\"fail\""))
        .collect();
    eprintln!(
        "resources: kharness run --jobs {jobs} --repeat {repeat}: {results} results; runner peak RSS {:.1} MiB, at most {} threads, {} fds, {} case processes at once ({} samples)",
        p.hwm_kib as f64 / 1024.0,
        p.threads,
        p.fds,
        p.children,
        p.samples
    );
    assert!(
        failed.is_empty() && code == 0,
        "cases failed at --jobs {jobs}:\n{}",
        failed.join("\n")
    );
    assert!(p.samples > 10, "too few samples: {p:?}");
    assert!(p.hwm_kib < RSS_LIMIT_KIB, "runner peak RSS {} KiB ≥ 64 MiB", p.hwm_kib);
    // Per job: its worker thread, and per case process two pipe readers and
    // a waiter (a thread just joined may still be counted for a moment).
    // Fds: the read ends of two pipes per case process, and while a worker
    // spawns one, the other ends, /dev/null and std's exec-error pipe (7).
    // Plus a fixed few.
    assert!(p.threads <= 4 * jobs + 8, "{} threads at --jobs {jobs}", p.threads);
    assert!(p.fds <= 7 * jobs + 16, "{} fds at --jobs {jobs}", p.fds);
    assert!(
        p.children <= jobs,
        "{} case processes at once at --jobs {jobs}",
        p.children
    );
    Ok(())
}

fn matrix_runner_stays_under_64_mib() -> TestResult {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let scratch = scratch_dir("resources-matrix");
    let d = scratch.path();
    let cache = d.join("cache");
    // The host column only: no QEMU needed.
    let mut cmd = Command::new(BIN);
    cmd.args(["matrix", "host", "--format", "json", "--cache-dir"])
        .arg(&cache);
    let (code, _, host) = measure(cmd);
    assert_eq!(code, 0);
    eprintln!(
        "resources: kharness matrix host: runner peak RSS {:.1} MiB, at most {} threads, {} fds",
        host.hwm_kib as f64 / 1024.0,
        host.threads,
        host.fds
    );
    assert!(
        host.hwm_kib < RSS_LIMIT_KIB,
        "matrix (host) peak RSS {} KiB ≥ 64 MiB",
        host.hwm_kib
    );

    let k = match cached_kernel() {
        Ok(k) => k,
        Err(why) => {
            return not_run(format!(
                "resources: the host-only matrix stayed under 64 MiB; the part with a guest did not run: {why}"
            ));
        }
    };
    // A guest and the host: the initramfs (with the tens-of-MB static /init)
    // is built by streaming, never held in memory.
    let mut cmd = Command::new(BIN);
    cmd.args([
        "matrix",
        "host",
        "--format",
        "json",
        "--case",
        "tcp.refused",
        "--cache-dir",
    ])
    .arg(&cache)
    .arg("--kernel")
    .arg(&k.image)
    .arg("--modules")
    .arg(&k.modules)
    .arg("--init-binary")
    .arg(&k.init);
    let (code, _, guest) = measure(cmd);
    assert_eq!(code, 0);
    let init_mib = std::fs::metadata(&k.init).map(|m| m.len()).unwrap_or(0) as f64 / (1 << 20) as f64;
    eprintln!(
        "resources: kharness matrix (a guest + host): runner peak RSS {:.1} MiB (QEMU excluded; /init is {init_mib:.0} MiB), at most {} threads, {} fds",
        guest.hwm_kib as f64 / 1024.0,
        guest.threads,
        guest.fds
    );
    assert!(
        guest.hwm_kib < RSS_LIMIT_KIB,
        "matrix peak RSS {} KiB ≥ 64 MiB",
        guest.hwm_kib
    );

    // A fetch too: a kernel package (served by a stand-in apt) unpacked by
    // streaming it from disk.
    match FakeArchive::new(&d.join("archive"), k) {
        Ok(fake) => {
            let fresh = d.join("fresh-cache");
            let deb_mib = std::fs::metadata(&fake.deb).map(|m| m.len()).unwrap_or(0) as f64 / (1 << 20) as f64;
            let (code, _, fetch) = measure(fake.matrix(&fresh, &fake.deb));
            assert_eq!(code, 0);
            eprintln!(
                "resources: kharness matrix with a fetch ({deb_mib:.0} MiB package) and a boot: runner peak RSS {:.1} MiB",
                fetch.hwm_kib as f64 / 1024.0
            );
            assert!(
                fetch.hwm_kib < RSS_LIMIT_KIB,
                "matrix with a fetch: peak RSS {} KiB ≥ 64 MiB",
                fetch.hwm_kib
            );
        }
        Err(why) => {
            return not_run(format!(
                "resources: the host and guest matrices stayed under 64 MiB; the fetch part did not run: {why}"
            ));
        }
    }
    Ok(())
}

fn main() {
    common::run_tests(&[
        ("run_at_jobs_16_stays_bounded", run_at_jobs_16_stays_bounded),
        ("matrix_runner_stays_under_64_mib", matrix_runner_stays_under_64_mib),
    ]);
}
