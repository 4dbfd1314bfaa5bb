//! tcp.notsent_lowat

use std::os::fd::AsFd;
use std::time::Duration;

use kharness::{CaseDef, CaseError, Ctx, Expect};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use super::{connect, fill, read_some, settle, wait_refill, ConnOpts, Path, SETTLE};

/// The low-water mark.
const LOWAT: i32 = 16384;

/// tcp.notsent_lowat
pub static NOTSENT_LOWAT: CaseDef = CaseDef {
    id: "tcp.notsent_lowat",
    variants: &["sockopt", "sysctl"],
    summary: "TCP_NOTSENT_LOWAT gates writes and EPOLLOUT on the unsent bytes",
    drives: "TCP_NOTSENT_LOWAT = 16384 set on the client socket (variant sockopt) or as the \
        client namespace's net.ipv4.tcp_notsent_lowat (variant sysctl); the client writes \
        until EAGAIN against a receiver with a 4 KiB buffer; the receiver then drains 1000 \
        bytes at a time and, after each settled step, the client is polled with \
        epoll_wait(timeout 0) for EPOLLOUT.",
    observes: "getsockopt(TCP_NOTSENT_LOWAT); tcpi_notsent_bytes, SO_SNDBUF and \
        SO_MEMINFO wmem_queued at EAGAIN and at every step; EPOLLOUT readiness at every step.",
    predicts: "The write stops (EAGAIN) with notsent >= 16384 (or the send buffer full). \
        At every step EPOLLOUT is reported iff 2*notsent < 16384 and sk_stream_wspace() >= \
        sk_stream_min_wspace() and wmem_queued < sndbuf. The steps cover all three bands \
        (notsent >= L, L/2 <= notsent < L, notsent < L/2), so the factor of two is exercised.",
    why: "tcp_sendmsg_locked() waits while !sk_stream_memory_free(sk), which includes \
        tcp_stream_memory_free(sk, wake=0): notsent < lowat. tcp_poll() reports EPOLLOUT when \
        __sk_stream_is_writeable(sk, 1), where tcp_stream_memory_free(sk, wake=1) tests \
        (notsent << 1) < lowat: 'this sends EPOLLOUT only if notsent_bytes is half the limit' \
        (net/ipv4/tcp_ipv4.c). The catalog's 'EPOLLOUT iff notsent < L' is the write-side rule; \
        the readiness rule the kernel applies is half of it, and that is what the model \
        predicts. tcp_notsent_lowat() takes the socket's value or, when 0, the namespace sysctl.",
    kernels: "The wake factor in tcp_stream_memory_free() has been in tcp_poll since 4.x; \
        the sysctl is per namespace since 3.12-era netns conversion (all matrix kernels). \
        The drain's steps (notsent after each read, and how many steps fall in each band) differ between \
        5.10/6.1 and 6.12+: the receiver's window for its 4 KiB buffer is 2 MSS there and 3 MSS from 6.12 \
        (tp->scaling_ratio since 6.6, see tcp.info_diag), so the sender refills in other amounts. The model \
        predicts EPOLLOUT from each step's own notsent and wmem, and that every band is reached, not the \
        amounts.",
    shell: "ip netns exec khpair-client sysctl net.ipv4.tcp_notsent_lowat; ss -ti (notsent:)",
    source: "seed 000/001 (epoll and TCP_NOTSENT_LOWAT)",
    timeout: Duration::from_secs(30),
    run,
};

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    // Volatile for `report diff`: the send buffer is autotuned as the fill goes.
    ctx.mark_volatile("fill.sndbuf");
    let by_sysctl = ctx.variant == Some("sysctl");
    let mut opts = ConnOpts {
        server_rcvbuf: Some(4096),
        ..Default::default()
    };
    if by_sysctl {
        opts.client_sysctls
            .push(("net.ipv4.tcp_notsent_lowat", LOWAT.to_string()));
    } else {
        opts.client_lowat = Some(LOWAT);
    }
    let mut conn = connect(Path::Veth, &opts)?;
    let sockopt = kharness::sys::getsockopt_int(conn.client.as_fd(), libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT)?;
    ctx.check_eq(
        "getsockopt.tcp_notsent_lowat",
        if by_sysctl { 0 } else { LOWAT },
        sockopt,
        "getsockopt returns the socket's own value; the sysctl is applied by tcp_notsent_lowat() without being copied into the socket",
    );
    if by_sysctl {
        let v = conn.topo.ns(conn.client_ns).sysctl_read("net.ipv4.tcp_notsent_lowat")?;
        ctx.check_eq(
            "sysctl.tcp_notsent_lowat",
            LOWAT.to_string(),
            v,
            "set in the client namespace only",
        );
    }
    let mut written = 0;
    let eagain = fill(&mut conn.client, &mut written, 8 << 20)?;
    let p = settle(&conn, SETTLE)?;
    ctx.check_eq("fill.eagain", true, eagain, "the write stops at the low-water mark");
    let notsent = p.c.ti("notsent_bytes").unwrap_or(0) as i64;
    let wq = p.c.mem("wmem_queued").unwrap_or(0) as i64;
    ctx.observe("fill.notsent", notsent);
    ctx.observe_volatile("fill.wmem_queued", wq);
    ctx.observe_volatile("fill.sndbuf", p.c.sndbuf);
    ctx.check_eq(
        "fill.stopped_by",
        "lowat",
        if notsent >= LOWAT as i64 {
            "lowat"
        } else if wq >= p.c.sndbuf as i64 {
            "sndbuf"
        } else {
            "neither"
        },
        "sk_stream_memory_free(): the write stops once notsent >= lowat (the 8 MiB send buffer is not the limit)",
    );
    ctx.check(
        "fill.notsent_bound",
        Expect::Le(LOWAT as i64 + super::SNDBUF_OVERSHOOT),
        notsent,
        "the check precedes each new skb, so notsent exceeds the mark by at most one skb",
    );

    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    epoll.add(&conn.client, EpollEvent::new(EpollFlags::EPOLLOUT, 0))?;
    let mut bands = [0u32; 3];
    let mut read = 0u64;
    let mut step = 0;
    while read < written && step < 10_000 {
        step += 1;
        let (got, _) = read_some(&mut conn.server, &mut read, 1000)?;
        if got == 0 {
            if !wait_refill(&conn) {
                break;
            }
            continue;
        }
        let p = settle(&conn, SETTLE)?;
        let mut events = [EpollEvent::empty()];
        let n = epoll.wait(&mut events, EpollTimeout::ZERO)?;
        let ready = n == 1 && events[0].events().contains(EpollFlags::EPOLLOUT);
        let notsent = p.c.ti("notsent_bytes").unwrap_or(0) as i64;
        let wq = p.c.mem("wmem_queued").unwrap_or(0) as i64;
        let sndbuf = p.c.sndbuf as i64;
        let predicted = 2 * notsent < LOWAT as i64 && sndbuf - wq >= wq / 2 && wq < sndbuf;
        let band = if notsent >= LOWAT as i64 {
            0
        } else if 2 * notsent >= LOWAT as i64 {
            1
        } else {
            2
        };
        bands[band] += 1;
        ctx.observe(format!("step{step}.notsent"), notsent);
        ctx.observe_volatile(format!("step{step}.wmem_queued"), wq);
        ctx.check_eq(
            format!("step{step}.epollout"),
            predicted,
            ready,
            "tcp_poll: EPOLLOUT iff (notsent << 1) < lowat and sk_stream_wspace >= sk_stream_min_wspace",
        );
        if !ctx.mismatches_so_far().is_empty() {
            break;
        }
    }
    ctx.observe("steps", step);
    for (i, name) in ["notsent>=L", "L/2<=notsent<L", "notsent<L/2"].iter().enumerate() {
        ctx.check(
            format!("band.{name}"),
            Expect::Gt(0),
            bands[i],
            "the drain passes through every band, so each side of both thresholds was checked",
        );
    }
    Ok(())
}
