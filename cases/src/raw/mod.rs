//! Raw sockets, packet sockets, zero copy, SCTP, socket options and message
//! flags (catalog section 4, seeds 003 and 004).
//!
//! Every case runs on the same three-namespace topology ([`net3`], by hand:
//! `netns-scripts/three-ns.sh up`):
//!
//! ```text
//!   sender                 receiver                  third
//!   s0 198.18.0.1/24 <-> r0 198.18.0.2/24
//!                          r1 198.18.1.2/24 <-> t0 198.18.1.3/24
//! ```
//!
//! The third namespace owns the address the spoofing cases forge
//! (198.18.1.3): the receiver's route back to it leaves by `r1`, so a packet
//! from "198.18.1.3" arriving on `r0` is exactly what strict reverse-path
//! filtering exists to drop. Nothing ever has a default route, so every packet
//! stays in these namespaces.
//!
//! The counters are the oracle: each case reads the MIB of the namespaces
//! it touches (`/proc/thread-self/net/{snmp,netstat,snmp6}`) before and after
//! and [`check_mib`] compares the deltas with the model's. So that only the
//! case's own packets move them, every namespace has IPv6 disabled
//! (`net.ipv6.conf.{all,default}.disable_ipv6=1`: no router solicitations, no
//! MLD reports, no DAD on the veths), `rp_filter` and `log_martians` are set
//! explicitly (IPv4 `conf/all` and `conf/default` are otherwise copied from the
//! host's, see `net.core.devconf_inherit_init_net`), and `icmp_ratemask` is 0
//! so that no ICMP error the model predicts is withheld by the rate limiter
//! (`icmpv4_mask_allow()` lets every type outside the mask through).
//!
//! Version-dependent models read what the kernel exports (Ip.OutTransmits
//! exists from 6.3, when OutRequests moved to `__ip_local_out()`) or its
//! version; the family was run with `kharness matrix` on Debian's 5.10, 6.1,
//! 6.12 and 7.2 kernels (where the sctp cases run for real) and on the 6.18
//! host.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use kharness::procfs::Mib;
use kharness::wait::wait_for;
use kharness::{CaseDef, CaseError, Ctx, NetNs, Topology};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use nix::sys::socket::{self, SockaddrIn};

pub mod bench;
pub mod icmp;
mod msgflags;
mod packet;
mod procfs;
mod sctp;
mod sockopt;
mod spoof;
mod verdict;
mod zerocopy;

pub use bench::bench_zerocopy;

/// The family's cases (catalog section 4).
pub fn cases() -> Vec<&'static CaseDef> {
    vec![
        &icmp::ICMP_ECHO,
        &icmp::ICMP_FILTER_CASE,
        &spoof::HDRINCL_SPOOF,
        &spoof::IPPROTO_RAW,
        &spoof::RP_FILTER,
        &verdict::VERDICT_PROPERTY,
        &spoof::NONLOCAL_BIND,
        &packet::COOKED_VS_RAW,
        &packet::RX_RING,
        &packet::TX_RING,
        &zerocopy::VMSPLICE,
        &sctp::ONE_TO_ONE,
        &sctp::ONE_TO_MANY,
        &sockopt::ROUNDTRIP,
        &msgflags::MSGFLAGS,
        &procfs::SOCKET_INODE,
    ]
}

/// The sender's address (on `s0`).
pub(crate) const SENDER: [u8; 4] = [198, 18, 0, 1];
/// The receiver's address on the sender's link (`r0`).
pub(crate) const RECEIVER: [u8; 4] = [198, 18, 0, 2];
/// The third namespace's address (on `t0`): the one the spoofing cases forge.
pub(crate) const THIRD: [u8; 4] = [198, 18, 1, 3];
/// A test address no namespace owns and no route covers.
pub(crate) const UNROUTABLE: [u8; 4] = [198, 19, 255, 1];
/// The sender's link.
pub(crate) const S_DEV: &str = "s0";
/// The receiver's link to the third namespace.
pub(crate) const R1_DEV: &str = "r1";
/// The third namespace's link.
pub(crate) const T_DEV: &str = "t0";

/// How long any wait of this family may take. Generous: every condition
/// here becomes true in well under a millisecond; the bound only turns a
/// broken kernel into a failure instead of a hang.
pub(crate) const WAIT: Duration = Duration::from_secs(2);

/// Options for [`net3`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Net3Opts {
    /// `net.ipv4.conf.{all,default}.rp_filter` in the receiver (0 off, 1
    /// strict, 2 loose). The sender and third namespaces always get 0.
    pub rp_filter: u8,
    /// `net.ipv4.conf.{all,default}.log_martians` in the receiver.
    pub log_martians: bool,
    /// Name of the receiver's link to the sender (`r0` unless a case needs a
    /// name unique on the host, for the kernel log).
    pub r_dev: Option<String>,
    /// Further sysctls: `(namespace, key, value)`.
    pub sysctls: Vec<(&'static str, &'static str, String)>,
}

/// The three-namespace topology, built.
pub(crate) struct Net3 {
    pub topo: Topology,
    pub r_dev: String,
}

impl Net3 {
    pub fn sender(&self) -> &NetNs {
        self.topo.ns("sender")
    }
    pub fn receiver(&self) -> &NetNs {
        self.topo.ns("receiver")
    }
    pub fn third(&self) -> &NetNs {
        self.topo.ns("third")
    }
    /// ifindex of `s0` in the sender.
    pub fn s_ifindex(&self) -> u32 {
        self.topo.ifindex("sender", S_DEV)
    }
    /// ifindex of `r0` in the receiver.
    pub fn r_ifindex(&self) -> u32 {
        self.topo.ifindex("receiver", &self.r_dev)
    }
}

/// Builds the topology. Equivalent to `netns-scripts/three-ns.sh up`.
pub(crate) fn net3(opts: Net3Opts) -> Result<Net3, CaseError> {
    let r_dev = opts.r_dev.clone().unwrap_or_else(|| "r0".to_string());
    let mut b = Topology::builder()
        .ns("sender")
        .ns("receiver")
        .ns("third")
        .veth(("sender", S_DEV), ("receiver", &r_dev))
        .veth(("receiver", R1_DEV), ("third", T_DEV))
        .addr("sender", S_DEV, "198.18.0.1/24")
        .addr("receiver", &r_dev, "198.18.0.2/24")
        .addr("receiver", R1_DEV, "198.18.1.2/24")
        .addr("third", T_DEV, "198.18.1.3/24");
    for ns in ["sender", "receiver", "third"] {
        let rp = if ns == "receiver" { opts.rp_filter } else { 0 }.to_string();
        let martians = if ns == "receiver" && opts.log_martians {
            "1"
        } else {
            "0"
        };
        for scope in ["all", "default"] {
            b = b
                .sysctl(ns, &format!("net.ipv6.conf.{scope}.disable_ipv6"), "1")
                .sysctl(ns, &format!("net.ipv4.conf.{scope}.rp_filter"), &rp)
                .sysctl(ns, &format!("net.ipv4.conf.{scope}.log_martians"), martians);
        }
        b = b.sysctl(ns, "net.ipv4.icmp_ratemask", "0");
    }
    for (ns, k, v) in &opts.sysctls {
        b = b.sysctl(ns, k, v);
    }
    Ok(Net3 {
        topo: b.build()?,
        r_dev,
    })
}

/// The errno of an I/O error by name (`EADDRNOTAVAIL`), or `ok`.
pub(crate) fn errno_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{:?}", nix::errno::Errno::from_raw(n)),
        None => e.to_string(),
    }
}

/// `Ok(_)` as "ok", `Err(e)` as its errno name.
pub(crate) fn outcome<T>(r: &io::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => errno_name(e),
    }
}

/// A namespace's MIB.
pub(crate) fn mib(ns: &NetNs) -> Result<Mib, CaseError> {
    Ok(ns.mib()?)
}

/// Waits until every `(key, delta)` has moved by at least `delta` since
/// `before`, then returns the namespace's MIB; after [`WAIT`] it returns the
/// MIB as it is (the checks then say what did not happen).
pub(crate) fn wait_mib(ns: &NetNs, before: &Mib, until: &[(&str, i64)]) -> Result<Mib, CaseError> {
    let done = |m: &Mib| {
        until
            .iter()
            .all(|(k, d)| m.get(k).unwrap_or(0) - before.get(k).unwrap_or(0) >= *d)
    };
    match wait_for("MIB counters", WAIT, || ns.mib().ok().filter(|m| done(m))) {
        Ok(m) => Ok(m),
        Err(_) => mib(ns),
    }
}

/// Counters every case of this family claims stay put unless predicted:
/// the whole Ip, Icmp, IcmpMsg, Udp, UdpLite and Tcp tables, and the IpExt /
/// TcpExt counters that mean a drop.
pub(crate) const QUIET: &[&str] = &[
    "Ip.",
    "Icmp.",
    "IcmpMsg.",
    "Udp.",
    "UdpLite.",
    "Tcp.",
    "TcpExt.IPReversePathFilter",
    "IpExt.InCsumErrors",
    "IpExt.InTruncatedPkts",
    "IpExt.InNoRoutes",
];

/// For cases with TCP traffic, whose segment counts depend on ACK timing:
/// only the error counters are claimed quiet. (Not Tcp.RetransSegs: a tail
/// loss probe fires when an ACK is late by more than the probe timeout, which
/// scheduling on a loaded machine can cause without any loss.)
pub(crate) const QUIET_TCP: &[&str] = &[
    "Ip.InHdrErrors",
    "Ip.InAddrErrors",
    "Ip.InUnknownProtos",
    "Ip.InDiscards",
    "Ip.OutDiscards",
    "Ip.OutNoRoutes",
    "Icmp.",
    "IcmpMsg.",
    "Udp.",
    "UdpLite.",
    "Tcp.AttemptFails",
    "Tcp.EstabResets",
    "Tcp.InErrs",
    "Tcp.OutRsts",
    "Tcp.InCsumErrors",
    "TcpExt.IPReversePathFilter",
    "IpExt.InCsumErrors",
    "IpExt.InTruncatedPkts",
];

/// The model's output counters for `n` locally generated datagrams:
/// `Ip.OutRequests` (`ip_local_out` / `raw_send_hdrinc`) and, on kernels
/// that export it (6.3+), `Ip.OutTransmits` (`ip_output`).
pub(crate) fn ip_out(before: &Mib, n: i64) -> Vec<(&'static str, i64)> {
    let mut v = vec![("Ip.OutRequests", n)];
    if before.get("Ip.OutTransmits").is_some() {
        v.push(("Ip.OutTransmits", n));
    }
    v
}

/// The output counters for `n` packets sent through an IPv4 IP_HDRINCL raw
/// socket: `raw_send_hdrinc()` hands the packet to `NF_HOOK(LOCAL_OUT) ->
/// dst_output()` itself, bypassing `__ip_local_out()`. Since 6.3 (the commit
/// that added OutTransmits) OutRequests is counted in `__ip_local_out()`, so
/// hdrincl packets count only OutTransmits (in `ip_output()`); before, the
/// counter named OutRequests was IPSTATS_MIB_OUTPKTS, counted in
/// `ip_output()`, and they counted there.
pub(crate) fn ip_out_hdrincl(before: &Mib, n: i64) -> Vec<(&'static str, i64)> {
    if before.get("Ip.OutTransmits").is_some() {
        vec![("Ip.OutRequests", 0), ("Ip.OutTransmits", n)]
    } else {
        vec![("Ip.OutRequests", n)]
    }
}

/// Compares one namespace's MIB deltas with the model: every predicted
/// counter exactly; every other counter matching `quiet` stays put (one
/// check, `SIDE.quiet_tables_moved`, whose observation lists those that
/// moved: the model says none); any other counter that moved is recorded as
/// an observation (`SIDE.moved.KEY`).
pub(crate) fn check_mib(
    ctx: &mut Ctx,
    side: &str,
    before: &Mib,
    after: &Mib,
    predicted: &[(&str, i64)],
    quiet: &[&str],
    source: &str,
) {
    let delta = before.delta(after);
    for (k, v) in predicted {
        ctx.check_eq(format!("{side}.{k}"), *v, delta.get(*k).copied().unwrap_or(0), source);
    }
    let mut unpredicted = serde_json::Map::new();
    for (k, v) in &delta {
        if predicted.iter().any(|(p, _)| p == k) {
            continue;
        }
        if quiet.iter().any(|q| k.starts_with(q)) {
            unpredicted.insert(k.clone(), (*v).into());
        } else {
            ctx.observe_volatile(format!("{side}.moved.{k}"), *v);
        }
    }
    // One claim, evaluated over every counter of the quiet tables whether or
    // not one moved: it counts as a check on every run, not only when it
    // fails.
    ctx.check_eq(
        format!("{side}.quiet_tables_moved"),
        serde_json::json!({}),
        serde_json::Value::Object(unpredicted),
        format!(
            "the model names every counter of {} that moves; no other one does",
            quiet.join(" ")
        ),
    );
}

/// RFC 1071 sum of `data` as big-endian 16-bit words, added to `init`.
pub(crate) fn sum16(data: &[u8], init: u32) -> u32 {
    let mut s = init as u64;
    for c in data.chunks(2) {
        s += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u32
}

/// The internet checksum of `data` (what goes in the header field).
pub(crate) fn inet_checksum(data: &[u8]) -> u16 {
    !(sum16(data, 0) as u16)
}

/// A UDP socket in `ns` bound to `ip:port` (0: ephemeral).
pub(crate) fn udp_bound(ns: &NetNs, ip: [u8; 4], port: u16) -> Result<UdpSocket, CaseError> {
    let fd = ns.socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    socket::bind(fd.as_raw_fd(), &SockaddrIn::new(ip[0], ip[1], ip[2], ip[3], port))?;
    Ok(UdpSocket::from(fd))
}

/// The local port of a bound socket.
pub(crate) fn port_of(s: &UdpSocket) -> Result<u16, CaseError> {
    Ok(s.local_addr()?.port())
}

/// Polls a non-blocking datagram socket until one datagram arrives or
/// [`WAIT`] passes.
pub(crate) fn recv_wait(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    s.set_nonblocking(true).ok()?;
    let mut buf = vec![0u8; 65536];
    wait_for("a datagram", WAIT, || {
        s.recv_from(&mut buf).ok().map(|(n, a)| (buf[..n].to_vec(), a))
    })
    .ok()
}

/// Reads every datagram queued now (non-blocking).
pub(crate) fn drain(s: &UdpSocket) -> Vec<(Vec<u8>, SocketAddr)> {
    let _ = s.set_nonblocking(true);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok((n, a)) = s.recv_from(&mut buf) {
        out.push((buf[..n].to_vec(), a));
    }
    out
}

/// Polls until `n` datagrams have been read (or [`WAIT`] passes).
pub(crate) fn recv_n(s: &UdpSocket, n: usize) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut got = Vec::new();
    let _ = wait_for("datagrams", WAIT, || {
        got.extend(drain(s));
        (got.len() >= n).then_some(())
    });
    got
}

/// `ip:port` as a std address.
pub(crate) fn sa(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip.into(), port))
}

/// `RTM_GETLINK` for one link. Equivalent to `ip -n NS -d link show DEV`.
pub(crate) fn get_link(ns: &NetNs, ifindex: u32) -> Result<LinkMessage, CaseError> {
    let rt = ns.rt();
    let replies = rt
        .collect(rt.handle().link().get().match_index(ifindex).execute())
        .map_err(kharness::netlink::NlError::from)?;
    replies
        .into_iter()
        .next()
        .ok_or_else(|| CaseError::Harness(format!("RTM_GETLINK {ifindex}: no RTM_NEWLINK in the answer")))
}

/// A link's hardware address, from `RTM_GETLINK` (`IFLA_ADDRESS`).
/// (`/sys/class/net` would show the namespace that mounted sysfs, not ours.)
pub(crate) fn mac_of(ns: &NetNs, ifindex: u32) -> Result<[u8; 6], CaseError> {
    let link = get_link(ns, ifindex)?;
    link.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Address(m) if m.len() == 6 => Some([m[0], m[1], m[2], m[3], m[4], m[5]]),
            _ => None,
        })
        .ok_or_else(|| CaseError::Harness(format!("link {ifindex} has no 6-byte IFLA_ADDRESS")))
}

/// An `AF_PACKET` socket in `ns` of `ty` (`SOCK_RAW`/`SOCK_DGRAM`) for
/// `proto` (`ETH_P_*`, host order), bound to `ifindex`.
pub(crate) fn packet_socket(ns: &NetNs, ty: i32, proto: u16, ifindex: u32) -> Result<OwnedFd, CaseError> {
    let fd = ns.socket(libc::AF_PACKET, ty, i32::from(proto.to_be()))?;
    socket::bind(fd.as_raw_fd(), &kharness::sys::link_addr(ifindex as i32, proto, [0; 6]))?;
    Ok(fd)
}

/// An Ethernet + IPv4 + UDP frame built by etherparse (both checksums
/// computed): `src_mac -> dst_mac`, `src:sport -> dst:dport`, TTL 64.
pub(crate) fn udp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, 64)
        .udp(sport, dport);
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, payload).expect("writing to a Vec cannot fail");
    v
}

/// An IPv4 + UDP packet built by etherparse (both checksums computed).
pub(crate) fn udp_packet(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ipv4(src, dst, 64).udp(sport, dport);
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, payload).expect("writing to a Vec cannot fail");
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2 (folded).
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum16(&d, 0), 0xddf2);
        assert_eq!(inet_checksum(&d), !0xddf2);
        // A buffer that carries its own checksum sums to 0xffff.
        let mut e = d.to_vec();
        e.extend_from_slice(&inet_checksum(&d).to_be_bytes());
        assert_eq!(sum16(&e, 0), 0xffff);
        // Odd length pads with a zero byte.
        assert_eq!(sum16(&[0x01], 0), 0x0100);
    }

    #[test]
    fn etherparse_frames_carry_valid_checksums() {
        let f = udp_frame([2; 6], [4; 6], SENDER, RECEIVER, 1000, 2000, b"hello");
        assert_eq!(f.len(), 14 + 20 + 8 + 5);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(sum16(&f[14..34], 0), 0xffff, "IPv4 header checksum");
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&SENDER);
        pseudo.extend_from_slice(&RECEIVER);
        pseudo.extend_from_slice(&[0, 17, 0, 13]);
        assert_eq!(sum16(&f[34..], sum16(&pseudo, 0)), 0xffff, "UDP checksum");
    }
}
