//! TCP send buffer and TCP_INFO (catalog section 1, seeds 000–002).

use kharness::CaseDef;

/// The family's cases.
pub fn cases() -> Vec<&'static CaseDef> {
    vec![]
}
