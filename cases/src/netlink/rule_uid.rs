//! rule.uid_range: per-user routing with FRA_UID_RANGE, the Linux
//! counterpart of seed 000's `pf` rule "route-to … user test1".

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::time::Duration;

use kharness::wait::wait_until;
use kharness::{CaseDef, CaseError, Ctx, NetNs, Topology};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::LinkAttribute;
use netlink_packet_route::route::{RouteAttribute, RouteFlags, RouteHeader, RouteProtocol};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleUidRange};
use nix::unistd::{setfsuid, Uid};
use rtnetlink::{IpVersion, RouteMessageBuilder};
use serde_json::json;

use super::{get_link, neigh_add, NUD_PERMANENT};

/// The routing table of the second link.
const TABLE: u32 = 100;
/// The rule's priority.
const PRIORITY: u32 = 100;
/// The uid range the rule matches.
const UID_LO: u32 = 2000;
const UID_HI: u32 = 2009;
/// A uid inside the range, and one outside it.
const UID_IN: u32 = 2001;
const UID_OUT: u32 = 3001;
/// The destination both sockets send to: routed, never local anywhere.
const DST: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 10);
/// Discard port.
const PORT: u16 = 9;

/// rule.uid_range
pub static UID_RANGE: CaseDef = CaseDef {
    id: "rule.uid_range",
    variants: &[],
    summary: "a uidrange policy rule sends one uid's sockets out of the second link",
    drives: "Three namespaces: client with veth0 to `a` (198.18.1.0/24) and veth1 to `b` \
        (198.18.2.0/24), IPv6 disabled. Main table: 198.19.0.0/24 via 198.18.1.2 (veth0); table \
        100: 198.19.0.0/24 via 198.18.2.2 (veth1); rule `uidrange 2000-2009 lookup 100 pref \
        100`; PERMANENT neighbours for both gateways so no ARP is sent. Two UDP sockets are \
        created on threads whose fsuid is 2001 and 3001 (raw setfsuid(2), per thread), and each \
        sends one datagram to 198.19.0.10:9.",
    observes: "RTM_GETROUTE for 198.19.0.10 with RTA_UID 2001, 3001 and 0; the rule as \
        RTM_GETRULE dumps it; each socket's uid in /proc/net/udp; the fsuid of the creating and \
        the calling thread; IFLA_STATS64 (RTM_GETLINK) of the client's veths and the peers' \
        veth0 before and after each send.",
    predicts: "The route lookup for uid 2001 gives oif veth1 and table 100, for 3001 and 0 oif \
        veth0 and table 254; the rule dumps back with uid range 2000-2009 and table 100; the \
        sockets belong to uid 2001 and 3001 while the calling thread keeps fsuid 0; the uid-2001 \
        datagram is one more packet out of client veth1 and into b's veth0 and nothing on the \
        other pair; the uid-3001 datagram the reverse.",
    why: "fib_rule_match() (net/core/fib_rules.c) compares fl->flowi_uid with the rule's \
        FRA_UID_RANGE; ip_route_output_flow() fills flowi_uid from sock_net_uid(sk) = \
        sk->sk_uid, which sock_init_data() copies from the socket inode's i_uid, set by \
        sock_alloc() from current_fsuid() of the creating thread. inet_rtm_getroute() takes the \
        uid from RTA_UID. setfsuid(2) changes only the calling thread's credentials (glibc does \
        not broadcast it to other threads, unlike setuid/seteuid). ip-rule(8) `uidrange`.",
    kernels: "FRA_UID_RANGE and RTA_UID since 4.10; before that the rule is refused (EINVAL or \
        ignored attribute) and the case skips.",
    shell: "ip -n client rule add uidrange 2000-2009 lookup 100 pref 100; ip -n client route get \
        198.19.0.10 uid 2001; ip -n b -s link show veth0",
    source: "seed 000 (Enable user-id based packet routing on Mac OS)",
    timeout: Duration::from_secs(10),
    run,
};

/// `ip route add 198.19.0.0/24 via GW dev OIF table T`, through
/// rtnetlink's route builder and `handle.route().add(…)`.
fn add_route(ns: &NetNs, gw: Ipv4Addr, oif: u32, table: u32) -> Result<(), kharness::netlink::NlError> {
    let msg = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(Ipv4Addr::new(198, 19, 0, 0), 24)
        .gateway(gw)
        .output_interface(oif)
        .table_id(table)
        .protocol(RouteProtocol::Boot)
        .build();
    let rt = ns.rt();
    Ok(rt.block_on(rt.handle().route().add(msg).execute())?)
}

/// `ip route get 198.19.0.10 uid UID`: (oif, table). With `lookup_table`
/// the request carries RTM_F_LOOKUP_TABLE, without it the kernel reports
/// RT_TABLE_MAIN whatever table matched (inet_rtm_getroute()).
fn route_get(
    ns: &NetNs,
    uid: u32,
    lookup_table: bool,
) -> Result<(Option<u32>, Option<u32>), kharness::netlink::NlError> {
    // The builder has no RTA_UID and no RTM_F_LOOKUP_TABLE: both go into
    // its message by hand. Its header defaults (table main, protocol
    // static, scope universe, type unicast) are ignored by
    // inet_rtm_getroute() on a socket without NETLINK_GET_STRICT_CHK.
    let mut m = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(DST, 32)
        .build();
    if lookup_table {
        m.header.flags = RouteFlags::LookupTable;
    }
    m.attributes.push(RouteAttribute::Uid(uid));
    let rt = ns.rt();
    let r = rt.collect(rt.handle().route().get(m).execute())?;
    let mut out = (None, None);
    for a in r.into_iter().flat_map(|m| m.attributes) {
        match a {
            RouteAttribute::Oif(o) => out.0 = Some(o),
            RouteAttribute::Table(t) => out.1 = Some(t),
            _ => {}
        }
    }
    Ok(out)
}

/// (rx_packets, tx_packets) of a link from IFLA_STATS64.
fn packets(ns: &NetNs, index: u32) -> Result<(u64, u64), CaseError> {
    get_link(ns, index)?
        .into_iter()
        .find_map(|a| match a {
            LinkAttribute::Stats64(s) => Some((s.rx_packets, s.tx_packets)),
            _ => None,
        })
        .ok_or_else(|| CaseError::Harness(format!("no IFLA_STATS64 for link {index}")))
}

fn mac_of(ns: &NetNs, index: u32) -> Result<Vec<u8>, CaseError> {
    get_link(ns, index)?
        .into_iter()
        .find_map(|a| match a {
            LinkAttribute::Address(m) => Some(m),
            _ => None,
        })
        .ok_or_else(|| CaseError::Harness(format!("no IFLA_ADDRESS for link {index}")))
}

/// The `fsuid` field (4th of `Uid:`) of a `/proc/…/status` file.
fn fsuid_of(status: &str) -> Option<u32> {
    status
        .lines()
        .find(|l| l.starts_with("Uid:"))?
        .split_whitespace()
        .nth(4)?
        .parse()
        .ok()
}

/// Opens a UDP socket in `ns` from a thread whose fsuid is `uid`: the
/// socket's inode, and so `sk->sk_uid`, belongs to `uid`. Returns the socket,
/// the creating thread's fsuid while it held `uid`, and the fsuid of a
/// second thread of the process at that moment (must stay 0).
fn socket_as(ns: &NetNs, uid: u32) -> Result<(UdpSocket, Option<u32>, Option<u32>), CaseError> {
    let main_status = format!("/proc/self/task/{}/status", nix::unistd::gettid());
    let r = ns.run(|| {
        let old = setfsuid(Uid::from_raw(uid));
        // setfsuid(2) returns the previous value even when it fails; a
        // second call reads back the value actually in force.
        let now = setfsuid(Uid::from_raw(uid)).as_raw();
        let mine = std::fs::read_to_string("/proc/thread-self/status")
            .ok()
            .and_then(|s| fsuid_of(&s));
        let other = std::fs::read_to_string(&main_status).ok().and_then(|s| fsuid_of(&s));
        let sock = UdpSocket::bind("0.0.0.0:0");
        setfsuid(old);
        (now, sock, mine, other)
    })?;
    let (now, sock, mine, other) = r;
    if now != uid {
        return Err(CaseError::Skip(format!(
            "cannot take fsuid {uid} here (uid not mapped in this user namespace?)"
        )));
    }
    Ok((sock?, mine, other))
}

/// The uid column of the /proc/net/udp line bound to `port` (inode owner).
fn proc_udp_uid(ns: &NetNs, port: u16) -> Result<Option<u32>, CaseError> {
    let text = ns.run(|| std::fs::read_to_string("/proc/thread-self/net/udp"))??;
    let want = format!(":{port:04X}");
    Ok(text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1)?.ends_with(&want)).then(|| f.get(7)?.parse().ok())?
    }))
}

/// Whether `uid` is mapped in this process's user namespace
/// (/proc/self/uid_map: `inside outside count` per line).
fn uid_mapped(map: &str, uid: u32) -> bool {
    map.lines().any(|l| {
        let f: Vec<u64> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        f.len() == 3 && f[0] <= uid as u64 && (uid as u64) < f[0] + f[2]
    })
}

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    // make_kuid() turns an unmapped uid into INVALID_UID, and fib_nl2rule()
    // then refuses the range ("Invalid uid range"): in a user namespace that
    // maps only root, per-user routing cannot be shown.
    let map = std::fs::read_to_string("/proc/self/uid_map")?;
    if let Some(u) = [UID_LO, UID_HI, UID_OUT].into_iter().find(|u| !uid_mapped(&map, *u)) {
        return Err(ctx.skip(format!(
            "uid {u} is not mapped in this user namespace (/proc/self/uid_map: {}), so no rule can name it",
            map.trim().replace('\n', "; ")
        )));
    }
    let mut b = Topology::builder().ns("client").ns("a").ns("b");
    for n in ["client", "a", "b"] {
        // No IPv6 on any link: no router solicitation, DAD or MLD packet
        // can move the counters the model predicts exactly.
        b = b
            .sysctl(n, "net.ipv6.conf.all.disable_ipv6", "1")
            .sysctl(n, "net.ipv6.conf.default.disable_ipv6", "1");
    }
    let topo = b
        .veth(("client", "veth0"), ("a", "veth0"))
        .veth(("client", "veth1"), ("b", "veth0"))
        .addr("client", "veth0", "198.18.1.1/24")
        .addr("a", "veth0", "198.18.1.2/24")
        .addr("client", "veth1", "198.18.2.1/24")
        .addr("b", "veth0", "198.18.2.2/24")
        .build()?;
    let (c, a, bns) = (topo.ns("client"), topo.ns("a"), topo.ns("b"));
    let (a_if, b_if) = (topo.ifindex("a", "veth0"), topo.ifindex("b", "veth0"));
    // The client's links: veth0 towards a (the default), veth1 towards b.
    let (via_a, via_b) = (topo.ifindex("client", "veth0"), topo.ifindex("client", "veth1"));

    let gw_a = Ipv4Addr::new(198, 18, 1, 2);
    let gw_b = Ipv4Addr::new(198, 18, 2, 2);
    neigh_add(
        c,
        via_a,
        IpAddr::V4(gw_a),
        NUD_PERMANENT,
        Some(&mac_of(a, a_if)?),
        NLM_F_CREATE | NLM_F_EXCL,
    )?;
    neigh_add(
        c,
        via_b,
        IpAddr::V4(gw_b),
        NUD_PERMANENT,
        Some(&mac_of(bns, b_if)?),
        NLM_F_CREATE | NLM_F_EXCL,
    )?;
    add_route(c, gw_a, via_a, RouteHeader::RT_TABLE_MAIN as u32)?;
    add_route(c, gw_b, via_b, TABLE)?;

    // `ip rule add uidrange 2000-2009 lookup 100 pref 100` through
    // `handle.rule().add()`; the builder has no uid range, so FRA_UID_RANGE
    // goes into its message by hand.
    let crt = c.rt();
    let mut rule = crt
        .handle()
        .rule()
        .add()
        .v4()
        .table_id(TABLE)
        .action(RuleAction::ToTable)
        .priority(PRIORITY);
    rule.message_mut()
        .attributes
        .push(RuleAttribute::UidRange(RuleUidRange {
            start: UID_LO,
            end: UID_HI,
        }));
    if let Err(e) = crt.block_on(rule.execute()) {
        if !ctx.kernel.at_least(4, 10) {
            return Err(ctx.skip(format!("FRA_UID_RANGE needs Linux 4.10: {e}")));
        }
        return Err(kharness::netlink::NlError::from(e).into());
    }
    // The rule as the kernel keeps it (`ip rule show`).
    let rules = crt
        .collect(crt.handle().rule().get(IpVersion::V4).execute())
        .map_err(kharness::netlink::NlError::from)?;
    let ours = rules
        .iter()
        .find(|m| m.attributes.contains(&RuleAttribute::Priority(PRIORITY)));
    let (range, table) = ours
        .map(|m| {
            let range = m.attributes.iter().find_map(|a| match a {
                RuleAttribute::UidRange(r) => Some(format!("{}-{}", r.start, r.end)),
                _ => None,
            });
            let table = m.attributes.iter().find_map(|a| match a {
                RuleAttribute::Table(t) => Some(*t),
                _ => None,
            });
            (range, table)
        })
        .unwrap_or((None, None));
    ctx.check_eq(
        "rule.uid_range",
        format!("{UID_LO}-{UID_HI}"),
        json!(range),
        "fib_nl_fill_rule() puts FRA_UID_RANGE when set",
    );
    ctx.check_eq("rule.table", TABLE, json!(table), "FRA_TABLE as given");

    let src = "fib_rule_match(): flowi_uid inside FRA_UID_RANGE selects table 100";
    for (uid, oif, tbl) in [(UID_IN, via_b, TABLE), (UID_OUT, via_a, 254), (0, via_a, 254)] {
        let (o, t) = route_get(c, uid, true)?;
        ctx.check_eq(format!("route_get.uid{uid}.oif"), oif, json!(o), src);
        ctx.check_eq(
            format!("route_get.uid{uid}.table"),
            tbl,
            json!(t),
            "RTM_F_LOOKUP_TABLE: inet_rtm_getroute() reports res.table->tb_id, the table that matched",
        );
        // Without the flag the reply's table is not the lookup's.
        let (o, t) = route_get(c, uid, false)?;
        ctx.check_eq(format!("route_get_noflag.uid{uid}.oif"), oif, json!(o), src);
        ctx.check_eq(
            format!("route_get_noflag.uid{uid}.table"),
            254,
            json!(t),
            "inet_rtm_getroute(): table_id starts as RT_TABLE_MAIN and only RTM_F_LOOKUP_TABLE replaces it",
        );
    }

    // Counters: client veth0/veth1 tx, a/b veth0 rx.
    let snap = || -> Result<[u64; 4], CaseError> {
        Ok([
            packets(c, via_a)?.1,
            packets(c, via_b)?.1,
            packets(a, a_if)?.0,
            packets(bns, b_if)?.0,
        ])
    };
    let before = snap()?;
    let mut expect = [0u64; 4];
    for (uid, leg) in [(UID_IN, 1usize), (UID_OUT, 0usize)] {
        let (sock, mine, other) = socket_as(c, uid)?;
        let port = sock.local_addr()?.port();
        ctx.check_eq(
            format!("uid{uid}.creating_thread.fsuid"),
            uid,
            json!(mine),
            "setfsuid(2) sets the calling thread's fsuid",
        );
        ctx.check_eq(
            format!("uid{uid}.other_thread.fsuid"),
            0,
            json!(other),
            "setfsuid(2) is per thread; the rest of the process keeps fsuid 0",
        );
        ctx.check_eq(
            format!("uid{uid}.proc_net_udp.uid"),
            uid,
            json!(proc_udp_uid(c, port)?),
            "sock_alloc(): inode uid = current_fsuid(); /proc/net/udp prints sock_i_uid()",
        );
        let sent = sock.send_to(b"kharness rule.uid_range", (DST, PORT));
        ctx.check_eq(
            format!("uid{uid}.send"),
            23,
            json!(sent.as_ref().ok()),
            "a routable destination with a resolved gateway",
        );
        // The datagram leaves through `leg`: client tx and peer rx each +1.
        expect[leg] += 1;
        expect[leg + 2] += 1;
        let want = expect;
        let r = wait_until(
            &format!("the uid-{uid} datagram to reach the peer"),
            Duration::from_secs(2),
            || snap().ok().map(|s| [0, 1, 2, 3].map(|i| s[i] - before[i])),
            |d| d.as_ref().is_some_and(|d| d[leg + 2] >= want[leg + 2]),
        );
        if let Err(e) = r {
            ctx.note(e.to_string());
        }
        let now = snap()?;
        let names = [
            "client.veth0.tx_packets",
            "client.veth1.tx_packets",
            "a.veth0.rx_packets",
            "b.veth0.rx_packets",
        ];
        for i in 0..4 {
            ctx.check_eq(
                format!("after_uid{uid}.{}", names[i]),
                want[i],
                now[i] - before[i],
                "counted from before the first send: a socket owned by a uid in 2000-2009 sends by veth1, any other by veth0",
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_map() {
        let init = "         0          0 4294967295\n";
        assert!(uid_mapped(init, 2001));
        let userns = "         0      65534          1\n";
        assert!(uid_mapped(userns, 0));
        assert!(!uid_mapped(userns, 2001));
    }
}
