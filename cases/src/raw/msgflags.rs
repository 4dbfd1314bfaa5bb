//! msgflags.udp: MSG_PEEK, MSG_TRUNC, MSG_DONTWAIT and MSG_ERRQUEUE on UDP
//! (seed 004, appendix E).

use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use kharness::wait::wait_for;
use kharness::{sys, CaseDef, CaseError, Ctx};
use nix::sys::socket::{self, sockopt, ControlMessageOwned, MsgFlags, SockaddrIn};

use super::{check_mib, ip_out, mib, net3, outcome, port_of, udp_bound, Net3Opts, QUIET, RECEIVER, SENDER, WAIT};

/// A port nothing listens on in the receiver.
const CLOSED: u16 = 9;

/// msgflags.udp (the catalog's `msgflags`; ids are `family.case`)
pub static MSGFLAGS: CaseDef = CaseDef {
    id: "msgflags.udp",
    variants: &[],
    summary: "MSG_PEEK leaves the datagram, MSG_TRUNC returns its real length, MSG_DONTWAIT says EAGAIN, MSG_ERRQUEUE holds the ICMP error",
    drives: "A UDP socket in the sender sends to the receiver's UDP socket: a 12-byte datagram read \
        with recv(MSG_PEEK) then recv(); a 100-byte datagram read into 10 bytes with recvmsg(MSG_TRUNC) \
        and another into 10 bytes without it; then recv(MSG_DONTWAIT) on the empty socket. A second \
        sender socket with IP_RECVERR, connected to a closed port of the receiver, sends 'errq' and \
        reads its error queue with recvmsg(MSG_ERRQUEUE).",
    observes: "Return values, msg_flags and errnos; the IP_RECVERR control message (struct \
        sock_extended_err and the offender address), the data and address the error-queue read \
        returns; SO_ERROR afterwards; the MIB of both namespaces.",
    predicts: "PEEK returns 12 and the following recv the same 12 bytes; MSG_TRUNC returns 100 with \
        MSG_TRUNC in msg_flags; without it, 10 with MSG_TRUNC in msg_flags; DONTWAIT: EAGAIN. The error \
        queue yields one message flagged MSG_ERRQUEUE: ee_errno ECONNREFUSED, ee_origin \
        SO_EE_ORIGIN_ICMP, ee_type 3, ee_code 3, offender 198.18.0.2, the original payload 'errq', \
        msg_name 198.18.0.2:9; afterwards SO_ERROR is 0 and a second MSG_ERRQUEUE read is EAGAIN. \
        Receiver: Udp InDatagrams +3 (the peeked datagram counts once, when it is consumed), NoPorts \
        +1, one port unreachable out; sender: Udp OutDatagrams +4, Icmp InDestUnreachs +1.",
    why: "udp_recvmsg(): copied = min(len, ulen), MSG_TRUNC in msg_flags when len < ulen and the \
        return value is ulen with flags & MSG_TRUNC; a peek (MSG_PEEK) leaves the skb queued and does \
        not count UDP_MIB_INDATAGRAMS (if (!peeking)). __skb_recv_udp() returns -EAGAIN at once for \
        MSG_DONTWAIT. For the closed port, __udp4_lib_rcv() counts NOPORTS and sends \
        ICMP_PORT_UNREACH; on the sender __udp4_lib_err() with IP_RECVERR calls ip_icmp_error(), which \
        queues the offending payload with SO_EE_ORIGIN_ICMP, type, code and errno (icmp_err_convert: \
        ECONNREFUSED), and sets sk_err; ip_recv_error() returns it with MSG_ERRQUEUE, the original \
        destination as msg_name and the ICMP source as SO_EE_OFFENDER, and sock_dequeue_err_skb() \
        clears sk_err when no ICMP error follows.",
    kernels: "Unchanged since 2.6 (the SO_EE_ORIGIN_ICMP path); MSG_TRUNC's real-length return for \
        UDP since 2.6.x; sk_err clearing on dequeue since 4.x. \
        Ip.OutTransmits (IPSTATS_MIB_OUTPKTS under its own name) is exported from 6.3 and predicted only where it is: absent on 5.10 and 6.1.",
    shell: "ip netns exec SENDER python3 -c 'import socket as s; k=s.socket(2,2); k.setsockopt(0,11,1); k.connect((\"198.18.0.2\",9)); k.send(b\"errq\"); print(k.recvmsg(64,512,s.MSG_ERRQUEUE))'",
    source: "seed 004 (appendix E: flags for send/receive; IP_RECVERR example)",
    timeout: Duration::from_secs(10),
    run,
};

fn name<T>(r: &io::Result<T>) -> String {
    outcome(r)
}

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    let net = net3(Net3Opts::default())?;
    let rx = udp_bound(net.receiver(), RECEIVER, 0)?;
    let port = port_of(&rx)?;
    let tx = udp_bound(net.sender(), SENDER, 0)?;
    tx.connect(super::sa(RECEIVER, port))?;
    let s_before = mib(net.sender())?;
    let r_before = mib(net.receiver())?;
    let rfd = rx.as_fd();

    // MSG_PEEK
    tx.send(b"peek me 1234")?;
    let mut buf = [0u8; 64];
    let peek = wait_for("a datagram to peek", WAIT, || {
        sys::recv(rfd, &mut buf, libc::MSG_PEEK | libc::MSG_DONTWAIT).ok()
    })
    .ok();
    ctx.check_eq("peek.len", 12, peek.map(|n| n as i64), "MSG_PEEK copies the datagram");
    let again = sys::recv(rfd, &mut buf, libc::MSG_DONTWAIT);
    ctx.check_eq(
        "after_peek.len",
        12,
        again.as_ref().map(|n| *n as i64).unwrap_or(-1),
        "the peeked datagram is still queued",
    );
    ctx.check_eq(
        "after_peek.data",
        "peek me 1234",
        String::from_utf8_lossy(&buf[..*again.as_ref().unwrap_or(&0)]).into_owned(),
        "the same bytes",
    );

    // MSG_TRUNC
    let big = vec![0x42u8; 100];
    tx.send(&big)?;
    tx.send(&big)?;
    let mut small = [0u8; 10];
    let t = wait_for("the first 100-byte datagram", WAIT, || {
        let mut iov = [IoSliceMut::new(&mut small)];
        socket::recvmsg::<()>(
            rfd.as_raw_fd(),
            &mut iov,
            None,
            MsgFlags::MSG_TRUNC | MsgFlags::MSG_DONTWAIT,
        )
        .ok()
        .map(|m| (m.bytes, m.flags))
    })
    .ok();
    ctx.check_eq(
        "trunc.with_flag.return",
        100,
        t.map(|(n, _)| n as i64),
        "udp_recvmsg(): with MSG_TRUNC the return value is the datagram's real length",
    );
    ctx.check_eq(
        "trunc.with_flag.msg_flags_trunc",
        true,
        t.map(|(_, f)| f.contains(MsgFlags::MSG_TRUNC)),
        "msg_flags |= MSG_TRUNC: the buffer was shorter",
    );
    let mut iov = [IoSliceMut::new(&mut small)];
    let u = socket::recvmsg::<()>(rfd.as_raw_fd(), &mut iov, None, MsgFlags::MSG_DONTWAIT)
        .map(|m| (m.bytes, m.flags))
        .ok();
    ctx.check_eq(
        "trunc.without_flag.return",
        10,
        u.map(|(n, _)| n as i64),
        "without MSG_TRUNC the return value is what was copied",
    );
    ctx.check_eq(
        "trunc.without_flag.msg_flags_trunc",
        true,
        u.map(|(_, f)| f.contains(MsgFlags::MSG_TRUNC)),
        "the rest of the datagram is discarded and msg_flags says so",
    );

    // MSG_DONTWAIT
    ctx.check_eq(
        "dontwait.empty",
        "EAGAIN",
        name(&sys::recv(rfd, &mut buf, libc::MSG_DONTWAIT)),
        "__skb_recv_udp(): nothing queued and MSG_DONTWAIT -> -EAGAIN",
    );

    // MSG_ERRQUEUE
    let e = udp_bound(net.sender(), SENDER, 0)?;
    socket::setsockopt(&e, sockopt::Ipv4RecvErr, &true)?;
    e.connect(super::sa(RECEIVER, CLOSED))?;
    e.send(b"errq")?;
    let mut data = [0u8; 64];
    let got = wait_for("the ICMP error on the error queue", WAIT, || {
        let mut iov = [IoSliceMut::new(&mut data)];
        let mut space = nix::cmsg_space!(libc::sock_extended_err, libc::sockaddr_in);
        let m = socket::recvmsg::<SockaddrIn>(
            e.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
        )
        .ok()?;
        let mut ee = None;
        for c in m.cmsgs().ok()? {
            if let ControlMessageOwned::Ipv4RecvErr(err, off) = c {
                ee = Some((err, off));
            }
        }
        Some((m.bytes, m.flags, m.address, ee))
    })
    .ok();
    let (n, flags, addr, ee) = match got {
        Some(g) => (Some(g.0), Some(g.1), g.2, g.3),
        None => (None, None, None, None),
    };
    ctx.check_eq(
        "errqueue.msg_flags_errqueue",
        true,
        flags.map(|f| f.contains(MsgFlags::MSG_ERRQUEUE)),
        "ip_recv_error() sets MSG_ERRQUEUE",
    );
    ctx.check_eq(
        "errqueue.data",
        "errq",
        n.map(|n| String::from_utf8_lossy(&data[..n]).into_owned()),
        "ip_icmp_error() queues the offending datagram's payload",
    );
    ctx.check_eq(
        "errqueue.msg_name",
        super::sa(RECEIVER, CLOSED).to_string(),
        addr.map(|a| a.to_string()),
        "msg_name is the original destination",
    );
    let err = ee.as_ref().map(|(e, _)| *e);
    ctx.check_eq(
        "errqueue.ee_errno",
        i64::from(libc::ECONNREFUSED),
        err.map(|e| i64::from(e.ee_errno)),
        "icmp_err_convert[ICMP_PORT_UNREACH] = ECONNREFUSED",
    );
    ctx.check_eq(
        "errqueue.ee_origin",
        i64::from(libc::SO_EE_ORIGIN_ICMP),
        err.map(|e| i64::from(e.ee_origin)),
        "ip_icmp_error(): SO_EE_ORIGIN_ICMP",
    );
    ctx.check_eq(
        "errqueue.ee_type",
        3,
        err.map(|e| i64::from(e.ee_type)),
        "ICMP_DEST_UNREACH",
    );
    ctx.check_eq(
        "errqueue.ee_code",
        3,
        err.map(|e| i64::from(e.ee_code)),
        "ICMP_PORT_UNREACH",
    );
    ctx.check_eq(
        "errqueue.offender",
        "198.18.0.2",
        ee.as_ref()
            .and_then(|(_, o)| o.map(|o| std::net::Ipv4Addr::from(u32::from_be(o.sin_addr.s_addr)).to_string())),
        "SO_EE_OFFENDER: the ICMP message's source",
    );
    ctx.check_eq(
        "errqueue.so_error_after",
        0,
        socket::getsockopt(&e, sockopt::SocketError)
            .map(i64::from)
            .unwrap_or(-1),
        "sock_dequeue_err_skb() clears sk_err when no ICMP error follows",
    );
    let mut iov = [IoSliceMut::new(&mut data)];
    let second = socket::recvmsg::<()>(
        e.as_raw_fd(),
        &mut iov,
        None,
        MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
    )
    .map(|_| ())
    .map_err(io::Error::from);
    ctx.check_eq(
        "errqueue.second_read",
        "EAGAIN",
        name(&second),
        "one error, one message",
    );

    let s_after = super::wait_mib(net.sender(), &s_before, &[("Icmp.InDestUnreachs", 1)])?;
    let r_after = mib(net.receiver())?;
    let mut s_model = ip_out(&s_before, 4);
    s_model.extend([
        ("Udp.OutDatagrams", 4),
        ("Icmp.InMsgs", 1),
        ("Icmp.InDestUnreachs", 1),
        ("IcmpMsg.InType3", 1),
        ("Ip.InReceives", 1),
        ("Ip.InDelivers", 1),
    ]);
    check_mib(
        ctx,
        "sender",
        &s_before,
        &s_after,
        &s_model,
        QUIET,
        "four datagrams out; one port unreachable back (icmp_rcv -> icmp_unreach -> __udp4_lib_err)",
    );
    let mut r_model = vec![
        ("Ip.InReceives", 4),
        ("Ip.InDelivers", 4),
        ("Udp.InDatagrams", 3),
        ("Udp.NoPorts", 1),
        ("Icmp.OutMsgs", 1),
        ("Icmp.OutDestUnreachs", 1),
        ("IcmpMsg.OutType3", 1),
    ];
    r_model.extend(ip_out(&r_before, 1));
    check_mib(ctx, "receiver", &r_before, &r_after, &r_model, QUIET, "udp_recvmsg() counts INDATAGRAMS once per consumed datagram (not for a peek); __udp4_lib_rcv() NOPORTS + icmp_send()");
    Ok(())
}
