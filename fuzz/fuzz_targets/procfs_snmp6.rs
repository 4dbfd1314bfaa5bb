//! `/proc/net/snmp6` parser (`Name value` per line), then the snapshot operations the
//! cases apply to two reads: an input with a NUL byte is two files, before
//! and after.
#![no_main]
use kharness::procfs::{parse_snmp6, Mib};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (a, b) = text.split_once('\0').unwrap_or((text, ""));
    let Ok(before) = parse_snmp6(a) else { return };
    let after = parse_snmp6(b).unwrap_or_default();
    let _ = before.delta(&after);
    let _ = after.delta(&before);
    let _ = before.delta(&before);
    let mut merged = Mib::default();
    merged.merge(before.clone());
    assert_eq!(merged, before);
    let _ = before.to_string();
});
