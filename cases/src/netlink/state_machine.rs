//! neigh.state_machine: random sequences of neighbour adds, deletes and
//! flushes against a reference model of `neigh_add()` / `neigh_delete()`.
//!
//! The model is a map `(ifindex, address) -> (state, lladdr)`. Each request
//! is predicted from it before it is sent; after each step the whole dump of
//! the namespace must equal the map. A failing sequence is shrunk by
//! proptest and saved under `fixtures/proptest-regressions/`, then replayed
//! once more with every step recorded in the report.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use kharness::netlink::NlError;
use kharness::{CaseDef, CaseError, Ctx, NetNs};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use proptest::prelude::*;
use serde_json::json;

use crate::prop::Property;

use super::{
    carrierless_veth, mac_str, neigh_add, neigh_del, neigh_dump, outcome, state_name, NeighEntry, NUD_NOARP,
    NUD_PERMANENT, NUD_REACHABLE, NUD_STALE,
};

/// Generated sequences per run (each up to `MAX_OPS` steps): enough to hit
/// every branch of the model many times, small enough for the family's
/// 5-second budget.
const CASES: u32 = 64;
/// Longest sequence.
const MAX_OPS: usize = 24;

/// The interfaces ops pick from (veth0 and veth2; their peers stay down).
const DEVS: [u32; 2] = [2, 4];

/// neigh.state_machine
pub static STATE_MACHINE: CaseDef = CaseDef {
    id: "neigh.state_machine",
    variants: &[],
    summary: "random add/replace/change/delete/flush sequences: the dump and every errno follow the model",
    drives: "proptest: 64 sequences of up to 24 ops (`explore`: 256 of up to 96, fresh seeds) on two carrier-less veths, both families, three \
        addresses each: add (NLM_F_CREATE|NLM_F_EXCL = ip neigh add), replace \
        (NLM_F_CREATE|NLM_F_REPLACE), change (NLM_F_REPLACE alone), create (NLM_F_CREATE alone), \
        each with state PERMANENT/REACHABLE/STALE/NOARP and an lladdr, no lladdr, or a 3-byte \
        lladdr; delete (RTM_DELNEIGH); flush (dump, then delete every entry of one device and \
        family that is neither PERMANENT nor NOARP, as `ip neigh flush dev DEV` does).",
    observes: "The answer to every request; an RTM_GETNEIGH dump of the namespace after every step.",
    predicts: "The dump equals the model after every step. EEXIST exactly for NLM_F_EXCL on an \
        existing entry; ENOENT for change/delete of a missing entry; EINVAL for a short lladdr \
        (before any lookup) and for no lladdr when the entry has none, and a create that fails \
        that way still leaves an entry in state NONE (no lladdr) that later requests see; \
        create-only on an entry with a different lladdr succeeds and changes nothing.",
    why: "net/core/neighbour.c: neigh_add() refuses an lladdr shorter than dev->addr_len \
        (\"Invalid link address\"), looks the entry up, answers ENOENT without NLM_F_CREATE and \
        EEXIST with NLM_F_EXCL, otherwise calls ___neigh_create() (the entry is in the table \
        from then on) and __neigh_update(), which without an lladdr and no valid old state \
        fails with EINVAL (\"No link layer address given\") after the entry was created; \
        without NLM_F_REPLACE neigh_add() drops NEIGH_UPDATE_F_OVERRIDE, and __neigh_update() \
        then leaves a valid entry with a different lladdr untouched and returns 0. \
        neigh_delete() answers ENOENT for a missing entry and otherwise removes it \
        (neigh_remove_one()).",
    kernels: "The ENOENT/EEXIST logic and the NUD_NONE residue of a failed create are old \
        (2.6-era code). Current kernels remove a deleted entry at once (neigh_remove_one()); \
        older ones could leave it as FAILED until garbage collection, which this model would \
        see as a dump mismatch. Extack texts since about 5.0. Since 4.20 (\"net: Evict neighbor \
        entries on carrier down\") a NETDEV_CHANGE without carrier flushes the device's \
        non-PERMANENT entries; a new veth's first carrier-off event arrives that way, late, \
        through linkwatch, so the case waits for it before the first step.",
    shell: "ip neigh add|replace|change 198.18.0.1 lladdr 02:00:00:00:00:01 dev veth0 nud stale; \
        ip neigh del 198.18.0.1 dev veth0; ip neigh flush dev veth0; ip neigh show nud all",
    source: "seed 000 (neighbour dump); seed 004 (RTM_NEWNEIGH/RTM_DELNEIGH)",
    timeout: Duration::from_secs(30),
    run,
};

/// How an add asks: the `nlmsg_flags` of `ip neigh add|replace|change`, and
/// bare `NLM_F_CREATE` (no iproute2 verb, a libnl "create or update").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Excl,
    Replace,
    Change,
    Create,
}

impl Mode {
    fn nlm_flags(self) -> u16 {
        match self {
            Mode::Excl => NLM_F_CREATE | NLM_F_EXCL,
            Mode::Replace => NLM_F_CREATE | NLM_F_REPLACE,
            Mode::Change => NLM_F_REPLACE,
            Mode::Create => NLM_F_CREATE,
        }
    }
    fn create(self) -> bool {
        self.nlm_flags() & NLM_F_CREATE != 0
    }
    fn excl(self) -> bool {
        self.nlm_flags() & NLM_F_EXCL != 0
    }
    fn replace(self) -> bool {
        self.nlm_flags() & NLM_F_REPLACE != 0
    }
    fn verb(self) -> &'static str {
        match self {
            Mode::Excl => "add",
            Mode::Replace => "replace",
            Mode::Change => "change",
            Mode::Create => "(create-only)",
        }
    }
}

/// What the add carries as `NDA_LLADDR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ll {
    /// 02:00:00:00:00:0N.
    Mac(u8),
    /// No `NDA_LLADDR`.
    None,
    /// Three bytes: shorter than the device's `addr_len`.
    Short,
}

/// One step.
#[derive(Debug, Clone)]
enum Op {
    Add {
        mode: Mode,
        dev: usize,
        v6: bool,
        host: u8,
        state: u16,
        ll: Ll,
    },
    Delete {
        dev: usize,
        v6: bool,
        host: u8,
    },
    Flush {
        dev: usize,
        v6: bool,
    },
}

fn addr(v6: bool, host: u8) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, host as u16))
    } else {
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, host))
    }
}

fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

impl Op {
    /// The iproute2 command closest to this step (for the report).
    fn shell(&self) -> String {
        match self {
            Op::Add {
                mode,
                dev,
                v6,
                host,
                state,
                ll,
            } => {
                let l = match ll {
                    Ll::Mac(n) => format!(" lladdr {}", mac_str(&mac(*n))),
                    Ll::None => String::new(),
                    Ll::Short => " lladdr 02:00:00".into(),
                };
                format!(
                    "ip neigh {} {}{l} dev veth{} nud {}",
                    mode.verb(),
                    addr(*v6, *host),
                    dev * 2,
                    state_name(*state).to_lowercase()
                )
            }
            Op::Delete { dev, v6, host } => format!("ip neigh del {} dev veth{}", addr(*v6, *host), dev * 2),
            Op::Flush { dev, v6 } => format!("ip -{} neigh flush dev veth{}", if *v6 { 6 } else { 4 }, dev * 2),
        }
    }
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let mode = prop_oneof![
        Just(Mode::Excl),
        Just(Mode::Replace),
        Just(Mode::Change),
        Just(Mode::Create)
    ];
    let state = prop::sample::select(vec![NUD_PERMANENT, NUD_REACHABLE, NUD_STALE, NUD_NOARP]);
    let ll = prop_oneof![8 => (1u8..=3).prop_map(Ll::Mac), 1 => Just(Ll::None), 1 => Just(Ll::Short)];
    prop_oneof![
        6 => (mode, 0..2usize, any::<bool>(), 1u8..=3, state, ll)
            .prop_map(|(mode, dev, v6, host, state, ll)| Op::Add { mode, dev, v6, host, state, ll }),
        2 => (0..2usize, any::<bool>(), 1u8..=3).prop_map(|(dev, v6, host)| Op::Delete { dev, v6, host }),
        1 => (0..2usize, any::<bool>()).prop_map(|(dev, v6)| Op::Flush { dev, v6 }),
    ]
}

/// An entry as the model holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    state: u16,
    lladdr: Option<[u8; 6]>,
}

/// The reference model: every entry of the namespace.
#[derive(Debug, Default, Clone)]
struct Model {
    table: BTreeMap<(u32, IpAddr), Entry>,
}

impl Model {
    /// Applies `op` and returns the answer the kernel must give (`ok` or an
    /// errno name), following neigh_add() / __neigh_update() /
    /// neigh_delete().
    fn apply(&mut self, op: &Op) -> String {
        match *op {
            Op::Add {
                mode,
                dev,
                v6,
                host,
                state,
                ll,
            } => {
                let key = (DEVS[dev], addr(v6, host));
                // neigh_add(): the lladdr length check comes before the lookup.
                let lladdr = match ll {
                    Ll::Short => return "EINVAL".into(),
                    Ll::None => None,
                    Ll::Mac(n) => Some(mac(n)),
                };
                let existed = self.table.contains_key(&key);
                if !existed {
                    if !mode.create() {
                        return "ENOENT".into();
                    }
                    // ___neigh_create(): in the table from now on, NUD_NONE.
                    self.table.insert(key, Entry { state: 0, lladdr: None });
                } else if mode.excl() {
                    return "EEXIST".into();
                }
                let e = self.table.get_mut(&key).expect("present");
                let valid = e.state != 0;
                match lladdr {
                    None if !valid => "EINVAL".into(),
                    None => {
                        e.state = state;
                        "ok".into()
                    }
                    Some(l) => {
                        // Without NLM_F_REPLACE there is no OVERRIDE: a valid
                        // entry with another lladdr is left alone, answer 0.
                        if valid && e.lladdr != Some(l) && !mode.replace() {
                            return "ok".into();
                        }
                        e.state = state;
                        e.lladdr = Some(l);
                        "ok".into()
                    }
                }
            }
            Op::Delete { dev, v6, host } => match self.table.remove(&(DEVS[dev], addr(v6, host))) {
                Some(_) => "ok".into(),
                None => "ENOENT".into(),
            },
            Op::Flush { dev, v6 } => {
                self.table.retain(|(ifi, a), e| {
                    !(*ifi == DEVS[dev] && a.is_ipv6() == v6 && e.state & (NUD_PERMANENT | NUD_NOARP) == 0)
                });
                "ok".into()
            }
        }
    }

    /// The dump the kernel must give, one line per entry, sorted.
    fn lines(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .table
            .iter()
            .map(|((ifi, a), e)| line(*ifi, &a.to_string(), e.state, e.lladdr.as_ref().map(|l| &l[..]), 0, 1))
            .collect();
        v.sort();
        v
    }
}

fn line(ifindex: u32, dst: &str, state: u16, lladdr: Option<&[u8]>, flags: u8, kind: u8) -> String {
    format!(
        "{dst} dev {ifindex} lladdr {} {} flags {flags} type {kind}",
        lladdr.map(mac_str).unwrap_or_else(|| "-".into()),
        state_name(state)
    )
}

fn dump_lines(dump: &[NeighEntry]) -> Vec<String> {
    let mut v: Vec<String> = dump
        .iter()
        .map(|e| line(e.ifindex, &e.dst_str(), e.state, e.lladdr.as_deref(), e.flags, e.kind))
        .collect();
    v.sort();
    v
}

/// Sends `op` to the kernel; returns `ok` or the errno name.
fn execute(ns: &NetNs, op: &Op) -> Result<String, NlError> {
    Ok(match *op {
        Op::Add {
            mode,
            dev,
            v6,
            host,
            state,
            ll,
        } => {
            let short = [0x02u8, 0, 0];
            let m;
            let l: Option<&[u8]> = match ll {
                Ll::Mac(n) => {
                    m = mac(n);
                    Some(&m)
                }
                Ll::None => None,
                Ll::Short => Some(&short),
            };
            outcome(&neigh_add(ns, DEVS[dev], addr(v6, host), state, l, mode.nlm_flags()))
        }
        Op::Delete { dev, v6, host } => outcome(&neigh_del(ns, DEVS[dev], addr(v6, host))),
        Op::Flush { dev, v6 } => {
            // What `ip neigh flush` does: dump, then delete each match.
            let mut first_err = None;
            for e in neigh_dump(ns)? {
                let Some(a) = e.dst else { continue };
                if e.ifindex == DEVS[dev] && a.is_ipv6() == v6 && e.state & (NUD_PERMANENT | NUD_NOARP) == 0 {
                    let r = outcome(&neigh_del(ns, e.ifindex, a));
                    if r != "ok" && first_err.is_none() {
                        first_err = Some(r);
                    }
                }
            }
            first_err.unwrap_or_else(|| "ok".into())
        }
    })
}

/// Empties the namespace's tables between sequences.
fn reset(ns: &NetNs) -> Result<Vec<String>, NlError> {
    for e in neigh_dump(ns)? {
        if let Some(a) = e.dst {
            neigh_del(ns, e.ifindex, a)?;
        }
    }
    Ok(dump_lines(&neigh_dump(ns)?))
}

#[derive(Debug, Default)]
struct Tally {
    sequences: u64,
    steps: u64,
    agreeing: u64,
    model_answers: BTreeMap<String, u64>,
    kernel_answers: BTreeMap<String, u64>,
}

/// Runs one sequence; `Err` names the first step where kernel and model
/// disagree.
fn run_sequence(ns: &NetNs, ops: &[Op], tally: &mut Tally, mut record: Option<&mut Ctx>) -> Result<(), String> {
    let left = reset(ns).map_err(|e| format!("reset: {e}"))?;
    if !left.is_empty() {
        return Err(format!("the table did not empty between sequences: {left:?}"));
    }
    tally.sequences += 1;
    let mut model = Model::default();
    for (i, op) in ops.iter().enumerate() {
        let want = model.apply(op);
        let got = execute(ns, op).map_err(|e| format!("step {i} ({}): {e}", op.shell()))?;
        let dump = dump_lines(&neigh_dump(ns).map_err(|e| format!("dump after step {i}: {e}"))?);
        let want_dump = model.lines();
        tally.steps += 1;
        *tally.model_answers.entry(want.clone()).or_default() += 1;
        *tally.kernel_answers.entry(got.clone()).or_default() += 1;
        if let Some(ctx) = record.as_deref_mut() {
            ctx.check_eq(
                format!("minimal.step{i:02}.answer"),
                want.clone(),
                got.clone(),
                op.shell(),
            );
            ctx.check_eq(
                format!("minimal.step{i:02}.dump"),
                json!(want_dump),
                json!(dump),
                "the model table after this step",
            );
        }
        if got != want || dump != want_dump {
            return Err(format!(
                "step {i} `{}`: answer expected {want}, kernel {got}; dump expected {want_dump:?}, kernel {dump:?}",
                op.shell()
            ));
        }
        tally.agreeing += 1;
    }
    Ok(())
}

/// The property: quick and explore counts, regression file.
const PROPERTY: Property = Property {
    id: "neigh.state_machine",
    quick_cases: CASES,
    explore_cases: 256,
    regressions: "neigh_state_machine.txt",
    max_shrink_iters: 512,
};

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    // Volatile for `report diff`: the answer counts depend on how many sequences ran.
    ctx.mark_volatile("answers.*");
    ctx.mark_volatile("coverage.*");
    ctx.mark_volatile("steps_agreeing");
    let ns = NetNs::new("neighsm")?;
    carrierless_veth(&ns, "veth0", 2, "veth1", 3)?;
    carrierless_veth(&ns, "veth2", 4, "veth3", 5)?;

    // explore: sequences up to four times as long.
    let tally = RefCell::new(Tally::default());
    // Any error of a sequence (a disagreement, or a reset, request or dump
    // that failed) fails the property: it is shrunk, replayed and reported.
    let found = PROPERTY.run(
        ctx,
        |deep| prop::collection::vec(op_strategy(), 1..=if deep { 4 * MAX_OPS } else { MAX_OPS }),
        |ops| run_sequence(&ns, &ops, &mut tally.borrow_mut(), None),
    );
    let t = tally.into_inner();
    ctx.observe_volatile("sequences_run", t.sequences);
    ctx.check_eq(
        "steps_agreeing",
        t.steps,
        t.agreeing,
        "every step of every sequence: answer and dump as the model predicts",
    );
    crate::volatile(ctx, "steps_agreeing");
    let names: std::collections::BTreeSet<&String> = t.model_answers.keys().chain(t.kernel_answers.keys()).collect();
    for n in names {
        ctx.check_eq(
            format!("answers.{n}"),
            t.model_answers.get(n).copied().unwrap_or(0),
            t.kernel_answers.get(n).copied().unwrap_or(0),
            "how often the model predicted this answer vs how often the kernel gave it",
        );
        crate::volatile(ctx, &format!("answers.{n}"));
    }
    // The model must have exercised each of its branches at least once, or
    // the run proved less than it claims. The claim is about CASES
    // sequences: an explore run its deadline cut shorter only reports it.
    for errno in ["EEXIST", "ENOENT", "EINVAL"] {
        let n = t.model_answers.get(errno).copied().unwrap_or(0);
        if !ctx.property.explore && t.sequences >= u64::from(CASES) {
            ctx.check(
                format!("coverage.{errno}"),
                kharness::Expect::Gt(0),
                n,
                "64 random sequences reach every error branch of the model",
            );
            crate::volatile(ctx, &format!("coverage.{errno}"));
            crate::volatile(ctx, &format!("coverage.{errno}"));
        } else {
            ctx.observe_volatile(format!("coverage.{errno}"), n);
        }
    }
    PROPERTY.report(
        ctx,
        found,
        |ops| ops.iter().map(Op::shell).collect(),
        |ctx, ops| run_sequence(&ns, ops, &mut Tally::default(), Some(ctx)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(mode: Mode, state: u16, ll: Ll) -> Op {
        Op::Add {
            mode,
            dev: 0,
            v6: false,
            host: 1,
            state,
            ll,
        }
    }

    #[test]
    fn model_branches() {
        let mut m = Model::default();
        assert_eq!(m.apply(&add(Mode::Change, NUD_STALE, Ll::Mac(1))), "ENOENT");
        assert_eq!(m.apply(&add(Mode::Excl, NUD_STALE, Ll::None)), "EINVAL");
        // The failed create left a NONE entry behind.
        assert_eq!(
            m.lines(),
            vec!["198.18.0.1 dev 2 lladdr - NONE flags 0 type 1".to_string()]
        );
        assert_eq!(m.apply(&add(Mode::Excl, NUD_STALE, Ll::Mac(1))), "EEXIST");
        assert_eq!(m.apply(&add(Mode::Create, NUD_STALE, Ll::Mac(1))), "ok");
        assert_eq!(m.apply(&add(Mode::Create, NUD_REACHABLE, Ll::Mac(2))), "ok");
        assert_eq!(
            m.table.values().next().unwrap().lladdr,
            Some(mac(1)),
            "no override without REPLACE"
        );
        assert_eq!(m.apply(&add(Mode::Replace, NUD_PERMANENT, Ll::Mac(2))), "ok");
        assert_eq!(m.apply(&Op::Flush { dev: 0, v6: false }), "ok");
        assert_eq!(m.table.len(), 1, "flush keeps PERMANENT");
        assert_eq!(m.apply(&add(Mode::Replace, NUD_STALE, Ll::Short)), "EINVAL");
        assert_eq!(
            m.apply(&Op::Delete {
                dev: 0,
                v6: false,
                host: 1
            }),
            "ok"
        );
        assert_eq!(
            m.apply(&Op::Delete {
                dev: 0,
                v6: false,
                host: 1
            }),
            "ENOENT"
        );
        assert_eq!(super::super::errno_name(17), "EEXIST");
    }
}
