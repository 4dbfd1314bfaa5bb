//! route.monitor: route notifications on RTNLGRP_IPV4_ROUTE and
//! RTNLGRP_IPV6_ROUTE for one add and one delete per family.

use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use kharness::netlink::{NlError, NlSocket};
use kharness::wait::{wait_for, wait_until};
use kharness::{CaseDef, CaseError, Ctx, NetNs, Topology};
use netlink_packet_route::link::LinkAttribute;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use serde_json::{json, Value};

use super::{decode_route_frame, frames, get_link};

/// `RTNLGRP_IPV4_ROUTE` (include/uapi/linux/rtnetlink.h).
const RTNLGRP_IPV4_ROUTE: u32 = 7;
/// `RTNLGRP_IPV6_ROUTE`.
const RTNLGRP_IPV6_ROUTE: u32 = 11;
/// `RTM_NEWROUTE`.
const RTM_NEWROUTE: u16 = 24;
/// `RTM_DELROUTE`.
const RTM_DELROUTE: u16 = 25;
/// Index of veth0 in the `router` namespace (the builder counts from 2).
const OIF: u32 = 2;
/// How long one notification may take to arrive.
const DEADLINE: Duration = Duration::from_secs(2);

/// route.monitor
pub static ROUTE_MONITOR: CaseDef = CaseDef {
    id: "route.monitor",
    variants: &[],
    summary: "adding then deleting a route notifies exactly one RTM_NEWROUTE then one RTM_DELROUTE",
    drives: "Namespaces router and peer joined by veth0 (198.18.0.1/24 + 2001:db8::1/64 on the \
        router, .2 / ::2 on the peer; addr_gen_mode=none so no link-local address is made). \
        Once the router has carrier and its own IPv6 routes (ff00::/8 and the local route of \
        2001:db8::1, which addrconf adds asynchronously) are in place, polled by dumping the \
        IPv6 FIB, a second rtnetlink socket in the \
        router joins RTNLGRP_IPV4_ROUTE and RTNLGRP_IPV6_ROUTE; then route add and delete of \
        198.19.1.0/24 via 198.18.0.2 dev veth0, then of 2001:db8:1::/64 via 2001:db8::2 dev \
        veth0, all in table main.",
    observes: "Every message the subscribed socket receives, read non-blocking and polled to a \
        deadline; after the last delete, the socket is drained until recv() says EAGAIN.",
    predicts: "Nothing queued before the first add; then exactly four notifications, in order: \
        RTM_NEWROUTE and RTM_DELROUTE for the IPv4 route, then for the IPv6 route; each with \
        the destination and prefix length, RTA_GATEWAY, RTA_OIF = veth0, rtm_table and \
        RTA_TABLE = 254 (main), and the protocol the request gave (boot); nothing else.",
    why: "IPv4: fib_table_insert() and fib_table_delete() (net/ipv4/fib_trie.c) call rtmsg_fib() \
        once each, which rtnl_notify()s RTNLGRP_IPV4_ROUTE with fib_dump_info(). IPv6: \
        fib6_add_rt2node() and fib6_del_route() (net/ipv6/ip6_fib.c) call inet6_rt_notify() to \
        RTNLGRP_IPV6_ROUTE. Multicast delivery goes to every socket that joined the group \
        (netlink_broadcast). rtnetlink(7), netlink(7) NETLINK_ADD_MEMBERSHIP.",
    kernels: "Unchanged in substance since 2.6. Since 4.x the IPv6 multicast route ff00::/8 lives \
        in table local; since 5.x IPv6 notifications may coalesce multipath siblings (not \
        exercised here).",
    shell: "ip -n router monitor route & ip -n router route add 198.19.1.0/24 via 198.18.0.2 \
        dev veth0; ip -n router route del 198.19.1.0/24",
    source: "seed 004 (rtnl_listen example: 'got RTM_NEWROUTE message')",
    timeout: Duration::from_secs(10),
    run,
};

/// A route the case adds: (destination, prefix, gateway).
fn routes() -> [(IpAddr, u8, IpAddr); 2] {
    [
        ("198.19.1.0".parse().unwrap(), 24, "198.18.0.2".parse().unwrap()),
        ("2001:db8:1::".parse().unwrap(), 64, "2001:db8::2".parse().unwrap()),
    ]
}

fn raddr(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

fn route_msg(dst: IpAddr, plen: u8, gw: IpAddr) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = if dst.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    m.header.destination_prefix_length = plen;
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::Boot;
    m.header.scope = RouteScope::Universe;
    m.header.kind = RouteType::Unicast;
    m.attributes.push(RouteAttribute::Destination(raddr(dst)));
    m.attributes.push(RouteAttribute::Gateway(raddr(gw)));
    m.attributes.push(RouteAttribute::Oif(OIF));
    m
}

fn addr_of(a: &RouteAddress) -> Option<String> {
    match a {
        RouteAddress::Inet(v) => Some(v.to_string()),
        RouteAddress::Inet6(v) => Some(v.to_string()),
        _ => None,
    }
}

/// One notification, reduced to what the model speaks about.
fn summarize(ty: u16, m: &RouteMessage) -> Value {
    let mut dst = None;
    let mut gw = None;
    let mut oif = None;
    let mut table = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = addr_of(d),
            RouteAttribute::Gateway(g) => gw = addr_of(g),
            RouteAttribute::Oif(o) => oif = Some(*o),
            RouteAttribute::Table(t) => table = Some(*t),
            _ => {}
        }
    }
    json!({
        "type": match ty { RTM_NEWROUTE => "RTM_NEWROUTE", RTM_DELROUTE => "RTM_DELROUTE", _ => "other" },
        "family": u8::from(m.header.address_family),
        "dst": dst.map(|d| format!("{d}/{}", m.header.destination_prefix_length)),
        "gateway": gw,
        "oif": oif,
        "rtm_table": m.header.table,
        "RTA_TABLE": table,
        "protocol": u8::from(m.header.protocol),
    })
}

/// Reads everything queued on the non-blocking socket into `into`, until
/// recv() answers EAGAIN; `Ok(false)` when it did so at once.
fn recv_queued(sock: &NlSocket, into: &mut Vec<Value>) -> Result<bool, CaseError> {
    let mut got = false;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match sock.socket().recv(&mut &mut buf[..], 0) {
            Ok(n) => {
                got = true;
                for (h, payload) in frames(&buf[..n]) {
                    match decode_route_frame(&h, &payload) {
                        Ok(RouteNetlinkMessage::NewRoute(m)) | Ok(RouteNetlinkMessage::DelRoute(m)) => {
                            into.push(summarize(h.message_type, &m))
                        }
                        Ok(other) => into.push(json!({ "type": format!("{other:?}") })),
                        Err(e) => into.push(json!({ "type": h.message_type, "undecoded": e })),
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(got),
            Err(e) => return Err(e.into()),
        }
    }
}

/// True once the router's IPv6 setup that addrconf finishes asynchronously
/// (on carrier-up and after the nodad address's DAD work) is in the FIB:
/// the multicast route ff00::/8 on veth0 (addrconf_add_mroute()) and the
/// local route of 2001:db8::1 (__ipv6_ifa_notify() -> ip6_ins_rt()). Until
/// then those routes could be notified in the middle of the case.
fn addrconf_settled(ns: &NetNs) -> bool {
    let carrier = get_link(ns, OIF)
        .map(|attrs| attrs.iter().any(|a| matches!(a, LinkAttribute::Carrier(1))))
        .unwrap_or(false);
    if !carrier {
        return false;
    }
    // `ip -6 route show table all` through `handle.route().get(…)` (no
    // destination: a dump).
    let mut q = RouteMessage::default();
    q.header.address_family = AddressFamily::Inet6;
    let rt = ns.rt();
    let Ok(dump) = rt.collect(rt.handle().route().get(q).execute()) else {
        return false;
    };
    let (mut mcast, mut local) = (false, false);
    for m in dump {
        let dst = m.attributes.iter().find_map(|a| match a {
            RouteAttribute::Destination(d) => addr_of(d),
            _ => None,
        });
        let oif = m.attributes.iter().find_map(|a| match a {
            RouteAttribute::Oif(o) => Some(*o),
            _ => None,
        });
        match (dst.as_deref(), m.header.destination_prefix_length) {
            (Some("ff00::"), 8) if oif == Some(OIF) => mcast = true,
            (Some("2001:db8::1"), 128) if m.header.kind == RouteType::Local => local = true,
            _ => {}
        }
    }
    mcast && local
}

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    let topo = Topology::builder()
        .ns("router")
        .ns("peer")
        .sysctl("router", "net.ipv6.conf.default.addr_gen_mode", "1")
        .sysctl("peer", "net.ipv6.conf.default.addr_gen_mode", "1")
        .veth(("router", "veth0"), ("peer", "veth0"))
        .addr("router", "veth0", "198.18.0.1/24")
        .addr("peer", "veth0", "198.18.0.2/24")
        .addr("router", "veth0", "2001:db8::1/64")
        .addr("peer", "veth0", "2001:db8::2/64")
        .build()?;
    let ns = topo.ns("router");
    let t = Instant::now();
    wait_for(
        "addrconf to install ff00::/8 and the local route of 2001:db8::1",
        Duration::from_secs(5),
        || addrconf_settled(ns).then_some(()),
    )?;
    ctx.observe_volatile("addrconf_settle_ms", t.elapsed().as_millis() as u64);

    // The listening socket stays raw: the case reads every datagram the
    // groups queue, frame by frame and undecodable ones included, and must
    // see an empty queue before the first request; rtnetlink's multicast
    // receiver hands over only what its connection decoded, when its
    // connection is driven.
    let mon = ns.netlink(netlink_sys::constants::NETLINK_ROUTE)?;
    mon.socket().add_membership(RTNLGRP_IPV4_ROUTE)?;
    mon.socket().add_membership(RTNLGRP_IPV6_ROUTE)?;
    mon.socket().set_non_blocking(true)?;

    let mut seen = Vec::new();
    recv_queued(&mon, &mut seen)?;
    ctx.check_eq(
        "queued_before_add",
        json!([]),
        json!(seen.clone()),
        "nothing was changed since the socket joined",
    );
    seen.clear();

    let mut expected = Vec::new();
    for (dst, plen, gw) in routes() {
        for (ty, name) in [(RTM_NEWROUTE, "add"), (RTM_DELROUTE, "del")] {
            let msg = route_msg(dst, plen, gw);
            // `ip route add` / `ip route del` through the route handle
            // (NLM_F_CREATE|NLM_F_EXCL, and no flag, as before).
            let rt = ns.rt();
            let r = if ty == RTM_NEWROUTE {
                rt.block_on(rt.handle().route().add(msg.clone()).execute())
            } else {
                rt.block_on(rt.handle().route().del(msg.clone()).execute())
            }
            .map_err(NlError::from);
            ctx.check_eq(
                format!("route.{name}.{dst}/{plen}"),
                "ok",
                super::outcome(&r),
                "a valid route request",
            );
            let mut model = msg;
            model
                .attributes
                .push(RouteAttribute::Table(RouteHeader::RT_TABLE_MAIN as u32));
            expected.push(summarize(ty, &model));
            let want = expected.len();
            // Poll the non-blocking socket until the notification is there.
            let r = wait_until(
                &format!("notification {want} ({name} {dst}/{plen})"),
                DEADLINE,
                || {
                    let _ = recv_queued(&mon, &mut seen);
                    seen.len()
                },
                |n| *n >= want,
            );
            if let Err(e) = r {
                ctx.note(e.to_string());
            }
        }
    }
    // Nothing else: what is queued now is all there is (EAGAIN ends it).
    recv_queued(&mon, &mut seen)?;
    ctx.check_eq(
        "notifications",
        json!(expected),
        json!(seen),
        "rtmsg_fib() (IPv4) / inet6_rt_notify() (IPv6): one RTM_NEWROUTE per insert, one RTM_DELROUTE per delete",
    );
    ctx.check_eq(
        "notifications.count",
        4,
        seen.len(),
        "two routes, one add and one delete each",
    );
    Ok(())
}
