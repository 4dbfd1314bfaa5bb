//! unix.abstract, unix.eprototype, unix.dgram_no_autobind: addresses.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::time::Duration;

use kharness::sys::recvmsg_scm;
use kharness::{CaseDef, CaseError, Ctx, Expect, NetNs};
use nix::sys::socket::{self, sockopt, Backlog, MsgFlags, SockType, SockaddrIn, SockaddrLike, UnixAddr};

use super::diag::NETLINK_SOCK_DIAG;
use super::procnet::NsView;
use super::{abstract_addr, guarded, outcome, unix_socket};

/// unix.abstract
pub static ABSTRACT: CaseDef = CaseDef {
    id: "unix.abstract",
    variants: &[],
    summary: "an abstract address (leading NUL) creates no file, is shown with '@', and lives in the network namespace",
    drives: "In a fresh network namespace, inside an empty temporary directory D: a stream listener bound to \
        the abstract name \"\\0D/sock\" (the path, as an abstract name) and, for contrast, one bound to the \
        pathname D/path.sock. Then a connect() to the abstract name from inside the namespace and from the \
        case's own namespace; both listeners are closed and the abstract name is tried again.",
    observes: "The entries of D; the file type of D/path.sock; getsockname(); /proc/thread-self/net/unix and \
        UNIX_DIAG (UNIX_DIAG_NAME, UNIX_DIAG_VFS) of the namespace; sockstat; connect()'s errno.",
    predicts: "D holds only path.sock, a socket file; the abstract listener has no file (no UNIX_DIAG_VFS), its \
        address length is 2 + 1 + len(name), and both /proc/net/unix and UNIX_DIAG show its name as \
        '@D/sock' (the raw UNIX_DIAG_NAME starts with a NUL); the pathname one is shown as D/path.sock with \
        UNIX_DIAG_VFS = the file's inode; both views list the same 2 sockets and sockstat +2; connect() works \
        inside the namespace and is ECONNREFUSED from another one; after close() the abstract name is gone \
        (ECONNREFUSED) while the socket file stays until unlinked.",
    why: "unix(7): an abstract address has sun_path[0] = '\\0'; it \"has no connection with filesystem \
        pathnames\" and vanishes when the last reference closes. unix_bind_abstract() only hashes the name \
        (net/unix/af_unix.c), unix_bind_bsd() creates the inode with mknod. unix_seq_show() prints a NUL as \
        '@'; sk_diag_dump_name() puts the raw sun_path bytes and sk_diag_dump_vfs() only exists for a \
        socket with a path. unix_find_abstract() looks the name up in sock_net(sk): abstract names are per \
        network namespace.",
    kernels: "Unchanged since 2.6 (per-namespace abstract names since network namespaces, 2.6.24+). UNIX_DIAG \
        since 3.3.",
    shell: "ip netns exec NS ss -xl; ip netns exec NS cat /proc/net/unix; ls -l D",
    source: "seed 004",
    timeout: Duration::from_secs(10),
    run: run_abstract,
};

/// unix.eprototype
pub static EPROTOTYPE: CaseDef = CaseDef {
    id: "unix.eprototype",
    variants: &[],
    summary:
        "connecting to a pathname AF_UNIX socket of another type is EPROTOTYPE; abstract names are per type instead",
    drives: "In a private temporary directory D: a SOCK_STREAM listener at D/stream, a SOCK_DGRAM socket at \
        D/dgram, a SOCK_SEQPACKET listener at D/seqpacket. connect() from a SOCK_DGRAM socket to the stream \
        listener (the catalog's case), from a stream socket to the datagram socket, from a seqpacket socket \
        to the stream listener, sendto() from a datagram socket to the stream listener, and same-type \
        connects as controls. Then the abstract equivalent: a stream listener on an abstract name, a \
        datagram connect() to that name, a datagram bind() to the same name, and both connects again. D is \
        removed at the end.",
    observes: "connect()'s, sendto()'s and bind()'s errno.",
    predicts: "Pathnames: EPROTOTYPE for every type mismatch, success for the same-type controls. Abstract \
        names: the datagram connect() to a name only a stream socket holds is ECONNREFUSED (not \
        EPROTOTYPE); a datagram socket can bind the very same name while the stream listener holds it, after \
        which a datagram connect() and a stream connect() to that name both succeed, each reaching its own \
        type.",
    why: "unix_find_other() (net/unix/af_unix.c) resolves a pathname with unix_find_bsd(): it finds the \
        socket by inode and returns -EPROTOTYPE when sk_type differs (seed 004: \"connect: Protocol wrong \
        type for socket\", see unix_find_other()). An abstract name goes to unix_find_abstract(), whose hash \
        unix_abstract_hash(sunaddr, len, type) mixes in the caller's type: a socket of another type is not \
        found at all, so the answer is -ECONNREFUSED, and unix_bind_abstract() checks for a duplicate only \
        among sockets of its own type.",
    kernels: "Unchanged since 2.6: the abstract hash has always been XORed with sk_type \
        (unix_socket_table[hash ^ type] before the per-netns hash-table rework around 5.17).",
    shell: "socat UNIX-LISTEN:D/stream - & socat - UNIX-SENDTO:D/stream  (Protocol wrong type for socket)",
    source: "seed 004",
    timeout: Duration::from_secs(10),
    run: run_eprototype,
};

/// unix.dgram_no_autobind
pub static DGRAM_NO_AUTOBIND: CaseDef = CaseDef {
    id: "unix.dgram_no_autobind",
    variants: &[],
    summary: "an unbound AF_UNIX datagram sender stays unnamed, so the receiver cannot reply; UDP autobinds",
    drives: "In a fresh network namespace: an unbound SOCK_DGRAM sender sendto()s a receiver bound to an \
        abstract name; the receiver tries to answer. Contrasts: the same with SO_PASSCRED set on the sender; \
        and UDP on 127.0.0.1 of the namespace, unbound sender to bound receiver, which answers to the address \
        it got.",
    observes: "recvmsg()'s msg_namelen and address; getsockname() of the sender before and after; the reply's \
        errno; /proc/thread-self/net/unix and UNIX_DIAG_NAME of the sender.",
    predicts: "AF_UNIX: msg_namelen 0 (no address at all), the sender's getsockname() length stays \
        sizeof(sa_family_t) = 2, no name in either view, and the receiver's reply fails with ENOTCONN. With \
        SO_PASSCRED the sender is autobound: an abstract name of 5 hex digits (address length 8), seen by the \
        receiver, which can reply. UDP: the sender has port 0 before and a port after sendto(), the receiver \
        sees that address (length 16) and its reply arrives.",
    why: "unix_dgram_sendmsg() (net/unix/af_unix.c) calls unix_autobind() only when the sender asked for \
        credentials (SO_PASSCRED/SO_PASSPIDFD); otherwise the skb's socket has no unix_address and \
        unix_copy_addr() leaves msg_namelen at the 0 that ____sys_recvmsg() set. A reply without an address \
        on an unconnected socket is -ENOTCONN. UDP: inet_send_prepare() -> inet_autobind() picks an \
        ephemeral port (udp(7)). Seed 004: \"the receiver cannot reply (because it does not know to who)\".",
    kernels: "Unchanged since 2.6; unix(7) says an unnamed address has length sizeof(sa_family_t), which is \
        what getsockname() returns — recvfrom() from an unnamed sender returns 0. Around 6.16 the autobind \
        test became unix_may_passcred(), with the same meaning.",
    shell: "ip netns exec NS ss -xa (the sender has no address: '*'); ip netns exec NS ss -ua",
    source: "seed 004",
    timeout: Duration::from_secs(10),
    run: run_dgram_no_autobind,
};

/// `bind()` + `listen()` on `addr` (pathname or abstract).
fn listen_at(ty: SockType, addr: &UnixAddr) -> io::Result<OwnedFd> {
    let s = unix_socket(ty)?;
    socket::bind(s.as_raw_fd(), addr)?;
    socket::listen(&s, Backlog::new(4).expect("backlog"))?;
    Ok(s)
}

/// `connect()` from a new socket of `ty`.
fn connect_from(ty: SockType, addr: &UnixAddr) -> io::Result<OwnedFd> {
    let s = unix_socket(ty)?;
    socket::connect(s.as_raw_fd(), addr)?;
    Ok(s)
}

/// A datagram from `fd`, polled for (loopback delivery runs in softirq
/// context and may lag the sendto() that queued it).
fn recv_polled(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<kharness::sys::ScmRecv> {
    let r = kharness::wait::wait_for(
        "a datagram on the loopback",
        Duration::from_secs(2),
        || match recvmsg_scm(fd.as_fd(), buf, 0, libc::MSG_DONTWAIT) {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => None,
            other => Some(other),
        },
    );
    // Still nothing at the deadline: report it as the EAGAIN it is.
    r.unwrap_or_else(|_| Err(io::Error::from_raw_os_error(libc::EAGAIN)))
}

fn inode(fd: &OwnedFd) -> io::Result<u64> {
    Ok(nix::sys::stat::fstat(fd)?.st_ino)
}

fn run_abstract(ctx: &mut Ctx) -> Result<(), CaseError> {
    // Volatile for `report diff`: the socket paths carry this run's pid.
    ctx.mark_volatile("abstract.proc_net_unix.path");
    ctx.mark_volatile("abstract.unix_diag.name");
    ctx.mark_volatile("abstract.getsockname_name");
    ctx.mark_volatile("pathname.proc_net_unix.path");
    ctx.mark_volatile("pathname.unix_diag.name");
    guarded(ctx, |ctx| {
        let dir = std::env::temp_dir().join(format!("kharness-unix-abstract-{}", std::process::id()));
        std::fs::create_dir(&dir)?;
        let r = abstract_in(ctx, &dir);
        let _ = std::fs::remove_file(dir.join("path.sock"));
        let _ = std::fs::remove_dir(&dir);
        r
    })
}

fn abstract_in(ctx: &mut Ctx, dir: &std::path::Path) -> Result<(), CaseError> {
    let name = format!("{}/sock", dir.display());
    let path = dir.join("path.sock");
    let abs = UnixAddr::new_abstract(name.as_bytes())?;
    let pathaddr = UnixAddr::new(&path)?;
    let ns = NetNs::new("unix-abstract")?;
    let diag = ns.netlink(NETLINK_SOCK_DIAG)?;
    let used0 = NsView::read(&ns, &diag)?.sockets_used;
    let (la, lp) = ns.run(|| -> io::Result<_> {
        Ok((
            listen_at(SockType::Stream, &abs)?,
            listen_at(SockType::Stream, &pathaddr)?,
        ))
    })??;

    // The filesystem: only the pathname socket exists.
    let mut entries: Vec<String> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    ctx.check_eq(
        "fs.entries",
        serde_json::json!(["path.sock"]),
        serde_json::json!(entries),
        "unix_bind_abstract() creates no inode; unix_bind_bsd() mknods the path",
    );
    let ft = std::fs::symlink_metadata(&path)?.file_type();
    ctx.check_eq(
        "fs.path_sock_is_socket",
        true,
        ft.is_socket(),
        "unix_bind_bsd(): an S_IFSOCK inode",
    );

    let local: UnixAddr = socket::getsockname(la.as_raw_fd())?;
    ctx.check_eq(
        "abstract.getsockname_len",
        (2 + 1 + name.len()) as u64,
        u64::from(local.len()),
        "an abstract address counts sun_family, the NUL and the name, no terminator (unix(7))",
    );
    crate::volatile(ctx, "abstract.getsockname_len");
    ctx.check_eq(
        "abstract.getsockname_name",
        name.clone(),
        local
            .as_abstract()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default(),
        "getsockname() returns the abstract name as bound",
    );
    crate::volatile(ctx, "abstract.getsockname_name");

    let (ino_a, ino_p) = (inode(&la)?, inode(&lp)?);
    let v = NsView::read(&ns, &diag)?;
    v.check_counts(
        ctx,
        "bound",
        2,
        used0.map(|u| u + 2),
        "two listeners in a fresh namespace",
    );
    let shown = format!("@{name}");
    ctx.check_eq(
        "abstract.proc_net_unix.path",
        shown.clone(),
        serde_json::json!(v.proc_of(ino_a).and_then(|p| p.path.clone())),
        "unix_seq_show() prints the leading NUL as '@'",
    );
    crate::volatile(ctx, "abstract.proc_net_unix.path");
    ctx.check_eq(
        "abstract.proc_net_unix.flags",
        0x10000,
        serde_json::json!(v.proc_of(ino_a).map(|p| p.flags)),
        "__SO_ACCEPTCON: listening",
    );
    let d = v.diag_of(ino_a);
    ctx.check_eq(
        "abstract.unix_diag.name",
        shown,
        serde_json::json!(d.and_then(|d| d.display_name())),
        "sk_diag_dump_name(): sun_path as bound; ss -x shows the NUL as '@'",
    );
    crate::volatile(ctx, "abstract.unix_diag.name");
    ctx.check_eq(
        "abstract.unix_diag.name_first_byte",
        0,
        serde_json::json!(d.and_then(|d| d.name.as_ref().and_then(|n| n.first().copied()))),
        "the raw UNIX_DIAG_NAME of an abstract socket starts with NUL",
    );
    ctx.check(
        "abstract.unix_diag.vfs",
        Expect::Absent,
        serde_json::json!(d.and_then(|d| d.vfs).map(|(i, _)| i)),
        "sk_diag_dump_vfs(): no dentry, no UNIX_DIAG_VFS",
    );
    let path_s = path.display().to_string();
    ctx.check_eq(
        "pathname.proc_net_unix.path",
        path_s.clone(),
        serde_json::json!(v.proc_of(ino_p).and_then(|p| p.path.clone())),
        "unix_seq_show() prints the path",
    );
    crate::volatile(ctx, "pathname.proc_net_unix.path");
    let dp = v.diag_of(ino_p);
    ctx.check_eq(
        "pathname.unix_diag.name",
        path_s.clone(),
        serde_json::json!(dp.and_then(|d| d.display_name())),
        "sk_diag_dump_name(): the path as bound",
    );
    crate::volatile(ctx, "pathname.unix_diag.name");
    ctx.check_eq(
        "pathname.unix_diag.name_len",
        (path_s.len() + 1) as u64,
        serde_json::json!(dp.and_then(|d| d.name.as_ref().map(|n| n.len()))),
        "unix_mkname_bsd() keeps the terminating NUL in the address; UNIX_DIAG_NAME carries it, /proc/net/unix drops it",
    );
    crate::volatile(ctx, "pathname.unix_diag.name_len");
    ctx.check_eq(
        "abstract.unix_diag.name_len",
        (1 + name.len()) as u64,
        serde_json::json!(d.and_then(|d| d.name.as_ref().map(|n| n.len()))),
        "an abstract name is exactly the bound bytes: NUL + name, no terminator",
    );
    crate::volatile(ctx, "abstract.unix_diag.name_len");
    let file_ino = std::os::unix::fs::MetadataExt::ino(&std::fs::symlink_metadata(&path)?);
    ctx.check_eq(
        "pathname.unix_diag.vfs_ino",
        file_ino,
        serde_json::json!(dp.and_then(|d| d.vfs).map(|(i, _)| u64::from(i))),
        "sk_diag_dump_vfs(): the inode of the socket file",
    );

    // Reachable by name inside the namespace only.
    let inside = ns.run(|| connect_from(SockType::Stream, &abs))?;
    ctx.check_eq(
        "connect.inside_namespace",
        "ok",
        outcome(&inside),
        "unix_find_abstract() in sock_net(sk)",
    );
    drop(inside);
    let outside = connect_from(SockType::Stream, &abs);
    ctx.check_eq(
        "connect.other_namespace",
        "ECONNREFUSED",
        outcome(&outside),
        "abstract names are per network namespace: none bound here",
    );

    drop(la);
    drop(lp);
    let gone = ns.run(|| connect_from(SockType::Stream, &abs))?;
    ctx.check_eq(
        "after_close.connect_abstract",
        "ECONNREFUSED",
        outcome(&gone),
        "an abstract name disappears with its socket (unix(7))",
    );
    ctx.check_eq(
        "after_close.path_sock_exists",
        true,
        path.exists(),
        "a socket file outlives its socket until unlink() (unix(7))",
    );
    Ok(())
}

fn run_eprototype(ctx: &mut Ctx) -> Result<(), CaseError> {
    guarded(ctx, |ctx| {
        let dir = std::env::temp_dir().join(format!("kharness-unix-eprototype-{}", std::process::id()));
        std::fs::create_dir(&dir)?;
        let r = eprototype_in(ctx, &dir);
        for f in ["stream", "dgram", "seqpacket"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let _ = std::fs::remove_dir(&dir);
        r
    })
}

fn eprototype_in(ctx: &mut Ctx, dir: &std::path::Path) -> Result<(), CaseError> {
    let stream_addr = UnixAddr::new(&dir.join("stream"))?;
    let dgram_addr = UnixAddr::new(&dir.join("dgram"))?;
    let seq_addr = UnixAddr::new(&dir.join("seqpacket"))?;
    let _stream = listen_at(SockType::Stream, &stream_addr)?;
    let _seq = listen_at(SockType::SeqPacket, &seq_addr)?;
    let dgram = unix_socket(SockType::Datagram)?;
    socket::bind(dgram.as_raw_fd(), &dgram_addr)?;
    let src = "unix_find_bsd(): sk->sk_type != type -> -EPROTOTYPE";
    let cases: [(&str, SockType, &UnixAddr, &str); 5] = [
        (
            "path.connect.dgram_to_stream",
            SockType::Datagram,
            &stream_addr,
            "EPROTOTYPE",
        ),
        (
            "path.connect.stream_to_dgram",
            SockType::Stream,
            &dgram_addr,
            "EPROTOTYPE",
        ),
        (
            "path.connect.seqpacket_to_stream",
            SockType::SeqPacket,
            &stream_addr,
            "EPROTOTYPE",
        ),
        ("path.connect.stream_to_stream", SockType::Stream, &stream_addr, "ok"),
        ("path.connect.dgram_to_dgram", SockType::Datagram, &dgram_addr, "ok"),
    ];
    for (label, ty, addr, want) in cases {
        let r = connect_from(ty, addr);
        ctx.check_eq(label, want, outcome(&r), src);
    }
    let s = unix_socket(SockType::Datagram)?;
    let r = socket::sendto(s.as_raw_fd(), b"x", &stream_addr, MsgFlags::MSG_DONTWAIT).map_err(io::Error::from);
    ctx.check_eq("path.sendto.dgram_to_stream", "EPROTOTYPE", outcome(&r), src);

    // Abstract names: looked up by (name, type).
    let (abs, _) = abstract_addr("eprototype")?;
    let _abs_stream = listen_at(SockType::Stream, &abs)?;
    let src_abs =
        "unix_find_abstract(): unix_abstract_hash() includes the type; no socket of this type -> -ECONNREFUSED";
    let r = connect_from(SockType::Datagram, &abs);
    ctx.check_eq(
        "abstract.connect.dgram_to_stream_only",
        "ECONNREFUSED",
        outcome(&r),
        src_abs,
    );
    let abs_dgram = unix_socket(SockType::Datagram)?;
    let r = socket::bind(abs_dgram.as_raw_fd(), &abs).map_err(io::Error::from);
    ctx.check_eq(
        "abstract.bind_same_name_other_type",
        "ok",
        outcome(&r),
        "unix_bind_abstract(): the name is taken only among sockets of the same type",
    );
    let r = connect_from(SockType::Datagram, &abs);
    ctx.check_eq("abstract.connect.dgram_after_dgram_bind", "ok", outcome(&r), src_abs);
    let r = connect_from(SockType::Stream, &abs);
    ctx.check_eq("abstract.connect.stream_still", "ok", outcome(&r), src_abs);
    Ok(())
}

fn run_dgram_no_autobind(ctx: &mut Ctx) -> Result<(), CaseError> {
    // Volatile for `report diff`: autobind names and UDP ports are allocated per run.
    ctx.mark_volatile("udp.recvfrom_port");
    ctx.mark_volatile("udp.sender.port_after");
    ctx.mark_volatile("passcred.sender.name");
    guarded(ctx, |ctx| {
        let ns = NetNs::new("unix-autobind")?;
        let diag = ns.netlink(NETLINK_SOCK_DIAG)?;
        let (raddr, _) = abstract_addr("dgram.receiver")?;
        let (recv, sender, sender_pc) = ns.run(|| -> io::Result<_> {
            let r = unix_socket(SockType::Datagram)?;
            socket::bind(r.as_raw_fd(), &raddr)?;
            Ok((r, unix_socket(SockType::Datagram)?, unix_socket(SockType::Datagram)?))
        })??;
        let name_len =
            |fd: &OwnedFd| -> io::Result<u64> { Ok(u64::from(socket::getsockname::<UnixAddr>(fd.as_raw_fd())?.len())) };
        let unnamed = std::mem::size_of::<libc::sa_family_t>() as u64;
        ctx.check_eq(
            "unix.sender.getsockname_len_before",
            unnamed,
            name_len(&sender)?,
            "unnamed: sizeof(sa_family_t) (unix(7))",
        );
        let sent = socket::sendto(sender.as_raw_fd(), b"hi", &raddr, MsgFlags::MSG_DONTWAIT).map_err(io::Error::from);
        ctx.check_eq(
            "unix.sendto",
            "ok",
            outcome(&sent),
            "a datagram needs no sender address",
        );
        let mut buf = [0u8; 16];
        let got = recvmsg_scm(recv.as_fd(), &mut buf, 0, libc::MSG_DONTWAIT)?;
        ctx.check_eq("unix.received_bytes", 2, got.bytes as u64, "the datagram arrives");
        ctx.check_eq(
            "unix.recvfrom_namelen",
            0,
            got.name_len as u64,
            "unix_copy_addr() copies nothing for an unbound sender; ____sys_recvmsg() set msg_namelen = 0",
        );
        ctx.check_eq(
            "unix.sender.getsockname_len_after",
            unnamed,
            name_len(&sender)?,
            "unix_dgram_sendmsg() does not autobind without SO_PASSCRED",
        );
        let ino_s = inode(&sender)?;
        let v = NsView::read(&ns, &diag)?;
        ctx.check(
            "unix.sender.proc_net_unix.path",
            Expect::Absent,
            serde_json::json!(v.proc_of(ino_s).and_then(|p| p.path.clone())),
            "no address, no Path column",
        );
        ctx.check_eq(
            "unix.sender.listed",
            true,
            v.proc_of(ino_s).is_some() && v.diag_of(ino_s).is_some(),
            "the socket exists",
        );
        ctx.check(
            "unix.sender.unix_diag.name",
            Expect::Absent,
            serde_json::json!(v.diag_of(ino_s).and_then(|d| d.display_name())),
            "sk_diag_dump_name(): no unix_address, no UNIX_DIAG_NAME",
        );
        let reply = kharness::sys::send(recv.as_fd(), b"re", libc::MSG_DONTWAIT);
        ctx.check_eq(
            "unix.reply",
            "ENOTCONN",
            outcome(&reply),
            "unix_dgram_sendmsg() with no address and no peer: -ENOTCONN",
        );

        // Contrast 1: SO_PASSCRED on the sender makes it autobind.
        socket::setsockopt(&sender_pc, sockopt::PassCred, &true)?;
        socket::sendto(sender_pc.as_raw_fd(), b"pc", &raddr, MsgFlags::MSG_DONTWAIT)?;
        let got = recvmsg_scm(recv.as_fd(), &mut buf, 0, libc::MSG_DONTWAIT)?;
        let auto: UnixAddr = socket::getsockname(sender_pc.as_raw_fd())?;
        let auto_name = auto.as_abstract().map(|n| String::from_utf8_lossy(n).into_owned());
        ctx.observe_volatile("passcred.sender.name", auto_name.clone());
        ctx.check_eq(
            "passcred.sender.getsockname_len",
            8,
            u64::from(auto.len()),
            "unix_autobind(): offsetof(sun_path) + 1 + 5",
        );
        ctx.check_eq(
            "passcred.sender.name_is_5_hex_digits",
            true,
            auto_name
                .as_ref()
                .is_some_and(|n| n.len() == 5 && n.bytes().all(|b| b.is_ascii_hexdigit())),
            "unix_autobind(): \"\\0%05x\"",
        );
        ctx.check_eq(
            "passcred.recvfrom_namelen",
            8,
            got.name_len as u64,
            "unix_copy_addr(): the autobound address",
        );
        let back = socket::sendto(recv.as_raw_fd(), b"ok", &auto, MsgFlags::MSG_DONTWAIT).map_err(io::Error::from);
        ctx.check_eq(
            "passcred.reply",
            "ok",
            outcome(&back),
            "the receiver can answer a named sender",
        );
        let answered = kharness::sys::recv(sender_pc.as_fd(), &mut buf, libc::MSG_DONTWAIT);
        ctx.check_eq(
            "passcred.reply_received",
            "ok",
            outcome(&answered),
            "the answer arrives",
        );

        // Contrast 2: UDP autobinds on sendto().
        let udp = || -> io::Result<OwnedFd> { ns.socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
        let (urecv, usend) = (udp()?, udp()?);
        socket::bind(urecv.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0))?;
        let rport = socket::getsockname::<SockaddrIn>(urecv.as_raw_fd())?.port();
        let before = socket::getsockname::<SockaddrIn>(usend.as_raw_fd())?.port();
        ctx.check_eq("udp.sender.port_before", 0, before, "an unbound UDP socket has port 0");
        socket::sendto(
            usend.as_raw_fd(),
            b"hi",
            &SockaddrIn::new(127, 0, 0, 1, rport),
            MsgFlags::MSG_DONTWAIT,
        )?;
        let after = socket::getsockname::<SockaddrIn>(usend.as_raw_fd())?.port();
        ctx.check(
            "udp.sender.port_after",
            Expect::Gt(0),
            after,
            "inet_send_prepare() -> inet_autobind()",
        );
        crate::volatile(ctx, "udp.sender.port_after");
        let got = recv_polled(&urecv, &mut buf)?;
        ctx.check_eq(
            "udp.recvfrom_namelen",
            std::mem::size_of::<libc::sockaddr_in>() as u64,
            got.name_len as u64,
            "udp_recvmsg() fills a sockaddr_in",
        );
        let from_port = (got.name.len() >= 4).then(|| u16::from_be_bytes([got.name[2], got.name[3]]));
        ctx.check_eq(
            "udp.recvfrom_port",
            after,
            serde_json::json!(from_port),
            "the sender's autobound port",
        );
        crate::volatile(ctx, "udp.recvfrom_port");
        let back = socket::sendto(
            urecv.as_raw_fd(),
            b"ok",
            &SockaddrIn::new(127, 0, 0, 1, after),
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from);
        ctx.check_eq("udp.reply", "ok", outcome(&back), "the receiver can answer");
        let answered = recv_polled(&usend, &mut buf);
        ctx.check_eq(
            "udp.reply_received",
            "ok",
            outcome(&answered),
            "the answer reaches the autobound port",
        );
        Ok(())
    })
}
