//! What the running kernel says about itself: release, version, the length
//! of `struct tcp_info`, which protocols are registered, and what privilege
//! the harness runs with. Printed as the header of every run and handed to
//! every model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The facts a model may depend on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelInfo {
    /// `uname -r`.
    pub release: String,
    /// `(major, minor, patch)` parsed from the release.
    pub version: (u32, u32, u32),
    /// What `getsockopt(TCP_INFO)` returned as its length.
    pub tcp_info_len: usize,
    /// Protocols registered in the kernel (`/proc/net/protocols`), by name,
    /// plus the address families probed by opening a socket.
    pub protocols: BTreeMap<String, bool>,
    /// `root`, or `root in a user namespace (uid N outside)`.
    pub privileges: String,
    /// CPUs available to the harness.
    pub cpus: usize,
}

impl KernelInfo {
    /// `true` when the kernel is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.version.0, self.version.1) >= (major, minor)
    }

    /// Whether a protocol (as named in `/proc/net/protocols`) is registered.
    pub fn has_protocol(&self, name: &str) -> bool {
        self.protocols.get(name).copied().unwrap_or(false)
    }

    /// Probes the running kernel.
    pub fn probe() -> KernelInfo {
        let uts = nix::sys::utsname::uname().ok();
        let release = uts
            .as_ref()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_else(|| "unknown".into());
        let version = parse_release(&release);
        let tcp_info_len = crate::sys::socket(libc::AF_INET, libc::SOCK_STREAM, 0)
            .and_then(|s| crate::sys::getsockopt_bytes(crate::sys::borrow(&s), libc::IPPROTO_TCP, libc::TCP_INFO, 512))
            .map(|b| b.len())
            .unwrap_or(0);
        let mut protocols = BTreeMap::new();
        if let Ok(text) = std::fs::read_to_string("/proc/net/protocols") {
            for line in text.lines().skip(1) {
                if let Some(name) = line.split_whitespace().next() {
                    protocols.insert(name.to_string(), true);
                }
            }
        }
        for p in ["SCTP", "SCTPv6", "PACKET", "RAW", "UNIX", "NETLINK", "TCP", "UDP"] {
            protocols.entry(p.to_string()).or_insert(false);
        }
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        KernelInfo {
            release,
            version,
            tcp_info_len,
            protocols,
            privileges: crate::privilege::describe(),
            cpus,
        }
    }
}

/// Parses `6.1.0-27-cloud-amd64` → `(6, 1, 0)`; missing parts are 0.
pub fn parse_release(release: &str) -> (u32, u32, u32) {
    let mut nums = release
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (
        nums.next().unwrap_or(0),
        nums.next().unwrap_or(0),
        nums.next().unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases() {
        assert_eq!(parse_release("6.1.0-27-cloud-amd64"), (6, 1, 0));
        assert_eq!(parse_release("5.10.226-1"), (5, 10, 226));
        assert_eq!(parse_release("6.18.44-fc-v769"), (6, 18, 44));
        assert_eq!(parse_release("7.2"), (7, 2, 0));
        assert_eq!(parse_release(""), (0, 0, 0));
    }

    #[test]
    fn probe_reports_this_kernel() {
        let k = KernelInfo::probe();
        assert!(k.version.0 >= 3);
        assert!(k.tcp_info_len >= 104);
        assert!(k.has_protocol("TCP"));
    }
}
