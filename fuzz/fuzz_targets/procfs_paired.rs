//! `/proc/net/snmp` and `/proc/net/netstat` parser (header line, value line
//! per protocol), then the snapshot operations the
//! cases apply to two reads: an input with a NUL byte is two files, before
//! and after.
#![no_main]
use kharness::procfs::{parse_paired, Mib};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (a, b) = text.split_once('\0').unwrap_or((text, ""));
    let Ok(before) = parse_paired(a) else { return };
    let after = parse_paired(b).unwrap_or_default();
    let _ = before.delta(&after);
    let _ = after.delta(&before);
    let _ = before.delta(&before);
    let mut merged = Mib::default();
    merged.merge(before.clone());
    assert_eq!(merged, before);
    let _ = before.to_string();
});
