//! TCP send buffer and TCP_INFO (catalog section 1, seeds 000–002).
//!
//! Shared here: the connected pair every case starts from ([`Conn`]), the
//! settle wait, and the send-buffer equalities ([`check_queue_model`]) that
//! tcp.fill, tcp.drain and tcp.ops_property all check.
//!
//! The sequence-space picture behind every model (`include/linux/tcp.h`):
//!
//! ```text
//!     snd_una            snd_nxt             write_seq
//!        |<-- in flight -->|<---- not sent ---->|
//!        |<---------------- SIOCOUTQ ---------->|
//!                          |<-- SIOCOUTQNSD --->|  == tcpi_notsent_bytes
//! ```

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use kharness::observe::SockSnapshot;
use kharness::wait::wait_until;
use kharness::{CaseDef, CaseError, Ctx, Expect, Topology};
use nix::sys::socket::{self, SockaddrIn};

mod fill;
mod info_diag;
mod loss;
mod notsent_lowat;
mod ops_property;
mod refused;
mod sndbuf;

/// The family's cases.
pub fn cases() -> Vec<&'static CaseDef> {
    vec![
        &fill::FILL,
        &fill::DRAIN,
        &ops_property::OPS_PROPERTY,
        &notsent_lowat::NOTSENT_LOWAT,
        &sndbuf::SNDBUF_SETGET,
        &info_diag::INFO_DIAG,
        &refused::REFUSED,
        &loss::LOSS,
    ]
}

/// Where the two ends live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// client and server namespaces joined by a veth pair (198.18.0.1 → .2).
    Veth,
    /// one namespace, both ends on 198.18.0.1 assigned to `lo`.
    Loopback,
}

impl Path {
    pub(crate) fn from_variant(v: Option<&str>) -> Path {
        match v {
            Some("loopback") => Path::Loopback,
            _ => Path::Veth,
        }
    }
}

/// A connected TCP pair in namespaces of its own.
pub(crate) struct Conn {
    pub topo: Topology,
    pub client: TcpStream,
    pub server: TcpStream,
    pub client_ns: &'static str,
    pub server_ns: &'static str,
}

/// Options for [`connect`].
#[derive(Default, Clone)]
pub(crate) struct ConnOpts {
    /// SO_RCVBUF on the listener (inherited by the accepted socket).
    pub server_rcvbuf: Option<i32>,
    /// SO_SNDBUF on the client before connect.
    pub client_sndbuf: Option<i32>,
    /// TCP_NOTSENT_LOWAT on the client.
    pub client_lowat: Option<i32>,
    /// Sysctls for the client namespace (`net.ipv4.tcp_notsent_lowat`…).
    pub client_sysctls: Vec<(&'static str, String)>,
}

pub(crate) const SERVER_V4: [u8; 4] = [198, 18, 0, 2];
pub(crate) const CLIENT_V4: [u8; 4] = [198, 18, 0, 1];

/// Builds the topology for `path` (without connecting).
pub(crate) fn topology(
    path: Path,
    client_sysctls: &[(&'static str, String)],
) -> Result<(Topology, &'static str, &'static str), CaseError> {
    let mut b = match path {
        Path::Veth => Topology::builder()
            .ns("client")
            .ns("server")
            .veth(("client", "veth0"), ("server", "veth0"))
            .addr("client", "veth0", "198.18.0.1/24")
            .addr("server", "veth0", "198.18.0.2/24"),
        Path::Loopback => Topology::builder().ns("client").addr("client", "lo", "198.18.0.1/32"),
    };
    for (k, v) in client_sysctls {
        b = b.sysctl("client", k, v);
    }
    let topo = b.build()?;
    let server_ns = if path == Path::Veth { "server" } else { "client" };
    Ok((topo, "client", server_ns))
}

/// The server's address for `path`.
pub(crate) fn server_ip(path: Path) -> [u8; 4] {
    if path == Path::Veth {
        SERVER_V4
    } else {
        CLIENT_V4
    }
}

/// Builds the topology and a connected pair. Equivalent to
/// `netns-scripts/pair.sh up` then a listener in the server namespace and
/// `connect()` from the client.
pub(crate) fn connect(path: Path, opts: &ConnOpts) -> Result<Conn, CaseError> {
    let (topo, client_ns, server_ns) = topology(path, &opts.client_sysctls)?;
    let ip = server_ip(path);
    let listener = listen(&topo, server_ns, ip, opts.server_rcvbuf)?;
    let port = listener.local_addr()?.port();
    let client = topo.ns(client_ns).run(|| -> io::Result<TcpStream> {
        let fd = kharness::sys::socket(libc::AF_INET, libc::SOCK_STREAM, 0)?;
        if let Some(b) = opts.client_sndbuf {
            socket::setsockopt(&fd, socket::sockopt::SndBuf, &(b as usize))?;
        }
        if let Some(l) = opts.client_lowat {
            kharness::sys::setsockopt_int(fd.as_fd(), libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT, l)?;
        }
        let addr = SockaddrIn::new(ip[0], ip[1], ip[2], ip[3], port);
        socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr)?;
        Ok(TcpStream::from(fd))
    })??;
    let (server, _) = listener.accept()?;
    Ok(Conn {
        topo,
        client,
        server,
        client_ns,
        server_ns,
    })
}

/// A listening socket in `ns` on `ip`, ephemeral port.
pub(crate) fn listen(topo: &Topology, ns: &str, ip: [u8; 4], rcvbuf: Option<i32>) -> Result<TcpListener, CaseError> {
    Ok(topo.ns(ns).run(|| -> io::Result<TcpListener> {
        let fd: OwnedFd = kharness::sys::socket(libc::AF_INET, libc::SOCK_STREAM, 0)?;
        if let Some(b) = rcvbuf {
            socket::setsockopt(&fd, socket::sockopt::RcvBuf, &(b as usize))?;
        }
        socket::bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &SockaddrIn::new(ip[0], ip[1], ip[2], ip[3], 0),
        )?;
        socket::listen(&fd, socket::Backlog::new(8).expect("backlog"))?;
        Ok(TcpListener::from(fd))
    })??)
}

/// The byte at stream offset `i` of the pattern every case writes, so the
/// receiver can prove nothing was lost, reordered or duplicated.
pub(crate) fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

/// Writes up to `n` pattern bytes without blocking, starting at stream
/// offset `*written`; returns how many the kernel took and whether it said
/// EAGAIN.
pub(crate) fn write_some(s: &mut TcpStream, written: &mut u64, n: u64) -> io::Result<(u64, bool)> {
    s.set_nonblocking(true)?;
    let mut took = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while took < n {
        let chunk = (n - took).min(buf.len() as u64) as usize;
        for (j, b) in buf[..chunk].iter_mut().enumerate() {
            *b = pattern(*written + j as u64);
        }
        match s.write(&buf[..chunk]) {
            Ok(k) => {
                took += k as u64;
                *written += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((took, true)),
            Err(e) => return Err(e),
        }
    }
    Ok((took, false))
}

/// Writes until the kernel says EAGAIN (or `cap` bytes).
pub(crate) fn fill(s: &mut TcpStream, written: &mut u64, cap: u64) -> io::Result<bool> {
    write_some(s, written, cap).map(|(_, eagain)| eagain)
}

/// Reads up to `n` bytes without blocking and checks them against the
/// pattern; returns the count and the first offset that was wrong.
pub(crate) fn read_some(s: &mut TcpStream, read: &mut u64, n: u64) -> io::Result<(u64, Option<u64>)> {
    s.set_nonblocking(true)?;
    let mut got = 0;
    let mut bad = None;
    let mut buf = vec![0u8; 64 * 1024];
    while got < n {
        let want = (n - got).min(buf.len() as u64) as usize;
        match s.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(k) => {
                for (j, b) in buf[..k].iter().enumerate() {
                    if bad.is_none() && *b != pattern(*read + j as u64) {
                        bad = Some(*read + j as u64);
                    }
                }
                got += k as u64;
                *read += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok((got, bad))
}

/// A snapshot of both ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pair {
    pub c: SockSnapshot,
    pub s: SockSnapshot,
}

impl Pair {
    pub(crate) fn take(conn: &Conn) -> io::Result<Pair> {
        Ok(Pair {
            c: SockSnapshot::take(conn.client.as_fd())?,
            s: SockSnapshot::take(conn.server.as_fd())?,
        })
    }

    /// The sequence-space figures (no clocks, no rates): equal keys in two
    /// consecutive snapshots mean the connection did not move in between.
    fn key(&self) -> [Option<u64>; 8] {
        [
            Some(self.c.outq as u64),
            Some(self.c.outq_nsd as u64),
            Some(self.s.inq as u64),
            self.c.ti("bytes_acked"),
            self.c.ti("bytes_sent"),
            self.s.ti("bytes_received"),
            self.c.ti("unacked"),
            self.s.ti("rcv_wnd").or(Some(0)),
        ]
    }
}

/// Waits until nothing is in flight (SIOCOUTQ == SIOCOUTQNSD: every byte
/// sent has been acknowledged) and two back-to-back snapshots of both ends
/// agree, then returns that snapshot. "Settled" is a condition on the
/// counters, polled to a deadline; no time is assumed.
pub(crate) fn settle(conn: &Conn, timeout: Duration) -> Result<Pair, CaseError> {
    let mut prev: Option<Pair> = None;
    let p = wait_until(
        "nothing in flight and both ends unchanged across two snapshots",
        timeout,
        || {
            let now = Pair::take(conn).ok();
            // Bytes in flight wait for the receiver's ACK, which a delayed-ACK
            // timer may hold for 40 ms: TCP_QUICKACK sends pending ACKs now
            // (tcp_sock_set_quickack -> tcp_cleanup_rbuf). ACK timing is not
            // part of any model, so this only shortens the wait.
            if now.as_ref().is_some_and(|p| p.c.outq != p.c.outq_nsd) {
                let _ = kharness::sys::setsockopt_int(conn.server.as_fd(), libc::IPPROTO_TCP, libc::TCP_QUICKACK, 1);
            }
            let stable = match (&prev, &now) {
                (Some(a), Some(b)) => a.key() == b.key() && b.c.outq == b.c.outq_nsd,
                _ => false,
            };
            let out = if stable { now.clone() } else { None };
            prev = now;
            out
        },
        |p| p.is_some(),
    )?;
    Ok(p.expect("settled snapshot"))
}

/// Upper bound on how far `sk_wmem_queued` may exceed `sk_sndbuf`:
/// `tcp_sendmsg_locked()` checks `sk_stream_memory_free()` before starting a
/// new skb but then fills it up to `size_goal` (at most the GSO maximum,
/// 64 KiB) and may top up the tail skb without the check; an skb's truesize
/// adds its `struct sk_buff` + shared info (well under 2 KiB).
pub(crate) const SNDBUF_OVERSHOOT: i64 = 64 * 1024 + 2048;

/// tcpi_unacked against the bytes in flight of the same snapshot: > 0 iff
/// SIOCOUTQ > SIOCOUTQNSD. Settled snapshots (tcp.fill) have nothing in
/// flight and check the `== 0` side; tcp.loss, with the link down, the other.
pub(crate) fn check_unacked(ctx: &mut Ctx, name: &str, c: &SockSnapshot) {
    let in_flight = c.outq > c.outq_nsd;
    ctx.check(
        name,
        if in_flight { Expect::Gt(0) } else { Expect::eq(0) },
        c.ti("unacked"),
        "tcpi_unacked is packets_out: segments sent and not acked, > 0 iff bytes are in flight",
    );
}

/// The send-buffer equalities of tcp.fill, checked on a settled snapshot
/// after `written` bytes were written by the client and `read` read by the
/// server. `tag` prefixes every observation (`fill`, `step3`…).
pub(crate) fn check_queue_model(ctx: &mut Ctx, tag: &str, p: &Pair, written: u64, read: u64) {
    let c = &p.c;
    let s = &p.s;
    // The figures themselves follow buffer autotuning, ACK timing and drops:
    // they vary from run to run (volatile); the checks are the invariants
    // that hold between them.
    for (k, v) in c.to_observations(&format!("{tag}.client")) {
        ctx.observe_volatile(k, v);
    }
    for (k, v) in s.to_observations(&format!("{tag}.server")) {
        ctx.observe_volatile(k, v);
    }
    let outq = c.outq as i64;
    let nsd = c.outq_nsd as i64;
    let in_flight = outq - nsd;
    let sent = written as i64 - nsd;
    ctx.observe_volatile(format!("{tag}.written"), written);
    ctx.observe_volatile(format!("{tag}.read"), read);
    ctx.observe_volatile(format!("{tag}.in_flight"), in_flight);

    ctx.check_eq(
        format!("{tag}.client.bytes_acked+siocoutq"),
        written as i64 + 1,
        c.ti("bytes_acked").map(|b| b as i64 + outq),
        "written + 1 (the SYN) == tcpi_bytes_acked + SIOCOUTQ: tcp_snd_una_update() adds every acked sequence number, the SYN's included; SIOCOUTQ is write_seq - snd_una (tcp_ioctl)",
    );
    ctx.check_eq(
        format!("{tag}.client.tcpi_notsent_bytes"),
        nsd,
        c.ti("notsent_bytes").map(|v| v as i64),
        "tcpi_notsent_bytes and SIOCOUTQNSD are both write_seq - snd_nxt (tcp_get_info, tcp_ioctl)",
    );
    check_unacked(ctx, &format!("{tag}.client.tcpi_unacked"), c);
    ctx.check_eq(
        format!("{tag}.server.siocinq+read"),
        sent - in_flight,
        s.inq as i64 + read as i64,
        "with nothing lost, every byte sent and acked sits in the receiver's queue or was read: receiver SIOCINQ + read == written - SIOCOUTQNSD - in flight",
    );
    ctx.check_eq(
        format!("{tag}.server.tcpi_bytes_received"),
        sent - in_flight,
        s.ti("bytes_received").map(|v| v as i64),
        "tcpi_bytes_received counts every in-order byte the receiver accepted (tcp_rcv_nxt_update)",
    );
    ctx.check_eq(
        format!("{tag}.client.bytes_sent-bytes_retrans"),
        sent,
        match (c.ti("bytes_sent"), c.ti("bytes_retrans")) {
            (Some(a), Some(b)) => Some(a as i64 - b as i64),
            _ => None,
        },
        "tcpi_bytes_sent counts every transmitted byte, retransmissions included (tcp_event_new_data_sent + retransmits): minus tcpi_bytes_retrans it is snd_nxt - isn - 1",
    );
    ctx.check(
        format!("{tag}.client.siocoutq_le_wmem_queued"),
        Expect::Le(c.mem("wmem_queued").map(|v| v as i64).unwrap_or(i64::MIN)),
        outq,
        "queued payload is charged to sk_wmem_queued at its truesize, which is never less than the payload",
    );
    ctx.check(
        format!("{tag}.client.wmem_queued"),
        Expect::Le(c.sndbuf as i64 + SNDBUF_OVERSHOOT),
        c.mem("wmem_queued").map(|v| v as i64),
        "sk_stream_memory_free() stops tcp_sendmsg once sk_wmem_queued >= sk_sndbuf; at most one skb (<= 64 KiB GSO payload + overhead) goes past it",
    );
    ctx.check_eq(
        format!("{tag}.client.so_sndbuf_vs_meminfo"),
        c.sndbuf as i64,
        c.mem("sndbuf").map(|v| v as i64),
        "SO_SNDBUF and SO_MEMINFO[SK_MEMINFO_SNDBUF] both read sk->sk_sndbuf",
    );
    ctx.check_eq(
        format!("{tag}.server.so_rcvbuf_vs_meminfo"),
        s.rcvbuf as i64,
        s.mem("rcvbuf").map(|v| v as i64),
        "SO_RCVBUF and SO_MEMINFO[SK_MEMINFO_RCVBUF] both read sk->sk_rcvbuf",
    );
    for n in [
        "client.bytes_acked+siocoutq",
        "client.tcpi_notsent_bytes",
        "client.tcpi_unacked",
        "server.siocinq+read",
        "server.tcpi_bytes_received",
        "client.bytes_sent-bytes_retrans",
        "client.siocoutq_le_wmem_queued",
        "client.wmem_queued",
        "client.so_sndbuf_vs_meminfo",
        "server.so_rcvbuf_vs_meminfo",
    ] {
        crate::volatile(ctx, &format!("{tag}.{n}"));
    }
}

/// After a read found the receiver's queue empty: waits for the sender to
/// use the window the reads opened (the receiver's window update may sit
/// behind a delayed ACK). `false` when nothing arrives before the settle
/// deadline: the caller ends its loop and its final checks report it.
pub(crate) fn wait_refill(conn: &Conn) -> bool {
    let fd = conn.server.as_fd();
    kharness::wait::wait_until(
        "the server's receive queue to refill",
        SETTLE,
        || kharness::sys::ioctl_int(fd, kharness::sys::SIOCINQ).unwrap_or(0),
        |inq| *inq > 0,
    )
    .is_ok()
}

/// How long any settle may take. Generous: a settle normally completes in
/// well under a millisecond; the bound exists only so a broken kernel fails
/// instead of hanging.
pub(crate) const SETTLE: Duration = Duration::from_secs(5);
