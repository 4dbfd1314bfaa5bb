//! sock_diag `UNIX_DIAG` over `NETLINK_SOCK_DIAG`: what `ss -x` reads.
//!
//! Encoded by hand on [`NlSocket::request_as`], as `kharness::diag` does for
//! `INET_DIAG`: `struct unix_diag_req` out, `struct unix_diag_msg` plus
//! `UNIX_DIAG_*` attributes back (include/uapi/linux/unix_diag.h). The dump
//! covers the network namespace of the netlink socket
//! (`unix_diag_dump()` skips sockets of other namespaces), so a socket
//! opened with [`NetNs::netlink`](kharness::NetNs::netlink) sees exactly
//! that namespace.

use std::fmt;

use kharness::netlink::{NlError, NlSocket};
use netlink_packet_core::{NetlinkDeserializable, NetlinkHeader, NetlinkSerializable, NLM_F_DUMP};

/// `SOCK_DIAG_BY_FAMILY`.
pub(crate) const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NETLINK_SOCK_DIAG`.
pub(crate) const NETLINK_SOCK_DIAG: isize = 4;

/// `UDIAG_SHOW_NAME`: the bound address (`UNIX_DIAG_NAME`).
pub(crate) const UDIAG_SHOW_NAME: u32 = 0x01;
/// `UDIAG_SHOW_VFS`: the inode of a pathname socket's file (`UNIX_DIAG_VFS`).
pub(crate) const UDIAG_SHOW_VFS: u32 = 0x02;
/// `UDIAG_SHOW_PEER`: the peer's socket inode (`UNIX_DIAG_PEER`).
pub(crate) const UDIAG_SHOW_PEER: u32 = 0x04;
/// `UDIAG_SHOW_RQLEN`: queue lengths (`UNIX_DIAG_RQLEN`).
pub(crate) const UDIAG_SHOW_RQLEN: u32 = 0x10;

const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_VFS: u16 = 1;
const UNIX_DIAG_PEER: u16 = 2;
const UNIX_DIAG_RQLEN: u16 = 4;
const UNIX_DIAG_SHUTDOWN: u16 = 6;

/// `struct unix_diag_req` (24 bytes) asking for a dump of every socket in
/// the states of `states` (`1 << TCP_*`), with the `UDIAG_SHOW_*` of `show`.
#[derive(Debug, Clone)]
pub(crate) struct UnixDiagRequest {
    /// Bitmask of `1 << sk_state` (`TCP_ESTABLISHED` = 1, `TCP_CLOSE` = 7,
    /// `TCP_LISTEN` = 10).
    pub states: u32,
    /// `UDIAG_SHOW_*` bits.
    pub show: u32,
}

impl NetlinkSerializable for UnixDiagRequest {
    fn message_type(&self) -> u16 {
        SOCK_DIAG_BY_FAMILY
    }
    fn buffer_len(&self) -> usize {
        24
    }
    fn serialize(&self, buf: &mut [u8]) {
        buf[..24].fill(0);
        buf[0] = libc::AF_UNIX as u8; // sdiag_family
        buf[1] = 0; // sdiag_protocol
        buf[4..8].copy_from_slice(&self.states.to_ne_bytes()); // udiag_states
                                                               // udiag_ino 0 and udiag_cookie 0: a dump, not a lookup.
        buf[12..16].copy_from_slice(&self.show.to_ne_bytes()); // udiag_show
    }
}

/// One socket of a `UNIX_DIAG` dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixDiagMsg {
    /// `udiag_type` (`SOCK_STREAM` 1, `SOCK_DGRAM` 2, `SOCK_SEQPACKET` 5).
    pub ty: u8,
    /// `udiag_state` (`TCP_ESTABLISHED` 1, `TCP_CLOSE` 7, `TCP_LISTEN` 10).
    pub state: u8,
    /// `udiag_ino`: the socket's inode, as `fstat()` and /proc/net/unix show.
    pub ino: u32,
    /// `UNIX_DIAG_NAME`: `sun_path` bytes as bound (leading NUL for an
    /// abstract name); `None` for an unbound socket.
    pub name: Option<Vec<u8>>,
    /// `UNIX_DIAG_VFS`: `(inode, dev)` of a pathname socket's file.
    pub vfs: Option<(u32, u32)>,
    /// `UNIX_DIAG_PEER`: the peer socket's inode.
    pub peer: Option<u32>,
    /// `UNIX_DIAG_RQLEN`: `(rqueue, wqueue)`; for a connected stream socket
    /// `unix_inq_len()` (bytes queued to read) and `unix_outq_len()`.
    pub rqlen: Option<(u32, u32)>,
    /// `UNIX_DIAG_SHUTDOWN`: `sk_shutdown`.
    pub shutdown: Option<u8>,
}

impl UnixDiagMsg {
    /// The name as `ss -x` and /proc/net/unix print it: an abstract name
    /// with every NUL shown as `@`; a pathname up to its terminating NUL,
    /// which `UNIX_DIAG_NAME` includes (unix_mkname_bsd() counts it in the
    /// address length) and /proc/net/unix leaves out.
    pub fn display_name(&self) -> Option<String> {
        self.name.as_ref().map(|n| match n.first() {
            Some(0) => n.iter().map(|&b| if b == 0 { '@' } else { b as char }).collect(),
            _ => {
                let end = n.iter().position(|&b| b == 0).unwrap_or(n.len());
                String::from_utf8_lossy(&n[..end]).into_owned()
            }
        })
    }
}

/// A reply that does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixDiagDecodeError(String);

impl fmt::Display for UnixDiagDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed unix_diag_msg: {}", self.0)
    }
}

impl std::error::Error for UnixDiagDecodeError {}

/// Decodes the payload of one `SOCK_DIAG_BY_FAMILY` reply for AF_UNIX.
pub fn parse_unix_diag_msg(p: &[u8]) -> Result<UnixDiagMsg, UnixDiagDecodeError> {
    if p.len() < 16 {
        return Err(UnixDiagDecodeError(format!("{} bytes, need 16", p.len())));
    }
    if p[0] != libc::AF_UNIX as u8 {
        return Err(UnixDiagDecodeError(format!("udiag_family {} is not AF_UNIX", p[0])));
    }
    let u32_of = |b: &[u8]| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    let mut m = UnixDiagMsg {
        ty: p[1],
        state: p[2],
        ino: u32_of(&p[4..8]),
        name: None,
        vfs: None,
        peer: None,
        rqlen: None,
        shutdown: None,
    };
    let mut rest = &p[16..];
    while rest.len() >= 4 {
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let ty = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        if len < 4 || len > rest.len() {
            return Err(UnixDiagDecodeError(format!(
                "attribute length {len} with {} bytes left",
                rest.len()
            )));
        }
        let v = &rest[4..len];
        match ty {
            UNIX_DIAG_NAME => m.name = Some(v.to_vec()),
            UNIX_DIAG_VFS if v.len() >= 8 => m.vfs = Some((u32_of(&v[0..4]), u32_of(&v[4..8]))),
            UNIX_DIAG_PEER if v.len() >= 4 => m.peer = Some(u32_of(v)),
            UNIX_DIAG_RQLEN if v.len() >= 8 => m.rqlen = Some((u32_of(&v[0..4]), u32_of(&v[4..8]))),
            UNIX_DIAG_SHUTDOWN if !v.is_empty() => m.shutdown = Some(v[0]),
            _ => {}
        }
        let step = (len + 3) & !3;
        if step >= rest.len() {
            break;
        }
        rest = &rest[step..];
    }
    Ok(m)
}

impl NetlinkDeserializable for UnixDiagMsg {
    type Error = UnixDiagDecodeError;
    fn deserialize(_h: &NetlinkHeader, payload: &[u8]) -> Result<Self, Self::Error> {
        parse_unix_diag_msg(payload)
    }
}

/// Dumps every AF_UNIX socket of the netlink socket's namespace with its
/// name, file, peer and queue lengths. Equivalent to `ss -xap`.
pub(crate) fn dump(sock: &NlSocket) -> Result<Vec<UnixDiagMsg>, NlError> {
    sock.request_as::<_, UnixDiagMsg>(
        UnixDiagRequest {
            states: u32::MAX,
            show: UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN,
        },
        NLM_F_DUMP,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ty: u16, v: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&ty.to_ne_bytes());
        a.extend_from_slice(v);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    #[test]
    fn request_layout() {
        let r = UnixDiagRequest {
            states: 1 << 1,
            show: UDIAG_SHOW_NAME | UDIAG_SHOW_RQLEN,
        };
        let mut b = vec![0xffu8; 24];
        r.serialize(&mut b);
        assert_eq!(b[0], libc::AF_UNIX as u8);
        assert_eq!(u32::from_ne_bytes([b[4], b[5], b[6], b[7]]), 2);
        assert_eq!(u32::from_ne_bytes([b[8], b[9], b[10], b[11]]), 0);
        assert_eq!(u32::from_ne_bytes([b[12], b[13], b[14], b[15]]), 0x11);
        assert_eq!(&b[16..24], &[0u8; 8]);
    }

    #[test]
    fn decodes_header_and_attributes() {
        let mut p = vec![0u8; 16];
        p[0] = libc::AF_UNIX as u8;
        p[1] = libc::SOCK_STREAM as u8;
        p[2] = 10;
        p[4..8].copy_from_slice(&4242u32.to_ne_bytes());
        p.extend(attr(UNIX_DIAG_NAME, b"\0abc"));
        let mut rq = 3u32.to_ne_bytes().to_vec();
        rq.extend_from_slice(&128u32.to_ne_bytes());
        p.extend(attr(UNIX_DIAG_RQLEN, &rq));
        p.extend(attr(UNIX_DIAG_PEER, &7u32.to_ne_bytes()));
        p.extend(attr(99, &[1, 2, 3]));
        let m = parse_unix_diag_msg(&p).unwrap();
        assert_eq!((m.ty, m.state, m.ino), (1, 10, 4242));
        assert_eq!(m.display_name().as_deref(), Some("@abc"));
        assert_eq!(m.rqlen, Some((3, 128)));
        assert_eq!(m.peer, Some(7));
        assert_eq!(m.vfs, None);
        let path = UnixDiagMsg {
            name: Some(b"/tmp/s\0".to_vec()),
            ..m
        };
        assert_eq!(path.display_name().as_deref(), Some("/tmp/s"));
    }

    #[test]
    fn malformed_is_an_error_not_a_panic() {
        assert!(parse_unix_diag_msg(&[1u8; 8]).is_err());
        let mut p = vec![0u8; 16];
        p[0] = libc::AF_UNIX as u8;
        p.extend_from_slice(&[200, 0, 0, 0]);
        assert!(parse_unix_diag_msg(&p).is_err());
        for n in 0..48u8 {
            let mut junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(29)).collect();
            if let Some(b) = junk.first_mut() {
                *b = libc::AF_UNIX as u8;
            }
            let _ = parse_unix_diag_msg(&junk);
        }
    }
}
