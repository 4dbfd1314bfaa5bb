//! `struct tcp_info` decoder: any length 0…512, as `getsockopt(TCP_INFO)` or
//! sock_diag's `INET_DIAG_INFO` may return.
#![no_main]
use kharness::tcpinfo::{TcpInfo, FIELDS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(512)];
    let ti = TcpInfo::from_bytes(data);
    assert_eq!(ti.len(), data.len());
    let fields = ti.fields();
    let absent = ti.absent();
    assert_eq!(fields.len() + absent.len(), FIELDS.len());
    for f in FIELDS {
        // Present exactly when the returned length covers the field.
        assert_eq!(fields.contains_key(f.name), f.needs_len() <= data.len(), "{}", f.name);
    }
    let _ = ti.get("snd_wnd");
    let _ = ti.get("accecn_opt_seen");
    let _ = ti.get("no_such_field");
    let _ = ti.generation();
});
