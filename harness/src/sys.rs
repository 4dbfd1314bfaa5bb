//! The only place in kharness that says `unsafe`: small safe wrappers over the
//! libc calls that `nix` does not cover (raw `getsockopt` buffers whose length
//! the kernel chooses, the socket queue ioctls, `SO_MEMINFO`).
//!
//! Every wrapper returns `io::Result` and takes a borrowed fd, so a caller can
//! never pass a closed descriptor by accident. Each `unsafe` block carries a
//! `// SAFETY:` comment saying why the call is sound.

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
pub fn getsockopt_bytes(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    cap: usize,
) -> io::Result<Vec<u8>> {
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
pub fn setsockopt_bytes(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &[u8],
) -> io::Result<()> {
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
pub fn setsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: i32,
) -> io::Result<()> {
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
