//! Hostile input, table by table, for every entry point: command-line
//! arguments, a malformed kernel list (`kharness matrix --list FILE`),
//! files that are not matrix reports (`kharness report merge`), a truncated
//! or corrupt kernel package (served by a stand-in apt), an image that is
//! not a kernel, and a kernel that panics at boot. Each must end with its
//! documented exit code and a short message that names the input and says
//! what to do, and leave nothing half-made: no report file, no cache
//! directory, no cache entry, no process.
//!
//! The QEMU rows need qemu-system-x86_64 and the static build (and the
//! package rows a cached kernel and dpkg-deb); they skip, saying why, where
//! those are absent.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::*;

static SERIAL: Mutex<()> = Mutex::new(());

/// One refused input: the arguments, the exit code, words the message must
/// hold (the input's name, what to do).
struct Row {
    args: Vec<String>,
    code: i32,
    needles: Vec<String>,
}

fn row(args: &[&str], code: i32, needles: &[&str]) -> Row {
    Row {
        args: args.iter().map(|s| s.to_string()).collect(),
        code,
        needles: needles.iter().map(|s| s.to_string()).collect(),
    }
}

/// Runs every row in `cwd`; checks the code, the message, and that `watch`
/// gained nothing.
fn check_rows(what: &str, rows: &[Row], cwd: &Path, watch: &[&Path]) {
    let mut failures = Vec::new();
    for r in rows {
        let before: Vec<_> = watch.iter().map(|d| tree(d)).collect();
        let out = Command::new(BIN)
            .args(&r.args)
            .current_dir(cwd)
            .output()
            .expect("run kharness");
        let code = out.status.code().unwrap_or(-1);
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut why = Vec::new();
        if code != r.code {
            why.push(format!("exit {code}, not {}", r.code));
        }
        if lines.len() != 1 && r.code == 2 {
            why.push(format!("{} lines of message, not one", lines.len()));
        }
        for n in &r.needles {
            if !err.contains(n.as_str()) {
                why.push(format!("the message lacks `{n}`"));
            }
        }
        for (d, b) in watch.iter().zip(&before) {
            let now = tree(d);
            if let Some(p) = now.difference(b).next() {
                why.push(format!("{} was created", d.join(p).display()));
            }
        }
        if !out.stdout.is_empty() && r.code == 2 {
            why.push("something went to stdout".into());
        }
        if !why.is_empty() {
            failures.push(format!(
                "kharness {:?}: {}\n    stderr: {}",
                r.args,
                why.join("; "),
                err.trim()
            ));
        } else {
            eprintln!(
                "    exit {code}: kharness {} → {}",
                r.args.join(" "),
                lines.first().unwrap_or(&"")
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows:\n  {}",
        failures.len(),
        rows.len(),
        failures.join("\n  ")
    );
    eprintln!(
        "hostile: {what}: {} inputs refused with their exit code and a one-line message naming them; nothing created",
        rows.len()
    );
}

fn command_line_arguments() -> TestResult {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let scratch = scratch_dir("hostile-args");
    let d = scratch.path();
    let sub = d.join("adir");
    std::fs::create_dir(&sub).unwrap();
    let file = d.join("afile");
    std::fs::write(&file, "x").unwrap();
    let cache = d.join("cache");
    let s = |p: &Path| p.display().to_string();
    let (dir, missing, under_file, c) = (
        s(&sub),
        s(&d.join("no/such/dir/r.xml")),
        s(&file.join("r.xml")),
        s(&cache),
    );
    let rows = vec![
        row(&["run", "no.such.case"], 2, &["`no.such.case`", "kharness list"]),
        row(&["run", ""], 2, &["empty filter", "give a case id"]),
        row(&["run", "   "], 2, &["empty filter"]),
        row(&["run", "tcp", "zzz*"], 2, &["`zzz*`", "kharness list"]),
        row(&["run", "--jobs", "0"], 2, &["--jobs 0", "from 1 to 1024"]),
        row(&["run", "--jobs", "-1"], 2, &["--jobs -1", "from 1 to 1024"]),
        row(&["run", "--jobs", "1025"], 2, &["--jobs 1025", "from 1 to 1024"]),
        row(
            &["run", "--jobs", "99999999999999999999"],
            2,
            &["99999999999999999999", "--jobs"],
        ),
        row(
            &["run", "--jobs", "two"],
            2,
            &["'two'", "--jobs", "kharness run --help"],
        ),
        row(&["run", "--repeat", "0"], 2, &["--repeat 0", "from 1 to"]),
        row(&["run", "--repeat", "-2"], 2, &["--repeat -2", "from 1 to"]),
        row(&["run", "--repeat", "10001"], 2, &["--repeat 10001", "from 1 to 10000"]),
        row(&["run", "--repeat", "many"], 2, &["'many'", "--repeat"]),
        row(&["run", "--timeout-scale", "0"], 2, &["--timeout-scale 0", "(0, 1000]"]),
        row(&["run", "--timeout-scale", "NaN"], 2, &["--timeout-scale NaN"]),
        row(&["run", "--timeout-scale", "inf"], 2, &["--timeout-scale inf"]),
        row(
            &["run", "--junit", &dir],
            2,
            &[&dir, "is a directory", "give a file path"],
        ),
        row(
            &["run", "--junit", &missing],
            2,
            &[&missing, "does not exist", "create it"],
        ),
        row(
            &["run", "--junit", &under_file],
            2,
            &[&under_file, "is not a directory"],
        ),
        row(
            &["run", "--format", "xml"],
            2,
            &["'xml'", "possible values: human, json, tap"],
        ),
        row(&["list", "zzz*"], 2, &["`zzz*`", "kharness list"]),
        row(&["explain", "tcp.nope"], 2, &["`tcp.nope`", "kharness list"]),
        row(&["explain", ""], 2, &["kharness list"]),
        row(&["__case", "no.case"], 2, &["`no.case`", "kharness list"]),
        row(&["__case", "tcp.fill"], 2, &["tcp.fill", "--variant"]),
        row(&["__case", "tcp.fill", "--variant", "nope"], 2, &["`nope`"]),
        row(&["frobnicate"], 2, &["frobnicate", "kharness --help"]),
        row(
            &["matrix", "--case", "zzz*", "--cache-dir", &c],
            2,
            &["`zzz*`", "kharness list"],
        ),
        row(&["matrix", "--shard", "3/2", "--cache-dir", &c], 2, &["3/2"]),
        row(&["matrix", "--shard", "x", "--cache-dir", &c], 2, &["`x`"]),
        row(
            &["matrix", "--parallel", "0", "--cache-dir", &c],
            2,
            &["--parallel 0", "give a number"],
        ),
        row(
            &["matrix", "--jobs", "0", "--cache-dir", &c],
            2,
            &["--jobs 0", "give a number"],
        ),
        row(
            &["matrix", "--memory", "1", "--cache-dir", &c],
            2,
            &["--memory 1", "at least 128"],
        ),
        row(
            &["matrix", "--vm-timeout", "0", "--cache-dir", &c],
            2,
            &["--vm-timeout 0", "above 0"],
        ),
        row(
            &["matrix", "--timeout-scale", "-1", "--cache-dir", &c],
            2,
            &["--timeout-scale -1"],
        ),
        row(
            &["matrix", "--list", &dir, "--cache-dir", &c],
            2,
            &[&dir, "kernel list", "give the path"],
        ),
        row(
            &["matrix", "--list", &missing, "--cache-dir", &c],
            2,
            &[&missing, "give the path"],
        ),
        row(
            &["matrix", "--kernel", &missing, "--cache-dir", &c],
            2,
            &[&missing, "--kernel", "give a kernel image"],
        ),
        row(
            &[
                "matrix",
                "--kernel",
                &s(&file),
                "--modules",
                &s(&file),
                "--cache-dir",
                &c,
            ],
            2,
            &["--modules", "not a directory"],
        ),
        row(
            &["matrix", "host", "--html", &dir, "--cache-dir", &c],
            2,
            &[&dir, "give a file path"],
        ),
        row(
            &["matrix", "host", "--junit", &missing, "--cache-dir", &c],
            2,
            &[&missing, "existing directory"],
        ),
        row(
            &["matrix", "--init-binary", &s(&file), "6.1", "--cache-dir", &c],
            2,
            &[&s(&file), "--init-binary", "ci/build-static.sh"],
        ),
        row(
            &["matrix", "--init-binary", &missing, "6.1", "--cache-dir", &c],
            2,
            &[&missing, "ci/build-static.sh"],
        ),
        row(&["report", "merge"], 2, &["<FILES>"]),
    ];
    check_rows("command-line arguments", &rows, d, &[d]);
    assert!(!cache.exists(), "the cache directory was created");
    Ok(())
}

/// A report path on a read-only filesystem: refused before anything runs.
/// Root passes access(2) there, so the check must ask the filesystem. The
/// read-only mount exists only in a private mount namespace (unshare(1)).
fn report_path_on_a_read_only_filesystem() -> TestResult {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let scratch = scratch_dir("hostile-ro");
    let d = scratch.path();
    let ro = d.join("ro");
    std::fs::create_dir(&ro).unwrap();
    let target = ro.join("r.xml");
    let script = format!(
        "mount -t tmpfs -o ro none '{}' && exec '{BIN}' run --junit '{}' tcp.refused",
        ro.display(),
        target.display()
    );
    let out = match Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
    {
        Ok(o)
            if !String::from_utf8_lossy(&o.stderr).contains("unshare failed")
                && !String::from_utf8_lossy(&o.stderr).contains("mount:") =>
        {
            o
        }
        Ok(o) => {
            return not_run(format!(
                "hostile: read-only row not run: cannot make a private read-only mount here: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Err(e) => {
            return not_run(format!("hostile: read-only row not run: no unshare(1): {e}"));
        }
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.to_lowercase().contains("read-only") && err.contains("r.xml") && err.contains("choose another path"),
        "{err}"
    );
    eprintln!("hostile: --junit on a read-only filesystem: exit 2 → {}", err.trim());
    Ok(())
}

fn malformed_kernel_lists() -> TestResult {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let scratch = scratch_dir("hostile-toml");
    let d = scratch.path();
    let cache = d.join("cache");
    let host = "[[kernel]]\nname = \"host\"\nhost = true\n";
    let debian = |extra: &str| format!("schema = 1\n[[kernel]]\nname = \"k\"\n{extra}");
    let files: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        ("empty.toml", b"".to_vec(), vec!["schema"]),
        ("garbage.toml", b"\xff\xfe\x00binary\x01".to_vec(), vec!["UTF-8"]),
        ("syntax.toml", b"schema = 1\nkernel = [\n".to_vec(), vec!["line 2"]),
        ("not-toml.toml", b"{\"schema\": 1}".to_vec(), vec!["is not valid"]),
        (
            "schema2.toml",
            format!("schema = 2\n{host}").into_bytes(),
            vec!["schema 2", "schema 1"],
        ),
        (
            "schema-string.toml",
            format!("schema = \"one\"\n{host}").into_bytes(),
            vec!["schema"],
        ),
        (
            "no-kernels.toml",
            b"schema = 1\n".to_vec(),
            vec!["no [[kernel]] entries"],
        ),
        (
            "unknown-key.toml",
            format!("schema = 1\ncolour = \"red\"\n{host}").into_bytes(),
            vec!["colour"],
        ),
        (
            "unknown-kernel-key.toml",
            format!("schema = 1\n{host}url = \"x\"\n").into_bytes(),
            vec!["url"],
        ),
        (
            "twice.toml",
            format!("schema = 1\n{host}{host}").into_bytes(),
            vec!["`host`", "twice"],
        ),
        (
            "bad-name.toml",
            b"schema = 1\n[[kernel]]\nname = \"a b\"\nhost = true\n".to_vec(),
            vec!["`a b`", "letters, digits"],
        ),
        (
            "empty-name.toml",
            b"schema = 1\n[[kernel]]\nname = \"\"\nhost = true\n".to_vec(),
            vec!["1 to 40 characters"],
        ),
        (
            "host-with-suites.toml",
            b"schema = 1\n[[kernel]]\nname = \"h\"\nhost = true\nsuites = [\"sid\"]\n".to_vec(),
            vec!["`h`", "takes no suites"],
        ),
        (
            "no-suites.toml",
            debian("image = [\"linux-image-*\"]\nrelease = \"*\"\n").into_bytes(),
            vec!["`k`", "no `suites`"],
        ),
        (
            "bad-suite.toml",
            debian("suites = [\"a/b\"]\nimage = [\"linux-image-*\"]\nrelease = \"*\"\n").into_bytes(),
            vec!["`a/b`"],
        ),
        (
            "no-image.toml",
            debian("suites = [\"sid\"]\nrelease = \"*\"\n").into_bytes(),
            vec!["`k`", "no `image`"],
        ),
        (
            "two-stars.toml",
            debian("suites = [\"sid\"]\nimage = [\"linux-*-image-*\"]\nrelease = \"*\"\n").into_bytes(),
            vec!["exactly one `*`"],
        ),
        (
            "no-star.toml",
            debian("suites = [\"sid\"]\nimage = [\"linux-image\"]\nrelease = \"*\"\n").into_bytes(),
            vec!["exactly one `*`"],
        ),
        (
            "no-release.toml",
            debian("suites = [\"sid\"]\nimage = [\"linux-image-*\"]\n").into_bytes(),
            vec!["no `release`"],
        ),
        (
            "release-stars.toml",
            debian("suites = [\"sid\"]\nimage = [\"linux-image-*\"]\nrelease = \"*-*\"\n").into_bytes(),
            vec!["at most one `*`"],
        ),
        (
            "bad-module.toml",
            format!("schema = 1\nmodules = [\"../evil\"]\n{host}").into_bytes(),
            vec!["`../evil`", "module name"],
        ),
        (
            "wrong-type.toml",
            b"schema = 1\n[[kernel]]\nname = 5\nhost = true\n".to_vec(),
            vec!["line 3", "expected a string"],
        ),
    ];
    let mut rows = Vec::new();
    for (name, text, needles) in &files {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        let mut n = vec![p.display().to_string()];
        n.extend(needles.iter().map(|s| s.to_string()));
        let n: Vec<&str> = n.iter().map(String::as_str).collect();
        rows.push(row(
            &[
                "matrix",
                "--list",
                &p.display().to_string(),
                "--cache-dir",
                &cache.display().to_string(),
            ],
            2,
            &n,
        ));
    }
    check_rows("malformed kernel lists (matrix --list)", &rows, d, &[d]);
    assert!(!cache.exists(), "the cache directory was created");
    Ok(())
}

fn files_that_are_not_matrix_reports() -> TestResult {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let scratch = scratch_dir("hostile-merge");
    let d = scratch.path();
    // A real report to break: the host column, one case.
    let (code, good, err) = kharness(&[
        "matrix",
        "host",
        "--case",
        "tcp.refused",
        "--format",
        "json",
        "--cache-dir",
        &d.join("cache").display().to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    let _ = std::fs::remove_dir_all(d.join("cache"));
    let (_, run_json, _) = kharness(&["run", "tcp.refused", "--format", "json"]);
    let mut future: serde_json::Value = serde_json::from_str(&good).unwrap();
    future["schema"] = 99.into();
    let files: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        ("empty.json", b"".to_vec(), vec!["not a matrix JSON file"]),
        (
            "object.json",
            b"{}".to_vec(),
            vec!["not a matrix JSON file", "kharness matrix --format json"],
        ),
        ("array.json", b"[]".to_vec(), vec!["not a matrix JSON file"]),
        ("run-lines.json", run_json.into_bytes(), vec!["not a matrix JSON file"]),
        (
            "binary.json",
            b"\x00\xff\xfe\x01".to_vec(),
            vec!["give files written by `kharness matrix --format json`"],
        ),
        (
            "truncated.json",
            good.as_bytes()[..good.len() / 2].to_vec(),
            vec!["not a matrix JSON file"],
        ),
        ("future.json", future.to_string().into_bytes(), vec!["schema 99"]),
        (
            "html.json",
            b"<html><body>404</body></html>".to_vec(),
            vec!["not a matrix JSON file"],
        ),
    ];
    let mut rows = Vec::new();
    let junit = d.join("out.xml").display().to_string();
    let html = d.join("out.html").display().to_string();
    for (name, text, needles) in &files {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        let mut n = vec![p.display().to_string()];
        n.extend(needles.iter().map(|s| s.to_string()));
        let n: Vec<&str> = n.iter().map(String::as_str).collect();
        rows.push(row(
            &[
                "report",
                "merge",
                &p.display().to_string(),
                "--junit",
                &junit,
                "--html",
                &html,
            ],
            2,
            &n,
        ));
    }
    let good_path = d.join("good.json");
    std::fs::write(&good_path, &good).unwrap();
    let g = good_path.display().to_string();
    let dir = d.display().to_string();
    let missing = d.join("missing.json").display().to_string();
    rows.push(row(
        &["report", "merge", &g, &g, "--junit", &junit],
        2,
        &["`host`", "in both", "merge each shard once"],
    ));
    rows.push(row(&["report", "merge", &dir], 2, &[&dir, "give files written by"]));
    rows.push(row(
        &["report", "merge", &missing],
        2,
        &[&missing, "give files written by"],
    ));
    rows.push(row(
        &["report", "merge", &g, "--junit", &dir],
        2,
        &[&dir, "give a file path"],
    ));
    check_rows("files that are not matrix reports (report merge)", &rows, d, &[d]);
    // And the good file merges.
    let (code, _, err) = kharness(&["report", "merge", &g, "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    Ok(())
}

/// A guest row: `cmd` (a `kharness matrix … --format json` over `cache`)
/// must end with `code`, the kernel's problem holding `needles` on one
/// line, no process left, and the cache holding nothing new but what
/// `allowed` admits.
fn guest_row(mut cmd: Command, cache: &Path, code: i32, needles: &[&str], allowed: &dyn Fn(&Path) -> bool) -> String {
    let base = Baseline::take(&[cache]);
    let out = cmd.output().unwrap();
    let m: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{cmd:?}: no report ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    let k = &m["kernels"][0];
    let problem = k["problem"].as_str().unwrap_or("").to_string();
    assert_eq!(out.status.code(), Some(code), "{cmd:?}: {problem}");
    for n in needles {
        assert!(problem.contains(n), "{cmd:?}: the problem lacks `{n}`: {problem}");
    }
    assert!(!problem.contains('\n'), "{cmd:?}: one line: {problem}");
    wait_gone(Duration::from_secs(20)).expect("processes left (QEMU?)");
    let f = base.check(&|_, rel| allowed(rel));
    assert!(f.leaks.is_empty(), "{cmd:?} left:\n  {}", f.leaks.join("\n  "));
    format!(
        "exit {} [{}] {problem}",
        out.status.code().unwrap_or(-1),
        k["status"].as_str().unwrap_or("?")
    )
}

fn matrix_cmd(args: &[String], cache: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).arg("--cache-dir").arg(cache).args(["--format", "json"]);
    c
}

fn broken_kernel_packages() -> TestResult {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !is_root() {
        return not_run("hostile: packages not run: needs root (the guest boot uses the host's privileges)");
    }
    let k = match cached_kernel() {
        Ok(k) => k,
        Err(why) => {
            return not_run(format!("hostile: packages not run: {why}"));
        }
    };
    become_subreaper();
    let scratch = scratch_dir("hostile-deb");
    let d = scratch.path();
    let fake = match FakeArchive::new(&d.join("archive"), k) {
        Ok(f) => f,
        Err(why) => {
            return not_run(format!("hostile: packages not run: {why}"));
        }
    };
    let whole = std::fs::read(&fake.deb).unwrap();
    // A package that holds no kernel: the control member only.
    let nokernel = {
        let stage = d.join("nokernel");
        std::fs::create_dir_all(stage.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(stage.join("usr/share/doc/x")).unwrap();
        std::fs::write(stage.join("usr/share/doc/x/README"), "no kernel here").unwrap();
        std::fs::write(
            stage.join("DEBIAN/control"),
            format!(
                "Package: {}\nVersion: {}\nArchitecture: amd64\nMaintainer: t <t@invalid>\nDescription: d\n",
                fake.package, fake.version
            ),
        )
        .unwrap();
        let out = d.join("nokernel.deb");
        let st = Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Znone", "--build"])
            .arg(&stage)
            .arg(&out)
            .output()
            .unwrap();
        assert!(st.status.success());
        std::fs::read(&out).unwrap()
    };
    let mut flipped = whole.clone();
    // Inside the data member's first tar header (after the ar and control headers).
    let data_at = whole.windows(8).position(|w| w == b"data.tar").unwrap() + 60;
    for b in &mut flipped[data_at + 100..data_at + 160] {
        *b ^= 0x5a;
    }
    let debs: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "truncated-half.deb",
            whole[..whole.len() / 2].to_vec(),
            vec!["not a valid .deb", "truncated", "run again"],
        ),
        (
            "truncated-header.deb",
            whole[..100].to_vec(),
            vec!["not a valid .deb", "run again"],
        ),
        (
            "html.deb",
            b"<html><body>404 Not Found</body></html>\n".to_vec(),
            vec!["not a valid .deb", "magic"],
        ),
        ("zero.deb", Vec::new(), vec!["not a valid .deb"]),
        ("corrupt-tar.deb", flipped, vec!["not a valid .deb", "run again"]),
        ("no-kernel.deb", nokernel, vec!["holds no kernel image"]),
    ];
    let cache = d.join("cache");
    let mut report = Vec::new();
    for (name, bytes, needles) in debs {
        let _ = std::fs::remove_dir_all(&cache);
        std::fs::create_dir_all(&cache).unwrap();
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        let mut needles = needles;
        needles.push(&fake.package);
        // Only apt's state and, for a package that can never work, its
        // `failed/` record may stay: never a kernel entry or a temp dir.
        let allowed = |rel: &Path| {
            let s = rel.to_string_lossy();
            !s.contains("partial/")
                && (rel.starts_with("apt") || s == "kernels" || rel.starts_with("failed") || s == "runs")
        };
        let line = guest_row(fake.matrix(&cache, &p), &cache, 69, &needles, &allowed);
        report.push(format!("{name}: {line}"));
        let entries = std::fs::read_dir(cache.join("kernels")).map(|d| d.count()).unwrap_or(0);
        assert_eq!(entries, 0, "{name}: a kernel entry was made");
    }
    for l in &report {
        eprintln!("    package {l}");
    }
    eprintln!("hostile: broken kernel packages: {} refused (exit 69, the package named, no cache entry, no temp directory, no process)", report.len());
    Ok(())
}

/// A minimal static x86-64 program: `exit(0)`. As a guest's /init it makes
/// the kernel panic ("Attempted to kill init!").
fn exiting_init() -> Vec<u8> {
    let code: [u8; 9] = [0xb8, 0x3c, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05]; // mov eax,60; xor edi,edi; syscall
    let base: u64 = 0x40_0000;
    let len = (64 + 56 + code.len()) as u64;
    let mut v = Vec::new();
    v.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    v.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    v.extend_from_slice(&0x3eu16.to_le_bytes()); // x86-64
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&(base + 120).to_le_bytes()); // entry
    v.extend_from_slice(&64u64.to_le_bytes()); // phoff
    v.extend_from_slice(&0u64.to_le_bytes()); // shoff
    v.extend_from_slice(&0u32.to_le_bytes());
    for x in [64u16, 56, 1, 64, 0, 0] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    v.extend_from_slice(&5u32.to_le_bytes()); // R X
    for x in [0u64, base, base, len, len, 0x1000] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.extend_from_slice(&code);
    v
}

fn images_that_do_not_boot() -> TestResult {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !is_root() {
        return not_run("hostile: boot rows not run: needs root");
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if !std::env::split_paths(&path).any(|d| d.join("qemu-system-x86_64").is_file()) {
        return not_run("hostile: boot rows not run: qemu-system-x86_64 is not installed");
    }
    let Some(init) = static_init() else {
        return not_run("hostile: boot rows not run: no static kharness (ci/build-static.sh)");
    };
    become_subreaper();
    let scratch = scratch_dir("hostile-boot");
    let d = scratch.path();
    let cache = d.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let logs = |rel: &Path| rel.starts_with("runs");
    let s = |p: &Path| p.display().to_string();
    let mut report = Vec::new();
    // Images that are not kernels: only QEMU is needed.
    let text = d.join("notes.txt");
    std::fs::write(&text, "this is not a kernel\n".repeat(100)).unwrap();
    let random = d.join("random.img");
    std::fs::write(
        &random,
        (0..1_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let elf = d.join("true.elf");
    std::fs::copy("/bin/true", &elf).unwrap();
    for img in [&text, &random, &elf] {
        let args = vec![
            "matrix".into(),
            "--kernel".into(),
            s(img),
            "--case".into(),
            "tcp.refused".into(),
            "--init-binary".into(),
            s(&init),
            "--vm-timeout".into(),
            "60".into(),
        ];
        let line = guest_row(
            matrix_cmd(&args, &cache),
            &cache,
            69,
            &["did not boot", "custom", "x86-64 kernel image"],
            &logs,
        );
        report.push(format!("{}: {line}", img.file_name().unwrap().to_string_lossy()));
    }
    // A real kernel whose /init exits at once: the kernel panics.
    let mut not_done = None;
    match cached_kernel() {
        Ok(k) => {
            let bad_init = d.join("exit0");
            std::fs::write(&bad_init, exiting_init()).unwrap();
            let args = vec![
                "matrix".into(),
                "--kernel".into(),
                s(&k.image),
                "--modules".into(),
                s(&k.modules),
                "--case".into(),
                "tcp.refused".into(),
                "--init-binary".into(),
                s(&bad_init),
                "--vm-timeout".into(),
                "120".into(),
            ];
            let line = guest_row(
                matrix_cmd(&args, &cache),
                &cache,
                69,
                &["did not boot", "console"],
                &logs,
            );
            let out = matrix_cmd(&args, &cache).output().unwrap();
            let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let warnings = m["kernels"][0]["warnings"].to_string();
            assert!(
                warnings.contains("Kernel panic"),
                "the panic is reported among the kernel's warnings: {warnings}"
            );
            wait_gone(Duration::from_secs(20)).expect("processes left");
            report.push(format!("a kernel that panics at boot: {line}; warnings {warnings}"));
        }
        Err(why) => not_done = Some(format!("hostile: the panic row did not run: {why}")),
    }
    for l in &report {
        eprintln!("    image {l}");
    }
    eprintln!(
        "hostile: images that do not boot: {} (exit 69, no QEMU left, nothing in the cache but the run's logs)",
        report.len()
    );
    match not_done {
        Some(why) => not_run(why),
        None => Ok(()),
    }
}

fn main() {
    common::run_tests(&[
        ("command_line_arguments", command_line_arguments),
        (
            "report_path_on_a_read_only_filesystem",
            report_path_on_a_read_only_filesystem,
        ),
        ("malformed_kernel_lists", malformed_kernel_lists),
        ("files_that_are_not_matrix_reports", files_that_are_not_matrix_reports),
        ("broken_kernel_packages", broken_kernel_packages),
        ("images_that_do_not_boot", images_that_do_not_boot),
    ]);
}
