//! Unix domain sockets (catalog section 2, seed 004).
//!
//! What every case here shares:
//!
//! * **The fd table is part of the verdict.** Each case runs inside
//!   [`guarded`], which lists `/proc/self/fd` before and after and checks
//!   that nothing was left open (`fd_table.*` in every report). Passing
//!   descriptors is the one socket feature that creates descriptors behind
//!   the caller's back, so a leak is a real failure mode, not hygiene.
//! * **Two kernel views, cross-checked.** Cases that count sockets run in a
//!   fresh [`NetNs`](kharness::NetNs) (AF_UNIX sockets, abstract names and
//!   both views are per network namespace) and read both `UNIX_DIAG`
//!   ([`diag`], the interface `ss -x` uses) and
//!   `/proc/thread-self/net/{unix,sockstat}` ([`procnet`]); the two must
//!   agree with each other and with the model.
//! * **Received descriptors are owned.** `kharness::sys::recvmsg_scm` decodes
//!   control messages even under `MSG_CTRUNC` and hands back `OwnedFd`s, so
//!   whatever the kernel installed is closed by `Drop`.
//!
//! The control-buffer arithmetic of the models mirrors
//! `include/linux/socket.h` (`CMSG_LEN`, `CMSG_SPACE`) and
//! `scm_max_fds()` in `net/core/scm.c`; see [`cmsg_space`].

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use kharness::{CaseDef, CaseError, Ctx};
use nix::sys::socket::{self, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr};

pub mod diag;
pub mod procnet;

mod creds;
mod epipe;
mod gc;
mod gc_property;
mod names;
mod oob;
mod oob_property;
mod property;
mod rights;
mod socketpair;

/// The family's cases, in catalog order.
pub fn cases() -> Vec<&'static CaseDef> {
    vec![
        &rights::SCM_RIGHTS,
        &rights::SCM_MAX,
        &rights::CTRUNC,
        &gc::INFLIGHT_GC,
        &creds::CREDENTIALS,
        &names::ABSTRACT,
        &epipe::EPIPE,
        &names::EPROTOTYPE,
        &names::DGRAM_NO_AUTOBIND,
        &oob::OOB,
        &oob_property::OOB_PROPERTY,
        &socketpair::SOCKETPAIR_DOMAIN,
        &property::FD_PROPERTY,
        &gc_property::GC_PROPERTY,
    ]
}

/// `SCM_MAX_FD` (include/net/scm.h): descriptors one message may carry.
pub(crate) const SCM_MAX_FD: usize = 253;

/// `sizeof(struct cmsghdr)` rounded up to `CMSG_ALIGN` (16 on 64-bit Linux).
pub(crate) fn cmsg_hdr() -> usize {
    cmsg_align(std::mem::size_of::<libc::cmsghdr>())
}

/// `CMSG_ALIGN`: round up to the size of `size_t`.
pub(crate) fn cmsg_align(n: usize) -> usize {
    let w = std::mem::size_of::<usize>();
    (n + w - 1) & !(w - 1)
}

/// `CMSG_LEN(data)`.
pub(crate) fn cmsg_len(data: usize) -> usize {
    cmsg_hdr() + data
}

/// `CMSG_SPACE(data)`.
pub(crate) fn cmsg_space(data: usize) -> usize {
    cmsg_hdr() + cmsg_align(data)
}

/// `scm_max_fds()` (net/core/scm.c): how many descriptors a control buffer
/// of `cap` bytes receives. 0 when the buffer cannot hold a header plus
/// anything; with no buffer at all `scm_recv()` installs none either.
pub(crate) fn scm_max_fds(cap: usize) -> usize {
    if cap <= std::mem::size_of::<libc::cmsghdr>() {
        0
    } else {
        (cap - std::mem::size_of::<libc::cmsghdr>()) / std::mem::size_of::<libc::c_int>()
    }
}

/// The socket type of a variant name.
pub(crate) fn sock_type(variant: Option<&str>) -> SockType {
    match variant {
        Some("dgram") => SockType::Datagram,
        Some("seqpacket") => SockType::SeqPacket,
        _ => SockType::Stream,
    }
}

/// `socketpair(AF_UNIX, ty | SOCK_CLOEXEC, 0)`.
pub(crate) fn pair(ty: SockType) -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(socket::socketpair(
        AddressFamily::Unix,
        ty,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

/// `socket(AF_UNIX, ty | SOCK_CLOEXEC, 0)`.
pub(crate) fn unix_socket(ty: SockType) -> io::Result<OwnedFd> {
    Ok(socket::socket(AddressFamily::Unix, ty, SockFlag::SOCK_CLOEXEC, None)?)
}

/// An abstract address unique to this process: `\0kharness.<what>.<pid>`.
pub(crate) fn abstract_addr(what: &str) -> io::Result<(UnixAddr, String)> {
    let name = format!("kharness.{what}.{}", std::process::id());
    Ok((UnixAddr::new_abstract(name.as_bytes())?, name))
}

/// One `sendmsg()` of `data` with one SCM_RIGHTS message carrying `fds`
/// (none when empty).
pub(crate) fn send_fds(sock: &OwnedFd, data: &[u8], fds: &[RawFd], flags: MsgFlags) -> io::Result<usize> {
    let iov = [io::IoSlice::new(data)];
    let cmsgs: Vec<ControlMessage<'_>> = if fds.is_empty() {
        Vec::new()
    } else {
        vec![ControlMessage::ScmRights(fds)]
    };
    Ok(socket::sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsgs, flags, None)?)
}

/// `"ok"` or the errno's name (`"EINVAL"`).
pub(crate) fn outcome<T>(r: &io::Result<T>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(e) => errno_name(e),
    }
}

/// The errno's name (`"EPIPE"`), or the error's text if it carries none.
pub(crate) fn errno_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{:?}", nix::errno::Errno::from_raw(n)),
        None => e.to_string(),
    }
}

/// Skips the case when `RLIMIT_NOFILE`'s soft limit (from
/// /proc/self/limits, "Max open files") is below `need`.
pub(crate) fn ensure_nofile(ctx: &Ctx, need: u64) -> Result<(), CaseError> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let soft = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next())
        .map(|v| {
            if v == "unlimited" {
                u64::MAX
            } else {
                v.parse().unwrap_or(0)
            }
        });
    match soft {
        Some(s) if s >= need => Ok(()),
        Some(s) => Err(ctx.skip(format!(
            "RLIMIT_NOFILE soft limit {s} is below the {need} descriptors this case holds (ulimit -n {need})"
        ))),
        None => Err(CaseError::Harness("no \"Max open files\" in /proc/self/limits".into())),
    }
}

/// The process's descriptor table as `/proc/self/fd` shows it: number →
/// link target (`ls -l /proc/PID/fd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FdTable(BTreeMap<i32, String>);

impl FdTable {
    /// Lists `/proc/self/fd`, leaving out the directory handle doing the
    /// listing.
    pub(crate) fn snapshot() -> io::Result<FdTable> {
        let me = format!("/proc/{}/fd", std::process::id());
        let mut m = BTreeMap::new();
        for e in std::fs::read_dir("/proc/self/fd")? {
            let e = e?;
            let Ok(n) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(target) = std::fs::read_link(e.path()) else {
                continue;
            };
            let target = target.display().to_string();
            if target != me {
                m.insert(n, target);
            }
        }
        Ok(FdTable(m))
    }

    /// Number of open descriptors.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Descriptors of `later` that are not in `self` (or point elsewhere).
    pub(crate) fn added_in(&self, later: &FdTable) -> Vec<String> {
        later
            .0
            .iter()
            .filter(|(k, v)| self.0.get(k) != Some(v))
            .map(|(k, v)| format!("{k} -> {v}"))
            .collect()
    }

    /// Records `fd_table.*` and checks that `after` is this table again.
    pub(crate) fn check_unchanged(&self, ctx: &mut Ctx, after: &FdTable) {
        let leaked = self.added_in(after);
        let lost = after.added_in(self);
        ctx.check_eq(
            "fd_table.count",
            self.len() as u64,
            after.len() as u64,
            "no leak: every descriptor the case created or received is closed again (/proc/self/fd)",
        );
        crate::volatile(ctx, "fd_table.count");
        ctx.check_eq(
            "fd_table.leaked",
            serde_json::json!([]),
            serde_json::json!(leaked),
            "no leak: no descriptor is open after the case that was not open before",
        );
        ctx.check_eq(
            "fd_table.lost",
            serde_json::json!([]),
            serde_json::json!(lost),
            "the case closes only what it opened",
        );
    }
}

/// Runs `body` between two `/proc/self/fd` snapshots and checks that the
/// table is unchanged afterwards (whatever `body` returned).
pub(crate) fn guarded(ctx: &mut Ctx, body: impl FnOnce(&mut Ctx) -> Result<(), CaseError>) -> Result<(), CaseError> {
    let before = FdTable::snapshot()?;
    let r = body(ctx);
    let after = FdTable::snapshot()?;
    before.check_unchanged(ctx, &after);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_buffer_arithmetic() {
        // x86_64 / aarch64: a 16-byte header, data aligned to 8.
        if std::mem::size_of::<usize>() == 8 {
            assert_eq!(cmsg_len(4), 20);
            assert_eq!(cmsg_space(4), 24);
            assert_eq!(cmsg_space(4 * 253), 16 + 1016);
            assert_eq!(scm_max_fds(0), 0);
            assert_eq!(scm_max_fds(16), 0);
            assert_eq!(scm_max_fds(19), 0);
            assert_eq!(scm_max_fds(20), 1);
            assert_eq!(scm_max_fds(24), 2);
            assert_eq!(scm_max_fds(cmsg_space(4 * 3)), 4);
        }
    }

    #[test]
    fn every_case_is_in_the_family_and_documented() {
        let ids: Vec<&str> = cases().iter().map(|c| c.id).collect();
        for want in [
            "unix.scm_rights",
            "unix.scm_max",
            "unix.ctrunc",
            "unix.inflight_gc",
            "unix.credentials",
            "unix.abstract",
            "unix.epipe",
            "unix.eprototype",
            "unix.dgram_no_autobind",
            "unix.oob",
            "unix.oob_property",
            "unix.socketpair_domain",
            "unix.fd_property",
            "unix.gc_property",
        ] {
            assert!(ids.contains(&want), "{want} missing");
        }
        for c in cases() {
            assert!(c.id.starts_with("unix."));
            assert_eq!(c.source, "seed 004", "{}", c.id);
            for text in [c.summary, c.drives, c.observes, c.predicts, c.why, c.kernels, c.shell] {
                assert!(!text.trim().is_empty(), "{}", c.id);
            }
        }
    }

    #[test]
    fn fd_table_sees_a_new_descriptor() {
        // Other tests run on other threads of this process, so look only
        // for the descriptor this test opens.
        let before = FdTable::snapshot().unwrap();
        let f = std::fs::File::open("/dev/null").unwrap();
        let during = FdTable::snapshot().unwrap();
        let mine = format!("{} -> /dev/null", f.as_raw_fd());
        assert!(
            before.added_in(&during).contains(&mine),
            "{:?}",
            before.added_in(&during)
        );
        drop(f);
        let after = FdTable::snapshot().unwrap();
        assert!(!after.0.iter().any(|(k, v)| format!("{k} -> {v}") == mine));
    }
}
