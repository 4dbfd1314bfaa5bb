//! raw.verdict_property: random header mutations injected as Ethernet frames;
//! a model of `ip_rcv_core()` and `__udp4_lib_rcv()` predicts which counter
//! of the receiving namespace moves.
//!
//! The frames go out on an `AF_PACKET` socket on the sender's veth, not on
//! an IP_HDRINCL socket: `raw_send_hdrinc()` rewrites `tot_len` and the
//! header checksum, so those mutations would never reach the wire.

use std::net::UdpSocket;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use kharness::procfs::Mib;
use kharness::wait::wait_for;
use kharness::{sys, CaseDef, CaseError, Ctx};
use proptest::prelude::*;

use crate::prop::Property;

use super::{
    check_mib, drain, mac_of, mib, net3, packet_socket, port_of, sum16, udp_bound, udp_frame, Net3, Net3Opts, QUIET,
    RECEIVER, SENDER, WAIT,
};

/// Generated cases per run (each is one frame, about a millisecond).
const CASES: u32 = 128;
/// The source port of every frame.
const SPORT: u16 = 40100;
/// A port nothing in the receiver listens on.
const CLOSED: u16 = 9;

/// How the UDP checksum field is spoiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UdpCsum {
    /// 0: "no checksum", which RFC 768 allows over IPv4.
    Zero,
    /// XORed with a non-zero value.
    Xor(u16),
}

/// How the IHL field is changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ihl {
    /// Set below 5 (the header cannot be shorter than 20 bytes).
    Short(u8),
    /// n words of IPOPT_END options inserted (IHL 5 + n, tot_len grown).
    Options(u8),
}

/// One generated frame: a valid IPv4+UDP datagram to the receiver's open
/// port, then these mutations (applied UDP first, then IP, then the IP
/// checksum is recomputed unless `ip_csum` spoils it).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mutation {
    payload_len: usize,
    closed_port: bool,
    udp_len: Option<u16>,
    udp_csum: Option<UdpCsum>,
    ttl: Option<u8>,
    version: Option<u8>,
    ihl: Option<Ihl>,
    tot_len: Option<u16>,
    ip_csum: Option<u16>,
}

impl Mutation {
    /// The frame in words.
    fn describe(&self) -> String {
        let mut w = vec![format!(
            "a UDP datagram with {} payload bytes from 198.18.0.1 to the receiver's {} port",
            self.payload_len,
            if self.closed_port { "closed" } else { "open" }
        )];
        if let Some(v) = self.udp_len {
            w.push(format!("UDP length {v}"));
        }
        match self.udp_csum {
            Some(UdpCsum::Zero) => w.push("UDP checksum 0 (none)".into()),
            Some(UdpCsum::Xor(x)) => w.push(format!("UDP checksum spoiled (xor {x:#06x})")),
            None => {}
        }
        if let Some(t) = self.ttl {
            w.push(format!("TTL {t}"));
        }
        if let Some(v) = self.version {
            w.push(format!("IP version {v}"));
        }
        match self.ihl {
            Some(Ihl::Short(n)) => w.push(format!("IHL {n}")),
            Some(Ihl::Options(n)) => w.push(format!("{n} words of IPOPT_END options")),
            None => {}
        }
        if let Some(t) = self.tot_len {
            w.push(format!("IP total length {t}"));
        }
        if let Some(c) = self.ip_csum {
            w.push(format!("IP header checksum spoiled (xor {c:#06x})"));
        }
        w.join(", ")
    }

    const NONE: Mutation = Mutation {
        payload_len: 24,
        closed_port: false,
        udp_len: None,
        udp_csum: None,
        ttl: None,
        version: None,
        ihl: None,
        tot_len: None,
        ip_csum: None,
    };
}

/// The generator; `explore` reaches further: payloads up to 1400 bytes, IP
/// and UDP lengths over their whole useful range, mutations twice as often.
fn mutation(explore: bool) -> impl Strategy<Value = Mutation> {
    let (payload, w, tot_max, udp_max) = if explore {
        (1400usize, 2.0, 1600u16, 1500u16)
    } else {
        (100, 1.0, 220, 140)
    };
    (
        0usize..payload,
        proptest::bool::weighted(0.25),
        proptest::option::weighted(0.2 * w, 0u16..=udp_max),
        proptest::option::weighted(
            0.2 * w,
            prop_oneof![Just(UdpCsum::Zero), (1u16..=u16::MAX).prop_map(UdpCsum::Xor)],
        ),
        proptest::option::weighted(0.2 * w, any::<u8>()),
        proptest::option::weighted(0.1 * w, (0u8..16).prop_filter("not 4", |v| *v != 4)),
        proptest::option::weighted(
            0.15 * w,
            prop_oneof![(0u8..5).prop_map(Ihl::Short), (1u8..=10).prop_map(Ihl::Options)],
        ),
        proptest::option::weighted(0.2 * w, 0u16..=tot_max),
        proptest::option::weighted(0.15 * w, 1u16..=u16::MAX),
    )
        .prop_map(
            |(payload_len, closed_port, udp_len, udp_csum, ttl, version, ihl, tot_len, ip_csum)| Mutation {
                payload_len,
                closed_port,
                udp_len,
                udp_csum,
                ttl,
                version,
                ihl,
                tot_len,
                ip_csum,
            },
        )
}

/// The frame for `m`.
fn build(m: &Mutation, smac: [u8; 6], rmac: [u8; 6], open: u16) -> Vec<u8> {
    let dport = if m.closed_port { CLOSED } else { open };
    let payload: Vec<u8> = (0..m.payload_len).map(|i| (i * 7 + 3) as u8).collect();
    let mut f = udp_frame(smac, rmac, SENDER, RECEIVER, SPORT, dport, &payload);
    // UDP header at 34 (before any IP options are inserted).
    if let Some(l) = m.udp_len {
        f[38..40].copy_from_slice(&l.to_be_bytes());
    }
    match m.udp_csum {
        Some(UdpCsum::Zero) => f[40..42].copy_from_slice(&[0, 0]),
        Some(UdpCsum::Xor(x)) => {
            let c = u16::from_be_bytes([f[40], f[41]]) ^ x;
            f[40..42].copy_from_slice(&c.to_be_bytes());
        }
        None => {}
    }
    // IP header at 14.
    if let Some(Ihl::Options(n)) = m.ihl {
        let extra = usize::from(n) * 4;
        f.splice(34..34, std::iter::repeat_n(0u8, extra)); // IPOPT_END
        f[14] = 0x40 | (5 + n);
        let tot = u16::from_be_bytes([f[16], f[17]]) + extra as u16;
        f[16..18].copy_from_slice(&tot.to_be_bytes());
    }
    if let Some(Ihl::Short(n)) = m.ihl {
        f[14] = (f[14] & 0xf0) | n;
    }
    if let Some(t) = m.ttl {
        f[22] = t;
    }
    if let Some(v) = m.version {
        f[14] = (v << 4) | (f[14] & 0x0f);
    }
    if let Some(t) = m.tot_len {
        f[16..18].copy_from_slice(&t.to_be_bytes());
    }
    let hlen = (usize::from(f[14] & 0x0f) * 4).max(20);
    f[24..26].copy_from_slice(&[0, 0]);
    let mut c = super::inet_checksum(&f[14..14 + hlen]);
    if let Some(x) = m.ip_csum {
        c ^= x;
    }
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

/// The model's verdict on one frame: the counters that move in the
/// receiving namespace, and the payload the socket reads, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Verdict {
    counters: Vec<(&'static str, i64)>,
    delivered: Option<Vec<u8>>,
    why: &'static str,
}

/// `ip_rcv_core()`, `ip_rcv_finish_core()`, `ip_local_deliver_finish()`,
/// `__udp4_lib_rcv()` and `udp_recvmsg()`, in the order they test things.
fn model(frame: &[u8], open: u16, has_out_transmits: bool) -> Verdict {
    let ip = &frame[14..];
    let mut c = vec![("Ip.InReceives", 1)];
    let done = |mut c: Vec<(&'static str, i64)>, extra: &[(&'static str, i64)], delivered, why| {
        c.extend_from_slice(extra);
        Verdict {
            counters: c,
            delivered,
            why,
        }
    };
    let version = ip[0] >> 4;
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ihl < 20 || version != 4 {
        return done(
            c,
            &[("Ip.InHdrErrors", 1)],
            None,
            "ip_rcv_core(): iph->ihl < 5 || iph->version != 4 -> inhdr_error",
        );
    }
    if sum16(&ip[..ihl], 0) != 0xffff {
        return done(
            c,
            &[("Ip.InHdrErrors", 1), ("IpExt.InCsumErrors", 1)],
            None,
            "ip_rcv_core(): ip_fast_csum() != 0 -> csum_error (IPSTATS_MIB_CSUMERRORS) then inhdr_error",
        );
    }
    let tot = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ip.len() < tot {
        return done(
            c,
            &[("IpExt.InTruncatedPkts", 1)],
            None,
            "ip_rcv_core(): skb->len < tot_len -> IPSTATS_MIB_INTRUNCATEDPKTS",
        );
    }
    if tot < ihl {
        return done(
            c,
            &[("Ip.InHdrErrors", 1)],
            None,
            "ip_rcv_core(): tot_len < ihl*4 -> inhdr_error",
        );
    }
    // pskb_trim_rcsum() to tot_len; options (all IPOPT_END) pass
    // ip_rcv_options(); the local route delivers to UDP, whose handler's
    // return is followed by IPSTATS_MIB_INDELIVERS in any case below.
    c.push(("Ip.InDelivers", 1));
    let l4 = &ip[ihl..tot];
    if l4.len() < 8 {
        return done(
            c,
            &[("Udp.InErrors", 1)],
            None,
            "__udp4_lib_rcv(): !pskb_may_pull(skb, sizeof(struct udphdr)) -> drop (UDP_MIB_INERRORS)",
        );
    }
    let ulen = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
    if ulen > l4.len() || ulen < 8 {
        return done(
            c,
            &[("Udp.InErrors", 1)],
            None,
            "__udp4_lib_rcv(): ulen > skb->len or ulen < 8 -> short_packet -> drop (UDP_MIB_INERRORS)",
        );
    }
    let udp = &l4[..ulen];
    let check = u16::from_be_bytes([udp[6], udp[7]]);
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&ip[12..20]);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(ulen as u16).to_be_bytes());
    let csum_ok = check == 0 || sum16(udp, sum16(&pseudo, 0)) == 0xffff;
    if !csum_ok {
        return done(c, &[("Udp.InCsumErrors", 1), ("Udp.InErrors", 1)], None, "udp4_csum_init() (<= 76 bytes), udp_lib_checksum_complete() (no socket) or udp_recvmsg() (queued): bad checksum -> UDP_MIB_CSUMERRORS + UDP_MIB_INERRORS");
    }
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    if dport != open {
        let mut extra = vec![
            ("Udp.NoPorts", 1),
            ("Icmp.OutMsgs", 1),
            ("Icmp.OutDestUnreachs", 1),
            ("IcmpMsg.OutType3", 1),
            ("Ip.OutRequests", 1),
        ];
        if has_out_transmits {
            extra.push(("Ip.OutTransmits", 1));
        }
        return done(c, &extra, None, "__udp4_lib_rcv(): no socket -> UDP_MIB_NOPORTS and icmp_send(ICMP_DEST_UNREACH, ICMP_PORT_UNREACH) (icmp_ratemask is 0)");
    }
    done(c, &[("Udp.InDatagrams", 1)], Some(udp[8..].to_vec()), "delivered: udp_recvmsg() counts UDP_MIB_INDATAGRAMS when the datagram is read (TTL and options play no part in local delivery)")
}

/// The IP-input outcomes that end a packet's way through `ip_rcv`: one of
/// them moves for every frame, whatever the verdict.
const TERMINAL: &[&str] = &[
    "Ip.InDelivers",
    "Ip.InHdrErrors",
    "IpExt.InTruncatedPkts",
    "Ip.InDiscards",
    "Ip.InAddrErrors",
    "Ip.InUnknownProtos",
    "TcpExt.IPReversePathFilter",
];

struct Rig {
    net: Net3,
    tx: OwnedFd,
    rx: UdpSocket,
    open: u16,
    smac: [u8; 6],
    rmac: [u8; 6],
    has_out_transmits: bool,
}

/// What one frame did.
struct Outcome {
    frame: Vec<u8>,
    verdict: Verdict,
    before: Mib,
    after: Mib,
    drained: Vec<Vec<u8>>,
}

impl Rig {
    fn new() -> Result<Rig, CaseError> {
        let net = net3(Net3Opts::default())?;
        let rx = udp_bound(net.receiver(), RECEIVER, 0)?;
        let open = port_of(&rx)?;
        let tx = packet_socket(net.sender(), libc::SOCK_RAW, 0, net.s_ifindex())?;
        let smac = mac_of(net.sender(), net.s_ifindex())?;
        let rmac = mac_of(net.receiver(), net.r_ifindex())?;
        let has_out_transmits = mib(net.receiver())?.get("Ip.OutTransmits").is_some();
        Ok(Rig {
            net,
            tx,
            rx,
            open,
            smac,
            rmac,
            has_out_transmits,
        })
    }

    fn run(&self, m: &Mutation, before: Mib) -> Result<Outcome, String> {
        let frame = build(m, self.smac, self.rmac, self.open);
        let verdict = model(&frame, self.open, self.has_out_transmits);
        sys::send(self.tx.as_fd(), &frame, 0).map_err(|e| format!("send on the packet socket: {e}"))?;
        let r = self.net.receiver();
        let ended = |mm: &Mib| {
            TERMINAL
                .iter()
                .map(|k| mm.get(k).unwrap_or(0) - before.get(k).unwrap_or(0))
                .sum::<i64>()
                >= 1
        };
        let _ = wait_for("the frame through IP input", WAIT, || {
            r.mib().ok().filter(|mm| ended(mm))
        });
        let drained: Vec<Vec<u8>> = drain(&self.rx).into_iter().map(|(p, _)| p).collect();
        let after = r.mib().map_err(|e| e.to_string())?;
        Ok(Outcome {
            frame,
            verdict,
            before,
            after,
            drained,
        })
    }
}

/// The first disagreement between the model and the kernel, if any.
fn disagreement(o: &Outcome) -> Option<String> {
    let delta = o.before.delta(&o.after);
    for (k, v) in &o.verdict.counters {
        let got = delta.get(*k).copied().unwrap_or(0);
        if got != *v {
            return Some(format!("{k}: expected +{v}, observed +{got} ({})", o.verdict.why));
        }
    }
    for (k, v) in &delta {
        if !o.verdict.counters.iter().any(|(p, _)| p == k) && QUIET.iter().any(|q| k.starts_with(q)) {
            return Some(format!("{k}: expected +0, observed +{v} ({})", o.verdict.why));
        }
    }
    let want: Vec<Vec<u8>> = o.verdict.delivered.iter().cloned().collect();
    if o.drained != want {
        return Some(format!(
            "socket read {} datagram(s), model says {} ({})",
            o.drained.len(),
            want.len(),
            o.verdict.why
        ));
    }
    None
}

/// Records one outcome as checks under `tag`.
fn record(ctx: &mut Ctx, tag: &str, o: &Outcome) {
    ctx.observe(format!("{tag}.frame_len"), o.frame.len() as u64);
    check_mib(ctx, tag, &o.before, &o.after, &o.verdict.counters, QUIET, o.verdict.why);
    let want = o.verdict.delivered.is_some();
    ctx.check_eq(
        format!("{tag}.datagrams_read"),
        i64::from(want),
        o.drained.len() as i64,
        o.verdict.why,
    );
    if let (Some(p), Some(d)) = (&o.verdict.delivered, o.drained.first()) {
        ctx.check_eq(
            format!("{tag}.payload_intact"),
            true,
            p == d,
            "the payload is what the frame carried",
        );
    }
}

/// raw.verdict_property
pub static VERDICT_PROPERTY: CaseDef = CaseDef {
    id: "raw.verdict_property",
    variants: &[],
    summary: "random IPv4/UDP header mutations: a model of ip_rcv and udp_rcv predicts exactly which counter moves (proptest, shrinking)",
    drives: "Property test: 128 frames, each a valid Ethernet+IPv4+UDP datagram (0-99 byte payload) from \
        198.18.0.1 to the receiver's open UDP port, then random mutations: IP header checksum, total \
        length (0-220), TTL (any), version (not 4), IHL (below 5, or 1-10 words of IPOPT_END options), \
        UDP length (0-140), UDP checksum (zero or spoiled), closed destination port. Each frame is sent \
        whole on an AF_PACKET SOCK_RAW socket bound to the sender's veth, to the receiver veth's MAC (read \
        with RTM_GETLINK): an IP_HDRINCL socket could not carry bad lengths or checksums, the kernel \
        rewrites them. Counterexamples shrink and are kept in \
        fixtures/proptest-regressions/raw_verdict_property.txt, replayed first on every run.",
    observes: "For each frame: the receiver's Ip, IpExt, Icmp, IcmpMsg, Udp and TcpExt counters before \
        and after (after: once one of the IP-input outcome counters has moved, and the receiving socket \
        was drained), and the datagrams its UDP socket reads.",
    predicts: "Exactly one verdict per frame, in the kernel's order: version or IHL < 5 -> \
        Ip.InHdrErrors; bad header checksum -> Ip.InHdrErrors + IpExt.InCsumErrors; total length \
        beyond the frame -> IpExt.InTruncatedPkts; total length below the header -> Ip.InHdrErrors; \
        otherwise Ip.InDelivers and then: fewer than 8 UDP bytes or a UDP length beyond the IP payload \
        or below 8 -> Udp.InErrors; bad UDP checksum (0 means none) -> Udp.InCsumErrors + InErrors; \
        closed port -> Udp.NoPorts + one ICMP port unreachable (Icmp OutMsgs/OutDestUnreachs, IcmpMsg \
        OutType3, Ip OutRequests); else Udp.InDatagrams and the payload is read intact. TTL and \
        IPOPT_END options change nothing. Ip.InReceives +1 always; no other Ip/Icmp/Udp counter moves.",
    why: "ip_rcv_core() (net/ipv4/ip_input.c) counts IPSTATS_MIB_IN, then rejects ihl < 5 or version != \
        4, then a bad ip_fast_csum() (CSUMERRORS + INHDRERRORS), then skb->len < tot_len \
        (INTRUNCATEDPKTS) or tot_len < ihl*4 (INHDRERRORS), and trims to tot_len; TTL is only checked \
        when forwarding. __udp4_lib_rcv() (net/ipv4/udp.c) drops short or inconsistent lengths \
        (INERRORS), validates the checksum over the pseudo-header with the UDP length (0 = none), \
        counts NOPORTS and sends ICMP_PORT_UNREACH when no socket matches (only after the checksum \
        passed), and udp_recvmsg() counts INDATAGRAMS, or CSUMERRORS + INERRORS for a queued datagram \
        whose deferred checksum fails. The frames arrive CHECKSUM_NONE: veth no longer marks packets \
        CHECKSUM_UNNECESSARY (commit ce8c839b74e3, 2016), so the kernel really verifies.",
    kernels: "IpExt.InCsumErrors and Udp.InCsumErrors exist from 3.10; Ip.OutTransmits from 6.3 \
        (predicted only where exported). Before 4.7 veth marked received packets \
        CHECKSUM_UNNECESSARY and bad UDP checksums were delivered. The per-type ICMP rate limit is \
        disabled (icmp_ratemask 0) so every port unreachable is sent.",
    shell: "ip netns exec SENDER python3 (scapy sendp of a mangled frame on s0); ip netns exec RECEIVER nstat -az",
    source: "seed 004 (RAW sockets, IP_HDRINCL; appendix B)",
    timeout: Duration::from_secs(30),
    run,
};

/// The property: quick and explore counts, regression file.
const PROPERTY: Property = Property {
    id: "raw.verdict_property",
    quick_cases: CASES,
    explore_cases: 1024,
    regressions: "raw_verdict_property.txt",
    max_shrink_iters: 256,
};

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    let rig = Rig::new()?;
    let last = std::cell::RefCell::new(mib(rig.net.receiver())?);
    let frames = std::cell::Cell::new(0u32);
    let verdicts = std::cell::RefCell::new(std::collections::BTreeMap::<&'static str, u32>::new());
    let found = PROPERTY.run(ctx, mutation, |m| {
        frames.set(frames.get() + 1);
        let before = last.borrow().clone();
        let o = rig.run(&m, before)?;
        *last.borrow_mut() = o.after.clone();
        *verdicts.borrow_mut().entry(o.verdict.why).or_default() += 1;
        match disagreement(&o) {
            Some(d) => Err(d),
            None => Ok(()),
        }
    });
    ctx.observe("frames_sent", frames.get());
    for (i, (why, n)) in verdicts.borrow().iter().enumerate() {
        ctx.observe(format!("verdicts.{i}.count"), *n);
        ctx.observe(format!("verdicts.{i}.rule"), *why);
    }
    let failed = found.result.is_err();
    PROPERTY.report(
        ctx,
        found,
        |m| vec![format!("send {}", m.describe())],
        |ctx, m| {
            let before = mib(rig.net.receiver()).map_err(|e| e.to_string())?;
            let o = rig.run(m, before)?;
            ctx.observe(
                "minimal_frame",
                o.frame.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            );
            record(ctx, "minimal", &o);
            Ok(())
        },
    )?;
    match failed {
        true => Ok(()),
        false => {
            // One frame per verdict, replayed into the report.
            let samples: [(&str, Mutation); 13] = [
                ("clean", Mutation::NONE),
                (
                    "ttl0_options",
                    Mutation {
                        ttl: Some(0),
                        ihl: Some(Ihl::Options(2)),
                        ..Mutation::NONE
                    },
                ),
                (
                    "version6",
                    Mutation {
                        version: Some(6),
                        ..Mutation::NONE
                    },
                ),
                (
                    "ihl4",
                    Mutation {
                        ihl: Some(Ihl::Short(4)),
                        ..Mutation::NONE
                    },
                ),
                (
                    "ip_csum",
                    Mutation {
                        ip_csum: Some(0x0101),
                        ..Mutation::NONE
                    },
                ),
                (
                    "tot_len_long",
                    Mutation {
                        tot_len: Some(200),
                        ..Mutation::NONE
                    },
                ),
                (
                    "tot_len_short",
                    Mutation {
                        tot_len: Some(12),
                        ..Mutation::NONE
                    },
                ),
                (
                    "tot_len_cuts_udp_header",
                    Mutation {
                        tot_len: Some(24),
                        ..Mutation::NONE
                    },
                ),
                (
                    "udp_len_long",
                    Mutation {
                        udp_len: Some(100),
                        ..Mutation::NONE
                    },
                ),
                (
                    "udp_csum",
                    Mutation {
                        udp_csum: Some(UdpCsum::Xor(1)),
                        ..Mutation::NONE
                    },
                ),
                (
                    "udp_csum_zero",
                    Mutation {
                        udp_csum: Some(UdpCsum::Zero),
                        ..Mutation::NONE
                    },
                ),
                (
                    "closed_port",
                    Mutation {
                        closed_port: true,
                        ..Mutation::NONE
                    },
                ),
                (
                    "closed_port_bad_csum",
                    Mutation {
                        closed_port: true,
                        udp_csum: Some(UdpCsum::Xor(0x8000)),
                        payload_len: 90,
                        ..Mutation::NONE
                    },
                ),
            ];
            let mut before = mib(rig.net.receiver())?;
            for (tag, m) in samples {
                let o = rig.run(&m, before.clone()).map_err(CaseError::Harness)?;
                record(ctx, &format!("sample.{tag}"), &o);
                before = o.after;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(m: Mutation) -> Vec<(&'static str, i64)> {
        model(&build(&m, [2; 6], [4; 6], 5000), 5000, true).counters
    }

    #[test]
    fn clean_frame_is_delivered() {
        let f = build(&Mutation::NONE, [2; 6], [4; 6], 5000);
        let v = model(&f, 5000, true);
        assert_eq!(
            v.counters,
            vec![("Ip.InReceives", 1), ("Ip.InDelivers", 1), ("Udp.InDatagrams", 1)]
        );
        assert_eq!(v.delivered.as_ref().map(Vec::len), Some(24));
    }

    #[test]
    fn header_errors_come_first() {
        let v = verdict(Mutation {
            version: Some(6),
            ip_csum: Some(1),
            ..Mutation::NONE
        });
        assert_eq!(v, vec![("Ip.InReceives", 1), ("Ip.InHdrErrors", 1)]);
        let v = verdict(Mutation {
            ip_csum: Some(1),
            tot_len: Some(1000),
            ..Mutation::NONE
        });
        assert!(v.contains(&("IpExt.InCsumErrors", 1)));
        let v = verdict(Mutation {
            tot_len: Some(1000),
            ..Mutation::NONE
        });
        assert!(v.contains(&("IpExt.InTruncatedPkts", 1)));
        let v = verdict(Mutation {
            tot_len: Some(19),
            ..Mutation::NONE
        });
        assert!(v.contains(&("Ip.InHdrErrors", 1)));
    }

    #[test]
    fn options_and_ttl_are_harmless() {
        let v = verdict(Mutation {
            ttl: Some(0),
            ihl: Some(Ihl::Options(10)),
            ..Mutation::NONE
        });
        assert!(v.contains(&("Udp.InDatagrams", 1)), "{v:?}");
    }

    #[test]
    fn udp_rules() {
        assert!(verdict(Mutation {
            udp_csum: Some(UdpCsum::Zero),
            ..Mutation::NONE
        })
        .contains(&("Udp.InDatagrams", 1)));
        assert!(verdict(Mutation {
            udp_csum: Some(UdpCsum::Xor(4)),
            ..Mutation::NONE
        })
        .contains(&("Udp.InCsumErrors", 1)));
        assert!(verdict(Mutation {
            udp_len: Some(7),
            ..Mutation::NONE
        })
        .contains(&("Udp.InErrors", 1)));
        assert!(verdict(Mutation {
            udp_len: Some(33),
            ..Mutation::NONE
        })
        .contains(&("Udp.InErrors", 1)));
        // A shorter UDP length trims the datagram; the old checksum no longer fits.
        assert!(verdict(Mutation {
            udp_len: Some(20),
            ..Mutation::NONE
        })
        .contains(&("Udp.InCsumErrors", 1)));
        let v = verdict(Mutation {
            closed_port: true,
            ..Mutation::NONE
        });
        assert!(v.contains(&("Udp.NoPorts", 1)) && v.contains(&("IcmpMsg.OutType3", 1)));
        let v = verdict(Mutation {
            closed_port: true,
            udp_csum: Some(UdpCsum::Xor(9)),
            ..Mutation::NONE
        });
        assert!(v.contains(&("Udp.InCsumErrors", 1)) && !v.contains(&("Udp.NoPorts", 1)));
    }
}
