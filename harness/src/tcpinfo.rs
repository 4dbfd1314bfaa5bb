//! Decoder for `struct tcp_info`, the same bytes whether they come from
//! `getsockopt(TCP_INFO)` or from sock_diag's `INET_DIAG_INFO` attribute.
//!
//! Written by hand because the layout grows with every few kernel releases
//! and what matters here is *which fields the kernel filled*: a field that lies
//! past the length the kernel returned is absent (`None`), never a zero. The
//! table below is `include/uapi/linux/tcp.h`, in order, with the release that
//! added each tail.

use std::collections::BTreeMap;

/// How a field is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    U8,
    U16,
    U32,
    U64,
    /// `(byte offset is the field's offset) >> shift & mask`
    Bits {
        shift: u8,
        mask: u8,
    },
}

/// One field of `struct tcp_info`.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Name without the `tcpi_` prefix, as in the uapi header.
    pub name: &'static str,
    /// Byte offset in the struct.
    pub offset: usize,
    kind: Kind,
}

impl Field {
    /// Bytes the field occupies (a bitfield occupies its byte).
    pub fn size(&self) -> usize {
        match self.kind {
            Kind::U8 | Kind::Bits { .. } => 1,
            Kind::U16 => 2,
            Kind::U32 => 4,
            Kind::U64 => 8,
        }
    }
    /// The first struct length that contains this field.
    pub fn needs_len(&self) -> usize {
        self.offset + self.size()
    }
}

const fn f(name: &'static str, offset: usize, kind: Kind) -> Field {
    Field { name, offset, kind }
}

use Kind::*;

/// Every field of `struct tcp_info` this build knows, in layout order.
pub const FIELDS: &[Field] = &[
    f("state", 0, U8),
    f("ca_state", 1, U8),
    f("retransmits", 2, U8),
    f("probes", 3, U8),
    f("backoff", 4, U8),
    f("options", 5, U8),
    f("snd_wscale", 6, Bits { shift: 0, mask: 0x0f }),
    f("rcv_wscale", 6, Bits { shift: 4, mask: 0x0f }),
    f("delivery_rate_app_limited", 7, Bits { shift: 0, mask: 0x01 }),
    f("fastopen_client_fail", 7, Bits { shift: 1, mask: 0x03 }),
    f("rto", 8, U32),
    f("ato", 12, U32),
    f("snd_mss", 16, U32),
    f("rcv_mss", 20, U32),
    f("unacked", 24, U32),
    f("sacked", 28, U32),
    f("lost", 32, U32),
    f("retrans", 36, U32),
    f("fackets", 40, U32),
    f("last_data_sent", 44, U32),
    f("last_ack_sent", 48, U32),
    f("last_data_recv", 52, U32),
    f("last_ack_recv", 56, U32),
    f("pmtu", 60, U32),
    f("rcv_ssthresh", 64, U32),
    f("rtt", 68, U32),
    f("rttvar", 72, U32),
    f("snd_ssthresh", 76, U32),
    f("snd_cwnd", 80, U32),
    f("advmss", 84, U32),
    f("reordering", 88, U32),
    f("rcv_rtt", 92, U32),
    f("rcv_space", 96, U32),
    f("total_retrans", 100, U32),
    // 3.15
    f("pacing_rate", 104, U64),
    f("max_pacing_rate", 112, U64),
    // 4.1 / 4.2
    f("bytes_acked", 120, U64),
    f("bytes_received", 128, U64),
    f("segs_out", 136, U32),
    f("segs_in", 140, U32),
    // 4.6
    f("notsent_bytes", 144, U32),
    f("min_rtt", 148, U32),
    f("data_segs_in", 152, U32),
    f("data_segs_out", 156, U32),
    // 4.9
    f("delivery_rate", 160, U64),
    // 4.10
    f("busy_time", 168, U64),
    f("rwnd_limited", 176, U64),
    f("sndbuf_limited", 184, U64),
    // 4.18 / 4.19
    f("delivered", 192, U32),
    f("delivered_ce", 196, U32),
    f("bytes_sent", 200, U64),
    f("bytes_retrans", 208, U64),
    f("dsack_dups", 216, U32),
    f("reord_seen", 220, U32),
    // 5.4
    f("rcv_ooopack", 224, U32),
    f("snd_wnd", 228, U32),
    // 6.2
    f("rcv_wnd", 232, U32),
    f("rehash", 236, U32),
    // 6.7
    f("total_rto", 240, U16),
    f("total_rto_recoveries", 242, U16),
    f("total_rto_time", 244, U32),
    // 6.18 (AccECN)
    f("received_ce", 248, U32),
    f("delivered_e1_bytes", 252, U32),
    f("delivered_e0_bytes", 256, U32),
    f("delivered_ce_bytes", 260, U32),
    f("received_e1_bytes", 264, U32),
    f("received_e0_bytes", 268, U32),
    f("received_ce_bytes", 272, U32),
    f("accecn_fail_mode", 276, U16),
    f("accecn_opt_seen", 278, U16),
];

/// The struct lengths of known generations and the first release that
/// returns each. Used to name the generation a kernel reports and, in the
/// other direction, to predict the length from a kernel version.
pub const GENERATIONS: &[(usize, &str)] = &[
    (104, "2.6"),
    (120, "3.15"),
    (144, "4.2"),
    (160, "4.6"),
    (168, "4.9"),
    (192, "4.10"),
    (216, "4.18"),
    (224, "4.19"),
    (232, "5.4"),
    (240, "6.2"),
    (248, "6.7"),
    (280, "6.18"),
];

/// Predicts `sizeof(struct tcp_info)` for a kernel `(major, minor)`.
pub fn expected_len_for(version: (u32, u32)) -> usize {
    let mut len = 104;
    for (l, rel) in GENERATIONS {
        let mut it = rel.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let v = (it.next().unwrap_or(0), it.next().unwrap_or(0));
        if version >= v {
            len = *l;
        }
    }
    len
}

/// A decoded `struct tcp_info` together with the length the kernel returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpInfo {
    raw: Vec<u8>,
}

impl TcpInfo {
    /// Wraps the bytes the kernel returned (any length, even 0).
    pub fn from_bytes(raw: &[u8]) -> Self {
        TcpInfo { raw: raw.to_vec() }
    }

    /// The length the kernel returned.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// True when the kernel returned nothing.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Looks a field up by name (without `tcpi_`); `None` if the name is
    /// unknown or the field lies past the returned length.
    pub fn get(&self, name: &str) -> Option<u64> {
        let field = FIELDS.iter().find(|f| f.name == name)?;
        self.field(field)
    }

    /// Like [`TcpInfo::get`] for a name that must exist in [`FIELDS`]; panics
    /// on a misspelt name (a programming error), returns `None` when absent.
    pub fn must(&self, name: &str) -> Option<u64> {
        assert!(FIELDS.iter().any(|f| f.name == name), "unknown tcp_info field {name}");
        self.get(name)
    }

    fn field(&self, field: &Field) -> Option<u64> {
        if field.needs_len() > self.raw.len() {
            return None;
        }
        let b = &self.raw[field.offset..field.offset + field.size()];
        Some(match field.kind {
            U8 => b[0] as u64,
            U16 => u16::from_ne_bytes([b[0], b[1]]) as u64,
            U32 => u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as u64,
            U64 => u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            Bits { shift, mask } => ((b[0] >> shift) & mask) as u64,
        })
    }

    /// Every field present, by name.
    pub fn fields(&self) -> BTreeMap<&'static str, u64> {
        FIELDS
            .iter()
            .filter_map(|f| self.field(f).map(|v| (f.name, v)))
            .collect()
    }

    /// Names of the known fields the kernel did not fill.
    pub fn absent(&self) -> Vec<&'static str> {
        FIELDS
            .iter()
            .filter(|f| self.field(f).is_none())
            .map(|f| f.name)
            .collect()
    }

    /// The release that introduced this length, if it is a known one.
    pub fn generation(&self) -> Option<&'static str> {
        GENERATIONS.iter().find(|(l, _)| *l == self.raw.len()).map(|(_, r)| *r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_ordered_and_tiles_the_struct() {
        let mut end = 0;
        for w in FIELDS.windows(2) {
            assert!(w[0].offset <= w[1].offset, "{} before {}", w[0].name, w[1].name);
        }
        for f in FIELDS {
            if !matches!(f.kind, Bits { .. }) {
                assert!(f.offset >= end || f.offset == 6 || f.offset == 7, "{} overlaps", f.name);
            }
            end = end.max(f.needs_len());
        }
        assert_eq!(end, GENERATIONS.last().unwrap().0);
        // u64 fields are naturally aligned, as the C compiler lays them out.
        for f in FIELDS.iter().filter(|f| f.kind == U64) {
            assert_eq!(f.offset % 8, 0, "{}", f.name);
        }
    }

    #[test]
    fn short_struct_reports_absent_not_zero() {
        let mut raw = vec![0u8; 232];
        raw[144..148].copy_from_slice(&7u32.to_ne_bytes());
        let ti = TcpInfo::from_bytes(&raw);
        assert_eq!(ti.get("notsent_bytes"), Some(7));
        assert_eq!(ti.get("snd_wnd"), Some(0));
        assert_eq!(ti.get("rcv_wnd"), None);
        assert!(ti.absent().contains(&"rehash"));
        assert_eq!(ti.generation(), Some("5.4"));
    }

    #[test]
    fn any_length_decodes_without_panic() {
        for len in 0..=512 {
            let raw: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let ti = TcpInfo::from_bytes(&raw);
            let n = ti.fields().len() + ti.absent().len();
            assert_eq!(n, FIELDS.len());
        }
    }

    #[test]
    fn bitfields() {
        let mut raw = vec![0u8; 104];
        raw[6] = 0x7a; // rcv_wscale 7, snd_wscale 10
        raw[7] = 0b101; // app_limited 1, fastopen_client_fail 2
        let ti = TcpInfo::from_bytes(&raw);
        assert_eq!(ti.get("snd_wscale"), Some(10));
        assert_eq!(ti.get("rcv_wscale"), Some(7));
        assert_eq!(ti.get("delivery_rate_app_limited"), Some(1));
        assert_eq!(ti.get("fastopen_client_fail"), Some(2));
    }

    #[test]
    fn expected_lengths() {
        assert_eq!(expected_len_for((5, 10)), 232);
        assert_eq!(expected_len_for((6, 1)), 232);
        assert_eq!(expected_len_for((6, 12)), 248);
        assert_eq!(expected_len_for((6, 18)), 280);
        assert_eq!(expected_len_for((7, 2)), 280);
    }
}
