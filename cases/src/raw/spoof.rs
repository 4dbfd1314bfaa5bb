//! raw.hdrincl_spoof, raw.ipproto_raw, raw.rp_filter, raw.nonlocal_bind:
//! packets whose source address the sender does not own (seed 004's UDP
//! spoofing example, seed 003's "bind to a non local address").

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use kharness::wait::wait_for;
use kharness::{sys, CaseDef, CaseError, Ctx};
use nix::sys::socket::{self, MsgFlags, SockaddrIn};

use super::{
    check_mib, drain, errno_name, ip_out, ip_out_hdrincl, mib, net3, outcome, port_of, recv_n, recv_wait, sa, sum16,
    udp_bound, udp_packet, Net3, Net3Opts, QUIET, RECEIVER, SENDER, THIRD, UNROUTABLE, WAIT,
};

/// Every counter of the namespace whose address is forged: none may move.
const ALL: &[&str] = &["Ip", "Icmp", "Udp", "Tcp"];

/// A raw IPv4 socket of `proto` in the sender, with IP_HDRINCL set.
fn hdrincl_socket(net: &Net3, proto: i32) -> Result<OwnedFd, CaseError> {
    let fd = net.sender().socket(libc::AF_INET, libc::SOCK_RAW, proto)?;
    sys::setsockopt_int(fd.as_fd(), libc::IPPROTO_IP, libc::IP_HDRINCL, 1)?;
    Ok(fd)
}

/// sendto() of a complete IPv4 packet to its destination address.
fn send_ip(fd: &OwnedFd, pkt: &[u8]) -> io::Result<usize> {
    let d = [pkt[16], pkt[17], pkt[18], pkt[19]];
    socket::sendto(
        fd.as_raw_fd(),
        pkt,
        &SockaddrIn::new(d[0], d[1], d[2], d[3], 0),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)
}

/// raw.hdrincl_spoof
pub static HDRINCL_SPOOF: CaseDef = CaseDef {
    id: "raw.hdrincl_spoof",
    variants: &[],
    summary: "IP_HDRINCL with a forged source: the receiver's recvfrom names the third namespace",
    drives: "In the sender, socket(AF_INET, SOCK_RAW, IPPROTO_UDP) with IP_HDRINCL; two IPv4+UDP packets \
        built with etherparse (checksums computed) from 198.18.1.3:40000 (the third namespace's address) to \
        the receiver's UDP socket on 198.18.0.2; the second with its IP total length set to 0xffff and its \
        header checksum to 0x1234. A raw IPPROTO_UDP socket in the receiver watches the headers.",
    observes: "The receiver's recvfrom() address and payloads; the headers its raw socket sees (source, \
        total length, header checksum); the MIB of all three namespaces.",
    predicts: "Both datagrams delivered from 198.18.1.3:40000 with their payloads; on the wire both carry \
        a correct total length and a valid header checksum (the kernel rewrote the bogus ones). Receiver Udp \
        InDatagrams +2, Ip InReceives/InDelivers +2; sender Ip OutTransmits +2 but OutRequests +0 (6.3+, \
        see kernels) and no Udp counter (the UDP layer never saw the packets); the third namespace: no \
        counter moves at all.",
    why: "raw_send_hdrinc() sends the caller's header as is except that it fills a zero saddr and id and \
        always rewrites tot_len = htons(length) and recomputes iph->check with ip_fast_csum(); it never \
        checks that saddr is local (inet_sk_flowi_flags() sets FLOWI_FLAG_ANYSRC for hdrincl sockets). \
        With rp_filter 0 the receiver's fib_validate_source() takes its fast path and accepts any \
        non-local source; __udp4_lib_rcv() queues the datagram and udp_recvmsg() reports \
        ip_hdr(skb)->saddr and counts InDatagrams when it is read.",
    kernels: "Delivery unchanged since 2.6 for IPv4. Counting differs: up to 6.2 the counter printed \
        as OutRequests was IPSTATS_MIB_OUTPKTS, counted in ip_output() for every packet, hdrincl ones \
        included; since 6.3 OutRequests is IPSTATS_MIB_OUTREQUESTS, counted in __ip_local_out(), which \
        raw_send_hdrinc() does not call (it runs NF_HOOK(LOCAL_OUT) -> dst_output() itself), and the \
        old counter is printed as OutTransmits. The model predicts OutRequests 0 / OutTransmits +2 where \
        the kernel exports OutTransmits, OutRequests +2 elsewhere. (IPv6's rawv6_send_hdrinc() counts \
        OUTREQUESTS explicitly.)",
    shell: "ip netns exec SENDER nping --udp -S 198.18.1.3 -g 40000 -p PORT 198.18.0.2; ip netns exec RECEIVER tcpdump -ni r0 udp",
    source: "seed 004 (RAW sockets: IP_HDRINCL, spoofing)",
    timeout: Duration::from_secs(10),
    run: run_hdrincl,
};

fn run_hdrincl(ctx: &mut Ctx) -> Result<(), CaseError> {
    let net = net3(Net3Opts::default())?;
    let rx = udp_bound(net.receiver(), RECEIVER, 0)?;
    let port = port_of(&rx)?;
    let watch = net
        .receiver()
        .socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_UDP)?;
    let before = [mib(net.sender())?, mib(net.receiver())?, mib(net.third())?];
    let tx = hdrincl_socket(&net, libc::IPPROTO_UDP)?;
    let p1 = udp_packet(THIRD, RECEIVER, 40000, port, b"spoofed datagram 1");
    let mut p2 = udp_packet(THIRD, RECEIVER, 40000, port, b"spoofed datagram 2, bogus header");
    p2[2..4].copy_from_slice(&0xffffu16.to_be_bytes());
    p2[10..12].copy_from_slice(&0x1234u16.to_be_bytes());
    ctx.check_eq(
        "sendto.1",
        p1.len() as i64,
        send_ip(&tx, &p1)
            .map(|n| n as i64)
            .map_err(|e| errno_name(&e))
            .unwrap_or(-1),
        "raw_sendmsg() returns the length sent",
    );
    ctx.check_eq(
        "sendto.2",
        p2.len() as i64,
        send_ip(&tx, &p2)
            .map(|n| n as i64)
            .map_err(|e| errno_name(&e))
            .unwrap_or(-1),
        "raw_sendmsg() returns the length sent",
    );
    let got = recv_n(&rx, 2);
    for (i, want) in [(1usize, &p1), (2, &p2)] {
        let d = got.get(i - 1);
        ctx.check_eq(
            format!("recvfrom.{i}.from"),
            "198.18.1.3:40000",
            d.map(|(_, a)| a.to_string()),
            "udp_recvmsg() reports the packet's source address: the forged one",
        );
        ctx.check_eq(
            format!("recvfrom.{i}.payload_intact"),
            true,
            d.map(|(p, _)| p[..] == want[28..]),
            "the payload after the 28 header bytes arrives unchanged",
        );
    }
    // What went over the wire, as the receiver's raw socket saw it.
    let mut seen = Vec::new();
    let _ = wait_for("two headers on the raw socket", WAIT, || {
        let mut buf = vec![0u8; 2048];
        while let Ok(n) = sys::recv(watch.as_fd(), &mut buf, libc::MSG_DONTWAIT) {
            seen.push(buf[..n].to_vec());
        }
        (seen.len() >= 2).then_some(())
    });
    for (i, want) in [(1usize, &p1), (2, &p2)] {
        let h = seen.get(i - 1);
        ctx.check_eq(
            format!("wire.{i}.saddr"),
            "198.18.1.3",
            h.map(|h| Ipv4Addr::new(h[12], h[13], h[14], h[15]).to_string()),
            "raw_send_hdrinc() keeps a non-zero saddr as given",
        );
        ctx.check_eq(
            format!("wire.{i}.tot_len"),
            want.len() as i64,
            h.map(|h| i64::from(u16::from_be_bytes([h[2], h[3]]))),
            "raw_send_hdrinc(): iph->tot_len = htons(length), whatever the caller wrote",
        );
        ctx.check_eq(
            format!("wire.{i}.header_checksum_valid"),
            true,
            h.map(|h| sum16(&h[..20], 0) == 0xffff),
            "raw_send_hdrinc() recomputes iph->check with ip_fast_csum()",
        );
    }
    let after = [mib(net.sender())?, mib(net.receiver())?, mib(net.third())?];
    let mut s_model = ip_out_hdrincl(&before[0], 2);
    s_model.push(("Udp.OutDatagrams", 0));
    check_mib(ctx, "sender", &before[0], &after[0], &s_model, QUIET, "raw_send_hdrinc() -> NF_HOOK(LOCAL_OUT) -> dst_output(): not through __ip_local_out() (OutRequests since 6.3) nor the UDP layer");
    check_mib(
        ctx,
        "receiver",
        &before[1],
        &after[1],
        &[("Udp.InDatagrams", 2), ("Ip.InReceives", 2), ("Ip.InDelivers", 2)],
        QUIET,
        "two datagrams accepted (rp_filter 0) and read",
    );
    check_mib(
        ctx,
        "third",
        &before[2],
        &after[2],
        &[],
        ALL,
        "the forged address's owner never sees a packet",
    );
    Ok(())
}

/// `IPV6_HDRINCL` (linux/in6.h, 4.5+).
const IPV6_HDRINCL: i32 = 36;

/// raw.ipproto_raw
pub static IPPROTO_RAW: CaseDef = CaseDef {
    id: "raw.ipproto_raw",
    variants: &[],
    summary: "socket(AF_INET, SOCK_RAW, IPPROTO_RAW) implies IP_HDRINCL; protocol 255 is delivered to it",
    drives: "Raw sockets of protocol IPPROTO_RAW, IPPROTO_UDP and IPPROTO_ICMP (IPv4) and IPPROTO_RAW \
        (IPv6) in the sender; IP_HDRINCL set to 1 on the UDP one. Then three packets through the \
        IPPROTO_RAW socket: one IPv4+UDP datagram to the receiver's UDP socket, one IPv4 packet of \
        protocol 253 (no handler, no socket anywhere), and one of protocol 255 after the receiver opened \
        socket(AF_INET, SOCK_RAW, IPPROTO_RAW).",
    observes: "getsockopt(IP_HDRINCL) / getsockopt(IPV6_HDRINCL); the receiver's UDP datagram; what the \
        receiver's IPPROTO_RAW socket reads; the MIB of both namespaces.",
    predicts: "IP_HDRINCL reads 1 on the IPPROTO_RAW socket, 0 on the UDP and ICMP ones, 1 on UDP after \
        setting it; IPV6_HDRINCL reads 1 on the IPv6 IPPROTO_RAW socket (ENOPROTOOPT before 4.5). The \
        datagram arrives from 198.18.0.1. The protocol-253 packet finds no handler: receiver \
        Ip.InUnknownProtos +1 and an ICMP protocol unreachable (Icmp OutDestUnreachs +1, IcmpMsg \
        OutType3 +1) which the sender counts (InDestUnreachs +1). The protocol-255 packet is delivered \
        to the receiver's IPPROTO_RAW socket (raw(7) calls such a socket send-only, but raw_v4_input() \
        matches inet_num 255 like any other protocol) and counts as InDelivers. The sender's three \
        packets count OutTransmits, not OutRequests (6.3+; see raw.hdrincl_spoof).",
    why: "inet_create(): for SOCK_RAW, inet->inet_num = protocol and, if protocol == IPPROTO_RAW, \
        inet_set_bit(HDRINCL) (the seed quotes the 2.6.30 form, inet->hdrincl = 1); rawv6_init_sk() does \
        the same for IPv6. ip_local_deliver_finish() -> ip_protocol_deliver_rcu(): raw_local_deliver() \
        first, then with no inet_protos[255] handler: if no raw socket took the packet, \
        IPSTATS_MIB_INUNKNOWNPROTOS and icmp_send(ICMP_DEST_UNREACH, ICMP_PROT_UNREACH); otherwise \
        consume_skb() and IPSTATS_MIB_INDELIVERS.",
    kernels: "IPv4 unchanged since 2.2. IPV6_HDRINCL appeared in 4.5 (before: IPPROTO_RAW implied it \
        but getsockopt said ENOPROTOOPT). \
        Counting: up to 6.2 the OutRequests line was IPSTATS_MIB_OUTPKTS (every packet out, hdrincl ones included, 3 here); since 6.3 it is IPSTATS_MIB_OUTREQUESTS, counted only by the ip_queue_xmit()/ip_append_data() paths that a raw hdrincl send does not take (0), and the old counter is Ip.OutTransmits.",
    shell: "python3 -c 'import socket as s; r=s.socket(s.AF_INET,s.SOCK_RAW,s.IPPROTO_RAW); print(r.getsockopt(s.IPPROTO_IP,s.IP_HDRINCL))'",
    source: "seed 004 (RAW sockets: IPPROTO_RAW implies IP_HDRINCL, inet_create())",
    timeout: Duration::from_secs(10),
    run: run_ipproto_raw,
};

fn hdrincl_of(fd: &OwnedFd, level: i32, name: i32) -> String {
    match sys::getsockopt_int(fd.as_fd(), level, name) {
        Ok(v) => v.to_string(),
        Err(e) => errno_name(&e),
    }
}

/// A minimal IPv4 packet of protocol `proto`.
fn ip_proto(proto: u8, src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let len = (h.len() + payload.len()) as u16;
    h[2..4].copy_from_slice(&len.to_be_bytes());
    let c = super::inet_checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn run_ipproto_raw(ctx: &mut Ctx) -> Result<(), CaseError> {
    let net = net3(Net3Opts::default())?;
    let s = net.sender();
    let raw = s.socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW)?;
    let udp = s.socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_UDP)?;
    let icmp = s.socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP)?;
    let raw6 = s.socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_RAW)?;
    let src = "inet_create(): IPPROTO_RAW == protocol sets HDRINCL; other raw protocols start without it";
    ctx.check_eq(
        "ipproto_raw.IP_HDRINCL",
        "1",
        hdrincl_of(&raw, libc::IPPROTO_IP, libc::IP_HDRINCL),
        src,
    );
    ctx.check_eq(
        "ipproto_udp.IP_HDRINCL",
        "0",
        hdrincl_of(&udp, libc::IPPROTO_IP, libc::IP_HDRINCL),
        src,
    );
    ctx.check_eq(
        "ipproto_icmp.IP_HDRINCL",
        "0",
        hdrincl_of(&icmp, libc::IPPROTO_IP, libc::IP_HDRINCL),
        src,
    );
    sys::setsockopt_int(udp.as_fd(), libc::IPPROTO_IP, libc::IP_HDRINCL, 1)?;
    ctx.check_eq(
        "ipproto_udp.IP_HDRINCL_after_set",
        "1",
        hdrincl_of(&udp, libc::IPPROTO_IP, libc::IP_HDRINCL),
        "do_ip_setsockopt(IP_HDRINCL) on a SOCK_RAW socket",
    );
    let want6 = if ctx.kernel.at_least(4, 5) { "1" } else { "ENOPROTOOPT" };
    ctx.check_eq(
        "ipv6_ipproto_raw.IPV6_HDRINCL",
        want6,
        hdrincl_of(&raw6, libc::IPPROTO_IPV6, IPV6_HDRINCL),
        "rawv6_init_sk() sets HDRINCL for IPPROTO_RAW; IPV6_HDRINCL is readable from 4.5",
    );

    let rx = udp_bound(net.receiver(), RECEIVER, 0)?;
    let port = port_of(&rx)?;
    let s_before = mib(s)?;
    let r_before = mib(net.receiver())?;
    let pkt = udp_packet(SENDER, RECEIVER, 40001, port, b"through IPPROTO_RAW");
    ctx.check_eq(
        "udp.sendto",
        "ok",
        outcome(&send_ip(&raw, &pkt)),
        "an IPPROTO_RAW socket sends any header",
    );
    let got = recv_wait(&rx);
    ctx.check_eq(
        "udp.recvfrom.from",
        "198.18.0.1:40001",
        got.as_ref().map(|(_, a)| a.to_string()),
        "the header we wrote names the sender",
    );
    // Protocol 253 (RFC 3692 experimental): no handler, no raw socket.
    let p1 = ip_proto(253, SENDER, RECEIVER, b"protocol 253, nobody home");
    ctx.check_eq(
        "proto253.sendto",
        "ok",
        outcome(&send_ip(&raw, &p1)),
        "an IPPROTO_RAW socket sends any protocol",
    );
    let r_mid = super::wait_mib(net.receiver(), &r_before, &[("Ip.InUnknownProtos", 1)])?;
    // Protocol 255, with an IPPROTO_RAW socket open in the receiver.
    let listener = net
        .receiver()
        .socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW)?;
    let p2 = ip_proto(255, SENDER, RECEIVER, b"protocol 255, raw socket open");
    ctx.check_eq(
        "proto255.sendto",
        "ok",
        outcome(&send_ip(&raw, &p2)),
        "an IPPROTO_RAW socket sends any protocol",
    );
    let mut seen = None;
    let _ = wait_for("protocol 255 on the receiver's IPPROTO_RAW socket", WAIT, || {
        let mut buf = vec![0u8; 2048];
        let n = sys::recv(listener.as_fd(), &mut buf, libc::MSG_DONTWAIT).ok()?;
        seen = Some(buf[..n].to_vec());
        Some(())
    });
    ctx.check_eq(
        "proto255.received_by_ipproto_raw_socket",
        true,
        seen.as_ref()
            .map(|b| b.len() > 20 && b[9] == 255 && b[20..] == p2[20..]),
        "raw_v4_input() delivers to sockets whose inet_num equals iph->protocol, 255 included",
    );
    ctx.check_eq(
        "proto255.nothing_more",
        "EAGAIN",
        outcome(&sys::recv(listener.as_fd(), &mut [0u8; 64], libc::MSG_DONTWAIT)),
        "one packet, one copy",
    );
    let s_after = super::wait_mib(s, &s_before, &[("Icmp.InDestUnreachs", 1)])?;
    let r_after = super::wait_mib(net.receiver(), &r_mid, &[("Ip.InDelivers", 1)])?;
    let mut s_model = ip_out_hdrincl(&s_before, 3);
    s_model.extend([
        ("Icmp.InMsgs", 1),
        ("Icmp.InDestUnreachs", 1),
        ("IcmpMsg.InType3", 1),
        ("Ip.InReceives", 1),
        ("Ip.InDelivers", 1),
    ]);
    check_mib(ctx, "sender", &s_before, &s_after, &s_model, QUIET, "three hdrincl packets out (raw_send_hdrinc: OutTransmits, not OutRequests, since 6.3); the protocol unreachable comes back to icmp_rcv() -> icmp_unreach()");
    let mut r_model = vec![
        ("Ip.InReceives", 3),
        ("Ip.InDelivers", 2),
        ("Ip.InUnknownProtos", 1),
        ("Udp.InDatagrams", 1),
        ("Icmp.OutMsgs", 1),
        ("Icmp.OutDestUnreachs", 1),
        ("IcmpMsg.OutType3", 1),
    ];
    r_model.extend(ip_out(&r_before, 1));
    check_mib(ctx, "receiver", &r_before, &r_after, &r_model, QUIET, "ip_protocol_deliver_rcu(): UDP delivered; protocol 253 unknown with no raw socket (InUnknownProtos + ICMP_PROT_UNREACH); protocol 255 taken by the raw socket (InDelivers)");
    Ok(())
}

/// One kernel log record: its timestamp (µs since boot) and first line.
struct Record {
    ts_us: u64,
    text: String,
}

/// Reads `/dev/kmsg` records until EAGAIN (non-blocking).
fn read_records(file: &mut File) -> Vec<Record> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // "PRIO,SEQ,TS_US,FLAGS;TEXT\n[ continuation lines]"
                let rec = String::from_utf8_lossy(&buf[..n]);
                if let Some((head, text)) = rec.split_once(';') {
                    let ts_us = head.split(',').nth(2).and_then(|t| t.parse().ok()).unwrap_or(0);
                    out.push(Record {
                        ts_us,
                        text: text.lines().next().unwrap_or("").to_string(),
                    });
                }
            }
            // EPIPE: records were overwritten before we read them; the next
            // read continues with the oldest one still there.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(_) => break,
        }
    }
    out
}

/// The kernel log (the host's), read from the point the case started, plus
/// how much of net_ratelimit()'s budget recent messages may have used.
struct Kmsg {
    file: File,
    /// Lines of net_ratelimit()-guarded messages we can recognise
    /// (martians, "callbacks suppressed") in the last message_cost seconds
    /// (plus one, for clock skew) before the case started.
    recent_ratelimited: usize,
    /// net.core.message_burst and message_cost (global sysctls).
    burst: usize,
    cost_s: u64,
}

/// Whether a kernel log line is a martian line about our receiving device.
fn ours(text: &str, dev: &str) -> bool {
    text.contains(&format!("on dev {dev}")) || text.contains(&format!("dev={dev})"))
}

/// If `text` is the martian-source line for `src` -> 198.18.0.2 on `dev`,
/// which of the two formats it has. ip_handle_martian_source() prints, with
/// net/ipv4/route.c's pr_fmt "IPv4: ", "martian source DST from SRC, on dev
/// DEV" up to 6.18 and "martian source (src=SRC, dst=DST, dev=DEV)" after
/// the late-2025 patch that unified the martian messages (seen on 7.2).
fn martian_line(text: &str, src: [u8; 4], dev: &str) -> Option<&'static str> {
    let src = Ipv4Addr::from(src);
    if text.ends_with(&format!("martian source 198.18.0.2 from {src}, on dev {dev}")) {
        Some("martian source DST from SRC, on dev DEV")
    } else if text.ends_with(&format!("martian source (src={src}, dst=198.18.0.2, dev={dev})")) {
        Some("martian source (src=SRC, dst=DST, dev=DEV)")
    } else {
        None
    }
}

/// A net_ratelimit()-guarded line we can recognise.
fn ratelimited(text: &str) -> bool {
    text.contains("martian source") || text.contains("martian destination") || text.contains("callbacks suppressed")
}

impl Kmsg {
    /// Opens `/dev/kmsg` twice: once read from its oldest record to count
    /// what was logged recently, once seeked to its end (only records written
    /// after this are read).
    fn open() -> io::Result<Kmsg> {
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open("/dev/kmsg")
        };
        let mut history = open()?;
        let mut file = open()?;
        file.seek(SeekFrom::End(0))?;
        let num = |p: &str, d: u64| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(d)
        };
        let burst = num("/proc/sys/net/core/message_burst", 10) as usize;
        let cost_s = num("/proc/sys/net/core/message_cost", 5);
        let now_us = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
            .unwrap_or(0);
        let since = now_us.saturating_sub((cost_s + 1) * 1_000_000);
        let recent_ratelimited = read_records(&mut history)
            .iter()
            .filter(|r| r.ts_us >= since && ratelimited(&r.text))
            .count();
        Ok(Kmsg {
            file,
            recent_ratelimited,
            burst,
            cost_s,
        })
    }

    /// Every record written since the last call.
    fn read_new(&mut self) -> Vec<Record> {
        read_records(&mut self.file)
    }
}

/// raw.rp_filter
pub static RP_FILTER: CaseDef = CaseDef {
    id: "raw.rp_filter",
    variants: &["off", "strict", "loose"],
    summary: "reverse-path filtering of forged sources: off and loose deliver, strict drops and counts, martians are logged",
    drives: "The receiver runs with net.ipv4.conf.{all,default}.rp_filter = 0 (off), 1 (strict) or 2 \
        (loose) and log_martians = 1. The sender sends, through an IP_HDRINCL raw socket, two UDP \
        datagrams to the receiver's UDP socket on 198.18.0.2 (arriving on its link from the sender): one \
        forged from 198.18.1.3 (the third namespace, whose route leaves by the receiver's other link) and \
        one from 198.19.255.1 (no route at all).",
    observes: "Which datagrams the receiver's socket reads; TcpExt.IPReversePathFilter and the rest of \
        the receiver's MIB; the kernel log (/dev/kmsg, read non-blocking from the point the case started) \
        for 'martian source 198.18.0.2 from SRC, on dev DEV' (or, on newer kernels, 'martian source \
        (src=SRC, dst=198.18.0.2, dev=DEV)') lines (DEV is named after the case's pid so \
        that lines of parallel runs cannot be confused), and how many net_ratelimit()ed lines (martians, \
        'callbacks suppressed') the log shows in the last net.core.message_cost seconds.",
    predicts: "off: both delivered, IPReversePathFilter +0, no martian line. strict: both dropped, \
        IPReversePathFilter +2, one martian line per source. loose: 198.18.1.3 delivered (a route to it \
        exists), 198.19.255.1 dropped, IPReversePathFilter +1, one martian line. In every mode Ip \
        InReceives +2, InDelivers and Udp InDatagrams = the delivered count, nothing else in Ip/Udp/Icmp. \
        A delivered packet is never logged; a dropped one is logged unless the host-wide net_ratelimit() \
        budget (message_burst per message_cost) is spent, which the case detects from the log and then \
        reports instead of checking.",
    why: "ip_rcv_finish_core() -> ip_route_input_noref() -> ip_route_input_slow() -> \
        fib_validate_source() (net/ipv4/fib_frontend.c): with rp_filter 0 and no tclassid users the fast \
        path accepts any source that is not one of our own addresses; otherwise \
        __fib_validate_source() looks the source up as a destination: strict (1) requires the route \
        to leave by the interface the packet came in on, loose (2) only requires a route; a failure \
        returns -EXDEV, which ip_handle_martian_source() logs (when IN_DEV_LOG_MARTIANS and \
        net_ratelimit(), CONFIG_IP_ROUTE_VERBOSE) and ip_rcv_finish_core() counts as \
        LINUX_MIB_IPRPFILTER before dropping. The effective value is max(conf/all, conf/DEV) \
        (IN_DEV_RPFILTER).",
    kernels: "Loose mode since 2.6.31; the rp_filter-0 fast path since 3.x (before, it looked the \
        source up and accepted anyway: same outcome). 6.12+ return drop reasons \
        (SKB_DROP_REASON_IP_RPFILTER) instead of -EXDEV; the counter is the same. The martian line \
        needs CONFIG_IP_ROUTE_VERBOSE and is subject to the host-wide net_ratelimit(); its text changed \
        after 6.18 to 'martian source (src=SRC, dst=DST, dev=DEV)' (both are accepted, the one seen is \
        reported). Checked on 5.10, 6.1, 6.12, 6.18 and 7.2.",
    shell: "ip netns exec RECEIVER sysctl -w net.ipv4.conf.all.rp_filter=1; nstat -az TcpExtIPReversePathFilter; dmesg | grep martian",
    source: "seed 004 (RAW sockets: spoofing, log_martians)",
    timeout: Duration::from_secs(10),
    run: run_rp_filter,
};

fn run_rp_filter(ctx: &mut Ctx) -> Result<(), CaseError> {
    // Volatile for `report diff`: the kernel log's rate limit window carries over from earlier runs.
    ctx.mark_volatile("kmsg.ratelimited_lines_in_window");
    let (mode, rp) = match ctx.variant {
        Some("strict") => ("strict", 1u8),
        Some("loose") => ("loose", 2u8),
        _ => ("off", 0u8),
    };
    let r_dev = format!("rp{}", std::process::id());
    let mut kmsg = match Kmsg::open() {
        Ok(k) => Some(k),
        Err(e) => {
            ctx.note(format!(
                "kernel log not checked: /dev/kmsg cannot be read here ({}){}",
                errno_name(&e),
                if kharness::privilege::in_user_namespace() {
                    ", as in any user namespace (CAP_SYSLOG is checked in the initial one)"
                } else {
                    ""
                }
            ));
            None
        }
    };
    let net = net3(Net3Opts {
        rp_filter: rp,
        log_martians: true,
        r_dev: Some(r_dev.clone()),
        ..Default::default()
    })?;
    ctx.observe(
        "receiver.rp_filter",
        net.receiver()
            .sysctl_read(&format!("net.ipv4.conf.{r_dev}.rp_filter"))?,
    );
    let rx = udp_bound(net.receiver(), RECEIVER, 0)?;
    let port = port_of(&rx)?;
    let r_before = mib(net.receiver())?;
    let t_before = mib(net.third())?;
    let tx = hdrincl_socket(&net, libc::IPPROTO_UDP)?;
    let sources = [("third", THIRD), ("unroutable", UNROUTABLE)];
    for (name, src) in sources {
        send_ip(&tx, &udp_packet(src, RECEIVER, 40000, port, name.as_bytes()))?;
    }
    // Both packets have finished IP input when they were delivered or
    // dropped by the filter: a condition that does not depend on the model.
    let _ = wait_for("both packets through IP input", WAIT, || {
        net.receiver().mib().ok().filter(|m| {
            let d = |k: &str| m.get(k).unwrap_or(0) - r_before.get(k).unwrap_or(0);
            d("Ip.InDelivers") + d("TcpExt.IPReversePathFilter") >= 2
        })
    });
    let got: Vec<String> = drain(&rx)
        .into_iter()
        .map(|(p, _)| String::from_utf8_lossy(&p).into_owned())
        .collect();
    let r_after = mib(net.receiver())?;
    // The model: strict needs the route to the source to leave by r0; loose
    // needs a route; off needs nothing.
    let delivered = |name: &str| match (rp, name) {
        (0, _) => true,
        (1, _) => false,
        (_, "third") => true,
        _ => false,
    };
    // Every record the kernel logged since the case started (the drops were
    // logged before they were counted, so they are all there now).
    // Every record the kernel logged since the case started (the drops were
    // logged before they were counted, so they are all there now).
    let lines = kmsg.as_mut().map(Kmsg::read_new);
    // net_ratelimit() lets message_burst messages through per message_cost
    // seconds, host-wide: the lines are predicted only when the messages the
    // log shows in that window, others' and ours, fit in the burst.
    let ours_rejected = sources.iter().filter(|(n, _)| !delivered(n)).count();
    let budget = match (&kmsg, &lines) {
        (Some(k), Some(l)) => {
            let others_now = l
                .iter()
                .filter(|r| ratelimited(&r.text) && !ours(&r.text, &r_dev))
                .count();
            let used = k.recent_ratelimited + others_now;
            ctx.observe_volatile("kmsg.ratelimited_lines_in_window", used as u64);
            if ours_rejected > 0 && used + ours_rejected > k.burst {
                ctx.note(format!(
                    "martian lines not checked: {used} net_ratelimit()ed messages in the last {} s plus ours exceed net.core.message_burst = {}, so the kernel may have suppressed ours",
                    k.cost_s, k.burst
                ));
                false
            } else {
                true
            }
        }
        _ => false,
    };
    let mut n_delivered = 0;
    for (name, src) in sources {
        let want = delivered(name);
        n_delivered += i64::from(want);
        ctx.check_eq(
            format!("{mode}.{name}.delivered"),
            want,
            got.iter().any(|g| g == name),
            "fib_validate_source(): off accepts, strict needs the reverse route on the input link, loose any route",
        );
        if let Some(lines) = &lines {
            let n = lines
                .iter()
                .filter(|l| martian_line(&l.text, src, &r_dev).is_some())
                .count() as i64;
            if let Some(format) = lines.iter().find_map(|l| martian_line(&l.text, src, &r_dev)) {
                ctx.observe("kmsg.martian_format", format);
            }
            let src = "ip_handle_martian_source() logs each packet fib_validate_source() rejected (log_martians = 1, within net_ratelimit())";
            if want || budget {
                // A delivered packet is never logged, budget or not.
                ctx.check_eq(format!("{mode}.{name}.martian_lines"), i64::from(!want), n, src);
            } else {
                ctx.observe(format!("{mode}.{name}.martian_lines"), n);
            }
        }
    }
    let drops = 2 - n_delivered;
    let t_after = mib(net.third())?;
    check_mib(
        ctx,
        "receiver",
        &r_before,
        &r_after,
        &[
            ("Ip.InReceives", 2),
            ("Ip.InDelivers", n_delivered),
            ("Udp.InDatagrams", n_delivered),
            ("TcpExt.IPReversePathFilter", drops),
        ],
        QUIET,
        "ip_rcv_finish_core(): a -EXDEV route lookup counts LINUX_MIB_IPRPFILTER and drops; the rest is delivered and read",
    );
    check_mib(
        ctx,
        "third",
        &t_before,
        &t_after,
        &[],
        ALL,
        "the forged address's owner never sees a packet",
    );
    Ok(())
}

/// raw.nonlocal_bind
pub static NONLOCAL_BIND: CaseDef = CaseDef {
    id: "raw.nonlocal_bind",
    variants: &["plain", "freebind", "transparent", "sysctl"],
    summary: "bind to an address the namespace does not own: EADDRNOTAVAIL unless allowed; only IP_TRANSPARENT can then send from it",
    drives: "A UDP socket in the sender binds 198.18.1.3:40002 (the third namespace's address) — plain; \
        with IP_FREEBIND; with IP_TRANSPARENT; or with net.ipv4.ip_nonlocal_bind = 1 in the sender — and, \
        when bound, sendto()s the receiver's UDP socket on 198.18.0.2 (seed 003's transparent-proxy HOWTO).",
    observes: "bind()'s and sendto()'s errno; the address the receiver's recvfrom() reports; the MIB of \
        both namespaces.",
    predicts: "plain: bind EADDRNOTAVAIL. freebind and sysctl: bind succeeds, but sendto() fails with \
        ENETUNREACH (Ip.OutNoRoutes +1 in the sender) and nothing reaches the receiver. transparent: \
        bind and sendto succeed and the receiver reads the datagram from 198.18.1.3:40002 (sender Udp \
        OutDatagrams +1, receiver Udp InDatagrams +1).",
    why: "inet_bind() -> __inet_bind() refuses an address whose inet_addr_type_table() is not \
        RTN_LOCAL unless inet_addr_valid_or_nonlocal(): net.ipv4.ip_nonlocal_bind, IP_FREEBIND or \
        IP_TRANSPARENT. Sending is a separate check: udp_sendmsg() -> ip_route_output_flow() -> \
        ip_route_output_key_hash_rcu() returns -ENETUNREACH for a source that __ip_dev_find() does not \
        find locally unless the flow has FLOWI_FLAG_ANYSRC, which inet_sk_flowi_flags() sets only for \
        transparent (and hdrincl) sockets; udp_sendmsg() counts OUTNOROUTES for -ENETUNREACH. So \
        freebind and the sysctl let a socket wait for an address that is not there yet; only \
        IP_TRANSPARENT (needs CAP_NET_ADMIN or CAP_NET_RAW) sends as someone else.",
    kernels: "IP_FREEBIND since 2.4, IP_TRANSPARENT since 2.6.28, ip_nonlocal_bind per namespace since \
        4.x (before: global). Unchanged otherwise. \
        Ip.OutTransmits (IPSTATS_MIB_OUTPKTS under its own name) is exported from 6.3 and predicted only where it is: absent on 5.10 and 6.1.",
    shell: "ip netns exec SENDER socat - UDP:198.18.0.2:PORT,bind=198.18.1.3:40002,ip-transparent",
    source: "seed 003 (HOWTO: bind to a non local address), seed 004 appendix B (IP_FREEBIND, IP_TRANSPARENT)",
    timeout: Duration::from_secs(10),
    run: run_nonlocal,
};

fn run_nonlocal(ctx: &mut Ctx) -> Result<(), CaseError> {
    let mode = ctx.variant.unwrap_or("plain");
    let mut opts = Net3Opts::default();
    if mode == "sysctl" {
        opts.sysctls.push(("sender", "net.ipv4.ip_nonlocal_bind", "1".into()));
    }
    let net = net3(opts)?;
    let rx = udp_bound(net.receiver(), RECEIVER, 0)?;
    let port = port_of(&rx)?;
    let s_before = mib(net.sender())?;
    let r_before = mib(net.receiver())?;
    let fd = net.sender().socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    match mode {
        "freebind" => sys::setsockopt_int(fd.as_fd(), libc::IPPROTO_IP, libc::IP_FREEBIND, 1)?,
        "transparent" => sys::setsockopt_int(fd.as_fd(), libc::IPPROTO_IP, libc::IP_TRANSPARENT, 1)?,
        _ => {}
    }
    let bound = socket::bind(
        fd.as_raw_fd(),
        &SockaddrIn::new(THIRD[0], THIRD[1], THIRD[2], THIRD[3], 40002),
    )
    .map_err(io::Error::from);
    let want_bind = if mode == "plain" { "EADDRNOTAVAIL" } else { "ok" };
    ctx.check_eq(
        "bind",
        want_bind,
        outcome(&bound),
        "__inet_bind(): a non-local address needs ip_nonlocal_bind, IP_FREEBIND or IP_TRANSPARENT",
    );
    let want_send = match mode {
        "plain" => None,
        "transparent" => Some("ok"),
        _ => Some("ENETUNREACH"),
    };
    let mut delivered = false;
    if bound.is_ok() {
        let sent = socket::sendto(
            fd.as_raw_fd(),
            b"from a non-local address",
            &SockaddrIn::new(RECEIVER[0], RECEIVER[1], RECEIVER[2], RECEIVER[3], port),
            MsgFlags::empty(),
        )
        .map_err(io::Error::from);
        ctx.check_eq(
            "sendto",
            want_send.unwrap_or("not attempted"),
            outcome(&sent),
            "ip_route_output_key_hash_rcu(): a non-local source needs FLOWI_FLAG_ANYSRC (IP_TRANSPARENT)",
        );
        if sent.is_ok() {
            let got = recv_wait(&rx);
            delivered = got.is_some();
            ctx.check_eq(
                "receiver.from",
                sa(THIRD, 40002).to_string(),
                got.map(|(_, a)| a.to_string()),
                "the peer sees the transparent socket's bound address",
            );
        }
    }
    let s_after = mib(net.sender())?;
    // Nothing is in flight: the datagram was read, or the sender's counters
    // say nothing left it.
    let r_after = mib(net.receiver())?;
    type Model = Vec<(&'static str, i64)>;
    let (s_model, r_model): (Model, Model) = match mode {
        "transparent" => {
            let mut s = ip_out(&s_before, 1);
            s.push(("Udp.OutDatagrams", 1));
            (
                s,
                vec![("Udp.InDatagrams", 1), ("Ip.InReceives", 1), ("Ip.InDelivers", 1)],
            )
        }
        "plain" => (vec![], vec![]),
        _ => (vec![("Ip.OutNoRoutes", 1)], vec![]),
    };
    ctx.check_eq(
        "receiver.datagram_read",
        mode == "transparent",
        delivered,
        "only the IP_TRANSPARENT socket gets a route for its non-local source; the others send nothing",
    );
    check_mib(
        ctx,
        "sender",
        &s_before,
        &s_after,
        &s_model,
        QUIET,
        "udp_sendmsg(): one datagram out, or OUTNOROUTES for the refused route",
    );
    check_mib(
        ctx,
        "receiver",
        &r_before,
        &r_after,
        &r_model,
        QUIET,
        "one datagram received and read, or nothing sent",
    );
    Ok(())
}
