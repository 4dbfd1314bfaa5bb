//! tcp.info_diag

use std::os::fd::AsFd;
use std::time::Duration;

use kharness::diag::{dump_tcp, InetDiagMsg, NETLINK_SOCK_DIAG};
use kharness::observe::SockSnapshot;
use kharness::tcpinfo::{expected_len_for, TcpInfo};
use kharness::wait::wait_for;
use kharness::{CaseDef, CaseError, Ctx};

use super::{connect, fill, settle, ConnOpts, Path, SETTLE};

/// Fields that change with the clock alone (milliseconds since an event);
/// everything else is stable while the connection is idle.
const CLOCK_FIELDS: &[&str] = &["last_data_sent", "last_ack_sent", "last_data_recv", "last_ack_recv"];

/// tcp.info_diag
pub static INFO_DIAG: CaseDef = CaseDef {
    id: "tcp.info_diag",
    variants: &[],
    summary: "getsockopt(TCP_INFO) and sock_diag INET_DIAG_INFO (what ss -ti reads) agree field by field",
    drives: "The tcp.fill state across the veth pair (sender blocked on a closed window, \
        receiver holding unread bytes), so that queues and counters are non-zero.",
    observes: "For both sockets: getsockopt(TCP_INFO), then an INET_DIAG dump of the namespace \
        (NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY with INET_DIAG_INFO) matched by address and \
        port, then getsockopt(TCP_INFO) again; the two getsockopt reads must agree for the \
        triple to count. Also idiag_rqueue/idiag_wqueue against SIOCINQ/SIOCOUTQ.",
    predicts: "The INET_DIAG_INFO attribute has the same length as getsockopt returns, and that \
        length is the one this kernel version's struct tcp_info has; every field that is not a \
        clock (last_*_sent/recv) is equal in both; idiag_rqueue == SIOCINQ and idiag_wqueue == \
        SIOCOUTQ; the states are ESTABLISHED.",
    why: "Both paths call tcp_get_info() on the same socket (do_tcp_getsockopt and \
        tcp_diag_get_info), copying min(len, sizeof(struct tcp_info)) bytes. inet_sk_diag_fill() \
        fills rqueue/wqueue from tcp_diag_get_info(): rcv_nxt - copied_seq and write_seq - \
        snd_una, the SIOCINQ/SIOCOUTQ formulas.",
    kernels: "The struct grows: 232 bytes from 5.4 (snd_wnd), 240 from 6.2 (rcv_wnd, rehash), \
        248 from 6.7 (total_rto*), 280 from 6.18 (AccECN counters); the model takes the length \
        from the kernel version and compares only fields both ends have. \
        The server's idiag_rqueue (2 MSS on 5.10 and 6.1, 3 MSS from 6.12) is what the 4 KiB receive buffer let in: the window advertised for a small SO_RCVBUF is derived from tp->scaling_ratio (payload over truesize) since \"tcp: get rid of sysctl_tcp_adv_win_scale\" (6.6), before from tcp_adv_win_scale (half the buffer); the model compares it with SIOCINQ on the same kernel.",
    shell: "ip netns exec khpair-client ss -tin",
    source: "seed 002 (the hidden function of getsockopt)",
    timeout: Duration::from_secs(20),
    run,
};

fn find(dump: &[InetDiagMsg], src: std::net::SocketAddr, dst: std::net::SocketAddr) -> Option<InetDiagMsg> {
    dump.iter().find(|m| m.src == src && m.dst == dst).cloned()
}

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    // Volatile for `report diff`: pacing and delivery rates and the time spent limited follow the machine's load.
    ctx.mark_volatile("*.tcpi_pacing_rate");
    ctx.mark_volatile("*.tcpi_delivery_rate");
    ctx.mark_volatile("*.tcpi_rwnd_limited");
    ctx.mark_volatile("*.tcpi_busy_time");
    ctx.mark_volatile("*.tcpi_sndbuf_limited");
    // Volatile for `report diff`: a spurious retransmission under load moves the segment counts.
    ctx.mark_volatile("*.tcpi_bytes_retrans");
    ctx.mark_volatile("*.tcpi_total_retrans");
    ctx.mark_volatile("*.tcpi_retrans");
    ctx.mark_volatile("*.tcpi_dsack_dups");
    ctx.mark_volatile("*.tcpi_segs_out");
    ctx.mark_volatile("*.tcpi_segs_in");
    ctx.mark_volatile("*.tcpi_data_segs_out");
    ctx.mark_volatile("*.tcpi_data_segs_in");
    ctx.mark_volatile("*.tcpi_delivered");
    ctx.mark_volatile("*.tcpi_bytes_sent");
    ctx.mark_volatile("*.tcpi_bytes_acked");
    ctx.mark_volatile("*.tcpi_snd_cwnd");
    let mut conn = connect(
        Path::Veth,
        &ConnOpts {
            server_rcvbuf: Some(4096),
            ..Default::default()
        },
    )?;
    let mut written = 0;
    fill(&mut conn.client, &mut written, 1 << 20)?;
    settle(&conn, SETTLE)?;
    let want_len = expected_len_for((ctx.kernel.version.0, ctx.kernel.version.1));
    // The version gate the model took, named for the matrix's differences.
    if let Some((_, since)) = kharness::tcpinfo::GENERATIONS
        .iter()
        .rev()
        .find(|(l, _)| *l == want_len)
    {
        ctx.observe("gate.tcp_info_len", format!("{since}+: {want_len} bytes"));
    }
    for (side, stream, ns) in [
        ("client", &conn.client, conn.client_ns),
        ("server", &conn.server, conn.server_ns),
    ] {
        let (src, dst) = (stream.local_addr()?, stream.peer_addr()?);
        let nl = conn.topo.ns(ns).netlink(NETLINK_SOCK_DIAG)?;
        let fd = stream.as_fd();
        // A zero-window probe may tick a counter between reads: retry until
        // getsockopt, diag, getsockopt is one consistent triple.
        let (before, msg, snap) = wait_for("a consistent getsockopt/diag/getsockopt triple", SETTLE, || {
            let before = SockSnapshot::take(fd).ok()?;
            let dump = dump_tcp(&nl, libc::AF_INET).ok()?;
            let after = SockSnapshot::take(fd).ok()?;
            let stable = |s: &SockSnapshot| {
                let mut f = s.tcp_info.fields();
                f.retain(|k, _| !CLOCK_FIELDS.contains(k));
                (f, s.inq, s.outq)
            };
            (stable(&before) == stable(&after)).then(|| (before.tcp_info.clone(), find(&dump, src, dst), after))
        })?;
        let Some(msg) = msg else {
            return Err(CaseError::Harness(format!(
                "INET_DIAG dump has no socket {src} -> {dst}"
            )));
        };
        let info = msg.info.clone().unwrap_or_else(|| TcpInfo::from_bytes(&[]));
        ctx.check_eq(
            format!("{side}.getsockopt_len"),
            want_len as i64,
            before.len() as i64,
            "sizeof(struct tcp_info) for this kernel version (include/uapi/linux/tcp.h history)",
        );
        ctx.check_eq(
            format!("{side}.diag_len"),
            before.len() as i64,
            info.len() as i64,
            "tcp_diag_get_info copies the same struct as do_tcp_getsockopt",
        );
        ctx.check_eq(format!("{side}.diag_state"), 1, msg.state, "TCP_ESTABLISHED");
        ctx.check_eq(
            format!("{side}.idiag_rqueue"),
            snap.inq as i64,
            msg.rqueue as i64,
            "tcp_diag_get_info: rcv_nxt - copied_seq, as SIOCINQ",
        );
        ctx.check_eq(
            format!("{side}.idiag_wqueue"),
            snap.outq as i64,
            msg.wqueue as i64,
            "tcp_diag_get_info: write_seq - snd_una, as SIOCOUTQ",
        );
        crate::volatile(ctx, &format!("{side}.idiag_wqueue"));
        let theirs = info.fields();
        let mut compared = 0;
        for (name, ours) in before.fields() {
            if CLOCK_FIELDS.contains(&name) {
                continue;
            }
            compared += 1;
            ctx.check_eq(
                format!("{side}.tcpi_{name}"),
                ours,
                theirs.get(name).copied(),
                "getsockopt(TCP_INFO) and INET_DIAG_INFO are both tcp_get_info() of the same socket",
            );
            // The values (rtt, rates, segment counts) vary from run to run;
            // the claim is that both interfaces agree.
            crate::volatile(ctx, &format!("{side}.tcpi_{name}"));
        }
        ctx.observe(format!("{side}.fields_compared"), compared);
    }
    ctx.observe_volatile("written", written);
    Ok(())
}
