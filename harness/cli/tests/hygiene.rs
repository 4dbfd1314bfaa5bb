//! The host is untouched: the host namespace's links, addresses, routes of
//! every table, rules, neighbours and every `net.*` sysctl are the same
//! before and after a full `kharness run`, and before and after a full
//! `kharness matrix` (every kernel of the list, QEMU guests and the host
//! natively); and neither leaves a process, a network namespace, a mount, a
//! link or a stray file behind. (Killed runs: tests/kill.rs.)
//!
//! The matrix part needs QEMU, a cached kernel and the static build; it
//! skips saying so otherwise. Its cache is private: hard links to the
//! user's cached kernels, so nothing is downloaded and the user's cache
//! gains no run logs. It runs every kernel of the list with one case of
//! each family (the host namespace sees only the host column's, and the
//! full host run comes first); `KHARNESS_HYGIENE_FULL_MATRIX=1` runs the
//! whole catalog on every kernel (ci/reliability.sh).
//!
//! One test function, so its steps never overlap with each other.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn full_run_and_full_matrix_leave_the_host_as_it_was() -> TestResult {
    if !is_root() {
        return not_run("hygiene: not run: not root; the host snapshot needs root to be meaningful");
    }
    let scratch = scratch_dir("hygiene-tmp");
    let tmp = scratch.path();
    // kharness's scratch paths come from temp_dir(): TMPDIR is this test's.
    let base = Baseline::take(&[tmp]);
    let host_before = host_snapshot();

    // A full run.
    let t = Instant::now();
    let st = Command::new(BIN)
        .args(["run", "--format", "json"])
        .env("TMPDIR", tmp)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(0), "kharness run exited {st:?}");
    wait_gone(Duration::from_secs(20)).expect("processes left by a full run");
    let f = base.check(&|_, _| false);
    assert!(f.leaks.is_empty(), "a full run left:\n  {}", f.leaks.join("\n  "));
    if let Some(d) = diff(&host_before, &host_snapshot()) {
        panic!("a full `kharness run` changed the host namespace:\n{d}");
    }
    eprintln!("hygiene: full run ({} ms): host namespace unchanged (links, addresses, routes, rules, neighbours, net.* sysctls), nothing left", t.elapsed().as_millis());

    // A full matrix.
    let k = match cached_kernel() {
        Ok(k) => k,
        Err(why) => {
            return not_run(format!(
                "hygiene: the full run left the host as it was; the matrix part did not run: {why}"
            ));
        }
    };
    // Beside TMPDIR, not in it: the cache is no scratch file of the run's.
    let cache_dir = scratch_dir("hygiene-cache");
    let cache = cache_dir.path();
    let user_kernels = k.entry.parent().expect("kernels/");
    link_tree(user_kernels, &cache.join("kernels")).expect("link the cached kernels");
    let base = Baseline::take(&[tmp, cache]);
    let full = env_usize("KHARNESS_HYGIENE_FULL_MATRIX", 0) > 0;
    let mut cases: Vec<&str> = Vec::new();
    if !full {
        for c in [
            "tcp.refused",
            "unix.abstract",
            "neigh.add_dump",
            "route.monitor",
            "rule.uid_range",
            "raw.rp_filter",
            "packet.tx_ring",
            "sctp.one_to_one",
            "sockopt.roundtrip",
            "procfs.socket_inode",
        ] {
            cases.extend(["--case", c]);
        }
    }
    let t = Instant::now();
    let out = Command::new(BIN)
        .args(["matrix", "--format", "json"])
        .args(&cases)
        .arg("--init-binary")
        .arg(&k.init)
        .arg("--cache-dir")
        .arg(cache)
        .env("TMPDIR", tmp)
        .output()
        .unwrap();
    let progress = String::from_utf8_lossy(&out.stderr);
    let m: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no matrix report ({e}):\n{progress}"));
    let mut lines = Vec::new();
    for kr in m["kernels"].as_array().into_iter().flatten() {
        let status = kr["status"].as_str().unwrap_or("?");
        lines.push(format!("{} {status}", kr["name"].as_str().unwrap_or("?")));
        // A kernel missing from the cache would be fetched: not here.
        assert_ne!(
            status, "unavailable",
            "kernel {} is not cached: {}",
            kr["name"], kr["problem"]
        );
    }
    assert_eq!(
        out.status.code(),
        Some(0),
        "kharness matrix: {}\n{progress}",
        lines.join(", ")
    );
    wait_gone(Duration::from_secs(20)).expect("processes left by a full matrix run (QEMU?)");
    // The run's logs are all it adds to the cache.
    let f = base.check(&|dir, rel| dir == cache && rel.starts_with("runs"));
    assert!(
        f.leaks.is_empty(),
        "a full matrix run left:\n  {}",
        f.leaks.join("\n  ")
    );
    if let Some(d) = diff(&host_before, &host_snapshot()) {
        panic!("a full `kharness matrix` changed the host namespace:\n{d}");
    }
    eprintln!(
        "hygiene: matrix of every kernel, {} ({} ms: {}): host namespace unchanged, nothing left but the run's logs",
        if full { "whole catalog" } else { "a case of each family" },
        t.elapsed().as_millis(),
        lines.join(", ")
    );
    Ok(())
}

fn main() {
    common::run_tests(&[(
        "full_run_and_full_matrix_leave_the_host_as_it_was",
        full_run_and_full_matrix_leave_the_host_as_it_was,
    )]);
}
