//! zerocopy.vmsplice: user pages into a pipe with vmsplice(2), from the
//! pipe into a TCP socket and into a packet socket with splice(2) (seed 003,
//! "Zero-copy network transmission with vmsplice").

use std::io::{IoSlice, Read};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use kharness::observe::SockSnapshot;
use kharness::wait::wait_until;
use kharness::{CaseDef, CaseError, Ctx};
use nix::fcntl::{splice, vmsplice, SpliceFFlags};
use nix::sys::socket::{self, SockaddrIn};

use super::{
    check_mib, mac_of, mib, net3, packet_socket, port_of, recv_n, udp_bound, udp_frame, Net3, Net3Opts, QUIET_TCP,
    RECEIVER, SENDER, WAIT,
};

/// Bytes sent through the TCP path.
const TCP_BYTES: usize = 1 << 20;
/// Bytes per vmsplice: the default pipe capacity (16 pages).
const CHUNK: usize = 64 * 1024;
/// Frames sent through the packet-socket path.
const FRAMES: usize = 16;
const PAGE: usize = 4096;

/// The byte at stream offset `i`.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// A page-aligned, zero-filled buffer of `len` bytes: the Vec and the
/// offset of the aligned start inside it.
pub(crate) fn aligned(len: usize) -> (Vec<u8>, usize) {
    let v = vec![0u8; len + PAGE];
    let off = (PAGE - (v.as_ptr() as usize % PAGE)) % PAGE;
    (v, off)
}

/// A connected TCP pair sender -> receiver.
pub(crate) fn tcp_pair(net: &Net3) -> Result<(TcpStream, TcpStream), CaseError> {
    let listener: TcpListener = net.receiver().run(|| TcpListener::bind(super::sa(RECEIVER, 0)))??;
    let port = listener.local_addr()?.port();
    let client = net.sender().run(|| -> std::io::Result<TcpStream> {
        let fd: OwnedFd = kharness::sys::socket(libc::AF_INET, libc::SOCK_STREAM, 0)?;
        socket::connect(
            fd.as_raw_fd(),
            &SockaddrIn::new(RECEIVER[0], RECEIVER[1], RECEIVER[2], RECEIVER[3], port),
        )?;
        Ok(TcpStream::from(fd))
    })??;
    let (server, _) = listener.accept()?;
    Ok((client, server))
}

/// Moves `len` bytes from the pipe into `out` with splice(2); returns the
/// number of splice calls it took.
pub(crate) fn splice_all(pipe_r: &OwnedFd, out: impl AsFd, len: usize, flags: SpliceFFlags) -> std::io::Result<usize> {
    let mut left = len;
    let mut calls = 0;
    while left > 0 {
        let n = splice(pipe_r, None, out.as_fd(), None, left, flags)?;
        calls += 1;
        if n == 0 {
            return Err(std::io::Error::other("splice moved nothing"));
        }
        left -= n;
    }
    Ok(calls)
}

/// zerocopy.vmsplice
pub static VMSPLICE: CaseDef = CaseDef {
    id: "zerocopy.vmsplice",
    variants: &[],
    summary:
        "vmsplice user pages into a pipe, splice into a TCP socket and into a packet socket: the bytes arrive intact",
    drives: "TCP: 1 MiB of patterned, page-aligned user memory, 64 KiB at a time: vmsplice(pipe) then \
        splice(pipe -> connected TCP socket, SPLICE_F_MOVE), the receiver reading concurrently. Packet \
        socket (the seed's path): 16 Ethernet+IPv4+UDP frames, each at the start of its own page, each \
        vmspliced and spliced into a SOCK_RAW packet socket bound to the sender's veth.",
    observes: "The bytes the TCP receiver reads; the sender's TCP_INFO (tcpi_bytes_acked, \
        tcpi_bytes_sent, tcpi_bytes_retrans, tcpi_data_segs_out) and SIOCOUTQ once settled; the \
        datagrams the receiver's UDP socket reads; the number of vmsplice and splice calls; the MIB of \
        both namespaces.",
    predicts: "TCP: all 1 MiB arrives in order and intact; tcpi_bytes_acked == 1 MiB + 1 (the SYN), \
        bytes_sent - bytes_retrans == 1 MiB, SIOCOUTQ 0. Packet socket: each frame arrives as one \
        datagram with its payload intact, with exactly two system calls per frame (one vmsplice, one \
        splice). Sender Tcp ActiveOpens +1, receiver PassiveOpens +1, CurrEstab +1 on both, receiver \
        Udp InDatagrams +16, no Udp output counted in the sender, no error counter anywhere.",
    why: "vmsplice() without SPLICE_F_GIFT maps the user pages into pipe buffers by reference \
        (vmsplice_to_pipe -> iov_iter_get_pages); splice() to a socket is splice_to_socket(), which \
        since 6.5 hands the pipe pages to sock_sendmsg() with MSG_SPLICE_PAGES: TCP attaches them to \
        skbs as frags without copying (so the user buffer must stay untouched until acked), and \
        packet_sendmsg() -> packet_snd() copies them into one skb, i.e. one frame per splice. The \
        pages are only borrowed, so the receiver sees exactly the bytes we wrote.",
    kernels: "Before 6.5 splice into a socket went through ->sendpage: do_tcp_sendpages() for TCP \
        (zero copy as now), sock_no_sendpage() for packet sockets, which sent one frame per page (a \
        frame crossing a page boundary would be split: here every frame sits inside one page). The seed \
        counts four system calls per packet for its raw-socket program; this path needs two.",
    shell:
        "ip netns exec SENDER strace -c -e vmsplice,splice ./sender; ip netns exec RECEIVER nc -l PORT | cmp - input",
    source: "seed 003 (Zero-copy network transmission with vmsplice)",
    timeout: Duration::from_secs(15),
    run,
};

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    // Volatile for `report diff`: the MIB deltas of a bulk transfer (retransmits, DSACKs, ACK counts) vary.
    ctx.mark_volatile("*.moved.*");
    ctx.mark_volatile("tcp.data_segs_out");
    let net = net3(Net3Opts::default())?;
    let udp_rx = udp_bound(net.receiver(), RECEIVER, 0)?;
    let uport = port_of(&udp_rx)?;
    let s_before = mib(net.sender())?;
    let r_before = mib(net.receiver())?;
    let (client, mut server) = tcp_pair(&net)?;
    let (pipe_r, pipe_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;

    // TCP.
    let (mut buf, off) = aligned(TCP_BYTES);
    for (i, b) in buf[off..off + TCP_BYTES].iter_mut().enumerate() {
        *b = pattern(i);
    }
    let data = &buf[off..off + TCP_BYTES];
    let (mut vmsplices, mut splices) = (0usize, 0usize);
    let (read, first_bad, sent) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut got = 0usize;
            let mut bad = None;
            let mut b = vec![0u8; 1 << 16];
            while got < TCP_BYTES {
                match server.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        for (j, x) in b[..n].iter().enumerate() {
                            if bad.is_none() && *x != pattern(got + j) {
                                bad = Some(got + j);
                            }
                        }
                        got += n;
                    }
                }
            }
            (got, bad)
        });
        let mut sent = 0usize;
        let mut err = None;
        while sent < TCP_BYTES {
            let end = (sent + CHUNK).min(TCP_BYTES);
            let n = match vmsplice(&pipe_w, &[IoSlice::new(&data[sent..end])], SpliceFFlags::empty()) {
                Ok(n) => n,
                Err(e) => {
                    err = Some(e.into());
                    break;
                }
            };
            vmsplices += 1;
            match splice_all(&pipe_r, &client, n, SpliceFFlags::SPLICE_F_MOVE) {
                Ok(c) => splices += c,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
            sent += n;
        }
        if err.is_some() {
            // Unblock the reader.
            let _ = client.shutdown(std::net::Shutdown::Write);
        }
        let (read, bad) = reader.join().expect("reader thread");
        (read, bad, err.map_or(Ok(sent), Err::<usize, std::io::Error>))
    });
    let sent = sent?;
    ctx.observe("tcp.vmsplice_calls", vmsplices as u64);
    ctx.observe("tcp.splice_calls", splices as u64);
    ctx.check_eq(
        "tcp.bytes_spliced",
        TCP_BYTES as i64,
        sent as i64,
        "vmsplice + splice move every byte",
    );
    ctx.check_eq(
        "tcp.bytes_read",
        TCP_BYTES as i64,
        read as i64,
        "TCP delivers every byte",
    );
    ctx.check_eq(
        "tcp.first_corrupt_offset",
        "none",
        first_bad.map_or("none".to_string(), |o| o.to_string()),
        "the pages were borrowed, not changed: the bytes are ours, in order",
    );
    let snap = wait_until(
        "every byte acked",
        WAIT,
        || SockSnapshot::take(client.as_fd()).ok(),
        |s| s.as_ref().is_some_and(|s| s.outq == 0),
    )?
    .ok_or_else(|| CaseError::Harness("TCP_INFO unreadable".into()))?;
    ctx.check_eq("tcp.siocoutq", 0, snap.outq, "settled: nothing unacknowledged");
    ctx.check_eq(
        "tcp.tcpi_bytes_acked",
        TCP_BYTES as i64 + 1,
        snap.ti("bytes_acked").map(|v| v as i64),
        "tcp_snd_una_update(): every byte plus the SYN",
    );
    let sent_net = match (snap.ti("bytes_sent"), snap.ti("bytes_retrans")) {
        (Some(a), Some(b)) => Some(a as i64 - b as i64),
        _ => None,
    };
    ctx.check_eq(
        "tcp.tcpi_bytes_sent-retrans",
        TCP_BYTES as i64,
        sent_net,
        "tcpi_bytes_sent counts transmitted payload, retransmissions included",
    );
    if let Some(segs) = snap.ti("data_segs_out").filter(|s| *s > 0) {
        ctx.observe_volatile("tcp.data_segs_out", segs);
        ctx.observe_volatile(
            "tcp.syscalls_per_segment",
            format!("{:.3}", (vmsplices + splices) as f64 / segs as f64),
        );
    }

    // Packet socket: one frame per page, two calls per frame.
    let si = net.s_ifindex();
    let smac = mac_of(net.sender(), si)?;
    let rmac = mac_of(net.receiver(), net.r_ifindex())?;
    let pk = packet_socket(net.sender(), libc::SOCK_RAW, 0, si)?;
    let (mut pages, poff) = aligned(FRAMES * PAGE);
    let mut lens = Vec::new();
    let payloads: Vec<Vec<u8>> = (0..FRAMES)
        .map(|i| (0..1000).map(|j| ((i * 31 + j) % 253) as u8).collect())
        .collect();
    for (i, p) in payloads.iter().enumerate() {
        let f = udp_frame(smac, rmac, SENDER, RECEIVER, 40400, uport, p);
        pages[poff + i * PAGE..poff + i * PAGE + f.len()].copy_from_slice(&f);
        lens.push(f.len());
    }
    let pages = &pages[poff..];
    let mut calls = 0usize;
    for (i, len) in lens.iter().enumerate() {
        let n = vmsplice(
            &pipe_w,
            &[IoSlice::new(&pages[i * PAGE..i * PAGE + len])],
            SpliceFFlags::empty(),
        )?;
        calls += 1;
        ctx.check_eq(
            format!("packet.frame{i}.vmspliced"),
            *len as i64,
            n as i64,
            "a frame within one page fits the pipe",
        );
        calls += splice_all(&pipe_r, &pk, n, SpliceFFlags::empty())?;
    }
    ctx.check_eq(
        "packet.syscalls_per_frame",
        2.0,
        calls as f64 / FRAMES as f64,
        "one vmsplice and one splice per frame: splice_to_socket() makes one sendmsg of the whole pipe content",
    );
    let got = recv_n(&udp_rx, FRAMES);
    let mut seen: Vec<Vec<u8>> = got.iter().map(|(p, _)| p.clone()).collect();
    seen.sort();
    let mut want = payloads.clone();
    want.sort();
    ctx.check_eq(
        "packet.datagrams",
        FRAMES as i64,
        got.len() as i64,
        "packet_snd(): one frame per splice",
    );
    ctx.check_eq(
        "packet.payloads_intact",
        true,
        seen == want,
        "the frames are the spliced bytes",
    );

    let s_after = mib(net.sender())?;
    let r_after = mib(net.receiver())?;
    check_mib(
        ctx,
        "sender",
        &s_before,
        &s_after,
        &[("Tcp.ActiveOpens", 1), ("Tcp.CurrEstab", 1), ("Udp.OutDatagrams", 0)],
        QUIET_TCP,
        "one connection opened; packet-socket frames bypass UDP",
    );
    check_mib(
        ctx,
        "receiver",
        &r_before,
        &r_after,
        &[
            ("Tcp.PassiveOpens", 1),
            ("Tcp.CurrEstab", 1),
            ("Udp.InDatagrams", FRAMES as i64),
        ],
        QUIET_TCP,
        "one connection accepted; every frame delivered and read",
    );
    drop(client);
    Ok(())
}
