//! What a raw `IPPROTO_ICMP` socket returns (IPv4 header + ICMP message).
#![no_main]
use kharness_cases::raw::icmp::parse_icmp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(p) = parse_icmp(data) {
        assert!(p.payload.len() + 8 <= data.len());
    }
});
