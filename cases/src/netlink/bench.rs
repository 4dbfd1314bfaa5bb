//! Neighbour-add throughput: N `RTM_NEWNEIGH` requests (rtnetlink's
//! neighbour builder, pipelined on the namespace's handle) and one dump, against the same work done by
//! `ip -batch` inside the namespace (the `netns-scripts/neigh.sh` way).
//!
//! Each side gets a fresh namespace with a carrier-less veth0; namespace and
//! link creation are not timed. The `ip` figure includes starting the `ip`
//! process, which is what a script pays. Entries are PERMANENT: those are
//! exempt from the neighbour table's gc thresholds (`neigh_alloc()`), so N
//! may exceed `gc_thresh3`.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Instant;

use kharness::NetNs;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{carrierless_veth, mac_str, neigh_dump};

/// Neighbour adds in flight at once in the harness figure.
const PIPELINE: usize = 64;

/// Largest N: the addresses come from 198.18.0.0/15.
pub const MAX_N: usize = 100_000;

fn nth(i: usize) -> (IpAddr, [u8; 6]) {
    let a = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i as u32 + 1;
    let b = a.to_be_bytes();
    (IpAddr::V4(Ipv4Addr::from(a)), [0x02, 0, b[0], b[1], b[2], b[3]])
}

fn fresh() -> Result<NetNs, String> {
    let ns = NetNs::new("neighbench").map_err(|e| e.to_string())?;
    carrierless_veth(&ns, "veth0", 2, "veth1", 3).map_err(|e| format!("veth: {e}"))?;
    Ok(ns)
}

fn count_on_veth0(ns: &NetNs) -> Result<usize, String> {
    Ok(neigh_dump(ns)
        .map_err(|e| e.to_string())?
        .iter()
        .filter(|e| e.ifindex == 2)
        .count())
}

/// The seconds each way of adding the same neighbours took.
#[derive(Debug, Clone, Copy)]
pub struct NeighTimes {
    /// rtnetlink's neighbour builder on the namespace's handle, pipelined.
    pub harness: f64,
    /// The synchronous raw socket ([`kharness::netlink::NlSocket`]), one
    /// request and its ACK at a time: the harness's way before rtnetlink,
    /// measured in the same binary so the two compare like with like.
    pub raw_socket: f64,
    /// `ip -batch`, or `None` where iproute2 is not installed.
    pub ip_batch: Option<f64>,
}

/// Adds `n` PERMANENT IPv4 neighbours on veth0 and dumps the table, through
/// the harness (rtnetlink), the raw socket, and `ip -batch`. Every side is
/// checked to have produced exactly `n` entries.
pub fn bench_neigh(n: usize) -> Result<NeighTimes, String> {
    if n == 0 || n > MAX_N {
        return Err(format!("bench_neigh: n = {n} must be from 1 to {MAX_N}"));
    }
    let ns = fresh()?;
    let t = Instant::now();
    // `ip neigh add … nud permanent` through rtnetlink's neighbour builder,
    // PIPELINE requests in flight (ip -batch sends one and waits for its
    // answer, but pays no futures machinery per request).
    let rt = ns.rt();
    let macs: Vec<_> = (0..n).map(nth).collect();
    let answers = rt.pipeline(
        macs.iter().map(|(ip, mac)| {
            rt.handle()
                .neighbours()
                .add(2, *ip)
                .state(NeighbourState::Permanent)
                .link_layer_address(mac)
                .execute()
        }),
        PIPELINE,
    );
    for ((ip, _), a) in macs.iter().zip(answers) {
        a.map_err(|e| format!("neighbour add {ip}: {e}"))?;
    }
    let dumped = count_on_veth0(&ns)?;
    let harness = t.elapsed().as_secs_f64();
    if dumped != n {
        return Err(format!("harness: dump shows {dumped} neighbours, {n} were added"));
    }
    drop(ns);

    let ns = fresh()?;
    let sock = ns
        .netlink(netlink_sys::constants::NETLINK_ROUTE)
        .map_err(|e| e.to_string())?;
    let t = Instant::now();
    for (ip, mac) in &macs {
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.ifindex = 2;
        m.header.state = NeighbourState::Permanent;
        m.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(v4) => NeighbourAddress::Inet(*v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(*v6),
        }));
        m.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        sock.request(RouteNetlinkMessage::NewNeighbour(m), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|e| format!("raw neighbour add {ip}: {e}"))?;
    }
    let dumped = count_on_veth0(&ns)?;
    let raw_socket = t.elapsed().as_secs_f64();
    if dumped != n {
        return Err(format!("raw socket: dump shows {dumped} neighbours, {n} were added"));
    }
    drop(ns);
    let times = |ip_batch| NeighTimes {
        harness,
        raw_socket,
        ip_batch,
    };

    let have_ip = Command::new("ip").arg("-V").output().is_ok_and(|o| o.status.success());
    if !have_ip {
        return Ok(times(None));
    }
    let path = std::env::temp_dir().join(format!("kharness-neigh-{}.batch", std::process::id()));
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).map_err(|e| e.to_string())?);
        for i in 0..n {
            let (ip, mac) = nth(i);
            writeln!(f, "neigh add {ip} lladdr {} dev veth0 nud permanent", mac_str(&mac))
                .map_err(|e| e.to_string())?;
        }
        writeln!(f, "neigh show dev veth0").map_err(|e| e.to_string())?;
        f.flush().map_err(|e| e.to_string())?;
    }
    let ns = fresh()?;
    let t = Instant::now();
    let out = ns.run(|| Command::new("ip").arg("-batch").arg(&path).output());
    let scripted = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    let out = out.map_err(|e| e.to_string())?.map_err(|e| format!("ip -batch: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip -batch failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let shown = String::from_utf8_lossy(&out.stdout).lines().count();
    let dumped = count_on_veth0(&ns)?;
    if dumped != n || shown != n {
        return Err(format!(
            "ip -batch: {dumped} neighbours in the table, {shown} shown, {n} were added"
        ));
    }
    Ok(times(Some(scripted)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_stay_in_the_test_range() {
        for i in [0, 1, 255, 65_535, MAX_N - 1] {
            let (ip, _) = nth(i);
            assert!(kharness::topology::is_test_address(ip), "{ip}");
        }
        assert_ne!(nth(0).1, nth(1).1);
    }

    #[test]
    fn bounds() {
        assert!(bench_neigh(0).is_err());
        assert!(bench_neigh(MAX_N + 1).is_err());
    }
}
