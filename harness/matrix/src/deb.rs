//! Extracting a kernel from a `.deb`, in Rust: the `ar` container (a tiny
//! hand parser), then `data.tar.{xz,zst,gz}` through the matching
//! decompressor and the `tar` crate.
//!
//! Only the kernel image and the modules tree are kept, renamed into one
//! layout whatever the suite's packaging:
//!
//! ```text
//! boot/vmlinuz-REL                  → vmlinuz          (bullseye, bookworm)
//! usr/lib/modules/REL/vmlinuz       → vmlinuz          (sid)
//! (usr/)lib/modules/REL/…           → modules/REL/…
//! ```

use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// A `.deb` that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    /// Not an ar archive, truncated, or no data member.
    #[error("{path}: not a valid .deb ({message})")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// One member of an ar archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArMember<'a> {
    /// File name (GNU `/` terminator removed).
    pub name: String,
    /// Contents.
    pub data: &'a [u8],
}

/// Parses a whole ar archive (`!<arch>\n`, 60-byte headers, 2-byte alignment).
pub fn parse_ar(bytes: &[u8]) -> Result<Vec<ArMember<'_>>, String> {
    let mut rest = bytes.strip_prefix(b"!<arch>\n").ok_or("no `!<arch>` magic")?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if rest == b"\n" {
            break;
        }
        if rest.len() < 60 {
            return Err(format!("truncated member header after {} members", out.len()));
        }
        let (h, body) = rest.split_at(60);
        let (name, size) = member_header(h)?;
        let size = usize::try_from(size).map_err(|_| format!("member `{name}` is too large"))?;
        if body.len() < size {
            return Err(format!("member `{name}` is truncated ({} of {size} bytes)", body.len()));
        }
        out.push(ArMember {
            name,
            data: &body[..size],
        });
        let next = size + (size & 1);
        rest = body.get(next..).unwrap_or(&[]);
    }
    Ok(out)
}

/// Decodes one 60-byte ar member header: its name (GNU `/` terminator
/// removed) and size.
fn member_header(h: &[u8]) -> Result<(String, u64), String> {
    if &h[58..60] != b"`\n" {
        return Err("bad member header magic".into());
    }
    let name = String::from_utf8_lossy(&h[..16])
        .trim_end()
        .trim_end_matches('/')
        .to_string();
    let size = std::str::from_utf8(&h[48..58])
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("member `{name}` has a bad size field"))?;
    Ok((name, size))
}

/// Finds the `data.tar.*` member of the ar archive `f` by reading its
/// headers only (a kernel package is tens of MB: it is never read into
/// memory whole), and leaves `f` at the member's first byte. Returns its
/// name and size.
fn find_data_member(f: &mut (impl Read + io::Seek)) -> Result<(String, u64), String> {
    let len = f.seek(io::SeekFrom::End(0)).map_err(|e| e.to_string())?;
    f.seek(io::SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let mut magic = [0u8; 8];
    if f.read_exact(&mut magic).is_err() || &magic != b"!<arch>\n" {
        return Err("no `!<arch>` magic".into());
    }
    let mut pos = 8u64;
    let mut members = 0;
    loop {
        // An odd-sized last member without its padding byte leaves `pos` one
        // past the end.
        let left = len.saturating_sub(pos);
        if left <= 1 {
            return Err("no data.tar member".into());
        }
        if left < 60 {
            return Err(format!("truncated member header after {members} members"));
        }
        let mut h = [0u8; 60];
        f.read_exact(&mut h).map_err(|e| e.to_string())?;
        let (name, size) = member_header(&h)?;
        pos += 60;
        if len - pos < size {
            return Err(format!("member `{name}` is truncated ({} of {size} bytes)", len - pos));
        }
        if name.starts_with("data.tar") {
            return Ok((name, size));
        }
        pos += size + (size & 1);
        members += 1;
        f.seek(io::SeekFrom::Start(pos.min(len))).map_err(|e| e.to_string())?;
    }
}

/// A decompressing reader for `data.tar.*` by its member name.
pub fn decompressor<'a>(name: &str, data: impl Read + 'a) -> Result<Box<dyn Read + 'a>, String> {
    Ok(match name.rsplit('.').next() {
        Some("xz") => Box::new(xz2::read::XzDecoder::new_multi_decoder(data)),
        Some("zst") => Box::new(zstd::stream::read::Decoder::new(data).map_err(|e| e.to_string())?),
        Some("gz") => Box::new(flate2::read::GzDecoder::new(data)),
        Some("tar") => Box::new(data),
        _ => return Err(format!("unknown data member compression `{name}`")),
    })
}

/// Where a package path lands in a kernel cache entry, if it is kept; the
/// release is returned for the image.
pub fn map_kernel_path(path: &Path) -> Option<(PathBuf, Option<String>)> {
    let parts: Vec<&str> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return None;
    }
    let p: &[&str] = if parts.first() == Some(&"usr") {
        &parts[1..]
    } else {
        &parts[..]
    };
    match p {
        ["boot", f] if f.starts_with("vmlinuz-") => {
            Some((PathBuf::from("vmlinuz"), Some(f["vmlinuz-".len()..].to_string())))
        }
        ["lib", "modules", rel, "vmlinuz"] => Some((PathBuf::from("vmlinuz"), Some(rel.to_string()))),
        ["lib", "modules", rel, rest @ ..] if !rest.is_empty() => {
            let mut out = PathBuf::from("modules");
            out.push(rel);
            out.extend(rest);
            Some((out, None))
        }
        _ => None,
    }
}

/// What [`extract_kernel`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// Releases named by a kernel image in the package.
    pub image_releases: Vec<String>,
    /// Releases with a modules directory.
    pub module_releases: Vec<String>,
    /// Regular files written.
    pub files: usize,
}

/// Extracts the kernel image and modules of the `.deb` at `deb` into `dest`.
pub fn extract_kernel(deb: &Path, dest: &Path) -> Result<Extracted, DebError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DebError::Io {
            path: path.clone(),
            source,
        }
    };
    let corrupt = |message: String| DebError::Corrupt {
        path: deb.to_path_buf(),
        message,
    };
    let mut file = std::fs::File::open(deb).map_err(io_err(deb))?;
    let (member, size) = find_data_member(&mut file).map_err(corrupt)?;
    let reader = decompressor(&member, io::BufReader::with_capacity(1 << 16, file.take(size))).map_err(corrupt)?;
    let mut archive = tar::Archive::new(reader);
    let mut found = Extracted::default();
    let entries = archive.entries().map_err(|e| corrupt(format!("{member}: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(format!("{member}: {e}")))?;
        let path = entry.path().map_err(|e| corrupt(e.to_string()))?.into_owned();
        let Some((rel, image_release)) = map_kernel_path(&path) else {
            continue;
        };
        if let Some(r) = image_release {
            found.image_releases.push(r);
        }
        if let Some(r) = rel.components().nth(1).filter(|_| rel.starts_with("modules")) {
            let r = r.as_os_str().to_string_lossy().into_owned();
            if !found.module_releases.contains(&r) {
                found.module_releases.push(r);
            }
        }
        let target = dest.join(&rel);
        match entry.header().entry_type() {
            tar::EntryType::Directory => std::fs::create_dir_all(&target).map_err(io_err(&target))?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
                }
                let mut out = std::fs::File::create(&target).map_err(io_err(&target))?;
                io::copy(&mut entry, &mut out).map_err(|e| corrupt(format!("{}: {e}", path.display())))?;
                found.files += 1;
            }
            _ => {} // symlinks (build, source) point outside the package
        }
    }
    Ok(found)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rstest::rstest;
    use std::io::Write;

    /// Builds an ar archive (for tests).
    pub(crate) fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut v = b"!<arch>\n".to_vec();
        for (name, data) in members {
            let h = format!(
                "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                format!("{name}/"),
                0,
                0,
                0,
                "100644",
                data.len()
            );
            assert_eq!(h.len(), 60);
            v.extend_from_slice(h.as_bytes());
            v.extend_from_slice(data);
            if data.len() % 2 == 1 {
                v.push(b'\n');
            }
        }
        v
    }

    /// Builds a tar with the given regular files (for tests).
    pub(crate) fn tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, path, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// A fresh directory, removed when the guard drops (even on a failed assertion).
    fn tmpdir(tag: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("kharness-deb-{tag}-"))
            .tempdir()
            .unwrap()
    }

    #[test]
    fn ar_members() {
        let a = ar(&[("debian-binary", b"2.0\n"), ("odd", b"abc"), ("x", b"")]);
        let m = parse_ar(&a).unwrap();
        assert_eq!(
            m.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            ["debian-binary", "odd", "x"]
        );
        assert_eq!(m[1].data, b"abc");
        assert!(parse_ar(b"garbage").is_err());
        assert!(parse_ar(&a[..a.len() - 10]).is_err());
    }

    #[test]
    fn paths() {
        let m = |p: &str| map_kernel_path(Path::new(p));
        assert_eq!(
            m("./boot/vmlinuz-6.1.0-47-cloud-amd64"),
            Some(("vmlinuz".into(), Some("6.1.0-47-cloud-amd64".into())))
        );
        assert_eq!(
            m("./usr/lib/modules/7.2.13+deb14-cloud-amd64/vmlinuz").unwrap().0,
            PathBuf::from("vmlinuz")
        );
        assert_eq!(
            m("./lib/modules/5.10.0-46-cloud-amd64/kernel/drivers/net/veth.ko"),
            Some(("modules/5.10.0-46-cloud-amd64/kernel/drivers/net/veth.ko".into(), None))
        );
        assert_eq!(m("./usr/share/doc/x/changelog.gz"), None);
        assert_eq!(m("./boot/config-6.1.0"), None);
        assert_eq!(m("./lib/modules/../../etc/passwd"), None);
    }

    #[rstest]
    #[case::xz("xz")]
    #[case::zst("zst")]
    #[case::gz("gz")]
    fn extracts_each_compression(#[case] ext: &str) {
        let files: &[(&str, &[u8])] = &[
            ("./boot/vmlinuz-9.9.9-1-cloud-amd64", b"KERNEL"),
            (
                "./lib/modules/9.9.9-1-cloud-amd64/kernel/drivers/net/veth.ko",
                b"\x7fELF-veth",
            ),
            ("./usr/share/doc/linux/copyright", b"skip me"),
        ];
        let tar = tarball(files);
        let data = match ext {
            "xz" => {
                let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
                e.write_all(&tar).unwrap();
                e.finish().unwrap()
            }
            "zst" => zstd::stream::encode_all(&tar[..], 1).unwrap(),
            "gz" => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&tar).unwrap();
                e.finish().unwrap()
            }
            _ => unreachable!("{ext}"),
        };
        let tmp = tmpdir(ext);
        let dir = tmp.path();
        let deb = dir.join("k.deb");
        let member = format!("data.tar.{ext}");
        std::fs::write(
            &deb,
            ar(&[("debian-binary", b"2.0\n"), ("control.tar.xz", b""), (&member, &data)]),
        )
        .unwrap();
        let out = dir.join("out");
        let got = extract_kernel(&deb, &out).unwrap();
        assert_eq!(got.image_releases, ["9.9.9-1-cloud-amd64"], "{ext}");
        assert_eq!(got.module_releases, ["9.9.9-1-cloud-amd64"], "{ext}");
        assert_eq!(got.files, 2);
        assert_eq!(std::fs::read(out.join("vmlinuz")).unwrap(), b"KERNEL");
        assert_eq!(
            std::fs::read(out.join("modules/9.9.9-1-cloud-amd64/kernel/drivers/net/veth.ko")).unwrap(),
            b"\x7fELF-veth"
        );
        assert!(!out.join("usr").exists());
    }

    #[test]
    fn odd_last_member_without_padding_is_an_error_not_a_panic() {
        // Reproduced by fuzz/fuzz_targets/deb_extract.rs: the member's padding byte
        // is missing at the end of the file, and `len - pos` overflowed.
        let tmp = tmpdir("odd");
        let dir = tmp.path();
        let deb = dir.join("odd.deb");
        let mut v = ar(&[("debian-binary", b"2.0")]);
        assert_eq!(v.pop(), Some(b'\n'));
        std::fs::write(&deb, &v).unwrap();
        let e = extract_kernel(&deb, &dir.join("out")).unwrap_err().to_string();
        assert!(e.contains("no data.tar member"), "{e}");
        assert_eq!(parse_ar(&v).unwrap().len(), 1);
    }

    /// The small .deb the truncation rows cut.
    fn whole_deb() -> Vec<u8> {
        ar(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar.xz", b"xx"),
            ("data.tar", &tarball(&[("boot/vmlinuz-1.0", b"k")])),
        ])
    }

    /// `keep`: the bytes kept; negative counts back from the end.
    #[rstest]
    #[case::in_the_magic(4)]
    #[case::right_after_the_magic(8)]
    #[case::in_the_first_header(30)]
    #[case::in_the_first_member(70)]
    #[case::in_the_second_header(80)]
    #[case::ten_bytes_short(-10)]
    fn truncated_deb_is_named_and_read_by_headers_only(#[case] keep: isize) {
        let tmp = tmpdir("truncated");
        let dir = tmp.path();
        let deb = dir.join("cut.deb");
        let whole = whole_deb();
        let cut = if keep < 0 {
            whole.len() - keep.unsigned_abs()
        } else {
            keep as usize
        };
        std::fs::write(&deb, &whole[..cut]).unwrap();
        let e = extract_kernel(&deb, &dir.join("out")).unwrap_err().to_string();
        assert!(
            e.contains("cut.deb") && e.contains("not a valid .deb"),
            "cut at {cut}: {e}"
        );
    }

    #[test]
    fn the_uncut_deb_of_the_truncation_rows_extracts() {
        let tmp = tmpdir("uncut");
        let dir = tmp.path();
        let deb = dir.join("cut.deb");
        std::fs::write(&deb, whole_deb()).unwrap();
        assert_eq!(extract_kernel(&deb, &dir.join("out")).unwrap().image_releases, ["1.0"]);
    }

    #[test]
    fn corrupt_deb_is_named() {
        let tmp = tmpdir("corrupt");
        let dir = tmp.path();
        let deb = dir.join("bad.deb");
        std::fs::write(
            &deb,
            ar(&[("debian-binary", b"2.0\n"), ("data.tar.xz", b"not xz at all")]),
        )
        .unwrap();
        let e = extract_kernel(&deb, &dir.join("out")).unwrap_err().to_string();
        assert!(e.contains("bad.deb") && e.contains("not a valid .deb"), "{e}");
        std::fs::write(&deb, b"<html>404</html>").unwrap();
        assert!(extract_kernel(&deb, &dir.join("out"))
            .unwrap_err()
            .to_string()
            .contains("magic"));
    }
}
