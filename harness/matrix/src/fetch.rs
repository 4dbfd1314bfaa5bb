//! Resolving a kernel of the list to files on disk: the cache, and the
//! candidate-by-candidate download of Debian packages.
//!
//! Cache layout (`$XDG_CACHE_HOME/kharness` or `~/.cache/kharness`):
//!
//! ```text
//! apt/                              kharness's own apt sources, lists, cache
//! kernels/PKG_VERSION/entry.json    what the entry holds (written last)
//! kernels/PKG_VERSION/vmlinuz
//! kernels/PKG_VERSION/modules/REL/… the modules tree, as packaged
//! failed/PKG_VERSION                a candidate whose download failed (404)
//! runs/STAMP/KERNEL/                console and results logs of each VM
//! ```
//!
//! An entry is built in `kernels/.tmp-…` and renamed into place, so a killed
//! run never leaves a half-written entry that a later run would trust; the
//! temp directory is registered with the [`Cleanup`] helper, which removes
//! it (and apt's partial downloads) if the run is killed. Until
//! `--refresh`, a cached entry matching the kernel's patterns is used without
//! asking apt anything: a second run downloads nothing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::apt::{candidates, compare_versions, AptStore, Candidate, SourceEntry};
use super::cleanup::Cleanup;
use super::config::{capture, DebianSpec, KernelSource, KernelSpec};
use super::deb::extract_kernel;

/// The cache root: `$XDG_CACHE_HOME/kharness`, else `$HOME/.cache/kharness`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("kharness");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache/kharness")
}

/// What a cache entry holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryInfo {
    /// Image package.
    pub package: String,
    /// Its version.
    pub version: String,
    /// Modules package, when separate.
    pub modules_package: Option<String>,
    /// Suite it came from.
    pub suite: String,
    /// `uname -r` of the kernel.
    pub release: String,
    /// Candidates that failed before this one was used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
}

/// A kernel ready to boot.
#[derive(Debug, Clone)]
pub struct ReadyKernel {
    /// Kernel image.
    pub image: PathBuf,
    /// `lib/modules/REL`, if any.
    pub modules: Option<PathBuf>,
    /// Expected release, when known.
    pub release: Option<String>,
    /// `pkg=version (suite)` or the path.
    pub source: String,
    /// Fallbacks taken, cache use.
    pub notes: Vec<String>,
    /// Whether anything was downloaded.
    pub downloaded: bool,
}

fn key(package: &str, version: &str) -> String {
    format!("{package}_{}", version.replace(':', "%3a"))
}

/// Resolves kernels to files, sharing one apt state.
pub struct Fetcher {
    root: PathBuf,
    apt: AptStore,
    suites: Vec<String>,
    system: Vec<SourceEntry>,
    archive: Option<String>,
    refresh: bool,
    /// apt calls are serialised; the first caller runs `apt-get update`.
    state: Mutex<Option<Result<Vec<String>, String>>>,
    cleanup: Option<Arc<Cleanup>>,
}

impl Fetcher {
    /// A fetcher over the cache at `root` for the given suites.
    pub fn new(
        root: PathBuf,
        suites: Vec<String>,
        system: Vec<SourceEntry>,
        archive: Option<String>,
        refresh: bool,
    ) -> Fetcher {
        let apt = AptStore::new(root.join("apt"));
        Fetcher {
            root,
            apt,
            suites,
            system,
            archive,
            refresh,
            state: Mutex::new(None),
            cleanup: None,
        }
    }

    /// Registers every scratch path with `cleanup`, to be removed if the
    /// process is killed.
    pub fn with_cleanup(mut self, cleanup: Arc<Cleanup>) -> Fetcher {
        self.cleanup = Some(cleanup);
        self
    }

    /// Registers `path` for removal if the run is killed. Without a helper
    /// (it could not start: `run` has said so) the fetch goes on regardless.
    fn scratch(&self, path: &Path) {
        if let Some(c) = &self.cleanup {
            let _ = c.remove_on_death(path);
        }
    }

    fn settled(&self, path: &Path) {
        if let Some(c) = &self.cleanup {
            c.keep(path);
        }
    }

    /// Removes temp entries left by runs that died.
    pub fn clean_stale(&self) {
        let Ok(d) = std::fs::read_dir(self.root.join("kernels")) else {
            return;
        };
        for e in d.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(".tmp-") else {
                continue;
            };
            let pid = rest.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok());
            if pid.is_none_or(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Turns a kernel of the list into files (never for `Host`).
    pub fn resolve(&self, spec: &KernelSpec) -> Result<ReadyKernel, String> {
        match &spec.source {
            KernelSource::Host => Err("the host kernel is not fetched".into()),
            KernelSource::Custom { image, modules } => custom(image, modules.as_deref()),
            KernelSource::Debian(d) => self.debian(&spec.name, d),
        }
    }

    fn cached(&self, d: &DebianSpec) -> Vec<(EntryInfo, PathBuf)> {
        let mut out = Vec::new();
        let Ok(dir) = std::fs::read_dir(self.root.join("kernels")) else {
            return out;
        };
        for e in dir.flatten() {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(e.path().join("entry.json")) else {
                continue;
            };
            let Ok(info) = serde_json::from_str::<EntryInfo>(&text) else {
                continue;
            };
            if d.suites.contains(&info.suite) && d.image.iter().any(|p| capture(p, &info.package).is_some()) {
                out.push((info, e.path()));
            }
        }
        out.sort_by(|a, b| compare_versions(&b.0.version, &a.0.version));
        out
    }

    fn ready(info: &EntryInfo, dir: &Path, mut notes: Vec<String>, downloaded: bool) -> ReadyKernel {
        if !downloaded {
            notes.extend(info.fallbacks.iter().map(|f| format!("when fetched: {f}")));
        }
        let modules = dir.join("modules").join(&info.release);
        ReadyKernel {
            image: dir.join("vmlinuz"),
            modules: modules.is_dir().then_some(modules),
            release: Some(info.release.clone()),
            source: format!("{}={} ({})", info.package, info.version, info.suite),
            notes,
            downloaded,
        }
    }

    fn debian(&self, name: &str, d: &DebianSpec) -> Result<ReadyKernel, String> {
        if !self.refresh {
            if let Some((info, dir)) = self.cached(d).into_iter().next() {
                let note = format!(
                    "cached {}={} (--refresh looks for a newer one)",
                    info.package, info.version
                );
                return Ok(Fetcher::ready(&info, &dir, vec![note], false));
            }
        }
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let r = (|| -> Result<Vec<String>, String> {
                // Emptied at the end of every apt call; gone if we are killed
                // during one (configure makes them again).
                for p in self.apt.partial_dirs() {
                    self.scratch(&p);
                }
                let uris = self
                    .apt
                    .configure(&self.suites, &self.system, self.archive.as_deref())
                    .map_err(|e| e.to_string())?;
                if self.refresh || !self.apt.has_lists() {
                    self.apt
                        .update(&uris)
                        .map_err(|e| format!("{e}; check the network or the archive (--archive URI)"))?;
                }
                Ok(uris)
            })();
            *guard = Some(r);
        }
        if let Some(Err(e)) = guard.as_ref() {
            return Err(e.clone());
        }
        let rows = self.apt.index_rows(&d.image).map_err(|e| e.to_string())?;
        let cands = candidates(d, &rows);
        if cands.is_empty() {
            return Err(format!(
                "no package matching {} in suites {} of the index; check kernel `{name}` in the kernel list",
                d.image.join(" or "),
                d.suites.join(", ")
            ));
        }
        let mut notes = Vec::new();
        for c in &cands {
            let k = key(&c.package, &c.version);
            let final_dir = self.root.join("kernels").join(&k);
            if final_dir.join("entry.json").exists() {
                if let Ok(info) = std::fs::read_to_string(final_dir.join("entry.json"))
                    .map_err(|e| e.to_string())
                    .and_then(|t| serde_json::from_str::<EntryInfo>(&t).map_err(|e| e.to_string()))
                {
                    return Ok(Fetcher::ready(&info, &final_dir, notes, false));
                }
            }
            let failed = self.root.join("failed").join(&k);
            if !self.refresh && failed.exists() {
                notes.push(format!(
                    "skipped {} (failed before: {})",
                    c.pin(),
                    std::fs::read_to_string(&failed).unwrap_or_default().trim()
                ));
                continue;
            }
            match self.fetch_candidate(c, d, &final_dir, &notes) {
                Ok(info) => {
                    if !notes.is_empty() {
                        notes.push(format!("used {}", c.pin()));
                    }
                    return Ok(Fetcher::ready(&info, &final_dir, notes, true));
                }
                Err((e, permanent)) => {
                    if permanent {
                        let _ = std::fs::create_dir_all(failed.parent().unwrap_or(&self.root));
                        let _ = std::fs::write(&failed, &e);
                    }
                    notes.push(format!("candidate {} failed: {e}", c.pin()));
                }
            }
        }
        Err(format!("every candidate failed: {}", notes.join("; ")))
    }

    /// Downloads and extracts one candidate into a temp dir, then renames it
    /// to `final_dir`. Errors say whether retrying later could help.
    fn fetch_candidate(
        &self,
        c: &Candidate,
        d: &DebianSpec,
        final_dir: &Path,
        fallbacks: &[String],
    ) -> Result<EntryInfo, (String, bool)> {
        let kernels = self.root.join("kernels");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = kernels.join(format!(
            ".tmp-{}-{}-{nanos}",
            key(&c.package, &c.version),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&tmp);
        self.scratch(&tmp);
        let debs = tmp.join(".debs");
        let cleanup = |e: (String, bool)| {
            let _ = std::fs::remove_dir_all(&tmp);
            self.settled(&tmp);
            e
        };
        std::fs::create_dir_all(&debs)
            .map_err(|e| cleanup((format!("cannot create {}: {e}", debs.display()), false)))?;
        let mut packages = vec![c.package.clone()];
        packages.extend(c.modules_package.clone());
        let mut images = Vec::new();
        let mut module_releases = Vec::new();
        for p in &packages {
            let deb = self.apt.download(p, &c.version, &debs).map_err(|e| {
                let msg = e.to_string();
                let permanent =
                    msg.contains("404") || msg.contains("Unable to locate") || msg.contains("Can't find a source");
                cleanup((msg, permanent))
            })?;
            let x = extract_kernel(&deb, &tmp).map_err(|e| {
                cleanup((
                    format!("{e}; the download was discarded, run again to fetch it anew"),
                    false,
                ))
            })?;
            let _ = std::fs::remove_file(&deb);
            images.extend(x.image_releases);
            module_releases.extend(x.module_releases);
        }
        let _ = std::fs::remove_dir_all(&debs);
        let release = match images.first() {
            Some(r) => r.clone(),
            None => return Err(cleanup((format!("{} holds no kernel image", c.pin()), true))),
        };
        if capture(&d.release, &release).is_none() {
            return Err(cleanup((
                format!(
                    "{} holds kernel {release}, which does not match release `{}`",
                    c.pin(),
                    d.release
                ),
                true,
            )));
        }
        if !module_releases.contains(&release) {
            return Err(cleanup((
                format!("{} has no modules for {release}", packages.join(" + ")),
                true,
            )));
        }
        let info = EntryInfo {
            package: c.package.clone(),
            version: c.version.clone(),
            modules_package: c.modules_package.clone(),
            suite: c.suite.clone(),
            release,
            fallbacks: fallbacks.iter().map(|f| format!("{f}; used {}", c.pin())).collect(),
        };
        let json = serde_json::to_string_pretty(&info).unwrap_or_default();
        std::fs::write(tmp.join("entry.json"), json).map_err(|e| cleanup((e.to_string(), false)))?;
        match std::fs::rename(&tmp, final_dir) {
            Ok(()) => {
                self.settled(&tmp);
                Ok(info)
            }
            // Another run finished the same entry first: keep theirs.
            Err(_) if final_dir.join("entry.json").exists() => {
                let _ = std::fs::remove_dir_all(&tmp);
                self.settled(&tmp);
                Ok(info)
            }
            Err(e) => Err(cleanup((
                format!("cannot move the entry into {}: {e}", final_dir.display()),
                false,
            ))),
        }
    }
}

fn custom(image: &Path, modules: Option<&Path>) -> Result<ReadyKernel, String> {
    if !image.is_file() {
        return Err(format!(
            "--kernel {}: no such file; give a bzImage or vmlinuz",
            image.display()
        ));
    }
    if let Some(m) = modules {
        if !m.is_dir() {
            return Err(format!(
                "--modules {}: not a directory; give lib/modules/VERSION (after make modules_install)",
                m.display()
            ));
        }
    }
    let release = modules
        .and_then(|m| m.file_name())
        .map(|f| f.to_string_lossy().into_owned());
    Ok(ReadyKernel {
        image: image.to_path_buf(),
        modules: modules.map(Path::to_path_buf),
        release,
        source: format!(
            "{}{}",
            image.display(),
            modules.map(|m| format!(" + {}", m.display())).unwrap_or_default()
        ),
        notes: vec![],
        downloaded: false,
    })
}

/// Milliseconds since `t`.
pub fn ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_entries_are_found_by_pattern_and_temp_dirs_ignored() {
        let tmp = tempfile::Builder::new().prefix("kharness-cache-").tempdir().unwrap();
        let root = tmp.path();
        let mk = |pkg: &str, ver: &str, suite: &str| {
            let dir = root.join("kernels").join(key(pkg, ver));
            std::fs::create_dir_all(dir.join("modules/5.10.0-9-cloud-amd64")).unwrap();
            let info = EntryInfo {
                package: pkg.into(),
                version: ver.into(),
                modules_package: None,
                suite: suite.into(),
                release: "5.10.0-9-cloud-amd64".into(),
                fallbacks: vec![],
            };
            std::fs::write(dir.join("entry.json"), serde_json::to_string(&info).unwrap()).unwrap();
        };
        mk("linux-image-5.10.0-9-cloud-amd64-unsigned", "5.10.9-1", "bullseye");
        mk("linux-image-5.10.0-10-cloud-amd64-unsigned", "5.10.10-1", "bullseye");
        mk("linux-image-6.1.0-1-cloud-amd64-unsigned", "6.1.1-1", "bookworm");
        // A half-written entry of a dead run: no entry.json, and a temp name.
        std::fs::create_dir_all(root.join("kernels/.tmp-x_1-999999999-1")).unwrap();
        let f = Fetcher::new(root.to_path_buf(), vec![], vec![], None, false);
        let spec = KernelSpec {
            name: "5.10".into(),
            description: String::new(),
            source: KernelSource::Debian(DebianSpec {
                suites: vec!["bullseye".into()],
                image: vec!["linux-image-5.10.0-*-cloud-amd64-unsigned".into()],
                modules_package: None,
                release: "5.10.0-*-cloud-amd64".into(),
            }),
            extra: false,
        };
        let r = f.resolve(&spec).unwrap();
        assert_eq!(
            r.source,
            "linux-image-5.10.0-10-cloud-amd64-unsigned=5.10.10-1 (bullseye)"
        );
        assert!(!r.downloaded);
        assert!(r.modules.unwrap().ends_with("modules/5.10.0-9-cloud-amd64"));
        f.clean_stale();
        assert!(!root.join("kernels/.tmp-x_1-999999999-1").exists());
    }
}
