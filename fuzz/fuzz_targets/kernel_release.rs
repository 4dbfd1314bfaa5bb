//! `uname -r` → `(major, minor, patch)`, and the `tcp_info` length predicted
//! from it.
#![no_main]
use kharness::kernel::parse_release;
use kharness::tcpinfo::expected_len_for;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (a, b, _) = parse_release(text);
    assert!(expected_len_for((a, b)) >= 104);
});
