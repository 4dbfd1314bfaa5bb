//! unix.epipe: EPIPE always, SIGPIPE unless MSG_NOSIGNAL.
//!
//! The signal is observed in this case's own process: SIGPIPE is blocked on
//! the calling thread, so a delivered one stays pending, where
//! `/proc/thread-self/status` (SigPnd) shows it and a non-blocking
//! signalfd takes it — the equivalent of `sigtimedwait()` with a zero
//! timeout. A blocked signal is queued even while its disposition is
//! SIG_IGN (the Rust runtime's default for SIGPIPE): `sig_ignored()` in
//! kernel/signal.c never ignores a blocked signal.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use kharness::{CaseDef, CaseError, Ctx};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{self, Shutdown, SockType};

use super::{guarded, outcome, pair};

/// unix.epipe
pub static EPIPE: CaseDef = CaseDef {
    id: "unix.epipe",
    variants: &[],
    summary: "send on a stream socket whose peer closed: EPIPE always, SIGPIPE only without MSG_NOSIGNAL",
    drives: "With SIGPIPE blocked on the case's thread: send() on a stream socketpair end whose peer was \
        closed, once with flags 0 and once with MSG_NOSIGNAL; send() after shutdown(SHUT_WR) of one's own \
        end; for contrast, send() twice on a connected datagram socketpair end whose peer was closed.",
    observes: "send()'s errno; whether SIGPIPE is pending on the thread (/proc/thread-self/status SigPnd) and \
        the siginfo a non-blocking signalfd returns for it (si_code, si_pid).",
    predicts: "Stream, flags 0: EPIPE and one SIGPIPE, si_code SI_USER from our own pid; stream, \
        MSG_NOSIGNAL: EPIPE and no signal; after SHUT_WR: EPIPE and SIGPIPE; datagram: ECONNREFUSED, then \
        ENOTCONN, and no signal.",
    why: "unix_stream_sendmsg() (net/unix/af_unix.c) jumps to pipe_err when the peer is dead or has \
        RCV_SHUTDOWN (set on it by unix_release_sock() of the other end) or when our own end has \
        SEND_SHUTDOWN: send_sig(SIGPIPE, current, 0) unless MSG_NOSIGNAL, and -EPIPE (send(2)). send_sig() \
        with priv 0 is SEND_SIG_NOINFO: SI_USER with the sender's pid. unix_dgram_sendmsg() finding its \
        peer dead forgets the peer and returns -ECONNREFUSED, after which there is no peer (-ENOTCONN), and \
        sends no signal. Seed 004: \"In case of datagram-oriented sockets, SIGPIPE is not sent\".",
    kernels: "Unchanged since 2.6 (MSG_NOSIGNAL since 2.2).",
    shell: "grep SigPnd /proc/PID/task/TID/status",
    source: "seed 004",
    timeout: Duration::from_secs(10),
    run,
};

/// SIGPIPE's bit in a /proc status signal mask.
const SIGPIPE_BIT: u64 = 1 << (libc::SIGPIPE - 1);

/// Whether SIGPIPE is pending on this thread or the process
/// (`SigPnd`/`ShdPnd` of /proc/thread-self/status).
fn sigpipe_pending() -> io::Result<bool> {
    let status = std::fs::read_to_string("/proc/thread-self/status")?;
    let mut pending = 0u64;
    for line in status.lines() {
        if let Some(v) = line.strip_prefix("SigPnd:").or_else(|| line.strip_prefix("ShdPnd:")) {
            pending |= u64::from_str_radix(v.trim(), 16).map_err(io::Error::other)?;
        }
    }
    Ok(pending & SIGPIPE_BIT != 0)
}

/// What one step saw: errno, pending before taking, and the siginfo taken.
struct Step {
    errno: String,
    pending: bool,
    taken: Option<(u32, i32, u32)>,
}

fn step(sfd: &SignalFd, send: impl FnOnce() -> io::Result<usize>) -> Result<Step, CaseError> {
    let r = send();
    let pending = sigpipe_pending()?;
    let taken = sfd.read_signal()?.map(|si| (si.ssi_signo, si.ssi_code, si.ssi_pid));
    Ok(Step {
        errno: outcome(&r),
        pending,
        taken,
    })
}

fn record(ctx: &mut Ctx, label: &str, s: &Step, errno: &str, signal: bool) {
    let src = if signal {
        "unix_stream_sendmsg() pipe_err: send_sig(SIGPIPE, current, 0), -EPIPE"
    } else {
        "no SIGPIPE on this path (MSG_NOSIGNAL, or a datagram socket)"
    };
    ctx.check_eq(format!("{label}.errno"), errno, s.errno.clone(), src);
    ctx.check_eq(format!("{label}.sigpipe_pending"), signal, s.pending, src);
    ctx.check_eq(
        format!("{label}.signal_taken"),
        if signal {
            serde_json::json!(libc::SIGPIPE)
        } else {
            serde_json::Value::Null
        },
        serde_json::json!(s.taken.map(|t| t.0)),
        src,
    );
    if let Some((_, code, pid)) = s.taken {
        ctx.check_eq(
            format!("{label}.si_code"),
            libc::SI_USER,
            code,
            "send_sig(…, 0): SEND_SIG_NOINFO is SI_USER",
        );
        ctx.check_eq(
            format!("{label}.si_pid"),
            std::process::id(),
            pid,
            "SEND_SIG_NOINFO carries the current tgid",
        );
        crate::volatile(ctx, &format!("{label}.si_pid"));
    }
}

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    // Volatile for `report diff`: the signal carries this run's pid.
    ctx.mark_volatile("*.si_pid");
    guarded(ctx, |ctx| {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGPIPE);
        let old = mask.thread_swap_mask(SigmaskHow::SIG_BLOCK)?;
        let r = with_sigpipe_blocked(ctx, &mask);
        old.thread_set_mask()?;
        r
    })
}

fn with_sigpipe_blocked(ctx: &mut Ctx, mask: &SigSet) -> Result<(), CaseError> {
    let sfd = SignalFd::with_flags(mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
    let mut stale = 0u32;
    while sfd.read_signal()?.is_some() {
        stale += 1;
    }
    ctx.observe("stale_sigpipe_before", stale);
    let send =
        |fd: &std::os::fd::OwnedFd, flags: i32| kharness::sys::send(fd.as_fd(), b"x", flags | libc::MSG_DONTWAIT);

    let (a, b) = pair(SockType::Stream)?;
    drop(b);
    let s = step(&sfd, || send(&a, 0))?;
    record(ctx, "stream.peer_closed", &s, "EPIPE", true);
    let s = step(&sfd, || send(&a, libc::MSG_NOSIGNAL))?;
    record(ctx, "stream.peer_closed_nosignal", &s, "EPIPE", false);

    let (c, _d) = pair(SockType::Stream)?;
    socket::shutdown(std::os::fd::AsRawFd::as_raw_fd(&c), Shutdown::Write)?;
    let s = step(&sfd, || send(&c, 0))?;
    record(ctx, "stream.own_shut_wr", &s, "EPIPE", true);

    let (e, f) = pair(SockType::Datagram)?;
    drop(f);
    let s = step(&sfd, || send(&e, 0))?;
    record(ctx, "dgram.peer_closed", &s, "ECONNREFUSED", false);
    let s = step(&sfd, || send(&e, 0))?;
    record(ctx, "dgram.peer_closed_again", &s, "ENOTCONN", false);
    Ok(())
}
