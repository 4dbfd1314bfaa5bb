//! Topologies: several namespaces joined by veth pairs, with addresses and
//! per-namespace sysctls, built over rtnetlink in a few round trips.
//!
//! ```no_run
//! use kharness::topology::Topology;
//! let topo = Topology::builder()
//!     .ns("client")
//!     .ns("server")
//!     .veth(("client", "veth0"), ("server", "veth0"))
//!     .addr("client", "veth0", "198.18.0.1/24")
//!     .addr("server", "veth0", "198.18.0.2/24")
//!     .sysctl("server", "net.ipv4.tcp_rmem", "4096 4096 4096")
//!     .build()
//!     .unwrap();
//! let server = topo.ns("server");
//! # let _ = server;
//! ```
//!
//! Each step is the `ip` command named in its doc, sent through the
//! `rtnetlink` crate's handles and message builders on each namespace's own
//! handle ([`NetNs::rt`]). The peer of a veth pair is created directly in
//! its target namespace (`IFLA_NET_NS_FD` on the peer), so a pair costs one
//! request plus one `up` per end; a namespace's addresses go out together.
//! Interface indexes are chosen by the builder (each namespace is fresh, so
//! `lo` is 1 and the builder counts up from 2 across the whole topology, so
//! no two ends of a pair share an index), which saves a lookup per link.
//!
//! Addresses are refused unless they lie in 198.18.0.0/15 or 2001:db8::/32:
//! the harness never configures any other address.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags};
use netlink_packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage, State};
use rtnetlink::{LinkUnspec, LinkVeth};

use crate::netlink::NlError;
use crate::netns::{NetNs, NetNsError};

/// Errors building a topology. Each names the object it is about.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// A namespace could not be made.
    #[error(transparent)]
    NetNs(#[from] NetNsError),
    /// The description itself is wrong (unknown namespace, bad address…).
    #[error("topology: {0}")]
    Invalid(String),
    /// The kernel refused a request.
    #[error("{what}: {source}")]
    Netlink {
        /// The equivalent command.
        what: String,
        /// The kernel's answer.
        #[source]
        source: NlError,
    },
    /// A sysctl write failed.
    #[error("{0}")]
    Sysctl(std::io::Error),
}

/// True when `ip` lies in the test ranges 198.18.0.0/15 or 2001:db8::/32.
pub fn is_test_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            o[0] == 198 && (o[1] & 0xfe) == 18
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            s[0] == 0x2001 && s[1] == 0x0db8
        }
    }
}

/// Parses `ADDR/PREFIX` and checks it is a test address.
pub fn parse_cidr(cidr: &str) -> Result<(IpAddr, u8), TopologyError> {
    let (a, p) = cidr
        .split_once('/')
        .ok_or_else(|| TopologyError::Invalid(format!("address `{cidr}` needs a /prefix")))?;
    let ip: IpAddr = a
        .parse()
        .map_err(|_| TopologyError::Invalid(format!("`{a}` is not an IP address")))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = p
        .parse()
        .ok()
        .filter(|p| *p <= max)
        .ok_or_else(|| TopologyError::Invalid(format!("`{p}` is not a prefix length for {ip}")))?;
    if !is_test_address(ip) {
        return Err(TopologyError::Invalid(format!(
            "address {ip} is outside the test ranges 198.18.0.0/15 and 2001:db8::/32"
        )));
    }
    Ok((ip, prefix))
}

/// The `RTM_SETLINK` that sets `IFF_UP` (or clears it) on link `index`.
fn set_up(index: u32, up: bool) -> LinkMessage {
    let b = LinkUnspec::new_with_index(index);
    if up {
        b.up().build()
    } else {
        b.down().build()
    }
}

/// Brings link `index` up in `ns`. Equivalent to `ip link set DEV up`.
pub fn link_up(ns: &NetNs, index: u32) -> Result<(), NlError> {
    let rt = ns.rt();
    Ok(rt.block_on(rt.handle().link().set(set_up(index, true)).execute())?)
}

/// Sets link `index` down in `ns`. Equivalent to `ip link set DEV down`.
pub fn link_down(ns: &NetNs, index: u32) -> Result<(), NlError> {
    let rt = ns.rt();
    Ok(rt.block_on(rt.handle().link().set(set_up(index, false)).execute())?)
}

/// The operational state of link `index` in `ns` (`IFLA_OPERSTATE`).
/// Equivalent to `ip -n NS link show DEV` (the `state` field).
pub fn oper_state(ns: &NetNs, index: u32) -> Result<State, NlError> {
    let rt = ns.rt();
    let links = rt.collect(rt.handle().link().get().match_index(index).execute())?;
    Ok(links
        .into_iter()
        .flat_map(|l| l.attributes)
        .find_map(|a| match a {
            LinkAttribute::OperState(st) => Some(st),
            _ => None,
        })
        .unwrap_or(State::Unknown))
}

/// Waits until link `index` in `ns` is operationally up. Carrier and the
/// queue discipline are switched on asynchronously by the kernel's linkwatch
/// work after `IFF_UP`; until then the device drops what it is given (its
/// qdisc is `noop`), so a first SYN sent too early is lost and retried a
/// second later. linkwatch sets `IFLA_OPERSTATE` in the same step
/// (`linkwatch_do_dev` → `dev_activate` + `rfc2863_policy`), so "up" here
/// means packets flow.
pub fn wait_oper_up(ns: &NetNs, index: u32, timeout: std::time::Duration) -> Result<(), TopologyError> {
    crate::wait::wait_until(
        &format!("link {index} in `{}` to be operationally up", ns.name()),
        timeout,
        || oper_state(ns, index).ok(),
        |st| *st == Some(State::Up),
    )
    .map(|_| ())
    .map_err(|e| TopologyError::Invalid(e.to_string()))
}

/// The request of `ip addr add CIDR dev DEV [nodad]` on `handle`: IPv6
/// addresses get `IFA_F_NODAD` so they are usable at once.
///
/// rtnetlink's address builder also puts `IFA_BROADCAST` (the subnet's
/// all-ones address) on an IPv4 address below /31, which is `ip addr add …
/// brd +`, and makes the kernel add a broadcast route to the local table
/// (`fib_add_ifaddr()`). The topology's addresses have always been plain
/// `ip addr add`, and cases dump the local table, so the attribute is
/// taken off again.
fn addr_request(handle: &rtnetlink::Handle, index: u32, ip: IpAddr, prefix: u8) -> rtnetlink::AddressAddRequest {
    let mut req = handle.address().add(index, ip, prefix);
    let msg = req.message_mut();
    msg.attributes.retain(|a| !matches!(a, AddressAttribute::Broadcast(_)));
    if ip.is_ipv6() {
        msg.header.flags = AddressHeaderFlags::Nodad;
    }
    req
}

/// Adds `ip/prefix` to link `index` in `ns`; IPv6 addresses get `nodad` so
/// they are usable at once. Equivalent to `ip addr add CIDR dev DEV nodad`.
pub fn addr_add(ns: &NetNs, index: u32, ip: IpAddr, prefix: u8) -> Result<(), NlError> {
    let rt = ns.rt();
    Ok(rt.block_on(addr_request(rt.handle(), index, ip, prefix).execute())?)
}

/// The `RTM_NEWLINK` of `ip link add A index I type veth peer name B index
/// J netns NSB`: the peer is created directly in `b` (`IFLA_NET_NS_FD` in
/// the peer's message). Created down: `veth_open` refuses (ENOTCONN) while
/// the pair is being linked, so `IFF_UP` in the creation request fails.
fn veth_message(a_name: &str, a_index: u32, b: &NetNs, b_name: &str, b_index: u32) -> LinkMessage {
    let peer = LinkUnspec::new_with_name(b_name)
        .index(b_index)
        .setns_by_fd(b.fd().as_raw_fd())
        .build();
    LinkVeth::new(a_name, b_name)
        .index(a_index)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build()
}

/// Creates a veth pair `a_name` (index `a_index`, in `a`) ↔ `b_name`
/// (index `b_index`, created directly in `b`), then brings both ends up.
/// Equivalent to `ip link add A index I type veth peer name B index J netns
/// NSB` followed by `ip link set … up` on both ends.
pub fn veth_add(a: &NetNs, a_name: &str, a_index: u32, b: &NetNs, b_name: &str, b_index: u32) -> Result<(), NlError> {
    let msg = veth_message(a_name, a_index, b, b_name, b_index);
    let (rt_a, rt_b) = (a.rt(), b.rt());
    // The add and `a`'s up in one drive of `a`'s runtime.
    rt_a.block_on(async {
        rt_a.handle().link().add(msg).execute().await?;
        rt_a.handle().link().set(set_up(a_index, true)).execute().await
    })?;
    Ok(rt_b.block_on(rt_b.handle().link().set(set_up(b_index, true)).execute())?)
}

#[derive(Debug, Clone)]
struct VethSpec {
    a: (String, String),
    b: (String, String),
}

/// Describes a topology; [`TopologyBuilder::build`] makes it.
#[derive(Debug, Default, Clone)]
pub struct TopologyBuilder {
    namespaces: Vec<String>,
    veths: Vec<VethSpec>,
    addrs: Vec<(String, String, String)>,
    sysctls: Vec<(String, String, String)>,
}

/// A built topology. Dropping it closes every namespace fd; the kernel then
/// destroys the namespaces and every link in them.
#[derive(Debug)]
pub struct Topology {
    namespaces: BTreeMap<String, NetNs>,
    ifindex: BTreeMap<(String, String), u32>,
}

impl Topology {
    /// Starts a description.
    pub fn builder() -> TopologyBuilder {
        TopologyBuilder::default()
    }

    /// The standard two-namespace pair used by most cases: `client` and
    /// `server` joined by `veth0`↔`veth0`, with 198.18.0.1/24 +
    /// 2001:db8::1/64 on the client and .2 / ::2 on the server.
    pub fn pair() -> Result<Topology, TopologyError> {
        Topology::builder()
            .ns("client")
            .ns("server")
            .veth(("client", "veth0"), ("server", "veth0"))
            .addr("client", "veth0", "198.18.0.1/24")
            .addr("server", "veth0", "198.18.0.2/24")
            .addr("client", "veth0", "2001:db8::1/64")
            .addr("server", "veth0", "2001:db8::2/64")
            .build()
    }

    /// A namespace by label. Panics on an unknown label: labels are fixed
    /// by the case that built the topology, so that is a programming error.
    pub fn ns(&self, name: &str) -> &NetNs {
        self.namespaces
            .get(name)
            .unwrap_or_else(|| panic!("topology has no namespace `{name}`"))
    }

    /// The interface index of `dev` in namespace `ns`.
    pub fn ifindex(&self, ns: &str, dev: &str) -> u32 {
        *self
            .ifindex
            .get(&(ns.to_string(), dev.to_string()))
            .unwrap_or_else(|| panic!("topology has no link `{dev}` in `{ns}`"))
    }
}

impl TopologyBuilder {
    /// Adds a namespace. Equivalent to `ip netns add NAME` + `ip link set lo up`.
    pub fn ns(mut self, name: &str) -> Self {
        self.namespaces.push(name.to_string());
        self
    }

    /// Adds a veth pair between `(ns, dev)` ends. Equivalent to
    /// `ip -n A link add DEVA type veth peer name DEVB netns B`.
    pub fn veth(mut self, a: (&str, &str), b: (&str, &str)) -> Self {
        self.veths.push(VethSpec {
            a: (a.0.to_string(), a.1.to_string()),
            b: (b.0.to_string(), b.1.to_string()),
        });
        self
    }

    /// Adds an address. Equivalent to `ip -n NS addr add CIDR dev DEV`.
    pub fn addr(mut self, ns: &str, dev: &str, cidr: &str) -> Self {
        self.addrs.push((ns.to_string(), dev.to_string(), cidr.to_string()));
        self
    }

    /// Sets a sysctl in a namespace before links are made. Equivalent to
    /// `ip netns exec NS sysctl -w KEY=VALUE`.
    pub fn sysctl(mut self, ns: &str, key: &str, value: &str) -> Self {
        self.sysctls.push((ns.to_string(), key.to_string(), value.to_string()));
        self
    }

    /// Checks the whole description before anything is created.
    pub fn validate(&self) -> Result<(), TopologyError> {
        let mut seen = std::collections::BTreeSet::new();
        for n in &self.namespaces {
            if !seen.insert(n) {
                return Err(TopologyError::Invalid(format!("namespace `{n}` declared twice")));
            }
        }
        let known = |n: &String| self.namespaces.contains(n);
        let mut devs = std::collections::BTreeSet::new();
        for v in &self.veths {
            for (ns, dev) in [&v.a, &v.b] {
                if !known(ns) {
                    return Err(TopologyError::Invalid(format!(
                        "veth end `{dev}` names unknown namespace `{ns}`"
                    )));
                }
                if dev.is_empty() || dev.len() > 15 || dev.contains('/') || dev.contains(char::is_whitespace) {
                    return Err(TopologyError::Invalid(format!("`{dev}` is not a valid interface name")));
                }
                if !devs.insert((ns.clone(), dev.clone())) {
                    return Err(TopologyError::Invalid(format!("link `{dev}` declared twice in `{ns}`")));
                }
            }
        }
        for (ns, dev, cidr) in &self.addrs {
            if !devs.contains(&(ns.clone(), dev.clone())) && dev != "lo" {
                return Err(TopologyError::Invalid(format!(
                    "address {cidr} is on unknown link `{dev}` in `{ns}`"
                )));
            }
            parse_cidr(cidr)?;
        }
        for (ns, key, _) in &self.sysctls {
            if !known(ns) {
                return Err(TopologyError::Invalid(format!(
                    "sysctl {key} names unknown namespace `{ns}`"
                )));
            }
            crate::netns::sysctl_path(key).map_err(TopologyError::Sysctl)?;
        }
        Ok(())
    }

    /// Creates the namespaces, sysctls, links and addresses, in that order.
    /// On error everything made so far is dropped (and so destroyed).
    pub fn build(self) -> Result<Topology, TopologyError> {
        self.validate()?;
        // Namespaces are independent: create them concurrently (each
        // creation is mostly the kernel running every pernet init op).
        let made: Vec<Result<NetNs, NetNsError>> = std::thread::scope(|s| {
            let handles: Vec<_> = self.namespaces.iter().map(|n| s.spawn(move || NetNs::new(n))).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("namespace creation thread"))
                .collect()
        });
        let mut namespaces = BTreeMap::new();
        for (n, ns) in self.namespaces.iter().zip(made) {
            namespaces.insert(n.clone(), ns?);
        }
        for (ns, key, value) in &self.sysctls {
            namespaces[ns].sysctl_write(key, value).map_err(TopologyError::Sysctl)?;
        }
        // One counter for the whole topology, so the two ends of a pair never
        // share an index. linkwatch_urgent_event() treats a device whose
        // ifindex equals its iflink (for veth: the peer's ifindex) as
        // non-urgent, and non-urgent link events are batched at most once a
        // second (linkwatch_schedule_work): a pair numbered 2 <-> 2 can take
        // a second to pass its first packet.
        let mut counter = 2u32;
        let mut ifindex = BTreeMap::new();
        for n in &self.namespaces {
            ifindex.insert((n.clone(), "lo".to_string()), 1);
        }
        for v in &self.veths {
            let (ia, ib) = (counter, counter + 1);
            counter += 2;
            veth_add(&namespaces[&v.a.0], &v.a.1, ia, &namespaces[&v.b.0], &v.b.1, ib).map_err(|e| {
                TopologyError::Netlink {
                    what: format!(
                        "ip -n {} link add {} type veth peer name {} netns {}",
                        v.a.0, v.a.1, v.b.1, v.b.0
                    ),
                    source: e,
                }
            })?;
            ifindex.insert(v.a.clone(), ia);
            ifindex.insert(v.b.clone(), ib);
        }
        // Addresses: those of one namespace in one drive of its runtime,
        // all requests in flight at once (sent in the declared order, which
        // decides primary and secondary addresses).
        for (name, ns) in &namespaces {
            let mut mine = Vec::new();
            for (n, dev, cidr) in self.addrs.iter().filter(|(n, _, _)| n == name) {
                let (ip, prefix) = parse_cidr(cidr)?;
                mine.push((n, dev, cidr, ifindex[&(n.clone(), dev.clone())], ip, prefix));
            }
            if mine.is_empty() {
                continue;
            }
            let rt = ns.rt();
            let answers = rt
                .block_on(futures_util::future::join_all(mine.iter().map(
                    |(_, _, _, idx, ip, prefix)| addr_request(rt.handle(), *idx, *ip, *prefix).execute(),
                )));
            for ((n, dev, cidr, ..), answer) in mine.iter().zip(answers) {
                answer.map_err(|e| TopologyError::Netlink {
                    what: format!("ip -n {n} addr add {cidr} dev {dev}"),
                    source: e.into(),
                })?;
            }
        }
        // Links come up asynchronously (see `wait_oper_up`); a topology is
        // handed out only once every veth end passes packets.
        for v in &self.veths {
            for end in [&v.a, &v.b] {
                wait_oper_up(&namespaces[&end.0], ifindex[end], std::time::Duration::from_secs(10))?;
            }
        }
        Ok(Topology { namespaces, ifindex })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_ranges() {
        assert!(is_test_address("198.18.0.1".parse().unwrap()));
        assert!(is_test_address("198.19.255.255".parse().unwrap()));
        assert!(!is_test_address("198.20.0.1".parse().unwrap()));
        assert!(!is_test_address("10.0.0.1".parse().unwrap()));
        assert!(is_test_address("2001:db8::1".parse().unwrap()));
        assert!(!is_test_address("2001:db9::1".parse().unwrap()));
        assert!(!is_test_address("fe80::1".parse().unwrap()));
    }

    #[test]
    fn validation_names_the_problem() {
        let e = Topology::builder()
            .ns("a")
            .addr("a", "veth0", "198.18.0.1/24")
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("unknown link `veth0`"), "{e}");
        let e = Topology::builder()
            .ns("a")
            .ns("b")
            .veth(("a", "v"), ("b", "v"))
            .addr("a", "v", "10.0.0.1/8")
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("outside the test ranges"), "{e}");
        let e = Topology::builder()
            .ns("a")
            .veth(("a", "v"), ("c", "v"))
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("unknown namespace `c`"), "{e}");
        assert!(parse_cidr("198.18.0.1/33").is_err());
        assert!(parse_cidr("198.18.0.1").is_err());
    }
}
