//! `kharness`: parse arguments, run, map the result to an exit code.
//!
//! Exit codes (one map, in [`ExitCode`]):
//! 0 every case passed, skipped, xfailed, xpassed or was flaky · 1 a case failed (or
//! was flaky, with `--flaky-fails`; xpassed, with `--strict-xpass`; `report diff`: something regressed) ·
//! 2 usage or configuration error · 69 the harness itself could not run.

mod bench;
mod diff;
mod explore;
mod matrix;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use kharness::event::Event;
use kharness::report::{human::Human, json::Json, junit::Junit, tap::Tap, Reporter};
use kharness::runner::{self, RunOptions};
use kharness::{CaseDef, KernelInfo};
use kharness_matrix::kcidb;

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitCode {
    Ok = 0,
    CaseFailed = 1,
    Usage = 2,
    HarnessFailed = 69,
}

/// An error that ends the command, with the exit code it maps to.
#[derive(Debug)]
pub(crate) enum CliError {
    /// Bad arguments or configuration: what was wrong and what to do.
    Usage(String),
    /// The harness cannot run here.
    Harness(String),
}

impl CliError {
    fn code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::Usage,
            CliError::Harness(_) => ExitCode::HarnessFailed,
        }
    }
}

const ABOUT: &str = "An eBPF-free test harness for the Linux kernel's networking interfaces.

kharness creates its own network namespaces and veth pairs, drives scenarios
against real kernel APIs (TCP send-buffer fills, SCM_RIGHTS, rtnetlink, raw
and packet sockets…), reads what the kernel reports through getsockopt, ioctl,
procfs and sock_diag, and checks it against models that predict it. Every case
runs in its own process and its own namespaces; nothing touches the host's
network, and killing a run leaves nothing behind.";

const AFTER: &str = "Examples:
  kharness run                     run every case on the running kernel
  kharness run 'tcp.*' --format json
  kharness run tcp.fill --verbose  one case, every observed figure printed
  kharness run --repeat 50         every case 50 times: pass counts, duration spread
  kharness explore --time 5m       the property cases with fresh seeds, deeper sequences
  kharness run --retries 2         a failed case runs again; failed-then-passed is flaky
  kharness report diff base.json new.json   regressions, fixes, changed figures
  kharness list                    what there is
  kharness explain tcp.fill        what a case drives, observes and predicts

Kernel health: the kernel log (/dev/kmsg, from the start of the run) and the
taint mask are read after every case; a kernel WARNING, BUG, oops, sanitizer,
refcount or lockdep splat, hung task or new taint fails the cases that were
running (mismatch kernel.log / kernel.taint), even if every counter matched.
The header line `kernel health:` says whether the log could be read.

Exit codes: 0 all passed/skipped/xfailed/xpassed, 1 a case failed,
            2 usage or configuration error, 69 the harness could not run.";

#[derive(Parser, Debug)]
#[command(name = "kharness", version, about = ABOUT, after_help = AFTER)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    /// Readable text, coloured on a terminal.
    Human,
    /// One JSON object per line: a header, one per result, a summary.
    Json,
    /// TAP version 13, as kselftest prints it.
    Tap,
    /// One KCIDB submission (schema 5.3), written when the run ends (`run` only).
    Kcidb,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run cases (all, or those matching FILTERs) and report.
    #[command(after_help = "FILTER is a case id (tcp.fill), a result name with its variant \
(tcp.fill[veth]), a family prefix (tcp or tcp.), or a glob (tcp.*, *.fill).")]
    Run {
        /// Case ids, family prefixes or globs; none means every case.
        filters: Vec<String>,
        /// Case processes run in parallel (default: number of CPUs).
        #[arg(long, short, allow_negative_numbers = true)]
        jobs: Option<i64>,
        /// Output format on stdout.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Also write a JUnit XML report to FILE.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Print every observation of every case (human format).
        #[arg(long, short)]
        verbose: bool,
        /// Multiply every case's timeout (for slow or emulated machines).
        #[arg(long, default_value_t = 1.0, value_name = "FACTOR")]
        timeout_scale: f64,
        /// Run the selection N times (flake hunting); ends with each case's
        /// pass count and duration spread. Exit 1 if any repetition failed.
        #[arg(long, value_name = "N", allow_negative_numbers = true, default_value_t = 1)]
        repeat: i64,
        /// Run a failed case again, up to N times; one that then passes is
        /// `flaky` (exit 0 unless --flaky-fails), every attempt in its report.
        #[arg(long, value_name = "N", allow_negative_numbers = true, default_value_t = 0)]
        retries: i64,
        /// Exit 1 when a case was flaky.
        #[arg(long)]
        flaky_fails: bool,
        /// The origin of KCIDB ids (`--format kcidb`).
        #[arg(long, value_name = "NAME", default_value = kcidb::DEFAULT_ORIGIN)]
        kcidb_origin: String,
        #[command(flatten)]
        property: PropertyArgs,
        #[command(flatten)]
        known: KnownArgs,
    },
    /// Explore the property cases with fresh random seeds until a time budget
    /// is spent; a failure is shrunk, explained, saved and given a replay command.
    #[command(after_help = explore::AFTER)]
    Explore(explore::ExploreArgs),
    /// List cases (all, or those matching FILTERs).
    List {
        /// Case ids, family prefixes or globs.
        filters: Vec<String>,
        /// `human` or `json`.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Explain a case: what it drives, observes and predicts, and why.
    Explain {
        /// A case id, e.g. tcp.fill.
        case: String,
    },
    /// Measure the harness against the netns-scripts baseline.
    Bench(bench::BenchArgs),
    /// Run the catalog on several kernels (Debian's under QEMU, and the host) and
    /// print one table of cases x kernels.
    #[command(after_help = "Examples:
  kharness matrix                          every kernel of fixtures/kernels.toml
  kharness matrix 6.1 host --case 'tcp.*'  two kernels, the tcp family
  kharness matrix --kernel arch/x86/boot/bzImage --modules /lib/modules/6.13.0-rc1
  kharness matrix --shard 1/4 --format json > part1.json
  kharness matrix --html matrix.html --junit matrix.xml

The guest's /init is a static kharness: ci/build-static.sh builds it.
Exit codes: 0 ok, 1 a case failed (or a kernel crashed or hung during the
catalog), 2 usage or configuration error (an unknown kernel name too: the
others still run), 69 a kernel could not be fetched or booted.")]
    Matrix(Box<matrix::MatrixArgs>),
    /// Work with reports: merge matrix shards, compare with a baseline.
    Report {
        #[command(subcommand)]
        command: matrix::ReportCmd,
    },
    /// (internal) The guest's PID 1 in a matrix VM (`--runner`: its catalog runner).
    #[command(name = "__init", hide = true)]
    Init {
        #[arg(long)]
        runner: bool,
    },
    /// (internal) Remove a matrix run's scratch paths if it is killed (reads them on stdin).
    #[command(name = "__cleanup", hide = true)]
    Cleanup,
    /// (internal) Run one case in this process and print its JSON result.
    #[command(name = "__case", hide = true)]
    Case {
        id: String,
        #[arg(long)]
        variant: Option<String>,
        #[command(flatten)]
        property: PropertyArgs,
    },
}

/// `--known-issues` and `--strict-xpass`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct KnownArgs {
    /// A team's list of known kernel issues (TOML, as fixtures/known-issues.toml),
    /// applied with the built-in one; repeatable.
    #[arg(long = "known-issues", value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// Exit 1 when a known issue no longer occurs (xpass).
    #[arg(long)]
    pub(crate) strict_xpass: bool,
}

impl KnownArgs {
    /// The built-in list and every file given, checked before anything runs.
    pub(crate) fn load(&self) -> Result<Vec<kharness::known_issues::KnownIssue>, CliError> {
        let mut all = kharness::known_issues::built_in();
        for f in &self.files {
            all.extend(kharness::known_issues::load(f).map_err(|e| {
                CliError::Usage(format!(
                    "--known-issues {e}; see fixtures/known-issues.toml for the format"
                ))
            })?);
        }
        Ok(all)
    }
}

/// `--seed` and `--cases`, for the property cases.
#[derive(clap::Args, Debug, Clone, Copy)]
struct PropertyArgs {
    /// Seed of the property cases' random sequences (default: a fixed seed,
    /// so the catalog is repeatable). `kharness explore` prints the seed of
    /// every run it makes; this replays one.
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Sequences per property case (default: each case's quick count).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    cases: Option<i64>,
    /// The explore generators and counts (longer, wider sequences) and no
    /// replay of the regression files: what `kharness explore` runs, so that
    /// `--seed S --deep` replays one of its runs exactly.
    #[arg(long)]
    deep: bool,
    /// (internal) Stop starting new sequences at this time (ms since the epoch).
    #[arg(long, hide = true, value_name = "MS")]
    deadline_unix_ms: Option<u64>,
}

/// Most sequences per property a run takes.
const MAX_CASES: i64 = 1_000_000;

impl PropertyArgs {
    fn settings(self) -> Result<kharness::property::PropertySettings, CliError> {
        let cases = match self.cases {
            None => None,
            Some(n) if (1..=MAX_CASES).contains(&n) => Some(n as u32),
            Some(n) => {
                return Err(CliError::Usage(format!(
                    "--cases {n} is out of range; give a number of sequences per property from 1 to {MAX_CASES}"
                )))
            }
        };
        Ok(kharness::property::PropertySettings {
            seed: self.seed,
            cases,
            explore: self.deep,
            deadline_unix_ms: self.deadline_unix_ms,
        })
    }
}

fn main() {
    if process::id() == 1 {
        // The guest's /init in a matrix VM (whatever the kernel passed as arguments).
        kharness_matrix::guest::pid1();
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version: exit 0
        Err(e) => {
            eprintln!("kharness: {}", clap_error_line(&e));
            process::exit(ExitCode::Usage as i32);
        }
    };
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            let (kind, msg) = match &e {
                CliError::Usage(m) => ("error", m),
                CliError::Harness(m) => ("cannot run", m),
            };
            eprintln!("kharness: {kind}: {msg}");
            e.code()
        }
    };
    process::exit(code as i32);
}

/// A clap error as one line: what was wrong (with the possible values, if
/// clap lists them) and where the usage is.
fn clap_error_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let said: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .collect();
    let sub = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .filter(|a| Cli::command().find_subcommand(a).is_some());
    let help = match sub {
        Some(s) => format!("kharness {s} --help"),
        None => "kharness --help".to_string(),
    };
    format!("{}; `{help}` shows the usage", said.join(" "))
}

fn catalog() -> Vec<&'static CaseDef> {
    kharness_cases::catalog()
}

fn find_case(id: &str) -> Result<&'static CaseDef, CliError> {
    catalog().into_iter().find(|c| c.id == id).ok_or_else(|| {
        let close: Vec<&str> = catalog()
            .iter()
            .map(|c| c.id)
            .filter(|c| c.split('.').next() == id.split('.').next())
            .collect();
        let hint = if close.is_empty() {
            String::new()
        } else {
            format!(" (same family: {})", close.join(", "))
        };
        CliError::Usage(format!("no case `{id}`{hint}; `kharness list` shows every case"))
    })
}

fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Cmd::Run {
            filters,
            jobs,
            format,
            junit,
            verbose,
            timeout_scale,
            repeat,
            retries,
            flaky_fails,
            kcidb_origin,
            property,
            known,
        } => {
            let known_issues = known.load()?;
            kcidb::validate_origin(&kcidb_origin).map_err(CliError::Usage)?;
            let property = property.settings()?;
            let jobs = validate_jobs(jobs)?;
            let repeat = validate_repeat(repeat)?;
            let retries = validate_retries(retries)?;
            if !(timeout_scale.is_finite() && timeout_scale > 0.0 && timeout_scale <= 1000.0) {
                return Err(CliError::Usage(format!(
                    "--timeout-scale {timeout_scale} must be a number in (0, 1000]"
                )));
            }
            let instances = select_nonempty(&filters)?;
            if let Some(p) = &junit {
                check_writable(p)?;
            }
            enter_privileged()?;
            let exe = std::env::current_exe()
                .map_err(|e| CliError::Harness(format!("cannot find own executable to run cases: {e}")))?;
            let kernel = KernelInfo::probe();
            let stdout = std::io::stdout();
            let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let mut reporters: Vec<Box<dyn Reporter>> = Vec::new();
            match format {
                Format::Human => reporters.push(Box::new(Human::new(stdout.lock(), color, verbose))),
                Format::Json => reporters.push(Box::new(Json::new(stdout.lock()))),
                Format::Tap => reporters.push(Box::new(Tap::new(stdout.lock()))),
                Format::Kcidb => reporters.push(Box::new(kcidb::Reporter::new(
                    stdout.lock(),
                    &kcidb_origin,
                    instances.iter().map(|i| i.name.clone()).collect(),
                ))),
            }
            if let Some(p) = junit {
                reporters.push(Box::new(Junit::new(p)));
            }
            let progress = format == Format::Human && !color && std::io::stderr().is_terminal();
            let mut write_errors = Vec::new();
            let opts = RunOptions {
                jobs,
                exe,
                timeout_scale,
                repeat,
                property,
                retries,
                known_issues,
            };
            let summary = runner::run(kernel, instances, &opts, &mut |ev: &Event| {
                // A property failure (not an xfail: a known difference is
                // no new finding) goes to its case's regression file,
                // replayed by every later run.
                if let Event::CaseFinished(report) = ev {
                    if report.outcome == kharness::case::Outcome::Fail {
                        if let Err(e) = kharness_cases::prop::persist_finding(report) {
                            eprintln!("kharness run: {e}");
                        }
                    }
                }
                if progress {
                    if let Event::CaseStarted { case } = ev {
                        eprintln!("… {case}");
                    }
                }
                for r in reporters.iter_mut() {
                    if let Err(e) = r.event(ev) {
                        write_errors.push(e.to_string());
                    }
                }
            });
            drop(reporters);
            if let Some(e) = write_errors.first() {
                return Err(CliError::Harness(format!("cannot write the report: {e}")));
            }
            Ok(
                if summary.failed > 0
                    || (flaky_fails && summary.flaky > 0)
                    || (known.strict_xpass && summary.xpassed > 0)
                {
                    ExitCode::CaseFailed
                } else {
                    ExitCode::Ok
                },
            )
        }
        Cmd::List { filters, format } => {
            if matches!(format, Format::Kcidb) {
                return Err(CliError::Usage(
                    "`list --format kcidb`: KCIDB holds results; list in `human` or `json`".into(),
                ));
            }
            let instances = select_nonempty(&filters)?;
            let mut out = std::io::stdout().lock();
            for inst in instances {
                let r = if format == Format::Json {
                    writeln!(
                        out,
                        "{}",
                        serde_json::json!({"case": inst.name, "id": inst.def.id, "variant": inst.variant,
                            "summary": inst.def.summary, "source": inst.def.source})
                    )
                } else {
                    writeln!(out, "{:<32} {}", inst.name, inst.def.summary)
                };
                if r.is_err() {
                    break; // stdout closed (| head): not an error worth a code
                }
            }
            Ok(ExitCode::Ok)
        }
        Cmd::Explain { case } => {
            let def = find_case(&case)?;
            print!("{}", explain(def));
            Ok(ExitCode::Ok)
        }
        Cmd::Bench(args) => {
            enter_privileged()?;
            bench::run(args).map_err(CliError::Harness)?;
            Ok(ExitCode::Ok)
        }
        Cmd::Explore(args) => explore::explore(args),
        Cmd::Matrix(args) => matrix::matrix(*args),
        Cmd::Report { command } => matrix::report(command),
        Cmd::Init { runner } => matrix::init(runner),
        Cmd::Cleanup => process::exit(kharness_matrix::cleanup::serve(std::io::stdin().lock())),
        Cmd::Case { id, variant, property } => {
            let property = property.settings()?;
            let def = find_case(&id)?;
            let variant: Option<&'static str> = match variant {
                None if def.variants.is_empty() => None,
                None => {
                    return Err(CliError::Usage(format!(
                        "case `{id}` has variants ({}); pass --variant",
                        def.variants.join(", ")
                    )))
                }
                Some(v) => Some(
                    *def.variants
                        .iter()
                        .find(|x| **x == v)
                        .ok_or_else(|| CliError::Usage(format!("case `{id}` has no variant `{v}`")))?,
                ),
            };
            // Before the case process hides the temp dir (its private
            // tmpfs), where the source tree may be.
            kharness_cases::prop::preload_regressions();
            enter_privileged()?;
            let report = runner::run_in_process(def, variant, property);
            println!("{}", serde_json::to_string(&report).expect("report serialises"));
            Ok(ExitCode::Ok)
        }
    }
}

pub(crate) fn enter_privileged() -> Result<(), CliError> {
    kharness::privilege::ensure_privileged().map_err(|e| CliError::Harness(e.to_string()))
}

pub(crate) fn validate_jobs(jobs: Option<i64>) -> Result<usize, CliError> {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    match jobs {
        None => Ok(cpus),
        Some(j) if (1..=1024).contains(&j) => Ok(j as usize),
        Some(j) => Err(CliError::Usage(format!(
            "--jobs {j} is out of range; give a number from 1 to 1024 (this machine has {cpus} CPUs)"
        ))),
    }
}

/// Most repetitions one run takes (hours of the catalog; the per-case
/// duration lists stay a few MB).
const MAX_REPEAT: i64 = 10_000;

fn validate_repeat(repeat: i64) -> Result<usize, CliError> {
    if (1..=MAX_REPEAT).contains(&repeat) {
        Ok(repeat as usize)
    } else {
        Err(CliError::Usage(format!(
            "--repeat {repeat} is out of range; give a number of runs from 1 to {MAX_REPEAT}"
        )))
    }
}

/// Most retries of a failed case.
const MAX_RETRIES: i64 = 100;

fn validate_retries(retries: i64) -> Result<usize, CliError> {
    if (0..=MAX_RETRIES).contains(&retries) {
        Ok(retries as usize)
    } else {
        Err(CliError::Usage(format!(
            "--retries {retries} is out of range; give a number of extra attempts from 0 to {MAX_RETRIES}"
        )))
    }
}

pub(crate) fn select_nonempty(filters: &[String]) -> Result<Vec<runner::Instance>, CliError> {
    if let Some(f) = filters.iter().find(|f| f.trim().is_empty()) {
        return Err(CliError::Usage(format!(
            "empty filter `{f}`; give a case id, a family (tcp) or a glob (tcp.*)"
        )));
    }
    let cat = catalog();
    for f in filters {
        if runner::select(&cat, std::slice::from_ref(f)).is_empty() {
            return Err(CliError::Usage(format!(
                "no case matches `{f}`; `kharness list` shows every case"
            )));
        }
    }
    Ok(runner::select(&cat, filters))
}

/// Checks that a report file can be written without creating it.
fn check_writable(path: &Path) -> Result<(), CliError> {
    use nix::unistd::{access, AccessFlags};
    if path.is_dir() {
        return Err(CliError::Usage(format!(
            "--junit {}: is a directory; give a file path",
            path.display()
        )));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if parent.exists() && !parent.is_dir() {
        return Err(CliError::Usage(format!(
            "--junit {}: {} is not a directory; give a file path in a directory",
            path.display(),
            parent.display()
        )));
    }
    if !parent.is_dir() {
        return Err(CliError::Usage(format!(
            "--junit {}: directory {} does not exist; create it first",
            path.display(),
            parent.display()
        )));
    }
    let target = if path.exists() { path } else { parent.as_path() };
    let flags = if path.exists() {
        AccessFlags::W_OK
    } else {
        AccessFlags::W_OK | AccessFlags::X_OK
    };
    access(target, flags).map_err(|e| {
        CliError::Usage(format!(
            "--junit {}: not writable ({e}); choose another path",
            path.display()
        ))
    })?;
    // Root passes access(2) even on read-only mounts; ask the filesystem.
    if let Ok(st) = nix::sys::statvfs::statvfs(&parent) {
        if st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
            return Err(CliError::Usage(format!(
                "--junit {}: {} is on a read-only filesystem; choose another path",
                path.display(),
                parent.display()
            )));
        }
    }
    Ok(())
}

fn explain(def: &CaseDef) -> String {
    let mut s = String::new();
    let variants = if def.variants.is_empty() {
        String::new()
    } else {
        format!(" (variants: {})", def.variants.join(", "))
    };
    s.push_str(&format!("{}{} — {}\n\n", def.id, variants, def.summary));
    for (title, body) in [
        ("Drives", def.drives),
        ("Observes", def.observes),
        ("Predicts", def.predicts),
        ("Why", def.why),
        ("Kernel versions", def.kernels),
        ("By hand", def.shell),
        ("Source", def.source),
    ] {
        s.push_str(&format!("{title}:\n"));
        for line in textwrap(body, 76) {
            s.push_str(&format!("  {line}\n"));
        }
        s.push('\n');
    }
    s.push_str(&format!("Timeout: {:?}\n", def.timeout));
    let known: Vec<_> = kharness::known_issues::built_in()
        .into_iter()
        .filter(|i| def.instances().iter().any(|(name, _)| i.names_case(def.id, name)))
        .collect();
    if !known.is_empty() {
        s.push_str("\nKnown kernel issues (fixtures/known-issues.toml):\n");
        for i in known {
            s.push_str(&format!("  {} — {}\n", i.id, i.kernels()));
            for line in textwrap(&format!("{} Evidence: {}", i.reason, i.evidence), 72) {
                s.push_str(&format!("    {line}\n"));
            }
        }
    }
    if kharness_cases::PROPERTY_CASES.contains(&def.id) {
        let file = def.id.replace('.', "_");
        s.push_str(&format!(
            "\nProperty case: random sequences from a seed, shrunk on failure.\n  \
             kharness run {id} --seed S --cases N   another seed, more sequences\n  \
             kharness explore {id} --time 5m        fresh seeds, deeper sequences\n  \
             Findings are replayed first by every run: \
             fixtures/proptest-regressions/{file}.txt and {file}.deep.txt\n",
            id = def.id
        ));
    }
    s
}

fn textwrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for para in text.split('\n') {
        let mut cur = String::new();
        for word in para.split_whitespace() {
            if !cur.is_empty() && cur.len() + 1 + word.len() > width {
                lines.push(std::mem::take(&mut cur));
            }
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
        lines.push(cur);
    }
    lines
}
