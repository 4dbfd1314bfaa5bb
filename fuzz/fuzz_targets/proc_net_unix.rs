//! `/proc/net/unix` (`unix_seq_show()`) and `/proc/net/sockstat`'s
//! `sockets: used N`.
#![no_main]
use kharness_cases::unix::procnet::{parse_proc_net_unix, parse_sockets_used};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let lines = parse_proc_net_unix(text);
    assert!(lines.len() <= text.lines().count());
    let _ = parse_sockets_used(text);
});
