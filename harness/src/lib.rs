//! kharness: an eBPF-free test harness for the Linux kernel's networking
//! interfaces. This crate is the core every case stands on.
#![deny(missing_docs)]

/// Case definitions, the context a case runs with, outcomes and reports.
pub mod case;
/// sock_diag (`INET_DIAG`) requests, decoded with the `tcp_info` decoder.
pub mod diag;
/// The typed event stream of a run.
pub mod event;
/// `kharness explore`: property cases with fresh seeds until a time budget is spent.
pub mod explore;
/// Kernel health around every case: the kernel log and taint, watched.
pub mod health;
/// What the running kernel says about itself.
pub mod kernel;
/// Known kernel issues as data (`fixtures/known-issues.toml`, `--known-issues`).
pub mod known_issues;
/// Observations, predictions and their comparison.
pub mod model;
/// Synchronous netlink requests with extended-ACK decoding.
pub mod netlink;
/// Network namespaces held by an fd.
pub mod netns;
/// Per-namespace socket observations (TCP_INFO, queue ioctls, SO_MEMINFO).
pub mod observe;
/// Entering a user namespace when not root.
pub mod privilege;
/// Parsers for `/proc/…/net/{snmp,netstat,snmp6}`.
pub mod procfs;
/// Property-case settings: seed, sequence count, explore mode.
pub mod property;
/// Reporters consuming the event stream.
pub mod report;
/// rtnetlink handles on a socket inside a namespace, driven by a current-thread tokio runtime.
pub mod rt;
/// Running cases in child processes.
pub mod runner;
/// The only module with `unsafe`: safe wrappers over libc, and (in
/// `sys::ring`) packet-socket rings mapped with mmap.
pub mod sys;
/// Packet-socket rings mapped with mmap, unmapped by a guard (`sys::ring`).
pub use sys::ring;
/// Decoder for `struct tcp_info`.
pub mod tcpinfo;
/// Namespaces joined by veth pairs, with addresses and sysctls.
pub mod topology;
/// Poll-to-deadline waiting.
pub mod wait;

pub use case::{CaseDef, CaseError, CaseReport, Ctx, Outcome};
pub use kernel::KernelInfo;
pub use model::{Expect, Mismatch};
pub use netns::NetNs;
pub use tcpinfo::TcpInfo;
pub use topology::Topology;
