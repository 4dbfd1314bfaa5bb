//! Scratch paths that must not outlive a killed `kharness matrix`.
//!
//! A matrix run writes things that are only valid while it runs: the
//! `kernels/.tmp-…` directory a kernel is unpacked into before it is renamed
//! into the cache, the run's log directory with its initramfs, apt's partial
//! downloads. SIGKILL gives the process no chance to remove them, so the
//! removal is registered, when each path is created, with a small helper
//! process (`kharness __cleanup`) that outlives it:
//!
//! ```text
//! kharness matrix ──pipe──▶ kharness __cleanup   (own process group)
//!   "+/cache/kernels/.tmp-linux-image…"  remove this if I die
//!   "-/cache/kernels/.tmp-linux-image…"  never mind: it is finished
//!   "done"                               I ended normally
//! ```
//!
//! The helper reads until end of file, which comes when the matrix process
//! ends however it ends (the pipe's write end is close-on-exec, so no other
//! child holds it). Without `done`, it removes every path still registered,
//! newest first, and exits. Children that write into those paths (QEMU,
//! apt-get) are killed with the matrix process (`PR_SET_PDEATHSIG`); a write
//! of theirs racing the removal only makes it go round again.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The hidden subcommand that runs [`serve`].
pub const SUBCOMMAND: &str = "__cleanup";

/// The matrix side: registers paths with the helper, started on first use.
#[derive(Debug)]
pub struct Cleanup {
    exe: PathBuf,
    helper: Mutex<Option<(Child, ChildStdin)>>,
}

impl Cleanup {
    /// A registry whose helper is `exe __cleanup` (normally this binary).
    pub fn new(exe: PathBuf) -> Cleanup {
        Cleanup {
            exe,
            helper: Mutex::new(None),
        }
    }

    fn send(&self, record: &[u8]) -> Result<(), String> {
        let mut h = self.helper.lock().unwrap_or_else(|p| p.into_inner());
        if h.is_none() {
            let mut child = Command::new(&self.exe)
                .arg(SUBCOMMAND)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                // Its own group: a Ctrl-C (or killpg) of the matrix run's
                // group must leave it alive to clean up after it.
                .process_group(0)
                .spawn()
                .map_err(|e| {
                    format!(
                        "cannot start the cleanup helper {} {SUBCOMMAND}: {e}",
                        self.exe.display()
                    )
                })?;
            let stdin = child.stdin.take().expect("piped stdin");
            *h = Some((child, stdin));
        }
        let (_, stdin) = h.as_mut().expect("started");
        stdin
            .write_all(record)
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cleanup helper: {e}"))
    }

    /// Registers `path` (a file or a directory tree) for removal if this
    /// process dies before [`keep`](Self::keep) or [`finish`](Self::finish).
    pub fn remove_on_death(&self, path: &Path) -> Result<(), String> {
        self.send(&record(b'+', path.as_os_str()))
    }

    /// `path` is finished (or gone): it stays.
    pub fn keep(&self, path: &Path) {
        let _ = self.send(&record(b'-', path.as_os_str()));
    }

    /// The run ended normally: every path still registered stays. Waits
    /// for the helper to exit.
    pub fn finish(self) {
        let taken = self.helper.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some((mut child, mut stdin)) = taken {
            let _ = stdin.write_all(b"done\0");
            drop(stdin);
            let _ = child.wait();
        }
    }
}

fn record(op: u8, path: &OsStr) -> Vec<u8> {
    let mut v = Vec::with_capacity(path.len() + 2);
    v.push(op);
    v.extend_from_slice(path.as_bytes());
    v.push(0);
    v
}

/// What the records say to do at end of input: the paths to remove, newest
/// first (none if `done` came).
pub fn pending(input: &[u8]) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = Vec::new();
    // Only whole records: the piece after the last NUL was cut short.
    let whole = &input[..input.iter().rposition(|b| *b == 0).map_or(0, |i| i + 1)];
    for rec in whole.split(|b| *b == 0) {
        match rec.split_first() {
            _ if rec == b"done" => return Vec::new(),
            Some((b'+', p)) if !p.is_empty() => paths.push(PathBuf::from(OsStr::from_bytes(p))),
            Some((b'-', p)) => {
                let p = Path::new(OsStr::from_bytes(p));
                paths.retain(|x| x != p);
            }
            _ => {}
        }
    }
    paths.reverse();
    paths
}

/// The helper: reads records from `input` until end of file, then removes
/// what [`pending`] says. Returns the exit status.
pub fn serve(mut input: impl Read) -> i32 {
    let mut buf = Vec::new();
    let _ = input.read_to_end(&mut buf);
    let mut status = 0;
    for p in pending(&buf) {
        if let Err(e) = remove_settled(&p, Duration::from_secs(5)) {
            eprintln!(
                "kharness: cannot remove {} after a killed run: {e}; remove it by hand",
                p.display()
            );
            status = 1;
        }
    }
    status
}

/// Removes `path` until it stays gone: a dying writer may add an entry
/// while the tree is being removed.
fn remove_settled(path: &Path, limit: Duration) -> std::io::Result<()> {
    let start = Instant::now();
    loop {
        let r = match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => Err(e),
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
            Ok(_) => std::fs::remove_file(path),
        };
        match r {
            Ok(()) if !path.exists() => return Ok(()),
            Err(e) if start.elapsed() > limit => return Err(e),
            _ if start.elapsed() > limit => return Err(std::io::Error::other("it keeps coming back")),
            // Another round once the writer is gone: it was killed with us
            // and dies within moments.
            _ => std::thread::park_timeout(Duration::from_millis(2)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(v: &[(u8, &str)]) -> Vec<u8> {
        v.iter().flat_map(|(op, p)| record(*op, OsStr::new(p))).collect()
    }

    #[test]
    fn records() {
        let input = recs(&[
            (b'+', "/c/runs/1"),
            (b'+', "/c/kernels/.tmp-a"),
            (b'+', "/c/kernels/.tmp-b"),
            (b'-', "/c/kernels/.tmp-a"),
        ]);
        assert_eq!(
            pending(&input),
            [PathBuf::from("/c/kernels/.tmp-b"), PathBuf::from("/c/runs/1")]
        );
        let mut done = input.clone();
        done.extend_from_slice(b"done\0");
        assert!(pending(&done).is_empty());
        // A record cut short (no NUL) is ignored: it may be a prefix of the path.
        let mut cut = input;
        cut.extend_from_slice(b"+/c");
        assert_eq!(pending(&cut).len(), 2);
    }

    #[test]
    fn serve_removes_what_is_left() {
        let tmp = tempfile::Builder::new().prefix("kharness-cleanup-").tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir_all(d.join("tree/sub")).unwrap();
        std::fs::write(d.join("tree/sub/f"), b"x").unwrap();
        std::fs::write(d.join("kept"), b"x").unwrap();
        let input = recs(&[
            (b'+', d.join("tree").to_str().unwrap()),
            (b'+', d.join("kept").to_str().unwrap()),
            (b'-', d.join("kept").to_str().unwrap()),
            (b'+', d.join("absent").to_str().unwrap()),
        ]);
        assert_eq!(serve(&input[..]), 0);
        assert!(!d.join("tree").exists());
        assert!(d.join("kept").exists());
    }
}
