//! tcp.fill and tcp.drain.

use std::time::Duration;

use kharness::{CaseDef, CaseError, Ctx, Expect};

use super::{check_queue_model, connect, fill, read_some, settle, wait_refill, ConnOpts, Path, SETTLE};

/// Receiver's requested SO_RCVBUF: small, so the window closes quickly.
const RCVBUF: i32 = 4096;
/// Upper bound on what the sender writes (it stops at EAGAIN long before).
const CAP: u64 = 64 << 20;

/// tcp.fill
pub static FILL: CaseDef = CaseDef {
    id: "tcp.fill",
    variants: &["veth", "loopback"],
    summary: "fill a TCP send buffer against a receiver that never reads; the queue counters agree",
    drives: "A client connects across the veth pair (or over lo with the server on the same \
        namespace) to a server whose listener set SO_RCVBUF=4096 and which never reads. The \
        client writes a byte pattern non-blocking until EAGAIN.",
    observes: "Client: SO_SNDBUF, SIOCOUTQ, SIOCOUTQNSD, TCP_INFO (unacked, notsent_bytes, \
        bytes_acked, bytes_sent, bytes_retrans), SO_MEMINFO. Server: SIOCINQ, SO_RCVBUF, \
        SO_MEMINFO, TCP_INFO bytes_received. Read once the connection has settled: nothing in \
        flight and two back-to-back snapshots of both ends equal.",
    predicts: "written + 1 == tcpi_bytes_acked + SIOCOUTQ; SIOCOUTQNSD == tcpi_notsent_bytes; \
        tcpi_unacked == 0, as nothing is in flight once settled (packets_out is 0; the other side of \
        the rule, tcpi_unacked > 0 while bytes are in flight, is met in tcp.loss with the link down); receiver SIOCINQ == tcpi_bytes_received == bytes \
        sent (written - SIOCOUTQNSD); bytes_sent - bytes_retrans == bytes sent; SIOCOUTQ <= \
        wmem_queued <= SO_SNDBUF + one skb; SO_SNDBUF/SO_RCVBUF equal their SO_MEMINFO slots; the \
        fill really filled: EAGAIN was returned and bytes remain unsent; the receiver's buffer \
        is 2 x 4096.",
    why: "SIOCOUTQ is write_seq - snd_una and SIOCOUTQNSD write_seq - snd_nxt (tcp_ioctl); \
        tcpi_notsent_bytes is the same difference (tcp_get_info). tcp_snd_una_update() adds every \
        acknowledged sequence number to bytes_acked, the SYN's included, hence the +1. The \
        catalog states 'OUTQ - OUTQNSD == in flight == receiver INQ once settled'; the kernel \
        acknowledges everything the receiver queued, so once settled in flight is 0 and the \
        receiver's INQ equals the bytes *sent* (written - OUTQNSD): that is the equality checked. \
        sk_stream_memory_free() gates each new skb on sk_wmem_queued < sk_sndbuf, so the queue \
        overshoots SO_SNDBUF by at most one skb.",
    kernels: "tcpi_notsent_bytes needs 4.6, bytes_sent/bytes_retrans 4.19 (absent fields are \
        reported absent and fail the check that needs them). No behavioural difference known \
        from 5.10 on.",
    shell: "ip netns exec khpair-client ss -tmi (Send-Q = SIOCOUTQ, notsent:, bytes_acked:, skmem:)",
    source: "seed 000/001 (TCP socket send buffer deep dive), seed 002 (TCP_INFO)",
    timeout: Duration::from_secs(20),
    run: run_fill,
};

fn run_fill(ctx: &mut Ctx) -> Result<(), CaseError> {
    let path = Path::from_variant(ctx.variant);
    let mut conn = connect(
        path,
        &ConnOpts {
            server_rcvbuf: Some(RCVBUF),
            ..Default::default()
        },
    )?;
    let mut written = 0;
    let eagain = fill(&mut conn.client, &mut written, CAP)?;
    ctx.check_eq(
        "fill.eagain",
        true,
        eagain,
        "a non-blocking write on a full send buffer returns EAGAIN (sk_stream_wait_memory with timeo 0)",
    );
    let p = settle(&conn, SETTLE)?;
    check_queue_model(ctx, "fill", &p, written, 0);
    ctx.check(
        "fill.client.siocoutqnsd",
        Expect::Gt(0),
        p.c.outq_nsd,
        "the receiver's window (bounded by its 8 KiB buffer) closes long before the sender's buffer is full, so written bytes stay unsent",
    );
    ctx.check_eq(
        "fill.server.so_rcvbuf",
        2 * RCVBUF as i64,
        p.s.rcvbuf as i64,
        "SO_RCVBUF stores twice the request (sock_setsockopt -> __sock_set_rcvbuf), inherited by the accepted socket",
    );
    Ok(())
}

/// tcp.drain
pub static DRAIN: CaseDef = CaseDef {
    id: "tcp.drain",
    variants: &["veth", "loopback"],
    summary: "drain a filled connection step by step; the fill equalities hold after every step",
    drives: "tcp.fill, then the server reads 3000 bytes at a time (or 1/16 of the bytes written, when the \
        send buffer autotuned to megabytes as on loopback), checking the byte pattern, \
        until all written bytes have been read; the connection settles after each read.",
    observes: "The tcp.fill figures after each settled step (stepN.*), the bytes read and \
        whether the pattern was intact.",
    predicts: "Every tcp.fill equality at every step (with the bytes read added to the \
        receiver side); tcpi_bytes_acked and the receiver's tcpi_bytes_received never decrease; \
        at the end every written byte was read, intact, and SIOCOUTQ is 0.",
    why: "Reading frees receive space; tcp_cleanup_rbuf() announces the larger window when it \
        grows enough, the sender sends more, and the acknowledgements move snd_una. The \
        counters are sequence-number differences, so they are monotonic and the equalities hold \
        in every quiescent state.",
    kernels: "As tcp.fill.",
    shell: "ip netns exec khpair-client ss -tmi, repeated while the server reads",
    source: "seed 000/001, seed 002",
    timeout: Duration::from_secs(30),
    run: run_drain,
};

fn run_drain(ctx: &mut Ctx) -> Result<(), CaseError> {
    // Volatile for `report diff`: how many skbs the receiver drops while it drains depends on scheduling.
    ctx.mark_volatile("*.meminfo.drops");
    // Volatile for `report diff`: the send buffer autotunes, so its size and the queue at each step vary.
    ctx.mark_volatile("*.sndbuf");
    ctx.mark_volatile("*.so_sndbuf");
    ctx.mark_volatile("*.so_sndbuf_vs_meminfo");
    ctx.mark_volatile("*.fwd_alloc");
    ctx.mark_volatile("*.wmem_queued");
    let path = Path::from_variant(ctx.variant);
    let mut conn = connect(
        path,
        &ConnOpts {
            server_rcvbuf: Some(RCVBUF),
            ..Default::default()
        },
    )?;
    let mut written = 0;
    fill(&mut conn.client, &mut written, CAP)?;
    let mut read = 0u64;
    let mut last_acked = 0u64;
    let mut last_received = 0u64;
    let mut step = 0;
    let mut corrupt = None;
    let mut monotonic = true;
    let mut p = settle(&conn, SETTLE)?;
    // 3000 bytes a step, or 1/16 of what was written when the send buffer
    // autotuned to megabytes (loopback), so a drain takes ~16-40 steps.
    let chunk = (written / 16).max(3000);
    ctx.observe_volatile("chunk", chunk);
    // Bounded: each step reads what is queued, and a queue that stops
    // refilling ends the loop through the settle below.
    while read < written && step < 100_000 {
        step += 1;
        let (got, bad) = read_some(&mut conn.server, &mut read, chunk)?;
        corrupt = corrupt.or(bad);
        if got == 0 {
            if !wait_refill(&conn) {
                break;
            }
            continue;
        }
        p = settle(&conn, SETTLE)?;
        let acked = p.c.ti("bytes_acked").unwrap_or(0);
        let received = p.s.ti("bytes_received").unwrap_or(0);
        monotonic &= acked >= last_acked && received >= last_received;
        last_acked = acked;
        last_received = received;
        if !ctx.mismatches_so_far().is_empty() {
            break;
        }
        // Check a sample of steps in full (first ten, then every 16th) to
        // keep the report readable; every step is still checked for
        // monotonicity and the final state in full.
        if step <= 10 || step % 16 == 0 {
            check_queue_model(ctx, &format!("step{step}"), &p, written, read);
        }
    }
    check_queue_model(ctx, "final", &p, written, read);
    ctx.observe_volatile("steps", step);
    ctx.check_eq("final.read", written, read, "every written byte is eventually read");
    ctx.check_eq(
        "final.client.siocoutq",
        0,
        p.c.outq,
        "once everything is read and acked, nothing is queued",
    );
    ctx.check_eq(
        "pattern_intact",
        true,
        corrupt.is_none(),
        "TCP delivers the byte stream in order, without loss or duplication",
    );
    if let Some(off) = corrupt {
        ctx.observe("first_corrupt_offset", off);
    }
    ctx.check_eq(
        "counters_monotonic",
        true,
        monotonic,
        "bytes_acked and bytes_received are sums of sequence advances: they never decrease",
    );
    Ok(())
}
