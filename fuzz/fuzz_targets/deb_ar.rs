//! The `ar` container of a `.deb` (`!<arch>\n`, 60-byte member headers).
#![no_main]
use kharness_matrix::deb::parse_ar;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(members) = parse_ar(data) {
        let total: usize = members.iter().map(|m| 60 + m.data.len()).sum();
        assert!(total + 8 <= data.len() + members.len()); // + padding bytes
    }
});
