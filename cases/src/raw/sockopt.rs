//! sockopt.roundtrip: set then get the socket options of seed 004's
//! appendix B, each against a model of its get-after-set, and IP_OPTIONS
//! record route seen on the wire.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use kharness::wait::wait_for;
use kharness::{sys, CaseDef, CaseError, Ctx, NetNs};
use netlink_packet_route::link::LinkAttribute;
use nix::sys::socket::{self, ControlMessageOwned, MsgFlags, SockaddrIn};

use super::{
    check_mib, errno_name, get_link, ip_out, mib, net3, port_of, udp_bound, Net3Opts, QUIET, RECEIVER, SENDER, WAIT,
};

const SO_NO_CHECK: i32 = 11;
const SO_BSDCOMPAT: i32 = 14;
const SOL_UDP: i32 = 17;
const UDP_CORK: i32 = 1;
const SOL_RAW: i32 = 255;
const ICMP_FILTER: i32 = 1;
const SOL_PACKET: i32 = 263;
const PACKET_ADD_MEMBERSHIP: i32 = 1;
const PACKET_DROP_MEMBERSHIP: i32 = 2;
const PACKET_MR_PROMISC: u16 = 1;
const IPOPT_NOP: u8 = 1;
const IPOPT_RR: u8 = 7;

/// Namespace sysctls the model reads its defaults from (set in the sender
/// so that a kernel default cannot pass for the model's value).
const DEFAULT_TTL: i64 = 77;
const KEEPALIVE_TIME: i64 = 600;
const KEEPALIVE_INTVL: i64 = 30;
const KEEPALIVE_PROBES: i64 = 5;
const SYN_RETRIES: i64 = 4;
const FIN_TIMEOUT: i64 = 45;

/// `SOCK_MIN_SNDBUF` / `SOCK_MIN_RCVBUF` on x86_64 (see tcp.sndbuf_setget).
const SOCK_MIN_SNDBUF: i64 = 2 * (2048 + 256);
const SOCK_MIN_RCVBUF: i64 = 2048 + 256;
/// `TCP_FIN_TIMEOUT_MAX / HZ`.
const FIN_TIMEOUT_MAX: i64 = 120;

/// `secs_to_retrans()` of net/ipv4/tcp.c (TCP_DEFER_ACCEPT's encoding).
fn secs_to_retrans(seconds: i64, mut timeout: i64, rto_max: i64) -> i64 {
    let mut res = 0;
    if seconds > 0 {
        let mut period = timeout;
        res = 1;
        while seconds > period && res < 255 {
            res += 1;
            timeout <<= 1;
            if timeout > rto_max {
                timeout = rto_max;
            }
            period += timeout;
        }
    }
    res
}

/// `retrans_to_secs()` of net/ipv4/tcp.c.
fn retrans_to_secs(retrans: i64, mut timeout: i64, rto_max: i64) -> i64 {
    let mut period = 0;
    if retrans > 0 {
        period = timeout;
        let mut r = retrans;
        while {
            r -= 1;
            r > 0
        } {
            timeout <<= 1;
            if timeout > rto_max {
                timeout = rto_max;
            }
            period += timeout;
        }
    }
    period
}

#[derive(Debug, Clone, Copy)]
enum Sock {
    Udp,
    Tcp,
    RawIcmp,
    RawUdp,
    Unix,
}

/// What the model says one get-after-set (or get) shows.
#[derive(Debug, Clone)]
enum Want {
    Val(i64),
    SetErr(&'static str),
    GetErr(&'static str),
}

impl Want {
    fn render(&self) -> String {
        match self {
            Want::Val(v) => v.to_string(),
            Want::SetErr(e) => format!("set {e}"),
            Want::GetErr(e) => format!("get {e}"),
        }
    }
}

struct Row {
    sock: Sock,
    label: String,
    level: i32,
    name: i32,
    /// The option read back (differs for the set-only *FORCE options).
    get: i32,
    set: Option<i32>,
    want: Want,
    why: &'static str,
}

fn row(sock: Sock, label: &str, level: i32, name: i32, set: Option<i32>, want: Want, why: &'static str) -> Row {
    Row {
        sock,
        label: label.to_string(),
        level,
        name,
        get: name,
        set,
        want,
        why,
    }
}

fn open(ns: &NetNs, s: Sock) -> io::Result<OwnedFd> {
    match s {
        Sock::Udp => ns.socket(libc::AF_INET, libc::SOCK_DGRAM, 0),
        Sock::Tcp => ns.socket(libc::AF_INET, libc::SOCK_STREAM, 0),
        Sock::RawIcmp => ns.socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
        Sock::RawUdp => ns.socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_UDP),
        Sock::Unix => ns.socket(libc::AF_UNIX, libc::SOCK_STREAM, 0),
    }
}

/// Set `name` (if asked) then get `get`, on `fd`, rendered as the model
/// renders it.
fn observe_int(fd: &OwnedFd, level: i32, name: i32, get: i32, set: Option<i32>) -> String {
    if let Some(v) = set {
        if let Err(e) = sys::setsockopt_int(fd.as_fd(), level, name, v) {
            return format!("set {}", errno_name(&e));
        }
    }
    match sys::getsockopt_int(fd.as_fd(), level, get) {
        Ok(v) => v.to_string(),
        Err(e) => format!("get {}", errno_name(&e)),
    }
}

fn rows(wmem_max: i64, rmem_max: i64, userns: bool, linger2_clamp: i64) -> Vec<Row> {
    use Sock::*;
    use Want::*;
    let (so, ip, tcp) = (libc::SOL_SOCKET, libc::IPPROTO_IP, libc::IPPROTO_TCP);
    const BOOL: &str = "a boolean option stores val != 0 (sock_valbool_flag / inet_assign_bit) and reads back 0 or 1";
    let mut v = vec![
        // Socket level (sk_setsockopt / sk_getsockopt, net/core/sock.c).
        row(Udp, "SO_DEBUG.set_1", so, libc::SO_DEBUG, Some(1), if userns { SetErr("EACCES") } else { Val(1) }, "SOCK_DBG; setting it needs sockopt_capable(CAP_NET_ADMIN), i.e. in the initial user namespace (EACCES otherwise)"),
        row(Udp, "SO_REUSEADDR.set_7", so, libc::SO_REUSEADDR, Some(7), Val(1), "sk_reuse = valbool ? SK_CAN_REUSE : SK_NO_REUSE"),
        row(Udp, "SO_TYPE.get", so, libc::SO_TYPE, None, Val(libc::SOCK_DGRAM as i64), "sk->sk_type"),
        row(Udp, "SO_TYPE.set", so, libc::SO_TYPE, Some(1), SetErr("ENOPROTOOPT"), "read-only: not in sk_setsockopt()'s switch"),
        row(Udp, "SO_ERROR.get", so, libc::SO_ERROR, None, Val(0), "sock_error(): no pending error"),
        row(Udp, "SO_ERROR.set", so, libc::SO_ERROR, Some(1), SetErr("ENOPROTOOPT"), "read-only"),
        row(Udp, "SO_DONTROUTE.set_1", so, libc::SO_DONTROUTE, Some(1), Val(1), BOOL),
        row(Udp, "SO_BROADCAST.set_1", so, libc::SO_BROADCAST, Some(1), Val(1), BOOL),
        row(Udp, "SO_SNDBUF.set_65536", so, libc::SO_SNDBUF, Some(65536), Val(131072), "sk_sndbuf = max(2 * min(val, wmem_max), SOCK_MIN_SNDBUF): doubled for overhead"),
        row(Udp, "SO_SNDBUF.set_1", so, libc::SO_SNDBUF, Some(1), Val(SOCK_MIN_SNDBUF), "raised to SOCK_MIN_SNDBUF = 2 * (2048 + SKB_DATA_ALIGN(sizeof(struct sk_buff)))"),
        row(Udp, "SO_RCVBUF.set_65536", so, libc::SO_RCVBUF, Some(65536), Val(131072), "__sock_set_rcvbuf(): max(2 * min(val, rmem_max), SOCK_MIN_RCVBUF)"),
        row(Udp, "SO_RCVBUF.set_1", so, libc::SO_RCVBUF, Some(1), Val(SOCK_MIN_RCVBUF), "raised to SOCK_MIN_RCVBUF"),
        row(Udp, "SO_KEEPALIVE.set_1", so, libc::SO_KEEPALIVE, Some(1), Val(1), BOOL),
        row(Udp, "SO_OOBINLINE.set_1", so, libc::SO_OOBINLINE, Some(1), Val(1), BOOL),
        row(Udp, "SO_NO_CHECK.set_1", so, SO_NO_CHECK, Some(1), Val(1), "sk->sk_no_check_tx = valbool"),
        row(Udp, "SO_PRIORITY.set_6", so, libc::SO_PRIORITY, Some(6), Val(6), "0..6 for anyone"),
        row(Udp, "SO_PRIORITY.set_7", so, libc::SO_PRIORITY, Some(7), Val(7), "above 6 needs CAP_NET_RAW or CAP_NET_ADMIN in the namespace's user namespace: we have it"),
        row(Udp, "SO_BSDCOMPAT.set_1", so, SO_BSDCOMPAT, Some(1), Val(0), "obsolete: accepted and ignored; sk_getsockopt() leaves the value 0"),
        // IP level (do_ip_setsockopt / do_ip_getsockopt, net/ipv4/ip_sockglue.c).
        row(Udp, "IP_TOS.set_0x13", ip, libc::IP_TOS, Some(0x13), Val(0x13), "__ip_sock_set_tos(): a datagram socket keeps the ECN bits"),
        row(Tcp, "IP_TOS.tcp_set_0x13", ip, libc::IP_TOS, Some(0x13), Val(0x10), "__ip_sock_set_tos(): SOCK_STREAM replaces the ECN bits with its own (0)"),
        row(Udp, "IP_TTL.get", ip, libc::IP_TTL, None, Val(DEFAULT_TTL), "uc_ttl -1 reads as the namespace's net.ipv4.ip_default_ttl"),
        row(Udp, "IP_TTL.set_1", ip, libc::IP_TTL, Some(1), Val(1), "1..255 stored"),
        row(Udp, "IP_TTL.set_255", ip, libc::IP_TTL, Some(255), Val(255), "1..255 stored"),
        row(Udp, "IP_TTL.set_0", ip, libc::IP_TTL, Some(0), SetErr("EINVAL"), "val != -1 && (val < 1 || val > 255) -> EINVAL"),
        row(Udp, "IP_TTL.set_256", ip, libc::IP_TTL, Some(256), SetErr("EINVAL"), "val != -1 && (val < 1 || val > 255) -> EINVAL"),
        row(Udp, "IP_TTL.set_-1", ip, libc::IP_TTL, Some(-1), Val(DEFAULT_TTL), "-1 restores the namespace default"),
        row(Udp, "IP_HDRINCL.udp_set_1", ip, libc::IP_HDRINCL, Some(1), SetErr("ENOPROTOOPT"), "IP_HDRINCL: sk_type != SOCK_RAW -> ENOPROTOOPT"),
        row(RawUdp, "IP_HDRINCL.raw_set_1", ip, libc::IP_HDRINCL, Some(1), Val(1), BOOL),
        row(Udp, "IP_RECVERR.set_5", ip, libc::IP_RECVERR, Some(5), Val(1), BOOL),
        row(Udp, "IP_RECVTTL.set_3", ip, libc::IP_RECVTTL, Some(3), Val(1), BOOL),
        row(Udp, "IP_RECVTOS.set_3", ip, libc::IP_RECVTOS, Some(3), Val(1), BOOL),
        row(Udp, "IP_PKTINFO.set_3", ip, libc::IP_PKTINFO, Some(3), Val(1), BOOL),
        row(Udp, "IP_RECVOPTS.set_3", ip, libc::IP_RECVOPTS, Some(3), Val(1), BOOL),
        row(Udp, "IP_RETOPTS.set_3", ip, libc::IP_RETOPTS, Some(3), Val(1), BOOL),
        row(Udp, "IP_PASSSEC.set_3", ip, libc::IP_PASSSEC, Some(3), Val(1), BOOL),
        row(Udp, "IP_FREEBIND.set_3", ip, libc::IP_FREEBIND, Some(3), Val(1), BOOL),
        row(Udp, "IP_TRANSPARENT.set_3", ip, libc::IP_TRANSPARENT, Some(3), Val(1), "boolean; setting it needs CAP_NET_RAW or CAP_NET_ADMIN in the namespace's user namespace"),
        row(Udp, "IP_MTU_DISCOVER.get", ip, libc::IP_MTU_DISCOVER, None, Val(libc::IP_PMTUDISC_WANT as i64), "inet_create(): IP_PMTUDISC_WANT unless net.ipv4.ip_no_pmtu_disc"),
        row(Udp, "IP_MTU_DISCOVER.set_5", ip, libc::IP_MTU_DISCOVER, Some(5), Val(5), "IP_PMTUDISC_DONT..IP_PMTUDISC_OMIT (0..5) stored"),
        row(Udp, "IP_MTU_DISCOVER.set_6", ip, libc::IP_MTU_DISCOVER, Some(6), SetErr("EINVAL"), "val > IP_PMTUDISC_OMIT -> EINVAL"),
        row(Udp, "IP_MTU.unconnected", ip, libc::IP_MTU, None, GetErr("ENOTCONN"), "IP_MTU needs a cached route: __sk_dst_get() is NULL -> ENOTCONN"),
        row(Udp, "IP_MTU.set", ip, libc::IP_MTU, Some(1400), SetErr("ENOPROTOOPT"), "IP_MTU is read-only for IPv4"),
        row(Udp, "IP_ROUTER_ALERT.udp_set_1", ip, libc::IP_ROUTER_ALERT, Some(1), SetErr("EINVAL"), "ip_ra_control(): only SOCK_RAW sockets other than IPPROTO_RAW"),
        row(Udp, "IP_PKTOPTIONS.udp_get", ip, libc::IP_PKTOPTIONS, None, GetErr("ENOPROTOOPT"), "IP_PKTOPTIONS: sk_type != SOCK_STREAM -> ENOPROTOOPT"),
        // UDP.
        row(Udp, "UDP_CORK.set_1", SOL_UDP, UDP_CORK, Some(1), Val(1), "udp_lib_setsockopt(): UDP_CORK boolean"),
        // TCP (do_tcp_setsockopt / do_tcp_getsockopt), unconnected socket.
        row(Tcp, "TCP_NODELAY.set_5", tcp, libc::TCP_NODELAY, Some(5), Val(1), "tcp_sock_set_nodelay(): TCP_NAGLE_OFF bit, read back as 0/1"),
        row(Tcp, "TCP_CORK.set_5", tcp, libc::TCP_CORK, Some(5), Val(1), "__tcp_sock_set_cork(): TCP_NAGLE_CORK bit"),
        row(Tcp, "TCP_MAXSEG.get", tcp, libc::TCP_MAXSEG, None, Val(536), "unconnected: mss_cache is TCP_MSS_DEFAULT (536)"),
        row(Tcp, "TCP_MAXSEG.set_1000", tcp, libc::TCP_MAXSEG, Some(1000), Val(1000), "user_mss is reported while CLOSE or LISTEN"),
        row(Tcp, "TCP_MAXSEG.set_87", tcp, libc::TCP_MAXSEG, Some(87), SetErr("EINVAL"), "val < TCP_MIN_MSS (88) -> EINVAL"),
        row(Tcp, "TCP_MAXSEG.set_32768", tcp, libc::TCP_MAXSEG, Some(32768), SetErr("EINVAL"), "val > MAX_TCP_WINDOW (32767) -> EINVAL"),
        row(Tcp, "TCP_KEEPIDLE.get", tcp, libc::TCP_KEEPIDLE, None, Val(KEEPALIVE_TIME), "keepalive_time_when(): the namespace's net.ipv4.tcp_keepalive_time"),
        row(Tcp, "TCP_KEEPIDLE.set_32767", tcp, libc::TCP_KEEPIDLE, Some(32767), Val(32767), "1..MAX_TCP_KEEPIDLE (32767) stored as seconds * HZ"),
        row(Tcp, "TCP_KEEPIDLE.set_0", tcp, libc::TCP_KEEPIDLE, Some(0), SetErr("EINVAL"), "val < 1 -> EINVAL"),
        row(Tcp, "TCP_KEEPIDLE.set_32768", tcp, libc::TCP_KEEPIDLE, Some(32768), SetErr("EINVAL"), "val > MAX_TCP_KEEPIDLE -> EINVAL"),
        row(Tcp, "TCP_KEEPINTVL.get", tcp, libc::TCP_KEEPINTVL, None, Val(KEEPALIVE_INTVL), "keepalive_intvl_when(): net.ipv4.tcp_keepalive_intvl"),
        row(Tcp, "TCP_KEEPINTVL.set_0", tcp, libc::TCP_KEEPINTVL, Some(0), SetErr("EINVAL"), "val < 1 || val > MAX_TCP_KEEPINTVL -> EINVAL"),
        row(Tcp, "TCP_KEEPINTVL.set_32767", tcp, libc::TCP_KEEPINTVL, Some(32767), Val(32767), "1..MAX_TCP_KEEPINTVL (32767)"),
        row(Tcp, "TCP_KEEPCNT.get", tcp, libc::TCP_KEEPCNT, None, Val(KEEPALIVE_PROBES), "keepalive_probes(): net.ipv4.tcp_keepalive_probes"),
        row(Tcp, "TCP_KEEPCNT.set_127", tcp, libc::TCP_KEEPCNT, Some(127), Val(127), "1..MAX_TCP_KEEPCNT (127)"),
        row(Tcp, "TCP_KEEPCNT.set_128", tcp, libc::TCP_KEEPCNT, Some(128), SetErr("EINVAL"), "val > MAX_TCP_KEEPCNT -> EINVAL"),
        row(Tcp, "TCP_SYNCNT.get", tcp, libc::TCP_SYNCNT, None, Val(SYN_RETRIES), "icsk_syn_retries 0 reads as net.ipv4.tcp_syn_retries"),
        row(Tcp, "TCP_SYNCNT.set_127", tcp, libc::TCP_SYNCNT, Some(127), Val(127), "1..MAX_TCP_SYNCNT (127)"),
        row(Tcp, "TCP_SYNCNT.set_0", tcp, libc::TCP_SYNCNT, Some(0), SetErr("EINVAL"), "val < 1 -> EINVAL"),
        row(Tcp, "TCP_SYNCNT.set_128", tcp, libc::TCP_SYNCNT, Some(128), SetErr("EINVAL"), "val > MAX_TCP_SYNCNT -> EINVAL"),
        row(Tcp, "TCP_LINGER2.get", tcp, libc::TCP_LINGER2, None, Val(FIN_TIMEOUT), "linger2 0 reads as net.ipv4.tcp_fin_timeout"),
        row(Tcp, "TCP_LINGER2.set_30", tcp, libc::TCP_LINGER2, Some(30), Val(30), "stored as val * HZ"),
        row(Tcp, "TCP_LINGER2.set_-1", tcp, libc::TCP_LINGER2, Some(-1), Val(-1), "negative: linger2 = -1 (no FIN_WAIT2 timeout), read back as -1"),
        row(Tcp, "TCP_LINGER2.set_0", tcp, libc::TCP_LINGER2, Some(0), Val(FIN_TIMEOUT), "0 means the sysctl"),
        row(Tcp, "TCP_LINGER2.set_1000", tcp, libc::TCP_LINGER2, Some(1000), Val(linger2_clamp), "clamped to TCP_FIN_TIMEOUT_MAX (120 s) since 5.8; before, values above tcp_fin_timeout became 0, i.e. the sysctl"),
        row(Tcp, "TCP_DEFER_ACCEPT.set_10", tcp, libc::TCP_DEFER_ACCEPT, Some(10), Val(retrans_to_secs(secs_to_retrans(10, 1, 120), 1, 120)), "stored as a retransmission count, secs_to_retrans(10, 1, 120) = 4, read back as retrans_to_secs(4) = 1+2+4+8"),
        row(Tcp, "TCP_DEFER_ACCEPT.set_1", tcp, libc::TCP_DEFER_ACCEPT, Some(1), Val(retrans_to_secs(secs_to_retrans(1, 1, 120), 1, 120)), "one retransmission = 1 s"),
        row(Tcp, "TCP_DEFER_ACCEPT.set_0", tcp, libc::TCP_DEFER_ACCEPT, Some(0), Val(0), "0 turns it off"),
        row(Tcp, "TCP_WINDOW_CLAMP.get", tcp, libc::TCP_WINDOW_CLAMP, None, Val(0), "unconnected: window_clamp 0"),
        row(Tcp, "TCP_WINDOW_CLAMP.set_100", tcp, libc::TCP_WINDOW_CLAMP, Some(100), Val(SOCK_MIN_RCVBUF / 2), "tcp_set_window_clamp(): raised to SOCK_MIN_RCVBUF / 2"),
        row(Tcp, "TCP_WINDOW_CLAMP.set_100000", tcp, libc::TCP_WINDOW_CLAMP, Some(100000), Val(100000), "stored"),
        row(Tcp, "TCP_QUICKACK.get", tcp, libc::TCP_QUICKACK, None, Val(1), "!inet_csk_in_pingpong_mode(): a new socket is in quick-ack mode"),
        row(Tcp, "TCP_QUICKACK.set_0", tcp, libc::TCP_QUICKACK, Some(0), Val(0), "0 enters pingpong (delayed-ACK) mode"),
        row(Tcp, "TCP_INFO.set", tcp, libc::TCP_INFO, Some(1), SetErr("ENOPROTOOPT"), "TCP_INFO is read-only"),
        // RAW.
        row(RawUdp, "ICMP_FILTER.non_icmp", SOL_RAW, ICMP_FILTER, Some(1), SetErr("EOPNOTSUPP"), "raw_seticmpfilter(): only for inet_num == IPPROTO_ICMP"),
        // AF_UNIX.
        row(Unix, "SO_PASSCRED.set_1", so, libc::SO_PASSCRED, Some(1), Val(1), "SOCK_PASSCRED boolean (SOL_SOCKET, AF_UNIX/netlink)"),
    ];
    if wmem_max * 2 <= i32::MAX as i64 {
        v.push(row(
            Udp,
            "SO_SNDBUF.set_2x_wmem_max",
            so,
            libc::SO_SNDBUF,
            Some((wmem_max * 2) as i32),
            Val(wmem_max * 2),
            "min(val, net.core.wmem_max) then doubled",
        ));
    }
    if rmem_max * 2 <= i32::MAX as i64 {
        v.push(row(
            Udp,
            "SO_RCVBUF.set_2x_rmem_max",
            so,
            libc::SO_RCVBUF,
            Some((rmem_max * 2) as i32),
            Val(rmem_max * 2),
            "min(val, net.core.rmem_max) then doubled",
        ));
    }
    if wmem_max * 4 <= i32::MAX as i64 {
        let want = if userns { SetErr("EPERM") } else { Val(wmem_max * 4) };
        let mut r = row(Udp, "SO_SNDBUFFORCE.set_2x_wmem_max", so, libc::SO_SNDBUFFORCE, Some((wmem_max * 2) as i32), want, "CAP_NET_ADMIN (initial user namespace) skips the wmem_max clamp; read back through SO_SNDBUF (the FORCE options are set-only)");
        r.get = libc::SO_SNDBUF;
        v.push(r);
    }
    if rmem_max * 4 <= i32::MAX as i64 {
        let want = if userns { SetErr("EPERM") } else { Val(rmem_max * 4) };
        let mut r = row(
            Udp,
            "SO_RCVBUFFORCE.set_2x_rmem_max",
            so,
            libc::SO_RCVBUFFORCE,
            Some((rmem_max * 2) as i32),
            want,
            "CAP_NET_ADMIN (initial user namespace) skips the rmem_max clamp; read back through SO_RCVBUF",
        );
        r.get = libc::SO_RCVBUF;
        v.push(r);
        v.push(row(
            Udp,
            "SO_SNDBUFFORCE.get",
            so,
            libc::SO_SNDBUFFORCE,
            None,
            GetErr("ENOPROTOOPT"),
            "set-only: sk_getsockopt() has no SO_SNDBUFFORCE",
        ));
    }
    v
}

/// The seed's record-route option: NOP, then RR with room for 9 addresses.
fn rr_option() -> Vec<u8> {
    let mut o = vec![0u8; 40];
    o[0] = IPOPT_NOP;
    o[1] = IPOPT_RR;
    o[2] = 39;
    o[3] = 4; // IPOPT_MINOFF
    o
}

/// The addresses recorded in an RR option (`opts` starts at the NOP) and
/// its pointer.
fn rr_recorded(opts: &[u8]) -> Option<(u8, Vec<String>)> {
    let rr = opts.iter().position(|b| *b == IPOPT_RR)?;
    let ptr = *opts.get(rr + 2)?;
    let n = (usize::from(ptr).saturating_sub(4)) / 4;
    let addrs = (0..n)
        .filter_map(|i| opts.get(rr + 3 + i * 4..rr + 7 + i * 4))
        .map(|a| std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string())
        .collect();
    Some((ptr, addrs))
}

fn host_sysctl(path: &str) -> Result<i64, CaseError> {
    let t = std::fs::read_to_string(path).map_err(|e| CaseError::Harness(format!("{path}: {e}")))?;
    t.trim()
        .parse()
        .map_err(|_| CaseError::Harness(format!("{path}: `{}` is not a number", t.trim())))
}

/// sockopt.roundtrip
pub static ROUNDTRIP: CaseDef = CaseDef {
    id: "sockopt.roundtrip",
    variants: &[],
    summary: "seed 004's appendix B options: get after set matches a model per option; IP_OPTIONS record route fills in on the wire",
    drives: "On fresh sockets in the sender namespace (UDP, TCP, raw UDP/ICMP, unix, packet), one \
        setsockopt then getsockopt per row of a table: booleans with non-0/1 values, buffer sizes around \
        the limits, ranges with out-of-range values, read-only options set, getsockopt-only options; \
        ICMP_FILTER and PACKET_ADD/DROP_MEMBERSHIP (promiscuous) on the receiver's veth; IP_MTU on a \
        connected UDP socket. Then a UDP socket with the seed's IP_OPTIONS record-route option (NOP, RR, \
        length 39, pointer 4) sends a datagram to the receiver, whose UDP socket has IP_RECVOPTS on and \
        whose raw IPPROTO_UDP socket watches.",
    observes: "Every getsockopt value or errno; the receiver veth's IFLA_PROMISCUITY (RTM_GETLINK); the \
        IP_RECVOPTS control message and the header the raw socket reads; the MIB of both namespaces.",
    predicts: "Each row's model (see the observation names): booleans read 1 whatever non-zero value was \
        set; SO_SNDBUF/SO_RCVBUF double and clamp to net.core.[wr]mem_max and the minimum, the FORCE \
        variants skip the maximum (EPERM in a user namespace); IP_TTL 1..255, -1 = the namespace default \
        (set to 77), else EINVAL; IP_TOS keeps ECN bits on UDP and not on TCP; TCP keepalive/syncnt/ \
        linger2 defaults are the namespace's sysctls and out-of-range values give EINVAL; \
        TCP_DEFER_ACCEPT rounds 10 s up to 15 s (retransmission steps); read-only options give \
        ENOPROTOOPT on set. IP_OPTIONS reads back as set; IP_MTU of a connected socket is 1500. \
        Promiscuity goes 0 -> 1 -> 0. On the wire the RR option carries 198.18.0.1 (filled in by the \
        sender) and 198.18.0.2 (by the receiver, on input), pointer 12, in both the IP_RECVOPTS message \
        and the raw socket's header.",
    why: "sk_setsockopt()/sk_getsockopt() (net/core/sock.c), do_ip_setsockopt()/do_ip_getsockopt() \
        (net/ipv4/ip_sockglue.c), do_tcp_setsockopt()/do_tcp_getsockopt() (net/ipv4/tcp.c), \
        udp_lib_setsockopt(), raw_seticmpfilter(), packet_setsockopt() -> packet_mc_add() -> \
        dev_set_promiscuity(). IP_OPTIONS: ip_options_get() -> ip_options_compile() (no skb) advances \
        the RR pointer and sets rr_needaddr, ip_options_undo() puts it back for getsockopt; \
        ip_options_build() writes the outgoing address (ip_rt_get_source) into the first slot; on \
        input, ip_rcv_options() -> ip_options_compile() with the skb's route records the receiving \
        address (spec_dst_fill) in the next slot, in the packet itself, before delivery; \
        ip_cmsg_recv_opts() copies the header's options into IP_RECVOPTS.",
    kernels: "TCP_LINGER2 is clamped to TCP_FIN_TIMEOUT_MAX from 5.8 and in stable backports (4.19.290 \
        and others, 2023); before, a value above tcp_fin_timeout meant 0, i.e. the sysctl; IP_PMTUDISC_OMIT (5) since 3.15; ip_default_ttl and the tcp_keepalive_* \
        sysctls per namespace since 4.x; SO_PRIORITY > 6 checked against the namespace's user namespace \
        since 5.x. \
        SO_RCVBUF/SO_SNDBUF set to twice the maximum come back doubled from the clamp at net.core.rmem_max and wmem_max, which default to 4 MiB from a6d4f25888b8 (7.2, the host's 6.18; 212992 before); TCP_INFO's length is tcp.info_diag's gate. Ip.OutTransmits (IPSTATS_MIB_OUTPKTS under its own name) is exported from 6.3 and predicted only where it is: absent on 5.10 and 6.1.",
    shell: "python3 -c 'import socket as s; k=s.socket(s.AF_INET,s.SOCK_DGRAM); k.setsockopt(s.IPPROTO_IP,s.IP_TTL,256)'; ping -R 198.18.0.2",
    source: "seed 004 (appendix B: socket options; examples: set and get an option, record route option)",
    timeout: Duration::from_secs(15),
    run,
};

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    let mut opts = Net3Opts::default();
    for (k, v) in [
        ("net.ipv4.ip_default_ttl", DEFAULT_TTL),
        ("net.ipv4.tcp_keepalive_time", KEEPALIVE_TIME),
        ("net.ipv4.tcp_keepalive_intvl", KEEPALIVE_INTVL),
        ("net.ipv4.tcp_keepalive_probes", KEEPALIVE_PROBES),
        ("net.ipv4.tcp_syn_retries", SYN_RETRIES),
        ("net.ipv4.tcp_fin_timeout", FIN_TIMEOUT),
    ] {
        opts.sysctls.push(("sender", k, v.to_string()));
    }
    let net = net3(opts)?;
    let s = net.sender();
    let wmem_max = host_sysctl("/proc/sys/net/core/wmem_max")?;
    let rmem_max = host_sysctl("/proc/sys/net/core/rmem_max")?;
    ctx.observe("net.core.wmem_max", wmem_max);
    ctx.observe("net.core.rmem_max", rmem_max);
    let userns = kharness::privilege::in_user_namespace();
    // "net: Replace the limit of TCP_LINGER2 with TCP_FIN_TIMEOUT_MAX": 5.8,
    // backported to 4.19.290 in 2023: a stable backport, so the real version
    // (Debian's 4.19.0-27 is 4.19.316), not the release's.
    let k = &ctx.kernel;
    let linger2_clamp = if k.at_least(5, 8) || (k.at_least_patch(4, 19, 290) && !k.at_least(4, 20)) {
        FIN_TIMEOUT_MAX
    } else {
        FIN_TIMEOUT
    };
    ctx.observe(
        "gate.tcp_linger2_clamp",
        if linger2_clamp == FIN_TIMEOUT_MAX {
            "5.8+ (or 4.19.290+): TCP_FIN_TIMEOUT_MAX"
        } else {
            "before 5.8: tcp_fin_timeout"
        },
    );
    for r in rows(wmem_max, rmem_max, userns, linger2_clamp) {
        let fd = open(s, r.sock)?;
        let got = observe_int(&fd, r.level, r.name, r.get, r.set);
        ctx.check_eq(r.label.clone(), r.want.render(), got, r.why);
    }

    // Options that are not an int.
    let udp = open(s, Sock::Udp)?;
    let ling = [5i32, 7i32].iter().flat_map(|v| v.to_ne_bytes()).collect::<Vec<u8>>();
    sys::setsockopt_bytes(udp.as_fd(), libc::SOL_SOCKET, libc::SO_LINGER, &ling)?;
    let got = sys::getsockopt_bytes(udp.as_fd(), libc::SOL_SOCKET, libc::SO_LINGER, 8)?;
    let pair = (got.len() == 8).then(|| {
        (
            i32::from_ne_bytes([got[0], got[1], got[2], got[3]]),
            i32::from_ne_bytes([got[4], got[5], got[6], got[7]]),
        )
    });
    ctx.check_eq(
        "SO_LINGER.set_5_7",
        "1,7",
        pair.map(|(a, b)| format!("{a},{b}")),
        "l_onoff reads sock_flag(SOCK_LINGER) (0/1); l_linger = sk_lingertime / HZ",
    );
    let icmp = open(s, Sock::RawIcmp)?;
    let mask: u32 = 0x0000_0809;
    sys::setsockopt_bytes(icmp.as_fd(), SOL_RAW, ICMP_FILTER, &mask.to_ne_bytes())?;
    let got = sys::getsockopt_bytes(icmp.as_fd(), SOL_RAW, ICMP_FILTER, 4)?;
    ctx.check_eq(
        "ICMP_FILTER.set_0x809",
        i64::from(mask),
        (got.len() == 4).then(|| i64::from(u32::from_ne_bytes([got[0], got[1], got[2], got[3]]))),
        "raw_geticmpfilter() returns the stored 32-bit mask",
    );
    let tcp = open(s, Sock::Tcp)?;
    let info = sys::getsockopt_bytes(tcp.as_fd(), libc::IPPROTO_TCP, libc::TCP_INFO, 512)?;
    ctx.check_eq(
        "TCP_INFO.get_len",
        kharness::tcpinfo::expected_len_for((ctx.kernel.version.0, ctx.kernel.version.1)) as i64,
        info.len() as i64,
        "do_tcp_getsockopt(TCP_INFO) copies min(optlen, sizeof(struct tcp_info)); the struct's size by \
         kernel version (kharness::tcpinfo::GENERATIONS)",
    );
    let rr = rr_option();
    let u2 = open(s, Sock::Udp)?;
    sys::setsockopt_bytes(u2.as_fd(), libc::IPPROTO_IP, libc::IP_OPTIONS, &rr)?;
    let back = sys::getsockopt_bytes(u2.as_fd(), libc::IPPROTO_IP, libc::IP_OPTIONS, 40)?;
    ctx.check_eq(
        "IP_OPTIONS.get_after_set_rr",
        true,
        back == rr,
        "ip_options_undo() restores the RR pointer the compile step advanced: get returns what was set",
    );
    let conn = open(s, Sock::Udp)?;
    socket::connect(
        conn.as_raw_fd(),
        &SockaddrIn::new(RECEIVER[0], RECEIVER[1], RECEIVER[2], RECEIVER[3], 9),
    )?;
    ctx.check_eq(
        "IP_MTU.connected",
        "1500",
        observe_int(&conn, libc::IPPROTO_IP, libc::IP_MTU, libc::IP_MTU, None),
        "dst_mtu() of the route: the veth's MTU (ETH_DATA_LEN)",
    );

    // PACKET_ADD_MEMBERSHIP: promiscuity of the receiver's veth.
    let r = net.receiver();
    let ri = net.r_ifindex();
    let promisc = |ns: &NetNs| -> Result<Option<u32>, CaseError> {
        Ok(get_link(ns, ri)?.attributes.iter().find_map(|a| match a {
            LinkAttribute::Promiscuity(p) => Some(*p),
            _ => None,
        }))
    };
    let pk = r.socket(libc::AF_PACKET, libc::SOCK_RAW, 0)?;
    let mut mreq = Vec::with_capacity(16);
    mreq.extend_from_slice(&(ri as i32).to_ne_bytes());
    mreq.extend_from_slice(&PACKET_MR_PROMISC.to_ne_bytes());
    mreq.extend_from_slice(&0u16.to_ne_bytes());
    mreq.extend_from_slice(&[0u8; 8]);
    ctx.check_eq(
        "PACKET_ADD_MEMBERSHIP.promiscuity_before",
        0,
        promisc(r)?.map(i64::from),
        "nothing asked for promiscuous mode",
    );
    sys::setsockopt_bytes(pk.as_fd(), SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq)?;
    ctx.check_eq(
        "PACKET_ADD_MEMBERSHIP.promiscuity",
        1,
        promisc(r)?.map(i64::from),
        "packet_mc_add() -> packet_dev_mc() -> dev_set_promiscuity(dev, 1)",
    );
    ctx.check_eq(
        "PACKET_ADD_MEMBERSHIP.get",
        "get ENOPROTOOPT",
        observe_int(&pk, SOL_PACKET, PACKET_ADD_MEMBERSHIP, PACKET_ADD_MEMBERSHIP, None),
        "packet_getsockopt() has no membership option",
    );
    sys::setsockopt_bytes(pk.as_fd(), SOL_PACKET, PACKET_DROP_MEMBERSHIP, &mreq)?;
    ctx.check_eq(
        "PACKET_DROP_MEMBERSHIP.promiscuity",
        0,
        promisc(r)?.map(i64::from),
        "packet_mc_drop() -> dev_set_promiscuity(dev, -1)",
    );

    // Record route on the wire.
    let rx = udp_bound(r, RECEIVER, 0)?;
    let port = port_of(&rx)?;
    sys::setsockopt_int(rx.as_fd(), libc::IPPROTO_IP, libc::IP_RECVOPTS, 1)?;
    let watch = r.socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_UDP)?;
    let s_before = mib(s)?;
    let r_before = mib(r)?;
    socket::sendto(
        u2.as_raw_fd(),
        b"record route",
        &SockaddrIn::new(RECEIVER[0], RECEIVER[1], RECEIVER[2], RECEIVER[3], port),
        MsgFlags::empty(),
    )?;
    let mut cmsg_opts: Option<Vec<u8>> = None;
    let _ = wait_for("the datagram with IP_RECVOPTS", WAIT, || {
        let mut buf = [0u8; 256];
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([u8; 64]);
        let m =
            socket::recvmsg::<SockaddrIn>(rx.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_DONTWAIT).ok()?;
        for c in m.cmsgs().ok()? {
            if let ControlMessageOwned::Unknown(u) = c {
                if u.cmsg_header.cmsg_level == libc::IPPROTO_IP && u.cmsg_header.cmsg_type == libc::IP_RECVOPTS {
                    cmsg_opts = Some(u.data_bytes.clone());
                }
            }
        }
        Some(())
    });
    let mut hdr = None;
    let _ = wait_for("the header on the raw socket", WAIT, || {
        let mut b = vec![0u8; 512];
        let n = sys::recv(watch.as_fd(), &mut b, libc::MSG_DONTWAIT).ok()?;
        hdr = Some(b[..n].to_vec());
        Some(())
    });
    let want_addrs = [
        std::net::Ipv4Addr::from(SENDER).to_string(),
        std::net::Ipv4Addr::from(RECEIVER).to_string(),
    ];
    let from_cmsg = cmsg_opts.as_deref().and_then(rr_recorded);
    ctx.check_eq(
        "rr.ip_recvopts.addresses",
        want_addrs.join(","),
        from_cmsg.as_ref().map(|(_, a)| a.join(",")),
        "ip_options_build() records the sender's address; ip_options_compile() on input records the receiver's",
    );
    ctx.check_eq(
        "rr.ip_recvopts.pointer",
        12,
        from_cmsg.as_ref().map(|(p, _)| i64::from(*p)),
        "two slots used: pointer 4 + 2 * 4",
    );
    let h = hdr.as_deref();
    ctx.check_eq(
        "rr.raw.ihl",
        15,
        h.map(|h| i64::from(h[0] & 0x0f)),
        "20 + 40 option bytes: IHL 15",
    );
    let from_raw = h.filter(|h| h.len() >= 60).and_then(|h| rr_recorded(&h[20..60]));
    ctx.check_eq(
        "rr.raw.addresses",
        want_addrs.join(","),
        from_raw.as_ref().map(|(_, a)| a.join(",")),
        "the raw socket gets the header as modified on input",
    );
    ctx.check_eq(
        "rr.raw.header_checksum_valid",
        false,
        h.filter(|h| h.len() >= 60).map(|h| super::sum16(&h[..60], 0) == 0xffff),
        "ip_options_compile() records the address in the packet itself and sets is_changed; only ip_forward_options() then recomputes the checksum, so a locally delivered header keeps the sender's, now stale",
    );
    let s_after = mib(s)?;
    let r_after = mib(r)?;
    let mut s_model = ip_out(&s_before, 1);
    s_model.push(("Udp.OutDatagrams", 1));
    check_mib(
        ctx,
        "sender",
        &s_before,
        &s_after,
        &s_model,
        QUIET,
        "one datagram out, with options",
    );
    check_mib(
        ctx,
        "receiver",
        &r_before,
        &r_after,
        &[("Udp.InDatagrams", 1), ("Ip.InReceives", 1), ("Ip.InDelivers", 1)],
        QUIET,
        "one datagram in and read (the raw socket's copy is not counted separately)",
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defer_accept_rounding() {
        assert_eq!(secs_to_retrans(10, 1, 120), 4);
        assert_eq!(retrans_to_secs(4, 1, 120), 15);
        assert_eq!(retrans_to_secs(secs_to_retrans(1, 1, 120), 1, 120), 1);
        assert_eq!(secs_to_retrans(0, 1, 120), 0);
    }

    #[test]
    fn rr_parse() {
        let mut o = rr_option();
        assert_eq!(rr_recorded(&o), Some((4, vec![])));
        o[3] = 12;
        o[4..8].copy_from_slice(&SENDER);
        o[8..12].copy_from_slice(&RECEIVER);
        assert_eq!(
            rr_recorded(&o),
            Some((12, vec!["198.18.0.1".into(), "198.18.0.2".into()]))
        );
    }
}
