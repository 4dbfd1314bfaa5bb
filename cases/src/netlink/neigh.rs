//! neigh.add_dump: the neighbour table, written and read back over rtnetlink.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use kharness::{CaseDef, CaseError, Ctx, Expect, NetNs};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use serde_json::{json, Value};

use super::{
    carrierless_veth, mac_str, neigh_add, neigh_dump, operstate, outcome, state_name, NUD_CONNECTED, NUD_NOARP,
    NUD_PERMANENT, NUD_REACHABLE, NUD_STALE, USER_HZ,
};

/// `RTN_UNICAST`: `ndm_type` of a unicast neighbour (`arp_constructor()`
/// via `inet_addr_type_dev_table()`, `ndisc_constructor()`).
const RTN_UNICAST: u8 = 1;

/// The table the case writes: (destination, state, lladdr).
const TABLE: &[(&str, u16, [u8; 6])] = &[
    ("198.18.0.10", NUD_PERMANENT, [0x02, 0, 0, 0, 0x04, 0x10]),
    ("198.18.0.11", NUD_REACHABLE, [0x02, 0, 0, 0, 0x04, 0x11]),
    ("198.18.0.12", NUD_STALE, [0x02, 0, 0, 0, 0x04, 0x12]),
    ("198.18.0.13", NUD_NOARP, [0x02, 0, 0, 0, 0x04, 0x13]),
    ("2001:db8::10", NUD_PERMANENT, [0x02, 0, 0, 0, 0x06, 0x10]),
    ("2001:db8::11", NUD_REACHABLE, [0x02, 0, 0, 0, 0x06, 0x11]),
    ("2001:db8::12", NUD_STALE, [0x02, 0, 0, 0, 0x06, 0x12]),
    ("2001:db8::13", NUD_NOARP, [0x02, 0, 0, 0, 0x06, 0x13]),
];

/// neigh.add_dump
pub static ADD_DUMP: CaseDef = CaseDef {
    id: "neigh.add_dump",
    variants: &[],
    summary: "IPv4 and IPv6 neighbours added as PERMANENT, REACHABLE, STALE and NOARP dump back exactly",
    drives: "In a namespace of its own, on veth0 (peer down, so no carrier and no traffic; the \
        case first waits for linkwatch to report operstate LOWERLAYERDOWN, since that event's \
        NETDEV_CHANGE flushes non-PERMANENT entries), eight RTM_NEWNEIGH requests with NLM_F_CREATE|NLM_F_EXCL: 198.18.0.10-13 and 2001:db8::10-13, \
        one per state PERMANENT, REACHABLE, STALE, NOARP, each with its own lladdr.",
    observes: "veth0's IFLA_OPERSTATE; each request's answer; one RTM_GETNEIGH dump (AF_UNSPEC): ndm_state, ndm_flags, \
        ndm_type, NDA_DST, NDA_LLADDR, NDA_PROBES, NDA_CACHEINFO; the per-device \
        base_reachable_time_ms sysctls; `ip -j neigh show dev veth0` run inside the namespace.",
    predicts: "Every add succeeds; the dump holds exactly the eight entries on veth0 (nothing on \
        any other device) with the state and lladdr given, flags 0, type RTN_UNICAST, probes 0; \
        NDA_CACHEINFO present with used/updated ages no larger than the time since the adds \
        (not in the future), confirmed likewise for the NUD_CONNECTED states and \
        2*base_reachable_time (+ elapsed) for STALE; iproute2 shows the same table less NOARP.",
    why: "neigh_add() creates the entry (___neigh_create() stamps used/updated now and confirmed \
        now - 2*BASE_REACHABLE_TIME) and __neigh_update() sets state and lladdr under \
        NEIGH_UPDATE_F_ADMIN|OVERRIDE, setting confirmed=now only for NUD_CONNECTED states and \
        back-dating it again when a new lladdr arrives in a non-connected state. \
        neigh_fill_info() reports ages (now - stamp) in USER_HZ through jiffies_to_clock_t(), \
        puts NDA_LLADDR only for NUD_VALID, then NDA_PROBES and NDA_CACHEINFO. ndm_type comes \
        from inet_addr_type_dev_table() (IPv4) and ndisc_constructor() (IPv6). iproute2's \
        `ip neigh show` filters out NOARP and NONE entries unless `nud all` (ip/ipneigh.c).",
    kernels: "Unchanged in substance since 2.6; NDA_PROBES since 2.6.x; NDA_PROTOCOL (5.2) and \
        NDA_FLAGS_EXT (5.16) only appear when set, which this case never does.",
    shell: "ip -n NS neigh add 198.18.0.12 lladdr 02:00:00:00:04:12 dev veth0 nud stale; \
        ip -n NS -s -j neigh show dev veth0 nud all",
    source: "seed 000 (How to use Netlink to get ipv6 neighbors); seed 004 (RTM_NEWNEIGH family)",
    timeout: Duration::from_secs(10),
    run,
};

/// The model's view of an entry: what `neigh_fill_info()` will say.
fn entry_json(state: u16, lladdr: Option<&[u8]>, flags: u8, kind: u8, probes: Option<u32>) -> Value {
    json!({
        "state": state_name(state),
        "lladdr": lladdr.map(mac_str),
        "flags": flags,
        "type": kind,
        "probes": probes,
    })
}

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    let ns = NetNs::new("neigh")?;
    carrierless_veth(&ns, "veth0", 2, "veth1", 3)?;
    ctx.check_eq(
        "veth0.operstate",
        "LowerLayerDown",
        json!(operstate(&ns, 2).map(|s| format!("{s:?}"))),
        "rfc2863_policy(): up, no carrier, iflink (the peer) != ifindex -> IF_OPER_LOWERLAYERDOWN",
    );
    let base4: i64 = ns
        .sysctl_read("net.ipv4.neigh.veth0.base_reachable_time_ms")?
        .parse()
        .map_err(|e| CaseError::Harness(format!("base_reachable_time_ms: {e}")))?;
    let base6: i64 = ns
        .sysctl_read("net.ipv6.neigh.veth0.base_reachable_time_ms")?
        .parse()
        .map_err(|e| CaseError::Harness(format!("base_reachable_time_ms: {e}")))?;
    ctx.observe("sysctl.ipv4.base_reachable_time_ms", base4);
    ctx.observe("sysctl.ipv6.base_reachable_time_ms", base6);

    let start = Instant::now();
    let mut expected = BTreeMap::new();
    for (dst, state, mac) in TABLE {
        let ip: IpAddr = dst.parse().expect("table address");
        let r = neigh_add(&ns, 2, ip, *state, Some(mac), NLM_F_CREATE | NLM_F_EXCL);
        ctx.check_eq(
            format!("add.{dst}"),
            "ok",
            outcome(&r),
            "neigh_add(): no entry yet, NLM_F_CREATE given, lladdr long enough",
        );
        expected.insert(dst.to_string(), entry_json(*state, Some(mac), 0, RTN_UNICAST, Some(0)));
    }
    let dump = neigh_dump(&ns)?;
    // Ages are in USER_HZ ticks; one tick of slack for the rounding of
    // jiffies_to_clock_t() at each end.
    let elapsed_ticks = (start.elapsed().as_secs_f64() * USER_HZ as f64).ceil() as i64 + 1;
    ctx.observe_volatile("elapsed_ticks", elapsed_ticks);

    let mut observed = BTreeMap::new();
    let mut elsewhere = Vec::new();
    for e in &dump {
        if e.ifindex == 2 {
            observed.insert(
                e.dst_str(),
                entry_json(e.state, e.lladdr.as_deref(), e.flags, e.kind, e.probes),
            );
        } else {
            elsewhere.push(format!("{} dev {}", e.dst_str(), e.ifindex));
        }
    }
    ctx.check_eq(
        "dump.veth0",
        Value::Object(expected.clone().into_iter().collect()),
        Value::Object(observed.into_iter().collect()),
        "neigh_dump_table()/neigh_fill_info(): one RTM_NEWNEIGH per entry, state and lladdr as set by __neigh_update()",
    );
    ctx.check_eq(
        "dump.other_devices",
        json!([]),
        json!(elsewhere),
        "no carrier, no traffic: the kernel created no entry of its own",
    );

    for e in dump.iter().filter(|e| e.ifindex == 2) {
        let d = e.dst_str();
        let Some(ci) = e.cache else {
            ctx.check(
                format!("cacheinfo.{d}"),
                Expect::Present,
                Value::Null,
                "neigh_fill_info() always puts NDA_CACHEINFO",
            );
            continue;
        };
        let src = "neigh_fill_info(): ages now - stamp in USER_HZ; a stamp in the future would wrap to a huge u32";
        ctx.check(
            format!("cacheinfo.{d}.used"),
            Expect::Between(0, elapsed_ticks),
            ci.used,
            src,
        );
        crate::volatile(ctx, &format!("cacheinfo.{d}.used"));
        ctx.check(
            format!("cacheinfo.{d}.updated"),
            Expect::Between(0, elapsed_ticks),
            ci.updated,
            src,
        );
        crate::volatile(ctx, &format!("cacheinfo.{d}.updated"));
        let model_state = TABLE.iter().find(|(a, _, _)| *a == d).map(|(_, s, _)| *s).unwrap_or(0);
        if model_state & NUD_CONNECTED != 0 {
            ctx.check(
                format!("cacheinfo.{d}.confirmed"),
                Expect::Between(0, elapsed_ticks),
                ci.confirmed,
                "__neigh_update(): NUD_CONNECTED sets confirmed = jiffies",
            );
            crate::volatile(ctx, &format!("cacheinfo.{d}.confirmed"));
        } else {
            let base = if e.dst.is_some_and(|a| a.is_ipv4()) {
                base4
            } else {
                base6
            };
            let back = 2 * base * USER_HZ as i64 / 1000;
            ctx.check(
                format!("cacheinfo.{d}.confirmed"),
                Expect::Between(back, back + elapsed_ticks),
                ci.confirmed,
                "___neigh_create()/__neigh_update(): a non-connected entry with a new lladdr gets \
                 confirmed = jiffies - 2*BASE_REACHABLE_TIME",
            );
            crate::volatile(ctx, &format!("cacheinfo.{d}.confirmed"));
        }
        ctx.observe_volatile(format!("cacheinfo.{d}.refcnt"), ci.refcnt);
    }

    iproute2_cross_check(ctx, &ns, &expected)?;
    Ok(())
}

/// Runs `ip -j neigh show dev veth0` inside the namespace (a child inherits
/// the net namespace of the thread that forks it) and compares it with the
/// model as iproute2 filters it: `ip neigh show` without `nud` hides NOARP
/// and NONE entries (ip/ipneigh.c sets `filter.state = 0xFF & ~NUD_NOARP`).
fn iproute2_cross_check(ctx: &mut Ctx, ns: &NetNs, model: &BTreeMap<String, Value>) -> Result<(), CaseError> {
    let out = ns.run(|| {
        Command::new("ip")
            .args(["-j", "neigh", "show", "dev", "veth0"])
            .output()
    })?;
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            ctx.note("iproute2 `ip` is not installed: the `ip -j neigh` cross-check was not made");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let lower = err.to_lowercase();
        // An `ip` without JSON output (old iproute2, BusyBox) is a missing
        // feature, not a failure.
        if lower.contains("json") || lower.contains("\"-j\"") || lower.contains("invalid option") {
            ctx.note(format!(
                "this iproute2 has no JSON output: cross-check not made ({})",
                err.trim()
            ));
            return Ok(());
        }
        return Err(CaseError::Harness(format!(
            "ip -j neigh show dev veth0: {}",
            err.trim()
        )));
    }
    let parsed: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| CaseError::Harness(format!("ip -j neigh output is not JSON: {e}")))?;
    let mut seen = serde_json::Map::new();
    for n in parsed.as_array().into_iter().flatten() {
        let dst = n.get("dst").and_then(Value::as_str).unwrap_or("?").to_string();
        let state = n.get("state").cloned().unwrap_or(Value::Null);
        seen.insert(
            dst,
            json!({ "lladdr": n.get("lladdr").cloned().unwrap_or(Value::Null), "state": state }),
        );
    }
    let mut want = serde_json::Map::new();
    for (dst, e) in model {
        let st = e["state"].as_str().unwrap_or("");
        if st == "NOARP" || st == "NONE" {
            continue;
        }
        want.insert(dst.clone(), json!({ "lladdr": e["lladdr"], "state": [st] }));
    }
    ctx.check_eq(
        "iproute2.neigh_show",
        Value::Object(want),
        Value::Object(seen),
        "the model table less NOARP/NONE entries, which `ip neigh show` filters out (ip/ipneigh.c)",
    );
    Ok(())
}
