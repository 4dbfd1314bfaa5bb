//! unix.socketpair_domain: socketpair() is an AF_UNIX call.

use std::time::Duration;

use kharness::{CaseDef, CaseError, Ctx};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use super::{guarded, outcome};

/// unix.socketpair_domain
pub static SOCKETPAIR_DOMAIN: CaseDef = CaseDef {
    id: "unix.socketpair_domain",
    variants: &[],
    summary: "socketpair() outside AF_UNIX fails with EOPNOTSUPP (and leaves no descriptor behind)",
    drives: "socketpair() with AF_INET (stream and datagram), AF_INET6 when the kernel has it, and \
        AF_NETLINK; and AF_UNIX with stream, datagram and seqpacket as controls.",
    observes: "socketpair()'s result or errno; /proc/self/fd before and after.",
    predicts: "EOPNOTSUPP for every non-AF_UNIX family; success for the three AF_UNIX types; no descriptor \
        left open by the failed calls.",
    why: "__sys_socketpair() (net/socket.c) creates both sockets and calls sock1->ops->socketpair(); \
        inet_stream_ops, inet_dgram_ops, inet6_*_ops and netlink_ops all use sock_no_socketpair(), which \
        returns -EOPNOTSUPP, and the two sockets are released. Only unix_socketpair() (net/unix/af_unix.c) \
        connects them. socketpair(2): \"On Linux, the only supported domains for this call are AF_UNIX (or \
        synonymously, AF_LOCAL) and AF_TIPC (since Linux 4.12).\"",
    kernels: "Unchanged since 2.6 for AF_INET/AF_INET6/AF_NETLINK. AF_TIPC gained socketpair() in 4.12 \
        (tipc_socketpair), which the seed (2009) predates; not probed here because creating an AF_TIPC socket \
        would load the tipc module.",
    shell: "python3 -c 'import socket; socket.socketpair(socket.AF_INET)'",
    source: "seed 004",
    timeout: Duration::from_secs(10),
    run,
};

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    guarded(ctx, |ctx| {
        let mut probes = vec![
            ("inet.stream", AddressFamily::Inet, SockType::Stream),
            ("inet.dgram", AddressFamily::Inet, SockType::Datagram),
            ("netlink.dgram", AddressFamily::Netlink, SockType::Datagram),
        ];
        if std::path::Path::new("/proc/net/if_inet6").exists() {
            probes.push(("inet6.stream", AddressFamily::Inet6, SockType::Stream));
        } else {
            ctx.note("no IPv6 in this kernel: AF_INET6 not probed");
        }
        for (label, family, ty) in probes {
            let r = socketpair(family, ty, None, SockFlag::SOCK_CLOEXEC).map_err(std::io::Error::from);
            ctx.check_eq(label, "EOPNOTSUPP", outcome(&r), "sock_no_socketpair(): -EOPNOTSUPP");
        }
        for (label, ty) in [
            ("unix.stream", SockType::Stream),
            ("unix.dgram", SockType::Datagram),
            ("unix.seqpacket", SockType::SeqPacket),
        ] {
            let r = socketpair(AddressFamily::Unix, ty, None, SockFlag::SOCK_CLOEXEC).map_err(std::io::Error::from);
            ctx.check_eq(label, "ok", outcome(&r), "unix_socketpair() connects the two ends");
        }
        Ok(())
    })
}
