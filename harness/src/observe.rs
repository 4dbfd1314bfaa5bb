//! One observation of a socket: everything the kernel reports about its
//! queues and buffers through getsockopt and ioctl, read back to back.
//!
//! | field | kernel interface | `ss`/shell equivalent |
//! |---|---|---|
//! | `tcp_info` | `getsockopt(TCP_INFO)` | `ss -ti` |
//! | `inq` | `ioctl(SIOCINQ)` | `ss` Recv-Q |
//! | `outq` | `ioctl(SIOCOUTQ)` | `ss` Send-Q |
//! | `outq_nsd` | `ioctl(SIOCOUTQNSD)` | — |
//! | `sndbuf`, `rcvbuf` | `getsockopt(SO_SNDBUF / SO_RCVBUF)` | `ss -m` tb/rb |
//! | `meminfo` | `getsockopt(SO_MEMINFO)` | `ss -m` skmem |

use std::io;
use std::os::fd::BorrowedFd;

use serde_json::{json, Value};

use crate::sys;
use crate::tcpinfo::TcpInfo;

/// Names of the `SO_MEMINFO` vector, `ss -m` spelling in comments.
pub const MEMINFO_NAMES: [&str; sys::SK_MEMINFO_VARS] = [
    "rmem_alloc",  // r
    "rcvbuf",      // rb
    "wmem_alloc",  // t
    "sndbuf",      // tb
    "fwd_alloc",   // f
    "wmem_queued", // w
    "optmem",      // o
    "backlog",     // bl
    "drops",       // d
];

/// A snapshot of a TCP socket's state as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SockSnapshot {
    /// `getsockopt(TCP_INFO)` (with its returned length).
    pub tcp_info: TcpInfo,
    /// `SIOCINQ`.
    pub inq: i32,
    /// `SIOCOUTQ`.
    pub outq: i32,
    /// `SIOCOUTQNSD`.
    pub outq_nsd: i32,
    /// `SO_SNDBUF`.
    pub sndbuf: i32,
    /// `SO_RCVBUF`.
    pub rcvbuf: i32,
    /// `SO_MEMINFO`, `None` for values the kernel did not return.
    pub meminfo: [Option<u32>; sys::SK_MEMINFO_VARS],
}

impl SockSnapshot {
    /// Reads everything (TCP_INFO, 3 ioctls, SO_SNDBUF, SO_RCVBUF, SO_MEMINFO).
    pub fn take(fd: BorrowedFd<'_>) -> io::Result<SockSnapshot> {
        Ok(SockSnapshot {
            tcp_info: TcpInfo::from_bytes(&sys::getsockopt_bytes(fd, libc::IPPROTO_TCP, libc::TCP_INFO, 512)?),
            inq: sys::ioctl_int(fd, sys::SIOCINQ)?,
            outq: sys::ioctl_int(fd, sys::SIOCOUTQ)?,
            outq_nsd: sys::ioctl_int(fd, sys::SIOCOUTQNSD)?,
            sndbuf: sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF)?,
            rcvbuf: sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF)?,
            meminfo: sys::so_meminfo(fd)?,
        })
    }

    /// A `SO_MEMINFO` value by name (see [`MEMINFO_NAMES`]).
    pub fn mem(&self, name: &str) -> Option<u32> {
        let i = MEMINFO_NAMES.iter().position(|n| *n == name)?;
        self.meminfo[i]
    }

    /// A `tcp_info` field (absent → `None`).
    pub fn ti(&self, field: &str) -> Option<u64> {
        self.tcp_info.must(field)
    }

    /// All figures as a flat JSON map with `prefix.` on every key, for the
    /// report's observations.
    pub fn to_observations(&self, prefix: &str) -> Vec<(String, Value)> {
        let mut v = vec![
            (format!("{prefix}.siocinq"), json!(self.inq)),
            (format!("{prefix}.siocoutq"), json!(self.outq)),
            (format!("{prefix}.siocoutqnsd"), json!(self.outq_nsd)),
            (format!("{prefix}.so_sndbuf"), json!(self.sndbuf)),
            (format!("{prefix}.so_rcvbuf"), json!(self.rcvbuf)),
            (format!("{prefix}.tcp_info_len"), json!(self.tcp_info.len())),
        ];
        for (i, n) in MEMINFO_NAMES.iter().enumerate() {
            v.push((
                format!("{prefix}.meminfo.{n}"),
                self.meminfo[i].map(Value::from).unwrap_or(Value::Null),
            ));
        }
        v
    }
}
