//! `kharness matrix`: the catalog on several kernels, one table of cases ×
//! kernels.
//!
//! The kernel list is data (`fixtures/kernels.toml`, [`config`]). Debian
//! kernels are found in the archive's index and downloaded with apt's own
//! machinery ([`apt`]) into a cache ([`fetch`]), unpacked in Rust ([`deb`]).
//! Each kernel boots under QEMU ([`qemu`]) with an initramfs ([`initramfs`],
//! [`cpio`]) whose `/init` is the static `kharness` itself ([`guest`]) plus
//! the modules the catalog needs ([`modules`]). The guest streams versioned
//! JSON lines on a second serial port ([`protocol`]); the host kernel runs
//! natively through `kharness run --format json`, read by the same parser.
//! [`run`] drives it all in parallel and emits progress events; the
//! [`results`] feed the reporters ([`report`]) and `kharness report merge`.
//! Scratch paths are registered with a helper process ([`cleanup`]) that
//! removes them if the run is killed.
//!
//! The matrix's results document ([`Matrix`]) is also what `kharness report
//! diff` ([`report_diff`]) and `--format kcidb` ([`kcidb`], for a run too: a
//! one-kernel matrix) read and write, so both live here with it.
//!
//! A crate of its own so that the core (`kharness`: namespaces, topologies,
//! observations, models, runner, reporters) does not link the archive,
//! compression and ELF readers (tar, xz2, zstd, object) only the matrix needs.
//! No `unsafe` here: what needs it is in `kharness::sys`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod apt;
pub mod cleanup;
pub mod config;
pub mod cpio;
pub mod deb;
pub mod diff;
pub mod fetch;
pub mod guest;
pub mod initramfs;
pub mod kcidb;
pub mod modules;
pub mod protocol;
pub mod qemu;
pub mod report;
pub mod report_diff;
pub mod results;
pub mod run;

pub use config::{KernelSource, KernelSpec, MatrixConfig};
pub use results::{KernelRun, KernelStatus, Matrix};
pub use run::{MatrixEvent, MatrixOptions, Stage};
