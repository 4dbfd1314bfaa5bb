//! What "nothing of ours is left" means, measured from /proc and /sys, for
//! the reliability tests (kill.rs, hygiene.rs, hostile.rs, resources.rs):
//! processes, network namespaces (as a process's own, a thread's, or held
//! through an fd), mounts, host links, files in watched directories, and the
//! host namespace's whole network state.
//!
//! A test that kills kharness first makes itself a child subreaper, so every
//! process the killed run started is handed to the test when it is orphaned:
//! "ours" is then exactly this binary's processes plus the test's children.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_kharness");

/// A count from the environment (`KHARNESS_KILL_POINTS=100`), else `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: give a whole number")),
        Err(_) => default,
    }
}

/// Whether this test runs as root (namespaces, mounts, the host snapshot).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A fresh, empty directory for one test under the temp dir, removed when
/// the guard drops (also when an assertion fails).
pub fn scratch_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("kharness-test-{tag}-"))
        .tempdir()
        .unwrap()
}

/// One process, as /proc shows it.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub state: char,
    pub comm: String,
    pub exe: String,
    pub cmdline: String,
}

impl std::fmt::Display for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} ({}, state {}, parent {}): {}",
            self.pid,
            self.comm,
            self.state,
            self.ppid,
            self.cmdline.chars().take(160).collect::<String>()
        )
    }
}

/// Every process of the machine.
pub fn processes() -> Vec<Proc> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else { return v };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid …; comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = rest.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let exe = std::fs::read_link(e.path().join("exe"))
            .map(|p| p.to_string_lossy().trim_end_matches(" (deleted)").to_string())
            .unwrap_or_default();
        let cmdline = std::fs::read(e.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim().to_string())
            .unwrap_or_default();
        v.push(Proc {
            pid,
            ppid,
            state,
            comm,
            exe,
            cmdline,
        });
    }
    v
}

/// Makes this process the reaper of every orphan among its descendants.
pub fn become_subreaper() {
    nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
}

/// Processes of ours other than `except`: running the binary under test, or
/// descendants of this test (QEMU under a running matrix; orphans handed
/// over by the subreaper setting).
pub fn ours(except: &[u32]) -> Vec<Proc> {
    let all = processes();
    let mine = mine(&all);
    all.into_iter()
        .filter(|p| mine.contains(&p.pid) && !except.contains(&p.pid))
        .collect()
}

/// The pids among `all` that are ours (see [`ours`]).
fn mine(all: &[Proc]) -> BTreeSet<u32> {
    let me = std::process::id();
    let parent: BTreeMap<u32, u32> = all.iter().map(|p| (p.pid, p.ppid)).collect();
    let descends = |mut pid: u32| {
        for _ in 0..64 {
            match parent.get(&pid) {
                Some(&pp) if pp == me => return true,
                Some(&pp) if pp > 1 => pid = pp,
                _ => return false,
            }
        }
        false
    };
    all.iter()
        .filter(|p| p.pid != me && (p.exe == BIN || descends(p.pid)))
        .map(|p| p.pid)
        .collect()
}

/// Reaps the zombie orphans handed to this test.
pub fn reap_orphans(except: &[u32]) {
    let me = std::process::id();
    for p in processes() {
        if p.ppid == me && p.state == 'Z' && !except.contains(&p.pid) {
            let _ = nix::sys::wait::waitpid(
                nix::unistd::Pid::from_raw(p.pid as i32),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            );
        }
    }
}

/// Waits until no process of ours is left (reaping orphans); the ones left
/// at the deadline otherwise.
pub fn wait_gone(timeout: Duration) -> Result<Duration, Vec<Proc>> {
    let start = Instant::now();
    loop {
        reap_orphans(&[]);
        let left = ours(&[]);
        if left.is_empty() {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            return Err(left);
        }
        std::thread::park_timeout(Duration::from_millis(2));
    }
}

/// Who holds a network namespace.
#[derive(Debug, Clone)]
pub struct Holder {
    pub pid: u32,
    pub comm: String,
    /// `ns`, `task TID` or `fd N`.
    pub via: String,
    pub ours: bool,
}

/// Every network namespace a process holds (its own, a thread's, or an
/// open fd's), with its holders.
pub fn netns_holders() -> BTreeMap<String, Vec<Holder>> {
    let all = processes();
    let mine = mine(&all);
    let mut out: BTreeMap<String, Vec<Holder>> = BTreeMap::new();
    for p in all {
        let dir = PathBuf::from(format!("/proc/{}", p.pid));
        let ours = mine.contains(&p.pid);
        let mut add = |ns: String, via: String| {
            if ns.starts_with("net:[") {
                out.entry(ns).or_default().push(Holder {
                    pid: p.pid,
                    comm: p.comm.clone(),
                    via,
                    ours,
                });
            }
        };
        if let Ok(t) = std::fs::read_link(dir.join("ns/net")) {
            add(t.to_string_lossy().into_owned(), "ns".into());
        }
        for (sub, link) in [("task", Some("ns/net")), ("fd", None)] {
            let Ok(rd) = std::fs::read_dir(dir.join(sub)) else {
                continue;
            };
            for e in rd.flatten() {
                let path = match link {
                    Some(l) => e.path().join(l),
                    None => e.path(),
                };
                if let Ok(t) = std::fs::read_link(&path) {
                    add(
                        t.to_string_lossy().into_owned(),
                        format!("{sub} {}", e.file_name().to_string_lossy()),
                    );
                }
            }
        }
    }
    out
}

/// This mount namespace's mounts, one line each (mount id and all).
pub fn mounts() -> BTreeSet<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The host namespace's links, by name.
pub fn links() -> BTreeSet<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every path under `dir`, relative to it.
pub fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            out.insert(p.strip_prefix(root).unwrap_or(&p).to_path_buf());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// What is there before a run: the yardstick of "nothing left".
pub struct Baseline {
    netns: BTreeSet<String>,
    mounts: BTreeSet<String>,
    links: BTreeSet<String>,
    trees: Vec<(PathBuf, BTreeSet<PathBuf>)>,
}

/// What a check found: leaks (ours), and notes (changes that are not ours,
/// such as a namespace another user's process made meanwhile).
#[derive(Debug, Default)]
pub struct Findings {
    pub leaks: Vec<String>,
    pub notes: Vec<String>,
}

impl Baseline {
    /// Takes the baseline, watching the files under `dirs`.
    pub fn take(dirs: &[&Path]) -> Baseline {
        Baseline {
            netns: netns_holders().into_keys().collect(),
            mounts: mounts(),
            links: links(),
            trees: dirs.iter().map(|d| (d.to_path_buf(), tree(d))).collect(),
        }
    }

    /// Counts distinct namespaces now against the baseline.
    pub fn netns_count(&self) -> (usize, usize) {
        (self.netns.len(), netns_holders().len())
    }

    /// Compares now with the baseline. A new path under a watched
    /// directory is a leak unless `allowed(dir, relative path)`.
    pub fn check(&self, allowed: &dyn Fn(&Path, &Path) -> bool) -> Findings {
        let mut f = Findings::default();
        for p in ours(&[]) {
            f.leaks.push(format!("process left: {p}"));
        }
        for (ns, holders) in netns_holders() {
            if self.netns.contains(&ns) {
                continue;
            }
            let who: Vec<String> = holders
                .iter()
                .map(|h| format!("pid {} {} ({})", h.pid, h.comm, h.via))
                .collect();
            if holders.iter().any(|h| h.ours) {
                f.leaks
                    .push(format!("network namespace {ns} left, held by {}", who.join(", ")));
            } else {
                f.notes.push(format!(
                    "network namespace {ns} appeared, held by other processes: {}",
                    who.join(", ")
                ));
            }
        }
        let now = mounts();
        for m in now.difference(&self.mounts) {
            let what = if m.contains(" - nsfs ") {
                "namespace mount"
            } else {
                "mount"
            };
            f.leaks.push(format!("{what} left: {m}"));
        }
        for l in links().difference(&self.links) {
            f.leaks.push(format!("link {l} left in the host namespace"));
        }
        for (dir, before) in &self.trees {
            for p in tree(dir).difference(before) {
                if !allowed(dir, p) {
                    f.leaks.push(format!("file left: {}", dir.join(p).display()));
                }
            }
        }
        f
    }
}

/// The host namespace's network state: links, addresses, routes of every
/// table, rules, neighbours (`ip`), and every `net.*` sysctl.
pub fn host_snapshot() -> String {
    let mut s = String::new();
    for args in [
        vec!["-o", "link", "show"],
        vec!["-o", "addr", "show"],
        vec!["route", "show", "table", "all"],
        vec!["-6", "route", "show", "table", "all"],
        vec!["rule", "show"],
        vec!["-6", "rule", "show"],
        vec!["neigh", "show"],
        vec!["-6", "neigh", "show"],
    ] {
        match Command::new("ip").args(&args).output() {
            Ok(o) => {
                let text = String::from_utf8_lossy(&o.stdout);
                for line in text.lines() {
                    // Neighbour states age by themselves (REACHABLE → STALE);
                    // the entry itself is what a test could leave.
                    let line = if args.contains(&"neigh") {
                        neigh_key(line)
                    } else {
                        line.to_string()
                    };
                    s.push_str(&format!("ip {}: {line}\n", args.join(" ")));
                }
            }
            Err(e) => s.push_str(&format!("ip {}: cannot run: {e}\n", args.join(" "))),
        }
    }
    let mut sysctls = Vec::new();
    walk_sysctls(Path::new("/proc/sys/net"), &mut sysctls);
    sysctls.sort();
    for (k, v) in sysctls {
        s.push_str(&format!("{k} = {v}\n"));
    }
    s
}

fn neigh_key(line: &str) -> String {
    let states = [
        "REACHABLE",
        "STALE",
        "DELAY",
        "PROBE",
        "FAILED",
        "INCOMPLETE",
        "NOARP",
        "PERMANENT",
        "NONE",
    ];
    line.split_whitespace()
        .filter(|w| !states.contains(w))
        .collect::<Vec<_>>()
        .join(" ")
}

fn walk_sysctls(dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let ps = p.to_string_lossy().into_owned();
        // Values the kernel moves by itself, not settings.
        if ps.contains("/neigh/") && ps.ends_with("base_reachable_time") {
            continue;
        }
        if p.is_dir() {
            walk_sysctls(&p, out);
        } else if let Ok(v) = std::fs::read_to_string(&p) {
            out.push((ps, v.trim().to_string()));
        }
    }
}

/// The lines of `after` that differ from `before`, or `None` if equal.
pub fn diff(before: &str, after: &str) -> Option<String> {
    if before == after {
        return None;
    }
    let b: BTreeSet<&str> = before.lines().collect();
    let a: BTreeSet<&str> = after.lines().collect();
    let gone: Vec<&str> = b.difference(&a).cloned().collect();
    let new: Vec<&str> = a.difference(&b).cloned().collect();
    Some(format!("- {}\n+ {}", gone.join("\n- "), new.join("\n+ ")))
}

/// A kernel from the kharness cache to boot under QEMU, with what it needs:
/// QEMU on PATH and a static kharness for the guest's /init. `Err` says why
/// a test that needs it skips.
#[derive(Debug, Clone)]
pub struct CachedKernel {
    /// The cache entry directory.
    pub entry: PathBuf,
    /// `vmlinuz`.
    pub image: PathBuf,
    /// `modules/REL`.
    pub modules: PathBuf,
    /// `uname -r`.
    pub release: String,
    /// The static kharness.
    pub init: PathBuf,
}

/// The smallest cached kernel, if QEMU and a static init are there too.
pub fn cached_kernel() -> Result<CachedKernel, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if !std::env::split_paths(&path).any(|d| d.join("qemu-system-x86_64").is_file()) {
        return Err("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)".into());
    }
    let init = static_init().ok_or("no static kharness for the guest's /init: run ci/build-static.sh")?;
    let cache = std::env::var_os("KHARNESS_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/root".into());
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".cache"))
                .join("kharness")
        });
    let mut found = Vec::new();
    for e in std::fs::read_dir(cache.join("kernels"))
        .map_err(|e| {
            format!(
                "no kernel cache at {}: {e}; run `kharness matrix` once",
                cache.display()
            )
        })?
        .flatten()
    {
        let Ok(text) = std::fs::read_to_string(e.path().join("entry.json")) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let Some(release) = v["release"].as_str() else { continue };
        let modules = e.path().join("modules").join(release);
        let image = e.path().join("vmlinuz");
        if image.is_file() && modules.is_dir() {
            let size = tree(&e.path()).len();
            found.push((
                size,
                CachedKernel {
                    entry: e.path(),
                    image,
                    modules,
                    release: release.to_string(),
                    init: init.clone(),
                },
            ));
        }
    }
    found.sort_by_key(|(n, _)| *n);
    found.into_iter().next().map(|(_, k)| k).ok_or_else(|| {
        format!(
            "no complete kernel entry in {}; run `kharness matrix` once",
            cache.display()
        )
    })
}

/// The static kharness the matrix would find (`CARGO_TARGET_DIR` or next
/// to the binary under test).
pub fn static_init() -> Option<PathBuf> {
    let rel = Path::new("x86_64-unknown-linux-gnu/release/kharness");
    let mut c = Vec::new();
    if let Some(t) = Path::new(BIN).parent().and_then(|d| d.parent()) {
        c.push(t.join(rel));
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        c.push(PathBuf::from(t).join(rel));
    }
    c.into_iter().find(|p| p.is_file())
}

/// Copies a tree as hard links (a private cache holding a shared kernel),
/// or as copies across filesystems.
pub fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type()?.is_dir() {
            link_tree(&src, &dst)?;
        } else {
            link_or_copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// A hard link, or a copy where one cannot be made (another filesystem).
pub fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::hard_link(from, to).or_else(|_| std::fs::copy(from, to).map(|_| ()))
}

/// Runs `kharness ARGS` to completion: (exit code, stdout, stderr).
pub fn kharness(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run kharness");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A stand-in for Debian's archive: `apt-get` and `apt-cache` scripts first
/// on PATH that serve one `.deb` (built from a cached kernel, or a broken
/// one), and a kernel list naming it. The fetch path of `kharness matrix`
/// runs for real — resolve, download, extract, rename into the cache —
/// offline and in a second.
pub struct FakeArchive {
    pub root: PathBuf,
    pub bin: PathBuf,
    pub deb: PathBuf,
    pub list: PathBuf,
    pub package: String,
    pub version: String,
    pub kernel: CachedKernel,
}

const FAKE_APT_GET: &str = r#"#!/bin/sh
# kharness test stand-in for apt-get: `update` writes an index, `download
# PKG=VER` copies $KHARNESS_FAKE_DEB into the current directory.
lists=
for a; do case $a in -oDir::State::Lists=*) lists=${a#*=};; esac; done
for a; do last=$a; done
for a; do
  case $a in
    update) mkdir -p "$lists" && : > "$lists/fake.invalid_debian_dists_fakesuite_main_binary-amd64_Packages"; exit 0;;
    download) exec cp "$KHARNESS_FAKE_DEB" "./${last%%=*}_${last#*=}_amd64.deb";;
  esac
done
echo "E: fake apt-get: unexpected arguments: $*" >&2
exit 100
"#;

const FAKE_APT_CACHE: &str = r#"#!/bin/sh
# kharness test stand-in for apt-cache: one package in suite fakesuite.
for a; do
  case $a in
    pkgnames) echo "$KHARNESS_FAKE_PKG"; exit 0;;
    madison) echo "$KHARNESS_FAKE_PKG | $KHARNESS_FAKE_VER | http://fake.invalid/debian fakesuite/main amd64 Packages"; exit 0;;
  esac
done
exit 100
"#;

impl FakeArchive {
    /// Builds the archive under `root` from `kernel` (needs dpkg-deb).
    pub fn new(root: &Path, kernel: CachedKernel) -> Result<FakeArchive, String> {
        use std::os::unix::fs::PermissionsExt;
        if Command::new("dpkg-deb").arg("--version").output().is_err() {
            return Err("dpkg-deb is not installed (it builds the test's .deb)".into());
        }
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
        for (name, text) in [("apt-get", FAKE_APT_GET), ("apt-cache", FAKE_APT_CACHE)] {
            let p = bin.join(name);
            std::fs::write(&p, text).map_err(|e| e.to_string())?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        }
        let stage = root.join("stage");
        let rel = &kernel.release;
        std::fs::create_dir_all(stage.join("boot")).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(stage.join("DEBIAN")).map_err(|e| e.to_string())?;
        link_or_copy(&kernel.image, &stage.join(format!("boot/vmlinuz-{rel}"))).map_err(|e| e.to_string())?;
        link_tree(&kernel.modules, &stage.join("lib/modules").join(rel)).map_err(|e| e.to_string())?;
        let package = "kharness-fake-image-1".to_string();
        let version = "1.0-1".to_string();
        std::fs::write(
            stage.join("DEBIAN/control"),
            format!("Package: {package}\nVersion: {version}\nArchitecture: amd64\nMaintainer: kharness tests <tests@invalid>\nDescription: a cached kernel, repacked\n"),
        )
        .map_err(|e| e.to_string())?;
        let deb = root.join("kernel.deb");
        let out = Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Znone", "--build"])
            .arg(&stage)
            .arg(&deb)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "dpkg-deb --build failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let _ = std::fs::remove_dir_all(&stage);
        // The release pattern: `*` for the part before the first `-`.
        let release_pattern = format!("*{}", &rel[rel.find('-').unwrap_or(rel.len())..]);
        let list = root.join("kernels.toml");
        std::fs::write(
            &list,
            format!(
                "schema = 1\nmodules = [\"veth\"]\n\n[[kernel]]\nname = \"fake\"\ndescription = \"a cached kernel served by a stand-in apt\"\nsuites = [\"fakesuite\"]\nimage = [\"kharness-fake-image-*\"]\nrelease = \"{release_pattern}\"\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        Ok(FakeArchive {
            root: root.to_path_buf(),
            bin,
            deb,
            list,
            package,
            version,
            kernel,
        })
    }

    /// `kharness matrix fake` over `cache`, serving `deb`.
    pub fn matrix(&self, cache: &Path, deb: &Path) -> Command {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![self.bin.clone()];
        paths.extend(std::env::split_paths(&path));
        let mut c = Command::new(BIN);
        c.args([
            "matrix",
            "fake",
            "--case",
            "tcp.refused",
            "--format",
            "json",
            "--archive",
            "http://fake.invalid/debian",
        ])
        .arg("--list")
        .arg(&self.list)
        .arg("--cache-dir")
        .arg(cache)
        .arg("--init-binary")
        .arg(&self.kernel.init)
        .env("PATH", std::env::join_paths(paths).unwrap())
        .env("KHARNESS_FAKE_DEB", deb)
        .env("KHARNESS_FAKE_PKG", &self.package)
        .env("KHARNESS_FAKE_VER", &self.version);
        c
    }

    /// Whether the cache entry `kernels/DIR` is complete: its entry.json,
    /// the whole image and every module file.
    pub fn entry_complete(&self, dir: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(dir.join("entry.json"))
            .map_err(|e| format!("{}: no entry.json: {e}", dir.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: entry.json: {e}", dir.display()))?;
        let rel = v["release"].as_str().unwrap_or("");
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(u64::MAX);
        if size(&dir.join("vmlinuz")) != size(&self.kernel.image) {
            return Err(format!("{}: vmlinuz is not whole", dir.display()));
        }
        let files = |d: &Path| {
            tree(d)
                .into_iter()
                .filter(|p| d.join(p).is_file())
                .map(|p| (size(&d.join(&p)), p))
                .collect::<BTreeSet<_>>()
        };
        if files(&dir.join("modules").join(rel)) != files(&self.kernel.modules) {
            return Err(format!("{}: the modules tree is not whole", dir.display()));
        }
        Ok(())
    }
}

/// A test whose prerequisite (root, QEMU, the static /init, a cached kernel,
/// a private mount) is missing did not run: it says why, and is reported
/// ignored, never passed. With `KHARNESS_REQUIRE_ALL=1` (CI) it fails.
#[derive(Debug)]
pub struct NotRun(pub String);

/// What a reliability test returns: `Err(NotRun)` when it could not run
/// (some or all of it); a failed assertion panics as usual.
pub type TestResult = Result<(), NotRun>;

/// `Err(NotRun(why))`, for `return not_run(…)`.
pub fn not_run(why: impl Into<String>) -> TestResult {
    Err(NotRun(why.into()))
}

/// Root, or why not.
pub fn require_root(what: &str) -> TestResult {
    if is_root() {
        Ok(())
    } else {
        not_run(format!("{what} needs root"))
    }
}

/// A named test of a libtest-mimic test file.
pub type NamedTest = (&'static str, fn() -> TestResult);

/// The `main` of a test file run with libtest-mimic (`harness = false`):
/// every test is a trial, and one that returns `NotRun` is ignored with its
/// reason — or failed under `KHARNESS_REQUIRE_ALL=1`.
pub fn run_tests(tests: &[NamedTest]) -> ! {
    let args = libtest_mimic::Arguments::from_args();
    let require_all = std::env::var("KHARNESS_REQUIRE_ALL").is_ok_and(|v| v == "1");
    let trials = tests
        .iter()
        .map(|&(name, f)| {
            libtest_mimic::Trial::ignorable_test(name, move || match f() {
                Ok(()) => Ok(libtest_mimic::Completion::Completed),
                Err(NotRun(why)) if require_all => {
                    Err(format!("did not run, and KHARNESS_REQUIRE_ALL=1: {why}").into())
                }
                Err(NotRun(why)) => Ok(libtest_mimic::Completion::ignored_with(why)),
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}
