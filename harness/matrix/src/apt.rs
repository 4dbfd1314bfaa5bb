//! Finding and downloading Debian kernel packages with apt's own machinery.
//!
//! The archive URI comes from the system's apt sources (`/etc/apt/sources.list`,
//! `sources.list.d/*.list` and deb822 `*.sources`), never from this
//! repository. kharness keeps its own sources list, index lists and apt cache
//! under its cache directory and calls `apt-get update`, `apt-cache` and
//! `apt-get download` with `-o Dir::…` options pointing there, so the
//! system's apt state is never touched:
//!
//! ```text
//! apt-get -o Dir::Etc::SourceList=~/.cache/kharness/apt/sources.list \
//!         -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists=… update
//! apt-cache … madison linux-image-6.1.0-47-cloud-amd64-unsigned
//! apt-get … download linux-image-6.1.0-47-cloud-amd64-unsigned=6.1.158-1
//! ```

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::config::{capture, fill, DebianSpec};

/// One `deb` line or deb822 stanza of the system's sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    /// Archive base URIs.
    pub uris: Vec<String>,
    /// Suites (`bookworm`, `bookworm-security`).
    pub suites: Vec<String>,
    /// Components (`main`).
    pub components: Vec<String>,
    /// `signed-by` keyring path, or an inline key block.
    pub signed_by: Option<String>,
}

/// Parses one-line-style sources (`deb [opts] uri suite comp…`); `deb-src`
/// and comments are skipped.
pub fn parse_one_line(text: &str) -> Vec<SourceEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ").or_else(|| line.strip_prefix("deb\t")) else {
            continue;
        };
        let mut rest = rest.trim_start();
        let mut signed_by = None;
        if let Some(r) = rest.strip_prefix('[') {
            let Some((opts, after)) = r.split_once(']') else {
                continue;
            };
            for opt in opts.split_whitespace() {
                if let Some(v) = opt.strip_prefix("signed-by=") {
                    signed_by = Some(v.to_string());
                }
            }
            rest = after.trim_start();
        }
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        out.push(SourceEntry {
            uris: vec![uri.to_string()],
            suites: vec![suite.to_string()],
            components: words.map(str::to_string).collect(),
            signed_by,
        });
    }
    out
}

/// Parses deb822 sources (`Types:`, `URIs:`, `Suites:`, `Components:`,
/// `Signed-By:`, `Enabled:`), with continuation lines.
pub fn parse_deb822(text: &str) -> Vec<SourceEntry> {
    let mut out = Vec::new();
    for stanza in split_stanzas(text) {
        let get = |k: &str| {
            stanza
                .iter()
                .find(|(f, _)| f.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        let words = |k: &str| {
            get(k)
                .map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        if !words("Types").iter().any(|t| t == "deb") {
            continue;
        }
        if get("Enabled").is_some_and(|v| v.trim().eq_ignore_ascii_case("no")) {
            continue;
        }
        let entry = SourceEntry {
            uris: words("URIs"),
            suites: words("Suites"),
            components: words("Components"),
            signed_by: get("Signed-By").map(|v| v.trim().to_string()).filter(|v| !v.is_empty()),
        };
        if !entry.uris.is_empty() && !entry.suites.is_empty() {
            out.push(entry);
        }
    }
    out
}

/// Splits RFC 822-style text into stanzas of (field, value); continuation
/// lines (leading space) are appended with a newline, ` .` lines are blank.
/// Comment lines (`#`) are skipped.
pub fn split_stanzas(text: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, v)) = cur.last_mut() {
                let l = line.trim();
                v.push('\n');
                v.push_str(if l == "." { "" } else { l });
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            cur.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Reads the system's apt sources under `root` (normally `/`).
pub fn system_sources(root: &Path) -> Vec<SourceEntry> {
    let etc = root.join("etc/apt");
    let mut out = Vec::new();
    if let Ok(t) = std::fs::read_to_string(etc.join("sources.list")) {
        out.extend(parse_one_line(&t));
    }
    let mut parts: Vec<PathBuf> = std::fs::read_dir(etc.join("sources.list.d"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    parts.sort();
    for p in parts {
        let Ok(t) = std::fs::read_to_string(&p) else { continue };
        match p.extension().and_then(|e| e.to_str()) {
            Some("list") => out.extend(parse_one_line(&t)),
            Some("sources") => out.extend(parse_deb822(&t)),
            _ => {} // .disabled, .save, … are not read by apt either
        }
    }
    out
}

const DEBIAN_CODENAMES: &[&str] = &[
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "oldoldstable",
    "oldstable",
    "stable",
    "testing",
    "unstable",
    "experimental",
];

fn is_debian_suite(suite: &str) -> bool {
    let base = suite.split(['-', '/']).next().unwrap_or("");
    DEBIAN_CODENAMES.contains(&base)
}

fn is_security(suite: &str) -> bool {
    suite.ends_with("-security") || suite.ends_with("/updates")
}

/// The archive to fetch `suite` from: a Debian entry of the system's sources
/// of the same kind (security or not). Returns (URI, signed-by).
pub fn archive_for_suite(entries: &[SourceEntry], suite: &str) -> Option<(String, Option<String>)> {
    let want_security = is_security(suite);
    entries
        .iter()
        .filter(|e| {
            e.suites
                .iter()
                .any(|s| is_debian_suite(s) && is_security(s) == want_security)
        })
        .find_map(|e| {
            e.uris
                .first()
                .map(|u| (u.trim_end_matches('/').to_string(), e.signed_by.clone()))
        })
}

/// Compares Debian version strings as dpkg does (epoch, upstream, revision;
/// `~` sorts before everything, letters before other characters).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((u, r)) => (epoch, u, r),
            None => (epoch, rest, ""),
        }
    }
    fn order(c: Option<u8>) -> i32 {
        match c {
            None => 0,
            Some(b'~') => -1,
            Some(c) if c.is_ascii_alphabetic() => c as i32,
            Some(c) => c as i32 + 256,
        }
    }
    fn part(a: &str, b: &str) -> Ordering {
        let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
        while !a.is_empty() || !b.is_empty() {
            // Non-digit prefix, character by character.
            loop {
                let ca = a.first().copied().filter(|c| !c.is_ascii_digit());
                let cb = b.first().copied().filter(|c| !c.is_ascii_digit());
                if ca.is_none() && cb.is_none() {
                    break;
                }
                let (oa, ob) = (order(ca), order(cb));
                if oa != ob {
                    return oa.cmp(&ob);
                }
                a = &a[1..];
                b = &b[1..];
            }
            let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
            let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
            let na = std::str::from_utf8(&a[..da])
                .ok()
                .and_then(|s| s.parse::<u128>().ok())
                .unwrap_or(0);
            let nb = std::str::from_utf8(&b[..db])
                .ok()
                .and_then(|s| s.parse::<u128>().ok())
                .unwrap_or(0);
            if na != nb {
                return na.cmp(&nb);
            }
            a = &a[da..];
            b = &b[db..];
        }
        Ordering::Equal
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb).then_with(|| part(ua, ub)).then_with(|| part(ra, rb))
}

/// One row of `apt-cache madison`: (package, version, suite).
pub fn parse_madison(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols.len() < 3 || !cols[2].ends_with("Packages") {
            continue;
        }
        let Some(dist) = cols[2].split_whitespace().nth(1) else {
            continue;
        };
        let suite = dist.split('/').next().unwrap_or(dist);
        let suite = suite.strip_suffix("/updates").unwrap_or(suite);
        out.push((cols[0].to_string(), cols[1].to_string(), suite.to_string()));
    }
    out
}

/// A package version that may hold the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Image package name.
    pub package: String,
    /// Its version.
    pub version: String,
    /// Suite it was found in.
    pub suite: String,
    /// Separate modules package (same version), if the spec has one.
    pub modules_package: Option<String>,
}

impl Candidate {
    /// `name=version`, as `apt-get download` takes it.
    pub fn pin(&self) -> String {
        format!("{}={}", self.package, self.version)
    }
}

/// Orders index rows into candidates for `spec`: packages matching an image
/// pattern in one of its suites, newest version first, then pattern order.
pub fn candidates(spec: &DebianSpec, rows: &[(String, String, String)]) -> Vec<Candidate> {
    let mut found: Vec<(usize, Candidate)> = Vec::new();
    for (name, version, suite) in rows {
        if !spec.suites.contains(suite) {
            continue;
        }
        let Some((rank, cap)) = spec
            .image
            .iter()
            .enumerate()
            .find_map(|(i, p)| capture(p, name).map(|c| (i, c)))
        else {
            continue;
        };
        let c = Candidate {
            package: name.clone(),
            version: version.clone(),
            suite: suite.clone(),
            modules_package: spec.modules_package.as_ref().map(|m| fill(m, cap)),
        };
        if !found
            .iter()
            .any(|(_, o)| o.package == c.package && o.version == c.version)
        {
            found.push((rank, c));
        }
    }
    found.sort_by(|(ra, a), (rb, b)| compare_versions(&b.version, &a.version).then(ra.cmp(rb)));
    found.into_iter().map(|(_, c)| c).collect()
}

/// A failure talking to apt or the archive.
#[derive(Debug, thiserror::Error)]
pub enum AptError {
    /// apt-get/apt-cache are not installed.
    #[error("apt-get is not installed; the Debian kernels need apt (or give --kernel PATH)")]
    NoApt,
    /// No Debian archive in the system's sources.
    #[error("no Debian archive for suite `{suite}` in the system's apt sources; pass --archive URI")]
    NoArchive {
        /// The suite.
        suite: String,
    },
    /// `apt-get update` failed.
    #[error("cannot fetch the package index from {uris}: {message}")]
    Update {
        /// The archives tried.
        uris: String,
        /// apt's words.
        message: String,
    },
    /// A command failed.
    #[error("{command} failed: {message}")]
    Command {
        /// What ran.
        command: String,
        /// Its stderr (tail).
        message: String,
    },
    /// Local I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// kharness's own apt state: sources list, lists and cache under `dir`.
#[derive(Debug, Clone)]
pub struct AptStore {
    dir: PathBuf,
}

fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = s
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("W: Download is performed unsandboxed"))
        .collect();
    lines[lines.len().saturating_sub(4)..].join(" | ")
}

impl AptStore {
    /// State under `dir` (created on demand).
    pub fn new(dir: PathBuf) -> AptStore {
        AptStore { dir }
    }

    /// Writes the sources list for `suites`, each from the system's archive
    /// of its kind (or from `archive` and `archive`-security when given).
    pub fn configure(
        &self,
        suites: &[String],
        system: &[SourceEntry],
        archive: Option<&str>,
    ) -> Result<Vec<String>, AptError> {
        std::fs::create_dir_all(self.dir.join("lists/partial"))?;
        std::fs::create_dir_all(self.dir.join("cache/archives/partial"))?;
        let mut lines = Vec::new();
        let mut uris = Vec::new();
        for (i, suite) in suites.iter().enumerate() {
            let (uri, signed) = match archive {
                Some(a) => {
                    let a = a.trim_end_matches('/');
                    // A given archive is Debian's layout (`X` and `X-security`),
                    // checked with Debian's keyring when it is installed.
                    let keyring = Path::new(DEBIAN_KEYRING).exists().then(|| DEBIAN_KEYRING.to_string());
                    (
                        if is_security(suite) {
                            format!("{a}-security")
                        } else {
                            a.to_string()
                        },
                        keyring,
                    )
                }
                None => archive_for_suite(system, suite).ok_or_else(|| AptError::NoArchive { suite: suite.clone() })?,
            };
            let opt = match signed {
                Some(k) if k.contains("BEGIN PGP") => {
                    let p = self.dir.join(format!("key-{i}.asc"));
                    std::fs::write(&p, k.trim().to_string() + "\n")?;
                    format!("[signed-by={}] ", p.display())
                }
                Some(k) => format!("[signed-by={k}] "),
                None => String::new(),
            };
            if !uris.contains(&uri) {
                uris.push(uri.clone());
            }
            lines.push(format!("deb {opt}{uri} {suite} main\n"));
        }
        let want = lines.concat();
        let path = self.dir.join("sources.list");
        if std::fs::read_to_string(&path).ok().as_deref() != Some(want.as_str()) {
            std::fs::write(&path, want)?;
            // Lists of another sources list would mislead resolution.
            let _ = std::fs::write(self.dir.join("lists/.stale"), "");
        }
        Ok(uris)
    }

    fn opts(&self) -> Vec<String> {
        let d = |s: &str| self.dir.join(s).display().to_string();
        vec![
            format!("-oDir::Etc::SourceList={}", d("sources.list")),
            "-oDir::Etc::SourceParts=/dev/null".into(),
            format!("-oDir::State::Lists={}", d("lists")),
            format!("-oDir::Cache={}", d("cache")),
            "-oDir::State::status=/dev/null".into(),
            "-oAPT::Architecture=amd64".into(),
            "-oAPT::Architectures=amd64".into(),
            "-oAcquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".into(),
            "-oAcquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".into(),
            "-oAcquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false".into(),
            "-oAcquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false".into(),
            "-oAcquire::Languages=none".into(),
            "-oAPT::Sandbox::User=root".into(),
            "-oAcquire::Retries=1".into(),
            "-oAcquire::http::Timeout=20".into(),
            "-qq".into(),
        ]
    }

    /// apt's partial-download directories (recreated by [`configure`](Self::configure)).
    pub fn partial_dirs(&self) -> [PathBuf; 2] {
        [self.dir.join("lists/partial"), self.dir.join("cache/archives/partial")]
    }

    /// Whether an index was fetched before for the current sources list.
    pub fn has_lists(&self) -> bool {
        if self.dir.join("lists/.stale").exists() {
            return false;
        }
        std::fs::read_dir(self.dir.join("lists"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .any(|e| e.file_name().to_string_lossy().contains("Packages"))
            })
            .unwrap_or(false)
    }

    /// `apt-get update` on kharness's own lists.
    pub fn update(&self, uris: &[String]) -> Result<(), AptError> {
        let out = kharness::sys::die_with_parent(Command::new("apt-get").args(self.opts()).arg("update"))
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => AptError::NoApt,
                _ => AptError::Io(e),
            })?;
        let err = tail(&out.stderr);
        // apt-get update exits 0 even when some index could not be fetched
        // (it keeps the old one); "E:"/"W: Failed" lines say so.
        if !out.status.success() || err.contains("E:") || err.contains("Failed to fetch") {
            let _ = std::fs::remove_file(self.dir.join("lists/.stale"));
            return Err(AptError::Update {
                uris: uris.join(", "),
                message: err,
            });
        }
        let _ = std::fs::remove_file(self.dir.join("lists/.stale"));
        Ok(())
    }

    /// Every (package, version, suite) in the lists whose name starts with
    /// the text before `*` of one of `patterns`.
    pub fn index_rows(&self, patterns: &[String]) -> Result<Vec<(String, String, String)>, AptError> {
        let mut names = Vec::new();
        for p in patterns {
            let prefix = p.split('*').next().unwrap_or(p);
            let out = self.apt_cache(&["pkgnames", prefix])?;
            for n in String::from_utf8_lossy(&out).lines() {
                if capture(p, n).is_some() && !names.iter().any(|x: &String| x == n) {
                    names.push(n.to_string());
                }
            }
        }
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec!["madison"];
        args.extend(names.iter().map(String::as_str));
        let out = self.apt_cache(&args)?;
        Ok(parse_madison(&String::from_utf8_lossy(&out)))
    }

    fn apt_cache(&self, args: &[&str]) -> Result<Vec<u8>, AptError> {
        let mut cmd = Command::new("apt-cache");
        cmd.args(self.opts()).args(args);
        run_apt(&mut cmd, format!("apt-cache {}", args.join(" ")))
    }

    /// `apt-get download name=version` into `dest`; returns the .deb path.
    pub fn download(&self, name: &str, version: &str, dest: &Path) -> Result<PathBuf, AptError> {
        let pin = format!("{name}={version}");
        let mut cmd = Command::new("apt-get");
        cmd.args(self.opts()).args(["download", &pin]).current_dir(dest);
        run_apt(&mut cmd, format!("apt-get download {pin}"))?;
        let deb = std::fs::read_dir(dest)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                let f = p
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                f.starts_with(&format!("{name}_")) && f.ends_with(".deb")
            });
        deb.ok_or_else(|| AptError::Command {
            command: format!("apt-get download {pin}"),
            message: "no .deb was written".into(),
        })
    }
}

/// Runs an apt command (dying with the matrix run: a killed run must not
/// leave a download going) and returns its standard output; a missing apt
/// or a failed command is an [`AptError`] naming `command`.
fn run_apt(cmd: &mut Command, command: String) -> Result<Vec<u8>, AptError> {
    let out = kharness::sys::die_with_parent(cmd)
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => AptError::NoApt,
            _ => AptError::Io(e),
        })?;
    if !out.status.success() {
        return Err(AptError::Command {
            command,
            message: tail(&out.stderr),
        });
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const DEB822: &str = "\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://archive.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://archive.example/debian-security
Suites: bookworm-security
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBF
 -----END PGP PUBLIC KEY BLOCK-----

Types: deb
URIs: https://third.party.example/node
Suites: nodistro
Components: main

Types: deb
Enabled: no
URIs: http://disabled.example/debian
Suites: sid
Components: main
";

    #[test]
    fn deb822_sources() {
        let e = parse_deb822(DEB822);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].uris, ["http://archive.example/debian"]);
        assert_eq!(e[0].suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(
            e[0].signed_by.as_deref(),
            Some("/usr/share/keyrings/debian-archive-keyring.gpg")
        );
        let key = e[1].signed_by.as_deref().unwrap();
        assert!(
            key.starts_with("-----BEGIN PGP") && key.contains("\n\nmQINBF\n"),
            "{key:?}"
        );
        assert_eq!(archive_for_suite(&e, "sid").unwrap().0, "http://archive.example/debian");
        assert_eq!(
            archive_for_suite(&e, "bullseye-security").unwrap().0,
            "http://archive.example/debian-security"
        );
    }

    #[test]
    fn one_line_sources() {
        let text = "\
# comment
deb [arch=amd64 signed-by=/k.gpg] http://archive.example/debian/ bookworm main contrib
deb-src http://archive.example/debian bookworm main
deb http://archive.example/debian-security bookworm-security main # trailing
deb https://packages.example/apt cloud-sdk-bookworm main
";
        let e = parse_one_line(text);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].signed_by.as_deref(), Some("/k.gpg"));
        assert_eq!(e[0].components, ["main", "contrib"]);
        // The third-party repository is not taken for a Debian suite.
        assert_eq!(
            archive_for_suite(&e, "sid"),
            Some(("http://archive.example/debian".into(), Some("/k.gpg".into())))
        );
        assert_eq!(
            archive_for_suite(&e, "bookworm-security").unwrap().0,
            "http://archive.example/debian-security"
        );
        assert_eq!(
            archive_for_suite(
                &parse_one_line("deb https://p.example/apt cloud-sdk-bookworm main"),
                "sid"
            ),
            None
        );
    }

    /// Debian's ordering (deb-version(7)), each pair checked both ways.
    #[rstest]
    #[case::newer_upload("5.10.262-1", "5.10.237-1", Ordering::Greater)]
    #[case::backport_tilde_before_release("6.12.117-1~deb12u1", "6.12.117-1", Ordering::Less)]
    #[case::epoch_wins("1:1.0", "2.0", Ordering::Greater)]
    #[case::letters_before_symbols("1.0a", "1.0+", Ordering::Less)]
    #[case::tilde_before_nothing("1.0~rc1", "1.0", Ordering::Less)]
    #[case::equal("6.1.158-1", "6.1.158-1", Ordering::Equal)]
    #[case::numeric_not_lexical("6.1.10-1", "6.1.9-2", Ordering::Greater)]
    #[case::binnmu_after("7.2.13-1", "7.2.13-1+b1", Ordering::Less)]
    fn versions(#[case] a: &str, #[case] b: &str, #[case] want: Ordering) {
        assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
        assert_eq!(compare_versions(b, a), want.reverse(), "{b} vs {a}");
    }

    #[test]
    fn madison_and_candidates() {
        let text = "\
linux-image-5.10.0-46-cloud-amd64-unsigned | 5.10.262-1 | http://a.example/debian-security bullseye-security/main amd64 Packages
linux-image-5.10.0-46-cloud-amd64 | 5.10.262-1 | http://a.example/debian-security bullseye-security/main amd64 Packages
linux-image-5.10.0-30-cloud-amd64-unsigned | 5.10.218-1 | http://a.example/debian bullseye/main amd64 Packages
linux-image-5.10.0-99-cloud-amd64-unsigned | 5.10.999-1 | http://a.example/debian sid/main amd64 Packages
     linux | 5.10.262-1 | http://a.example/debian bullseye/main Sources
";
        let rows = parse_madison(text);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].2, "bullseye-security");
        let spec = DebianSpec {
            suites: vec!["bullseye".into(), "bullseye-security".into()],
            image: vec![
                "linux-image-5.10.0-*-cloud-amd64-unsigned".into(),
                "linux-image-5.10.0-*-cloud-amd64".into(),
            ],
            modules_package: Some("linux-modules-5.10.0-*-cloud-amd64".into()),
            release: "5.10.0-*-cloud-amd64".into(),
        };
        let c = candidates(&spec, &rows);
        let pins: Vec<String> = c.iter().map(Candidate::pin).collect();
        assert_eq!(
            pins,
            [
                "linux-image-5.10.0-46-cloud-amd64-unsigned=5.10.262-1",
                "linux-image-5.10.0-46-cloud-amd64=5.10.262-1",
                "linux-image-5.10.0-30-cloud-amd64-unsigned=5.10.218-1",
            ]
        );
        assert_eq!(
            c[0].modules_package.as_deref(),
            Some("linux-modules-5.10.0-46-cloud-amd64")
        );
    }
}
