//! A whole `.deb` through `extract_kernel`: ar, `data.tar.{xz,zst,gz}`
//! decompression, tar entries, the kernel path mapping, and the files it
//! writes — into a private directory under /dev/shm (or $TMPDIR) that is
//! emptied after every input. Checks that nothing is written outside it.
#![no_main]
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kharness_matrix::deb::extract_kernel;
use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("kharness-fuzz-deb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

/// Every path under `dir` (not following symlinks).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            out.push(e.path());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(&e.path(), out);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let root = scratch();
    let deb = root.join("k.deb");
    let out = root.join("out");
    std::fs::write(&deb, data).unwrap();
    // `files` counts writes, not distinct paths: a tar may hold one path twice.
    let _ = extract_kernel(&deb, &out);
    let mut written = Vec::new();
    walk(root, &mut written);
    for p in &written {
        assert!(
            p == &deb || p.starts_with(&out),
            "wrote outside the destination: {}",
            p.display()
        );
    }
    let _ = std::fs::remove_dir_all(&out);
});
