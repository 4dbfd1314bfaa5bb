//! `kharness matrix`, `kharness report merge` and the guest's hidden
//! `__init` entry: argument handling, progress display and output. The work
//! itself is in `kharness_matrix`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use kharness_matrix::cleanup::Cleanup;
use kharness_matrix::config::{parse_shard, shard};
use kharness_matrix::initramfs::is_static;
use kharness_matrix::kcidb;
use kharness_matrix::qemu::Accel;
use kharness_matrix::results::{exit_code, merge, KernelRun, KernelStatus, Matrix};
use kharness_matrix::{report, KernelSource, KernelSpec, MatrixConfig, MatrixEvent, MatrixOptions, Stage};

use crate::{CliError, ExitCode};

/// The shipped kernel list, used when no `--kernels FILE` is given and
/// `fixtures/kernels.toml` is not in the working directory.
const DEFAULT_LIST: &str = include_str!("../../../fixtures/kernels.toml");

/// The command that builds the static binary the guest runs as `/init`.
/// (`getrandom_backend`: see ci/build-static.sh.)
pub const BUILD_STATIC: &str = "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS='-C target-feature=+crt-static \
--cfg getrandom_backend=\"linux_getrandom\"' cargo build --release --target x86_64-unknown-linux-gnu -p kharness-cli";

/// Output format of the matrix on stdout.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum MatrixFormat {
    /// A table of cases × kernels with footnotes.
    Human,
    /// The whole matrix as one JSON document (input of `report merge`).
    Json,
    /// A markdown table with footnotes.
    Markdown,
    /// One KCIDB submission (schema 5.3): a checkout and a build per kernel,
    /// a test per case instance.
    Kcidb,
}

/// How guests are accelerated.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum AccelArg {
    /// TCG (KVM is opt-in: on nested hosts a kernel can hang under it).
    Auto,
    /// KVM.
    Kvm,
    /// TCG emulation.
    Tcg,
}

/// Where the report goes.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = MatrixFormat::Human)]
    format: MatrixFormat,
    /// Also write JUnit XML (one testsuite per kernel) to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Also write a self-contained HTML page to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// The origin of KCIDB ids (`--format kcidb`).
    #[arg(long, value_name = "NAME", default_value = kcidb::DEFAULT_ORIGIN)]
    kcidb_origin: String,
    /// Print only what differs between the kernels (the differences
    /// section; in JSON, the differences object).
    #[arg(long)]
    diff_only: bool,
}

/// `kharness matrix`.
#[derive(Args, Debug, Clone)]
pub struct MatrixArgs {
    /// Kernel names from the list (default: the kernels not marked `extra`;
    /// `all`: every kernel of the list).
    kernels: Vec<String>,
    /// The kernel list (default: ./fixtures/kernels.toml, else the one built in).
    #[arg(long, value_name = "FILE")]
    list: Option<PathBuf>,
    /// A kernel image on disk (e.g. arch/x86/boot/bzImage) to run instead of the list.
    #[arg(long, value_name = "PATH")]
    kernel: Option<PathBuf>,
    /// Its modules: lib/modules/VERSION after `make modules_install`.
    #[arg(long, value_name = "DIR", requires = "kernel")]
    modules: Option<PathBuf>,
    /// Name of the --kernel column.
    #[arg(long, value_name = "NAME", default_value = "custom", requires = "kernel")]
    name: String,
    /// Case filters (repeatable): ids, family prefixes or globs.
    #[arg(long = "case", value_name = "FILTER")]
    cases: Vec<String>,
    /// Run only shard I of N (1-based) of the selected kernels.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Kernels run at once (default: CPUs).
    #[arg(long, value_name = "N")]
    parallel: Option<usize>,
    /// Case processes in each guest (default: two per virtual CPU: under
    /// TCG a case waiting on a kernel timer leaves its vCPU idle, and a
    /// second case uses it).
    #[arg(long, value_name = "N")]
    guest_jobs: Option<usize>,
    /// Wall-clock limit per kernel, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    vm_timeout: u64,
    /// Case timeout multiplier in guests (default: 10 under TCG, 3 under KVM).
    #[arg(long, value_name = "FACTOR", allow_negative_numbers = true)]
    timeout_scale: Option<f64>,
    /// Guest memory in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 640)]
    memory: usize,
    /// Guest acceleration.
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    accel: AccelArg,
    /// The static kharness to use as the guest's /init.
    #[arg(long, value_name = "PATH")]
    init_binary: Option<PathBuf>,
    /// Cache directory (default: $XDG_CACHE_HOME/kharness or ~/.cache/kharness).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Fetch the package index again and look for newer kernels.
    #[arg(long)]
    refresh: bool,
    /// Debian archive URI instead of the one in the system's apt sources.
    #[arg(long, value_name = "URI")]
    archive: Option<String>,
    /// Case processes for the host kernel (default: CPUs).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// After the catalog, explore the property cases for this long on every
    /// kernel (`90s`, `5m`); what was found goes into the table.
    #[arg(long, value_name = "DURATION")]
    explore: Option<String>,
    /// Run a failed case again, up to N times, on every kernel; one that
    /// then passes is `flaky` in the table.
    #[arg(long, value_name = "N", default_value_t = 0)]
    retries: usize,
    /// Exit 1 when a case was flaky on any kernel.
    #[arg(long)]
    flaky_fails: bool,
    #[command(flatten)]
    known: crate::KnownArgs,
    #[command(flatten)]
    out: OutputArgs,
}

/// `kharness report …`.
#[derive(Subcommand, Debug, Clone)]
pub enum ReportCmd {
    /// Merge matrix JSON files (shards) into one table.
    Merge {
        /// Files written by `kharness matrix --format json`.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Compare two reports (run or matrix JSON): regressions, fixes, new and
    /// removed cases, other outcome changes and moved figures. Exit 1 when
    /// a case regressed (pass, xfail, skip or flaky → fail) or a kernel no
    /// longer completes.
    Diff(crate::diff::DiffArgs),
}

fn catalog_order() -> Vec<String> {
    crate::catalog()
        .iter()
        .flat_map(|d| d.instances().into_iter().map(|(n, _)| n))
        .collect()
}

fn load_list(path: Option<&Path>) -> Result<(MatrixConfig, String), CliError> {
    use kharness_matrix::config::ConfigError;
    // One line each, saying what to do: the TOML parser's message spans
    // several (a snippet with a caret); keep its first and last.
    let usage = |e: ConfigError| {
        CliError::Usage(match &e {
            ConfigError::Read { .. } => {
                format!("{e}; give the path of a kernel list file (like fixtures/kernels.toml)")
            }
            ConfigError::Parse { path, message } => {
                let lines: Vec<&str> = message
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.contains(" | "))
                    .collect();
                let text = match (lines.first(), lines.last()) {
                    (Some(a), Some(b)) if lines.len() > 1 => format!("{a}: {b}"),
                    _ => lines.join(" "),
                };
                format!(
                    "kernel list {} is not valid: {text}; fixtures/kernels.toml shows the format",
                    path.display()
                )
            }
            ConfigError::Invalid { .. } => e.to_string(),
        })
    };
    match path {
        Some(p) => Ok((MatrixConfig::load(p).map_err(usage)?, p.display().to_string())),
        None => {
            let local = Path::new("fixtures/kernels.toml");
            if local.is_file() {
                Ok((MatrixConfig::load(local).map_err(usage)?, local.display().to_string()))
            } else {
                Ok((
                    MatrixConfig::parse(DEFAULT_LIST, Path::new("(built-in kernels.toml)")).map_err(usage)?,
                    "built-in list".into(),
                ))
            }
        }
    }
}

/// Finds a static kharness for the guest (see the module doc of `matrix`).
fn find_init_binary(given: Option<&Path>) -> Result<PathBuf, CliError> {
    let exe = std::env::current_exe().ok();
    if let Some(p) = given {
        return match is_static(p) {
            Ok(true) => Ok(p.to_path_buf()),
            Ok(false) => Err(CliError::Usage(format!(
                "--init-binary {}: linked dynamically; the guest needs a static binary: {BUILD_STATIC} (or ci/build-static.sh)",
                p.display()
            ))),
            Err(e) => Err(CliError::Usage(format!(
                "--init-binary {}: not a 64-bit ELF executable ({e}); give a static kharness (ci/build-static.sh builds one)",
                p.display()
            ))),
        };
    }
    if let Some(e) = &exe {
        if is_static(e).unwrap_or(false) {
            return Ok(e.clone());
        }
    }
    let rel = Path::new("x86_64-unknown-linux-gnu/release/kharness");
    let mut candidates = Vec::new();
    if let Some(dir) = exe.as_ref().and_then(|e| e.parent()).and_then(|d| d.parent()) {
        candidates.push(dir.join(rel)); // target/release/kharness → target/x86_64…/release
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(t).join(rel));
    }
    candidates.push(Path::new("target").join(rel));
    for c in candidates {
        if c.is_file() && is_static(&c).unwrap_or(false) {
            return Ok(c);
        }
    }
    Err(CliError::Usage(format!(
        "no static kharness for the guest's /init: this binary is linked dynamically and \
target/x86_64-unknown-linux-gnu/release/kharness does not exist. Build it with:\n  {BUILD_STATIC}\n\
(or run ci/build-static.sh), or pass --init-binary PATH"
    )))
}

fn check_out_path(flag: &str, p: &Path) -> Result<(), CliError> {
    let parent = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if p.is_dir() || !parent.is_dir() {
        return Err(CliError::Usage(format!(
            "{flag} {}: give a file path in an existing directory",
            p.display()
        )));
    }
    Ok(())
}

/// What each case documents about kernel differences, by case id.
fn case_docs() -> std::collections::BTreeMap<String, String> {
    crate::catalog()
        .iter()
        .map(|d| {
            (
                d.id.to_string(),
                d.kernels.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect()
}

fn write_outputs(m: &Matrix, out: &OutputArgs) -> Result<(), CliError> {
    let order = catalog_order();
    let mut m = m.clone();
    m.differences = Some(kharness_matrix::diff::compute(&m, &order, &case_docs()));
    let m = &m;
    let stdout = std::io::stdout();
    let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let d = report::differences_of(m, &order);
    let text = match (out.format, out.diff_only) {
        (MatrixFormat::Human, false) => report::text(m, &order, color),
        (MatrixFormat::Human, true) => report::differences_text(&d, color),
        (MatrixFormat::Json, false) => serde_json::to_string_pretty(m).expect("matrix serialises") + "\n",
        (MatrixFormat::Json, true) => serde_json::to_string_pretty(&d).expect("differences serialise") + "\n",
        (MatrixFormat::Markdown, false) => report::markdown(m, &order),
        (MatrixFormat::Markdown, true) => report::differences_markdown(&d),
        (MatrixFormat::Kcidb, _) => {
            let doc = kcidb::submission(m, &out.kcidb_origin, &kcidb::run_id(), &order);
            serde_json::to_string_pretty(&doc).expect("submission serialises") + "\n"
        }
    };
    let harness = |e: std::io::Error, what: &str| CliError::Harness(format!("cannot write {what}: {e}"));
    let _ = stdout.lock().write_all(text.as_bytes());
    if let Some(p) = &out.junit {
        std::fs::write(p, report::junit(m)).map_err(|e| harness(e, &p.display().to_string()))?;
    }
    if let Some(p) = &out.html {
        std::fs::write(p, report::html(m, &order)).map_err(|e| harness(e, &p.display().to_string()))?;
    }
    Ok(())
}

fn to_exit(code: i32) -> ExitCode {
    match code {
        0 => ExitCode::Ok,
        1 => ExitCode::CaseFailed,
        2 => ExitCode::Usage,
        _ => ExitCode::HarnessFailed,
    }
}

/// The kernels of the list a command line names: none named (and no
/// `--kernel`) → the default set, every kernel not marked `extra`; `all` →
/// every kernel; names → those. Unknown names become configuration errors.
fn select_kernels(
    config: &MatrixConfig,
    list_name: &str,
    names: &[String],
    custom: bool,
) -> (Vec<(usize, KernelSpec)>, Vec<KernelRun>) {
    let mut selected: Vec<(usize, KernelSpec)> = Vec::new();
    let mut config_errors: Vec<KernelRun> = Vec::new();
    let known: Vec<&str> = config.kernels.iter().map(|k| k.name.as_str()).collect();
    if names.is_empty() && !custom {
        selected.extend(config.kernels.iter().cloned().enumerate().filter(|(_, k)| !k.extra));
    }
    if names.iter().any(|k| k == "all") {
        selected.extend(config.kernels.iter().cloned().enumerate());
    }
    for (n, name) in names.iter().enumerate().filter(|(_, k)| *k != "all") {
        match config.kernels.iter().position(|k| &k.name == name) {
            Some(i) if selected.iter().any(|(j, _)| *j == i) => {}
            Some(i) => selected.push((i, config.kernels[i].clone())),
            None => config_errors.push(KernelRun::new(name, 10_000 + n, "").fail(
                KernelStatus::Config,
                format!("unknown kernel `{name}`; {list_name} has: {}", known.join(", ")),
            )),
        }
    }
    (selected, config_errors)
}

/// `kharness matrix`.
pub fn matrix(args: MatrixArgs) -> Result<ExitCode, CliError> {
    // Validate everything before anything is fetched or booted.
    kcidb::validate_origin(&args.out.kcidb_origin).map_err(CliError::Usage)?;
    for p in [&args.out.junit, &args.out.html].into_iter().flatten() {
        check_out_path(
            if Some(p) == args.out.junit.as_ref() {
                "--junit"
            } else {
                "--html"
            },
            p,
        )?;
    }
    if let Some(f) = args
        .cases
        .iter()
        .find(|f| crate::select_nonempty(std::slice::from_ref(f)).is_err())
    {
        return Err(CliError::Usage(format!(
            "--case `{f}` matches no case; `kharness list` shows every case"
        )));
    }
    if let Some(s) = args.timeout_scale {
        if !(s.is_finite() && s > 0.0 && s <= 1000.0) {
            return Err(CliError::Usage(format!(
                "--timeout-scale {s} must be a number in (0, 1000]"
            )));
        }
    }
    let explore = match &args.explore {
        None => None,
        Some(t) => {
            let budget = crate::explore::parse_duration(t).map_err(|e| CliError::Usage(format!("--explore {e}")))?;
            let ids: Vec<String> = crate::select_nonempty(&args.cases)?
                .into_iter()
                .map(|i| i.def.id)
                .filter(|id| kharness_cases::PROPERTY_CASES.contains(id))
                .map(str::to_string)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            if ids.is_empty() {
                return Err(CliError::Usage(format!(
                    "--explore: no property case among the selected cases; the property cases are {}",
                    kharness_cases::PROPERTY_CASES.join(", ")
                )));
            }
            Some((budget, ids))
        }
    };
    if args.retries > 100 {
        return Err(CliError::Usage(format!(
            "--retries {}: give a number of extra attempts from 0 to 100",
            args.retries
        )));
    }
    if args.vm_timeout == 0 {
        return Err(CliError::Usage(
            "--vm-timeout 0: give a number of seconds above 0".into(),
        ));
    }
    if args.memory < 128 {
        return Err(CliError::Usage(format!(
            "--memory {}: give at least 128 (MiB)",
            args.memory
        )));
    }
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    for (flag, v) in [
        ("--parallel", args.parallel),
        ("--jobs", args.jobs),
        ("--guest-jobs", args.guest_jobs),
    ] {
        if v == Some(0) {
            return Err(CliError::Usage(format!("{flag} 0: give a number ≥ 1")));
        }
    }
    let shard_spec = args
        .shard
        .as_deref()
        .map(parse_shard)
        .transpose()
        .map_err(CliError::Usage)?;
    if let Some(image) = &args.kernel {
        if !image.is_file() {
            return Err(CliError::Usage(format!(
                "--kernel {}: no such file; give a kernel image (arch/x86/boot/bzImage)",
                image.display()
            )));
        }
    }
    if let Some(m) = &args.modules {
        if !m.is_dir() {
            return Err(CliError::Usage(format!(
                "--modules {}: not a directory; give lib/modules/VERSION (after make modules_install)",
                m.display()
            )));
        }
    }
    let (config, list_name) = load_list(args.list.as_deref())?;

    // The kernels: the list (or some of it), or a kernel on disk.
    let (mut selected, config_errors) = select_kernels(&config, &list_name, &args.kernels, args.kernel.is_some());
    let known: Vec<&str> = config.kernels.iter().map(|k| k.name.as_str()).collect();
    if let Some(image) = &args.kernel {
        kharness_matrix::config::validate_name(&args.name).map_err(|m| CliError::Usage(format!("--name: {m}")))?;
        if known.contains(&args.name.as_str()) && args.kernels.contains(&args.name) {
            return Err(CliError::Usage(format!(
                "--name {} is also a kernel of the list; choose another",
                args.name
            )));
        }
        let spec = KernelSpec {
            name: args.name.clone(),
            description: format!("kernel from {}", image.display()),
            source: KernelSource::Custom {
                image: image.clone(),
                modules: args.modules.clone(),
            },
            extra: false,
        };
        selected.push((config.kernels.len(), spec));
    }
    selected.sort_by_key(|(i, _)| *i);
    if let Some((i, n)) = shard_spec {
        selected = shard(&selected, i, n);
    }
    let needs_vm = selected.iter().any(|(_, k)| !matches!(k.source, KernelSource::Host));
    let init_binary = if needs_vm {
        Some(find_init_binary(args.init_binary.as_deref())?)
    } else {
        None
    };
    let exe = std::env::current_exe().map_err(|e| CliError::Harness(format!("cannot find own executable: {e}")))?;

    let progress = Progress::new(selected.iter().map(|(_, k)| k.name.clone()).collect());
    if let Some(init) = &init_binary {
        let older = std::fs::metadata(init).and_then(|m| m.modified()).ok()
            < std::fs::metadata(&exe).and_then(|m| m.modified()).ok();
        progress.note(&format!(
            "guest /init: {}{}",
            init.display(),
            if older && init != &exe {
                " (older than this kharness: rebuild it with ci/build-static.sh if the cases changed)"
            } else {
                ""
            }
        ));
    }
    let opts = MatrixOptions {
        kernels: selected,
        modules: config.modules.clone(),
        suites: config.suites(),
        filters: args.cases.clone(),
        cache_dir: args
            .cache_dir
            .clone()
            .unwrap_or_else(kharness_matrix::fetch::default_cache_dir),
        refresh: args.refresh,
        archive: args.archive.clone(),
        init_binary,
        host_exe: exe,
        parallel: args.parallel.unwrap_or(cpus),
        vm_timeout: Duration::from_secs(args.vm_timeout),
        timeout_scale: args.timeout_scale,
        mem_mb: args.memory,
        accel: match args.accel {
            AccelArg::Auto => None,
            AccelArg::Kvm => Some(Accel::Kvm),
            AccelArg::Tcg => Some(Accel::Tcg),
        },
        host_jobs: args.jobs.unwrap_or(cpus),
        guest_jobs: args.guest_jobs,
        explore,
        retries: args.retries,
        known_issues: args.known.load()?,
        known_issue_files: args.known.files.clone(),
    };
    // A run killed before its report is out leaves nothing in the cache
    // but finished kernel entries; once the report is out, its logs stay.
    let cleanup = std::sync::Arc::new(Cleanup::new(opts.host_exe.clone()));
    let mut m = kharness_matrix::run::run_with(&opts, &cleanup, &|ev| progress.event(ev));
    progress.finish();
    m.kernels.extend(config_errors);
    m.shard = shard_spec;
    let written = write_outputs(&m, &args.out);
    if let Ok(c) = std::sync::Arc::try_unwrap(cleanup) {
        c.finish();
    }
    written?;
    let flaky = m.kernels.iter().flat_map(|k| &k.results).any(|r| r.report.is_flaky());
    let xpass = m
        .kernels
        .iter()
        .flat_map(|k| &k.results)
        .any(|r| r.report.outcome == kharness::Outcome::Xpass);
    Ok(match exit_code(&m) {
        0 if args.flaky_fails && flaky => ExitCode::CaseFailed,
        0 if args.known.strict_xpass && xpass => ExitCode::CaseFailed,
        code => to_exit(code),
    })
}

/// `kharness report merge`.
pub fn report(cmd: ReportCmd) -> Result<ExitCode, CliError> {
    let (files, out) = match cmd {
        ReportCmd::Merge { files, out } => (files, out),
        ReportCmd::Diff(args) => return crate::diff::run(args),
    };
    kcidb::validate_origin(&out.kcidb_origin).map_err(CliError::Usage)?;
    for p in [&out.junit, &out.html].into_iter().flatten() {
        check_out_path("output", p)?;
    }
    let mut parts = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| {
            CliError::Usage(format!(
                "cannot read {}: {e}; give files written by `kharness matrix --format json`",
                f.display()
            ))
        })?;
        let m: Matrix = serde_json::from_str(&text).map_err(|e| {
            CliError::Usage(format!(
                "{}: not a matrix JSON file ({e}); give files written by `kharness matrix --format json`",
                f.display()
            ))
        })?;
        parts.push((f.display().to_string(), m));
    }
    let m = merge(parts).map_err(CliError::Usage)?;
    write_outputs(&m, &out)?;
    Ok(to_exit(exit_code(&m)))
}

/// The guest's entry: PID 1, or the catalog runner it starts.
pub fn init(runner: bool) -> Result<ExitCode, CliError> {
    if runner {
        let code = kharness_matrix::guest::run_catalog(&crate::catalog());
        std::process::exit(code);
    }
    if std::process::id() != 1 {
        return Err(CliError::Usage(
            "`__init` is the guest's PID 1 inside a kharness VM; it mounts and powers off, so it runs only as PID 1"
                .into(),
        ));
    }
    kharness_matrix::guest::pid1()
}

/// Progress on stderr: bars on a terminal, plain lines otherwise.
struct Progress {
    bars: Option<(indicatif::MultiProgress, Vec<(String, indicatif::ProgressBar)>)>,
    lock: Mutex<()>,
}

impl Progress {
    fn new(kernels: Vec<String>) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let bars = tty.then(|| {
            let mp = indicatif::MultiProgress::new();
            let width = kernels.iter().map(|k| k.len()).max().unwrap_or(4);
            let style = indicatif::ProgressStyle::with_template(&format!(
                "{{prefix:<{width}}} {{bar:20}} {{pos:>3}}/{{len:<3}} {{elapsed:>4}} {{msg}}"
            ))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            let bars = kernels
                .into_iter()
                .map(|k| {
                    let b = mp.add(indicatif::ProgressBar::new(0));
                    b.set_style(style.clone());
                    b.set_prefix(k.clone());
                    (k, b)
                })
                .collect();
            (mp, bars)
        });
        Progress {
            bars,
            lock: Mutex::new(()),
        }
    }

    fn bar(&self, kernel: &str) -> Option<&indicatif::ProgressBar> {
        self.bars.as_ref()?.1.iter().find(|(k, _)| k == kernel).map(|(_, b)| b)
    }

    fn note(&self, text: &str) {
        match &self.bars {
            Some((mp, _)) => {
                let _ = mp.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    fn event(&self, ev: MatrixEvent) {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        match ev {
            MatrixEvent::Note(n) => self.note(&n),
            MatrixEvent::Stage { kernel, stage, detail } => match self.bar(&kernel) {
                Some(b) => b.set_message(format!("{} {detail}", stage.name())),
                None if stage != Stage::Queued => eprintln!("[{kernel}] {} {detail}", stage.name()),
                None => {}
            },
            MatrixEvent::Total { kernel, cases } => {
                if let Some(b) = self.bar(&kernel) {
                    b.set_length(cases as u64);
                }
            }
            MatrixEvent::Case { kernel, case, outcome } => match self.bar(&kernel) {
                Some(b) => {
                    b.inc(1);
                    b.set_message(format!("cases: {case} {}", outcome.label()));
                }
                None => eprintln!("[{kernel}] {:<5} {case}", outcome.label()),
            },
            MatrixEvent::Finished(k) => {
                let c = k.counts();
                let g = |l: &str| c.get(l).copied().unwrap_or(0);
                let line = format!(
                    "{} — boot {:.1} s, catalog {:.1} s, {} pass {} fail {} skip {} xfail {} xpass{}",
                    k.status.label(),
                    k.timings.boot_ms as f64 / 1000.0,
                    k.timings.catalog_ms as f64 / 1000.0,
                    g("PASS"),
                    g("FAIL"),
                    g("SKIP"),
                    g("XFAIL"),
                    g("XPASS"),
                    k.problem.as_ref().map(|p| format!(": {p}")).unwrap_or_default()
                );
                match self.bar(&k.name) {
                    Some(b) => b.finish_with_message(line),
                    None => eprintln!("[{}] {line}", k.name),
                }
            }
        }
    }

    fn finish(&self) {
        // Finished bars stay on screen with their summary line.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: MatrixArgs,
    }

    fn args(v: &[&str]) -> MatrixArgs {
        T::try_parse_from(std::iter::once("matrix").chain(v.iter().copied()))
            .expect("parses")
            .a
    }

    /// A fresh directory, removed when the guard drops (even on a failed assertion).
    fn tmp(tag: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("kharness-cli-matrix-{tag}-"))
            .tempdir()
            .unwrap()
    }

    #[rstest::rstest]
    #[case::shard_past_count(&["--shard", "3/2"], "--shard")]
    #[case::no_case_matches(&["--case", "zzz*"], "matches no case")]
    #[case::timeout_scale_zero(&["--timeout-scale", "0"], "--timeout-scale")]
    #[case::missing_kernel_list(&["--list", "/nonexistent/k.toml"], "cannot read the kernel list")]
    #[case::parallel_zero(&["--parallel", "0"], "--parallel")]
    #[case::guest_jobs_zero(&["--guest-jobs", "0"], "--guest-jobs")]
    #[case::html_in_a_missing_directory(&["host", "--html", "/nonexistent/dir/m.html"], "existing directory")]
    fn usage_errors_before_anything_runs(#[case] v: &[&str], #[case] want: &str) {
        let cache = tmp("usage");
        let mut v = v.to_vec();
        v.extend(["--cache-dir", cache.path().to_str().unwrap()]);
        match matrix(args(&v)) {
            Err(CliError::Usage(m)) => assert!(m.contains(want), "{v:?}: {m}"),
            other => panic!("{v:?}: {other:?}"),
        }
        // Nothing was created: validation comes first.
        assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0, "{v:?}");
    }

    #[test]
    fn unknown_kernel_is_a_config_error_and_the_others_run() {
        let cache = tmp("unknown");
        let code = matrix(args(&[
            "nosuch",
            "--cache-dir",
            cache.path().to_str().unwrap(),
            "--format",
            "json",
        ]))
        .unwrap();
        assert_eq!(code, ExitCode::Usage);
    }

    #[test]
    fn dynamic_init_binary_is_refused_with_the_build_command() {
        let exe = std::env::current_exe().unwrap();
        match find_init_binary(Some(&exe)) {
            Err(CliError::Usage(m)) => assert!(m.contains("crt-static") && m.contains("ci/build-static.sh"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(BUILD_STATIC.contains("--target x86_64-unknown-linux-gnu -p kharness-cli"));
        let script = include_str!("../../../ci/build-static.sh");
        assert!(script.contains("getrandom_backend=\"linux_getrandom\"") && script.contains("+crt-static"));
    }

    #[test]
    fn merge_rejects_bad_files() {
        let d = tmp("merge");
        let bad = d.path().join("bad.json");
        std::fs::write(&bad, "{}").unwrap();
        let out = OutputArgs {
            format: MatrixFormat::Json,
            junit: None,
            html: None,
            kcidb_origin: "kharness".into(),
            diff_only: false,
        };
        match report(ReportCmd::Merge { files: vec![bad], out }) {
            Err(CliError::Usage(m)) => assert!(m.contains("not a matrix JSON file"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn default_set_all_and_names() {
        let (cfg, _) = load_list(Some(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/kernels.toml"
        ))))
        .unwrap();
        let names = |v: &[&str]| {
            let v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
            let (sel, errs) = select_kernels(&cfg, "list", &v, false);
            (sel.into_iter().map(|(_, k)| k.name).collect::<Vec<_>>(), errs.len())
        };
        assert_eq!(names(&[]).0, ["5.10", "6.1", "6.12", "7.2", "host"]);
        assert_eq!(
            names(&["all"]).0,
            ["5.10", "6.1", "6.12", "7.2", "6.1-rt", "6.12-rt", "7.2-rt", "host"]
        );
        assert_eq!(names(&["6.1-rt", "host"]).0, ["6.1-rt", "host"]);
        assert_eq!(names(&["all", "host"]).0.len(), 8);
        assert_eq!(names(&["nosuch"]), (vec![], 1));
    }

    #[test]
    fn init_outside_a_vm_is_refused() {
        assert!(matches!(init(false), Err(CliError::Usage(m)) if m.contains("PID 1")));
    }
}
