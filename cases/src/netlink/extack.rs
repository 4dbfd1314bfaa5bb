//! netlink.extack: malformed requests get NLMSG_ERROR with the errno and
//! the kernel's extended-ack message.

use std::time::Duration;

use kharness::netlink::{NlError, NlSocket};
use kharness::{CaseDef, CaseError, Ctx, Expect, NetNs};
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST};
use serde_json::{json, Value};

use super::errno_name;

/// `RTM_NEWLINK`, `RTM_NEWNEIGH` (include/uapi/linux/rtnetlink.h).
const RTM_NEWLINK: u16 = 16;
const RTM_NEWNEIGH: u16 = 28;
/// `IFLA_IFNAME`, `NDA_DST`.
const IFLA_IFNAME: u16 = 3;
const NDA_DST: u16 = 1;
/// `sizeof(struct nlmsghdr)` and `sizeof(struct ifinfomsg)`.
const NLMSG_HDRLEN: u32 = 16;
const IFINFOMSG_LEN: u32 = 16;

/// netlink.extack
pub static EXTACK: CaseDef = CaseDef {
    id: "netlink.extack",
    variants: &[],
    summary: "malformed rtnetlink requests: NLMSG_ERROR carries the errno and an extended-ack message",
    drives: "Two hand-built requests on an rtnetlink socket with NETLINK_EXT_ACK on, in a fresh \
        namespace: (1) RTM_NEWNEIGH for AF_INET on lo whose NDA_DST holds 2 bytes instead of 4; \
        (2) RTM_NEWLINK whose IFLA_IFNAME is 26 characters (IFNAMSIZ is 16).",
    observes: "The NLMSG_ERROR of each: its error code, NLMSGERR_ATTR_MSG and NLMSGERR_ATTR_OFFS.",
    predicts: "(1) EINVAL with a non-empty message (\"Invalid network address\" on kernels from \
        5.10 on); (2) ERANGE with a non-empty message (\"Attribute failed policy validation\" from \
        5.10 on) and the offset of the IFLA_IFNAME attribute in the request, 32 (nlmsghdr + \
        ifinfomsg), from 5.10 on.",
    why: "(1) neigh_add() (net/core/neighbour.c): nla_len(NDA_DST) < tbl->key_len -> \
        NL_SET_ERR_MSG(\"Invalid network address\"), -EINVAL. (2) rtnl_newlink() parses with \
        ifla_policy, IFLA_IFNAME = NLA_STRING of at most IFNAMSIZ-1; validate_nla() \
        (lib/nlattr.c) fails a longer string with -ERANGE and NL_SET_ERR_MSG_ATTR_POL(\"Attribute \
        failed policy validation\"), which records the attribute, so netlink_ack() adds \
        NLMSGERR_ATTR_OFFS. netlink(7): NETLINK_EXT_ACK, NLMSGERR_ATTR_MSG, NLMSGERR_ATTR_OFFS.",
    kernels: "Extended ACK since 4.12; neighbour messages since about 5.0; the policy-validation text \
        and offsets since about 5.2. Exact texts are only predicted from 5.10 on and recorded as \
        observations everywhere; some kernels word validation errors differently.",
    shell: "ip link add name khextack-name-far-too-long type dummy (iproute2 refuses it before \
        asking the kernel; the kernel's answer needs a raw request)",
    source: "seed 004 (Netlink sockets; rtnetlink_rcv)",
    timeout: Duration::from_secs(10),
    run,
};

/// Appends one `struct nlattr` (4-byte aligned).
fn nla(buf: &mut Vec<u8>, ty: u16, value: &[u8]) {
    buf.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(value);
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

/// A complete netlink message: header + `body`.
fn message(ty: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(16 + body.len());
    m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(body);
    m
}

/// RTM_NEWNEIGH, AF_INET, ifindex 1, PERMANENT, NDA_DST = 198.18 (2 bytes).
fn short_dst(seq: u32) -> Vec<u8> {
    let mut body = vec![libc::AF_INET as u8, 0, 0, 0];
    body.extend_from_slice(&1i32.to_ne_bytes());
    body.extend_from_slice(&0x80u16.to_ne_bytes());
    body.extend_from_slice(&[0, 0]);
    nla(&mut body, NDA_DST, &[198, 18]);
    message(
        RTM_NEWNEIGH,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        seq,
        &body,
    )
}

/// RTM_NEWLINK with an IFLA_IFNAME longer than IFNAMSIZ-1, as the first
/// attribute (so at offset NLMSG_HDRLEN + sizeof(ifinfomsg)).
fn long_ifname(seq: u32) -> Vec<u8> {
    let mut body = vec![0u8; IFINFOMSG_LEN as usize];
    nla(&mut body, IFLA_IFNAME, b"khextack-name-far-too-long\0");
    message(
        RTM_NEWLINK,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        seq,
        &body,
    )
}

fn record(ctx: &mut Ctx, name: &str, r: Result<(), NlError>) -> (Option<String>, Option<u32>) {
    match r {
        Ok(()) => {
            ctx.observe(format!("{name}.errno"), "ok");
            (None, None)
        }
        Err(NlError::Kernel { errno, extack, offset }) => {
            ctx.observe(format!("{name}.errno"), errno_name(errno));
            ctx.observe_opt(format!("{name}.extack"), extack.clone());
            ctx.observe_opt(format!("{name}.offset"), offset);
            (extack, offset)
        }
        Err(e) => {
            ctx.observe(format!("{name}.errno"), e.to_string());
            (None, None)
        }
    }
}

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    let ns = NetNs::new("extack")?;
    // A raw socket, not the namespace's rtnetlink handle: the requests are
    // deliberately malformed bytes (no builder can write a short NDA_DST or
    // an over-long IFLA_IFNAME), and the case reads the extended ACK's text
    // and offset, which rtnetlink 0.24 does not pass on.
    let sock: NlSocket = ns.netlink(netlink_sys::constants::NETLINK_ROUTE)?;
    let exact = ctx.kernel.at_least(5, 10);
    ctx.observe(
        "gate.extack_texts",
        if exact {
            "5.10+: texts and offsets predicted"
        } else {
            "before 5.10: texts recorded only"
        },
    );

    let (msg, _) = record(ctx, "short_dst", sock.request_raw(&short_dst(sock.next_seq())));
    ctx.predict(
        "short_dst.errno",
        Expect::eq("EINVAL"),
        "neigh_add(): NDA_DST shorter than key_len -> -EINVAL",
    );
    let len = msg.as_deref().map(str::len);
    ctx.check(
        "short_dst.extack_len",
        Expect::Gt(0),
        json!(len),
        "NL_SET_ERR_MSG in neigh_add()",
    );
    if exact {
        ctx.predict(
            "short_dst.extack",
            Expect::eq("Invalid network address"),
            "neigh_add() text, kernels >= 5.10",
        );
    }

    let (msg, _) = record(ctx, "long_ifname", sock.request_raw(&long_ifname(sock.next_seq())));
    ctx.predict(
        "long_ifname.errno",
        Expect::eq("ERANGE"),
        "validate_nla(): NLA_STRING longer than policy len -> -ERANGE",
    );
    let len = msg.as_deref().map(str::len);
    ctx.check(
        "long_ifname.extack_len",
        Expect::Gt(0),
        json!(len),
        "NL_SET_ERR_MSG_ATTR_POL in validate_nla()",
    );
    if exact {
        ctx.predict(
            "long_ifname.extack",
            Expect::eq("Attribute failed policy validation"),
            "validate_nla() text, kernels >= 5.10",
        );
        ctx.predict(
            "long_ifname.offset",
            Expect::eq(Value::from(NLMSG_HDRLEN + IFINFOMSG_LEN)),
            "NLMSGERR_ATTR_OFFS: the attribute's offset in the request",
        );
    } else {
        ctx.note("kernel older than 5.10: extended-ack texts and offsets recorded, not predicted");
    }
    Ok(())
}
