//! What the running kernel says about itself: release, version, the length
//! of `struct tcp_info`, which protocols are registered, and what privilege
//! the harness runs with. Printed as the header of every run and handed to
//! every model.
//!
//! The version is the kernel's real one, not the one in `uname -r`:
//! distributions keep the release string of a stable series fixed while the
//! stable updates they ship move on (Debian's `5.10.0-35-cloud-amd64` is
//! 5.10.237), and models gated on a stable backport need the real patch
//! level. Debian prints it at the end of `/proc/version` (`… Debian
//! 5.10.237-1 (2025-05-19)`), Ubuntu in `/proc/version_signature`
//! (`Ubuntu 5.15.0-91.101-generic 5.15.131`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The facts a model may depend on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelInfo {
    /// `uname -r`.
    pub release: String,
    /// `(major, minor, patch)`: the real version, from the distribution's
    /// own record in `/proc/version` or `/proc/version_signature` where it
    /// has one, else parsed from the release (see [`real_version`]).
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

    /// `true` when the kernel is at least `major.minor.patch`, by its real
    /// version: the gate for a change backported to a stable series.
    pub fn at_least_patch(&self, major: u32, minor: u32, patch: u32) -> bool {
        self.version >= (major, minor, patch)
    }

    /// A kernel build option (`CONFIG_…`) from the build configuration the
    /// running kernel exposes: `Some(true)` when `=y` or `=m`, `Some(false)`
    /// when the configuration is readable and the option is not set, `None`
    /// when neither `/boot/config-RELEASE` nor `/proc/config.gz` is there.
    pub fn config_option(&self, option: &str) -> Option<bool> {
        let text = read_config(
            Path::new(&format!("/boot/config-{}", self.release)),
            Path::new("/proc/config.gz"),
        )?;
        Some(config_has(&text, option))
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
        let version = real_version(
            &release,
            std::fs::read_to_string("/proc/version").ok().as_deref(),
            std::fs::read_to_string("/proc/version_signature").ok().as_deref(),
        );
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

/// The real version of a kernel whose `uname -r` is `release`, given the
/// text of `/proc/version` and `/proc/version_signature` (when readable):
/// Debian's `#1 SMP … Debian 6.1.158-1 (2025-11-09)` at the end of
/// `/proc/version`, Ubuntu's last field of `/proc/version_signature`, else
/// the release itself. A distribution version of another series than the
/// release (which no real kernel prints) is ignored.
pub fn real_version(release: &str, proc_version: Option<&str>, signature: Option<&str>) -> (u32, u32, u32) {
    let from_release = parse_release(release);
    let same_series = |v: (u32, u32, u32)| (v.0, v.1) == (from_release.0, from_release.1);
    // The compiler's own "(Debian 12.2.0-14+deb12u1)" comes before the build
    // number ("#1 SMP …"); the kernel package's version comes after it.
    let debian = proc_version
        .and_then(|t| t.rsplit_once(" #").map(|(_, build)| build))
        .and_then(|build| build.split("Debian ").nth(1))
        .map(parse_release);
    let ubuntu = signature
        .filter(|s| s.starts_with("Ubuntu "))
        .and_then(|s| s.split_whitespace().last())
        .map(parse_release);
    [debian, ubuntu]
        .into_iter()
        .flatten()
        .find(|&v| same_series(v))
        .unwrap_or(from_release)
}

/// The build configuration: `boot` (`/boot/config-RELEASE`, plain text), or
/// else `proc_gz` (`/proc/config.gz`, CONFIG_IKCONFIG_PROC, gzip).
pub fn read_config(boot: &Path, proc_gz: &Path) -> Option<String> {
    if let Ok(text) = std::fs::read_to_string(boot) {
        return Some(text);
    }
    let raw = std::fs::read(proc_gz).ok()?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(&raw[..]).read_to_string(&mut text).ok()?;
    Some(text)
}

/// Whether `option` is `=y` or `=m` in the configuration text `config`.
pub fn config_has(config: &str, option: &str) -> bool {
    config.lines().any(|l| {
        l.trim()
            .strip_prefix(option)
            .and_then(|rest| rest.strip_prefix('='))
            .is_some_and(|v| v == "y" || v == "m")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real `/proc/version` lines (5.10, 6.1 and 6.12 as Debian's kernels
    /// print them; 7.2 built on the same pattern, with sid's release form).
    const DEBIAN_5_10: &str = "Linux version 5.10.0-35-amd64 (debian-kernel@lists.debian.org) (gcc-10 (Debian \
        10.2.1-6) 10.2.1 20210110, GNU ld (GNU Binutils for Debian) 2.35.2) #1 SMP Debian 5.10.237-1 \
        (2025-05-19)\n";
    const DEBIAN_6_1: &str = "Linux version 6.1.0-41-cloud-amd64 (debian-kernel@lists.debian.org) (gcc-12 \
        (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC \
        Debian 6.1.158-1 (2025-11-09)\n";
    const DEBIAN_6_12: &str = "Linux version 6.12.41+deb13-amd64 (debian-kernel@lists.debian.org) \
        (x86_64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0, GNU ld (GNU Binutils for Debian) 2.44) #1 SMP \
        PREEMPT_DYNAMIC Debian 6.12.41-1 (2025-08-12)\n";
    const DEBIAN_7_2: &str = "Linux version 7.2.13+deb14-cloud-amd64 (debian-kernel@lists.debian.org) \
        (x86_64-linux-gnu-gcc-15 (Debian 15.2.0-9) 15.2.0, GNU ld (GNU Binutils for Debian) 2.45.50.20251209) \
        #1 SMP PREEMPT_DYNAMIC Debian 7.2.13-1 (2026-09-20)\n";
    /// This machine's.
    const HOST: &str = "Linux version 6.18.44-fc-v1045 (builder@sandboxing) (gcc (GCC) 15.3.0, GNU ld \
        (GNU Binutils) 2.46) #1 SMP PREEMPT_DYNAMIC @0\n";
    const UBUNTU: &str = "Linux version 5.15.0-91-generic (buildd@lcy02-amd64-045) (gcc (Ubuntu \
        11.4.0-1ubuntu1~22.04) 11.4.0, GNU ld (GNU Binutils for Ubuntu) 2.38) #101-Ubuntu SMP Tue Nov 14 \
        13:30:08 UTC 2023\n";

    #[test]
    fn real_versions() {
        assert_eq!(real_version("5.10.0-35-amd64", Some(DEBIAN_5_10), None), (5, 10, 237));
        assert_eq!(
            real_version("6.1.0-41-cloud-amd64", Some(DEBIAN_6_1), None),
            (6, 1, 158)
        );
        assert_eq!(
            real_version("6.12.41+deb13-amd64", Some(DEBIAN_6_12), None),
            (6, 12, 41)
        );
        assert_eq!(
            real_version("7.2.13+deb14-cloud-amd64", Some(DEBIAN_7_2), None),
            (7, 2, 13)
        );
        assert_eq!(real_version("6.18.44-fc-v1045", Some(HOST), None), (6, 18, 44));
        assert_eq!(
            real_version(
                "5.15.0-91-generic",
                Some(UBUNTU),
                Some("Ubuntu 5.15.0-91.101-generic 5.15.131\n")
            ),
            (5, 15, 131)
        );
        // Without the distribution's record, the release.
        assert_eq!(real_version("5.10.0-35-cloud-amd64", None, None), (5, 10, 0));
        assert_eq!(real_version("5.15.0-91-generic", Some(UBUNTU), None), (5, 15, 0));
        // A record of another series is not believed.
        assert_eq!(real_version("6.1.0-41-cloud-amd64", Some(DEBIAN_5_10), None), (6, 1, 0));
    }

    #[test]
    fn backport_gates_use_the_real_version() {
        let k = KernelInfo {
            release: "4.19.0-27-amd64".into(),
            version: real_version(
                "4.19.0-27-amd64",
                Some("Linux version 4.19.0-27-amd64 (debian-kernel@lists.debian.org) (gcc version 8.3.0 (Debian 8.3.0-6)) #1 SMP Debian 4.19.316-1 (2024-06-25)"),
                None,
            ),
            tcp_info_len: 232,
            protocols: BTreeMap::new(),
            privileges: "root".into(),
            cpus: 1,
        };
        assert!(k.at_least_patch(4, 19, 290));
        assert!(!k.at_least_patch(4, 19, 317));
        assert!(!k.at_least(5, 8));
    }

    #[test]
    fn configs() {
        let tmp = tempfile::Builder::new().prefix("kharness-config-").tempdir().unwrap();
        let dir = tmp.path();
        let boot = dir.join("config-x");
        let gz = dir.join("config.gz");
        let text = "CONFIG_UNIX=y\n# CONFIG_AF_UNIX_OOB is not set\nCONFIG_SCTP=m\nCONFIG_X_LONGER=y\n";
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, text.as_bytes()).unwrap();
        std::fs::write(&gz, e.finish().unwrap()).unwrap();
        // No /boot/config: /proc/config.gz is read.
        let got = read_config(&boot, &gz).unwrap();
        assert_eq!(got, text);
        assert!(config_has(&got, "CONFIG_UNIX") && config_has(&got, "CONFIG_SCTP"));
        assert!(!config_has(&got, "CONFIG_AF_UNIX_OOB") && !config_has(&got, "CONFIG_X"));
        // /boot/config first.
        std::fs::write(&boot, "CONFIG_AF_UNIX_OOB=y\n").unwrap();
        assert!(config_has(&read_config(&boot, &gz).unwrap(), "CONFIG_AF_UNIX_OOB"));
        // Neither: no fact.
        assert_eq!(read_config(&dir.join("none"), &dir.join("none.gz")), None);
    }

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
