//! tcp.loss

use std::os::fd::AsFd;
use std::time::Duration;

use kharness::observe::SockSnapshot;
use kharness::topology::{link_down, link_up};
use kharness::wait::wait_until;
use kharness::{CaseDef, CaseError, Ctx, Expect};

use super::{check_unacked, connect, fill, read_some, ConnOpts, Path};

/// tcp.loss
pub static LOSS: CaseDef = CaseDef {
    id: "tcp.loss",
    variants: &[],
    summary: "take the peer link down with data in flight, then up: retransmissions counted, every byte acked once",
    drives: "Across the veth pair the client fills its send buffer; the server's veth0 is set \
        down (the client end loses carrier and its queue discipline drops what it sends), and \
        set up again as soon as the client has counted a retransmission; the server then reads \
        everything.",
    observes: "Client TCP_INFO (retrans, total_retrans, bytes_retrans, bytes_acked, unacked), SIOCOUTQ, \
        SIOCOUTQNSD (also once while the link is down); \
        client Tcp.RetransSegs and the TcpExt counters of each retransmission's cause (TCPTimeouts and the \
        other first-RTO counters, TCPLossProbes, TCPFastRetrans, TCPSlowStartRetrans, TCPRetransFail); \
        server tcpi_bytes_received and the \
        bytes it read (checked against the written pattern).",
    predicts: "tcpi_total_retrans >= 1, tcpi_bytes_retrans >= 1 and Tcp.RetransSegs >= 1 \
        while the link was down, each attempt counted by its cause or as a failure (the sum of the \
        cause counters >= 1): the RTO timer, a tail loss probe or fast recovery (on a loaded machine, a \
        TCG guest of a PREEMPT_RT kernel, the veth backlog can drop a segment before the link goes down, \
        and the SACKs that follow retransmit it first; seen on Debian 6.1-rt), or TCPRetransFail when \
        the device refused the segment (a probe sent before linkwatch swapped in noop_qdisc meets \
        veth_xmit's NET_XMIT_DROP for a peer that is down; seen on 5.10, 6.1 and 6.12 under TCG); while the link is down, tcpi_unacked > 0 iff bytes are in flight \
        (SIOCOUTQ > SIOCOUTQNSD: the side of tcp.fill's rule that a settled connection never shows, met \
        whenever the window was still open when the link went down); in the end every \
        written byte is acked (bytes_acked == written + 1, SIOCOUTQ == 0) and read exactly once \
        and in order (read == written == the server's tcpi_bytes_received, pattern intact).",
    why: "Carrier loss deactivates the device's queue discipline (dev_deactivate installs \
        noop_qdisc, which drops), so segments sent while down are lost; tcp_retransmit_timer() \
        fires after the RTO, counts TCPTimeouts and retransmits through \
        __tcp_retransmit_skb(); before it, a tail loss probe (tcp_send_loss_probe, \
        TCPLossProbes) may already have retransmitted the last segment through \
        __tcp_retransmit_skb(), which counts RETRANSSEGS, total_retrans and bytes_retrans. The \
        receiver's rcv_nxt only advances over new bytes, so duplicates never reach the \
        application.",
    kernels: "tcpi_bytes_retrans needs 4.19. The RTO floor (200 ms) makes this case take \
        about half a second on every version.",
    shell: "ip netns exec khpair-server ip link set veth0 down; watch nstat -az TcpRetransSegs until it moves; ... ip link set veth0 up",
    source: "seed 002 (TCP_INFO retransmission fields)",
    timeout: Duration::from_secs(40),
    run,
};

/// The TcpExt counters that say why a retransmission was attempted, or
/// that it failed. RETRANSSEGS, total_retrans and bytes_retrans are counted
/// in __tcp_retransmit_skb before the segment reaches the device, so an
/// attempt the device refuses is a retransmission to them, and to these a
/// TCPRetransFail.
/// - TCPTimeouts: tcp_retransmit_timer, first RTO, nothing SACKed;
///   TCPSackFailures (SACKed data or Disorder), TCPSackRecoveryFail (in
///   Recovery), TCPLossFailures (in Loss) instead; counted whether or not
///   the retransmission then goes out.
/// - TCPLossProbes: tcp_send_loss_probe, only when the probe went out.
/// - TCPFastRetrans (outside Loss), TCPSlowStartRetrans (in Loss):
///   tcp_xmit_retransmit_queue, only when the segment went out.
/// - TCPRetransFail: __tcp_retransmit_skb, when the transmit failed
///   (not for -EBUSY).
const RETRANS_CAUSES: [&str; 8] = [
    "TCPTimeouts",
    "TCPSackFailures",
    "TCPSackRecoveryFail",
    "TCPLossFailures",
    "TCPLossProbes",
    "TCPFastRetrans",
    "TCPSlowStartRetrans",
    "TCPRetransFail",
];

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    // Volatile for `report diff`: how much is written before the deadline depends on the machine.
    ctx.mark_volatile("written");
    ctx.mark_volatile("server.read");
    ctx.mark_volatile("client.bytes_acked");
    ctx.mark_volatile("server.tcpi_bytes_received");
    let mut conn = connect(Path::Veth, &ConnOpts::default())?;
    let before = conn.topo.ns(conn.client_ns).mib()?;
    let mut written = 0;
    let mut read = 0;
    fill(&mut conn.client, &mut written, 4 << 20)?;
    let server_ns = conn.topo.ns(conn.server_ns);
    let idx = conn.topo.ifindex(conn.server_ns, "veth0");
    link_down(server_ns, idx)?;
    let cfd = conn.client.as_fd();
    let down = wait_until(
        "the client to retransmit while the link is down",
        Duration::from_secs(15),
        || SockSnapshot::take(cfd).ok(),
        |s| s.as_ref().and_then(|s| s.ti("total_retrans")).unwrap_or(0) >= 1,
    );
    link_up(server_ns, idx)?;
    let client_idx = conn.topo.ifindex(conn.client_ns, "veth0");
    kharness::topology::wait_oper_up(server_ns, idx, Duration::from_secs(10))?;
    kharness::topology::wait_oper_up(conn.topo.ns(conn.client_ns), client_idx, Duration::from_secs(10))?;
    let down = down?.expect("a snapshot");
    ctx.observe("retrans_seen_while_down", down.ti("total_retrans"));
    // With the link down nothing sent since can be acknowledged: bytes in
    // flight stay in flight. Whether any are depends on whether the window
    // had closed (and everything was acked) before the link went down, so
    // the amount is observed, and tcp.fill's rule is checked on it: here it
    // meets its "> 0" side whenever bytes are in flight.
    // Volatile for `report diff`: how much is in flight depends on when
    // the link went down.
    ctx.observe_volatile("down.client.in_flight", i64::from(down.outq - down.outq_nsd));
    check_unacked(ctx, "down.client.tcpi_unacked", &down);
    crate::volatile(ctx, "down.client.tcpi_unacked");
    // Drain: read whatever arrives until every written byte is read and acked.
    let mut corrupt = None;
    let server = &mut conn.server;
    let done = wait_until(
        "every written byte to be read and acknowledged",
        Duration::from_secs(20),
        || {
            if let Ok((_, bad)) = read_some(server, &mut read, u64::MAX) {
                corrupt = corrupt.or(bad);
            }
            let s = SockSnapshot::take(cfd).ok();
            (read, s.map(|s| s.outq).unwrap_or(-1))
        },
        |(r, outq)| *r == written && *outq == 0,
    );
    let c = SockSnapshot::take(cfd)?;
    let s = SockSnapshot::take(conn.server.as_fd())?;
    let after = conn.topo.ns(conn.client_ns).mib()?;
    let delta = before.delta(&after);
    if let Err(e) = done {
        ctx.note(e.to_string());
    }
    // Every TCP counter that moved, for whoever reads a failure: which
    // path retransmitted is in them.
    let moved: Vec<String> = delta
        .iter()
        .filter(|(k, _)| k.starts_with("TcpExt.") || k.starts_with("Tcp."))
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    ctx.note(format!("client counters that moved: {}", moved.join(", ")));
    ctx.observe_volatile("written", written);
    ctx.check(
        "client.tcpi_total_retrans",
        Expect::Ge(1),
        c.ti("total_retrans"),
        "tcp_retransmit_timer -> tcp_retransmit_skb counts total_retrans",
    );
    crate::volatile(ctx, "client.tcpi_total_retrans");
    ctx.check(
        "client.tcpi_bytes_retrans",
        Expect::Ge(1),
        c.ti("bytes_retrans"),
        "__tcp_retransmit_skb adds the segment's length to bytes_retrans",
    );
    crate::volatile(ctx, "client.tcpi_bytes_retrans");
    ctx.check(
        "client.Tcp.RetransSegs",
        Expect::Ge(1),
        delta.get("Tcp.RetransSegs").copied().unwrap_or(0),
        "__tcp_retransmit_skb counts TCP_MIB_RETRANSSEGS",
    );
    crate::volatile(ctx, "client.Tcp.RetransSegs");
    // Every retransmission attempt is counted once by the path that made
    // it, or as a failure (see RETRANS_CAUSES).
    let mut causes = 0;
    for counter in RETRANS_CAUSES {
        let n = delta.get(&format!("TcpExt.{counter}")).copied().unwrap_or(0);
        causes += n;
        ctx.observe_volatile(&format!("client.TcpExt.{counter}"), n);
    }
    ctx.check(
        "client.TcpExt.retransmission_causes",
        Expect::Ge(1),
        causes,
        "every retransmission attempt is counted by its cause or as a failure: the RTO timer \
         (tcp_retransmit_timer counts TCPTIMEOUTS, or TCPSACKFAILURES/TCPSACKRECOVERYFAIL/TCPLOSSFAILURES \
         when SACKed data or a recovery was pending), a tail loss probe that went out \
         (tcp_send_loss_probe counts TCPLOSSPROBES), fast recovery after SACKs of a loss before the link \
         went down (tcp_xmit_retransmit_queue counts TCPFASTRETRANS, or TCPSLOWSTARTRETRANS in \
         TCP_CA_Loss), or an attempt the device refused (__tcp_retransmit_skb counts TCPRETRANSFAIL: \
         veth_xmit returns NET_XMIT_DROP for a peer that is down, 151e887d8ff9 in 6.6 and stable, until \
         linkwatch installs noop_qdisc); which comes first depends on timing",
    );
    crate::volatile(ctx, "client.TcpExt.retransmission_causes");
    ctx.check_eq(
        "client.bytes_acked",
        written as i64 + 1,
        c.ti("bytes_acked").map(|v| v as i64),
        "every written byte (and the SYN) is finally acknowledged",
    );
    crate::volatile(ctx, "client.bytes_acked");
    ctx.check_eq("client.siocoutq", 0, c.outq, "nothing left in the send queue");
    crate::volatile(ctx, "server.read");
    ctx.check_eq("server.read", written, read, "every byte delivered to the application");
    ctx.check_eq(
        "server.tcpi_bytes_received",
        written as i64,
        s.ti("bytes_received").map(|v| v as i64),
        "rcv_nxt advances only over new bytes: duplicates are not received twice",
    );
    crate::volatile(ctx, "server.tcpi_bytes_received");
    ctx.check_eq(
        "server.pattern_intact",
        true,
        corrupt.is_none(),
        "in order, no byte duplicated or lost",
    );
    Ok(())
}
