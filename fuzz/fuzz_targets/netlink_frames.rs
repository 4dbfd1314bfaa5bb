//! The multicast frame walker of the netlink cases (`kharness_cases::netlink::frames`):
//! one datagram of a netlink socket split into `(nlmsghdr, payload)`.
#![no_main]
use kharness_cases::netlink::frames;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fs = frames(data);
    let mut total = 0usize;
    for (h, payload) in &fs {
        assert!(h.length as usize >= 16);
        assert_eq!(h.length as usize, payload.len() + 16);
        total += h.length as usize;
    }
    assert!(total <= data.len());
});
