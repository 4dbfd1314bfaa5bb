//! kharness in kernel CI, through the real binary: `--retries` and the
//! flaky verdict (made on demand by the test-only fault switch
//! `KHARNESS_TEST_FLAKY`), `report diff` naming an injected regression, and
//! KCIDB documents from `run`, `matrix` and `report merge` validated against
//! the official schema.
//!
//! The schema check needs a Python with the `kcidb-io` package:
//! `KHARNESS_KCIDB_PYTHON`, else `target/kcidb-venv/bin/python` (which
//! `.ci/run` makes). Without it those tests are reported as ignored — or, under
//! `KHARNESS_REQUIRE_ALL=1`, they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_kharness");

type Outcome = Result<Completion, Failed>;

/// A fresh directory under the temp dir, removed when the guard drops (also
/// when a check fails and the test returns early).
fn scratch(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("kharness-ci-{tag}-"))
        .tempdir()
        .unwrap()
}

fn kharness(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).stdin(Stdio::null());
    c.env_remove("KHARNESS_TEST_FLAKY")
        .env_remove("KHARNESS_TEST_FLAKY_CASE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run kharness")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+).into());
        }
    };
}

fn lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A failed-then-passed case is flaky in JSON, human, TAP and JUnit, with
/// its failed attempt kept; exit 0 unless --flaky-fails.
fn flaky_retries() -> Outcome {
    let scratch = scratch("flaky");
    let dir = scratch.path();
    let junit = dir.join("r.xml");
    let switch = dir.join("switch");
    std::fs::create_dir_all(&switch).unwrap();
    let fresh = || {
        let _ = std::fs::remove_dir_all(&switch);
        std::fs::create_dir_all(&switch).unwrap();
    };
    let env = [("KHARNESS_TEST_FLAKY", switch.as_path())];

    // Without retries the fault switch is a failure.
    let o = kharness(&["run", "tcp.refused", "--format", "json"], &env);
    ensure!(
        o.status.code() == Some(1),
        "the switch without --retries must fail: {}",
        text(&o)
    );

    fresh();
    let o = kharness(
        &[
            "run",
            "tcp.refused",
            "--retries",
            "2",
            "--format",
            "json",
            "--junit",
            junit.to_str().unwrap(),
        ],
        &env,
    );
    ensure!(o.status.code() == Some(0), "flaky is exit 0: {}", text(&o));
    let ls = lines(&o);
    let r = ls.iter().find(|l| l["type"] == "result").ok_or("no result line")?;
    ensure!(r["outcome"] == "flaky" && r["final_outcome"] == "pass", "{r}");
    let attempts = r["attempts"].as_array().ok_or("no attempts")?;
    ensure!(attempts.len() == 1, "one failed attempt kept: {r}");
    ensure!(
        attempts[0]["outcome"] == "fail"
            && attempts[0]["mismatches"][0]["counter"] == "kharness.test_flaky.first_attempt",
        "{r}"
    );
    let s = ls.last().unwrap();
    ensure!(s["flaky"] == 1 && s["passed"] == 0 && s["failed"] == 0, "summary: {s}");
    let xml = std::fs::read_to_string(&junit).map_err(|e| e.to_string())?;
    ensure!(xml.contains("<flakyFailure") && xml.contains("FLAKY"), "{xml}");

    fresh();
    let o = kharness(&["run", "tcp.refused", "--retries", "1", "--flaky-fails"], &env);
    ensure!(o.status.code() == Some(1), "--flaky-fails: {}", text(&o));
    ensure!(
        String::from_utf8_lossy(&o.stdout).contains("FLAKY  tcp.refused"),
        "{}",
        text(&o)
    );

    fresh();
    let o = kharness(&["run", "tcp.refused", "--retries", "1", "--format", "tap"], &env);
    ensure!(o.status.code() == Some(0), "{}", text(&o));
    ensure!(
        String::from_utf8_lossy(&o.stdout).contains("ok 1 tcp.refused # FLAKY"),
        "{}",
        text(&o)
    );

    // The matrix (here the host kernel, no VM) says flaky in its table.
    fresh();
    let cache = dir.join("cache");
    let o = kharness(
        &[
            "matrix",
            "host",
            "--case",
            "tcp.refused",
            "--retries",
            "1",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
        &env,
    );
    let out = String::from_utf8_lossy(&o.stdout);
    ensure!(o.status.code() == Some(0), "{}", text(&o));
    ensure!(out.contains("tcp.refused") && out.contains("flaky [1]"), "{out}");
    fresh();
    let o = kharness(
        &[
            "matrix",
            "host",
            "--case",
            "tcp.refused",
            "--retries",
            "1",
            "--flaky-fails",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
        &env,
    );
    ensure!(o.status.code() == Some(1), "matrix --flaky-fails: {}", text(&o));

    // A case that passes the first time is not retried and not flaky.
    let o = kharness(&["run", "tcp.refused", "--retries", "2", "--format", "json"], &[]);
    let r = lines(&o)
        .into_iter()
        .find(|l| l["type"] == "result")
        .ok_or("no result")?;
    ensure!(r["outcome"] == "pass" && r.get("attempts").is_none(), "{r}");

    let o = kharness(&["run", "tcp.refused", "--retries", "-1"], &[]);
    ensure!(o.status.code() == Some(2), "{}", text(&o));
    Ok(Completion::Completed)
}

/// Two real runs, the second with one injected failure: `report diff` exits
/// 1 and names it, in every format; a run against itself exits 0.
fn diff_names_an_injected_regression() -> Outcome {
    let scratch = scratch("diff");
    let dir = scratch.path();
    let cases = [
        "tcp.refused",
        "tcp.sndbuf_setget",
        "unix.abstract",
        "procfs.socket_inode",
    ];
    let run = |env: &[(&str, &Path)], out: &Path| -> Result<(), Failed> {
        let mut args = vec!["run"];
        args.extend(cases);
        args.extend(["--format", "json"]);
        let o = kharness(&args, env);
        std::fs::write(out, &o.stdout).map_err(|e| e.to_string())?;
        Ok(())
    };
    let (base, again, new) = (dir.join("base.json"), dir.join("again.json"), dir.join("new.json"));
    run(&[], &base)?;
    run(&[], &again)?;
    let switch = dir.join("switch");
    std::fs::create_dir_all(&switch).unwrap();
    let mut c = Command::new(BIN);
    c.arg("run").args(cases).args(["--format", "json"]);
    c.env("KHARNESS_TEST_FLAKY", &switch)
        .env("KHARNESS_TEST_FLAKY_CASE", "tcp.sndbuf_setget");
    let o = c.output().unwrap();
    std::fs::write(&new, &o.stdout).unwrap();
    let (b, a, n) = (base.to_str().unwrap(), again.to_str().unwrap(), new.to_str().unwrap());

    // Two clean runs: nothing regressed, and the volatile figures (ports,
    // inodes, pids in paths) are left out.
    let o = kharness(&["report", "diff", b, a, "--format", "json"], &[]);
    ensure!(o.status.code() == Some(0), "{}", text(&o));
    let d: Value = serde_json::from_slice(&o.stdout).map_err(|e| e.to_string())?;
    ensure!(d["regressions"] == json!([]), "{d}");
    ensure!(
        d["observations"] == json!([]),
        "two clean runs moved no stable figure: {d}"
    );
    ensure!(
        d["volatile_ignored"].as_u64().unwrap_or(0) > 0,
        "ports and inodes moved: {d}"
    );

    let o = kharness(&["report", "diff", b, n], &[]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    ensure!(o.status.code() == Some(1), "a regression exits 1: {}", text(&o));
    ensure!(
        out.contains("REGRESSIONS (1)") && out.contains("tcp.sndbuf_setget: pass → fail"),
        "{out}"
    );
    let o = kharness(&["report", "diff", b, n, "--format", "markdown"], &[]);
    let md = String::from_utf8_lossy(&o.stdout);
    ensure!(
        o.status.code() == Some(1) && md.contains("| `tcp.sndbuf_setget` | pass | fail |"),
        "{md}"
    );
    let o = kharness(&["report", "diff", b, n, "--format", "json"], &[]);
    let d: Value = serde_json::from_slice(&o.stdout).map_err(|e| e.to_string())?;
    ensure!(d["regressions"].as_array().map(Vec::len) == Some(1), "{d}");
    ensure!(d["regressions"][0]["case"] == "tcp.sndbuf_setget", "{d}");
    // The other way round it is a fix, and exit 0.
    let o = kharness(&["report", "diff", n, b, "--format", "json"], &[]);
    let d: Value = serde_json::from_slice(&o.stdout).map_err(|e| e.to_string())?;
    ensure!(
        o.status.code() == Some(0) && d["fixes"][0]["case"] == "tcp.sndbuf_setget",
        "{d}"
    );

    // Not a report: usage error.
    std::fs::write(dir.join("x.txt"), "hello\n").unwrap();
    let o = kharness(&["report", "diff", b, dir.join("x.txt").to_str().unwrap()], &[]);
    ensure!(o.status.code() == Some(2), "{}", text(&o));
    Ok(Completion::Completed)
}

/// A matrix report on the host kernel (no VM needed), and a variant of it
/// with a regression and a kernel that crashed: diff exits 1 and names both.
fn host_matrix(dir: &Path) -> Result<Value, Failed> {
    let cache = dir.join("cache");
    let o = kharness(
        &[
            "matrix",
            "host",
            "--case",
            "tcp.refused",
            "--case",
            "tcp.sndbuf_setget",
            "--format",
            "json",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
        &[],
    );
    ensure!(o.status.code() == Some(0), "{}", text(&o));
    serde_json::from_slice(&o.stdout).map_err(|e| format!("matrix JSON: {e}").into())
}

fn diff_of_matrix_reports() -> Outcome {
    let scratch = scratch("mdiff");
    let dir = scratch.path();
    let m = host_matrix(dir)?;
    let mut worse = m.clone();
    let r = worse["kernels"][0]["results"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["case"] == "tcp.refused")
        .unwrap();
    r["outcome"] = json!("fail");
    r["reason"] = json!("Tcp.OutRsts(server): expected 1, observed 0");
    let mut crashed = m["kernels"][0].clone();
    crashed["name"] = json!("6.1");
    crashed["index"] = json!(1);
    let mut gone = crashed.clone();
    gone["status"] = json!("crashed");
    gone["results"] = json!([]);
    let mut base = m.clone();
    base["kernels"].as_array_mut().unwrap().push(crashed);
    worse["kernels"].as_array_mut().unwrap().push(gone);
    let (b, n) = (dir.join("base.json"), dir.join("new.json"));
    std::fs::write(&b, base.to_string()).unwrap();
    std::fs::write(&n, worse.to_string()).unwrap();
    let o = kharness(&["report", "diff", b.to_str().unwrap(), n.to_str().unwrap()], &[]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    ensure!(o.status.code() == Some(1), "{}", text(&o));
    ensure!(out.contains("tcp.refused on host: pass → fail"), "{out}");
    ensure!(out.contains("6.1: completed → crashed (REGRESSION)"), "{out}");
    ensure!(!out.contains("REMOVED"), "a crashed kernel is one change: {out}");
    // A run report against a matrix report: usage error.
    let run = dir.join("run.json");
    let o = kharness(&["run", "tcp.refused", "--format", "json"], &[]);
    std::fs::write(&run, &o.stdout).unwrap();
    let o = kharness(&["report", "diff", run.to_str().unwrap(), n.to_str().unwrap()], &[]);
    ensure!(o.status.code() == Some(2), "{}", text(&o));
    Ok(Completion::Completed)
}

/// The Python that validates KCIDB documents, if there is one.
fn validator() -> Result<Option<PathBuf>, Failed> {
    let py = match std::env::var_os("KHARNESS_KCIDB_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/kcidb-venv/bin/python"),
    };
    let ok = Command::new(&py)
        .args(["-c", "import kcidb_io, jsonschema"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Ok(Some(py));
    }
    if std::env::var("KHARNESS_REQUIRE_ALL").is_ok_and(|v| v == "1") {
        return Err(format!(
            "KHARNESS_REQUIRE_ALL=1 and no Python with kcidb-io at {} (set KHARNESS_KCIDB_PYTHON, or make the venv: \
python3 -m venv target/kcidb-venv && target/kcidb-venv/bin/pip install kcidb-io)",
            py.display()
        )
        .into());
    }
    Ok(None)
}

fn validate(py: &Path, doc: &[u8], what: &str) -> Result<Value, Failed> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ci/kcidb_validate.py");
    let mut c = Command::new(py)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", py.display()))?;
    {
        use std::io::Write;
        let mut stdin = c.stdin.take().unwrap();
        stdin.write_all(doc).map_err(|e| e.to_string())?;
    }
    let o = c.wait_with_output().map_err(|e| e.to_string())?;
    ensure!(o.status.success(), "{what} is not valid KCIDB: {}", text(&o));
    serde_json::from_slice(doc).map_err(|e| format!("{what}: {e}").into())
}

fn kcidb_from_run() -> Outcome {
    let Some(py) = validator()? else {
        return Ok(Completion::ignored_with("no Python with kcidb-io (see the module doc)"));
    };
    let scratch = scratch("kcidb-run");
    let dir = scratch.path();
    let o = kharness(
        &[
            "run",
            "tcp.refused",
            "tcp.fill",
            "--format",
            "kcidb",
            "--kcidb-origin",
            "my_ci",
        ],
        &[],
    );
    ensure!(o.status.code() == Some(0), "{}", text(&o));
    let doc = validate(&py, &o.stdout, "run --format kcidb")?;
    ensure!(doc["version"] == json!({"major": 5, "minor": 3}), "{}", doc["version"]);
    let tests = doc["tests"].as_array().unwrap();
    ensure!(tests.len() == 3, "tcp.fill has two variants: {}", doc["tests"]);
    for t in tests {
        ensure!(
            t["id"].as_str().unwrap().starts_with("my_ci:") && t["status"] == "PASS",
            "{t}"
        );
    }
    ensure!(
        tests.iter().any(|t| t["path"] == "kharness.tcp.fill.veth"),
        "{}",
        doc["tests"]
    );
    // A flaky and a failed case (the fault switch) are valid too; the
    // failure's mismatch is its log excerpt.
    let switch = dir.join("switch");
    std::fs::create_dir_all(&switch).unwrap();
    let env = [("KHARNESS_TEST_FLAKY", switch.as_path())];
    let o = kharness(&["run", "tcp.refused", "--retries", "1", "--format", "kcidb"], &env);
    let doc = validate(&py, &o.stdout, "a flaky run")?;
    ensure!(
        doc["tests"][0]["status"] == "PASS" && doc["tests"][0]["misc"]["flaky"] == true,
        "{doc}"
    );
    let o = kharness(&["run", "tcp.sndbuf_setget", "--format", "kcidb"], &env);
    ensure!(o.status.code() == Some(1), "{}", text(&o));
    let doc = validate(&py, &o.stdout, "a failed run")?;
    let t = &doc["tests"][0];
    ensure!(
        t["status"] == "FAIL" && t["log_excerpt"].as_str().unwrap().contains("kharness.test_flaky"),
        "{t}"
    );
    let o = kharness(
        &["run", "tcp.refused", "--format", "kcidb", "--kcidb-origin", "Bad-Name"],
        &[],
    );
    ensure!(o.status.code() == Some(2), "{}", text(&o));
    Ok(Completion::Completed)
}

fn kcidb_from_matrix() -> Outcome {
    let Some(py) = validator()? else {
        return Ok(Completion::ignored_with("no Python with kcidb-io (see the module doc)"));
    };
    let scratch = scratch("kcidb-matrix");
    let dir = scratch.path();
    // `matrix --format kcidb` itself, on the host kernel.
    let o = kharness(
        &[
            "matrix",
            "host",
            "--case",
            "tcp.refused",
            "--format",
            "kcidb",
            "--cache-dir",
            dir.join("cache").to_str().unwrap(),
        ],
        &[],
    );
    ensure!(o.status.code() == Some(0), "{}", text(&o));
    let doc = validate(&py, &o.stdout, "matrix --format kcidb")?;
    ensure!(doc["builds"].as_array().map(Vec::len) == Some(1), "{doc}");

    // `report merge --format kcidb` of a matrix with every kind of result:
    // an xfail (issue + incident), a harness error, a flaky case, and a
    // kernel that crashed (MISS for what it did not run).
    let m = host_matrix(dir)?;
    let mut k = m["kernels"][0].clone();
    let results = k["results"].as_array_mut().unwrap();
    let mut xfail = results[0].clone();
    xfail["case"] = json!("tcp.info_diag");
    xfail["outcome"] = json!("xfail");
    xfail["reason"] = json!("tcp_info is 232 bytes before 6.2: include/uapi/linux/tcp.h grew tcpi_rcv_wnd");
    let mut error = results[0].clone();
    error["case"] = json!("tcp.fill[veth]");
    error["outcome"] = json!("fail");
    error["reason"] = json!("harness error: cannot create veth");
    let mut flaky = results[1].clone();
    flaky["attempts"] = json!([{"attempt": 1, "outcome": "fail", "reason": "x: expected 1, observed 0",
        "duration_ms": 3, "mismatches": [], "observations": {}}]);
    results[1] = flaky;
    results.push(xfail);
    results.push(error);
    let mut crashed = k.clone();
    crashed["name"] = json!("6.1");
    crashed["index"] = json!(1);
    crashed["status"] = json!("crashed");
    crashed["problem"] = json!("no `done`: Kernel panic");
    crashed["accel"] = json!("tcg");
    crashed["release"] = json!("6.1.0-47-cloud-amd64");
    crashed["results"] = json!([k["results"][0].clone()]);
    let mut whole = m.clone();
    whole["kernels"] = json!([k, crashed]);
    let f = dir.join("m.json");
    std::fs::write(&f, whole.to_string()).unwrap();
    let o = kharness(&["report", "merge", f.to_str().unwrap(), "--format", "kcidb"], &[]);
    let doc = validate(&py, &o.stdout, "report merge --format kcidb")?;
    let statuses: Vec<&str> = doc["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    for s in ["PASS", "FAIL", "ERROR", "MISS"] {
        ensure!(statuses.contains(&s), "no {s} test: {statuses:?}");
    }
    ensure!(doc["issues"].as_array().map(Vec::len) == Some(1), "{}", doc["issues"]);
    ensure!(doc["incidents"][0]["issue_id"] == doc["issues"][0]["id"], "{doc}");
    ensure!(
        doc["builds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["config_name"] == "cloud-amd64"),
        "{}",
        doc["builds"]
    );
    Ok(Completion::Completed)
}

fn main() {
    let args = Arguments::from_args();
    let trials = vec![
        Trial::ignorable_test("flaky_retries", flaky_retries),
        Trial::ignorable_test("diff_names_an_injected_regression", diff_names_an_injected_regression),
        Trial::ignorable_test("diff_of_matrix_reports", diff_of_matrix_reports),
        Trial::ignorable_test("kcidb_from_run", kcidb_from_run),
        Trial::ignorable_test("kcidb_from_matrix", kcidb_from_matrix),
    ];
    libtest_mimic::run(&args, trials).exit();
}
