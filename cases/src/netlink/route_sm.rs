//! route.state_machine: random sequences of `ip route add|replace|change|
//! prepend|append|del` in three tables of both families, against a model of
//! the IPv4 FIB (`fib_table_insert()` / `fib_table_delete()`, net/ipv4/
//! fib_trie.c) and of the IPv6 FIB (`fib6_add_rt2node()`, net/ipv6/
//! ip6_fib.c; `ip6_route_multipath_add()` / `ip6_route_del()`, net/ipv6/
//! route.c).
//!
//! The model keeps, per (family, table, prefix), the kernel's list of routes
//! in the kernel's order: IPv4 fib aliases sorted by priority, a new alias
//! going before the others of its priority (add, prepend) or after them
//! (append); IPv6 fib6_info leaves sorted by metric, each new one after the
//! others of its metric, gateway routes of one metric forming one ECMP
//! group. Every request is predicted (`ok` or the errno) before it is sent;
//! after every step both families are dumped and the routes of the three
//! tables must equal the model's, line for line and in order.
//!
//! Requests go through rtnetlink's route handle ([`kharness::rt::Rtnl`]):
//! `route().add()` for `ip route add`, `.replace()` for `ip route replace`,
//! `route().del()` and `route().get()`; the three flag sets no builder
//! offers (append, prepend, change) go as the same builder-made message
//! through [`Rtnl::request`] with their exact `nlmsg_flags`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use kharness::rt::Rtnl;
use kharness::{CaseDef, CaseError, Ctx, Expect, NetNs};
use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteMetric, RouteNextHop, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::RouteNetlinkMessage;
use proptest::prelude::*;
use rtnetlink::RouteMessageBuilder;
use serde_json::json;

use crate::prop::Property;

use super::{carrierless_veth, errno_name};

/// The output device: veth0 (index 2), up, its peer down, so it never has
/// carrier and the kernel adds no address, route or neighbour by itself.
const DEV: u32 = 2;
/// The loopback device, where IPv6 puts reject routes.
const LO: u32 = 1;
/// The tables the case uses (the dump is filtered to them).
const TABLES: [u32; 3] = [100, 101, 254];
/// Route priorities (`metric`).
const METRICS: [u32; 2] = [5, 10];

/// The property: quick count, explore count, regression file.
const PROPERTY: Property = Property {
    id: "route.state_machine",
    quick_cases: 16,
    explore_cases: 256,
    regressions: "route_state_machine.txt",
    max_shrink_iters: 512,
};

/// route.state_machine
pub static ROUTE_STATE_MACHINE: CaseDef = CaseDef {
    id: "route.state_machine",
    variants: &[],
    summary: "random route add/replace/change/prepend/append/del in 3 tables, IPv4 and IPv6: every dump and errno \
        follow the FIB model",
    drives: "proptest (`kharness run`: 16 sequences of 1-12 steps; `kharness explore`: 256 of 1-40) over one \
        carrier-less veth: RTM_NEWROUTE as `ip route add` (NLM_F_CREATE|NLM_F_EXCL, rtnetlink's \
        route().add()), `replace` (NLM_F_CREATE|NLM_F_REPLACE, .replace()), `change` (NLM_F_REPLACE), \
        `prepend` (NLM_F_CREATE) and `append` (NLM_F_CREATE|NLM_F_APPEND) — the last three raw flag sets \
        on builder-made messages — of unicast routes via the device, via an on-link gateway, multipath \
        over two on-link gateways, blackhole, unreachable and prohibit routes, metric 5 or 10, tos 0 or \
        0x10, with no \
        metrics, mtu 1400, or mtu 1300 + advmss 1200, to 198.18.5.0/24, 198.18.6.0/24, 2001:db8:5::/64 \
        or 2001:db8:6::/64 in tables 100, 101 and main; RTM_DELROUTE (route().del()) as `ip route del \
        PREFIX [tos 0x10] table T [metric M]` alone, with a type, with `dev veth0`, or with `via GW dev veth0`. \
        Then a pinned 27-step sequence that makes every claim below once, whatever the seed, and a \
        3-step probe of the IPv6 dump defect (see `kernels`).",
    observes: "The answer to every request (ok or errno); after every step an RTM_GETROUTE dump of each \
        family (route().get()), of which the routes of tables 100, 101 and 254 are kept — every other \
        table (local) is ignored, and in main the one route older kernels make there themselves, IPv6 \
        ::1/128 dev lo proto kernel (lo's address; 6.18 keeps it in local only); anything else there is \
        compared. A dump line holds type, metric, \
        scope, protocol, rtm_flags (nexthop flags), gateway and device or the RTA_MULTIPATH nexthops \
        (gateway, device, flags, hops), and RTA_METRICS.",
    predicts: "The dump equals the model after every step, routes in the kernel's order within each \
        prefix. IPv4: aliases are keyed by (prefix, tos, priority), tos descending then priority \
        ascending; EEXIST for NLM_F_EXCL on an existing key, and for a non-replacing \
        add of a route identical (type, scope, nexthops, metrics) to one of that priority; replace \
        swaps the first alias of that priority, answers ok without change when the identical route is \
        that first alias and EEXIST when it is a later one; ENOENT for change with nothing to replace; \
        prepend puts the alias first among its priority, append last; delete takes the first alias that \
        matches its tos (0 unless given), metric, type, device and gateway (first nexthop), else \
        ESRCH. IPv6: EINVAL for any non-zero tos (add or delete); EEXIST for \
        NLM_F_EXCL on an existing (prefix, metric) and for a route whose device and gateway duplicate \
        one of that metric; gateway routes of one metric join one ECMP group, dumped as one RTA_MULTIPATH \
        route; replace swaps the first route of that metric with the same ECMP-ability (else the first \
        of that metric) and drops the old route's siblings; a multipath request is all or nothing; \
        prepend and append both add at the end of the metric's routes; delete ignores the type, takes \
        the first route matching metric, device and gateway — with a gateway that one nexthop, without \
        the whole ECMP group — else ESRCH; ENOENT for change with nothing to replace. In the dump the \
        carrier-less veth's nexthops carry RTNH_F_LINKDOWN (and RTNH_F_ONLINK for gateways); an IPv4 \
        multipath route has LINKDOWN in rtm_flags too (every nexthop is down), an IPv6 one not; IPv4 \
        reject routes have no device, IPv6 ones lo; IPv6 scope is always universe.",
    why: "net/ipv6/route.c rtm_to_fib6_config(): \"Invalid dsfield (tos): option not available for \
        IPv6\" (-EINVAL). net/ipv4/fib_trie.c fib_table_insert(): fib_find_alias() finds the first alias of (dscp, \
        priority); NLM_F_EXCL → -EEXIST; the walk looks for fa_match (same type and the same shared \
        fib_info, which fib_create_info() reuses for identical routes); NLM_F_REPLACE replaces fa_first \
        (err = 0 only if fa_first is fa_match); fa_match → -EEXIST; NLM_F_APPEND inserts after the \
        group, else before fa_first; without NLM_F_CREATE → -ENOENT. fib_table_delete() (only aliases \
        of the request's dscp) and fib_nh_match() → -ESRCH. net/ipv6/ip6_fib.c fib6_add_1() (-ENOENT \"Can not replace route - no \
        match found\"), fib6_add_rt2node() (NLM_F_EXCL, rt6_duplicate_nexthop(), fib6_nsiblings, \
        fallback_ins, sibling removal on replace); net/ipv6/route.c ip6_route_multipath_add() (flags of \
        later nexthops lose EXCL/REPLACE, rollback on error), ip6_route_del() (no type check; \
        __ip6_del_rt() with RTF_GATEWAY, __ip6_del_rt_siblings() without). fib_create_info() sets \
        fi->fib_flags |= RTNH_F_LINKDOWN when every nexthop is; fib6_nh_init() puts reject routes on \
        the loopback device; rt6_fill_node() reports RT_SCOPE_UNIVERSE.",
    kernels: "The model is read from current sources (6.x) and checked on 6.18; IPv6's tos refusal is from \
        5.13, fallback_ins and the all-or-nothing multipath add from the 4.x series. On an older kernel \
        of the matrix a disagreement is to be traced to that version's source before the model changes. \
        KNOWN KERNEL DEFECT (6.18): \
        fib6_dump_node() jumps from the first ECMP sibling to the last one, assuming they are adjacent; a \
        non-gateway route of the same metric added between them (gateway route, then e.g. a blackhole, \
        then a second gateway route, all appended) is missing from every dump while it stays in the FIB \
        (a later `ip -6 route del` of the group shows it again). The generator therefore skips any IPv6 \
        step that would create that layout (counted as steps_skipped_ipv6_dump_defect), and a fixed probe \
        checks that the running kernel lists the route (ipv6_dump_defect.hidden, expected false; \
        fixtures/known-issues.toml names the defect where it is hidden).",
    shell: "ip route append 198.18.5.0/24 via 198.19.0.2 dev veth0 onlink table 100 metric 5; \
        ip -6 route prepend blackhole 2001:db8:6::/64 table main metric 10; ip route del 198.18.5.0/24 \
        table 100; ip route show table all",
    source: "issue: route.state_machine (catalog section 5); seed 004 (RTM_NEWROUTE/RTM_DELROUTE)",
    timeout: Duration::from_secs(60),
    run,
};

/// The `nlmsg_flags` of the iproute2 verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    /// `ip route add`: NLM_F_CREATE|NLM_F_EXCL.
    Add,
    /// `ip route replace`: NLM_F_CREATE|NLM_F_REPLACE.
    Replace,
    /// `ip route change`: NLM_F_REPLACE.
    Change,
    /// `ip route prepend`: NLM_F_CREATE.
    Prepend,
    /// `ip route append`: NLM_F_CREATE|NLM_F_APPEND.
    Append,
}

impl Verb {
    fn flags(self) -> u16 {
        match self {
            Verb::Add => NLM_F_CREATE | NLM_F_EXCL,
            Verb::Replace => NLM_F_CREATE | NLM_F_REPLACE,
            Verb::Change => NLM_F_REPLACE,
            Verb::Prepend => NLM_F_CREATE,
            Verb::Append => NLM_F_CREATE | NLM_F_APPEND,
        }
    }
    fn word(self) -> &'static str {
        match self {
            Verb::Add => "add",
            Verb::Replace => "replace",
            Verb::Change => "change",
            Verb::Prepend => "prepend",
            Verb::Append => "append",
        }
    }
}

/// What a route does with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// `dev veth0` (scope link).
    Dev,
    /// `via GW dev veth0 onlink`, gateway 0 or 1.
    Via(u8),
    /// `nexthop via GW_a dev veth0 onlink nexthop via GW_b dev veth0 onlink`.
    Multipath(u8, u8),
    Blackhole,
    Unreachable,
    Prohibit,
}

impl Kind {
    fn rtype(self) -> RType {
        match self {
            Kind::Dev | Kind::Via(_) | Kind::Multipath(..) => RType::Unicast,
            Kind::Blackhole => RType::Blackhole,
            Kind::Unreachable => RType::Unreachable,
            Kind::Prohibit => RType::Prohibit,
        }
    }
}

/// `rtm_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum RType {
    Unicast,
    Blackhole,
    Unreachable,
    Prohibit,
}

impl RType {
    fn word(self) -> &'static str {
        match self {
            RType::Unicast => "unicast",
            RType::Blackhole => "blackhole",
            RType::Unreachable => "unreachable",
            RType::Prohibit => "prohibit",
        }
    }
    fn netlink(self) -> RouteType {
        match self {
            RType::Unicast => RouteType::Unicast,
            RType::Blackhole => RouteType::BlackHole,
            RType::Unreachable => RouteType::Unreachable,
            RType::Prohibit => RouteType::Prohibit,
        }
    }
}

/// RTA_METRICS of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Metrics {
    None,
    /// `mtu 1400`.
    Mtu,
    /// `mtu 1300 advmss 1200`.
    MtuAdvmss,
}

impl Metrics {
    fn pairs(self) -> Vec<(&'static str, u32)> {
        match self {
            Metrics::None => vec![],
            Metrics::Mtu => vec![("mtu", 1400)],
            Metrics::MtuAdvmss => vec![("advmss", 1200), ("mtu", 1300)],
        }
    }
}

/// A route as requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Route {
    v6: bool,
    table: u32,
    dst: u8,
    metric: u32,
    /// `tos` (rtm_tos): 0 or 0x10; IPv4 keys routes by it, IPv6 refuses
    /// any but 0.
    tos: u8,
    kind: Kind,
    metrics: Metrics,
}

/// What an `ip route del` names besides prefix, table and metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    /// Nothing more.
    Any,
    /// `ip route del TYPE …`.
    Type(RType),
    /// `dev veth0`.
    Dev,
    /// `via GW dev veth0`.
    Via(u8),
}

/// One step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    New(Verb, Route),
    Del {
        v6: bool,
        table: u32,
        dst: u8,
        metric: Option<u32>,
        tos: u8,
        by: Match,
    },
}

fn dst_addr(v6: bool, dst: u8) -> (IpAddr, u8) {
    if v6 {
        (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 5 + dst as u16, 0, 0, 0, 0, 0)),
            64,
        )
    } else {
        (IpAddr::V4(Ipv4Addr::new(198, 18, 5 + dst, 0)), 24)
    }
}

fn gw_addr(v6: bool, g: u8) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 2 + g as u16))
    } else {
        IpAddr::V4(Ipv4Addr::new(198, 19, 0, 2 + g))
    }
}

fn tos_word(tos: u8) -> String {
    if tos == 0 {
        String::new()
    } else {
        format!(" tos 0x{tos:02x}")
    }
}

fn table_word(t: u32) -> String {
    if t == 254 {
        "main".into()
    } else {
        t.to_string()
    }
}

impl Op {
    /// The iproute2 command of this step.
    fn shell(&self) -> String {
        match *self {
            Op::New(verb, r) => {
                let fam = if r.v6 { "ip -6" } else { "ip" };
                let (d, l) = dst_addr(r.v6, r.dst);
                let ty = match r.kind.rtype() {
                    RType::Unicast => String::new(),
                    t => format!("{} ", t.word()),
                };
                let nh = match r.kind {
                    Kind::Dev => " dev veth0".to_string(),
                    Kind::Via(g) => format!(" via {} dev veth0 onlink", gw_addr(r.v6, g)),
                    Kind::Multipath(a, b) => format!(
                        " nexthop via {} dev veth0 onlink nexthop via {} dev veth0 onlink",
                        gw_addr(r.v6, a),
                        gw_addr(r.v6, b)
                    ),
                    _ => String::new(),
                };
                let m: String = r.metrics.pairs().iter().map(|(k, v)| format!(" {k} {v}")).collect();
                let (nh_mid, nh_end) = match r.kind {
                    Kind::Multipath(..) => (String::new(), nh),
                    _ => (nh, String::new()),
                };
                format!(
                    "{fam} route {} {ty}{d}/{l}{}{nh_mid} table {} metric {}{m}{nh_end}",
                    verb.word(),
                    tos_word(r.tos),
                    table_word(r.table),
                    r.metric
                )
            }
            Op::Del {
                v6,
                table,
                dst,
                metric,
                tos,
                by,
            } => {
                let fam = if v6 { "ip -6" } else { "ip" };
                let (d, l) = dst_addr(v6, dst);
                let ty = match by {
                    Match::Type(t) => format!("{} ", t.word()),
                    _ => String::new(),
                };
                let nh = match by {
                    Match::Dev => " dev veth0".to_string(),
                    Match::Via(g) => format!(" via {} dev veth0", gw_addr(v6, g)),
                    _ => String::new(),
                };
                let m = metric.map(|m| format!(" metric {m}")).unwrap_or_default();
                format!(
                    "{fam} route del {ty}{d}/{l}{}{nh} table {}{m}",
                    tos_word(tos),
                    table_word(table)
                )
            }
        }
    }
}

/// Table 100 and the first prefix most often, so that routes meet.
fn table_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![5 => Just(100u32), 1 => Just(101u32), 2 => Just(254u32)]
}

fn dst_strategy() -> impl Strategy<Value = u8> {
    prop_oneof![4 => Just(0u8), 1 => Just(1u8)]
}

/// `tos 0x10` now and then (IPv4 keys on it; IPv6 answers EINVAL).
fn tos_strategy() -> impl Strategy<Value = u8> {
    prop_oneof![6 => Just(0u8), 1 => Just(0x10u8)]
}

fn metric_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![3 => Just(METRICS[0]), 1 => Just(METRICS[1])]
}

fn route_strategy(v6: bool) -> impl Strategy<Value = Route> {
    let kind = prop_oneof![
        3 => Just(Kind::Dev),
        4 => (0u8..2).prop_map(Kind::Via),
        2 => prop_oneof![Just(Kind::Multipath(0, 1)), Just(Kind::Multipath(1, 0))],
        2 => Just(Kind::Blackhole),
        1 => Just(Kind::Unreachable),
        1 => Just(Kind::Prohibit),
    ];
    let metrics = prop_oneof![4 => Just(Metrics::None), 1 => Just(Metrics::Mtu), 1 => Just(Metrics::MtuAdvmss)];
    (
        table_strategy(),
        dst_strategy(),
        metric_strategy(),
        tos_strategy(),
        kind,
        metrics,
    )
        .prop_map(move |(table, dst, metric, tos, kind, metrics)| Route {
            v6,
            table,
            dst,
            metric,
            tos,
            kind,
            metrics,
        })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let verb = prop_oneof![
        2 => Just(Verb::Add),
        2 => Just(Verb::Replace),
        1 => Just(Verb::Change),
        3 => Just(Verb::Prepend),
        3 => Just(Verb::Append),
    ];
    let by = prop_oneof![
        3 => Just(Match::Any),
        2 => prop::sample::select(vec![RType::Unicast, RType::Blackhole, RType::Unreachable, RType::Prohibit])
            .prop_map(Match::Type),
        1 => Just(Match::Dev),
        1 => (0u8..2).prop_map(Match::Via),
    ];
    let fam = any::<bool>();
    prop_oneof![
        7 => (verb, fam.prop_flat_map(route_strategy)).prop_map(|(v, r)| Op::New(v, r)),
        3 => (
            any::<bool>(),
            table_strategy(),
            dst_strategy(),
            prop::option::of(metric_strategy()),
            tos_strategy(),
            by
        )
            .prop_map(|(v6, table, dst, metric, tos, by)| Op::Del {
                v6,
                table,
                dst,
                metric,
                tos,
                by
            }),
    ]
}

/// One route of the model: an IPv4 fib alias, or an IPv6 fib6_info (an
/// IPv6 multipath request becomes one `Via` entry per nexthop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    metric: u32,
    tos: u8,
    kind: Kind,
    metrics: Metrics,
}

impl Entry {
    /// `rt6_qualify_for_ecmp()`: not from RA, no nexthop object, a gateway.
    fn ecmp(&self) -> bool {
        matches!(self.kind, Kind::Via(_))
    }
    /// The (device, gateway) of an IPv6 route, as `rt6_duplicate_nexthop()`
    /// compares them: reject routes sit on lo with no gateway.
    fn nh6(&self) -> (u32, Option<u8>) {
        match self.kind {
            Kind::Dev => (DEV, None),
            Kind::Via(g) => (DEV, Some(g)),
            _ => (LO, None),
        }
    }
}

type Key = (bool, u32, u8);

/// A dump: per "table T PREFIX", the routes' lines in the kernel's order.
type Dump = BTreeMap<String, Vec<String>>;

/// The reference model: every route of the three tables, per prefix in the
/// kernel's order.
#[derive(Debug, Default, Clone)]
struct Model {
    fib: BTreeMap<Key, Vec<Entry>>,
    /// Before 5.13 IPv6 ignores rtm_tos (the route is added, and deleted,
    /// as if it were 0); from 5.13 rtm_to_fib6_config() refuses it. The
    /// matrix shows both: 5.10 adds the route, 6.1 answers EINVAL.
    ipv6_tos_ignored: bool,
}

const EEXIST: &str = "EEXIST";
const ENOENT: &str = "ENOENT";
const ESRCH: &str = "ESRCH";
const EINVAL: &str = "EINVAL";

impl Model {
    /// Applies `op` and returns the answer the kernel must give.
    fn apply(&mut self, op: &Op) -> String {
        let r = match *op {
            Op::New(verb, r) => {
                // rtm_to_fib6_config(): \"Invalid dsfield (tos): option not
                // available for IPv6\", before anything else (5.13+).
                let mut r = r;
                if r.v6 && r.tos != 0 {
                    if !self.ipv6_tos_ignored {
                        return EINVAL.into();
                    }
                    r.tos = 0;
                }
                let key = (r.v6, r.table, r.dst);
                let mut list = self.fib.remove(&key).unwrap_or_default();
                let r2 = if r.v6 {
                    insert6(&mut list, &r, verb.flags())
                } else {
                    insert4(&mut list, &r, verb.flags())
                };
                if !list.is_empty() {
                    self.fib.insert(key, list);
                }
                r2
            }
            Op::Del {
                v6,
                table,
                dst,
                metric,
                tos,
                by,
            } => {
                let mut tos = tos;
                if v6 && tos != 0 {
                    if !self.ipv6_tos_ignored {
                        return EINVAL.into();
                    }
                    tos = 0;
                }
                let key = (v6, table, dst);
                let mut list = self.fib.remove(&key).unwrap_or_default();
                let r2 = if v6 {
                    delete6(&mut list, metric, by)
                } else {
                    delete4(&mut list, metric, tos, by)
                };
                if !list.is_empty() {
                    self.fib.insert(key, list);
                }
                r2
            }
        };
        match r {
            Ok(()) => "ok".into(),
            Err(e) => e.into(),
        }
    }

    /// The dump the kernel must give: per (family, table, prefix), the
    /// lines in order.
    fn dump(&self) -> Dump {
        let mut out = BTreeMap::new();
        for (&(v6, table, dst), list) in &self.fib {
            let lines = if v6 {
                lines6(list)
            } else {
                list.iter().map(|e| line(false, e)).collect()
            };
            out.insert(node_name(v6, table, dst), lines);
        }
        out
    }

    /// An IPv6 prefix whose ECMP group at some metric is not contiguous
    /// (a non-gateway route between its members): the layout that
    /// fib6_dump_node() mis-dumps (see the case's `kernels`).
    fn ipv6_dump_hazard(&self) -> bool {
        self.fib.iter().filter(|((v6, ..), _)| *v6).any(|(_, list)| {
            METRICS.iter().any(|&m| {
                let idx: Vec<usize> = (0..list.len())
                    .filter(|&i| list[i].metric == m && list[i].ecmp())
                    .collect();
                idx.len() > 1 && idx.windows(2).any(|w| w[1] != w[0] + 1)
            })
        })
    }
}

fn node_name(v6: bool, table: u32, dst: u8) -> String {
    let (d, l) = dst_addr(v6, dst);
    node_name_text(table, &format!("{d}/{l}"))
}

/// fib_table_insert() for one (table, prefix): aliases sorted by dscp
/// descending, then priority ascending.
fn insert4(list: &mut Vec<Entry>, r: &Route, flags: u16) -> Result<(), &'static str> {
    let new = Entry {
        metric: r.metric,
        tos: r.tos,
        kind: r.kind,
        metrics: r.metrics,
    };
    // fib_find_alias(): skip aliases of a higher dscp; the first one of a
    // lower dscp, or of this dscp and a priority >= ours, is where the
    // group starts or the new alias goes.
    let first = list
        .iter()
        .position(|e| e.tos < r.tos || (e.tos == r.tos && e.metric >= r.metric));
    let mut at = first.unwrap_or(list.len());
    let group: Vec<usize> = (0..list.len())
        .filter(|&i| list[i].metric == r.metric && list[i].tos == r.tos)
        .collect();
    if let Some(&fa_first) = group.first() {
        if flags & NLM_F_EXCL != 0 {
            return Err(EEXIST);
        }
        // fa_match: same type and the same (shared) fib_info.
        let fa_match = group.iter().copied().find(|&i| list[i] == new);
        if flags & NLM_F_REPLACE != 0 {
            if let Some(m) = fa_match {
                return if m == fa_first { Ok(()) } else { Err(EEXIST) };
            }
            list[fa_first] = new;
            return Ok(());
        }
        if fa_match.is_some() {
            return Err(EEXIST);
        }
        at = if flags & NLM_F_APPEND != 0 {
            group.last().expect("non-empty") + 1
        } else {
            fa_first
        };
    }
    if flags & NLM_F_CREATE == 0 {
        return Err(ENOENT);
    }
    list.insert(at, new);
    Ok(())
}

/// fib_table_delete(): the first alias of this dscp that matches, else
/// ESRCH (a delete without tos never matches a tos 0x10 route).
fn delete4(list: &mut Vec<Entry>, metric: Option<u32>, tos: u8, by: Match) -> Result<(), &'static str> {
    let pos = list.iter().position(|e| {
        e.tos == tos
            && metric.is_none_or(|m| m == e.metric)
            && match by {
                Match::Any => true,
                Match::Type(t) => e.kind.rtype() == t,
                // fib_nh_match(): the first nexthop's oif (and gateway).
                Match::Dev => matches!(e.kind, Kind::Dev | Kind::Via(_) | Kind::Multipath(..)),
                Match::Via(g) => matches!(e.kind, Kind::Via(x) | Kind::Multipath(x, _) if x == g),
            }
    });
    match pos {
        Some(i) => {
            list.remove(i);
            Ok(())
        }
        None => Err(ESRCH),
    }
}

/// fib6_add_rt2node() for one fib6_info; `fib6_add_1()` first answers
/// ENOENT for a replace-only request on a prefix with no route.
fn add6(list: &mut Vec<Entry>, rt: Entry, flags: u16) -> Result<(), &'static str> {
    let replace = flags & NLM_F_REPLACE != 0;
    let add = flags & NLM_F_CREATE != 0;
    if list.is_empty() && !add {
        return Err(ENOENT);
    }
    let mut ins = 0;
    let mut found = None;
    let mut fallback = None;
    for (i, it) in list.iter().enumerate() {
        if it.metric == rt.metric {
            if flags & NLM_F_EXCL != 0 {
                return Err(EEXIST);
            }
            if replace {
                if rt.ecmp() == it.ecmp() {
                    found = Some(i);
                    break;
                }
                fallback = fallback.or(Some(i));
                ins = i + 1;
                continue;
            }
            if it.nh6() == rt.nh6() {
                return Err(EEXIST);
            }
        }
        if it.metric > rt.metric {
            break;
        }
        ins = i + 1;
    }
    let found = found.or(fallback);
    if !replace {
        list.insert(ins, rt);
        return Ok(());
    }
    let Some(f) = found else {
        if add {
            list.insert(ins, rt);
            return Ok(());
        }
        return Err(ENOENT);
    };
    let had_siblings = list[f].ecmp()
        && list
            .iter()
            .enumerate()
            .any(|(i, e)| i != f && e.metric == list[f].metric && e.ecmp());
    let metric = list[f].metric;
    list[f] = rt;
    if had_siblings {
        // "Replacing an ECMP route, remove all siblings"
        let mut i = f + 1;
        while i < list.len() && list[i].metric <= metric {
            if list[i].ecmp() {
                list.remove(i);
            } else {
                i += 1;
            }
        }
    }
    Ok(())
}

/// inet6_rtm_newroute(): ip6_route_add(), or ip6_route_multipath_add() —
/// one fib6_info per nexthop, the later ones without EXCL/REPLACE and with
/// CREATE, all removed again if one fails.
fn insert6(list: &mut Vec<Entry>, r: &Route, flags: u16) -> Result<(), &'static str> {
    let one = |kind| Entry {
        metric: r.metric,
        tos: 0,
        kind,
        metrics: r.metrics,
    };
    match r.kind {
        Kind::Multipath(a, b) => {
            let saved = list.clone();
            add6(list, one(Kind::Via(a)), flags)?;
            let later = (flags & !(NLM_F_EXCL | NLM_F_REPLACE)) | NLM_F_CREATE;
            if let Err(e) = add6(list, one(Kind::Via(b)), later) {
                *list = saved;
                return Err(e);
            }
            Ok(())
        }
        k => add6(list, one(k), flags),
    }
}

/// ip6_route_del(): the first route of the prefix matching metric, device
/// and gateway (the type is not compared); with a gateway only that route,
/// without it the route and its ECMP siblings.
fn delete6(list: &mut Vec<Entry>, metric: Option<u32>, by: Match) -> Result<(), &'static str> {
    let pos = list.iter().position(|e| {
        metric.is_none_or(|m| m == e.metric)
            && match by {
                Match::Any | Match::Type(_) => true,
                Match::Dev => e.nh6().0 == DEV,
                Match::Via(g) => e.nh6() == (DEV, Some(g)),
            }
    });
    let Some(i) = pos else {
        return Err(ESRCH);
    };
    let victim = list.remove(i);
    if victim.ecmp() && !matches!(by, Match::Via(_)) {
        list.retain(|e| !(e.metric == victim.metric && e.ecmp()));
    }
    Ok(())
}

/// The IPv6 dump of one prefix: an ECMP group of two or more gateway
/// routes is one line (RTA_MULTIPATH, nexthops in leaf order, the first
/// member's metrics) at its first member's place.
fn lines6(list: &[Entry]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, e) in list.iter().enumerate() {
        if !e.ecmp() {
            out.push(line(true, e));
            continue;
        }
        let group: Vec<&Entry> = list.iter().filter(|x| x.metric == e.metric && x.ecmp()).collect();
        if group.len() == 1 {
            out.push(line(true, e));
        } else if list.iter().position(|x| x.metric == e.metric && x.ecmp()) == Some(i) {
            let gws: Vec<u8> = group
                .iter()
                .map(|x| match x.kind {
                    Kind::Via(g) => g,
                    _ => unreachable!("ecmp entries are Via"),
                })
                .collect();
            out.push(render(
                RType::Unicast,
                0,
                e.metric,
                "universe",
                "",
                &nexthops_text(true, &gws),
                &e.metrics.pairs(),
            ));
        }
    }
    out
}

const LINKDOWN: &str = "linkdown";
const ONLINK_LINKDOWN: &str = "onlink,linkdown";

fn nexthops_text(v6: bool, gws: &[u8]) -> String {
    let parts: Vec<String> = gws
        .iter()
        .map(|&g| format!("via {} dev {DEV} {ONLINK_LINKDOWN} hops 0", gw_addr(v6, g)))
        .collect();
    format!("nexthops [{}]", parts.join("; "))
}

/// One model route as a dump line.
fn line(v6: bool, e: &Entry) -> String {
    let scope = match (v6, e.kind) {
        (false, Kind::Dev) => "link",
        _ => "universe",
    };
    let (flags, nh) = match e.kind {
        Kind::Dev => (LINKDOWN, format!("dev {DEV}")),
        Kind::Via(g) => (ONLINK_LINKDOWN, format!("via {} dev {DEV}", gw_addr(v6, g))),
        // fib_create_info(): RTNH_F_LINKDOWN on the fib_info when every
        // nexthop is down (both are, on the carrier-less veth).
        Kind::Multipath(a, b) => (LINKDOWN, nexthops_text(v6, &[a, b])),
        // IPv6 reject routes use the loopback device; IPv4 ones none.
        _ if v6 => ("", format!("dev {LO}")),
        _ => ("", String::new()),
    };
    render(e.kind.rtype(), e.tos, e.metric, scope, flags, &nh, &e.metrics.pairs())
}

fn render(t: RType, tos: u8, metric: u32, scope: &str, flags: &str, nh: &str, metrics: &[(&str, u32)]) -> String {
    render_raw(
        &format!("{}{}", t.word(), tos_word(tos)),
        metric,
        scope,
        "static",
        flags,
        nh,
        metrics,
    )
}

fn render_raw(
    ty: &str,
    metric: u32,
    scope: &str,
    proto: &str,
    flags: &str,
    nh: &str,
    metrics: &[(&str, u32)],
) -> String {
    let mut m: Vec<String> = metrics.iter().map(|(k, v)| format!("{k} {v}")).collect();
    m.sort();
    format!(
        "{ty} metric {metric} scope {scope} proto {proto} flags [{flags}] {nh} metrics [{}]",
        m.join(" ")
    )
}

fn nh_flags_text(bits: u32) -> String {
    let names = [
        (1, "dead"),
        (2, "pervasive"),
        (4, "onlink"),
        (8, "offload"),
        (16, "linkdown"),
        (32, "unresolved"),
        (64, "trap"),
    ];
    let mut v: Vec<&str> = names.iter().filter(|(b, _)| bits & b != 0).map(|(_, n)| *n).collect();
    if bits & !0x7f != 0 {
        v.push("other");
    }
    v.join(",")
}

fn addr_text(a: &RouteAddress) -> String {
    match a {
        RouteAddress::Inet(x) => x.to_string(),
        RouteAddress::Inet6(x) => x.to_string(),
        other => format!("{other:?}"),
    }
}

/// A kernel route message as (node name, dump line), or `None` when it
/// is outside the case's tables or is the one route the kernel makes there.
fn kernel_line(m: &RouteMessage) -> Option<(String, String)> {
    let h = &m.header;
    let v6 = h.address_family == netlink_packet_route::AddressFamily::Inet6;
    let mut table = u32::from(h.table);
    let (mut dst, mut oif, mut gw, mut prio, mut mp, mut metrics) = (None, None, None, 0, None, Vec::new());
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => dst = Some(addr_text(d)),
            RouteAttribute::Oif(o) => oif = Some(*o),
            RouteAttribute::Gateway(g) => gw = Some(addr_text(g)),
            RouteAttribute::Priority(p) => prio = *p,
            RouteAttribute::MultiPath(n) => mp = Some(n.clone()),
            RouteAttribute::Metrics(ms) => metrics = ms.clone(),
            _ => {}
        }
    }
    if !TABLES.contains(&table) {
        return None;
    }
    let dst_text = format!(
        "{}/{}",
        dst.clone()
            .unwrap_or_else(|| if v6 { "::".into() } else { "0.0.0.0".into() }),
        h.destination_prefix_length
    );
    // addrconf: lo's ::1 gets its prefix route in main (proto kernel).
    if v6 && table == 254 && dst_text == "::1/128" && h.protocol == RouteProtocol::Kernel && oif == Some(LO) {
        return None;
    }
    let ty = match h.kind {
        RouteType::Unicast => "unicast".to_string(),
        RouteType::BlackHole => "blackhole".into(),
        RouteType::Unreachable => "unreachable".into(),
        RouteType::Prohibit => "prohibit".into(),
        other => format!("{other:?}"),
    };
    let scope = match h.scope {
        RouteScope::Universe => "universe".to_string(),
        RouteScope::Link => "link".into(),
        other => format!("{other:?}"),
    };
    let proto = match h.protocol {
        RouteProtocol::Static => "static".to_string(),
        other => format!("{other:?}"),
    };
    let nh = match &mp {
        Some(hops) => {
            let parts: Vec<String> = hops.iter().map(nexthop_text).collect();
            format!("nexthops [{}]", parts.join("; "))
        }
        None => {
            let mut s = Vec::new();
            if let Some(g) = &gw {
                s.push(format!("via {g}"));
            }
            if let Some(o) = oif {
                s.push(format!("dev {o}"));
            }
            s.join(" ")
        }
    };
    let mut mvals: Vec<(String, u32)> = Vec::new();
    for x in &metrics {
        match x {
            RouteMetric::Mtu(v) => mvals.push(("mtu".into(), *v)),
            RouteMetric::Advmss(v) => mvals.push(("advmss".into(), *v)),
            other => mvals.push((format!("{other:?}"), 0)),
        }
    }
    let mrefs: Vec<(&str, u32)> = mvals.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let flags = nh_flags_text(h.flags.bits() & 0xff);
    Some((
        node_name_text(table, &dst_text),
        render_raw(
            &format!("{ty}{}", tos_word(h.tos)),
            prio,
            &scope,
            &proto,
            &flags,
            &nh,
            &mrefs,
        ),
    ))
}

fn node_name_text(table: u32, dst: &str) -> String {
    format!("table {} {dst}", table_word(table))
}

fn nexthop_text(n: &RouteNextHop) -> String {
    let gw = n
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Gateway(g) => Some(addr_text(g)),
            _ => None,
        })
        .map(|g| format!("via {g} "))
        .unwrap_or_default();
    format!(
        "{gw}dev {} {} hops {}",
        n.interface_index,
        nh_flags_text(n.flags.bits() as u32),
        n.hops
    )
}

/// The message of a route request, built with rtnetlink's builder.
fn new_message(r: &Route) -> RouteMessage {
    let (d, l) = dst_addr(r.v6, r.dst);
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(d, l)
        .expect("family matches")
        .table_id(r.table)
        .priority(r.metric)
        .kind(r.kind.rtype().netlink())
        .tos(r.tos);
    match r.kind {
        // iproute2 gives a device route without gateway scope link.
        Kind::Dev => b = b.scope(RouteScope::Link).output_interface(DEV),
        Kind::Via(g) => {
            b = b
                .output_interface(DEV)
                .gateway(gw_addr(r.v6, g))
                .expect("family")
                .onlink()
        }
        Kind::Multipath(a, c) => {
            let hop = |g| {
                rtnetlink::RouteNextHopBuilder::new(if r.v6 {
                    netlink_packet_route::AddressFamily::Inet6
                } else {
                    netlink_packet_route::AddressFamily::Inet
                })
                .interface(DEV)
                .via(gw_addr(r.v6, g))
                .expect("family")
                .onlink()
                .build()
            };
            b = b.multipath(vec![hop(a), hop(c)]);
        }
        _ => {}
    }
    let mut m = b.build();
    let pairs = r.metrics.pairs();
    if !pairs.is_empty() {
        let mut v = Vec::new();
        for (k, val) in pairs {
            v.push(if k == "mtu" {
                RouteMetric::Mtu(val)
            } else {
                RouteMetric::Advmss(val)
            });
        }
        m.attributes.push(RouteAttribute::Metrics(v));
    }
    m
}

/// The message of `ip route del`: iproute2 leaves type 0 (any), scope
/// RT_SCOPE_NOWHERE (any) and protocol 0 (any) unless told otherwise.
fn del_message(v6: bool, table: u32, dst: u8, metric: Option<u32>, tos: u8, by: Match) -> RouteMessage {
    let (d, l) = dst_addr(v6, dst);
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(d, l)
        .expect("family matches")
        .table_id(table)
        .protocol(RouteProtocol::Unspec)
        .scope(RouteScope::NoWhere)
        .kind(RouteType::Unspec)
        .tos(tos);
    if let Some(m) = metric {
        b = b.priority(m);
    }
    match by {
        Match::Any => {}
        Match::Type(t) => b = b.kind(t.netlink()),
        Match::Dev => b = b.output_interface(DEV),
        Match::Via(g) => b = b.output_interface(DEV).gateway(gw_addr(v6, g)).expect("family"),
    }
    b.build()
}

fn answer(r: Result<(), rtnetlink::Error>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => match kharness::rt::errno(&e) {
            Some(n) => errno_name(n),
            None => format!("error: {e}"),
        },
    }
}

/// Sends `op` through the rtnetlink handle; `ok` or the errno name.
fn execute(rt: &Rtnl, op: &Op) -> String {
    let route = rt.handle().route();
    match *op {
        Op::New(verb, r) => {
            let msg = new_message(&r);
            match verb {
                Verb::Add => answer(rt.block_on(route.add(msg).execute())),
                Verb::Replace => answer(rt.block_on(route.add(msg).replace().execute())),
                // No builder sends these flag sets (rtnetlink's route add
                // always sets NLM_F_CREATE and NLM_F_EXCL or NLM_F_REPLACE):
                // the same message goes raw with iproute2's exact flags.
                Verb::Change | Verb::Prepend | Verb::Append => {
                    answer(rt.request(RouteNetlinkMessage::NewRoute(msg), verb.flags()))
                }
            }
        }
        Op::Del {
            v6,
            table,
            dst,
            metric,
            tos,
            by,
        } => answer(rt.block_on(route.del(del_message(v6, table, dst, metric, tos, by)).execute())),
    }
}

/// Both families' dumps, kept to the case's tables, per node in order.
fn dump(rt: &Rtnl) -> Result<Dump, String> {
    Ok(dump_full(rt)?.0)
}

/// The (family, table, prefix) of every dumped line of the case's tables
/// (one entry per line), for [`reset`].
fn dump_keys(rt: &Rtnl) -> Result<Vec<(Key, u8)>, String> {
    Ok(dump_full(rt)?.1)
}

fn dump_full(rt: &Rtnl) -> Result<(Dump, Vec<(Key, u8)>), String> {
    let mut out = Dump::new();
    let mut keys = Vec::new();
    for v6 in [false, true] {
        let req = if v6 {
            RouteMessageBuilder::<Ipv6Addr>::new().build()
        } else {
            RouteMessageBuilder::<Ipv4Addr>::new().build()
        };
        let msgs = rt
            .collect(rt.handle().route().get(req).execute())
            .map_err(|e| format!("route dump: {e}"))?;
        for m in &msgs {
            if let Some((node, l)) = kernel_line(m) {
                out.entry(node.clone()).or_default().push(l);
                // A line of one of the case's prefixes; any other line
                // stays, and reset() reports it.
                if let Some(k) = (0..2u8)
                    .flat_map(|d| TABLES.map(|t| (v6, t, d)))
                    .find(|&(v, t, d)| node_name(v, t, d) == node)
                {
                    keys.push((k, m.header.tos));
                }
            }
        }
    }
    Ok((out, keys))
}

/// Empties the case's tables between sequences: one `ip route del PREFIX
/// table T` per dumped line (an IPv6 ECMP group is one line and goes with
/// one delete), then a dump that must be empty.
fn reset(rt: &Rtnl) -> Result<(), String> {
    for _ in 0..4 {
        let left = dump_keys(rt)?;
        if left.is_empty() {
            return Ok(());
        }
        for ((v6, table, dst), tos) in left {
            // An error here shows up as a non-empty dump on the next round.
            let _ = rt.block_on(
                rt.handle()
                    .route()
                    .del(del_message(v6, table, dst, None, tos, Match::Any))
                    .execute(),
            );
        }
    }
    Err(format!("routes left after reset: {:?}", dump(rt)?))
}

#[derive(Debug, Default)]
struct Tally {
    steps: u64,
    agreeing: u64,
    skipped_hazard: u64,
    model_answers: BTreeMap<String, u64>,
    kernel_answers: BTreeMap<String, u64>,
    /// States with two or more IPv4 aliases of one priority (order matters).
    v4_groups: u64,
    /// States with an IPv6 ECMP group (a multipath line).
    v6_ecmp: u64,
}

/// Runs one sequence; `Err` names the first disagreement.
fn run_sequence(
    rt: &Rtnl,
    ipv6_tos_ignored: bool,
    ops: &[Op],
    tally: &mut Tally,
    mut record: Option<(&mut Ctx, &str)>,
) -> Result<(), String> {
    reset(rt)?;
    let mut model = Model {
        ipv6_tos_ignored,
        ..Model::default()
    };
    for (i, op) in ops.iter().enumerate() {
        let mut next = model.clone();
        let want = next.apply(op);
        if next.ipv6_dump_hazard() {
            // The kernel would hide a route from the dump (see `kernels`):
            // the step is not sent, and the model stays as it was.
            tally.skipped_hazard += 1;
            if let Some((ctx, _)) = record.as_mut() {
                ctx.note(format!("step {i} `{}` skipped: IPv6 dump defect layout", op.shell()));
            }
            continue;
        }
        model = next;
        let got = execute(rt, op);
        let kernel = dump(rt).map_err(|e| format!("after step {i}: {e}"))?;
        let expect = model.dump();
        tally.steps += 1;
        *tally.model_answers.entry(want.clone()).or_default() += 1;
        *tally.kernel_answers.entry(got.clone()).or_default() += 1;
        if model
            .fib
            .iter()
            .any(|((v6, ..), l)| !v6 && METRICS.iter().any(|&m| l.iter().filter(|e| e.metric == m).count() > 1))
        {
            tally.v4_groups += 1;
        }
        if model
            .fib
            .iter()
            .any(|((v6, ..), l)| *v6 && lines6(l).iter().any(|x| x.contains("nexthops")))
        {
            tally.v6_ecmp += 1;
        }
        if let Some((ctx, prefix)) = record.as_mut() {
            ctx.check_eq(
                format!("{prefix}.step{i:02}.answer"),
                want.clone(),
                got.clone(),
                op.shell(),
            );
            ctx.check_eq(
                format!("{prefix}.step{i:02}.dump"),
                json!(expect),
                json!(kernel),
                "the model's tables after this step",
            );
        }
        if got != want || kernel != expect {
            return Err(format!(
                "step {i} `{}`: answer expected {want}, kernel {got}; dump expected {expect:?}, kernel {kernel:?}",
                op.shell()
            ));
        }
        tally.agreeing += 1;
    }
    Ok(())
}

/// A fixed sequence that makes every claim of the model once (the random
/// ones may miss a rare branch on a given seed).
fn pinned() -> Vec<Op> {
    let r = |v6, metric, kind, metrics| Route {
        v6,
        table: 100,
        dst: 0,
        metric,
        tos: 0,
        kind,
        metrics,
    };
    let n = |verb, v6, metric, kind| Op::New(verb, r(v6, metric, kind, Metrics::None));
    let tos = |verb, v6, metric, kind| {
        Op::New(
            verb,
            Route {
                tos: 0x10,
                ..r(v6, metric, kind, Metrics::None)
            },
        )
    };
    let del = |v6, metric, by| Op::Del {
        v6,
        table: 100,
        dst: 0,
        metric,
        tos: 0,
        by,
    };
    vec![
        // IPv4
        n(Verb::Change, false, 5, Kind::Dev),          // ENOENT
        n(Verb::Add, false, 5, Kind::Dev),             // ok
        n(Verb::Add, false, 5, Kind::Blackhole),       // EEXIST (NLM_F_EXCL)
        n(Verb::Append, false, 5, Kind::Blackhole),    // after dev
        n(Verb::Prepend, false, 5, Kind::Via(0)),      // before dev
        n(Verb::Append, false, 5, Kind::Dev),          // EEXIST (fa_match)
        n(Verb::Replace, false, 5, Kind::Dev),         // EEXIST (fa_match is not fa_first)
        n(Verb::Replace, false, 5, Kind::Unreachable), // replaces the first alias
        Op::New(Verb::Append, r(false, 10, Kind::Multipath(1, 0), Metrics::MtuAdvmss)),
        tos(Verb::Add, false, 5, Kind::Blackhole), // another dscp: no EEXIST, goes first
        del(false, None, Match::Type(RType::Blackhole)), // ok
        del(false, None, Match::Via(0)),           // ESRCH (first nexthop is gw 1)
        del(false, Some(10), Match::Via(1)),       // ok
        Op::Del {
            v6: false,
            table: 100,
            dst: 0,
            metric: None,
            tos: 0x10,
            by: Match::Any,
        }, // only this dscp
        tos(Verb::Add, true, 5, Kind::Dev),        // EINVAL: no tos for IPv6
        // IPv6
        n(Verb::Change, true, 5, Kind::Via(0)),                     // ENOENT
        Op::New(Verb::Add, r(true, 5, Kind::Via(0), Metrics::Mtu)), // ok
        n(Verb::Prepend, true, 5, Kind::Via(1)),                    // ECMP sibling, at the end
        n(Verb::Append, true, 5, Kind::Via(1)),                     // EEXIST (duplicate nexthop)
        n(Verb::Append, true, 10, Kind::Multipath(1, 0)),           // ok
        n(Verb::Append, true, 10, Kind::Multipath(0, 1)),           // EEXIST, nothing added
        n(Verb::Append, true, 10, Kind::Blackhole),                 // after the group
        n(Verb::Prepend, true, 10, Kind::Unreachable),              // EEXIST (lo, no gateway)
        del(true, Some(10), Match::Type(RType::Prohibit)),          // ok: type ignored, group gone
        n(Verb::Replace, true, 5, Kind::Blackhole),                 // fallback_ins, siblings dropped
        del(true, None, Match::Via(0)),                             // ESRCH
        del(true, None, Match::Dev),                                // ESRCH
    ]
}

/// The steps of a sequence in words, each with the model's answer.
fn describe(ops: &[Op]) -> Vec<String> {
    let mut m = Model::default();
    ops.iter()
        .map(|op| {
            let mut next = m.clone();
            let a = next.apply(op);
            if next.ipv6_dump_hazard() {
                format!("{} (skipped: IPv6 dump defect layout)", op.shell())
            } else {
                m = next;
                format!("{} → model: {a}", op.shell())
            }
        })
        .collect()
}

/// The defect probe: gateway route, blackhole, second gateway route, all
/// of one metric in one IPv6 prefix; is the blackhole in the dump?
fn probe_ipv6_dump_defect(rt: &Rtnl) -> Result<(bool, bool), String> {
    reset(rt)?;
    let r = |kind| Route {
        v6: true,
        table: 100,
        dst: 0,
        metric: 5,
        tos: 0,
        kind,
        metrics: Metrics::None,
    };
    for op in [
        Op::New(Verb::Add, r(Kind::Via(0))),
        Op::New(Verb::Append, r(Kind::Blackhole)),
        Op::New(Verb::Append, r(Kind::Via(1))),
    ] {
        let a = execute(rt, &op);
        if a != "ok" {
            return Err(format!("probe step `{}`: {a}", op.shell()));
        }
    }
    let shown = dump(rt)?.values().flatten().any(|l| l.starts_with("blackhole"));
    // Remove the group by gateway; the blackhole must then be there.
    for g in 0..2 {
        let a = execute(
            rt,
            &Op::Del {
                v6: true,
                table: 100,
                dst: 0,
                metric: Some(5),
                tos: 0,
                by: Match::Via(g),
            },
        );
        if a != "ok" {
            return Err(format!("probe delete of gateway {g}: {a}"));
        }
    }
    let after = dump(rt)?.values().flatten().any(|l| l.starts_with("blackhole"));
    reset(rt)?;
    Ok((shown, after))
}

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    let ns = NetNs::new("routesm")?;
    carrierless_veth(&ns, "veth0", DEV, "veth1", 3)?;
    let rt = Rtnl::open(&ns).map_err(|e| CaseError::Harness(format!("rtnetlink handle in the namespace: {e}")))?;
    // `ip link show` through the handle: its socket must be the case
    // namespace's (lo, veth0, veth1), not the runner's.
    let mut links: Vec<u32> = rt
        .collect(rt.handle().link().get().execute())
        .map_err(|e| CaseError::Harness(format!("link dump: {e}")))?
        .iter()
        .map(|l| l.header.index)
        .collect();
    links.sort_unstable();
    ctx.check_eq(
        "rtnl.namespace_links",
        json!([LO, DEV, 3]),
        json!(links),
        "Rtnl::open() opened its NETLINK_ROUTE socket inside the case's namespace",
    );
    if links != [LO, DEV, 3] {
        // Not the case's namespace: send no route request at all.
        return Ok(());
    }
    // IPv6 refuses rtm_tos from 5.13 (rtm_to_fib6_config()); before, it
    // ignores it.
    let old_tos = !ctx.kernel.at_least(5, 13);
    ctx.observe(
        "gate.ipv6_tos",
        if old_tos {
            "ignored (before 5.13)"
        } else {
            "EINVAL (5.13+)"
        },
    );
    let tally = RefCell::new(Tally::default());
    let sequences = Cell::new(0u64);
    let found = PROPERTY.run(
        ctx,
        |deep| prop::collection::vec(op_strategy(), 1..=if deep { 40 } else { 12 }),
        |ops| {
            sequences.set(sequences.get() + 1);
            run_sequence(&rt, old_tos, &ops, &mut tally.borrow_mut(), None)
        },
    );
    let t = tally.into_inner();
    ctx.observe("steps_run", t.steps);
    ctx.observe("steps_skipped_ipv6_dump_defect", t.skipped_hazard);
    ctx.check_eq(
        "steps_agreeing",
        t.steps,
        t.agreeing,
        "every step of every sequence: answer and dump as the model predicts",
    );
    let names: std::collections::BTreeSet<&String> = t.model_answers.keys().chain(t.kernel_answers.keys()).collect();
    for n in names {
        ctx.check_eq(
            format!("answers.{n}"),
            t.model_answers.get(n).copied().unwrap_or(0),
            t.kernel_answers.get(n).copied().unwrap_or(0),
            "how often the model predicted this answer vs how often the kernel gave it",
        );
    }
    // Every error branch and both orderings must have been reached, or the
    // run proved less than it claims. EINVAL comes only from IPv6's tos
    // refusal, which kernels before 5.13 do not make.
    // The claim is about the quick run (its generator and count): an
    // explore run, deeper and cut by its deadline, only reports coverage.
    let claims = !ctx.property.explore;
    for errno in [EEXIST, ENOENT, ESRCH, EINVAL] {
        if !claims || (errno == EINVAL && old_tos) {
            ctx.observe(
                format!("coverage.{errno}"),
                t.model_answers.get(errno).copied().unwrap_or(0),
            );
            continue;
        }
        ctx.check(
            format!("coverage.{errno}"),
            Expect::Gt(0),
            t.model_answers.get(errno).copied().unwrap_or(0),
            "the generated sequences reach this error branch of the model",
        );
    }
    if claims {
        ctx.check(
            "coverage.ipv4_same_priority_aliases",
            Expect::Gt(0),
            t.v4_groups,
            "states with two IPv4 aliases of one priority (append/prepend order compared)",
        );
        ctx.check(
            "coverage.ipv6_ecmp_groups",
            Expect::Gt(0),
            t.v6_ecmp,
            "states with an IPv6 ECMP group dumped as RTA_MULTIPATH",
        );
    } else {
        ctx.observe("coverage.ipv4_same_priority_aliases", t.v4_groups);
        ctx.observe("coverage.ipv6_ecmp_groups", t.v6_ecmp);
    }
    let failed = found.result.is_err();
    PROPERTY.report(
        ctx,
        found,
        |ops| describe(ops),
        |ctx, ops| run_sequence(&rt, old_tos, ops, &mut Tally::default(), Some((ctx, "minimal"))),
    )?;
    if !failed {
        // The pinned sequence: every claim of the model once, each step's
        // answer and dump checked on every run, whatever the seed.
        if let Err(e) = run_sequence(&rt, old_tos, &pinned(), &mut Tally::default(), Some((ctx, "pinned"))) {
            ctx.note(format!("pinned sequence: {e}"));
        }
        match probe_ipv6_dump_defect(&rt) {
            Ok((shown, after)) => {
                // The model: a dump lists every route of the FIB. Where the
                // kernel hides this one, fixtures/known-issues.toml names
                // the defect (xfail, scoped to this observation).
                ctx.check_eq(
                    "ipv6_dump_defect.hidden",
                    false,
                    !shown,
                    "RTM_GETROUTE dumps every route in the table: the blackhole appended between two ECMP \
                     siblings of its metric is listed",
                );
                // Without the group the blackhole must be dumped: the route
                // was in the FIB all along (this part is checked).
                ctx.check_eq(
                    "ipv6_dump_defect.blackhole_after_group_deleted",
                    true,
                    after,
                    "fib6_add_rt2node() added the blackhole; deleting the two gateway routes leaves it",
                );
                if !shown {
                    ctx.note(
                        "known kernel defect: an IPv6 blackhole appended between two ECMP siblings of its \
                         metric is missing from the RTM_GETROUTE dump (fib6_dump_node() jumps to the last \
                         sibling)",
                    );
                }
            }
            Err(e) => return Err(CaseError::Harness(format!("IPv6 dump defect probe: {e}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v6: bool, metric: u32, kind: Kind) -> Route {
        Route {
            v6,
            table: 100,
            dst: 0,
            metric,
            tos: 0,
            kind,
            metrics: Metrics::None,
        }
    }

    fn del(v6: bool, metric: Option<u32>, by: Match) -> Op {
        Op::Del {
            v6,
            table: 100,
            dst: 0,
            metric,
            tos: 0,
            by,
        }
    }

    fn lines(m: &Model) -> Vec<String> {
        m.dump().into_values().flatten().collect()
    }

    #[test]
    fn ipv4_add_prepend_append_order() {
        let mut m = Model::default();
        assert_eq!(m.apply(&Op::New(Verb::Change, r(false, 5, Kind::Dev))), "ENOENT");
        assert_eq!(m.apply(&Op::New(Verb::Add, r(false, 5, Kind::Dev))), "ok");
        assert_eq!(m.apply(&Op::New(Verb::Add, r(false, 5, Kind::Blackhole))), "EEXIST");
        assert_eq!(m.apply(&Op::New(Verb::Append, r(false, 5, Kind::Blackhole))), "ok");
        assert_eq!(m.apply(&Op::New(Verb::Prepend, r(false, 5, Kind::Via(0)))), "ok");
        assert_eq!(m.apply(&Op::New(Verb::Append, r(false, 5, Kind::Dev))), "EEXIST");
        assert_eq!(m.apply(&Op::New(Verb::Add, r(false, 10, Kind::Prohibit))), "ok");
        let l = lines(&m);
        assert!(l[0].contains("via 198.19.0.2"), "{l:?}");
        assert!(l[1].starts_with("unicast") && l[1].contains("scope link"), "{l:?}");
        assert!(l[2].starts_with("blackhole"), "{l:?}");
        assert!(l[3].starts_with("prohibit metric 10"), "{l:?}");
        // Replace: the identical route is a later alias → EEXIST; the first → ok.
        assert_eq!(m.apply(&Op::New(Verb::Replace, r(false, 5, Kind::Dev))), "EEXIST");
        assert_eq!(m.apply(&Op::New(Verb::Replace, r(false, 5, Kind::Via(0)))), "ok");
        assert_eq!(m.apply(&Op::New(Verb::Change, r(false, 5, Kind::Unreachable))), "ok");
        assert!(lines(&m)[0].starts_with("unreachable"));
        // Delete: type, device, gateway.
        assert_eq!(m.apply(&del(false, None, Match::Via(1))), "ESRCH");
        assert_eq!(m.apply(&del(false, None, Match::Type(RType::Blackhole))), "ok");
        assert_eq!(m.apply(&del(false, Some(5), Match::Dev)), "ok");
        assert_eq!(m.apply(&del(false, Some(5), Match::Any)), "ok");
        assert_eq!(m.apply(&del(false, Some(5), Match::Any)), "ESRCH");
        assert_eq!(lines(&m).len(), 1);
    }

    #[test]
    fn ipv6_siblings_replace_delete() {
        let mut m = Model::default();
        assert_eq!(m.apply(&Op::New(Verb::Change, r(true, 5, Kind::Via(0)))), "ENOENT");
        assert_eq!(m.apply(&Op::New(Verb::Add, r(true, 5, Kind::Via(0)))), "ok");
        assert_eq!(m.apply(&Op::New(Verb::Prepend, r(true, 5, Kind::Via(1)))), "ok");
        let l = lines(&m);
        assert_eq!(l.len(), 1);
        assert!(l[0].contains("nexthops [via 2001:db8:ff::2"), "{l:?}");
        assert_eq!(m.apply(&Op::New(Verb::Append, r(true, 5, Kind::Via(1)))), "EEXIST");
        // Multipath append with one duplicate nexthop: all or nothing.
        assert_eq!(
            m.apply(&Op::New(Verb::Append, r(true, 10, Kind::Multipath(0, 1)))),
            "ok"
        );
        assert_eq!(
            m.apply(&Op::New(Verb::Append, r(true, 10, Kind::Multipath(1, 0)))),
            "EEXIST"
        );
        assert_eq!(lines(&m).len(), 2);
        // Blackhole and unreachable duplicate each other (lo, no gateway).
        assert_eq!(m.apply(&Op::New(Verb::Append, r(true, 10, Kind::Blackhole))), "ok");
        assert_eq!(
            m.apply(&Op::New(Verb::Prepend, r(true, 10, Kind::Unreachable))),
            "EEXIST"
        );
        // Replace a group by a blackhole: fallback_ins, siblings dropped.
        assert_eq!(m.apply(&Op::New(Verb::Replace, r(true, 5, Kind::Blackhole))), "ok");
        assert!(lines(&m)[0].starts_with("blackhole metric 5"));
        // Delete ignores the type; without a gateway the whole group goes.
        assert_eq!(m.apply(&del(true, Some(10), Match::Type(RType::Prohibit))), "ok");
        assert_eq!(lines(&m).len(), 2, "{:?}", lines(&m));
        assert_eq!(m.apply(&del(true, Some(10), Match::Via(0))), "ESRCH");
        assert_eq!(m.apply(&del(true, None, Match::Dev)), "ESRCH");
    }

    #[test]
    fn tos_keys_ipv4_and_is_refused_by_ipv6() {
        let mut m = Model::default();
        let t = |v6, kind| Route {
            tos: 0x10,
            ..r(v6, 5, kind)
        };
        assert_eq!(m.apply(&Op::New(Verb::Add, r(false, 5, Kind::Dev))), "ok");
        assert_eq!(m.apply(&Op::New(Verb::Add, t(false, Kind::Blackhole))), "ok");
        let l = lines(&m);
        assert!(l[0].starts_with("blackhole tos 0x10 metric 5"), "{l:?}");
        assert_eq!(m.apply(&del(false, None, Match::Type(RType::Blackhole))), "ESRCH");
        assert_eq!(m.apply(&Op::New(Verb::Add, t(true, Kind::Dev))), "EINVAL");
        assert_eq!(
            m.apply(&Op::Del {
                v6: false,
                table: 100,
                dst: 0,
                metric: None,
                tos: 0x10,
                by: Match::Any,
            }),
            "ok"
        );
    }

    #[test]
    fn before_5_13_ipv6_ignores_tos() {
        // Seen on Debian's 5.10 in the matrix: the route is added, as tos 0.
        let mut m = Model {
            ipv6_tos_ignored: true,
            ..Model::default()
        };
        let t = Route {
            tos: 0x10,
            ..r(true, 5, Kind::Dev)
        };
        assert_eq!(m.apply(&Op::New(Verb::Add, t)), "ok");
        assert_eq!(m.apply(&Op::New(Verb::Add, r(true, 5, Kind::Dev))), "EEXIST");
        let l = lines(&m);
        assert!(!l[0].contains("tos"), "{l:?}");
    }

    #[test]
    fn ipv6_hazard_detected() {
        let mut m = Model::default();
        m.apply(&Op::New(Verb::Add, r(true, 5, Kind::Via(0))));
        m.apply(&Op::New(Verb::Append, r(true, 5, Kind::Blackhole)));
        assert!(!m.ipv6_dump_hazard());
        m.apply(&Op::New(Verb::Append, r(true, 5, Kind::Via(1))));
        assert!(m.ipv6_dump_hazard());
    }

    #[test]
    fn shell_words() {
        let op = Op::New(
            Verb::Append,
            Route {
                v6: false,
                table: 254,
                dst: 1,
                metric: 10,
                tos: 0x10,
                kind: Kind::Multipath(0, 1),
                metrics: Metrics::Mtu,
            },
        );
        assert_eq!(
            op.shell(),
            "ip route append 198.18.6.0/24 tos 0x10 table main metric 10 mtu 1400 nexthop via 198.19.0.2 dev veth0 \
             onlink nexthop via 198.19.0.3 dev veth0 onlink"
        );
        assert_eq!(
            del(true, Some(5), Match::Type(RType::Blackhole)).shell(),
            "ip -6 route del blackhole 2001:db8:5::/64 table 100 metric 5"
        );
    }
}
