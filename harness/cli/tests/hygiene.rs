//! Nothing leaks and the host is untouched: a run killed with SIGKILL leaves
//! no process, namespace or link behind, and a full run leaves the host's
//! links, addresses, routes, rules and net.* sysctls as they were.
//!
//! One test function, so its steps never overlap with each other.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kharness");

/// Every network namespace a process of ours (this binary) holds: as its
/// own, a thread's, or through an open fd. A namespace can only outlive the
/// processes that hold it through a mount, checked separately.
fn netns_held_by_us() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for pid in our_processes() {
        let pid = std::path::PathBuf::from(format!("/proc/{pid}"));
        for link in [pid.join("ns/net")] {
            if let Ok(t) = std::fs::read_link(&link) {
                out.insert(t.to_string_lossy().into_owned());
            }
        }
        for sub in ["task", "fd"] {
            if let Ok(rd) = std::fs::read_dir(pid.join(sub)) {
                for e in rd.flatten() {
                    let target = if sub == "task" { std::fs::read_link(e.path().join("ns/net")) } else { std::fs::read_link(e.path()) };
                    if let Ok(t) = target {
                        let t = t.to_string_lossy().into_owned();
                        if t.starts_with("net:[") {
                            out.insert(t);
                        }
                    }
                }
            }
        }
    }
    out
}

/// Namespace mounts (`ip netns add` makes one; kharness never should).
fn nsfs_mounts() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" nsfs "))
        .map(str::to_string)
        .collect()
}

fn our_processes() -> Vec<u32> {
    let mut v = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(exe) = std::fs::read_link(p.path().join("exe")) {
            if exe.to_string_lossy().trim_end_matches(" (deleted)") == BIN {
                v.push(pid);
            }
        }
    }
    v
}

fn host_snapshot() -> String {
    let mut s = String::new();
    for args in [
        vec!["-o", "link", "show"],
        vec!["-o", "addr", "show"],
        vec!["route", "show", "table", "all"],
        vec!["-6", "route", "show", "table", "all"],
        vec!["rule", "show"],
        vec!["-6", "rule", "show"],
        vec!["neigh", "show"],
    ] {
        if let Ok(o) = Command::new("ip").args(&args).output() {
            // Link statistics and neighbour ages move on their own; keep names and states.
            s.push_str(&format!("## ip {}\n{}", args.join(" "), String::from_utf8_lossy(&o.stdout)));
        }
    }
    let mut sysctls = Vec::new();
    walk("/proc/sys/net", &mut sysctls);
    sysctls.sort();
    for (k, v) in sysctls {
        s.push_str(&format!("{k} = {v}\n"));
    }
    s
}

fn walk(dir: &str, out: &mut Vec<(String, String)>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let ps = p.to_string_lossy().into_owned();
        // Counters that change by themselves, not settings.
        if ps.contains("/neigh/") && ps.ends_with("base_reachable_time") {
            continue;
        }
        if p.is_dir() {
            walk(&ps, out);
        } else if let Ok(v) = std::fs::read_to_string(&p) {
            out.push((ps, v.trim().to_string()));
        }
    }
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

#[test]
fn sigkill_leaves_nothing_and_host_is_untouched() {
    if !nix_is_root() {
        eprintln!("hygiene: not root; the host snapshot needs root to be meaningful");
        return;
    }
    let host_before = host_snapshot();
    let mounts_before = nsfs_mounts();

    // A full run, normally.
    let st = Command::new(BIN).args(["run", "--format", "json"]).stdout(Stdio::null()).status().unwrap();
    assert!(st.code() == Some(0) || st.code() == Some(1), "run exited {st:?}");
    wait_for("processes of the full run to exit", Duration::from_secs(10), || our_processes().is_empty());
    assert_eq!(nsfs_mounts(), mounts_before, "namespace mounts changed");

    // Kill the runner at several moments of a run.
    for delay_ms in [5u64, 40, 120, 300] {
        let mut child = Command::new(BIN)
            .args(["run", "tcp.*", "--format", "json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(delay_ms) {
            std::thread::park_timeout(Duration::from_millis(1));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        wait_for(&format!("case processes to die after SIGKILL at {delay_ms} ms"), Duration::from_secs(10), || our_processes().is_empty());
        assert!(netns_held_by_us().is_empty());
        assert_eq!(nsfs_mounts(), mounts_before, "namespace mounts changed after SIGKILL at {delay_ms} ms");
    }
    let host_after = host_snapshot();
    if host_before != host_after {
        let b: BTreeSet<&str> = host_before.lines().collect();
        let a: BTreeSet<&str> = host_after.lines().collect();
        panic!(
            "host changed:\n- {}\n+ {}",
            b.difference(&a).cloned().collect::<Vec<_>>().join("\n- "),
            a.difference(&b).cloned().collect::<Vec<_>>().join("\n+ ")
        );
    }
}

fn nix_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
