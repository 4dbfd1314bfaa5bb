//! The kharness scenario catalog (`../shared/SCENARIOS.md`), one module per
//! family. Scenario code holds no `unsafe`: everything that needs it lives in
//! `kharness::sys`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use kharness::CaseDef;

/// Marks an observation a check has recorded as volatile (a port, an inode,
/// a pid, a path with a pid in it: it differs from run to run on one kernel),
/// so the matrix's differences leave it out. The check stays a check.
pub(crate) fn volatile(ctx: &mut kharness::Ctx, name: &str) {
    if let Some(v) = ctx.observed(name).cloned() {
        ctx.observe_volatile(name, v);
    }
}

pub mod netlink;
pub mod prop;
pub mod raw;
pub mod tcp;
pub mod unix;

/// The property cases: built on proptest or a state machine, run with a
/// seed, explored by `kharness explore`.
pub const PROPERTY_CASES: &[&str] = &[
    "tcp.ops_property",
    "tcp.sndbuf_setget",
    "unix.fd_property",
    "unix.gc_property",
    "unix.oob_property",
    "neigh.state_machine",
    "route.state_machine",
    "raw.verdict_property",
];

/// Every case, in catalog order.
pub fn catalog() -> Vec<&'static CaseDef> {
    let mut all = Vec::new();
    all.extend(tcp::cases());
    all.extend(unix::cases());
    all.extend(netlink::cases());
    all.extend(raw::cases());
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_documented() {
        let cat = catalog();
        let mut seen = std::collections::BTreeSet::new();
        for c in &cat {
            assert!(seen.insert(c.id), "duplicate case id {}", c.id);
            let (family, name) = c.id.split_once('.').expect("id is family.case");
            assert!(!family.is_empty() && !name.is_empty(), "{}", c.id);
            for (what, text) in [
                ("summary", c.summary),
                ("drives", c.drives),
                ("observes", c.observes),
                ("predicts", c.predicts),
                ("why", c.why),
                ("kernels", c.kernels),
                ("shell", c.shell),
                ("source", c.source),
            ] {
                assert!(!text.trim().is_empty(), "{}: empty {what}", c.id);
            }
        }
    }
}
