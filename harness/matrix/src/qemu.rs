//! Booting a kernel under QEMU and reading what the guest reports.
//!
//! ```text
//! qemu-system-x86_64 -nodefaults -no-reboot -no-user-config -display none \
//!   -accel tcg -cpu max -smp 1 -m 640 -kernel vmlinuz -initrd initramfs.cpio \
//!   -append "console=ttyS0 loglevel=5 panic=-1 … rdinit=/init -- __init" \
//!   -serial file:console.log -serial file:results.jsonl
//! ```
//!
//! ttyS0 is the console (kept as a log, scanned for warnings, BUGs and
//! oopses); ttyS1 carries the results protocol, read while the VM runs.
//! Guests run under TCG unless `--accel kvm` is given: on nested hosts a
//! `/dev/kvm` can run a boot sector yet hang a Linux kernel before its first
//! console byte, so no cheap probe tells that KVM will work.

use std::io::{Read, Seek};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::protocol::{decode, LineBuffer, Message};

/// How the guest CPU is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// Emulation.
    Tcg,
}

impl Accel {
    /// `kvm` or `tcg`.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// `qemu-system-x86_64` on `PATH`, if any.
pub fn find_qemu() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("qemu-system-x86_64"))
        .find(|p| p.is_file())
}

/// Kills and reaps a child (and its process group) on drop.
struct VmGuard<'a>(Option<&'a mut Child>);

impl Drop for VmGuard<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One VM to run.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// `qemu-system-x86_64`.
    pub qemu: PathBuf,
    /// Accelerator.
    pub accel: Accel,
    /// Kernel image.
    pub kernel: PathBuf,
    /// Initramfs.
    pub initrd: PathBuf,
    /// Guest CPUs.
    pub smp: usize,
    /// Guest memory.
    pub mem_mb: usize,
    /// Console log file.
    pub console: PathBuf,
    /// Results log file.
    pub results: PathBuf,
    /// Wall-clock limit.
    pub timeout: Duration,
}

/// The kernel command line. `mitigations=off`: the CPU side-channel
/// mitigations (return thunks, IBPB, barriers on every entry) are pure cost
/// under TCG, which emulates no speculation; no networking interface the
/// catalog drives depends on them. It brings the first case about 2 s
/// closer to the boot (6.12: `hello` at 5.2 s instead of 7.4 s).
///
/// `norandmaps`: no address-space randomisation in the guest, so every
/// process maps the (static-pie) kharness binary at the same address. TCG
/// finds translated code by guest virtual address: with the binary at a new
/// random address in each case process, everything a process ran was
/// translated again, and a trivial case process spent 220–370 ms of guest
/// CPU before reaching its case (6.12; 15–60 ms with the same address
/// every time). The catalog observes the kernel's networking, never where
/// user space is mapped.
pub const CMDLINE: &str =
    "console=ttyS0 loglevel=5 panic=-1 random.trust_cpu=on mitigations=off norandmaps rdinit=/init -- __init";

/// How a VM ended.
#[derive(Debug)]
pub struct VmEnd {
    /// Killed at the wall-clock limit.
    pub timed_out: bool,
    /// QEMU's exit (None when it could not start).
    pub status: Option<std::process::ExitStatus>,
    /// QEMU's stderr.
    pub stderr: String,
    /// Malformed protocol lines.
    pub protocol_errors: Vec<String>,
}

/// Runs the VM; every protocol message goes to `on_msg` with the time
/// since start, as it arrives.
pub fn run_vm(spec: &VmSpec, on_msg: &mut dyn FnMut(Message, Duration)) -> Result<VmEnd, String> {
    for f in [&spec.console, &spec.results] {
        std::fs::write(f, b"").map_err(|e| format!("{}: {e}", f.display()))?;
    }
    let mut cmd = Command::new(&spec.qemu);
    cmd.args(["-nodefaults", "-no-reboot", "-no-user-config", "-display", "none"]);
    cmd.args(["-accel", spec.accel.name(), "-cpu", "max"]);
    cmd.args(["-smp", &spec.smp.to_string(), "-m", &spec.mem_mb.to_string()]);
    cmd.arg("-kernel").arg(&spec.kernel).arg("-initrd").arg(&spec.initrd);
    cmd.args(["-append", CMDLINE]);
    cmd.arg("-serial").arg(format!("file:{}", spec.console.display()));
    cmd.arg("-serial").arg(format!("file:{}", spec.results.display()));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    // A killed `kharness matrix` must not leave a guest running.
    kharness::sys::die_with_parent(&mut cmd);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", spec.qemu.display()))?;
    let stderr = child.stderr.take();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let mut guard = VmGuard(Some(&mut child));
    let mut results = std::fs::File::open(&spec.results).map_err(|e| e.to_string())?;
    let mut buf = LineBuffer::default();
    let mut protocol_errors = Vec::new();
    let mut pos = 0u64;
    let mut drain = |results: &mut std::fs::File, pos: &mut u64, buf: &mut LineBuffer, errs: &mut Vec<String>| {
        let mut chunk = Vec::new();
        let _ = results.seek(std::io::SeekFrom::Start(*pos));
        if let Ok(n) = results.read_to_end(&mut chunk) {
            *pos += n as u64;
        }
        for line in buf.push(&chunk) {
            match decode(&line) {
                Ok(Some(m)) => on_msg(m, start.elapsed()),
                Ok(None) => {}
                Err(e) => errs.push(e),
            }
        }
    };
    // Poll the results file and the guest's exit together, to the
    // wall-clock limit counted from the guest's start.
    let exited = kharness::wait::wait_for(
        "the guest to power off",
        spec.timeout.saturating_sub(start.elapsed()),
        || {
            drain(&mut results, &mut pos, &mut buf, &mut protocol_errors);
            guard.0.as_mut().expect("child").try_wait().transpose()
        },
    );
    let (status, timed_out) = match exited {
        Ok(Ok(st)) => {
            guard.0 = None;
            (Some(st), false)
        }
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => {
            drop(guard);
            (None, true)
        }
    };
    drain(&mut results, &mut pos, &mut buf, &mut protocol_errors);
    if let Some(rest) = buf.rest() {
        if let Ok(Some(m)) = decode(&rest) {
            on_msg(m, start.elapsed());
        }
    }
    let stderr = err_reader.join().unwrap_or_default();
    Ok(VmEnd {
        timed_out,
        status,
        stderr,
        protocol_errors,
    })
}

/// Kernel warnings, BUGs, oopses and panics in a console log (one line each,
/// timestamps removed; the patterns of [`kharness::health::PATTERNS`]), each
/// with the cases the guest was running when it appeared: between the
/// `kharness: case start NAME` / `kharness: case end NAME` markers the
/// guest's runner writes to /dev/kmsg, which reach the console in the
/// kernel log's own order.
pub fn scan_console(text: &str) -> Vec<kharness::health::ConsoleSplat> {
    kharness::health::attribute_console(text.lines().map(strip_timestamp))
}

fn strip_timestamp(line: &str) -> &str {
    let l = line.trim_end_matches('\r');
    if let Some(rest) = l.strip_prefix('[') {
        if let Some((ts, after)) = rest.split_once(']') {
            if ts.trim().chars().all(|c| c.is_ascii_digit() || c == '.') {
                return after.trim_start();
            }
        }
    }
    l
}

/// The last `n` lines of a console log.
pub fn tail(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.chars().take(300).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_scan() {
        let log = "\
[    0.000000] Linux version 6.1.0-47-cloud-amd64
[    1.234567] ------------[ cut here ]------------
[    1.234568] WARNING: CPU: 0 PID: 1 at net/core/dev.c:123 foo+0x1/0x2
[    2.000000] BUG: kernel NULL pointer dereference, address: 0000000000000000
[    2.000001] Oops: 0000 [#1] PREEMPT SMP NOPTI
kharness-init: cannot open /dev/ttyS1
[    3.1] Kernel panic - not syncing: Attempted to kill init!
";
        let w = scan_console(log);
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(w[0].line.starts_with("WARNING: CPU: 0"));
        assert!(w[3].line.starts_with("Kernel panic"));
        assert!(w.iter().all(|s| s.cases.is_empty()));
        assert_eq!(
            tail(log, 2),
            [
                "kharness-init: cannot open /dev/ttyS1",
                "[    3.1] Kernel panic - not syncing: Attempted to kill init!"
            ]
        );
    }
}
