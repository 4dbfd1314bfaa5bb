//! Kernel modules for the guest: finding them in a modules tree, their
//! dependency closure, and decompressing them on the host.
//!
//! Dependencies come from `modules.dep` when the tree has one (a kernel
//! installed with `make modules_install`), otherwise from each module's
//! `depends=` in its `.modinfo` ELF section (Debian's packages ship no
//! `modules.dep`). Modules are decompressed here because 5.10 cannot load
//! compressed modules and the guest has no decompressor of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection};

/// Module name as the kernel knows it: file stem, `-` → `_`.
pub fn module_name(file: &str) -> Option<String> {
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))?;
    Some(stem.replace('-', "_"))
}

/// The `key=value` strings of a module's `.modinfo` section.
pub fn modinfo(elf: &[u8]) -> Result<Vec<(String, String)>, String> {
    let file = object::File::parse(elf).map_err(|e| format!("not an ELF module: {e}"))?;
    let section = file.section_by_name(".modinfo").ok_or("no .modinfo section")?;
    let data = section.data().map_err(|e| e.to_string())?;
    Ok(data
        .split(|b| *b == 0)
        .filter_map(|s| std::str::from_utf8(s).ok())
        .filter_map(|s| s.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// The module's `depends=` list (names, `-` → `_`).
pub fn depends(elf: &[u8]) -> Result<Vec<String>, String> {
    Ok(modinfo(elf)?
        .into_iter()
        .filter(|(k, _)| k == "depends")
        .flat_map(|(_, v)| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.replace('-', "_"))
                .collect::<Vec<_>>()
        })
        .collect())
}

/// Reads a module file, decompressing `.ko.xz`, `.ko.zst` and `.ko.gz`.
pub fn read_module(path: &Path) -> std::io::Result<Vec<u8>> {
    let raw = std::fs::read(path)?;
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = Vec::new();
    if name.ends_with(".xz") {
        xz2::read::XzDecoder::new_multi_decoder(&raw[..]).read_to_end(&mut out)?;
    } else if name.ends_with(".zst") {
        zstd::stream::read::Decoder::new(&raw[..])?.read_to_end(&mut out)?;
    } else if name.ends_with(".gz") {
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out)?;
    } else {
        return Ok(raw);
    }
    Ok(out)
}

/// A module's state in a tree.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum ModuleState {
    /// Will be loaded from the initramfs.
    Load,
    /// Built into the kernel (`modules.builtin`).
    Builtin,
    /// Neither a module file nor built in: why.
    Missing(String),
    /// No module file, and no `modules.builtin` to tell whether it is built in.
    Unknown,
}

/// Modules to load, in dependency order, with their (decompressed) bytes.
#[derive(Debug, Default)]
pub struct Closure {
    /// (name, ELF bytes), dependencies before dependents.
    pub load: Vec<(String, Vec<u8>)>,
    /// Every module asked for or needed, with its state.
    pub states: BTreeMap<String, ModuleState>,
}

/// A `lib/modules/REL` directory.
#[derive(Debug)]
pub struct ModuleTree {
    files: BTreeMap<String, PathBuf>,
    builtin: BTreeSet<String>,
    has_builtin_list: bool,
    dep: Option<BTreeMap<String, Vec<String>>>,
}

impl ModuleTree {
    /// Indexes every module file under `root` (and reads `modules.builtin`,
    /// `modules.dep` when present).
    pub fn open(root: &Path) -> std::io::Result<ModuleTree> {
        let mut files = BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir)? {
                let e = e?;
                let p = e.path();
                let ft = e.file_type()?;
                if ft.is_dir() {
                    stack.push(p);
                } else if let Some(n) = module_name(&e.file_name().to_string_lossy()) {
                    files.entry(n).or_insert(p);
                }
            }
        }
        let names = |text: String| -> BTreeSet<String> {
            text.lines()
                .filter_map(|l| l.rsplit('/').next())
                .filter_map(module_name)
                .collect()
        };
        let builtin_text = std::fs::read_to_string(root.join("modules.builtin")).ok();
        let has_builtin_list = builtin_text.is_some();
        let builtin = builtin_text.map(names).unwrap_or_default();
        let dep = std::fs::read_to_string(root.join("modules.dep"))
            .ok()
            .map(|t| parse_modules_dep(&t));
        Ok(ModuleTree {
            files,
            builtin,
            has_builtin_list,
            dep,
        })
    }

    /// Number of module files indexed.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether the tree holds no module files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The wanted modules and the closure of their dependencies.
    pub fn closure(&self, wanted: &[String]) -> Closure {
        let mut c = Closure::default();
        let mut visiting = BTreeSet::new();
        for w in wanted {
            self.visit(&w.replace('-', "_"), &mut c, &mut visiting);
        }
        c
    }

    fn visit(&self, name: &str, c: &mut Closure, visiting: &mut BTreeSet<String>) {
        if c.states.contains_key(name) || !visiting.insert(name.to_string()) {
            return;
        }
        let state = match self.files.get(name) {
            None if self.builtin.contains(name) => ModuleState::Builtin,
            None if self.files.is_empty() => ModuleState::Missing("the kernel ships no modules".into()),
            // Without modules.builtin (sid's packages have none) a module
            // that is not a file may well be built in: say so, don't guess.
            None if !self.has_builtin_list => ModuleState::Unknown,
            None => ModuleState::Missing("neither a module of this kernel nor built in (modules.builtin)".into()),
            Some(path) => match read_module(path) {
                Err(e) => ModuleState::Missing(format!("cannot read {}: {e}", path.display())),
                Ok(bytes) => {
                    let deps = match self.dep.as_ref().and_then(|d| d.get(name)) {
                        Some(d) => Ok(d.clone()),
                        None => depends(&bytes),
                    };
                    match deps {
                        Err(e) => ModuleState::Missing(format!("{}: {e}", path.display())),
                        Ok(deps) => {
                            for d in &deps {
                                self.visit(d, c, visiting);
                            }
                            let missing: Vec<&String> = deps
                                .iter()
                                .filter(|d| matches!(c.states.get(*d), Some(ModuleState::Missing(_))))
                                .collect();
                            if missing.is_empty() {
                                c.load.push((name.to_string(), bytes));
                                ModuleState::Load
                            } else {
                                ModuleState::Missing(format!(
                                    "needs {} which is missing",
                                    missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                                ))
                            }
                        }
                    }
                }
            },
        };
        c.states.insert(name.to_string(), state);
    }
}

/// `kernel/a.ko: kernel/b.ko kernel/c.ko` → {a: [b, c]}.
pub fn parse_modules_dep(text: &str) -> BTreeMap<String, Vec<String>> {
    let base = |p: &str| p.rsplit('/').next().and_then(module_name);
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .filter_map(|(m, deps)| Some((base(m.trim())?, deps.split_whitespace().filter_map(base).collect())))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A minimal ELF64 relocatable with a `.modinfo` section holding `info`
    /// (NUL-separated `key=value`), like a kernel module.
    pub(crate) fn fake_module(info: &[&str]) -> Vec<u8> {
        let mut modinfo = Vec::new();
        for s in info {
            modinfo.extend_from_slice(s.as_bytes());
            modinfo.push(0);
        }
        let shstrtab = b"\0.modinfo\0.shstrtab\0".to_vec();
        let data_off = 64u64;
        let shstr_off = data_off + modinfo.len() as u64;
        let sh_off = (shstr_off + shstrtab.len() as u64 + 7) & !7;
        let mut v = Vec::new();
        // ELF header
        v.extend_from_slice(b"\x7fELF\x02\x01\x01\0");
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&1u16.to_le_bytes()); // ET_REL
        v.extend_from_slice(&62u16.to_le_bytes()); // x86-64
        v.extend_from_slice(&1u32.to_le_bytes());
        v.extend_from_slice(&0u64.to_le_bytes()); // entry
        v.extend_from_slice(&0u64.to_le_bytes()); // phoff
        v.extend_from_slice(&sh_off.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes()); // flags
        v.extend_from_slice(&64u16.to_le_bytes()); // ehsize
        v.extend_from_slice(&0u16.to_le_bytes());
        v.extend_from_slice(&0u16.to_le_bytes());
        v.extend_from_slice(&64u16.to_le_bytes()); // shentsize
        v.extend_from_slice(&3u16.to_le_bytes()); // shnum
        v.extend_from_slice(&2u16.to_le_bytes()); // shstrndx
        v.extend_from_slice(&modinfo);
        v.extend_from_slice(&shstrtab);
        v.resize(sh_off as usize, 0);
        let sh = |v: &mut Vec<u8>, name: u32, ty: u32, off: u64, size: u64| {
            v.extend_from_slice(&name.to_le_bytes());
            v.extend_from_slice(&ty.to_le_bytes());
            v.extend_from_slice(&0u64.to_le_bytes()); // flags
            v.extend_from_slice(&0u64.to_le_bytes()); // addr
            v.extend_from_slice(&off.to_le_bytes());
            v.extend_from_slice(&size.to_le_bytes());
            v.extend_from_slice(&0u32.to_le_bytes());
            v.extend_from_slice(&0u32.to_le_bytes());
            v.extend_from_slice(&1u64.to_le_bytes());
            v.extend_from_slice(&0u64.to_le_bytes());
        };
        sh(&mut v, 0, 0, 0, 0);
        sh(&mut v, 1, 1, data_off, modinfo.len() as u64);
        sh(&mut v, 10, 3, shstr_off, shstrtab.len() as u64);
        v
    }

    #[test]
    fn reads_depends_from_modinfo() {
        let m = fake_module(&[
            "license=GPL",
            "depends=udp_tunnel,ip6_udp_tunnel,libcrc32c",
            "name=sctp",
        ]);
        assert_eq!(depends(&m).unwrap(), ["udp_tunnel", "ip6_udp_tunnel", "libcrc32c"]);
        assert!(depends(&fake_module(&["depends="])).unwrap().is_empty());
        assert!(depends(b"not elf").is_err());
    }

    #[test]
    fn closure_in_dependency_order() {
        let tmp = tempfile::Builder::new().prefix("kharness-mods-").tempdir().unwrap();
        let root = tmp.path();
        let net = root.join("kernel/net");
        std::fs::create_dir_all(&net).unwrap();
        std::fs::write(net.join("sctp.ko"), fake_module(&["depends=udp_tunnel,libcrc32c"])).unwrap();
        // Compressed, as 6.12 and 7.2 ship them.
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&fake_module(&["depends=libcrc32c"])).unwrap();
        std::fs::write(net.join("udp_tunnel.ko.xz"), xz.finish().unwrap()).unwrap();
        std::fs::write(net.join("libcrc32c.ko"), fake_module(&["depends="])).unwrap();
        std::fs::write(net.join("needs-gone.ko"), fake_module(&["depends=gone"])).unwrap();
        std::fs::write(root.join("modules.builtin"), "kernel/drivers/net/veth.ko\n").unwrap();
        let tree = ModuleTree::open(root).unwrap();
        assert_eq!(tree.len(), 4);
        let c = tree.closure(&["sctp".into(), "veth".into(), "nosuch".into(), "needs_gone".into()]);
        let order: Vec<&str> = c.load.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(order, ["libcrc32c", "udp_tunnel", "sctp"]);
        assert!(c.load[1].1.starts_with(b"\x7fELF"), "decompressed");
        assert_eq!(c.states["veth"], ModuleState::Builtin);
        assert!(matches!(&c.states["nosuch"], ModuleState::Missing(_)));
        assert!(matches!(&c.states["needs_gone"], ModuleState::Missing(m) if m.contains("gone")));
        std::fs::remove_file(root.join("modules.builtin")).unwrap();
        let c = ModuleTree::open(root).unwrap().closure(&["veth".into()]);
        assert_eq!(c.states["veth"], ModuleState::Unknown);
        std::fs::write(root.join("modules.builtin"), "kernel/drivers/net/veth.ko\n").unwrap();

        // modules.dep, when present, wins over .modinfo.
        std::fs::write(
            root.join("modules.dep"),
            "kernel/net/sctp.ko: kernel/net/libcrc32c.ko\nkernel/net/libcrc32c.ko:\n",
        )
        .unwrap();
        let c = ModuleTree::open(root).unwrap().closure(&["sctp".into()]);
        assert_eq!(
            c.load.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["libcrc32c", "sctp"]
        );
    }
}
