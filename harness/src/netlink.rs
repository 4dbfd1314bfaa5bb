//! A synchronous netlink request/response loop over `netlink-sys`, generic
//! over the message family (`netlink-packet-route`'s messages for rtnetlink,
//! or any other `NetlinkSerializable` family).
//!
//! Written by hand on purpose: a case issuing a handful of requests is
//! simpler with a blocking loop, and this one keeps the kernel's raw answer
//! (extended ACK text and offset, malformed requests). Cases that read
//! better as `ip route add …` use `rtnetlink`'s handles through
//! [`crate::rt::Rtnl`] instead (one current-thread runtime per case, the
//! socket opened inside the namespace).
//! The message types themselves come from the crates. The one thing decoded
//! here by hand is the extended ACK (`NLMSGERR_ATTR_MSG`, `NLMSGERR_ATTR_OFFS`)
//! after an `NLMSG_ERROR`, which `netlink-packet-core` 0.9 leaves as raw bytes.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use netlink_sys::{Socket, SocketAddr};

/// `NLMSGERR_ATTR_MSG`: the kernel's extended-ack text.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// `NLMSGERR_ATTR_OFFS`: offset of the offending attribute in the request.
const NLMSGERR_ATTR_OFFS: u16 = 2;

/// A netlink request that failed.
#[derive(Debug, thiserror::Error)]
pub enum NlError {
    /// The kernel answered `NLMSG_ERROR` with a non-zero code.
    #[error("kernel refused the request: {} ({errno}){}", io::Error::from_raw_os_error(*.errno), .extack.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kernel {
        /// Positive errno.
        errno: i32,
        /// The extended-ack message, when the kernel gave one.
        extack: Option<String>,
        /// The extended-ack attribute offset, when the kernel gave one.
        offset: Option<u32>,
    },
    /// The socket itself failed.
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    /// The kernel's answer did not parse.
    #[error("cannot decode netlink reply: {0}")]
    Decode(String),
}

impl NlError {
    /// The errno when the kernel refused, else `None`.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NlError::Kernel { errno, .. } => Some(*errno),
            NlError::Io(e) => e.raw_os_error(),
            NlError::Decode(_) => None,
        }
    }
}

/// The extended-ack fields found after an `NLMSG_ERROR`'s echoed header.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExtAck {
    /// `NLMSGERR_ATTR_MSG`.
    pub message: Option<String>,
    /// `NLMSGERR_ATTR_OFFS`.
    pub offset: Option<u32>,
}

/// Decodes extended-ack TLVs (`struct nlattr` list, 4-byte aligned).
/// Unknown attributes are skipped; a truncated list ends the walk.
pub fn parse_extack(mut tlvs: &[u8]) -> ExtAck {
    let mut out = ExtAck::default();
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let ty = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            break;
        }
        let val = &tlvs[4..len];
        match ty {
            NLMSGERR_ATTR_MSG => {
                let end = val.iter().position(|&b| b == 0).unwrap_or(val.len());
                out.message = Some(String::from_utf8_lossy(&val[..end]).into_owned());
            }
            NLMSGERR_ATTR_OFFS if val.len() >= 4 => {
                out.offset = Some(u32::from_ne_bytes([val[0], val[1], val[2], val[3]]));
            }
            _ => {}
        }
        let step = (len + 3) & !3;
        if step >= tlvs.len() {
            break;
        }
        tlvs = &tlvs[step..];
    }
    out
}

/// A bound, connected netlink socket of one protocol, in the network
/// namespace of the thread that opened it (forever: a netlink socket keeps the
/// namespace it was created in, whichever thread uses it later).
pub struct NlSocket {
    sock: Socket,
    seq: AtomicU32,
}

impl std::fmt::Debug for NlSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NlSocket").finish_non_exhaustive()
    }
}

impl NlSocket {
    /// Opens a socket of `protocol` (`NETLINK_ROUTE`, `NETLINK_SOCK_DIAG`,
    /// `NETLINK_GENERIC`…) in the calling thread's namespace, with extended
    /// ACKs and capped ACKs on.
    pub fn open(protocol: isize) -> io::Result<Self> {
        let mut sock = Socket::new(protocol)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        // Extended ACK carries the kernel's message; cap_ack keeps the echoed
        // request down to its header so the TLVs are easy to find.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        Ok(NlSocket {
            sock,
            seq: AtomicU32::new(1),
        })
    }

    /// The underlying socket (for group subscriptions and raw receives).
    pub fn socket(&self) -> &Socket {
        &self.sock
    }

    /// Sends one request with `NLM_F_REQUEST | NLM_F_ACK | extra_flags` and
    /// collects every inner message of the answer until the ACK (or
    /// `NLMSG_DONE` for dumps).
    pub fn request<I>(&self, msg: I, extra_flags: u16) -> Result<Vec<I>, NlError>
    where
        I: NetlinkSerializable + NetlinkDeserializable + std::fmt::Debug,
    {
        self.request_as::<I, I>(msg, extra_flags)
    }

    /// Like [`NlSocket::request`] for families whose replies are of another
    /// type than the request (sock_diag).
    pub fn request_as<Q, R>(&self, msg: Q, extra_flags: u16) -> Result<Vec<R>, NlError>
    where
        Q: NetlinkSerializable + std::fmt::Debug,
        R: NetlinkDeserializable + std::fmt::Debug,
    {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | extra_flags;
        header.sequence_number = seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let dump = extra_flags & NLM_F_DUMP == NLM_F_DUMP;
        self.collect(seq, dump)
    }

    /// Sends raw, already-serialized bytes (for deliberately malformed
    /// requests) and returns the answer's error, if any.
    pub fn request_raw(&self, bytes: &[u8]) -> Result<(), NlError> {
        self.sock.send(bytes, 0)?;
        let seq = if bytes.len() >= 12 {
            u32::from_ne_bytes([bytes[8], bytes[9], bytes[10], bytes[11]])
        } else {
            0
        };
        self.collect::<RawMsg>(seq, false).map(|_| ())
    }

    /// Next sequence number (for callers building raw requests).
    pub fn next_seq(&self) -> u32 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    fn collect<I>(&self, seq: u32, dump: bool) -> Result<Vec<I>, NlError>
    where
        I: NetlinkDeserializable + std::fmt::Debug,
    {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = self.sock.recv(&mut &mut buf[..], 0)?;
            let mut off = 0;
            while off + 16 <= n {
                let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
                if len < 16 || off + len > n {
                    return Err(NlError::Decode(format!("bad nlmsg_len {len} at {off}")));
                }
                let frame = &buf[off..off + len];
                off += (len + 3) & !3;
                let ty = u16::from_ne_bytes([frame[4], frame[5]]);
                let flags = u16::from_ne_bytes([frame[6], frame[7]]);
                let mseq = u32::from_ne_bytes([frame[8], frame[9], frame[10], frame[11]]);
                if mseq != seq {
                    continue; // a late answer to an earlier request
                }
                match ty {
                    // NLMSG_ERROR: i32 code, echoed nlmsghdr (capped), TLVs.
                    2 => {
                        let body = &frame[16..];
                        if body.len() < 4 {
                            return Err(NlError::Decode("short NLMSG_ERROR".into()));
                        }
                        let code = i32::from_ne_bytes([body[0], body[1], body[2], body[3]]);
                        let echoed_len = if body.len() >= 8 {
                            u32::from_ne_bytes([body[4], body[5], body[6], body[7]]) as usize
                        } else {
                            0
                        };
                        // NLM_F_CAPPED (0x100): only the request header was echoed.
                        let skip = if flags & 0x100 != 0 { 16 } else { echoed_len.max(16) };
                        let tlvs = body.get(4 + skip..).unwrap_or(&[]);
                        let ext = if flags & 0x200 != 0 {
                            parse_extack(tlvs)
                        } else {
                            ExtAck::default()
                        };
                        if code != 0 {
                            return Err(NlError::Kernel {
                                errno: -code,
                                extack: ext.message,
                                offset: ext.offset,
                            });
                        }
                        if !dump {
                            return Ok(out);
                        }
                    }
                    // NLMSG_DONE
                    3 => return Ok(out),
                    // NLMSG_NOOP
                    1 => {}
                    _ => {
                        let mut h = NetlinkHeader::default();
                        h.length = len as u32;
                        h.message_type = ty;
                        h.flags = flags;
                        h.sequence_number = mseq;
                        let inner = I::deserialize(&h, &frame[16..]).map_err(|e| NlError::Decode(e.to_string()))?;
                        out.push(inner);
                    }
                }
            }
        }
    }
}

/// Undecoded inner message, for raw requests.
#[derive(Debug)]
pub struct RawMsg {
    /// `nlmsg_type`.
    pub ty: u16,
    /// Payload after the header.
    pub payload: Vec<u8>,
}

impl NetlinkDeserializable for RawMsg {
    type Error = std::convert::Infallible;
    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, Self::Error> {
        Ok(RawMsg {
            ty: header.message_type,
            payload: payload.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extack_message_and_offset() {
        let mut tlv = Vec::new();
        let msg = b"Unknown device type\0";
        let len = 4 + msg.len();
        tlv.extend_from_slice(&(len as u16).to_ne_bytes());
        tlv.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        tlv.extend_from_slice(msg);
        while tlv.len() % 4 != 0 {
            tlv.push(0);
        }
        tlv.extend_from_slice(&8u16.to_ne_bytes());
        tlv.extend_from_slice(&NLMSGERR_ATTR_OFFS.to_ne_bytes());
        tlv.extend_from_slice(&36u32.to_ne_bytes());
        let e = parse_extack(&tlv);
        assert_eq!(e.message.as_deref(), Some("Unknown device type"));
        assert_eq!(e.offset, Some(36));
    }

    #[test]
    fn extack_garbage_does_not_panic() {
        for n in 0..64u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            let _ = parse_extack(&junk);
        }
        assert_eq!(parse_extack(&[0xff, 0xff, 1, 0]), ExtAck::default());
    }
}
