//! packet.cooked_vs_raw, packet.rx_ring, packet.tx_ring: AF_PACKET sockets
//! (seed 004's "Raw sockets and sniffers", seed 003's PACKET_RX_RING and
//! PACKET_TX_RING posts). The mmap'd rings are `kharness::ring::MmapRing`
//! guards: dropping one unmaps it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use kharness::ring::{is_mapped, MmapRing};
use kharness::wait::wait_for;
use kharness::{sys, CaseDef, CaseError, Ctx, Expect, NetNs};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{self, LinkAddr, MsgFlags};

use super::{
    check_mib, drain, ip_out, mac_of, mib, net3, packet_socket, port_of, recv_n, udp_bound, udp_frame, udp_packet,
    Net3Opts, QUIET, RECEIVER, SENDER, WAIT,
};

const SOL_PACKET: i32 = 263;
const PACKET_RX_RING: i32 = 5;
const PACKET_STATISTICS: i32 = 6;
const PACKET_VERSION: i32 = 10;
const PACKET_TX_RING: i32 = 13;
const TPACKET_V2: i32 = 1;
const TPACKET_V3: i32 = 2;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_SEND_REQUEST: u32 = 1;
const TP_STATUS_AVAILABLE: u32 = 0;
const ETH_P_ALL: u16 = 0x0003;
const ETH_P_IP: u16 = 0x0800;
const PACKET_HOST: u8 = 0;
const ARPHRD_ETHER: u16 = 1;
/// `TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)`: where a V2 TX frame's
/// data starts in its slot (`tpacket_parse_header()`).
const TX_V2_DATA: usize = 32;
/// `TPACKET3_HDRLEN`: `TPACKET_ALIGN(sizeof(struct tpacket3_hdr))` +
/// `sizeof(struct sockaddr_ll)`, the least a V3 packet takes in a block
/// besides its bytes.
const TPACKET3_HDRLEN: usize = 48 + 20;

/// Sets a non-blocking flag on a socket.
fn nonblocking(fd: &OwnedFd) -> Result<(), CaseError> {
    fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Reads every frame queued on a packet socket now, with its sockaddr_ll.
fn read_frames(fd: &OwnedFd) -> Vec<(Vec<u8>, Option<LinkAddr>)> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 4096];
    while let Ok((n, a)) = socket::recvfrom::<LinkAddr>(fd.as_raw_fd(), &mut buf) {
        out.push((buf[..n].to_vec(), a));
    }
    out
}

/// packet.cooked_vs_raw
pub static COOKED_VS_RAW: CaseDef = CaseDef {
    id: "packet.cooked_vs_raw",
    variants: &[],
    summary: "AF_PACKET SOCK_RAW frames carry the 14-byte Ethernet header, SOCK_DGRAM (cooked) frames do not",
    drives: "Four packet sockets in the receiver bound to its veth: SOCK_RAW and SOCK_DGRAM, each for \
        ETH_P_ALL and ETH_P_IP. The sender sends two UDP datagrams to the receiver's UDP socket without \
        the IP layer: one IPv4 packet on a SOCK_DGRAM packet socket (sendto a sockaddr_ll with the \
        receiver's MAC: the kernel adds the Ethernet header) and one complete Ethernet frame on a \
        SOCK_RAW packet socket (we add it).",
    observes: "Every frame each packet socket reads (recvfrom, non-blocking) and its sockaddr_ll \
        (protocol, ifindex, pkttype, hatype, halen, address); the receiver's UDP socket; the MIB of \
        both namespaces.",
    predicts: "Each of the four sockets reads exactly the two frames. SOCK_RAW: 14 + IP length bytes, \
        starting with the receiver's MAC, the sender's MAC and 0x0800, then the IP packet as sent; \
        SOCK_DGRAM: the IP packet alone. sockaddr_ll: protocol 0x0800, the receiver veth's ifindex, \
        PACKET_HOST, ARPHRD_ETHER, halen 6, the sender's MAC. The UDP socket reads both datagrams \
        (receiver Udp InDatagrams +2, Ip InReceives/InDelivers +2); the sender's Ip and Udp counters \
        do not move (packet sockets bypass IP).",
    why: "packet_rcv() keeps the link-layer header for SOCK_RAW and, for SOCK_DGRAM, pulls it \
        (skb_pull to the network header) and reports it only as sll_addr via dev_parse_header() \
        (eth_header_parse: the source MAC); sll_pkttype is skb->pkt_type from eth_type_trans(). On \
        transmit, packet_snd() for SOCK_DGRAM calls dev_hard_header() with sll_addr as destination \
        and sll_protocol as EtherType; for SOCK_RAW the bytes go out as given. Neither touches \
        ip_local_out(), so no Ip/Udp output counter moves.",
    kernels: "Unchanged since 2.2 (packet(7)); SOCK_PACKET is the obsolete third type.",
    shell: "ip netns exec RECEIVER tcpdump -i r0 (SOCK_RAW) vs tcpdump -i any (cooked, SOCK_DGRAM)",
    source: "seed 004 (Raw sockets and sniffers, appendix F)",
    timeout: Duration::from_secs(10),
    run: run_cooked,
};

fn run_cooked(ctx: &mut Ctx) -> Result<(), CaseError> {
    // Volatile for `report diff`: the veth MAC addresses are random.
    ctx.mark_volatile("*.sll_addr");
    let net = net3(Net3Opts::default())?;
    let rx = udp_bound(net.receiver(), RECEIVER, 0)?;
    let port = port_of(&rx)?;
    let (si, ri) = (net.s_ifindex(), net.r_ifindex());
    let smac = mac_of(net.sender(), si)?;
    let rmac = mac_of(net.receiver(), ri)?;
    let kinds = [
        ("raw_all", libc::SOCK_RAW, ETH_P_ALL),
        ("dgram_all", libc::SOCK_DGRAM, ETH_P_ALL),
        ("raw_ip", libc::SOCK_RAW, ETH_P_IP),
        ("dgram_ip", libc::SOCK_DGRAM, ETH_P_IP),
    ];
    let mut socks = Vec::new();
    for (name, ty, proto) in kinds {
        let fd = packet_socket(net.receiver(), ty, proto, ri)?;
        nonblocking(&fd)?;
        socks.push((name, ty, fd));
    }
    let s_before = mib(net.sender())?;
    let r_before = mib(net.receiver())?;
    let ip1 = udp_packet(
        SENDER,
        RECEIVER,
        40200,
        port,
        b"sent cooked: the kernel wrote the Ethernet header",
    );
    let f2 = udp_frame(smac, rmac, SENDER, RECEIVER, 40201, port, b"sent raw: we wrote it");
    let cooked = packet_socket(net.sender(), libc::SOCK_DGRAM, 0, si)?;
    let sent1 = socket::sendto(
        cooked.as_raw_fd(),
        &ip1,
        &sys::link_addr(si as i32, ETH_P_IP, rmac),
        MsgFlags::empty(),
    );
    ctx.check_eq(
        "send.cooked",
        ip1.len() as i64,
        sent1.map(|n| n as i64).unwrap_or(-1),
        "packet_snd() returns the payload length; the header it adds is not counted",
    );
    let raw = packet_socket(net.sender(), libc::SOCK_RAW, 0, si)?;
    let sent2 = sys::send(raw.as_fd(), &f2, 0);
    ctx.check_eq(
        "send.raw",
        f2.len() as i64,
        sent2.map(|n| n as i64).unwrap_or(-1),
        "packet_snd() sends the frame as given",
    );
    let got = recv_n(&rx, 2);
    ctx.check_eq(
        "udp.datagrams",
        2,
        got.len() as i64,
        "both frames are well-formed datagrams for the open port",
    );
    let ips = [ip1.clone(), f2[14..].to_vec()];
    for (name, ty, fd) in &socks {
        let mut frames = Vec::new();
        let _ = wait_for("two frames on the packet socket", WAIT, || {
            frames.extend(read_frames(fd));
            (frames.len() >= 2).then_some(())
        });
        frames.extend(read_frames(fd));
        ctx.check_eq(
            format!("{name}.frames"),
            2,
            frames.len() as i64,
            "each socket sees each frame once; there is no other traffic (IPv6 off, no ARP: nothing used the IP layer)",
        );
        let raw_ty = *ty == libc::SOCK_RAW;
        for (j, ip) in ips.iter().enumerate() {
            let want: Vec<u8> = if raw_ty {
                let mut w = Vec::with_capacity(14 + ip.len());
                w.extend_from_slice(&rmac);
                w.extend_from_slice(&smac);
                w.extend_from_slice(&ETH_P_IP.to_be_bytes());
                w.extend_from_slice(ip);
                w
            } else {
                ip.clone()
            };
            let hit = frames.iter().find(|(b, _)| *b == want);
            let src = if raw_ty {
                "SOCK_RAW keeps the 14-byte Ethernet header (dst, src, EtherType)"
            } else {
                "SOCK_DGRAM: packet_rcv() pulls the link-layer header"
            };
            ctx.check_eq(
                format!("{name}.frame{j}.len"),
                want.len() as i64,
                hit.map(|(b, _)| b.len() as i64),
                src,
            );
            let a = hit.and_then(|(_, a)| *a);
            ctx.check_eq(
                format!("{name}.frame{j}.sll_protocol"),
                i64::from(ETH_P_IP),
                a.map(|a| i64::from(u16::from_be(a.protocol()))),
                "sll_protocol is the EtherType, network order",
            );
            ctx.check_eq(
                format!("{name}.frame{j}.sll_ifindex"),
                i64::from(ri),
                a.map(|a| a.ifindex() as i64),
                "the receiving device",
            );
            ctx.check_eq(
                format!("{name}.frame{j}.sll_pkttype"),
                i64::from(PACKET_HOST),
                a.map(|a| i64::from(a.pkttype())),
                "eth_type_trans(): our MAC -> PACKET_HOST",
            );
            ctx.check_eq(
                format!("{name}.frame{j}.sll_hatype"),
                i64::from(ARPHRD_ETHER),
                a.map(|a| i64::from(a.hatype())),
                "veth is ARPHRD_ETHER",
            );
            ctx.check_eq(
                format!("{name}.frame{j}.sll_addr"),
                format!("{:02x?}", smac),
                a.and_then(|a| a.addr()).map(|m| format!("{m:02x?}")),
                "dev_parse_header(): the source MAC, in both modes",
            );
            crate::volatile(ctx, &format!("{name}.frame{j}.sll_addr"));
            ctx.check_eq(
                format!("{name}.frame{j}.sll_halen"),
                6,
                a.map(|a| a.halen() as i64),
                "6-byte Ethernet addresses",
            );
        }
    }
    let s_after = mib(net.sender())?;
    let r_after = mib(net.receiver())?;
    check_mib(
        ctx,
        "sender",
        &s_before,
        &s_after,
        &[],
        QUIET,
        "packet sockets bypass the IP layer: nothing counts their frames",
    );
    check_mib(
        ctx,
        "receiver",
        &r_before,
        &r_after,
        &[("Udp.InDatagrams", 2), ("Ip.InReceives", 2), ("Ip.InDelivers", 2)],
        QUIET,
        "two datagrams delivered and read",
    );
    Ok(())
}

/// One frame as a ring presents it.
#[derive(Debug, Clone)]
struct RingFrame {
    len: u32,
    snaplen: u32,
    mac: u16,
    net: u16,
    data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V2,
    V3,
}

/// A packet socket with an RX ring, mapped.
struct RxRing {
    fd: OwnedFd,
    ring: MmapRing,
    version: Version,
    block_size: usize,
    block_nr: usize,
    frame_size: usize,
    frame_nr: usize,
    cursor: usize,
}

impl RxRing {
    /// socket(AF_PACKET, SOCK_RAW, 0); PACKET_VERSION; PACKET_RX_RING; mmap;
    /// then bind to `ifindex` for ETH_P_IP (only then do frames arrive).
    fn new(
        ns: &NetNs,
        ifindex: u32,
        version: Version,
        block_size: usize,
        block_nr: usize,
        frame_size: usize,
        tov_ms: u32,
    ) -> Result<RxRing, CaseError> {
        let fd = ns.socket(libc::AF_PACKET, libc::SOCK_RAW, 0)?;
        let v = if version == Version::V3 { TPACKET_V3 } else { TPACKET_V2 };
        sys::setsockopt_int(fd.as_fd(), SOL_PACKET, PACKET_VERSION, v)?;
        let frame_nr = block_size / frame_size * block_nr;
        let mut req: Vec<u32> = vec![block_size as u32, block_nr as u32, frame_size as u32, frame_nr as u32];
        if version == Version::V3 {
            req.extend([tov_ms, 0, 0]); // retire_blk_tov, sizeof_priv, feature_req_word
        }
        let bytes: Vec<u8> = req.iter().flat_map(|w| w.to_ne_bytes()).collect();
        sys::setsockopt_bytes(fd.as_fd(), SOL_PACKET, PACKET_RX_RING, &bytes)?;
        let ring = MmapRing::map(fd.as_fd(), block_size * block_nr)?;
        socket::bind(fd.as_raw_fd(), &sys::link_addr(ifindex as i32, ETH_P_IP, [0; 6]))?;
        Ok(RxRing {
            fd,
            ring,
            version,
            block_size,
            block_nr,
            frame_size,
            frame_nr,
            cursor: 0,
        })
    }

    fn v2_off(&self, i: usize) -> usize {
        let per_block = self.block_size / self.frame_size;
        (i / per_block) * self.block_size + (i % per_block) * self.frame_size
    }

    /// Every frame the kernel has handed to user space, from the cursor on;
    /// with `release`, gives them back (status TP_STATUS_KERNEL) and moves
    /// the cursor. No system call: only loads and stores in the mapping.
    fn collect(&mut self, release: bool) -> Vec<RingFrame> {
        let mut out = Vec::new();
        let mut cur = self.cursor;
        match self.version {
            Version::V2 => {
                for _ in 0..self.frame_nr {
                    let off = self.v2_off(cur);
                    if self.ring.load_status(off) & TP_STATUS_USER == 0 {
                        break;
                    }
                    let snaplen = self.ring.read_u32(off + 8);
                    let mac = self.ring.read_u16(off + 12);
                    out.push(RingFrame {
                        len: self.ring.read_u32(off + 4),
                        snaplen,
                        mac,
                        net: self.ring.read_u16(off + 14),
                        data: self.ring.read(off + usize::from(mac), snaplen as usize),
                    });
                    if release {
                        self.ring.store_status(off, TP_STATUS_KERNEL);
                    }
                    cur = (cur + 1) % self.frame_nr;
                }
            }
            Version::V3 => {
                for _ in 0..self.block_nr {
                    let b = cur * self.block_size;
                    if self.ring.load_status(b + 8) & TP_STATUS_USER == 0 {
                        break;
                    }
                    let num = self.ring.read_u32(b + 12);
                    let mut p = b + self.ring.read_u32(b + 16) as usize;
                    for _ in 0..num {
                        let snaplen = self.ring.read_u32(p + 12);
                        let mac = self.ring.read_u16(p + 24);
                        out.push(RingFrame {
                            len: self.ring.read_u32(p + 16),
                            snaplen,
                            mac,
                            net: self.ring.read_u16(p + 26),
                            data: self.ring.read(p + usize::from(mac), snaplen as usize),
                        });
                        p += self.ring.read_u32(p) as usize;
                    }
                    if release {
                        self.ring.store_status(b + 8, TP_STATUS_KERNEL);
                    }
                    cur = (cur + 1) % self.block_nr;
                }
            }
        }
        if release {
            self.cursor = cur;
        }
        out
    }

    /// PACKET_STATISTICS: (tp_packets, tp_drops, tp_freeze_q_cnt for V3).
    /// Reading resets the kernel's counters.
    fn stats(&self) -> io::Result<(u32, u32, Option<u32>)> {
        let b = sys::getsockopt_bytes(self.fd.as_fd(), SOL_PACKET, PACKET_STATISTICS, 12)?;
        let w = |i: usize| {
            b.get(i * 4..i * 4 + 4)
                .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
        };
        Ok((w(0).unwrap_or(0), w(1).unwrap_or(0), w(2)))
    }
}

/// packet.rx_ring
pub static RX_RING: CaseDef = CaseDef {
    id: "packet.rx_ring",
    variants: &["v3", "v2"],
    summary: "PACKET_RX_RING (TPACKET_V3 / V2): frames read from the mmap'd ring with no recv call; a small ring under a burst counts its drops",
    drives: "In the receiver, a SOCK_RAW packet socket with PACKET_VERSION (TPACKET_V3 or V2) and \
        PACKET_RX_RING (V3: 4 blocks of 16 KiB, retire timeout 4 ms; V2: 16 frames of 2 KiB), mapped \
        with mmap and bound to the receiver's veth for ETH_P_IP. The sender's UDP socket sends 8 \
        datagrams to the receiver's UDP socket. Then a second socket with a deliberately small ring (V3: \
        2 blocks of 4 KiB; V2: 4 frames) takes a burst of 96 datagrams while nobody reads it.",
    observes: "The ring: frame or block status words, tp_len, tp_snaplen, tp_mac, tp_net and the bytes, \
        read by loads from the mapping (no recv, read or poll on the packet socket); PACKET_STATISTICS \
        (summed over reads, which reset it); whether /proc/self/maps still lists the ring after its \
        guard is dropped; the MIB of both namespaces.",
    predicts: "Normal ring: exactly the 8 frames, each the whole Ethernet frame (tp_len == tp_snaplen \
        == 14 + 20 + 8 + payload, tp_net - tp_mac == 14) with the payloads sent; tp_packets == 8, \
        tp_drops == 0 (V3: tp_freeze_q_cnt 0). Small ring: frames in the ring + tp_drops == 96 and \
        tp_packets == 96 (the kernel adds the drops into tp_packets); V2 exactly: 4 in the ring, 92 \
        dropped; V3: drops >= 96 - what two 4 KiB blocks can hold, and the queue froze at least once. \
        The UDP socket reads all 104 datagrams; the unmapped ring is gone from /proc/self/maps.",
    why: "tpacket_rcv() (net/packet/af_packet.c) copies each frame into the next frame (V2, \
        packet_current_rx_frame) or into the current block (V3, __packet_lookup_frame_in_block; a block \
        is handed over when full or when its retire timer fires) and flips the status to TP_STATUS_USER \
        with a write barrier; user space gives it back by writing TP_STATUS_KERNEL. When no frame or \
        block is free it jumps to drop_n_account: atomic_inc(&po->tp_drops) (V3 also freezes the queue, \
        prb_freeze_queue). packet_getsockopt(PACKET_STATISTICS) returns tp_packets + tp_drops as \
        tp_packets, then zeroes both. The taps run before or after ip_rcv() (ptype order), never instead \
        of it, so the UDP socket sees every datagram.",
    kernels: "TPACKET_V2 since 2.6.27, TPACKET_V3 since 3.2; tp_drops became an atomic outside the \
        stats lock in 5.x (same figures). Before 3.x tp_packets did not include drops on every path. \
        Ip.OutTransmits (IPSTATS_MIB_OUTPKTS under its own name) is exported from 6.3 and predicted only where it is: absent on 5.10 and 6.1.",
    shell: "ip netns exec RECEIVER tcpdump -i r0 (libpcap uses a TPACKET_V3 ring); tcpdump's 'packets dropped by kernel' is tp_drops",
    source: "seed 003 (Asynchronous packet socket reading with PACKET_RX_RING)",
    timeout: Duration::from_secs(15),
    run: run_rx,
};

fn run_rx(ctx: &mut Ctx) -> Result<(), CaseError> {
    // Volatile for `report diff`: how many frames the small ring drops depends on scheduling.
    ctx.mark_volatile("*.tp_drops");
    let version = if ctx.variant == Some("v2") {
        Version::V2
    } else {
        Version::V3
    };
    let net = net3(Net3Opts::default())?;
    let rx = udp_bound(net.receiver(), RECEIVER, 0)?;
    sys::setsockopt_int(rx.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 1 << 20)?;
    let port = port_of(&rx)?;
    let ri = net.r_ifindex();
    let tx = udp_bound(net.sender(), SENDER, 0)?;
    tx.connect(super::sa(RECEIVER, port))?;
    let s_before = mib(net.sender())?;
    let r_before = mib(net.receiver())?;

    // The normal ring.
    let mut ring = match version {
        Version::V3 => RxRing::new(net.receiver(), ri, version, 1 << 14, 4, 2048, 4)?,
        Version::V2 => RxRing::new(net.receiver(), ri, version, 4096, 8, 2048, 0)?,
    };
    let k = 8usize;
    let payloads: Vec<Vec<u8>> = (0..k).map(|i| format!("rx ring frame {i:02}").into_bytes()).collect();
    for p in &payloads {
        tx.send(p)?;
    }
    let mut frames = Vec::new();
    let _ = wait_for("k frames in the ring", WAIT, || {
        frames.extend(ring.collect(true));
        (frames.len() >= k).then_some(())
    });
    frames.extend(ring.collect(true));
    ctx.check_eq(
        "ring.frames",
        k as i64,
        frames.len() as i64,
        "tpacket_rcv() puts each ETH_P_IP frame of the device into the ring",
    );
    let mut seen: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| f.data.get(42..).unwrap_or(&[]).to_vec())
        .collect();
    seen.sort();
    ctx.check_eq(
        "ring.payloads_as_sent",
        true,
        seen == payloads,
        "the frames carry the datagrams sent, in full (snaplen is not limited)",
    );
    let wire = |p: &Vec<u8>| (14 + 20 + 8 + p.len()) as u32;
    ctx.check_eq(
        "ring.tp_len_ok",
        true,
        frames.iter().all(|f| payloads.iter().any(|p| wire(p) == f.len)),
        "tp_len is skb->len plus the MAC header: the frame's length",
    );
    ctx.check_eq(
        "ring.tp_snaplen_eq_len",
        true,
        frames.iter().all(|f| f.snaplen == f.len),
        "no snap limit (frame/block room suffices): tp_snaplen == tp_len",
    );
    ctx.check_eq(
        "ring.tp_net_minus_tp_mac",
        14,
        frames.first().map(|f| i64::from(f.net) - i64::from(f.mac)),
        "tp_net = tp_mac + the 14-byte Ethernet header (SOCK_RAW)",
    );
    let (packets, drops, freeze) = ring.stats()?;
    ctx.check_eq(
        "ring.tp_packets",
        k as i64,
        i64::from(packets),
        "tp_packets counts frames put in the ring (plus drops)",
    );
    ctx.check_eq("ring.tp_drops", 0, i64::from(drops), "the ring never filled");
    if version == Version::V3 {
        ctx.check_eq(
            "ring.tp_freeze_q_cnt",
            0,
            freeze.map(i64::from),
            "no block was ever unavailable",
        );
    }
    let addr = ring.ring.addr();
    ctx.check_eq(
        "ring.mapped_while_held",
        true,
        is_mapped(addr)?,
        "MmapRing::map() mapped it",
    );
    drop(ring);
    ctx.check_eq(
        "ring.mapped_after_drop",
        false,
        is_mapped(addr)?,
        "the MmapRing guard's Drop calls munmap()",
    );

    // The small ring under a burst.
    let n = 96usize;
    let mut small = match version {
        Version::V3 => RxRing::new(net.receiver(), ri, version, 4096, 2, 2048, 8)?,
        Version::V2 => RxRing::new(net.receiver(), ri, version, 4096, 2, 2048, 0)?,
    };
    let burst: Vec<Vec<u8>> = (0..n).map(|i| format!("burst {i:03}").into_bytes()).collect();
    for p in &burst {
        tx.send(p)?;
    }
    let (mut acc_packets, mut acc_drops, mut acc_freeze) = (0u64, 0u64, 0u64);
    let mut in_ring = 0usize;
    let _ = wait_for("every burst frame put in the ring or dropped", WAIT, || {
        let (p, d, f) = small.stats().ok()?;
        acc_packets += u64::from(p);
        acc_drops += u64::from(d);
        acc_freeze += u64::from(f.unwrap_or(0));
        in_ring = small.collect(false).len();
        (acc_packets >= n as u64 && in_ring as u64 + acc_drops >= acc_packets).then_some(())
    });
    ctx.check_eq(
        "small.tp_packets",
        n as i64,
        acc_packets as i64,
        "packet_getsockopt(): tp_packets += tp_drops, so it counts every frame offered",
    );
    ctx.check_eq(
        "small.delivered_plus_drops",
        n as i64,
        (in_ring as u64 + acc_drops) as i64,
        "every frame is either in the ring or counted in tp_drops (drop_n_account)",
    );
    match version {
        Version::V2 => {
            ctx.check_eq(
                "small.in_ring",
                4,
                in_ring as i64,
                "V2: a frame slot per packet; 4 slots, none given back",
            );
            ctx.check_eq(
                "small.tp_drops",
                (n - 4) as i64,
                acc_drops as i64,
                "V2: every frame after the 4th finds no TP_STATUS_KERNEL slot",
            );
            crate::volatile(ctx, "small.tp_drops");
        }
        Version::V3 => {
            let per_block = (4096 - 48) / (TPACKET3_HDRLEN + 14 + 20 + 8 + burst[0].len());
            ctx.check(
                "small.tp_drops",
                Expect::Ge((n - 2 * per_block) as i64),
                acc_drops as i64,
                "V3: two 4 KiB blocks hold at most 2 * (4096 - 48) / (68 + frame) packets; the rest is dropped",
            );
            crate::volatile(ctx, "small.tp_drops");
            ctx.check(
                "small.tp_freeze_q_cnt",
                Expect::Ge(1),
                acc_freeze as i64,
                "prb_freeze_queue(): the next block was still the user's",
            );
        }
    }
    let saddr = small.ring.addr();
    drop(small);
    ctx.check_eq(
        "small.mapped_after_drop",
        false,
        is_mapped(saddr)?,
        "the MmapRing guard's Drop calls munmap()",
    );

    let total = k + n;
    let got = recv_n(&rx, total);
    ctx.check_eq(
        "udp.datagrams",
        total as i64,
        got.len() as i64,
        "the packet taps do not take frames away from ip_rcv()",
    );
    let s_after = mib(net.sender())?;
    let r_after = mib(net.receiver())?;
    let t = total as i64;
    let mut s_model = ip_out(&s_before, t);
    s_model.push(("Udp.OutDatagrams", t));
    check_mib(
        ctx,
        "sender",
        &s_before,
        &s_after,
        &s_model,
        QUIET,
        "udp_sendmsg() per datagram",
    );
    check_mib(
        ctx,
        "receiver",
        &r_before,
        &r_after,
        &[("Udp.InDatagrams", t), ("Ip.InReceives", t), ("Ip.InDelivers", t)],
        QUIET,
        "every datagram delivered and read",
    );
    Ok(())
}

/// packet.tx_ring
pub static TX_RING: CaseDef = CaseDef {
    id: "packet.tx_ring",
    variants: &[],
    summary:
        "PACKET_TX_RING: k frames written into the mmap'd ring go out with one send(); every slot returns to available",
    drives: "In the sender, a SOCK_RAW packet socket with TPACKET_V2 and PACKET_TX_RING (8 slots of 2 \
        KiB in 4 blocks), mapped and bound to the sender's veth. 6 complete Ethernet frames (UDP to the \
        receiver's socket) are written into slots 0-5 (data at offset 32, tp_len set, then tp_status = \
        TP_STATUS_SEND_REQUEST), then one blocking send(fd, NULL, 0, 0).",
    observes: "send()'s return value; the sender veth's tx_packets (IFLA_STATS64) before the ring is \
        filled, before the send() and after it; every slot's tp_status afterwards; the datagrams the receiver's UDP \
        socket reads; /proc/self/maps after the ring guard is dropped; the MIB of both namespaces.",
    predicts: "send() returns the sum of the 6 frame lengths; slots 0-5 are back to \
        TP_STATUS_AVAILABLE (0) and slots 6-7 were never touched (0); the receiver reads exactly the 6 \
        payloads (Udp InDatagrams +6, Ip InReceives/InDelivers +6); the sender's Ip/Udp counters do not \
        move; the veth transmits nothing while the frames sit in the ring and all 6 across the one send(); \
        the ring is unmapped after its guard is dropped.",
    why: "tpacket_snd() walks the ring from its head taking every frame in TP_STATUS_SEND_REQUEST, \
        marks it TP_STATUS_SENDING, builds an skb over the slot (tpacket_fill_skb) and transmits it; \
        the skb destructor tpacket_destruct_skb() sets TP_STATUS_AVAILABLE once the device is done with \
        it (veth orphans the skb when it forwards it). A blocking send waits for pending frames \
        (packet_read_pending) before returning the bytes sent.",
    kernels: "TX ring since 2.6.31 (V1/V2; V3 TX since 4.11). Unchanged otherwise.",
    shell: "ip netns exec SENDER trafgen (netsniff-ng uses PACKET_TX_RING); ip netns exec RECEIVER nstat -az Udp*",
    source: "seed 003 (Asynchronous packet socket writing with PACKET_TX_RING)",
    timeout: Duration::from_secs(10),
    run: run_tx,
};

/// The tx_packets of link `index` (IFLA_STATS64, `ip -s link`).
fn tx_packets(ns: &kharness::NetNs, index: u32) -> Result<u64, CaseError> {
    crate::netlink::get_link(ns, index)?
        .into_iter()
        .find_map(|a| match a {
            netlink_packet_route::link::LinkAttribute::Stats64(s) => Some(s.tx_packets),
            _ => None,
        })
        .ok_or_else(|| CaseError::Harness(format!("no IFLA_STATS64 for link {index}")))
}

fn run_tx(ctx: &mut Ctx) -> Result<(), CaseError> {
    let net = net3(Net3Opts::default())?;
    let rx = udp_bound(net.receiver(), RECEIVER, 0)?;
    let port = port_of(&rx)?;
    let si = net.s_ifindex();
    let smac = mac_of(net.sender(), si)?;
    let rmac = mac_of(net.receiver(), net.r_ifindex())?;
    let s_before = mib(net.sender())?;
    let r_before = mib(net.receiver())?;
    let fd = net.sender().socket(libc::AF_PACKET, libc::SOCK_RAW, 0)?;
    sys::setsockopt_int(fd.as_fd(), SOL_PACKET, PACKET_VERSION, TPACKET_V2)?;
    let (block_size, block_nr, frame_size) = (4096usize, 4usize, 2048usize);
    let frame_nr = block_size / frame_size * block_nr;
    let tx_before = tx_packets(net.sender(), si)?;
    let req: Vec<u8> = [block_size, block_nr, frame_size, frame_nr]
        .iter()
        .flat_map(|w| (*w as u32).to_ne_bytes())
        .collect();
    sys::setsockopt_bytes(fd.as_fd(), SOL_PACKET, PACKET_TX_RING, &req)?;
    let ring = MmapRing::map(fd.as_fd(), block_size * block_nr)?;
    socket::bind(fd.as_raw_fd(), &sys::link_addr(si as i32, 0, [0; 6]))?;
    let k = 6usize;
    let payloads: Vec<Vec<u8>> = (0..k).map(|i| format!("tx ring slot {i}").into_bytes()).collect();
    let slot = |i: usize| i * frame_size; // 2 frames per block, blocks contiguous
    let mut total = 0usize;
    for (i, p) in payloads.iter().enumerate() {
        let f = udp_frame(smac, rmac, SENDER, RECEIVER, 40300, port, p);
        total += f.len();
        ring.write(slot(i) + TX_V2_DATA, &f);
        ring.write(slot(i) + 4, &(f.len() as u32).to_ne_bytes());
        ring.store_status(slot(i), TP_STATUS_SEND_REQUEST);
    }
    // What the sender's veth transmitted: nothing while the frames only sit
    // in the ring, all of them across the one send().
    let tx_ring_filled = tx_packets(net.sender(), si)?;
    let sent = sys::send(fd.as_fd(), &[], 0);
    let tx_after_send = tx_packets(net.sender(), si)?;
    ctx.check_eq(
        "send.bytes",
        total as i64,
        sent.map(|n| n as i64).unwrap_or(-1),
        "tpacket_snd() returns the bytes of every frame it sent",
    );
    ctx.check_eq(
        "veth.tx_packets_before_send",
        0,
        tx_ring_filled - tx_before,
        "frames marked TP_STATUS_SEND_REQUEST stay in the ring until a send() runs tpacket_snd(): \
         no kernel thread polls a TX ring",
    );
    ctx.check_eq(
        "veth.tx_packets_by_one_send",
        k as u64,
        tx_after_send - tx_ring_filled,
        "one send() transmits every pending frame (tpacket_snd() loops over the ring), and a blocking send \
         returns after the device took them (veth_xmit counts tx_packets)",
    );
    let statuses: Vec<u32> = match wait_for("every slot available again", WAIT, || {
        let s: Vec<u32> = (0..frame_nr).map(|i| ring.load_status(slot(i))).collect();
        s.iter().all(|v| *v == TP_STATUS_AVAILABLE).then_some(s)
    }) {
        Ok(s) => s,
        Err(_) => (0..frame_nr).map(|i| ring.load_status(slot(i))).collect(),
    };
    for (i, st) in statuses.iter().enumerate() {
        let src = if i < k {
            "tpacket_destruct_skb() sets TP_STATUS_AVAILABLE"
        } else {
            "an untouched slot stays TP_STATUS_AVAILABLE"
        };
        ctx.check_eq(
            format!("slot{i}.tp_status"),
            i64::from(TP_STATUS_AVAILABLE),
            i64::from(*st),
            src,
        );
    }
    let got = recv_n(&rx, k);
    let mut seen: Vec<Vec<u8>> = got.iter().map(|(p, _)| p.clone()).collect();
    seen.sort();
    ctx.check_eq(
        "receiver.datagrams",
        k as i64,
        got.len() as i64,
        "each SEND_REQUEST slot went out once",
    );
    ctx.check_eq(
        "receiver.payloads_as_written",
        true,
        seen == payloads,
        "the frames are the slots' bytes",
    );
    ctx.check_eq(
        "receiver.nothing_more",
        0,
        drain(&rx).len() as i64,
        "exactly those k frames",
    );
    let addr = ring.addr();
    drop(ring);
    ctx.check_eq(
        "ring.mapped_after_drop",
        false,
        is_mapped(addr)?,
        "the MmapRing guard's Drop calls munmap()",
    );
    let s_after = mib(net.sender())?;
    let r_after = mib(net.receiver())?;
    let kk = k as i64;
    check_mib(
        ctx,
        "sender",
        &s_before,
        &s_after,
        &[],
        QUIET,
        "packet sockets bypass the IP layer",
    );
    check_mib(
        ctx,
        "receiver",
        &r_before,
        &r_after,
        &[("Udp.InDatagrams", kk), ("Ip.InReceives", kk), ("Ip.InDelivers", kk)],
        QUIET,
        "k datagrams delivered and read",
    );
    Ok(())
}
