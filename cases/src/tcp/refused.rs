//! tcp.refused

use std::io;
use std::time::Duration;

use kharness::{CaseDef, CaseError, Ctx};
use nix::sys::socket::{self, SockaddrIn};

use super::{topology, Path};

/// The closed port the client connects to.
const PORT: u16 = 9;

/// tcp.refused
pub static REFUSED: CaseDef = CaseDef {
    id: "tcp.refused",
    variants: &[],
    summary: "connect to a closed port: ECONNREFUSED, one RST out of the peer, one failed attempt",
    drives: "A blocking connect() from the client namespace to 198.18.0.2:9 in the server \
        namespace, where nothing listens.",
    observes: "connect()'s errno; the Tcp MIB (/proc/thread-self/net/snmp) of both namespaces \
        before and after.",
    predicts: "ECONNREFUSED; server Tcp.OutRsts +1, Tcp.OutSegs +1 (the RST) and Tcp.InSegs +1 (the SYN); client \
        Tcp.ActiveOpens +1, Tcp.AttemptFails +1, Tcp.InSegs +1 (the RST), Tcp.OutSegs +1 (the \
        SYN); no other Tcp counter of either namespace moves.",
    why: "A SYN for no socket makes tcp_v4_rcv() call tcp_v4_send_reset(), which counts \
        TCP_MIB_OUTRSTS (and OUTSEGS). The client in SYN_SENT gets the RST in \
        tcp_rcv_synsent_state_process() -> tcp_reset() -> ECONNREFUSED, and tcp_done() counts \
        ATTEMPTFAILS for a connection that never reached ESTABLISHED; tcp_v4_connect() counted \
        ACTIVEOPENS when the SYN was sent.",
    kernels: "Unchanged since 2.6.",
    shell: "ip netns exec khpair-client nc -z 198.18.0.2 9; ip netns exec khpair-server nstat -az Tcp*",
    source: "seed 004 (sockets in the kernel)",
    timeout: Duration::from_secs(10),
    run,
};

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    let (topo, c, s) = topology(Path::Veth, &[])?;
    let client_before = topo.ns(c).mib()?;
    let server_before = topo.ns(s).mib()?;
    let res = topo.ns(c).run(|| -> io::Result<()> {
        let fd = kharness::sys::socket(libc::AF_INET, libc::SOCK_STREAM, 0)?;
        socket::connect(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &SockaddrIn::new(198, 18, 0, 2, PORT),
        )?;
        Ok(())
    })?;
    let errno = match res {
        Ok(()) => "connected".to_string(),
        Err(e) => format!("{:?}", nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0))),
    };
    ctx.check_eq(
        "connect.errno",
        "ECONNREFUSED",
        errno,
        "tcp_reset() in SYN_SENT sets ECONNREFUSED",
    );
    let client_after = topo.ns(c).mib()?;
    let server_after = topo.ns(s).mib()?;
    let predicted_client = [
        ("Tcp.ActiveOpens", 1),
        ("Tcp.AttemptFails", 1),
        ("Tcp.InSegs", 1),
        ("Tcp.OutSegs", 1),
    ];
    let predicted_server = [("Tcp.OutRsts", 1), ("Tcp.InSegs", 1), ("Tcp.OutSegs", 1)];
    for (side, before, after, predicted) in [
        ("client", &client_before, &client_after, &predicted_client[..]),
        ("server", &server_before, &server_after, &predicted_server[..]),
    ] {
        let delta = before.delta(after);
        for (k, v) in predicted {
            ctx.check_eq(
                format!("{side}.{k}"),
                *v,
                delta.get(*k).copied().unwrap_or(0),
                "tcp_v4_send_reset / tcp_done / tcp_v4_connect MIB accounting",
            );
        }
        // Every other Tcp counter must stay put: one claim over the whole
        // table, counted whether or not a counter moved.
        let others: serde_json::Map<String, serde_json::Value> = delta
            .iter()
            .filter(|(k, _)| k.starts_with("Tcp.") && !predicted.iter().any(|(p, _)| p == k))
            .map(|(k, v)| (k.clone(), (*v).into()))
            .collect();
        ctx.check_eq(
            format!("{side}.Tcp.unpredicted_moves"),
            serde_json::json!({}),
            serde_json::Value::Object(others),
            "no other Tcp counter moves for one refused connect",
        );
    }
    Ok(())
}
