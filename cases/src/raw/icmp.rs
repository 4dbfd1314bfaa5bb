//! raw.icmp_echo and raw.icmp_filter: ping by hand on a SOCK_RAW
//! IPPROTO_ICMP socket (seed 004, "Send a ping implementation").

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use kharness::wait::wait_for;
use kharness::{sys, CaseDef, CaseError, Ctx};
use nix::sys::socket::{self, MsgFlags, SockaddrIn};

use super::{check_mib, inet_checksum, ip_out, mib, net3, sum16, wait_mib, Net3Opts, QUIET, RECEIVER, WAIT};

/// `SOL_RAW` (linux/socket.h).
const SOL_RAW: i32 = 255;
/// `ICMP_FILTER` (linux/icmp.h), the only SOL_RAW option of an ICMP socket.
const ICMP_FILTER: i32 = 1;
const ICMP_ECHOREPLY: u8 = 0;
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_ECHO_REQUEST: u8 = 8;

/// Payload of the seed's ping: 56 bytes of 0xa5.
const PAYLOAD: [u8; 56] = [0xa5; 56];

/// An ICMP echo request with our own checksum (the seed leaves it out:
/// "Missing here is sequence number, checksum computation").
pub(crate) fn echo_request(id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![ICMP_ECHO_REQUEST, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    let c = inet_checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// What a raw ICMP socket returned: the IPv4 header is always included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpSeen {
    /// IPv4 source address.
    pub src: [u8; 4],
    /// ICMP type.
    pub ty: u8,
    /// ICMP code.
    pub code: u8,
    /// Echo identifier.
    pub id: u16,
    /// Echo sequence number.
    pub seq: u16,
    /// Bytes after the 8-byte ICMP header.
    pub payload: Vec<u8>,
    /// The ICMP checksum verifies.
    pub checksum_ok: bool,
}

/// Decodes what a raw `IPPROTO_ICMP` socket returned (IPv4 header, then
/// ICMP); `None` when it is too short to hold both, or when the header length
/// is below the 20 bytes of an IPv4 header.
pub fn parse_icmp(b: &[u8]) -> Option<IcmpSeen> {
    let ihl = usize::from(b.first()? & 0x0f) * 4;
    if ihl < 20 {
        return None;
    }
    let icmp = b.get(ihl..)?;
    if icmp.len() < 8 {
        return None;
    }
    Some(IcmpSeen {
        src: [b[12], b[13], b[14], b[15]],
        ty: icmp[0],
        code: icmp[1],
        id: u16::from_be_bytes([icmp[4], icmp[5]]),
        seq: u16::from_be_bytes([icmp[6], icmp[7]]),
        payload: icmp[8..].to_vec(),
        checksum_ok: sum16(icmp, 0) == 0xffff,
    })
}

/// One non-blocking recv on a raw socket.
fn recv_now(fd: &OwnedFd) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 2048];
    let n = sys::recv(fd.as_fd(), &mut buf, libc::MSG_DONTWAIT)?;
    buf.truncate(n);
    Ok(buf)
}

/// Polls a raw socket until an ICMP message arrives.
fn recv_icmp(fd: &OwnedFd) -> Option<IcmpSeen> {
    wait_for("an ICMP message on the raw socket", WAIT, || {
        recv_now(fd).ok().and_then(|b| parse_icmp(&b))
    })
    .ok()
}

fn send_echo(fd: &OwnedFd, id: u16, seq: u16) -> Result<(), CaseError> {
    let pkt = echo_request(id, seq, &PAYLOAD);
    let to = SockaddrIn::new(RECEIVER[0], RECEIVER[1], RECEIVER[2], RECEIVER[3], 0);
    socket::sendto(fd.as_raw_fd(), &pkt, &to, MsgFlags::empty())?;
    Ok(())
}

/// The echo's counters, by namespace (`icmp_out_count()` from
/// `__ip_make_skb()` for both requests and replies, `icmp_rcv()` for input;
/// /proc/net/snmp prints Icmp.OutEchos etc. from the IcmpMsg per-type
/// counters).
fn sender_model(before: &kharness::procfs::Mib) -> Vec<(&'static str, i64)> {
    let mut v = vec![
        ("Icmp.OutMsgs", 1),
        ("Icmp.OutEchos", 1),
        ("IcmpMsg.OutType8", 1),
        ("Icmp.InMsgs", 1),
        ("Icmp.InEchoReps", 1),
        ("IcmpMsg.InType0", 1),
        ("Ip.InReceives", 1),
        ("Ip.InDelivers", 1),
    ];
    v.extend(ip_out(before, 1));
    v
}

fn receiver_model(before: &kharness::procfs::Mib) -> Vec<(&'static str, i64)> {
    let mut v = vec![
        ("Icmp.InMsgs", 1),
        ("Icmp.InEchos", 1),
        ("IcmpMsg.InType8", 1),
        ("Icmp.OutMsgs", 1),
        ("Icmp.OutEchoReps", 1),
        ("IcmpMsg.OutType0", 1),
        ("Ip.InReceives", 1),
        ("Ip.InDelivers", 1),
    ];
    v.extend(ip_out(before, 1));
    v
}

const MIB_SOURCE: &str = "one echo: icmp_echo() answers with icmp_reply(); icmp_rcv() counts InMsgs and the \
    per-type In counter, __ip_make_skb() -> icmp_out_count() the Out ones; ip_rcv_core() counts InReceives, \
    ip_protocol_deliver_rcu() InDelivers, ip_local_out() OutRequests";

/// raw.icmp_echo
pub static ICMP_ECHO: CaseDef = CaseDef {
    id: "raw.icmp_echo",
    variants: &[],
    summary: "ping by hand: a raw ICMP echo request with our own checksum gets one reply, and both namespaces count it",
    drives: "socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) in the sender namespace; sendto(198.18.0.2) of an \
        ICMP echo request (type 8, id = our pid, seq 1, the seed's 56 bytes of 0xa5) whose checksum we \
        compute (RFC 1071); then recv() on the same socket until the reply arrives.",
    observes: "The reply as the raw socket returns it (IPv4 header included: source, type, code, id, \
        seq, payload, checksum); the Ip/Icmp/IcmpMsg MIB of both namespaces before and after.",
    predicts: "One reply from 198.18.0.2: type 0 code 0, same id, seq and payload, valid checksum. \
        Sender: Icmp OutMsgs/OutEchos +1, InMsgs/InEchoReps +1 (IcmpMsg OutType8, InType0), Ip \
        OutRequests(/OutTransmits) +1, InReceives/InDelivers +1. Receiver: Icmp InMsgs/InEchos +1, \
        OutMsgs/OutEchoReps +1 (IcmpMsg InType8, OutType0), Ip InReceives/InDelivers/OutRequests +1. No \
        other Ip, Icmp, Udp or Tcp counter moves in either namespace.",
    why: "raw_sendmsg() sends our bytes as the ICMP message behind a kernel-built IP header \
        (ip_append_data + ip_push_pending_frames; __ip_make_skb() calls icmp_out_count()). The \
        receiver's icmp_rcv() dispatches type 8 to icmp_echo(), which copies id, seq and data into \
        icmp_reply() (net.ipv4.icmp_echo_ignore_all is 0 in a new namespace). On the way back, \
        ip_local_deliver_finish() -> raw_local_deliver() hands a clone to every raw socket bound to \
        protocol 1 before icmp_rcv() counts the reply; raw sockets always receive the IP header \
        (raw(7)).",
    kernels: "Unchanged since 2.6. Ip.OutTransmits exists from 6.3 (where it is predicted only when \
        the kernel exports it); Icmp.InCsumErrors from 3.10, Icmp.OutRateLimit* from 6.0.",
    shell: "ip netns exec SENDER ping -c1 198.18.0.2; nstat -az 'Icmp*'",
    source: "seed 004 (RAW sockets: ping)",
    timeout: Duration::from_secs(10),
    run: run_echo,
};

fn run_echo(ctx: &mut Ctx) -> Result<(), CaseError> {
    // Volatile for `report diff`: the echo id is the socket's ephemeral port.
    ctx.mark_volatile("reply.id");
    let net = net3(Net3Opts::default())?;
    let s_before = mib(net.sender())?;
    let r_before = mib(net.receiver())?;
    let fd = net.sender().socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP)?;
    let id = std::process::id() as u16;
    send_echo(&fd, id, 1)?;
    let reply = recv_icmp(&fd);
    let want = IcmpSeen {
        src: RECEIVER,
        ty: ICMP_ECHOREPLY,
        code: 0,
        id,
        seq: 1,
        payload: PAYLOAD.to_vec(),
        checksum_ok: true,
    };
    ctx.check_eq(
        "reply.src",
        "198.18.0.2",
        reply.as_ref().map(|r| std::net::Ipv4Addr::from(r.src).to_string()),
        "icmp_reply() answers from the address the request was sent to",
    );
    ctx.check_eq(
        "reply.type",
        want.ty,
        reply.as_ref().map(|r| r.ty),
        "icmp_echo(): ICMP_ECHOREPLY",
    );
    ctx.check_eq("reply.code", 0, reply.as_ref().map(|r| r.code), "icmp_echo(): code 0");
    ctx.check_eq(
        "reply.id",
        want.id,
        reply.as_ref().map(|r| r.id),
        "icmp_echo() copies the id",
    );
    crate::volatile(ctx, "reply.id");
    ctx.check_eq(
        "reply.seq",
        1,
        reply.as_ref().map(|r| r.seq),
        "icmp_echo() copies the sequence number",
    );
    ctx.check_eq(
        "reply.payload_intact",
        true,
        reply.as_ref().map(|r| r.payload == want.payload),
        "icmp_echo() copies the data",
    );
    ctx.check_eq(
        "reply.checksum_ok",
        true,
        reply.as_ref().map(|r| r.checksum_ok),
        "icmp_reply() computes the checksum (RFC 792)",
    );
    // Only one reply: nothing else is queued.
    ctx.check_eq(
        "replies_after_first",
        "EAGAIN",
        outcome_name(recv_now(&fd)),
        "one request, one reply",
    );
    let s_after = wait_mib(net.sender(), &s_before, &[("Icmp.InEchoReps", 1), ("Ip.InDelivers", 1)])?;
    let r_after = mib(net.receiver())?;
    check_mib(
        ctx,
        "sender",
        &s_before,
        &s_after,
        &sender_model(&s_before),
        QUIET,
        MIB_SOURCE,
    );
    check_mib(
        ctx,
        "receiver",
        &r_before,
        &r_after,
        &receiver_model(&r_before),
        QUIET,
        MIB_SOURCE,
    );
    Ok(())
}

fn outcome_name<T>(r: io::Result<T>) -> String {
    super::outcome(&r)
}

/// raw.icmp_filter
pub static ICMP_FILTER_CASE: CaseDef = CaseDef {
    id: "raw.icmp_filter",
    variants: &[],
    summary: "ICMP_FILTER keeps echo replies from a raw socket while the counters show they arrived",
    drives: "Three SOCK_RAW IPPROTO_ICMP sockets in the sender: A with setsockopt(SOL_RAW, ICMP_FILTER, \
        1 << ICMP_ECHOREPLY), B with 1 << ICMP_DEST_UNREACH (the seed's example), C with none; one echo \
        request to 198.18.0.2 from C.",
    observes: "getsockopt(ICMP_FILTER) on A and B; what each socket receives (non-blocking recv); the \
        Icmp/IcmpMsg/Ip MIB of both namespaces.",
    predicts: "getsockopt returns each mask as set. C and B receive the echo reply; A's recv says EAGAIN; \
        yet the sender's Icmp.InEchoReps and IcmpMsg.InType0 are +1 exactly as in raw.icmp_echo (the \
        reply arrived, the filter only kept it from A), with the same counters as raw.icmp_echo in \
        both namespaces.",
    why: "raw_v4_input() skips a socket when icmp_filter() says so: for an ICMP type < 32 it tests \
        (1 << type) & raw_sk(sk)->filter.data; the filter is per socket and runs after the packet was \
        accepted and counted by the IP layer, and icmp_rcv() counts the reply afterwards regardless. \
        raw_seticmpfilter()/raw_geticmpfilter() store and return the 32-bit mask.",
    kernels: "Unchanged since 2.2; ICMP_FILTER exists only for IPv4 raw sockets of protocol ICMP \
        (EOPNOTSUPP otherwise; IPv6 has ICMPV6_FILTER). \
        Ip.OutTransmits (IPSTATS_MIB_OUTPKTS under its own name) is exported from 6.3 and predicted only where it is: absent on 5.10 and 6.1.",
    shell: "ip netns exec SENDER ping -c1 198.18.0.2 while a filtered raw socket reads; nstat -az 'Icmp*'",
    source: "seed 004 (RAW sockets: ICMP_FILTER, appendix D)",
    timeout: Duration::from_secs(10),
    run: run_filter,
};

fn run_filter(ctx: &mut Ctx) -> Result<(), CaseError> {
    let net = net3(Net3Opts::default())?;
    let s_before = mib(net.sender())?;
    let r_before = mib(net.receiver())?;
    let open = || net.sender().socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
    let (a, b, c) = (open()?, open()?, open()?);
    let mask_a: u32 = 1 << ICMP_ECHOREPLY;
    let mask_b: u32 = 1 << ICMP_DEST_UNREACH;
    sys::setsockopt_bytes(a.as_fd(), SOL_RAW, ICMP_FILTER, &mask_a.to_ne_bytes())?;
    sys::setsockopt_bytes(b.as_fd(), SOL_RAW, ICMP_FILTER, &mask_b.to_ne_bytes())?;
    for (name, fd, mask) in [("a", &a, mask_a), ("b", &b, mask_b)] {
        let got = sys::getsockopt_bytes(fd.as_fd(), SOL_RAW, ICMP_FILTER, 4)?;
        let got = (got.len() == 4).then(|| u32::from_ne_bytes([got[0], got[1], got[2], got[3]]));
        ctx.check_eq(
            format!("{name}.icmp_filter"),
            mask,
            got,
            "raw_geticmpfilter() returns the mask raw_seticmpfilter() stored",
        );
    }
    let id = std::process::id() as u16;
    send_echo(&c, id, 7)?;
    let got_c = recv_icmp(&c);
    ctx.check_eq(
        "c.received",
        "echo reply",
        got_c.as_ref().map(describe),
        "no filter: raw_v4_input() delivers every ICMP message",
    );
    // The counters prove the reply arrived at the sender's ICMP layer.
    let s_after = wait_mib(net.sender(), &s_before, &[("Icmp.InEchoReps", 1), ("Ip.InDelivers", 1)])?;
    let got_b = recv_now(&b).ok().and_then(|v| parse_icmp(&v));
    ctx.check_eq(
        "b.received",
        "echo reply",
        got_b.as_ref().map(describe),
        "a mask without bit 0 lets echo replies through",
    );
    ctx.check_eq(
        "a.received",
        "EAGAIN",
        outcome_name(recv_now(&a)),
        "icmp_filter(): (1 << ICMP_ECHOREPLY) & mask drops the reply for this socket",
    );
    let r_after = mib(net.receiver())?;
    check_mib(
        ctx,
        "sender",
        &s_before,
        &s_after,
        &sender_model(&s_before),
        QUIET,
        MIB_SOURCE,
    );
    check_mib(
        ctx,
        "receiver",
        &r_before,
        &r_after,
        &receiver_model(&r_before),
        QUIET,
        MIB_SOURCE,
    );
    Ok(())
}

fn describe(m: &IcmpSeen) -> String {
    match (m.ty, m.code) {
        (0, 0) => "echo reply".into(),
        (t, c) => format!("type {t} code {c}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_reply_and_rejects_short_headers() {
        let mut pkt = vec![0x45, 0, 0, 84, 0, 0, 0x40, 0, 64, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1];
        pkt.extend(echo_request(0x4242, 7, &PAYLOAD));
        let p = parse_icmp(&pkt).unwrap();
        assert_eq!(
            (p.src, p.ty, p.id, p.seq, p.payload.len()),
            ([127, 0, 0, 1], ICMP_ECHO_REQUEST, 0x4242, 7, 56)
        );
        assert!(p.checksum_ok);
        // Found by fuzz/fuzz_targets/icmp.rs: an IHL below 5 left the source
        // address (bytes 12..16) outside an 8-byte buffer, and indexing panicked.
        assert_eq!(parse_icmp(&[0, 0, 0, 0, 1, 0, 0, 0]), None);
        assert_eq!(parse_icmp(&[0x41; 12]), None);
        for n in 0..40 {
            let junk: Vec<u8> = (0..n).map(|i| (i as u8).wrapping_mul(53) | 0x40).collect();
            let _ = parse_icmp(&junk);
        }
    }
}
