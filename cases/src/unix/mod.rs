//! Unix domain sockets (catalog section 2, seed 004).

use kharness::CaseDef;

/// The family's cases.
pub fn cases() -> Vec<&'static CaseDef> {
    vec![]
}
