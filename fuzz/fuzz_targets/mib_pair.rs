//! Shared by `procfs_paired` and `procfs_snmp6`: parse an input as two procfs
//! reads (a NUL byte separates before and after), then apply the snapshot
//! operations the cases apply to two reads.
use kharness::procfs::Mib;

pub fn check<E>(data: &[u8], parse: impl Fn(&str) -> Result<Mib, E>) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (a, b) = text.split_once('\0').unwrap_or((text, ""));
    let Ok(before) = parse(a) else { return };
    let after = parse(b).unwrap_or_default();
    let _ = before.delta(&after);
    let _ = after.delta(&before);
    let _ = before.delta(&before);
    let mut merged = Mib::default();
    merged.merge(before.clone());
    assert_eq!(merged, before);
    let _ = before.to_string();
}
