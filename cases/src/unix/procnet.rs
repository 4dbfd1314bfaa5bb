//! `/proc/thread-self/net/unix` and `/proc/thread-self/net/sockstat`, and
//! the namespace view that puts them next to `UNIX_DIAG`.
//!
//! `/proc/net/unix` (`unix_seq_show()` in net/unix/af_unix.c) has one line
//! per socket in the reading thread's network namespace:
//!
//! ```text
//! Num       RefCount Protocol Flags    Type St Inode Path
//! 0000...: 00000002 00000000 00010000 0001 01 23456 @kharness.name
//! ```
//!
//! `Flags` 0x10000 is `__SO_ACCEPTCON` (listening), `Type` the socket type,
//! `St` the `socket_state` (`SS_UNCONNECTED` 1, `SS_CONNECTED` 3), and an
//! abstract name's NULs are printed as `@`. `sockstat`'s first line,
//! `sockets: used N`, is `sock_inuse_get()`: every non-kernel `struct sock`
//! of the namespace of any family, counted from `sk_alloc()` to
//! `__sk_free()`.

use std::collections::BTreeSet;

use kharness::netlink::NlSocket;
use kharness::{CaseError, Ctx, NetNs};

use super::diag::{self, UnixDiagMsg};

/// One line of /proc/net/unix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcUnix {
    /// `RefCount` (`sk_refcnt`).
    pub refcount: u32,
    /// `Flags` (`__SO_ACCEPTCON` = 0x10000 when listening).
    pub flags: u32,
    /// `Type` (1 stream, 2 dgram, 5 seqpacket).
    pub ty: u16,
    /// `St` (`SS_UNCONNECTED` 1, `SS_CONNECTING` 2, `SS_CONNECTED` 3).
    pub state: u8,
    /// `Inode`.
    pub inode: u64,
    /// `Path` (abstract names with `@`), absent when unbound.
    pub path: Option<String>,
}

/// Parses /proc/net/unix; lines that do not parse are skipped.
pub fn parse_proc_net_unix(text: &str) -> Vec<ProcUnix> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let mut rest = line.trim_start();
        let mut fields = Vec::with_capacity(7);
        for _ in 0..7 {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            fields.push(&rest[..end]);
            rest = rest[end..].trim_start();
        }
        let hex32 = |s: &str| u32::from_str_radix(s, 16).ok();
        let (Some(refcount), Some(flags), Some(ty), Some(state), Ok(inode)) = (
            hex32(fields[1]),
            hex32(fields[3]),
            u16::from_str_radix(fields[4], 16).ok(),
            u8::from_str_radix(fields[5], 16).ok(),
            fields[6].parse::<u64>(),
        ) else {
            continue;
        };
        let path = (!rest.is_empty()).then(|| rest.to_string());
        out.push(ProcUnix {
            refcount,
            flags,
            ty,
            state,
            inode,
            path,
        });
    }
    out
}

/// `sockets: used N` from sockstat.
pub fn parse_sockets_used(text: &str) -> Option<i64> {
    text.lines()
        .find_map(|l| l.strip_prefix("sockets: used "))
        .and_then(|v| v.trim().parse().ok())
}

/// What the two views of one namespace said, read back to back.
#[derive(Debug, Clone)]
pub(crate) struct NsView {
    /// /proc/thread-self/net/unix.
    pub proc: Vec<ProcUnix>,
    /// The `UNIX_DIAG` dump.
    pub diag: Vec<UnixDiagMsg>,
    /// sockstat `sockets: used`.
    pub sockets_used: Option<i64>,
}

impl NsView {
    /// Reads both views of `ns`; `diag_sock` must be a `NETLINK_SOCK_DIAG`
    /// socket opened inside `ns`.
    pub(crate) fn read(ns: &NetNs, diag_sock: &NlSocket) -> Result<NsView, CaseError> {
        let (unix, sockstat) = ns.run(|| {
            (
                std::fs::read_to_string("/proc/thread-self/net/unix"),
                std::fs::read_to_string("/proc/thread-self/net/sockstat"),
            )
        })?;
        let proc = parse_proc_net_unix(&unix?);
        let sockets_used = parse_sockets_used(&sockstat?);
        let diag = diag::dump(diag_sock)?;
        Ok(NsView {
            proc,
            diag,
            sockets_used,
        })
    }

    /// Socket inodes in /proc/net/unix.
    pub(crate) fn proc_inodes(&self) -> BTreeSet<u64> {
        self.proc.iter().map(|p| p.inode).collect()
    }

    /// Socket inodes in the `UNIX_DIAG` dump.
    pub(crate) fn diag_inodes(&self) -> BTreeSet<u64> {
        self.diag.iter().map(|d| u64::from(d.ino)).collect()
    }

    /// The /proc/net/unix line of inode `ino`.
    pub(crate) fn proc_of(&self, ino: u64) -> Option<&ProcUnix> {
        self.proc.iter().find(|p| p.inode == ino)
    }

    /// The `UNIX_DIAG` record of inode `ino`.
    pub(crate) fn diag_of(&self, ino: u64) -> Option<&UnixDiagMsg> {
        self.diag.iter().find(|d| u64::from(d.ino) == ino)
    }

    /// Records `{label}.*` and checks that both views list `unix` sockets,
    /// the same ones, and (when `used` is given) that sockstat says `used`.
    pub(crate) fn check_counts(&self, ctx: &mut Ctx, label: &str, unix: usize, used: Option<i64>, why: &str) {
        ctx.check_eq(
            format!("{label}.proc_net_unix.sockets"),
            unix as u64,
            self.proc.len() as u64,
            why,
        );
        ctx.check_eq(
            format!("{label}.unix_diag.sockets"),
            unix as u64,
            self.diag.len() as u64,
            why,
        );
        ctx.check_eq(
            format!("{label}.views_agree"),
            true,
            self.proc_inodes() == self.diag_inodes(),
            "/proc/net/unix and UNIX_DIAG walk the same per-namespace socket table (unix_seq_show, unix_diag_dump)",
        );
        match used {
            Some(u) => ctx.check_eq(
                format!("{label}.sockstat.sockets_used"),
                u,
                serde_json::json!(self.sockets_used),
                "sockstat `sockets: used` counts every struct sock of the namespace (sock_inuse_add in sk_alloc/__sk_free)",
            ),
            None => ctx.observe_opt(format!("{label}.sockstat.sockets_used"), self.sockets_used),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 12345 @kharness.abstract.7
0000000000000000: 00000003 00000000 00000000 0001 03 12346
0000000000000000: 00000002 00000000 00000000 0002 01  8123 /tmp/x y/sock
garbage line
";

    #[test]
    fn proc_net_unix() {
        let v = parse_proc_net_unix(SAMPLE);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].flags, 0x10000);
        assert_eq!(v[0].path.as_deref(), Some("@kharness.abstract.7"));
        assert_eq!((v[1].refcount, v[1].ty, v[1].state, v[1].inode), (3, 1, 3, 12346));
        assert_eq!(v[1].path, None);
        assert_eq!(v[2].inode, 8123);
        assert_eq!(v[2].path.as_deref(), Some("/tmp/x y/sock"));
    }

    #[test]
    fn sockstat() {
        let t = "sockets: used 7\nTCP: inuse 0 orphan 0 tw 0 alloc 0 mem 0\n";
        assert_eq!(parse_sockets_used(t), Some(7));
        assert_eq!(parse_sockets_used("nothing"), None);
    }
}
