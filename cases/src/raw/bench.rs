//! `bench_zerocopy()`: the figures `kharness bench` reports for the zero-copy
//! path of seed 003 against plain copies, measured across the sender ->
//! receiver veth of the raw family's topology.
//!
//! - `zerocopy.tcp.write`: write() of a 64 KiB buffer into a connected TCP
//!   socket, MiB/s (the receiver reads and discards on another thread).
//! - `zerocopy.tcp.vmsplice_splice`: the same bytes through vmsplice() into a
//!   pipe and splice() into the socket, MiB/s.
//! - `zerocopy.tcp.speedup`: the ratio of the two.
//! - `zerocopy.tcp.*.syscalls_per_mib`: system calls each path made per MiB.
//! - `zerocopy.packet.send` and `zerocopy.packet.vmsplice_splice`: 1000-byte
//!   frames per second into a packet socket with send(), and with vmsplice +
//!   splice per frame (the seed's path); the frames carry an unused EtherType
//!   (0x88b5) so the receiver drops them without IP processing.
//!
//! The TCP path reuses one buffer while the kernel may still hold its pages
//! (nobody checks the bytes here; zerocopy.vmsplice is the case that does).

use std::io::{IoSlice, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::time::Instant;

use kharness::sys;
use nix::fcntl::{vmsplice, SpliceFFlags};

use super::zerocopy::{aligned, splice_all, tcp_pair};
use super::{mac_of, net3, packet_socket, Net3Opts};

/// Bytes per TCP measurement.
const TCP_BYTES: usize = 128 << 20;
const CHUNK: usize = 64 * 1024;
/// Frames per packet-socket measurement.
const FRAMES: usize = 20_000;
const MIB: f64 = (1 << 20) as f64;

fn reader(mut s: TcpStream, total: usize) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut b = vec![0u8; 1 << 18];
        let mut got = 0;
        while got < total {
            match s.read(&mut b) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        got
    })
}

/// Runs both measurements; `(name, value, unit)` per figure.
pub fn bench_zerocopy() -> Result<Vec<(String, f64, String)>, String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let net = net3(Net3Opts::default()).map_err(|x| e(&x))?;
    let mut out = Vec::new();

    // write()
    let (mut client, server) = tcp_pair(&net).map_err(|x| e(&x))?;
    let r = reader(server, TCP_BYTES);
    let buf = vec![0x5au8; CHUNK];
    let t = Instant::now();
    let mut sent = 0;
    let mut writes = 0u64;
    while sent < TCP_BYTES {
        sent += client.write(&buf[..CHUNK.min(TCP_BYTES - sent)]).map_err(|x| e(&x))?;
        writes += 1;
    }
    let got = r.join().map_err(|_| "reader thread panicked".to_string())?;
    let write_s = t.elapsed().as_secs_f64();
    if got != TCP_BYTES {
        return Err(format!("write(): the receiver read {got} of {TCP_BYTES} bytes"));
    }
    drop(client);

    // vmsplice + splice
    let (client, server) = tcp_pair(&net).map_err(|x| e(&x))?;
    let (pipe_r, pipe_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|x| e(&x))?;
    let (pages, off) = aligned(CHUNK);
    let chunk = &pages[off..off + CHUNK];
    let r = reader(server, TCP_BYTES);
    let t = Instant::now();
    let mut sent = 0;
    let mut calls = 0u64;
    while sent < TCP_BYTES {
        let len = CHUNK.min(TCP_BYTES - sent);
        let n = vmsplice(&pipe_w, &[IoSlice::new(&chunk[..len])], SpliceFFlags::empty()).map_err(|x| e(&x))?;
        calls += 1 + splice_all(&pipe_r, &client, n, SpliceFFlags::SPLICE_F_MOVE).map_err(|x| e(&x))? as u64;
        sent += n;
    }
    let got = r.join().map_err(|_| "reader thread panicked".to_string())?;
    let splice_s = t.elapsed().as_secs_f64();
    if got != TCP_BYTES {
        return Err(format!("vmsplice+splice: the receiver read {got} of {TCP_BYTES} bytes"));
    }
    drop(client);
    let mib = TCP_BYTES as f64 / MIB;
    out.push(("zerocopy.tcp.write".to_string(), mib / write_s, "MiB/s".to_string()));
    out.push((
        "zerocopy.tcp.vmsplice_splice".to_string(),
        mib / splice_s,
        "MiB/s".to_string(),
    ));
    out.push(("zerocopy.tcp.speedup".to_string(), write_s / splice_s, "x".to_string()));
    out.push((
        "zerocopy.tcp.write.syscalls_per_mib".to_string(),
        writes as f64 / mib,
        "calls/MiB".to_string(),
    ));
    out.push((
        "zerocopy.tcp.vmsplice_splice.syscalls_per_mib".to_string(),
        calls as f64 / mib,
        "calls/MiB".to_string(),
    ));

    // Packet socket, 1000-byte frames.
    let si = net.s_ifindex();
    let smac = mac_of(net.sender(), si).map_err(|x| e(&x))?;
    let rmac = mac_of(net.receiver(), net.r_ifindex()).map_err(|x| e(&x))?;
    let pk = packet_socket(net.sender(), libc::SOCK_RAW, 0, si).map_err(|x| e(&x))?;
    let (mut page, poff) = aligned(4096);
    let mut frame = Vec::with_capacity(1000);
    frame.extend_from_slice(&rmac);
    frame.extend_from_slice(&smac);
    frame.extend_from_slice(&0x88b5u16.to_be_bytes());
    frame.resize(1000, 0xa5);
    page[poff..poff + 1000].copy_from_slice(&frame);
    let page = &page[poff..poff + 1000];
    let t = Instant::now();
    let mut send_calls = 0u64;
    for _ in 0..FRAMES {
        sys::send(pk.as_fd(), &frame, 0).map_err(|x| e(&x))?;
        send_calls += 1;
    }
    let send_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut vs_calls = 0u64;
    for _ in 0..FRAMES {
        let n = vmsplice(&pipe_w, &[IoSlice::new(page)], SpliceFFlags::empty()).map_err(|x| e(&x))?;
        vs_calls += 1 + splice_all(&pipe_r, &pk, n, SpliceFFlags::empty()).map_err(|x| e(&x))? as u64;
    }
    let vs_s = t.elapsed().as_secs_f64();
    out.push((
        "zerocopy.packet.send".to_string(),
        FRAMES as f64 / send_s,
        "frames/s".to_string(),
    ));
    out.push((
        "zerocopy.packet.vmsplice_splice".to_string(),
        FRAMES as f64 / vs_s,
        "frames/s".to_string(),
    ));
    out.push((
        "zerocopy.packet.send.syscalls_per_frame".to_string(),
        send_calls as f64 / FRAMES as f64,
        "calls".to_string(),
    ));
    out.push((
        "zerocopy.packet.vmsplice_splice.syscalls_per_frame".to_string(),
        vs_calls as f64 / FRAMES as f64,
        "calls".to_string(),
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    /// Prints the figures; needs root (namespaces), so not run by default:
    /// `cargo test -p kharness-cases bench_zerocopy -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_zerocopy_figures() {
        for (name, value, unit) in super::bench_zerocopy().expect("bench_zerocopy") {
            println!("{name} {value:.1} {unit}");
        }
    }
}
