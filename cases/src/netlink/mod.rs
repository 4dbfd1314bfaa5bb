//! Netlink: neighbours, routes, rules, generic netlink (catalog section 3).

use kharness::CaseDef;

/// The family's cases.
pub fn cases() -> Vec<&'static CaseDef> {
    vec![]
}
