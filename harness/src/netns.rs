//! Network namespaces held by a file descriptor.
//!
//! A [`NetNs`] is created on a short-lived thread that calls
//! `unshare(CLONE_NEWNET)` and opens `/proc/thread-self/ns/net`; the thread
//! then exits, and the only thing keeping the namespace alive is the fd (and
//! the rtnetlink socket opened inside it). Nothing is mounted under
//! `/run/netns`, so when the process that holds the fd dies — even by
//! SIGKILL — the kernel frees the namespace and every link in it.
//!
//! Work that must happen *inside* the namespace (opening sockets, writing
//! `/proc/sys/net`, reading `/proc/thread-self/net`) runs on a scoped thread
//! that `setns`es first: `setns` is per thread, so the caller's thread never
//! changes namespace.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::sched::{setns, unshare, CloneFlags};

use crate::netlink::NlSocket;
use crate::procfs::{Mib, MibFiles};
use crate::rt::Rtnl;

/// A network namespace owned by this process.
pub struct NetNs {
    name: String,
    fd: OwnedFd,
    rt: Rtnl,
    mib: MibFiles,
}

impl std::fmt::Debug for NetNs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetNs")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Errors creating or entering a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetNsError {
    /// `unshare(CLONE_NEWNET)` failed (no CAP_SYS_ADMIN in this user namespace).
    #[error("cannot create network namespace `{name}`: unshare(CLONE_NEWNET): {source}")]
    Unshare {
        /// Namespace label.
        name: String,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// `setns` into the namespace failed.
    #[error("cannot enter network namespace `{name}`: setns: {source}")]
    Enter {
        /// Namespace label.
        name: String,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// Something else failed while setting the namespace up.
    #[error("network namespace `{name}`: {what}: {source}")]
    Setup {
        /// Namespace label.
        name: String,
        /// What was being done.
        what: String,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
}

fn nix_io(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

impl NetNs {
    /// Creates a fresh network namespace labelled `name` (the label is only
    /// for messages; nothing is named in the kernel). Equivalent to
    /// `ip netns add NAME` without the bind mount.
    pub fn new(name: &str) -> Result<NetNs, NetNsError> {
        let label = name.to_string();
        let res = std::thread::scope(|s| {
            s.spawn(|| -> Result<(OwnedFd, Rtnl, MibFiles), NetNsError> {
                unshare(CloneFlags::CLONE_NEWNET).map_err(|e| NetNsError::Unshare {
                    name: label.clone(),
                    source: nix_io(e),
                })?;
                let fd: OwnedFd = File::open("/proc/thread-self/ns/net")
                    .map_err(|e| NetNsError::Setup {
                        name: label.clone(),
                        what: "open /proc/thread-self/ns/net".into(),
                        source: e,
                    })?
                    .into();
                // The rtnetlink handle, on a socket opened here, so in the
                // new namespace; its current-thread runtime is made now,
                // after the unshare, and spawns no thread.
                let rt = Rtnl::open_here().map_err(|e| NetNsError::Setup {
                    name: label.clone(),
                    what: "open rtnetlink handle".into(),
                    source: e,
                })?;
                // The MIB files, opened here once: [`NetNs::mib`] reads
                // them again from any thread.
                let mib = MibFiles::open_here().map_err(|e| NetNsError::Setup {
                    name: label.clone(),
                    what: "open /proc/thread-self/net/{snmp,netstat,snmp6}".into(),
                    source: e,
                })?;
                Ok((fd, rt, mib))
            })
            .join()
            .expect("namespace creation thread panicked")
        });
        let (fd, rt, mib) = res?;
        let ns = NetNs {
            name: name.to_string(),
            fd,
            rt,
            mib,
        };
        crate::topology::link_up(&ns, 1).map_err(|e| NetNsError::Setup {
            name: name.to_string(),
            what: "bring lo up".into(),
            source: io::Error::other(e.to_string()),
        })?;
        Ok(ns)
    }

    /// The label given at creation.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace fd (for `IFLA_NET_NS_FD` and `setns`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The `rtnetlink` handle on a socket opened inside this namespace,
    /// with the current-thread runtime that drives it:
    /// `ns.rt().block_on(ns.rt().handle().link().set(…).execute())`.
    pub fn rt(&self) -> &Rtnl {
        &self.rt
    }

    /// Runs `f` on a thread inside this namespace and returns its result.
    /// Equivalent to `ip netns exec NAME …` for one closure.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetNsError> {
        let fd = self.fd.as_fd();
        std::thread::scope(|s| {
            s.spawn(move || {
                setns(fd, CloneFlags::CLONE_NEWNET).map_err(|e| NetNsError::Enter {
                    name: self.name.clone(),
                    source: nix_io(e),
                })?;
                Ok(f())
            })
            .join()
            .expect("namespace thread panicked")
        })
    }

    /// Opens a socket inside this namespace (`SOCK_CLOEXEC` always set).
    pub fn socket(&self, domain: i32, ty: i32, protocol: i32) -> io::Result<OwnedFd> {
        self.run(|| crate::sys::socket(domain, ty, protocol))
            .map_err(io::Error::other)?
    }

    /// Opens a synchronous netlink socket of `protocol` inside this
    /// namespace: for what no `rtnetlink` builder can say (deliberately
    /// malformed messages, the extended ACK's text, multicast listening,
    /// sock_diag, generic netlink).
    pub fn netlink(&self, protocol: isize) -> io::Result<NlSocket> {
        self.run(|| NlSocket::open(protocol)).map_err(io::Error::other)?
    }

    /// Writes a sysctl of this namespace: `key` in dotted form
    /// (`net.ipv4.tcp_notsent_lowat`). Equivalent to
    /// `ip netns exec NAME sysctl -w KEY=VALUE`.
    pub fn sysctl_write(&self, key: &str, value: &str) -> io::Result<()> {
        let path = sysctl_path(key)?;
        self.run(|| std::fs::write(&path, value))
            .map_err(io::Error::other)?
            .map_err(|e| io::Error::new(e.kind(), format!("sysctl -w {key}={value}: {e}")))
    }

    /// Reads a sysctl of this namespace, trimmed.
    pub fn sysctl_read(&self, key: &str) -> io::Result<String> {
        let path = sysctl_path(key)?;
        self.run(|| std::fs::read_to_string(&path))
            .map_err(io::Error::other)?
            .map(|s| s.trim().to_string())
            .map_err(|e| io::Error::new(e.kind(), format!("sysctl {key}: {e}")))
    }

    /// The namespace's MIB counters (snmp + netstat + snmp6).
    /// Equivalent to `ip netns exec NAME nstat -a`.
    pub fn mib(&self) -> io::Result<Mib> {
        self.mib.read()
    }
}

/// Maps a dotted sysctl key under `net.` to its `/proc/sys` path, refusing
/// anything outside `net.` (the only per-namespace tree we may write).
pub fn sysctl_path(key: &str) -> io::Result<String> {
    if !key.starts_with("net.") || key.contains("..") || key.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("sysctl `{key}` is not a per-namespace `net.` key"),
        ));
    }
    Ok(format!("/proc/sys/{}", key.replace('.', "/")))
}
