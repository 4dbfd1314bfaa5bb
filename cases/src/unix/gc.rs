//! unix.inflight_gc: a socket that holds itself, and the collector that
//! frees it.

use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use kharness::netlink::NlSocket;
use kharness::wait::{wait_settled, wait_until};
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
        closed — after a canary in a second namespace (a datagram socket holding its own descriptor) was \
        closed the same way. Then an unrelated AF_UNIX socket is opened and closed, which is what schedules \
        the collector, on each poll until the canary is freed (a collector run has then scanned after the \
        cycles became unreachable); the views of the first namespace are read once they have settled. If the \
        canary is already gone right after the close (the collector, scheduled by another close on the \
        machine, ran in between), the construction is made again.",
    observes: "UNIX_DIAG (sock_diag) and /proc/thread-self/net/unix of the namespace — socket count, inodes, \
        the receive-queue length and peer of each socket — and sockstat `sockets: used`; SIOCINQ on each \
        socket while it is open; at the baseline, with the cycles built, right after the close, and after \
        the collector; whether the canary is still listed.",
    predicts: "Baseline: no AF_UNIX socket. With the cycles: 3 sockets in both views, the same inodes, rqueue \
        1 (the one-byte message each holds) = SIOCINQ, a and b each other's peer, sockets used +3. After \
        closing every handle the sockets stay (in flight, unreachable) until the collector runs: 3 sockets, \
        the 3 inodes listed, sockets used +3. Once a collector run has freed the canary, both views and \
        sockstat are back to the baseline and none of the three inodes is listed.",
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

/// How many times the construction is tried when the collector, scheduled
/// by some other AF_UNIX close on the machine, ran in the instant between
/// the close of the handles and the look at what stayed. Ten: at `--jobs
/// 16` the other unix cases close sockets all the time, and three attempts
/// in a row were seen to be interrupted.
const ATTEMPTS: usize = 10;

/// A witness of the collector: a datagram socket in a namespace of its own
/// that sent its own descriptor to itself and was closed — in flight and
/// unreachable, so the next run of the (global) collector frees it. While it
/// is still listed, no collector run has scanned since it was closed.
struct Canary {
    ns: NetNs,
    diag: NlSocket,
    ino: u64,
}

impl Canary {
    fn new() -> Result<Canary, CaseError> {
        let ns = NetNs::new("unix-gc-canary")?;
        let diag = ns.netlink(NETLINK_SOCK_DIAG)?;
        let (own, _) = abstract_addr("gc.canary")?;
        let k = ns.run(|| -> std::io::Result<_> {
            let k = unix_socket(SockType::Datagram)?;
            socket::bind(k.as_raw_fd(), &own)?;
            Ok(k)
        })??;
        let ino = nix::sys::stat::fstat(&k)?.st_ino;
        let iov = [std::io::IoSlice::new(b"K")];
        let rights = [k.as_raw_fd()];
        socket::sendmsg(
            k.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&rights)],
            MsgFlags::MSG_DONTWAIT,
            Some(&own),
        )?;
        drop(k);
        Ok(Canary { ns, diag, ino })
    }

    /// Whether either view of its namespace still lists it.
    fn listed(&self) -> Result<bool, CaseError> {
        let v = NsView::read(&self.ns, &self.diag)?;
        Ok(v.proc_of(self.ino).is_some() || v.diag_of(self.ino).is_some())
    }
}

/// How many of `inos` either view of `v` lists.
fn listed(v: &NsView, inos: &[u64]) -> u64 {
    inos.iter()
        .filter(|&&i| v.proc_of(i).is_some() || v.diag_of(i).is_some())
        .count() as u64
}

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    guarded(ctx, |ctx| {
        for attempt in 1..=ATTEMPTS {
            if attempt_once(ctx)? {
                return Ok(());
            }
            ctx.note(format!(
                "attempt {attempt}: the collector ran between the close and the look (the canary was freed); \
                 built again"
            ));
        }
        Err(CaseError::Harness(format!(
            "on each of {ATTEMPTS} attempts the collector ran between the close of the handles and the look at \
             what stayed (other AF_UNIX sockets closed on the machine schedule it)"
        )))
    })
}

/// One construction; `Ok(false)` (and nothing recorded) when the collector
/// ran between the close and the look, so the pre-collector state was not
/// seen.
fn attempt_once(ctx: &mut Ctx) -> Result<bool, CaseError> {
    let ns = NetNs::new("unix-gc")?;
    let diag = ns.netlink(NETLINK_SOCK_DIAG)?;
    let base = NsView::read(&ns, &diag)?;
    let used0 = base.sockets_used;

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
    let cyc = NsView::read(&ns, &diag)?;

    // The canary goes unreachable first, then every handle of the cycles is
    // closed: nothing is released, the sockets are in flight. If the canary
    // is still listed after the look, no collector run scanned between its
    // close and the look, so what the look saw is the state before the
    // collector.
    let canary = Canary::new()?;
    drop(s);
    drop(a);
    drop(b);
    let closed = NsView::read(&ns, &diag)?;
    if !canary.listed()? {
        return Ok(false);
    }

    base.check_counts(
        ctx,
        "baseline",
        0,
        None,
        "a new network namespace has no AF_UNIX socket",
    );
    ctx.check_eq(
        "cycle.siocinq",
        serde_json::json!([1, 1, 1]),
        serde_json::json!(inq),
        "one one-byte message queued on each socket",
    );
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
    // Volatile for `report diff`: inode numbers.
    crate::volatile(ctx, "cycle.unix_diag.peers");
    let cycle = [ino_s, ino_a, ino_b];
    let in_flight = "closing a descriptor whose file an in-flight skb also holds releases nothing: the sockets \
        stay, in flight and unreachable, until the collector runs";
    closed.check_counts(ctx, "after_close", 3, used0.map(|u| u + 3), in_flight);
    ctx.check_eq("after_close.cycle_inodes_listed", 3, listed(&closed, &cycle), in_flight);

    // Schedule the collector by releasing an unrelated AF_UNIX socket, on
    // every poll, until the canary is gone: a collector run has then
    // scanned after every handle of the cycles was closed. What it left of
    // the cycles is read once the namespace's views have settled (the
    // freeing finishes in delayed fput work, a tick later).
    let mut triggers = 0u32;
    wait_until(
        "the AF_UNIX garbage collector to free the canary",
        Duration::from_secs(10),
        || {
            triggers += 1;
            let _ = ns.run(|| unix_socket(SockType::Stream).map(drop));
            canary.listed().ok()
        },
        |listed| *listed == Some(false),
    )?;
    // Volatile for `report diff`: how many closes it took depends on when
    // the work queue ran.
    ctx.observe_volatile("collector.triggers", triggers);
    wait_settled(
        "the namespace's AF_UNIX sockets to settle",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || {
            NsView::read(&ns, &diag)
                .ok()
                .map(|v| (v.proc_inodes(), v.diag_inodes(), v.sockets_used))
        },
    )?;
    let fin = NsView::read(&ns, &diag)?;
    fin.check_counts(
        ctx,
        "collected",
        0,
        used0,
        "the collector run that freed the canary frees both cycles too: every socket in them is \
         referenced only from in-flight skbs of the cycle",
    );
    ctx.check_eq(
        "collected.cycle_inodes_listed",
        0,
        listed(&fin, &cycle),
        "neither socket of the cycle is listed any more",
    );
    Ok(true)
}
