//! genl.resolve: generic netlink family resolution through nlctrl.

use std::time::Duration;

use kharness::{CaseDef, CaseError, Ctx, Expect, NetNs};
use netlink_packet_core::NLM_F_DUMP;
use netlink_packet_generic::ctrl::nlas::{GenlCtrlAttrs, McastGrpAttrs};
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::GenlMessage;
use serde_json::{json, Value};

use super::outcome;

/// `GENL_ID_CTRL` (include/uapi/linux/genetlink.h).
const GENL_ID_CTRL: u16 = 0x10;
/// A family name that no kernel registers (GENL_NAMSIZ is 16 with the NUL).
const MISSING: &str = "khNoSuchFamily";

/// genl.resolve
pub static RESOLVE: CaseDef = CaseDef {
    id: "genl.resolve",
    variants: &[],
    summary: "CTRL_CMD_GETFAMILY resolves nlctrl to GENL_ID_CTRL and answers ENOENT for an unknown name",
    drives: "From a NETLINK_GENERIC socket in a fresh namespace: CTRL_CMD_GETFAMILY with \
        CTRL_ATTR_FAMILY_NAME \"nlctrl\"; the same for \"khNoSuchFamily\"; a CTRL_CMD_GETFAMILY \
        dump of every family.",
    observes: "CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME, CTRL_ATTR_VERSION and the multicast \
        groups of the reply; the errno (and any extended ack) of the second request; the dump's \
        entry for nlctrl.",
    predicts: "nlctrl has id 0x10 (GENL_ID_CTRL) and name \"nlctrl\", and a multicast group \
        \"notify\"; the unknown name gives ENOENT; the dump lists nlctrl with the same id and \
        does not list the unknown name.",
    why: "net/netlink/genetlink.c: genl_ctrl is registered with the fixed id GENL_ID_CTRL and \
        the mcast group \"notify\"; ctrl_getfamily() looks the name up (genl_family_find_byname(), \
        after a request_module(\"net-pf-16-proto-16-family-NAME\") attempt) and returns -ENOENT \
        when nothing matches; ctrl_dumpfamily() walks the same registry. genetlink(7) isn't a man \
        page; see netlink(7) and include/uapi/linux/genetlink.h.",
    kernels: "GENL_ID_CTRL has been 0x10 since generic netlink appeared (2.6.15); nlctrl is \
        netnsok, so it answers in any namespace. \
        The number of families in the dump is the kernel's configuration and loaded modules (5 on Debian 5.10 up to 13 on 7.2-rt): the model predicts nlctrl among them with id 0x10 and the missing name absent, not the count.",
    shell: "genl ctrl get name nlctrl; genl ctrl get name khNoSuchFamily; genl ctrl list",
    source: "seed 004 (Generic Netlink, NETLINK_GENERIC, genl_rcv)",
    timeout: Duration::from_secs(10),
    run,
};

fn getfamily(name: Option<&str>) -> GenlMessage<GenlCtrl> {
    GenlMessage::from_payload(GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: name
            .map(|n| vec![GenlCtrlAttrs::FamilyName(n.to_string())])
            .unwrap_or_default(),
    })
}

/// (id, name, version, multicast group names) of a CTRL_CMD_NEWFAMILY reply.
fn family(m: &GenlMessage<GenlCtrl>) -> (Option<u16>, Option<String>, Option<u32>, Vec<String>) {
    let mut out = (None, None, None, Vec::new());
    for a in &m.payload.nlas {
        match a {
            GenlCtrlAttrs::FamilyId(i) => out.0 = Some(*i),
            GenlCtrlAttrs::FamilyName(n) => out.1 = Some(n.clone()),
            GenlCtrlAttrs::Version(v) => out.2 = Some(*v),
            GenlCtrlAttrs::McastGroups(groups) => {
                for g in groups {
                    for ga in g {
                        if let McastGrpAttrs::Name(n) = ga {
                            out.3.push(n.clone());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    let ns = NetNs::new("genl")?;
    let sock = ns.netlink(netlink_sys::constants::NETLINK_GENERIC)?;

    let replies = sock.request(getfamily(Some("nlctrl")), 0)?;
    let (id, name, version, groups) = replies.first().map(family).unwrap_or_default();
    ctx.check_eq(
        "nlctrl.replies",
        1,
        replies.len(),
        "ctrl_getfamily() answers one CTRL_CMD_NEWFAMILY",
    );
    ctx.check_eq(
        "nlctrl.id",
        GENL_ID_CTRL,
        json!(id),
        "genl_ctrl is registered with GENL_ID_CTRL",
    );
    ctx.check_eq(
        "nlctrl.name",
        "nlctrl",
        json!(name),
        "ctrl_fill_info() puts CTRL_ATTR_FAMILY_NAME",
    );
    ctx.observe_opt("nlctrl.version", version);
    ctx.check(
        "nlctrl.mcast_groups",
        Expect::Present,
        if groups.iter().any(|g| g == "notify") {
            json!(groups)
        } else {
            Value::Null
        },
        "genl_ctrl_groups[] = { \"notify\" }",
    );

    let missing = sock.request(getfamily(Some(MISSING)), 0);
    ctx.check_eq(
        "missing.errno",
        "ENOENT",
        outcome(&missing),
        "ctrl_getfamily(): no family of that name -> -ENOENT",
    );
    if let Err(kharness::netlink::NlError::Kernel { extack, .. }) = &missing {
        ctx.observe_opt("missing.extack", extack.clone());
    }

    // The same registry, read the other way.
    let dump = sock.request(getfamily(None), NLM_F_DUMP)?;
    let fams: Vec<_> = dump.iter().map(family).collect();
    ctx.observe("dump.families", fams.len());
    let in_dump = fams.iter().find(|f| f.1.as_deref() == Some("nlctrl")).and_then(|f| f.0);
    ctx.check_eq(
        "dump.nlctrl.id",
        GENL_ID_CTRL,
        json!(in_dump),
        "ctrl_dumpfamily() lists the same family and id",
    );
    ctx.check_eq(
        "dump.has_missing",
        false,
        fams.iter().any(|f| f.1.as_deref() == Some(MISSING)),
        "the unknown name is in no registry",
    );
    Ok(())
}
