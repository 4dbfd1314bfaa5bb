//! sctp.one_to_one and sctp.one_to_many (seed 004, "SCTP"): plain socket
//! calls, no libsctp. Where the kernel has no SCTP, socket() says
//! EPROTONOSUPPORT and the cases skip naming CONFIG_IP_SCTP; where
//! /proc/net/protocols lists SCTP and socket() still refuses, they fail.

use kharness::procfs::Mib;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use kharness::wait::wait_for;
use kharness::{sys, CaseDef, CaseError, Ctx, NetNs};
use nix::sys::socket::{self, MsgFlags, SockaddrIn};

use super::{check_mib, errno_name, mib, net3, Net3Opts, QUIET_TCP, RECEIVER, SENDER, WAIT};

const IPPROTO_SCTP: i32 = 132;

/// An SCTP socket of `ty` in `ns`, or the skip that explains why not.
///
/// The refusal is a skip only where the kernel does not list SCTP in
/// /proc/net/protocols. Where it does, sctp_init() has registered both the
/// protocol (proto_register) and its inet_protosw entries for SOCK_STREAM
/// and SOCK_SEQPACKET, so inet_create() must find them: the refusal is then
/// recorded as a failed prediction (which fails the case, skip or not).
fn sctp_socket(ctx: &mut Ctx, ns: &NetNs, ty: i32) -> Result<OwnedFd, CaseError> {
    match ns.socket(libc::AF_INET, ty, IPPROTO_SCTP) {
        Ok(fd) => Ok(fd),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EPROTONOSUPPORT) | Some(libc::ESOCKTNOSUPPORT)
            ) =>
        {
            Err(refused(ctx, ty, &errno_name(&e)))
        }
        Err(e) => Err(e.into()),
    }
}

/// What a refused SCTP socket (`errno`) means: the skip, after recording a
/// failed prediction where /proc/net/protocols lists SCTP.
fn refused(ctx: &mut Ctx, ty: i32, errno: &str) -> CaseError {
    let type_name = if ty == libc::SOCK_STREAM {
        "SOCK_STREAM"
    } else {
        "SOCK_SEQPACKET"
    };
    if ctx.kernel.has_protocol("SCTP") {
        ctx.check_eq(
            format!("socket.{}", type_name.to_lowercase()),
            "ok",
            errno,
            "SCTP is listed in /proc/net/protocols: sctp_init() registered sctp_prot and the inet_protosw \
             entries for SOCK_STREAM and SOCK_SEQPACKET, so inet_create() finds protocol 132",
        );
    }
    // inet_create(): SOCK_STREAM has TCP's entries, none for protocol
    // 132 -> EPROTONOSUPPORT; SOCK_SEQPACKET has no AF_INET entry at
    // all without SCTP -> ESOCKTNOSUPPORT.
    let why = if ty == libc::SOCK_STREAM {
        "no AF_INET SOCK_STREAM protocol 132 registered"
    } else {
        "no AF_INET protocol registers SOCK_SEQPACKET without SCTP"
    };
    if ctx.kernel.has_protocol("SCTP") {
        return ctx.skip(format!(
            "socket(AF_INET, {type_name}, IPPROTO_SCTP) failed with {errno} although /proc/net/protocols lists SCTP"
        ));
    }
    ctx.skip(format!(
        "kernel lacks CONFIG_IP_SCTP: socket(AF_INET, {type_name}, IPPROTO_SCTP) failed with {errno} ({why}; no SCTP \
         in /proc/net/protocols; the sctp module is neither built in nor loadable here)"
    ))
}

/// Associations listed in `/proc/thread-self/net/sctp/assocs` of `ns`
/// (one line per association after the header).
fn assocs(ns: &NetNs) -> Option<usize> {
    ns.run(|| std::fs::read_to_string("/proc/thread-self/net/sctp/assocs").ok())
        .ok()
        .flatten()
        .map(|t| t.lines().skip(1).filter(|l| !l.trim().is_empty()).count())
}

/// `/proc/thread-self/net/sctp/snmp` of `ns` (`Name value` lines).
fn sctp_snmp(ns: &NetNs) -> std::collections::BTreeMap<String, i64> {
    ns.run(|| std::fs::read_to_string("/proc/thread-self/net/sctp/snmp").unwrap_or_default())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

/// Receives one message, skipping notifications (none are subscribed by
/// default, but a kernel that sends SCTP_ASSOC_CHANGE anyway must not make
/// the case misread it as data). Returns the data and the peer.
fn recv_msg(fd: &OwnedFd) -> Option<(Vec<u8>, Option<SockaddrIn>)> {
    wait_for("an SCTP message", WAIT, || {
        let mut buf = vec![0u8; 2048];
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let r = socket::recvmsg::<SockaddrIn>(fd.as_raw_fd(), &mut iov, None, MsgFlags::MSG_DONTWAIT).ok()?;
        if r.flags.contains(MsgFlags::MSG_NOTIFICATION) {
            return None;
        }
        let (n, from) = (r.bytes, r.address);
        Some((buf[..n].to_vec(), from))
    })
    .ok()
}

const WHY_COMMON: &str = "net/sctp: an association is set up by the four-way handshake (INIT, INIT-ACK with \
    a cookie, COOKIE-ECHO, COOKIE-ACK: sctp_sf_do_5_1B_init .. sctp_sf_do_5_1E_ca); each endpoint then \
    has one struct sctp_association, listed by sctp_assocs_seq_show() in /proc/net/sctp/assocs of its \
    namespace; SCTP_MIB_ACTIVEESTABS / PASSIVEESTABS count the side that sent / answered the INIT, \
    SCTP_MIB_CURRESTAB the associations in ESTABLISHED. Data is message-oriented: one sendmsg, one \
    recvmsg (sctp_recvmsg). socket() finds IPPROTO_SCTP only where sctp is built in or loaded \
    (inet_create() tries request_module(\"net-pf-2-proto-132-type-N\") first); otherwise a \
    SOCK_STREAM socket fails with EPROTONOSUPPORT (TCP's entries do not match protocol 132) and a \
    SOCK_SEQPACKET one with ESOCKTNOSUPPORT (no AF_INET entry for the type at all).";

/// sctp.one_to_one
pub static ONE_TO_ONE: CaseDef = CaseDef {
    id: "sctp.one_to_one",
    variants: &[],
    summary: "one-to-one SCTP (SOCK_STREAM) across the veth: one association, a message each way",
    drives: "In the receiver, socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP) bound to 198.18.0.2 and \
        listening; in the sender, the same socket type connect()s to it; accept(); one message each \
        way (send/recv).",
    observes: "socket()'s errno (the skip); each message as received; the association count in each \
        namespace's /proc/thread-self/net/sctp/assocs; /proc/thread-self/net/sctp/snmp; the Ip/Udp/Icmp \
        MIB.",
    predicts: "Where SCTP exists: 'ping' arrives at the receiver and 'pong' at the sender, one \
        association in each namespace, sender SctpActiveEstabs +1, receiver SctpPassiveEstabs +1, \
        SctpCurrEstab 1 on both; no Udp or Icmp counter moves. Where it does not: skip, naming \
        CONFIG_IP_SCTP.",
    why: WHY_COMMON,
    kernels: "In the mainline tree since 2.5.36 (the seed); a module (sctp.ko) on Debian's kernels, \
        which must be loaded (or autoloaded) before socket() succeeds; absent on kernels built without \
        CONFIG_IP_SCTP, like the one this harness was developed on.",
    shell: "ip netns exec RECEIVER sctp_test -H 198.18.0.2 -P 9000 -l; ip netns exec SENDER sctp_test -H 198.18.0.1 -h 198.18.0.2 -p 9000 -s; cat /proc/net/sctp/assocs",
    source: "seed 004 (SCTP: one to one socket)",
    timeout: Duration::from_secs(10),
    run: run_one_to_one,
};

/// What both SCTP cases share: the three-namespace topology, a listening
/// socket in the receiver and a client in the sender (both of type `ty`),
/// and the counters taken before any packet. The server socket is handed
/// back apart from it, so a case can consume it (one-to-one accepts and
/// closes its listener, as an application would).
struct SctpRun {
    net: super::Net3,
    client: OwnedFd,
    port: u16,
    s_before: Mib,
    r_before: Mib,
    ss0: std::collections::BTreeMap<String, i64>,
    rs0: std::collections::BTreeMap<String, i64>,
}

impl SctpRun {
    /// Opens both sockets (skipping where SCTP is missing), snapshots the
    /// counters, binds the server to the receiver's address and listens.
    fn start(ctx: &mut Ctx, ty: libc::c_int) -> Result<(SctpRun, OwnedFd), CaseError> {
        let net = net3(Net3Opts::default())?;
        ctx.observe(
            "gate.sctp",
            if ctx.kernel.has_protocol("SCTP") {
                "SCTP registered"
            } else {
                "no SCTP in /proc/net/protocols"
            },
        );
        let server = sctp_socket(ctx, net.receiver(), ty)?;
        let client = sctp_socket(ctx, net.sender(), ty)?;
        let s_before = mib(net.sender())?;
        let r_before = mib(net.receiver())?;
        let (ss0, rs0) = (sctp_snmp(net.sender()), sctp_snmp(net.receiver()));
        socket::bind(
            server.as_raw_fd(),
            &SockaddrIn::new(RECEIVER[0], RECEIVER[1], RECEIVER[2], RECEIVER[3], 0),
        )?;
        socket::listen(&server, socket::Backlog::new(4).expect("backlog"))?;
        let port = socket::getsockname::<SockaddrIn>(server.as_raw_fd())?.port();
        Ok((
            SctpRun {
                net,
                client,
                port,
                s_before,
                r_before,
                ss0,
                rs0,
            },
            server,
        ))
    }

    /// The server's address as the client sees it.
    fn to(&self) -> SockaddrIn {
        SockaddrIn::new(RECEIVER[0], RECEIVER[1], RECEIVER[2], RECEIVER[3], self.port)
    }

    /// The checks after the exchange: one association per side, the SCTP
    /// MIB deltas, and no Udp/Icmp (or unexpected Tcp) counter moved.
    fn finish(&self, ctx: &mut Ctx) -> Result<(), CaseError> {
        check_assocs(ctx, &self.net, 1)?;
        check_sctp_snmp(ctx, &self.net, &self.ss0, &self.rs0);
        for (side, ns, before) in [
            ("sender", self.net.sender(), &self.s_before),
            ("receiver", self.net.receiver(), &self.r_before),
        ] {
            let after = mib(ns)?;
            check_mib(
                ctx,
                side,
                before,
                &after,
                &[],
                QUIET_TCP,
                "SCTP moves no Udp or Icmp counter",
            );
        }
        Ok(())
    }
}

fn run_one_to_one(ctx: &mut Ctx) -> Result<(), CaseError> {
    let (run, listener) = SctpRun::start(ctx, libc::SOCK_STREAM)?;
    let client = &run.client;
    socket::connect(client.as_raw_fd(), &run.to())?;
    // std's accept() works on any listening stream socket and returns the
    // new descriptor owned (an SCTP one here, whatever the type's name).
    let (server, _) = std::net::TcpListener::from(listener).accept()?;
    let server = OwnedFd::from(server);
    sys::send(client.as_fd(), b"ping", 0)?;
    let ping = recv_msg(&server);
    ctx.check_eq(
        "receiver.got",
        "ping",
        ping.map(|(d, _)| String::from_utf8_lossy(&d).into_owned()),
        "sctp_recvmsg(): one message",
    );
    sys::send(server.as_fd(), b"pong", 0)?;
    let pong = recv_msg(client);
    ctx.check_eq(
        "sender.got",
        "pong",
        pong.map(|(d, _)| String::from_utf8_lossy(&d).into_owned()),
        "sctp_recvmsg(): one message",
    );
    run.finish(ctx)
}

fn check_assocs(ctx: &mut Ctx, net: &super::Net3, want: usize) -> Result<(), CaseError> {
    for (side, ns) in [("sender", net.sender()), ("receiver", net.receiver())] {
        let n = wait_for("the association listed", WAIT, || assocs(ns).filter(|n| *n == want))
            .ok()
            .or_else(|| assocs(ns));
        ctx.check_eq(
            format!("{side}.sctp_assocs"),
            want as i64,
            n.map(|n| n as i64),
            "one association per endpoint, listed by sctp_assocs_seq_show()",
        );
    }
    Ok(())
}

fn check_sctp_snmp(
    ctx: &mut Ctx,
    net: &super::Net3,
    s0: &std::collections::BTreeMap<String, i64>,
    r0: &std::collections::BTreeMap<String, i64>,
) {
    let s1 = sctp_snmp(net.sender());
    let r1 = sctp_snmp(net.receiver());
    let d = |a: &std::collections::BTreeMap<String, i64>, b: &std::collections::BTreeMap<String, i64>, k: &str| {
        b.get(k).copied().unwrap_or(0) - a.get(k).copied().unwrap_or(0)
    };
    ctx.check_eq(
        "sender.SctpActiveEstabs",
        1,
        d(s0, &s1, "SctpActiveEstabs"),
        "the INIT's sender counts SCTP_MIB_ACTIVEESTABS",
    );
    ctx.check_eq(
        "receiver.SctpPassiveEstabs",
        1,
        d(r0, &r1, "SctpPassiveEstabs"),
        "the INIT's receiver counts SCTP_MIB_PASSIVEESTABS",
    );
    ctx.check_eq(
        "sender.SctpCurrEstab",
        1,
        s1.get("SctpCurrEstab").copied(),
        "one association established",
    );
    ctx.check_eq(
        "receiver.SctpCurrEstab",
        1,
        r1.get("SctpCurrEstab").copied(),
        "one association established",
    );
    ctx.check_eq("sender.SctpAborteds", 0, d(s0, &s1, "SctpAborteds"), "nothing aborted");
    ctx.check_eq(
        "receiver.SctpAborteds",
        0,
        d(r0, &r1, "SctpAborteds"),
        "nothing aborted",
    );
}

/// sctp.one_to_many
pub static ONE_TO_MANY: CaseDef = CaseDef {
    id: "sctp.one_to_many",
    variants: &[],
    summary: "one-to-many SCTP (SOCK_SEQPACKET): sendto() sets the association up implicitly; a message each way",
    drives: "In the receiver, socket(AF_INET, SOCK_SEQPACKET, IPPROTO_SCTP) bound to 198.18.0.2 and \
        listen()ing; in the sender, an unconnected SOCK_SEQPACKET socket sendto()s 'ping' to it; the \
        receiver recvfrom()s it and sendto()s 'pong' back to the address it came from.",
    observes: "socket()'s errno (the skip); each message and the address recvfrom() reports; the \
        association count in each namespace's /proc/thread-self/net/sctp/assocs; \
        /proc/thread-self/net/sctp/snmp; the Ip/Udp/Icmp MIB.",
    predicts: "Where SCTP exists: the receiver reads 'ping' from 198.18.0.1, the sender reads 'pong' \
        from 198.18.0.2 and the receiver's port; one association in each namespace; SctpActiveEstabs \
        +1 (sender), SctpPassiveEstabs +1 (receiver), SctpCurrEstab 1 on both; no Udp or Icmp counter \
        moves. Where it does not: skip, naming CONFIG_IP_SCTP (socket() says ESOCKTNOSUPPORT here: \
        without SCTP nothing in AF_INET provides SOCK_SEQPACKET).",
    why: WHY_COMMON,
    kernels: "As sctp.one_to_one. (The seed's slide shows SOCK_STREAM for both styles; one-to-many \
        is SOCK_SEQPACKET, RFC 6458.)",
    shell: "ip netns exec RECEIVER sctp_darn -H 198.18.0.2 -P 9000 -l; ip netns exec SENDER sctp_darn -H 198.18.0.1 -h 198.18.0.2 -p 9000 -s",
    source: "seed 004 (SCTP: one to many socket)",
    timeout: Duration::from_secs(10),
    run: run_one_to_many,
};

fn run_one_to_many(ctx: &mut Ctx) -> Result<(), CaseError> {
    let (run, server) = SctpRun::start(ctx, libc::SOCK_SEQPACKET)?;
    let client = &run.client;
    let to = run.to();
    socket::sendto(client.as_raw_fd(), b"ping", &to, MsgFlags::empty())?;
    let ping = recv_msg(&server);
    ctx.check_eq(
        "receiver.got",
        "ping",
        ping.as_ref().map(|(d, _)| String::from_utf8_lossy(d).into_owned()),
        "sctp_recvmsg(): one message",
    );
    ctx.check_eq(
        "receiver.from_addr",
        std::net::Ipv4Addr::from(SENDER).to_string(),
        ping.as_ref().and_then(|(_, a)| a.map(|a| a.ip().to_string())),
        "sctp_recvmsg() names the association's peer",
    );
    if let Some(from) = ping.and_then(|(_, a)| a) {
        socket::sendto(server.as_raw_fd(), b"pong", &from, MsgFlags::empty())?;
    }
    let pong = recv_msg(client);
    ctx.check_eq(
        "sender.got",
        "pong",
        pong.as_ref().map(|(d, _)| String::from_utf8_lossy(d).into_owned()),
        "sctp_recvmsg(): one message",
    );
    ctx.check_eq(
        "sender.from",
        to.to_string(),
        pong.as_ref().and_then(|(_, a)| a.map(|a| a.to_string())),
        "the reply comes from the listening endpoint",
    );
    crate::volatile(ctx, "sender.from");
    run.finish(ctx)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use kharness::{CaseError, Ctx, KernelInfo, Outcome};

    fn ctx(sctp_listed: bool) -> Ctx {
        let mut protocols = BTreeMap::new();
        protocols.insert("SCTP".to_string(), sctp_listed);
        Ctx::new(
            KernelInfo {
                release: "6.1.0".into(),
                version: (6, 1, 0),
                tcp_info_len: 232,
                protocols,
                privileges: "root".into(),
                cpus: 1,
            },
            None,
        )
    }

    #[test]
    fn a_refusal_is_a_skip_only_where_sctp_is_not_listed() {
        for (listed, ty, want) in [
            (false, libc::SOCK_STREAM, Outcome::Skip),
            (false, libc::SOCK_SEQPACKET, Outcome::Skip),
            (true, libc::SOCK_STREAM, Outcome::Fail),
            (true, libc::SOCK_SEQPACKET, Outcome::Fail),
        ] {
            let mut c = ctx(listed);
            let e = super::refused(&mut c, ty, "EPROTONOSUPPORT");
            assert!(matches!(e, CaseError::Skip(_)));
            let r = c.finish("sctp".into(), Err(e), Duration::ZERO);
            assert_eq!(r.outcome, want, "{r:?}");
        }
    }
}
