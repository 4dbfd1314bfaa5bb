//! One `SOCK_DIAG_BY_FAMILY` reply payload for `INET_DIAG`
//! (`struct inet_diag_msg` + attributes, `INET_DIAG_INFO` into the
//! `tcp_info` decoder).
#![no_main]
use kharness::diag::parse_inet_diag_msg;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = parse_inet_diag_msg(data) {
        if let Some(info) = &m.info {
            assert!(info.len() < data.len());
            let _ = info.fields();
            let _ = info.absent();
        }
        let _ = (m.src.to_string(), m.dst.to_string());
    }
});
