//! Kill anywhere, leak nothing. `kharness run` is SIGKILLed at kill points
//! spread over a whole run (from before its first output to after its
//! last), and — separately — one case process is SIGKILLed while the run
//! goes on; a `kharness matrix` run (a guest under QEMU, and the host) is
//! SIGKILLed at points spread over its run. After each kill: no process of
//! ours (QEMU included), no network namespace held by one, no namespace
//! mount or other mount, no link in the host namespace, no file in the temp
//! or cache directories (a matrix run's log directory and scratch included).
//! The host namespace's network state is the same at the end.
//!
//! Sizes: `KHARNESS_KILL_POINTS` (runner kills, default 12),
//! `KHARNESS_CASE_KILL_POINTS` (case-process kills, default 3),
//! `KHARNESS_MATRIX_KILL_POINTS` (matrix kills, default 3; they need QEMU,
//! a cached kernel and the static build, and skip saying so otherwise).
//! `ci/reliability.sh` runs the long sweep.
//!
//! The tests take one lock: a kill check must not see another test's run.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;

static SERIAL: Mutex<()> = Mutex::new(());

/// How one killed run went.
struct Point {
    at: Duration,
    /// Result lines printed before the kill.
    results: usize,
    /// Processes of ours at the kill (runner, cases, QEMU…).
    running: usize,
    /// QEMU processes among them.
    qemu: usize,
    /// The run ended before its kill point.
    finished_first: bool,
    /// Time for every process of ours to be gone.
    gone_in: Duration,
    /// Everything it printed on stdout.
    out: String,
    /// What `probe` saw just before the kill.
    state: String,
}

/// Lines of a child's stdout, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs `cmd`, SIGKILLs it `at` after its start (unless it ended first),
/// and waits for every process of ours to be gone. `probe` describes the
/// state just before the kill.
fn kill_at(mut cmd: Command, at: Duration, probe: &dyn Fn() -> String) -> Point {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kharness");
    let rx = lines_of(&mut child);
    let mut results = 0;
    let mut finished_first = false;
    let mut out = String::new();
    // The output stream is the clock: wait for lines until the kill point.
    loop {
        let left = at.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        match rx.recv_timeout(left) {
            Ok(l) => {
                results += usize::from(l.contains("\"type\":\"result\""));
                out.push_str(&l);
                out.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                finished_first = true;
                break;
            }
        }
    }
    let procs = ours(&[]);
    let (running, qemu) = (procs.len(), procs.iter().filter(|p| p.comm.starts_with("qemu")).count());
    let state = probe();
    let at = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    for l in rx {
        out.push_str(&l);
        out.push('\n');
    }
    let gone_in = wait_gone(Duration::from_secs(20)).unwrap_or_else(|left| {
        panic!(
            "killed at {at:?}: processes still there after 20 s:\n{}",
            left.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n")
        )
    });
    Point {
        at,
        results,
        running,
        qemu,
        finished_first,
        gone_in,
        out,
        state,
    }
}

fn run_cmd(tmp: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(["run", "--format", "json"]).env("TMPDIR", tmp);
    c
}

fn assert_clean(base: &Baseline, what: &str, allowed: &dyn Fn(&Path, &Path) -> bool) {
    let f = base.check(allowed);
    for n in &f.notes {
        eprintln!("  note ({what}): {n}");
    }
    assert!(f.leaks.is_empty(), "{what} left:\n  {}", f.leaks.join("\n  "));
}

fn nothing_allowed(_: &Path, _: &Path) -> bool {
    false
}

/// Kill points spread over `[0, span]`, in the middle of each slice.
fn spread(points: usize, span: Duration) -> Vec<Duration> {
    (0..points)
        .map(|i| span.mul_f64((i as f64 + 0.5) / points as f64))
        .collect()
}

fn sigkill_of_run_or_of_a_case_leaks_nothing() -> TestResult {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !is_root() {
        return not_run("kill: not run: needs root (namespaces, mounts and the host snapshot)");
    }
    become_subreaper();
    let points = env_usize("KHARNESS_KILL_POINTS", 12);
    let case_points = env_usize("KHARNESS_CASE_KILL_POINTS", 3);
    let scratch = scratch_dir("kill-tmp");
    let tmp = scratch.path();
    // Files: kharness's scratch paths all come from temp_dir(), so TMPDIR
    // (a directory of this test's) is where they would be left. (The shared
    // /tmp and /dev/shm are not watched: other users' programs write there.)
    let base = Baseline::take(&[tmp]);
    let host_before = host_snapshot();

    // A whole run first: its length spreads the kill points, and it must
    // leave nothing either.
    let t = Instant::now();
    let st = run_cmd(tmp).stdout(Stdio::null()).status().unwrap();
    let whole = t.elapsed();
    assert!(matches!(st.code(), Some(0) | Some(1)), "the unkilled run exited {st:?}");
    wait_gone(Duration::from_secs(20)).expect("processes left by a whole run");
    assert_clean(&base, "a whole run", &nothing_allowed);

    // The runner, SIGKILLed from before its header to after its summary.
    let mut table = Vec::new();
    let mut netns_after = (usize::MAX, 0);
    for at in spread(points, whole.mul_f64(1.1)) {
        let p = kill_at(run_cmd(tmp), at, &String::new);
        assert_clean(&base, &format!("`kharness run` killed at {:?}", p.at), &nothing_allowed);
        let n = base.netns_count().1;
        netns_after = (netns_after.0.min(n), netns_after.1.max(n));
        table.push(p);
    }
    eprintln!(
        "kill: `kharness run` ({} ms unkilled), SIGKILL at {} points:",
        whole.as_millis(),
        table.len()
    );
    eprintln!(
        "  {:>8} {:>8} {:>8} {:>10}  after",
        "kill at", "results", "running", "gone in"
    );
    for p in &table {
        eprintln!(
            "  {:>5} ms {:>8} {:>8} {:>7} ms  {}",
            p.at.as_millis(),
            p.results,
            p.running,
            p.gone_in.as_millis(),
            if p.finished_first {
                "(the run had ended)"
            } else {
                "clean"
            }
        );
    }
    let during = table.iter().filter(|p| !p.finished_first && p.results > 0).count();
    eprintln!(
        "kill: {} points, {} while cases ran, every one clean",
        table.len(),
        during
    );
    eprintln!(
        "kill: distinct network namespaces held (own, threads', fds'): {} before, {}–{} after the kills; nsfs and other mounts, host links, files in TMPDIR unchanged",
        base.netns_count().0,
        netns_after.0,
        netns_after.1
    );

    // One case process, SIGKILLed while the run goes on: the run reports it
    // failed (or passed, had it finished first) and finishes the others.
    // (Over the first 85% of the run: near its end there may be no case left.)
    let mut killed_cases = 0;
    for (i, at) in spread(case_points, whole.mul_f64(0.85)).into_iter().enumerate() {
        let Some((victim, out, code)) = kill_one_case(tmp, at) else {
            eprintln!(
                "kill: the run ended before a case could be killed at {} ms",
                at.as_millis()
            );
            wait_gone(Duration::from_secs(20)).expect("processes left by a run");
            continue;
        };
        killed_cases += 1;
        let results: Vec<serde_json::Value> = out
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["type"] == "result")
            .collect();
        let failed: Vec<&serde_json::Value> = results.iter().filter(|r| r["outcome"] == "fail").collect();
        let killed = results
            .iter()
            .find(|r| r["case"] == victim.as_str())
            .unwrap_or_else(|| panic!("no result for the killed case {victim}"));
        match killed["outcome"].as_str() {
            Some("fail") => {
                let reason = killed["reason"].as_str().unwrap_or("");
                assert!(
                    reason.contains("without a result") && reason.contains("SIGKILL"),
                    "{victim}: {reason}"
                );
                assert_eq!((code, failed.len()), (1, 1), "only the killed case fails: {failed:?}");
            }
            other => assert!(
                failed.is_empty() && code == 0,
                "{victim} ended {other:?} before the kill; others failed: {failed:?}"
            ),
        }
        wait_gone(Duration::from_secs(20)).expect("processes left after a case kill");
        assert_clean(&base, &format!("case kill {i} ({victim})"), &nothing_allowed);
        eprintln!(
            "kill: case process {victim} SIGKILLed at {} ms: reported {}, run went on to {} results, exit {code}",
            at.as_millis(),
            killed["outcome"],
            results.len()
        );
    }
    assert!(
        killed_cases * 2 >= case_points,
        "only {killed_cases} of {case_points} case kills happened"
    );

    if let Some(d) = diff(&host_before, &host_snapshot()) {
        panic!("the host namespace changed:\n{d}");
    }
    Ok(())
}

/// Runs the catalog and SIGKILLs the first case process alive at `at`;
/// returns its result name, the run's stdout and exit code (`None` if the
/// run ended first).
fn kill_one_case(tmp: &Path, at: Duration) -> Option<(String, String, i32)> {
    let start = Instant::now();
    let mut child = run_cmd(tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let runner = child.id();
    let rx = lines_of(&mut child);
    let mut out = String::new();
    let mut victim = None;
    while victim.is_none() {
        match rx.recv_timeout(at.saturating_sub(start.elapsed()).max(Duration::from_millis(1))) {
            Ok(l) => {
                out.push_str(&l);
                out.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Between two cases there may be none for a moment.
                let case = processes()
                    .into_iter()
                    .find(|p| p.ppid == runner && p.cmdline.contains("__case"));
                if let Some(p) = case {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p.pid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    victim = Some(case_name(&p.cmdline));
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = child.wait();
                return None;
            }
        }
    }
    for l in rx {
        out.push_str(&l);
        out.push('\n');
    }
    let code = child.wait().unwrap().code().unwrap_or(-1);
    Some((victim.unwrap(), out, code))
}

/// `kharness __case tcp.fill --variant veth` → `tcp.fill[veth]`.
fn case_name(cmdline: &str) -> String {
    let w: Vec<&str> = cmdline.split_whitespace().collect();
    let i = w.iter().position(|x| *x == "__case").expect("__case");
    match w.iter().position(|x| *x == "--variant") {
        Some(v) => format!("{}[{}]", w[i + 1], w[v + 1]),
        None => w[i + 1].to_string(),
    }
}

/// The matrix: a guest under QEMU and the host, SIGKILLed at points over
/// the run. Its cache holds a kernel (hard links to the user's cache) and
/// gains nothing: the run's log directory goes with it.
fn sigkill_of_matrix_leaks_nothing() -> TestResult {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !is_root() {
        return not_run("kill: matrix not run: needs root");
    }
    let k = match cached_kernel() {
        Ok(k) => k,
        Err(why) => {
            return not_run(format!("kill: matrix not run: {why}"));
        }
    };
    become_subreaper();
    let points = env_usize("KHARNESS_MATRIX_KILL_POINTS", 3);
    let scratch = scratch_dir("kill-matrix");
    let root = scratch.path();
    let cache = root.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let base = Baseline::take(&[&cache, &tmp]);
    let host_before = host_snapshot();
    let cmd = || {
        let mut c = Command::new(BIN);
        c.args([
            "matrix",
            "host",
            "--case",
            "tcp.refused",
            "--case",
            "unix.oob",
            "--format",
            "json",
        ])
        .arg("--kernel")
        .arg(&k.image)
        .arg("--modules")
        .arg(&k.modules)
        .arg("--init-binary")
        .arg(&k.init)
        .arg("--cache-dir")
        .arg(&cache)
        .env("TMPDIR", &tmp);
        c
    };
    // The whole run: its logs stay (the only thing a run adds to the cache).
    let t = Instant::now();
    let out = cmd().stderr(Stdio::null()).output().unwrap();
    let whole = t.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "unkilled matrix run: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    wait_gone(Duration::from_secs(20)).expect("processes left by a whole matrix run");
    let runs_dir = |p: &Path| p.starts_with("runs");
    assert_clean(&base, "a whole matrix run", &|_, p| runs_dir(p));
    let logs = tree(&cache.join("runs"));
    assert!(
        logs.iter().any(|p| p.ends_with("console.log")),
        "a finished run keeps its logs: {logs:?}"
    );
    // (The empty `runs/` a first run makes stays: it is the cache's layout.)
    for e in std::fs::read_dir(cache.join("runs")).unwrap().flatten() {
        let _ = std::fs::remove_dir_all(e.path());
    }
    let base = Baseline::take(&[&cache, &tmp]);

    let mut qemu_seen = 0;
    for at in spread(points, whole.mul_f64(1.05)) {
        let p = kill_at(cmd(), at, &String::new);
        // Logs stay only with a report that was printed whole.
        let reported = serde_json::from_str::<serde_json::Value>(&p.out).is_ok();
        assert_clean(&base, &format!("`kharness matrix` killed at {:?}", p.at), &|_, rel| {
            reported && runs_dir(rel)
        });
        for e in std::fs::read_dir(cache.join("runs")).unwrap().flatten() {
            let _ = std::fs::remove_dir_all(e.path());
        }
        qemu_seen += usize::from(p.qemu > 0);
        eprintln!(
            "kill: `kharness matrix` ({} ms unkilled) SIGKILLed at {} ms with {} processes of ours running ({} QEMU); all gone in {} ms, cache and temp unchanged{}",
            whole.as_millis(),
            p.at.as_millis(),
            p.running,
            p.qemu,
            p.gone_in.as_millis(),
            if reported { " (the report was out: its logs stay)" } else { "" }
        );
    }
    eprintln!("kill: matrix: {points} points, {qemu_seen} with QEMU running, every one clean");
    if let Some(d) = diff(&host_before, &host_snapshot()) {
        panic!("the host namespace changed:\n{d}");
    }
    Ok(())
}

/// The fetch: a kernel package served by a stand-in apt (see
/// `common::FakeArchive`) is downloaded, unpacked and renamed into an empty
/// cache while the run is SIGKILLed at points spread over the fetch and the
/// boot. After each kill the cache holds nothing but a complete entry (or
/// none), and a last run uses what it holds and boots.
fn sigkill_during_fetch_leaves_no_half_entry() -> TestResult {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !is_root() {
        return not_run("kill: fetch not run: needs root");
    }
    let k = match cached_kernel() {
        Ok(k) => k,
        Err(why) => {
            return not_run(format!("kill: fetch not run: {why}"));
        }
    };
    become_subreaper();
    let points = env_usize("KHARNESS_FETCH_KILL_POINTS", 4);
    let scratch = scratch_dir("kill-fetch");
    let root = scratch.path();
    let fake = match FakeArchive::new(&root.join("archive"), k) {
        Ok(f) => f,
        Err(why) => {
            return not_run(format!("kill: fetch not run: {why}"));
        }
    };
    let cache = root.join("cache");
    let fresh = || {
        let _ = std::fs::remove_dir_all(&cache);
        std::fs::create_dir_all(&cache).unwrap();
    };
    // What may be in the cache after a kill: apt's own state (sources list,
    // index) but none of its partial downloads, and whole kernel entries.
    let whole_entries = std::cell::RefCell::new(std::collections::BTreeMap::new());
    let allowed = |dir: &Path, rel: &Path| {
        // apt's partial downloads go with the run (it recreates the directories).
        if rel.to_string_lossy().contains("partial") {
            return false;
        }
        if rel.starts_with("apt") || rel == Path::new("kernels") || rel == Path::new("runs") {
            return true;
        }
        match rel.strip_prefix("kernels").ok().and_then(|r| r.components().next()) {
            Some(entry) => {
                let e = dir.join("kernels").join(entry);
                *whole_entries
                    .borrow_mut()
                    .entry(e.clone())
                    .or_insert_with(|| fake.entry_complete(&e).is_ok())
            }
            None => false,
        }
    };

    // The whole run, timed by its progress lines: when the fetch ends.
    fresh();
    let t = Instant::now();
    let mut child = fake
        .matrix(&cache, &fake.deb)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut fetched = None;
    for l in BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        if fetched.is_none() && l.starts_with("[fake] initramfs") {
            fetched = Some(t.elapsed());
        }
    }
    let st = child.wait().unwrap();
    let whole = t.elapsed();
    assert_eq!(st.code(), Some(0), "the unkilled run with the stand-in archive failed");
    let fetched = fetched.expect("a fetch stage line");
    let entries: Vec<_> = std::fs::read_dir(cache.join("kernels"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    fake.entry_complete(&entries[0]).unwrap();
    wait_gone(Duration::from_secs(20)).expect("processes left by the fetching run");

    // Kill points: most over the fetch, one in the boot.
    let mut ats = spread(points.saturating_sub(1).max(1), fetched.mul_f64(1.2));
    ats.push(fetched + (whole - fetched) / 2);
    let mut outcomes = Vec::new();
    for at in ats {
        fresh();
        whole_entries.borrow_mut().clear();
        let base = Baseline::take(&[&cache]);
        // Before the kill: what the cache is building.
        let probe = || {
            let names: Vec<String> = std::fs::read_dir(cache.join("kernels"))
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().chars().take(5).collect())
                        .collect()
                })
                .unwrap_or_default();
            let files = tree(&cache).len();
            format!("{files} paths, kernels/ {names:?}")
        };
        let p = kill_at(fake.matrix(&cache, &fake.deb), at, &probe);
        assert_clean(&base, &format!("the fetch killed at {:?}", p.at), &allowed);
        let entry = std::fs::read_dir(cache.join("kernels"))
            .map(|d| d.flatten().count())
            .unwrap_or(0);
        outcomes.push(format!(
            "{} ms ({}) → {}",
            p.at.as_millis(),
            p.state,
            if entry > 0 { "a whole entry" } else { "no entry" }
        ));
    }
    eprintln!(
        "kill: fetch ({} ms of {} ms unkilled) SIGKILLed at {}; never a partial entry, a temp directory or a partial download left",
        fetched.as_millis(),
        whole.as_millis(),
        outcomes.join(", ")
    );
    // What the last kill left is what a later run trusts: it must boot.
    let out = fake.matrix(&cache, &fake.deb).stderr(Stdio::null()).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "a run after the kills: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    wait_gone(Duration::from_secs(20)).expect("processes left");
    Ok(())
}

fn main() {
    common::run_tests(&[
        (
            "sigkill_of_run_or_of_a_case_leaks_nothing",
            sigkill_of_run_or_of_a_case_leaks_nothing,
        ),
        ("sigkill_of_matrix_leaks_nothing", sigkill_of_matrix_leaks_nothing),
        (
            "sigkill_during_fetch_leaves_no_half_entry",
            sigkill_during_fetch_leaves_no_half_entry,
        ),
    ]);
}
