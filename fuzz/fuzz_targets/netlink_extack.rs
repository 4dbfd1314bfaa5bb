//! Extended-ACK TLVs after an `NLMSG_ERROR` (`NLMSGERR_ATTR_MSG`,
//! `NLMSGERR_ATTR_OFFS`). The frame walker in `NlSocket::collect` reads from
//! a live socket and is not reachable without one; its per-frame logic is
//! the same as `netlink_frames`' walker.
#![no_main]
use kharness::netlink::parse_extack;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let e = parse_extack(data);
    if let Some(m) = &e.message {
        assert!(m.len() <= data.len() * 3);
    }
});
