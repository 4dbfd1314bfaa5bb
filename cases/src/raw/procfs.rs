//! procfs.socket_inode: from a socket's fd to its line in /proc/net (seed
//! 004, "Tips: to find out socket used by a process").

use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use kharness::{CaseDef, CaseError, Ctx, NetNs};
use nix::sys::socket::{self, UnixAddr};

use super::{check_mib, ip_out, mib, net3, udp_bound, Net3Opts, QUIET, RECEIVER};
use crate::raw::zerocopy::tcp_pair;

/// One socket line of /proc/net/{tcp,udp}: local, remote, state, uid, inode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InetLine {
    local: String,
    remote: String,
    st: String,
    uid: u32,
    inode: u64,
}

/// `%08X:%04X` of a `__be32` read as a native integer, back to `a.b.c.d:port`.
fn inet_addr(s: &str) -> Option<String> {
    let (a, p) = s.split_once(':')?;
    let ip = u32::from_str_radix(a, 16).ok()?.to_ne_bytes();
    let port = u16::from_str_radix(p, 16).ok()?;
    Some(format!("{}:{port}", Ipv4Addr::from(ip)))
}

/// Parses /proc/net/tcp or udp (`tcp4_seq_show`, `udp4_format_sock`).
fn parse_inet(text: &str) -> Vec<InetLine> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(InetLine {
                local: inet_addr(f.get(1)?)?,
                remote: inet_addr(f.get(2)?)?,
                st: f.get(3)?.to_string(),
                uid: f.get(7)?.parse().ok()?,
                inode: f.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// One line of /proc/net/unix (`unix_seq_show`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct UnixLine {
    flags: String,
    ty: String,
    st: String,
    inode: u64,
    path: Option<String>,
}

fn parse_unix(text: &str) -> Vec<UnixLine> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(UnixLine {
                flags: f.get(3)?.to_string(),
                ty: f.get(4)?.to_string(),
                st: f.get(5)?.to_string(),
                inode: f.get(6)?.parse().ok()?,
                path: f.get(7).map(|s| s.to_string()),
            })
        })
        .collect()
}

/// What the model expects of one inet socket's line.
struct Expected<'a> {
    name: &'static str,
    fd: BorrowedFd<'a>,
    /// The file of its own namespace and protocol.
    home: &'a [InetLine],
    /// Files it must not appear in.
    others: Vec<&'a [InetLine]>,
    local: String,
    remote: String,
    st: &'static str,
}

/// `/proc/thread-self/net/FILE` read inside `ns`.
fn net_file(ns: &NetNs, file: &str) -> Result<String, CaseError> {
    let path = format!("/proc/thread-self/net/{file}");
    Ok(ns.run(|| std::fs::read_to_string(&path))??)
}

/// The inode in `/proc/PID/fd/N`'s `socket:[INODE]` link.
fn fd_inode(fd: BorrowedFd<'_>) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{}/fd/{}", std::process::id(), fd.as_raw_fd())).ok()?;
    let s = link.to_string_lossy().into_owned();
    s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// procfs.socket_inode
pub static SOCKET_INODE: CaseDef = CaseDef {
    id: "procfs.socket_inode",
    variants: &[],
    summary: "a socket's inode from /proc/PID/fd leads to its line in its namespace's /proc/net/{tcp,udp,unix}",
    drives: "In the receiver: a TCP listener on 198.18.0.2, a UDP socket on 198.18.0.2, a listening \
        unix stream socket bound to an abstract name; a TCP connection from the sender to the listener \
        (client in the sender, accepted socket in the receiver).",
    observes: "readlink(/proc/PID/fd/N) for each fd ('socket:[INODE]'), fstat(fd).st_ino, and \
        /proc/thread-self/net/{tcp,udp,unix} read inside each namespace; the Tcp and Ip MIB of both.",
    predicts: "Each inode is fstat's st_ino and appears on exactly one line, in its own namespace's \
        file only: listener 198.18.0.2:P, remote 0.0.0.0:0, state 0A (LISTEN); accepted socket \
        198.18.0.2:P <-> 198.18.0.1:C, 01 (ESTABLISHED); client 198.18.0.1:C <-> 198.18.0.2:P, 01, in \
        the sender's file; UDP 198.18.0.2:Q, 07 (TCP_CLOSE, unconnected); the unix socket with path \
        @NAME, type 0001 (SOCK_STREAM), flags 00010000 (__SO_ACCEPTCON), state 01 (SS_UNCONNECTED); \
        uid our euid. Handshake counters: sender ActiveOpens +1, OutSegs +2, InSegs +1; receiver \
        PassiveOpens +1, InSegs +2, OutSegs +1; CurrEstab +1 each.",
    why: "sock_alloc() gives every socket an inode of sockfs, which /proc/PID/fd shows as \
        'socket:[%lu]' (sockfs_dname) and fstat reports; tcp4_seq_show() (get_tcp4_sock, \
        get_openreq4, get_timewait4_sock) and udp4_format_sock() print sock_i_ino(sk) along with \
        %08X:%04X addresses (the __be32 printed as a host integer) and the state; the seq files \
        iterate only sockets whose sock_net() is the reader's namespace (seq_file_net), so \
        /proc/thread-self/net shows the namespace of the reading thread. unix_seq_show() prints \
        flags (__SO_ACCEPTCON for a listener), type, state and the name with '@' for an abstract \
        address. The MIB: tcp_v4_connect -> ACTIVEOPENS, tcp_create_openreq_child path -> \
        PASSIVEOPENS, tcp_set_state(ESTABLISHED) -> CURRESTAB, one OUTSEGS per segment sent, one \
        INSEGS per segment received (SYN, SYN-ACK, ACK).",
    kernels: "Unchanged for years; inodes were shown as 0 for some states before 2.6; \
        /proc/thread-self exists from 3.17 (before: /proc/self/task/TID/net). \
        Ip.OutTransmits (IPSTATS_MIB_OUTPKTS under its own name) is exported from 6.3 and predicted only where it is: absent on 5.10 and 6.1.",
    shell: "ls -l /proc/PID/fd | grep socket; ip netns exec RECEIVER cat /proc/net/tcp; ss -tuxe (ino:)",
    source: "seed 004 (Tips: socket inodes from /proc/PID/fd, netstat -ae)",
    timeout: Duration::from_secs(10),
    run,
};

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    // Volatile for `report diff`: ports are ephemeral and inode numbers are allocated per run.
    ctx.mark_volatile("*.fd_link_inode_vs_fstat");
    ctx.mark_volatile("*.local");
    ctx.mark_volatile("*.remote");
    ctx.mark_volatile("unix.path");
    let net = net3(Net3Opts::default())?;
    let s = net.sender();
    let r = net.receiver();
    let s_before = mib(s)?;
    let r_before = mib(r)?;
    let (client, server) = tcp_pair(&net)?;
    let listener: TcpListener = r.run(|| TcpListener::bind(super::sa(RECEIVER, 0)))??;
    let udp = udp_bound(r, RECEIVER, 0)?;
    let unix: OwnedFd = r.socket(libc::AF_UNIX, libc::SOCK_STREAM, 0)?;
    let uname = format!("kharness-inode-{}", std::process::id());
    socket::bind(unix.as_raw_fd(), &UnixAddr::new_abstract(uname.as_bytes())?)?;
    socket::listen(&unix, socket::Backlog::new(1).expect("backlog"))?;
    let s_after = mib(s)?;
    let r_after = mib(r)?;

    let s_tcp = parse_inet(&net_file(s, "tcp")?);
    let r_tcp = parse_inet(&net_file(r, "tcp")?);
    let s_udp = parse_inet(&net_file(s, "udp")?);
    let r_udp = parse_inet(&net_file(r, "udp")?);
    let s_unix = parse_unix(&net_file(s, "unix")?);
    let r_unix = parse_unix(&net_file(r, "unix")?);
    let uid = nix::unistd::geteuid().as_raw();
    let lport = listener.local_addr()?.port();
    let cport = client.local_addr()?.port();
    let (srv_local, srv_peer) = (server.local_addr()?, server.peer_addr()?);
    let inet_sockets = [
        Expected {
            name: "tcp_listener",
            fd: listener.as_fd(),
            home: &r_tcp,
            others: vec![&s_tcp, &r_udp, &s_udp],
            local: format!("198.18.0.2:{lport}"),
            remote: "0.0.0.0:0".into(),
            st: "0A",
        },
        Expected {
            name: "tcp_accepted",
            fd: server.as_fd(),
            home: &r_tcp,
            others: vec![&s_tcp, &r_udp, &s_udp],
            local: srv_local.to_string(),
            remote: srv_peer.to_string(),
            st: "01",
        },
        Expected {
            name: "tcp_client",
            fd: client.as_fd(),
            home: &s_tcp,
            others: vec![&r_tcp, &r_udp, &s_udp],
            local: format!("198.18.0.1:{cport}"),
            remote: format!("198.18.0.2:{}", srv_local.port()),
            st: "01",
        },
        Expected {
            name: "udp",
            fd: udp.as_fd(),
            home: &r_udp,
            others: vec![&s_udp, &r_tcp, &s_tcp],
            local: udp.local_addr()?.to_string(),
            remote: "0.0.0.0:0".into(),
            st: "07",
        },
    ];
    for Expected {
        name,
        fd,
        home,
        others,
        local,
        remote,
        st,
    } in &inet_sockets
    {
        let ino = fd_inode(*fd);
        let st_ino = nix::sys::stat::fstat(*fd).ok().map(|s| s.st_ino);
        ctx.check_eq(
            format!("{name}.fd_link_inode_vs_fstat"),
            st_ino.map(|v| v as i64),
            ino.map(|v| v as i64),
            "/proc/PID/fd/N is 'socket:[st_ino]' (sockfs_dname)",
        );
        crate::volatile(ctx, &format!("{name}.fd_link_inode_vs_fstat"));
        let Some(ino) = ino else { continue };
        let hits: Vec<&InetLine> = home.iter().filter(|l| l.inode == ino).collect();
        ctx.check_eq(
            format!("{name}.lines_in_own_namespace"),
            1,
            hits.len() as i64,
            "one line per socket in the namespace's seq file",
        );
        let elsewhere: usize = others.iter().map(|o| o.iter().filter(|l| l.inode == ino).count()).sum();
        ctx.check_eq(
            format!("{name}.lines_elsewhere"),
            0,
            elsewhere as i64,
            "seq files list only the reader's namespace (and only their protocol)",
        );
        if let Some(l) = hits.first() {
            ctx.check_eq(
                format!("{name}.local"),
                local.clone(),
                l.local.clone(),
                "%08X:%04X of inet_rcv_saddr and the port",
            );
            ctx.check_eq(
                format!("{name}.remote"),
                remote.clone(),
                l.remote.clone(),
                "%08X:%04X of inet_daddr and the peer port",
            );
            crate::volatile(ctx, &format!("{name}.local"));
            crate::volatile(ctx, &format!("{name}.remote"));
            ctx.check_eq(
                format!("{name}.st"),
                *st,
                l.st.clone(),
                "sk_state in hex: 0A LISTEN, 01 ESTABLISHED, 07 CLOSE",
            );
            ctx.check_eq(
                format!("{name}.uid"),
                i64::from(uid),
                i64::from(l.uid),
                "sock_i_uid() as seen from the reader's user namespace",
            );
        }
    }
    // The unix socket.
    let ino = fd_inode(unix.as_fd());
    let st_ino = nix::sys::stat::fstat(unix.as_fd()).ok().map(|s| s.st_ino);
    ctx.check_eq(
        "unix.fd_link_inode_vs_fstat",
        st_ino.map(|v| v as i64),
        ino.map(|v| v as i64),
        "/proc/PID/fd/N is 'socket:[st_ino]'",
    );
    crate::volatile(ctx, "unix.fd_link_inode_vs_fstat");
    if let Some(ino) = ino {
        let hits: Vec<&UnixLine> = r_unix.iter().filter(|l| l.inode == ino).collect();
        ctx.check_eq(
            "unix.lines_in_own_namespace",
            1,
            hits.len() as i64,
            "unix sockets belong to the namespace they were created in",
        );
        ctx.check_eq(
            "unix.lines_elsewhere",
            0,
            s_unix.iter().filter(|l| l.inode == ino).count() as i64,
            "unix_seq_show() lists only the reader's namespace",
        );
        if let Some(l) = hits.first() {
            ctx.check_eq(
                "unix.path",
                format!("@{uname}"),
                l.path.clone(),
                "abstract names are printed with a leading '@'",
            );
            crate::volatile(ctx, "unix.path");
            ctx.check_eq("unix.type", "0001", l.ty.clone(), "SOCK_STREAM");
            ctx.check_eq("unix.flags", "00010000", l.flags.clone(), "__SO_ACCEPTCON: listening");
            ctx.check_eq("unix.st", "01", l.st.clone(), "SS_UNCONNECTED");
        }
    }
    let mut s_model = vec![
        ("Tcp.ActiveOpens", 1),
        ("Tcp.CurrEstab", 1),
        ("Tcp.OutSegs", 2),
        ("Tcp.InSegs", 1),
        ("Ip.InReceives", 1),
        ("Ip.InDelivers", 1),
    ];
    s_model.extend(ip_out(&s_before, 2));
    let mut r_model = vec![
        ("Tcp.PassiveOpens", 1),
        ("Tcp.CurrEstab", 1),
        ("Tcp.InSegs", 2),
        ("Tcp.OutSegs", 1),
        ("Ip.InReceives", 2),
        ("Ip.InDelivers", 2),
    ];
    r_model.extend(ip_out(&r_before, 1));
    check_mib(
        ctx,
        "sender",
        &s_before,
        &s_after,
        &s_model,
        QUIET,
        "the three-way handshake: SYN and ACK out, SYN-ACK in",
    );
    check_mib(
        ctx,
        "receiver",
        &r_before,
        &r_after,
        &r_model,
        QUIET,
        "the three-way handshake: SYN and ACK in, SYN-ACK out",
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_tcp() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 020012C6:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n";
        let l = parse_inet(t);
        assert_eq!(l.len(), 1);
        if cfg!(target_endian = "little") {
            assert_eq!(l[0].local, "198.18.0.2:8080");
        }
        assert_eq!(l[0].st, "0A");
        assert_eq!(l[0].inode, 12345);
    }

    #[test]
    fn parses_proc_net_unix() {
        let t = "Num       RefCount Protocol Flags    Type St Inode Path\n0000000000000000: 00000002 00000000 00010000 0001 01 4242 @kharness-x\n0000000000000000: 00000002 00000000 00000000 0002 01 4243\n";
        let l = parse_unix(t);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].path.as_deref(), Some("@kharness-x"));
        assert_eq!(l[0].flags, "00010000");
        assert_eq!(l[1].path, None);
    }
}
