//! unix.inflight_gc: a socket that holds itself, and the collector that
//! frees it.

use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use kharness::wait::wait_until;
use kharness::{CaseDef, CaseError, Ctx, NetNs};
use nix::sys::socket::{self, ControlMessage, MsgFlags, SockType};

use super::diag::NETLINK_SOCK_DIAG;
use super::procnet::NsView;
use super::{abstract_addr, guarded, pair, send_fds, unix_socket};

/// unix.inflight_gc
pub static INFLIGHT_GC: CaseDef = CaseDef {
    id: "unix.inflight_gc",
    variants: &[],
    summary: "sockets kept alive only by their own in-flight descriptors are freed by the AF_UNIX garbage collector",
    drives: "In a fresh network namespace: a datagram socket s bound to an abstract name sends its own \
        descriptor to its own address, so it waits in s's own receive queue; and in a stream socketpair \
        (a, b) a's descriptor is sent over b, into a's own queue, and b's over a, into b's. Every handle is \
        closed. Then an unrelated AF_UNIX socket is opened and closed, which is what schedules the \
        collector; this is repeated on each poll until the counts are back.",
    observes: "UNIX_DIAG (sock_diag) and /proc/thread-self/net/unix of the namespace — socket count, inodes, \
        the receive-queue length and peer of each socket — and sockstat `sockets: used`; SIOCINQ on each \
        socket while it is open; at the baseline, with the cycles built, right after the close, and after \
        the collector.",
    predicts: "Baseline: no AF_UNIX socket. With the cycles: 3 sockets in both views, the same inodes, rqueue \
        1 (the one-byte message each holds) = SIOCINQ, a and b each other's peer, sockets used +3. After \
        closing every handle the sockets stay (in flight, unreachable) until the collector runs; then both \
        views and sockstat are back to the baseline and none of the three inodes is listed.",
    why: "Closing a descriptor whose struct file is also referenced from an skb (SCM_RIGHTS in flight) \
        releases nothing, so the sockets never reach unix_release_sock(). The collector in net/unix/garbage.c \
        finds in-flight sockets whose every file reference comes from in-flight skbs inside a cycle and \
        purges those skbs, which drops the last references. It is scheduled from unix_release_sock() of any \
        AF_UNIX socket while descriptors are in flight (unix_gc(), later unix_schedule_gc()), and from \
        sendmsg() once too many are in flight — not by the close of the cycle's own handles.",
    kernels: "Up to 6.7 unix_release_sock() ran unix_gc() synchronously; 6.8 moved the collector to a work \
        queue (__unix_gc on system_unbound_wq), so freeing is asynchronous and is polled for; 6.10 replaced \
        the algorithm with a strongly-connected-components walk of the in-flight graph (unix_walk_scc) and \
        the trigger became unix_schedule_gc(). The outcome is the same. sockstat counts are per namespace \
        since 4.16.",
    shell: "ip netns exec NS ss -xa; ip netns exec NS cat /proc/net/unix /proc/net/sockstat",
    source: "seed 004",
    timeout: Duration::from_secs(15),
    run,
};

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    guarded(ctx, |ctx| {
        let ns = NetNs::new("unix-gc")?;
        let diag = ns.netlink(NETLINK_SOCK_DIAG)?;
        let base = NsView::read(&ns, &diag)?;
        let used0 = base.sockets_used;
        base.check_counts(
            ctx,
            "baseline",
            0,
            None,
            "a new network namespace has no AF_UNIX socket",
        );

        // Two self-references. A datagram socket sends its own descriptor to
        // its own address: it sits in its own receive queue. And a stream
        // pair where each end's descriptor is sent by the other end, so
        // again each waits in its own queue.
        let (own, _) = abstract_addr("gc.self")?;
        let (s, a, b) = ns.run(|| -> std::io::Result<_> {
            let s = unix_socket(SockType::Datagram)?;
            socket::bind(s.as_raw_fd(), &own)?;
            let (a, b) = pair(SockType::Stream)?;
            Ok((s, a, b))
        })??;
        let inos = [&s, &a, &b].map(|f| nix::sys::stat::fstat(f).map(|st| st.st_ino));
        let [ino_s, ino_a, ino_b] = [inos[0]?, inos[1]?, inos[2]?];
        let iov = [std::io::IoSlice::new(b"S")];
        let rights = [s.as_raw_fd()];
        socket::sendmsg(
            s.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&rights)],
            MsgFlags::MSG_DONTWAIT,
            Some(&own),
        )?;
        send_fds(&b, b"A", &[a.as_raw_fd()], MsgFlags::MSG_DONTWAIT)?; // a's fd -> a's queue
        send_fds(&a, b"B", &[b.as_raw_fd()], MsgFlags::MSG_DONTWAIT)?; // b's fd -> b's queue
        let inq: Vec<i32> = [&s, &a, &b]
            .iter()
            .map(|f| kharness::sys::ioctl_int(f.as_fd(), kharness::sys::SIOCINQ))
            .collect::<Result<_, _>>()?;
        ctx.check_eq(
            "cycle.siocinq",
            serde_json::json!([1, 1, 1]),
            serde_json::json!(inq),
            "one one-byte message queued on each socket",
        );
        let cyc = NsView::read(&ns, &diag)?;
        cyc.check_counts(
            ctx,
            "cycle",
            3,
            used0.map(|u| u + 3),
            "one datagram socket and a socketpair in this namespace",
        );
        let rq = |ino: u64| cyc.diag_of(ino).and_then(|d| d.rqlen).map(|(r, _)| r);
        ctx.check_eq(
            "cycle.unix_diag.rqueue",
            serde_json::json!([1, 1, 1]),
            serde_json::json!([rq(ino_s), rq(ino_a), rq(ino_b)]),
            "UNIX_DIAG_RQLEN rqueue = unix_inq_len() = the queued message = SIOCINQ",
        );
        ctx.check_eq(
            "cycle.unix_diag.peers",
            serde_json::json!([null, ino_b, ino_a]),
            serde_json::json!([
                cyc.diag_of(ino_s).and_then(|d| d.peer),
                cyc.diag_of(ino_a).and_then(|d| d.peer),
                cyc.diag_of(ino_b).and_then(|d| d.peer)
            ]),
            "UNIX_DIAG_PEER names the other end of the pair; the unconnected datagram socket has none",
        );
        crate::volatile(ctx, "cycle.unix_diag.peers");

        // Close every handle: nothing is released, the pair is in flight.
        drop(s);
        drop(a);
        drop(b);
        let closed = NsView::read(&ns, &diag)?;
        // Not a prediction: the collector is global, and any AF_UNIX close
        // on the host (another process) may already have scheduled it.
        ctx.observe("after_close.proc_net_unix.sockets", closed.proc.len() as u64);
        ctx.observe("after_close.unix_diag.sockets", closed.diag.len() as u64);
        ctx.observe_opt("after_close.sockstat.sockets_used", closed.sockets_used);

        // Schedule the collector by releasing an unrelated AF_UNIX socket,
        // on every poll until both views are back to the baseline.
        let mut triggers = 0u32;
        let fin = wait_until(
            "the AF_UNIX garbage collector to free the cycle",
            Duration::from_secs(10),
            || {
                triggers += 1;
                let _ = ns.run(|| unix_socket(SockType::Stream).map(drop));
                NsView::read(&ns, &diag).ok()
            },
            |v| {
                v.as_ref().is_some_and(|v| {
                    v.proc.is_empty() && v.diag.is_empty() && (used0.is_none() || v.sockets_used == used0)
                })
            },
        )?;
        let Some(fin) = fin else {
            return Err(CaseError::Harness("cannot read the namespace's sockets".into()));
        };
        ctx.observe_volatile("collector.triggers", triggers);
        fin.check_counts(
            ctx,
            "collected",
            0,
            used0,
            "the collector frees both sockets of the cycle",
        );
        ctx.check_eq(
            "collected.cycle_inodes_listed",
            0,
            [ino_s, ino_a, ino_b]
                .iter()
                .filter(|&&i| fin.proc_of(i).is_some() || fin.diag_of(i).is_some())
                .count() as u64,
            "neither socket of the cycle is listed any more",
        );
        Ok(())
    })
}
