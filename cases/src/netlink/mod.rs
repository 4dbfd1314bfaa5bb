//! Netlink: neighbours, routes, rules, generic netlink (catalog section 3,
//! seeds 000, 001 and 004).
//!
//! Well-formed rtnetlink requests go through the `rtnetlink` crate's
//! handles and builders on the namespace's handle ([`NetNs::rt`]): links,
//! neighbours, rules, route lookups. The raw
//! [`kharness::netlink::NlSocket`] with the message types of
//! `netlink-packet-route` / `netlink-packet-generic` stays where no builder
//! can say what a case must send — exact `nlmsg_flags` sets, deliberately
//! malformed messages, the extended ACK's text, generic netlink — each
//! place saying why. The helpers here are what several cases share: a veth whose peer stays down
//! (so the kernel itself never adds a neighbour or a route behind the
//! model's back), neighbour add/delete/dump, and a frame walker for
//! multicast notifications (the harness's request loop only reads answers
//! to its own requests).

use std::net::IpAddr;
use std::time::Duration;

use kharness::netlink::NlError;
use kharness::wait::wait_until;
use kharness::{CaseDef, CaseError, NetNs};
use netlink_packet_core::{NetlinkDeserializable, NetlinkHeader, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::link::{InfoData, InfoVeth, LinkAttribute, State};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourCacheInfo, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::RouteType;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{LinkUnspec, LinkVeth};

pub mod bench;
mod extack;
mod genl;
mod neigh;
mod route_monitor;
mod route_sm;
mod rule_uid;
mod seed_payload;
mod state_machine;

/// The family's cases.
pub fn cases() -> Vec<&'static CaseDef> {
    vec![
        &neigh::ADD_DUMP,
        &state_machine::STATE_MACHINE,
        &route_sm::ROUTE_STATE_MACHINE,
        &seed_payload::SEED_PAYLOAD,
        &route_monitor::ROUTE_MONITOR,
        &rule_uid::UID_RANGE,
        &genl::RESOLVE,
        &extack::EXTACK,
    ]
}

/// `NUD_REACHABLE` (include/uapi/linux/neighbour.h).
pub(crate) const NUD_REACHABLE: u16 = 0x02;
/// `NUD_STALE`.
pub(crate) const NUD_STALE: u16 = 0x04;
/// `NUD_NOARP`.
pub(crate) const NUD_NOARP: u16 = 0x40;
/// `NUD_PERMANENT`.
pub(crate) const NUD_PERMANENT: u16 = 0x80;
/// `NUD_CONNECTED` (include/net/neighbour.h): states whose `confirmed`
/// stamp `__neigh_update()` sets to now.
pub(crate) const NUD_CONNECTED: u16 = NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE;
/// `USER_HZ`: the unit of `struct nda_cacheinfo` (`jiffies_to_clock_t`).
pub(crate) const USER_HZ: u64 = 100;

/// The errno's symbolic name (`EEXIST`), as reports print it.
pub(crate) fn errno_name(errno: i32) -> String {
    format!("{:?}", nix::errno::Errno::from_raw(errno))
}

/// `"ok"` or the errno name of a netlink request's result.
pub(crate) fn outcome<T>(r: &Result<T, NlError>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(e) => e.errno().map(errno_name).unwrap_or_else(|| e.to_string()),
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub(crate) fn mac_str(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":")
}

/// `PERMANENT`, `STALE`… as `ip neigh` prints them; `NONE` for 0.
pub(crate) fn state_name(state: u16) -> String {
    match state {
        0 => "NONE".into(),
        0x01 => "INCOMPLETE".into(),
        NUD_REACHABLE => "REACHABLE".into(),
        NUD_STALE => "STALE".into(),
        0x08 => "DELAY".into(),
        0x10 => "PROBE".into(),
        0x20 => "FAILED".into(),
        NUD_NOARP => "NOARP".into(),
        NUD_PERMANENT => "PERMANENT".into(),
        other => format!("0x{other:02x}"),
    }
}

/// Creates a veth pair with both ends in `ns` and brings only `name` up,
/// then waits until the kernel has processed the link's carrier-off event.
///
/// The peer stays down, so `name` never has carrier: IPv6 autoconfiguration
/// (`addrconf_notify()` waits for `addrconf_link_ready()`) never starts and
/// nothing is ever transmitted, so the neighbour table holds exactly what
/// the case put there.
///
/// The wait matters: `veth_newlink()` calls `netif_carrier_off()`, whose
/// event linkwatch handles asynchronously (up to a second later for a
/// non-urgent event). When it does, `linkwatch_do_dev()` sets the RFC 2863
/// operstate and, the device being up, sends NETDEV_CHANGE; the ARP and ND
/// tables answer that with `neigh_carrier_down()`, which flushes every
/// entry of the device that is not PERMANENT. A neighbour added before that
/// moment can vanish under the model (neigh.state_machine found exactly
/// this). So: poll IFLA_OPERSTATE until it has left UNKNOWN (linkwatch ran),
/// then one more RTM_SETLINK, which takes the RTNL and so cannot complete
/// while linkwatch's RTNL section (operstate, then the notifier) is running.
///
/// Equivalent to `ip link add NAME index I type veth peer name PEER index J
/// && ip link set NAME up` followed by waiting for `ip link show NAME` to
/// say LOWERLAYERDOWN.
pub(crate) fn carrierless_veth(
    ns: &NetNs,
    name: &str,
    index: u32,
    peer: &str,
    peer_index: u32,
) -> Result<(), CaseError> {
    let rt = ns.rt();
    let p = LinkUnspec::new_with_name(peer).index(peer_index).build();
    let msg = LinkVeth::new(name, peer)
        .index(index)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(p)))
        .build();
    rt.block_on(rt.handle().link().add(msg).execute())
        .map_err(NlError::from)?;
    let up = || {
        rt.block_on(
            rt.handle()
                .link()
                .set(LinkUnspec::new_with_index(index).up().build())
                .execute(),
        )
        .map_err(NlError::from)
    };
    up()?;
    wait_until(
        &format!("linkwatch to process {name}'s carrier-off event (IFLA_OPERSTATE leaves UNKNOWN)"),
        Duration::from_secs(5),
        || operstate(ns, index),
        |s| matches!(s, Some(st) if *st != State::Unknown),
    )?;
    up()?;
    Ok(())
}

/// IFLA_OPERSTATE of a link.
pub(crate) fn operstate(ns: &NetNs, index: u32) -> Option<State> {
    get_link(ns, index).ok()?.into_iter().find_map(|a| match a {
        LinkAttribute::OperState(s) => Some(s),
        _ => None,
    })
}

/// One entry of an `RTM_GETNEIGH` dump, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NeighEntry {
    /// `ndm_ifindex`.
    pub ifindex: u32,
    /// `NDA_DST`.
    pub dst: Option<IpAddr>,
    /// `ndm_state`.
    pub state: u16,
    /// `ndm_flags`.
    pub flags: u8,
    /// `ndm_type`.
    pub kind: u8,
    /// `NDA_LLADDR` (only for `NUD_VALID` states, per `neigh_fill_info()`).
    pub lladdr: Option<Vec<u8>>,
    /// `NDA_PROBES`.
    pub probes: Option<u32>,
    /// `NDA_CACHEINFO`.
    pub cache: Option<NeighbourCacheInfo>,
}

impl NeighEntry {
    /// Decodes one neighbour message.
    pub(crate) fn from_msg(m: &NeighbourMessage) -> NeighEntry {
        let mut e = NeighEntry {
            ifindex: m.header.ifindex,
            dst: None,
            state: u16::from(m.header.state),
            flags: m.header.flags.bits(),
            kind: u8::from(m.header.kind),
            lladdr: None,
            probes: None,
            cache: None,
        };
        for a in &m.attributes {
            match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => e.dst = Some(IpAddr::V4(*v4)),
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => e.dst = Some(IpAddr::V6(*v6)),
                NeighbourAttribute::LinkLayerAddress(l) => e.lladdr = Some(l.clone()),
                NeighbourAttribute::Probes(p) => e.probes = Some(*p),
                NeighbourAttribute::CacheInfo(c) => e.cache = Some(*c),
                _ => {}
            }
        }
        e
    }

    /// The destination as text (`?` when the kernel sent none).
    pub(crate) fn dst_str(&self) -> String {
        self.dst.map(|d| d.to_string()).unwrap_or_else(|| "?".into())
    }
}

/// `RTM_GETNEIGH` dump of every neighbour table of `ns` (`AF_UNSPEC`:
/// `neigh_dump_info()` walks the ARP and ND tables; every entry carries
/// `NDA_CACHEINFO`). Equivalent to `ip neigh show nud all`.
pub(crate) fn neigh_dump(ns: &NetNs) -> Result<Vec<NeighEntry>, NlError> {
    let rt = ns.rt();
    let replies = rt.collect(rt.handle().neighbours().get().execute())?;
    Ok(replies.iter().map(NeighEntry::from_msg).collect())
}

/// The `RTM_DELNEIGH` message for `dst` on `ifindex`.
fn neigh_msg(ifindex: u32, dst: IpAddr) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.ifindex = ifindex;
    m.header.kind = RouteType::Unspec;
    m.header.flags = NeighbourFlags::empty();
    match dst {
        IpAddr::V4(v4) => {
            m.header.family = AddressFamily::Inet;
            m.attributes
                .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)));
        }
        IpAddr::V6(v6) => {
            m.header.family = AddressFamily::Inet6;
            m.attributes
                .push(NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)));
        }
    }
    m
}

/// `RTM_NEWNEIGH` with the given `nlmsg_flags` (`NLM_F_CREATE|NLM_F_EXCL` is
/// `ip neigh add`, `NLM_F_CREATE|NLM_F_REPLACE` is `ip neigh replace`,
/// `NLM_F_REPLACE` is `ip neigh change`), state and optional lladdr.
///
/// The message always comes from rtnetlink's neighbour builder
/// (`handle.neighbours().add(…)`), which also sends it for the two flag
/// sets it knows (`execute()` and `.replace().execute()`). It cannot send
/// any other set, and neigh.state_machine needs `NLM_F_REPLACE` alone
/// (`ip neigh change`) and `NLM_F_CREATE` alone (libnl's "create or
/// update"), where `neigh_add()` answers differently (ENOENT without
/// NLM_F_CREATE; no NEIGH_UPDATE_F_OVERRIDE without NLM_F_REPLACE): those
/// go through [`kharness::rt::Rtnl::request`] with their exact flags.
pub(crate) fn neigh_add(
    ns: &NetNs,
    ifindex: u32,
    dst: IpAddr,
    state: u16,
    lladdr: Option<&[u8]>,
    nlm_flags: u16,
) -> Result<(), NlError> {
    let rt = ns.rt();
    let mut req = rt
        .handle()
        .neighbours()
        .add(ifindex, dst)
        .state(NeighbourState::from(state));
    if let Some(l) = lladdr {
        req = req.link_layer_address(l);
    }
    if nlm_flags == NLM_F_CREATE | NLM_F_EXCL {
        Ok(rt.block_on(req.execute())?)
    } else if nlm_flags == NLM_F_CREATE | NLM_F_REPLACE {
        Ok(rt.block_on(req.replace().execute())?)
    } else {
        let msg = req.message_mut().clone();
        Ok(rt.request(RouteNetlinkMessage::NewNeighbour(msg), nlm_flags)?)
    }
}

/// `RTM_DELNEIGH` through `handle.neighbours().del(…)`. Equivalent to
/// `ip neigh del DST dev DEV`.
pub(crate) fn neigh_del(ns: &NetNs, ifindex: u32, dst: IpAddr) -> Result<(), NlError> {
    let rt = ns.rt();
    Ok(rt.block_on(rt.handle().neighbours().del(neigh_msg(ifindex, dst)).execute())?)
}

/// Splits a datagram read from a netlink socket into `(header, payload)`
/// frames. Hand-written because the harness's request loop only collects
/// answers to its own sequence numbers and multicast notifications carry
/// none; `netlink-packet-core` 0.9 parses one message at a time.
pub fn frames(buf: &[u8]) -> Vec<(NetlinkHeader, Vec<u8>)> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
        if len < 16 || off + len > buf.len() {
            break;
        }
        let f = &buf[off..off + len];
        let mut h = NetlinkHeader::default();
        h.length = len as u32;
        h.message_type = u16::from_ne_bytes([f[4], f[5]]);
        h.flags = u16::from_ne_bytes([f[6], f[7]]);
        h.sequence_number = u32::from_ne_bytes([f[8], f[9], f[10], f[11]]);
        h.port_number = u32::from_ne_bytes([f[12], f[13], f[14], f[15]]);
        out.push((h, f[16..].to_vec()));
        off += (len + 3) & !3;
    }
    out
}

/// Decodes an rtnetlink frame from [`frames`].
pub(crate) fn decode_route_frame(h: &NetlinkHeader, payload: &[u8]) -> Result<RouteNetlinkMessage, String> {
    RouteNetlinkMessage::deserialize(h, payload).map_err(|e| e.to_string())
}

/// `RTM_GETLINK` for one index (`handle.link().get().match_index(…)`):
/// the link's attributes.
pub(crate) fn get_link(ns: &NetNs, index: u32) -> Result<Vec<LinkAttribute>, NlError> {
    let rt = ns.rt();
    let links = rt.collect(rt.handle().link().get().match_index(index).execute())?;
    Ok(links.into_iter().next().map(|l| l.attributes).unwrap_or_default())
}
