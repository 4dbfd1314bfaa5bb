//! unix.credentials: SO_PASSCRED / SCM_CREDENTIALS and SO_PEERCRED.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use caps::{CapSet, Capability};
use kharness::sys::recvmsg_scm;
use kharness::{CaseDef, CaseError, Ctx};
use nix::sys::socket::{self, sockopt, ControlMessage, MsgFlags, SockType, UnixCredentials};
use nix::unistd::{getegid, geteuid, getgid, getpid, getuid};

use super::{cmsg_space, guarded, outcome, pair};

/// unix.credentials
pub static CREDENTIALS: CaseDef = CaseDef {
    id: "unix.credentials",
    variants: &[],
    summary: "SCM_CREDENTIALS carries the sender's real pid/uid/gid; forging them needs privilege; SO_PEERCRED agrees",
    drives: "A stream socketpair with SO_PASSCRED on the receiving end. Messages sent: with no control \
        message, from the main thread and from a second thread; with explicit SCM_CREDENTIALS of our own \
        pid/uid/gid; with a forged pid (1) — from the main thread, and from a thread that dropped \
        CAP_SYS_ADMIN from its own effective set; with a forged uid (4242) from a thread without CAP_SETUID.",
    observes: "The SCM_CREDENTIALS each recvmsg() returns; sendmsg()'s errno; SO_PEERCRED on both ends; the \
        threads' effective capabilities (capget); a non-blocking recv() after each refused send.",
    predicts: "Without a control message the receiver gets {getpid(), getuid(), getgid()} — the process id \
        even when a second thread sends; our own values explicitly: accepted and delivered; forged pid or uid \
        from a thread without the capability: EPERM and nothing queued; forged pid 1 with CAP_SYS_ADMIN over \
        the pid namespace: accepted and delivered as 1; SO_PEERCRED = {getpid(), geteuid(), getegid()} on \
        both ends.",
    why: "scm_send() always records task_tgid(current), current_uid(), current_gid() (scm_set_cred) and \
        scm_recv() emits them as SCM_CREDENTIALS when the receiver has SO_PASSCRED. Explicit credentials go \
        through scm_check_creds() (net/core/scm.c): the pid must be the sender's own tgid unless it has \
        CAP_SYS_ADMIN in the user namespace owning its pid namespace, the uid one of uid/euid/suid unless \
        CAP_SETUID, else -EPERM; the pid must exist (-ESRCH). Capabilities are per thread (capabilities(7)). \
        SO_PEERCRED is set by init_peercred() at socketpair()/connect() time from the creator's tgid and \
        euid/egid (unix(7), socket(7)).",
    kernels: "Unchanged in substance across the matrix (5.10+). 6.5 added SCM_PIDFD/SO_PASSPIDFD beside \
        SCM_CREDENTIALS; around 6.16 SO_PASSCRED moved from the socket flags into struct sock \
        (sk_scm_credentials) with the same semantics.",
    shell: "ss -xp (process of each end); no shell tool sends SCM_CREDENTIALS",
    source: "seed 004",
    timeout: Duration::from_secs(10),
    run,
};

/// `sendmsg()` of `data`, with SCM_CREDENTIALS `creds` when given.
fn send_creds(sock: &OwnedFd, data: &[u8], creds: Option<&UnixCredentials>) -> io::Result<usize> {
    let iov = [io::IoSlice::new(data)];
    let cmsgs: Vec<ControlMessage<'_>> = creds.map(ControlMessage::ScmCredentials).into_iter().collect();
    Ok(socket::sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &cmsgs,
        MsgFlags::MSG_DONTWAIT,
        None,
    )?)
}

/// One message's SCM_CREDENTIALS as `[pid, uid, gid]`, or the errno.
fn recv_creds(sock: &OwnedFd) -> io::Result<serde_json::Value> {
    let mut buf = [0u8; 16];
    let got = recvmsg_scm(
        sock.as_fd(),
        &mut buf,
        cmsg_space(std::mem::size_of::<libc::ucred>()),
        libc::MSG_DONTWAIT,
    )?;
    Ok(match got.creds.first() {
        Some(c) => serde_json::json!([c.pid, c.uid, c.gid]),
        None => serde_json::Value::Null,
    })
}

/// What a non-blocking receive finds (`"EAGAIN"` when nothing is queued).
fn nothing_queued(sock: &OwnedFd) -> String {
    outcome(&recv_creds(sock))
}

/// Whether this process lives in the initial user namespace (identity
/// uid_map), where uid 4242 is mappable and CAP_SYS_ADMIN covers every pid
/// namespace.
fn in_initial_user_ns() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
        .unwrap_or(false)
}

/// Runs `f` on a new thread that first drops `cap` from its effective set;
/// returns whether the thread still had `cap` and what `f` returned.
fn without_cap<T: Send>(cap: Capability, f: impl FnOnce() -> T + Send) -> Result<(bool, T), CaseError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            caps::drop(None, CapSet::Effective, cap).map_err(|e| CaseError::Harness(format!("capset: {e}")))?;
            let still = caps::has_cap(None, CapSet::Effective, cap).map_err(|e| CaseError::Harness(e.to_string()))?;
            Ok((still, f()))
        })
        .join()
        .unwrap_or_else(|_| Err(CaseError::Harness("capability thread panicked".into())))
    })
}

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    // Volatile for `report diff`: credentials carry this run's pid and tid.
    ctx.mark_volatile("so_peercred.*");
    ctx.mark_volatile("implicit.main_thread");
    ctx.mark_volatile("implicit.second_thread");
    ctx.mark_volatile("implicit.sender_thread_tid");
    ctx.mark_volatile("explicit_own.received");
    guarded(ctx, |ctx| {
        let me = serde_json::json!([getpid().as_raw(), getuid().as_raw(), getgid().as_raw()]);
        let (a, b) = pair(SockType::Stream)?;
        socket::setsockopt(&b, sockopt::PassCred, &true)?;
        let src_auto =
            "scm_send() -> scm_set_cred(task_tgid(current), current_uid(), current_gid()); scm_recv() with SO_PASSCRED";

        // SO_PEERCRED of a socketpair: the creator, both ways.
        let peer_e = serde_json::json!([getpid().as_raw(), geteuid().as_raw(), getegid().as_raw()]);
        for (name, s) in [("a", &a), ("b", &b)] {
            let pc = socket::getsockopt(s, sockopt::PeerCredentials)?;
            ctx.check_eq(
                format!("so_peercred.{name}"),
                peer_e.clone(),
                serde_json::json!([pc.pid(), pc.uid(), pc.gid()]),
                "init_peercred() at socketpair(): the creator's tgid, euid, egid",
            );
            crate::volatile(ctx, &format!("so_peercred.{name}"));
        }

        // No control message: the kernel fills in the truth.
        send_creds(&a, b"1", None)?;
        ctx.check_eq("implicit.main_thread", me.clone(), recv_creds(&b)?, src_auto);
        crate::volatile(ctx, "implicit.main_thread");
        let tid = std::thread::scope(|s| {
            s.spawn(|| -> io::Result<i32> {
                send_creds(&a, b"2", None)?;
                Ok(nix::unistd::gettid().as_raw())
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("sender thread panicked")))
        })?;
        ctx.observe_volatile("implicit.sender_thread_tid", tid);
        ctx.check_eq(
            "implicit.second_thread",
            me.clone(),
            recv_creds(&b)?,
            "task_tgid(): the process id, not the thread id",
        );
        crate::volatile(ctx, "implicit.second_thread");

        // Explicit, truthful credentials.
        let own = UnixCredentials::new();
        let r = send_creds(&a, b"3", Some(&own));
        ctx.check_eq(
            "explicit_own.sendmsg",
            "ok",
            outcome(&r),
            "scm_check_creds(): one's own pid/uid/gid always pass",
        );
        if r.is_ok() {
            ctx.check_eq(
                "explicit_own.received",
                me.clone(),
                recv_creds(&b)?,
                "__scm_send(): the checked credentials are sent",
            );
            crate::volatile(ctx, "explicit_own.received");
        }

        // A forged pid with whatever this thread holds.
        let forged_pid = UnixCredentials::from(libc::ucred {
            pid: 1,
            uid: getuid().as_raw(),
            gid: getgid().as_raw(),
        });
        let admin = caps::has_cap(None, CapSet::Effective, Capability::CAP_SYS_ADMIN).unwrap_or(false);
        let privileged = admin && in_initial_user_ns();
        ctx.observe("main_thread.cap_sys_admin", admin);
        ctx.observe("initial_user_namespace", in_initial_user_ns());
        let r = send_creds(&a, b"4", Some(&forged_pid));
        ctx.check_eq(
            "forged_pid.privileged.sendmsg",
            if privileged { "ok" } else { "EPERM" },
            outcome(&r),
            "scm_check_creds(): another pid needs CAP_SYS_ADMIN over the sender's pid namespace",
        );
        if r.is_ok() {
            ctx.check_eq(
                "forged_pid.privileged.received",
                serde_json::json!([1, getuid().as_raw(), getgid().as_raw()]),
                recv_creds(&b)?,
                "__scm_send(): the accepted pid is what the receiver sees",
            );
        } else {
            ctx.check_eq(
                "forged_pid.privileged.queued",
                "EAGAIN",
                nothing_queued(&b),
                "a refused sendmsg queues nothing",
            );
        }

        // The same forgery from a thread without CAP_SYS_ADMIN.
        let (still, r) = without_cap(Capability::CAP_SYS_ADMIN, || send_creds(&a, b"5", Some(&forged_pid)))?;
        ctx.check_eq(
            "forged_pid.unprivileged.thread_has_cap",
            false,
            still,
            "capset() on the thread dropped it",
        );
        ctx.check_eq(
            "forged_pid.unprivileged.sendmsg",
            "EPERM",
            outcome(&r),
            "scm_check_creds(): no CAP_SYS_ADMIN, pid != task_tgid_vnr(current) -> -EPERM",
        );
        ctx.check_eq(
            "forged_pid.unprivileged.queued",
            "EAGAIN",
            nothing_queued(&b),
            "a refused sendmsg queues nothing",
        );
        if admin {
            let back = caps::has_cap(None, CapSet::Effective, Capability::CAP_SYS_ADMIN).unwrap_or(false);
            ctx.check_eq(
                "main_thread.cap_sys_admin_after",
                true,
                back,
                "capabilities are per thread (capabilities(7))",
            );
        }

        // A forged uid from a thread without CAP_SETUID (only where 4242 maps).
        if in_initial_user_ns() && getuid().as_raw() != 4242 && geteuid().as_raw() != 4242 {
            let forged_uid = UnixCredentials::from(libc::ucred {
                pid: getpid().as_raw(),
                uid: 4242,
                gid: getgid().as_raw(),
            });
            let (_, r) = without_cap(Capability::CAP_SETUID, || send_creds(&a, b"6", Some(&forged_uid)))?;
            ctx.check_eq(
                "forged_uid.unprivileged.sendmsg",
                "EPERM",
                outcome(&r),
                "scm_check_creds(): a uid other than uid/euid/suid needs CAP_SETUID",
            );
            ctx.check_eq(
                "forged_uid.unprivileged.queued",
                "EAGAIN",
                nothing_queued(&b),
                "a refused sendmsg queues nothing",
            );
        } else {
            ctx.note("forged uid part not run: uid 4242 is not mappable in this user namespace");
        }
        Ok(())
    })
}
