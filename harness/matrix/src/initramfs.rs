//! The guest's initramfs: the static `kharness` as `/init`, the modules in
//! load order, and the run's configuration.
//!
//! ```text
//! /init                          static kharness (PID-1 mode)
//! /etc/kharness.json             GuestConfig: filters, jobs, timeout scale, module order
//! /lib/modules/kharness/NAME.ko  decompressed modules
//! /dev/console /dev/null /dev/ttyS0 /dev/ttyS1, /proc /sys /tmp /run
//! ```

use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::cpio::CpioWriter;

/// Where the guest finds its configuration.
pub const CONFIG_PATH: &str = "/etc/kharness.json";
/// Where the guest finds its modules.
pub const MODULE_DIR: &str = "/lib/modules/kharness";
/// The serial port the results go out on.
pub const RESULTS_PORT: &str = "/dev/ttyS1";

/// What the guest is asked to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestConfig {
    /// Format version.
    pub schema: u32,
    /// Case filters (empty: every case).
    pub filters: Vec<String>,
    /// Parallel case processes.
    pub jobs: usize,
    /// Case timeout multiplier.
    pub timeout_scale: f64,
    /// Extra attempts of a failed case (`--retries`).
    #[serde(default)]
    pub retries: usize,
    /// Modules to load, in order (files `MODULE_DIR/NAME.ko`).
    pub modules: Vec<String>,
    /// Known kernel issues to apply (the built-in list and `--known-issues`).
    #[serde(default)]
    pub known_issues: Vec<kharness::known_issues::KnownIssue>,
    /// After the catalog, explore these property cases for this long
    /// (`kharness matrix --explore`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explore: Option<GuestExplore>,
}

/// `kharness matrix --explore` inside a guest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestExplore {
    /// The time budget, in milliseconds.
    pub budget_ms: u64,
    /// The property case ids to explore.
    pub cases: Vec<String>,
}

/// Writes the initramfs to `out`, with the file `init` as `/init` (copied
/// through, never held in memory); returns its size in bytes.
pub fn build(out: &Path, init: &Path, modules: &[(String, Vec<u8>)], config: &GuestConfig) -> io::Result<u64> {
    let mut init_file =
        std::fs::File::open(init).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", init.display())))?;
    let init_len = init_file.metadata()?.len();
    let file = std::fs::File::create(out)?;
    let mut w = CpioWriter::new(BufWriter::with_capacity(1 << 20, file));
    for d in [
        "dev",
        "proc",
        "sys",
        "tmp",
        "run",
        "etc",
        "lib",
        "lib/modules",
        "lib/modules/kharness",
    ] {
        w.dir(d)?;
    }
    w.char_device("dev/console", 0o600, 5, 1)?;
    w.char_device("dev/null", 0o666, 1, 3)?;
    w.char_device("dev/ttyS0", 0o600, 4, 64)?;
    w.char_device("dev/ttyS1", 0o600, 4, 65)?;
    w.file_from("init", 0o755, init_len, &mut init_file)?;
    let json = serde_json::to_vec_pretty(config).map_err(io::Error::other)?;
    w.file(CONFIG_PATH, 0o644, &json)?;
    for (name, bytes) in modules {
        w.file(&format!("{MODULE_DIR}/{name}.ko"), 0o644, bytes)?;
    }
    let mut inner = w.finish()?;
    inner.flush()?;
    let file = inner.into_inner().map_err(|e| e.into_error())?;
    Ok(file.metadata()?.len())
}

/// Whether the ELF file at `path` is statically linked (no `PT_INTERP`).
pub fn is_static(path: &Path) -> io::Result<bool> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut head = vec![0u8; 64];
    f.read_exact(&mut head)?;
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a 64-bit ELF executable", path.display()),
        )
    };
    if &head[..4] != b"\x7fELF" || head[4] != 2 || head[5] != 1 {
        return Err(bad());
    }
    let u16_at = |o: usize| u16::from_le_bytes([head[o], head[o + 1]]) as u64;
    let phoff = u64::from_le_bytes(head[0x20..0x28].try_into().map_err(|_| bad())?);
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    if phentsize < 4 || phnum > 4096 {
        return Err(bad());
    }
    let mut ph = vec![0u8; (phentsize * phnum) as usize];
    use std::io::Seek;
    f.seek(io::SeekFrom::Start(phoff))?;
    f.read_exact(&mut ph)?;
    const PT_INTERP: u32 = 3;
    Ok(!ph
        .chunks(phentsize as usize)
        .any(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]]) == PT_INTERP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio;

    #[test]
    fn layout() {
        let tmp = tempfile::Builder::new()
            .prefix("kharness-initramfs-")
            .tempdir()
            .unwrap();
        let dir = tmp.path();
        let out = dir.join("initramfs.cpio");
        let cfg = GuestConfig {
            schema: 1,
            filters: vec!["tcp".into()],
            jobs: 1,
            timeout_scale: 8.0,
            retries: 0,
            known_issues: Vec::new(),
            modules: vec!["veth".into()],
            explore: None,
        };
        let init = dir.join("init");
        std::fs::write(&init, b"\x7fELFinit").unwrap();
        let size = build(&out, &init, &[("veth".into(), b"\x7fELFveth".to_vec())], &cfg).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(size, bytes.len() as u64);
        let entries = cpio::read(&bytes).unwrap();
        let find = |n: &str| entries.iter().find(|e| e.name == n).unwrap_or_else(|| panic!("{n}"));
        assert_eq!(find("init").data, b"\x7fELFinit");
        assert_eq!(find("init").mode & 0o777, 0o755);
        assert_eq!(find("lib/modules/kharness/veth.ko").data, b"\x7fELFveth");
        assert_eq!(find("dev/ttyS1").rdev, (4, 65));
        let back: GuestConfig = serde_json::from_slice(&find("etc/kharness.json").data).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn static_detection() {
        // The test binary is linked like a normal build: dynamically.
        let exe = std::env::current_exe().unwrap();
        let dynamic = !is_static(&exe).unwrap();
        let crt_static = cfg!(target_feature = "crt-static");
        assert_eq!(dynamic, !crt_static);
        assert!(is_static(Path::new("/proc/self/status")).is_err());
    }
}
