//! The only place in kharness that says `unsafe`: small safe wrappers over the
//! libc calls that `nix` does not cover (raw `getsockopt` buffers whose length
//! the kernel chooses, the socket queue ioctls, `SO_MEMINFO`).
//!
//! Every wrapper returns `io::Result` and takes a borrowed fd, so a caller can
//! never pass a closed descriptor by accident. Each `unsafe` block carries a
//! `// SAFETY:` comment saying why the call is sound.

/// Packet-socket rings mapped with mmap, unmapped by a guard.
pub mod ring;

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `SIOCINQ` (== `FIONREAD`): bytes in the receive queue not yet read.
pub const SIOCINQ: libc::c_ulong = libc::FIONREAD;
/// `SIOCOUTQ` (== `TIOCOUTQ`): bytes in the send queue not yet acknowledged
/// (for TCP: `write_seq - snd_una`).
pub const SIOCOUTQ: libc::c_ulong = libc::TIOCOUTQ;
/// `SIOCOUTQNSD` (linux/sockios.h): bytes in the send queue not yet sent
/// (for TCP: `write_seq - snd_nxt`).
pub const SIOCOUTQNSD: libc::c_ulong = 0x894B;
/// Number of `u32` values `SO_MEMINFO` returns (`SK_MEMINFO_VARS`).
pub const SK_MEMINFO_VARS: usize = 9;

/// Reads an `int`-valued ioctl on a socket (`SIOCINQ`, `SIOCOUTQ`,
/// `SIOCOUTQNSD`, `SIOCATMARK`).
pub fn ioctl_int(fd: BorrowedFd<'_>, request: libc::c_ulong) -> io::Result<i32> {
    let mut value: libc::c_int = 0;
    // SAFETY: `fd` is a live descriptor for the borrow's lifetime; the requests
    // accepted here all write exactly one `int` through the pointer, which
    // points to a local `c_int`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, &mut value as *mut libc::c_int) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// `getsockopt` into a byte buffer of `cap` bytes; returns the bytes the
/// kernel wrote (its returned `optlen`, which may be shorter than `cap`).
///
/// This is how variable-generation structs such as `struct tcp_info` are read:
/// the returned length says which generation the kernel has.
pub fn getsockopt_bytes(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int, cap: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; cap];
    let mut len = cap as libc::socklen_t;
    // SAFETY: `buf` is a live allocation of `cap` bytes and `len` tells the
    // kernel so; the kernel writes at most `len` bytes and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            buf.as_mut_ptr().cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate((len as usize).min(cap));
    Ok(buf)
}

/// `getsockopt` of an `int` option.
pub fn getsockopt_int(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int) -> io::Result<i32> {
    let bytes = getsockopt_bytes(fd, level, name, size_of::<libc::c_int>())?;
    let mut raw = [0u8; 4];
    raw[..bytes.len().min(4)].copy_from_slice(&bytes[..bytes.len().min(4)]);
    Ok(i32::from_ne_bytes(raw))
}

/// `setsockopt` with an arbitrary byte value.
pub fn setsockopt_bytes(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int, value: &[u8]) -> io::Result<()> {
    // SAFETY: `value` is a live slice; the kernel reads at most `value.len()`
    // bytes from it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value.as_ptr().cast::<libc::c_void>(),
            value.len() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `setsockopt` of an `int` option.
pub fn setsockopt_int(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int, value: i32) -> io::Result<()> {
    setsockopt_bytes(fd, level, name, &value.to_ne_bytes())
}

/// `SO_MEMINFO`: the `SK_MEMINFO_*` vector (rmem_alloc, rcvbuf, wmem_alloc,
/// sndbuf, fwd_alloc, wmem_queued, optmem, backlog, drops). The kernel may
/// return fewer values than this build knows; missing ones are `None`.
pub fn so_meminfo(fd: BorrowedFd<'_>) -> io::Result<[Option<u32>; SK_MEMINFO_VARS]> {
    let bytes = getsockopt_bytes(fd, libc::SOL_SOCKET, libc::SO_MEMINFO, 4 * SK_MEMINFO_VARS)?;
    let mut out = [None; SK_MEMINFO_VARS];
    for (i, chunk) in bytes.chunks_exact(4).enumerate().take(SK_MEMINFO_VARS) {
        out[i] = Some(u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
    }
    Ok(out)
}

/// `socket(2)` returning an owned fd (always with `SOCK_CLOEXEC`).
pub fn socket(domain: libc::c_int, ty: libc::c_int, protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Writes `data` to a socket with `send(2)` flags; returns bytes written.
pub fn send(fd: BorrowedFd<'_>, data: &[u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: `data` is a live slice and the kernel reads at most its length.
    let rc = unsafe { libc::send(fd.as_raw_fd(), data.as_ptr().cast(), data.len(), flags) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// Reads into `buf` with `recv(2)` flags; returns bytes read (or, with
/// `MSG_TRUNC` on datagram sockets, the real length of the datagram).
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: `buf` is a live mutable slice and the kernel writes at most its
    // length.
    let rc = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// Whether `fd` is open in this process (`fcntl(F_GETFD)` succeeds).
pub fn fd_is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only inspects the descriptor table; an invalid fd gives
    // EBADF and no other effect.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Borrow helper so callers can pass anything that is `AsFd`.
pub fn borrow<F: AsFd>(f: &F) -> BorrowedFd<'_> {
    f.as_fd()
}

// ---- unix family ----

/// `KCMP_FILE` from `linux/kcmp.h` (the first `enum kcmp_type` value).
pub const KCMP_FILE: libc::c_int = 0;

/// `kcmp(getpid(), getpid(), KCMP_FILE, a, b)`: 0 when both descriptors
/// refer to the same open file description, 1 or 2 for an ordering of two
/// different ones, 3 when they cannot be ordered. `ENOSYS` without
/// `CONFIG_KCMP`.
pub fn kcmp_file(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> io::Result<i32> {
    kcmp_file_in(std::process::id(), a, b)
}

/// [`kcmp_file`] for descriptors of process `pid`, which the caller looked
/// up once: a loop comparing thousands of descriptors then makes one system
/// call each, not two (`getpid` is not cached by the C library).
pub fn kcmp_file_in(pid: u32, a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> io::Result<i32> {
    let pid = pid as libc::pid_t;
    // SAFETY: kcmp takes only integers (two pids, a type, two fds) and reads
    // no memory of ours; both fds are live for the borrows' lifetimes.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid as libc::c_long,
            pid as libc::c_long,
            KCMP_FILE as libc::c_long,
            a.as_raw_fd() as libc::c_long,
            b.as_raw_fd() as libc::c_long,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as i32)
}

/// What one [`recvmsg_scm`] returned.
#[derive(Debug)]
pub struct ScmRecv {
    /// Bytes of data (`recvmsg`'s return value).
    pub bytes: usize,
    /// `msg_flags` as the kernel left them (`MSG_CTRUNC`, `MSG_TRUNC`…).
    pub flags: libc::c_int,
    /// Every descriptor of every `SCM_RIGHTS` message, in order, owned.
    pub fds: Vec<OwnedFd>,
    /// Every `SCM_CREDENTIALS` message that arrived whole.
    pub creds: Vec<libc::ucred>,
    /// `(cmsg_level, cmsg_type, cmsg_len)` of every control message seen,
    /// `cmsg_len` as the kernel wrote it (header included).
    pub cmsgs: Vec<(libc::c_int, libc::c_int, usize)>,
    /// `msg_controllen` on return: control bytes the kernel wrote.
    pub control_len: usize,
    /// `msg_namelen` on return (0 when the sender had no address).
    pub name_len: usize,
    /// The first `min(name_len, 128)` bytes of the sender's address.
    pub name: Vec<u8>,
}

/// `recvmsg(2)` with a control buffer of exactly `control_cap` bytes (none
/// when 0) and a 128-byte name buffer, always adding `MSG_CMSG_CLOEXEC`.
///
/// Unlike `nix::sys::socket::recvmsg`, control messages are decoded even
/// when the kernel set `MSG_CTRUNC`: with SCM_RIGHTS the descriptors that fit
/// were installed in our table and must be owned (and closed) by someone,
/// which is the point of a case that truncates on purpose.
pub fn recvmsg_scm(fd: BorrowedFd<'_>, buf: &mut [u8], control_cap: usize, flags: libc::c_int) -> io::Result<ScmRecv> {
    // u64 elements keep the control buffer aligned for `struct cmsghdr`.
    let mut control = vec![0u64; control_cap.div_ceil(8)];
    let mut name = [0u8; 128];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `msghdr` is plain data; all-zero is a valid value (null
    // pointers, zero lengths), and the fields we need are set below.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_name = name.as_mut_ptr().cast();
    mh.msg_namelen = name.len() as libc::socklen_t;
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    if control_cap > 0 {
        mh.msg_control = control.as_mut_ptr().cast();
        mh.msg_controllen = control_cap as _;
    }
    // SAFETY: every pointer in `mh` points to a live local buffer of the
    // length stated next to it (`buf` through `iov`, `name`, `control` of at
    // least `control_cap` bytes); the kernel writes at most those lengths.
    let rc = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut mh, flags | libc::MSG_CMSG_CLOEXEC) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let control_len = (mh.msg_controllen as usize).min(control_cap);
    let bytes: Vec<u8> = control.iter().flat_map(|w| w.to_ne_bytes()).take(control_len).collect();
    let name_len = mh.msg_namelen as usize;
    let mut out = ScmRecv {
        bytes: rc as usize,
        flags: mh.msg_flags,
        fds: Vec::new(),
        creds: Vec::new(),
        cmsgs: Vec::new(),
        control_len,
        name_len,
        name: name[..name_len.min(name.len())].to_vec(),
    };
    // Walk the control messages by hand (the layout of `struct cmsghdr`:
    // size_t len, int level, int type, data aligned to size_t), never past
    // what the kernel said it wrote.
    let word = size_of::<usize>();
    let align = |n: usize| (n + word - 1) & !(word - 1);
    let hdr = align(size_of::<libc::cmsghdr>());
    let mut off = 0;
    while off + hdr <= bytes.len() {
        let mut len_raw = [0u8; size_of::<usize>()];
        len_raw.copy_from_slice(&bytes[off..off + word]);
        let cmsg_len = usize::from_ne_bytes(len_raw);
        let int_at = |o: usize| libc::c_int::from_ne_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let level = int_at(off + word);
        let ty = int_at(off + word + 4);
        if cmsg_len < hdr {
            break;
        }
        let end = off.saturating_add(cmsg_len).min(bytes.len());
        let data = &bytes[off + hdr..end];
        out.cmsgs.push((level, ty, cmsg_len));
        if level == libc::SOL_SOCKET && ty == libc::SCM_RIGHTS {
            for chunk in data.chunks_exact(4) {
                let raw = libc::c_int::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                if raw >= 0 {
                    // SAFETY: the kernel installed this descriptor in our
                    // table during this recvmsg (scm_detach_fds) and wrote
                    // its number here; nothing else in the process knows it
                    // yet, so taking ownership is sound.
                    out.fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                }
            }
        } else if level == libc::SOL_SOCKET && ty == libc::SCM_CREDENTIALS && data.len() >= size_of::<libc::ucred>() {
            let u = |i: usize| u32::from_ne_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
            out.creds.push(libc::ucred {
                pid: u(0) as libc::pid_t,
                uid: u(4),
                gid: u(8),
            });
        }
        if end == bytes.len() {
            break;
        }
        off += align(cmsg_len);
    }
    Ok(out)
}

// ---- raw family ----

/// A `struct sockaddr_ll` as nix's [`nix::sys::socket::LinkAddr`], for
/// `bind(2)` and `sendto(2)` on packet sockets: `ifindex`, `protocol` (an
/// `ETH_P_*` value in host order; stored in network order as the kernel
/// expects) and the 6-byte hardware address (the destination, for sendto;
/// ignored by bind). nix has no safe constructor for it.
pub fn link_addr(ifindex: i32, protocol: u16, mac: [u8; 6]) -> nix::sys::socket::LinkAddr {
    use nix::sys::socket::SockaddrLike;
    // SAFETY: `sockaddr_ll` is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&mac);
    let len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: the pointer is to a live, fully initialised `sockaddr_ll` of
    // exactly `len` bytes whose family is AF_PACKET, which is what
    // `LinkAddr::from_raw` reads (it copies the struct out).
    unsafe { nix::sys::socket::LinkAddr::from_raw((&sll as *const libc::sockaddr_ll).cast(), Some(len)) }
        .expect("a sockaddr_ll with AF_PACKET is a LinkAddr")
}

// ---- process lifetime ----

/// Makes a child started from `cmd` die (SIGKILL) when the thread that
/// spawns it dies, runner killed with SIGKILL included
/// (`PR_SET_PDEATHSIG`). If the parent is already gone by the time the child
/// runs, the exec fails instead. Use it for every long-lived helper process
/// (QEMU, a nested kharness) that the process-group kill does not reach.
pub fn die_with_parent(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the child between fork and exec; it calls
    // only prctl(2) and getppid(2), both async-signal-safe, touches no lock
    // and allocates nothing on success (an error allocates only to fail).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        })
    }
}

/// Reaps child `pid` (blocking) and returns its exit status and the CPU
/// time, user + system, that it and the descendants it reaped used, in
/// milliseconds: `wait4(2)`. Hand-written: neither std's `Child::wait` nor
/// nix's `waitpid` returns the child's own `rusage`, and
/// `getrusage(RUSAGE_CHILDREN)` sums every child of the process, which the
/// runner's concurrent cases would mix up.
pub fn wait4(pid: i32) -> io::Result<(std::process::ExitStatus, u64)> {
    use std::os::unix::process::ExitStatusExt;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data, valid zeroed.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: status and usage are valid for writes for the call.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if r < 0 && e.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return Err(e);
    }
    let ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
    Ok((
        std::process::ExitStatus::from_raw(status),
        ms(usage.ru_utime) + ms(usage.ru_stime),
    ))
}
