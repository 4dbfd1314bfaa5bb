//! sock_diag `INET_DIAG` over `NETLINK_SOCK_DIAG`: the interface `ss` reads.
//!
//! The request (`struct inet_diag_req_v2`) and the reply header
//! (`struct inet_diag_msg`) are encoded here by hand, on the generic
//! [`NlSocket`](crate::netlink::NlSocket) loop: `netlink-packet-sock-diag`
//! decodes `INET_DIAG_INFO` into its own fixed `tcp_info` struct, which
//! throws away the returned length and every field newer than the crate.
//! Here the attribute's bytes go to the same [`TcpInfo`] decoder that
//! `getsockopt(TCP_INFO)` uses, so the two can be compared field by field.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use netlink_packet_core::{NetlinkDeserializable, NetlinkHeader, NetlinkSerializable, NLM_F_DUMP};

use crate::netlink::{NlError, NlSocket};
use crate::tcpinfo::TcpInfo;

/// `SOCK_DIAG_BY_FAMILY`.
pub const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `INET_DIAG_INFO` attribute type.
pub const INET_DIAG_INFO: u16 = 2;
/// `NETLINK_SOCK_DIAG` protocol number.
pub const NETLINK_SOCK_DIAG: isize = 4;

/// `struct inet_diag_req_v2` for one family and protocol, all states,
/// asking for `INET_DIAG_INFO`.
#[derive(Debug, Clone)]
pub struct InetDiagRequest {
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// `IPPROTO_TCP`…
    pub protocol: u8,
    /// Bitmask of `1 << TCP_*` states.
    pub states: u32,
}

impl NetlinkSerializable for InetDiagRequest {
    fn message_type(&self) -> u16 {
        SOCK_DIAG_BY_FAMILY
    }
    fn buffer_len(&self) -> usize {
        56
    }
    fn serialize(&self, buf: &mut [u8]) {
        buf[..56].fill(0);
        buf[0] = self.family;
        buf[1] = self.protocol;
        buf[2] = 1 << (INET_DIAG_INFO - 1); // idiag_ext
        buf[4..8].copy_from_slice(&self.states.to_ne_bytes());
        // inet_diag_sockid left zero: no filter, the whole table.
    }
}

/// One socket of an `INET_DIAG` dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InetDiagMsg {
    /// `idiag_family`.
    pub family: u8,
    /// `idiag_state` (TCP_ESTABLISHED = 1 …).
    pub state: u8,
    /// Local address and port.
    pub src: SocketAddr,
    /// Remote address and port.
    pub dst: SocketAddr,
    /// `idiag_rqueue` (for TCP: bytes not yet read, like SIOCINQ).
    pub rqueue: u32,
    /// `idiag_wqueue` (for TCP: bytes not yet acknowledged, like SIOCOUTQ).
    pub wqueue: u32,
    /// `idiag_uid`.
    pub uid: u32,
    /// `idiag_inode`.
    pub inode: u32,
    /// `INET_DIAG_INFO`, when present.
    pub info: Option<TcpInfo>,
}

/// Decoding failure for a malformed reply.
#[derive(Debug, thiserror::Error)]
#[error("malformed inet_diag_msg: {0}")]
pub struct DiagDecodeError(String);

fn addr(family: u8, raw: &[u8], port: u16) -> SocketAddr {
    let ip = if family == libc::AF_INET6 as u8 {
        let mut b = [0u8; 16];
        b.copy_from_slice(&raw[..16]);
        IpAddr::V6(Ipv6Addr::from(b))
    } else {
        IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
    };
    SocketAddr::new(ip, port)
}

/// Decodes the payload of one `SOCK_DIAG_BY_FAMILY` reply.
pub fn parse_inet_diag_msg(p: &[u8]) -> Result<InetDiagMsg, DiagDecodeError> {
    if p.len() < 72 {
        return Err(DiagDecodeError(format!("{} bytes, need 72", p.len())));
    }
    let u32_at = |o: usize| u32::from_ne_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]]);
    let family = p[0];
    let sport = u16::from_be_bytes([p[4], p[5]]);
    let dport = u16::from_be_bytes([p[6], p[7]]);
    let src = addr(family, &p[8..24], sport);
    let dst = addr(family, &p[24..40], dport);
    let mut info = None;
    let mut rest = &p[72..];
    while rest.len() >= 4 {
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let ty = u16::from_ne_bytes([rest[2], rest[3]]);
        if len < 4 || len > rest.len() {
            return Err(DiagDecodeError(format!(
                "attribute length {len} with {} bytes left",
                rest.len()
            )));
        }
        if ty == INET_DIAG_INFO {
            info = Some(TcpInfo::from_bytes(&rest[4..len]));
        }
        let step = (len + 3) & !3;
        if step >= rest.len() {
            break;
        }
        rest = &rest[step..];
    }
    Ok(InetDiagMsg {
        family,
        state: p[1],
        src,
        dst,
        rqueue: u32_at(56),
        wqueue: u32_at(60),
        uid: u32_at(64),
        inode: u32_at(68),
        info,
    })
}

impl NetlinkDeserializable for InetDiagMsg {
    type Error = DiagDecodeError;
    fn deserialize(_h: &NetlinkHeader, payload: &[u8]) -> Result<Self, Self::Error> {
        parse_inet_diag_msg(payload)
    }
}

/// Dumps every TCP socket of `family` in the socket's namespace.
/// Equivalent to `ss -tanie` (`-4` or `-6`).
pub fn dump_tcp(sock: &NlSocket, family: i32) -> Result<Vec<InetDiagMsg>, NlError> {
    sock.request_as::<_, InetDiagMsg>(
        InetDiagRequest {
            family: family as u8,
            protocol: libc::IPPROTO_TCP as u8,
            states: u32::MAX,
        },
        NLM_F_DUMP,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_header_and_info() {
        let mut p = vec![0u8; 72];
        p[0] = libc::AF_INET as u8;
        p[1] = 1;
        p[4..6].copy_from_slice(&4242u16.to_be_bytes());
        p[6..8].copy_from_slice(&80u16.to_be_bytes());
        p[8..12].copy_from_slice(&[198, 18, 0, 1]);
        p[24..28].copy_from_slice(&[198, 18, 0, 2]);
        p[56..60].copy_from_slice(&5u32.to_ne_bytes());
        p[60..64].copy_from_slice(&7u32.to_ne_bytes());
        let info = vec![9u8; 232];
        p.extend_from_slice(&((4 + info.len()) as u16).to_ne_bytes());
        p.extend_from_slice(&INET_DIAG_INFO.to_ne_bytes());
        p.extend_from_slice(&info);
        let m = parse_inet_diag_msg(&p).unwrap();
        assert_eq!(m.src, "198.18.0.1:4242".parse().unwrap());
        assert_eq!(m.dst, "198.18.0.2:80".parse().unwrap());
        assert_eq!((m.rqueue, m.wqueue), (5, 7));
        assert_eq!(m.info.unwrap().len(), 232);
    }

    #[test]
    fn malformed_is_an_error_not_a_panic() {
        assert!(parse_inet_diag_msg(&[0u8; 10]).is_err());
        let mut p = vec![0u8; 72];
        p.extend_from_slice(&[200, 0, 2, 0]);
        assert!(parse_inet_diag_msg(&p).is_err());
    }
}
