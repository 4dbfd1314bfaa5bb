//! One `SOCK_DIAG_BY_FAMILY` reply payload for `UNIX_DIAG`
//! (`struct unix_diag_msg` + `UNIX_DIAG_*` attributes), and the name as `ss -x`
//! prints it.
#![no_main]
use kharness_cases::unix::diag::parse_unix_diag_msg;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = parse_unix_diag_msg(data) {
        if let Some(n) = &m.name {
            assert!(n.len() < data.len());
        }
        let _ = m.display_name();
    }
});
