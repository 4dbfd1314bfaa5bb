//! The kernel list (`fixtures/kernels.toml`): parsing and validation.
//!
//! The whole file is checked before anything is fetched or booted; every
//! message names the kernel entry it is about.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The kernel list and the modules the catalog needs.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixConfig {
    /// Modules to load in every guest (dependencies are added).
    pub modules: Vec<String>,
    /// The kernels, in table order.
    pub kernels: Vec<KernelSpec>,
}

/// One column of the matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelSpec {
    /// Short name (`5.10`, `host`), unique in the list.
    pub name: String,
    /// One line for the report.
    pub description: String,
    /// Where the kernel comes from.
    pub source: KernelSource,
    /// Run only when asked for by name or with `all` (not in the default set).
    pub extra: bool,
}

/// Where a kernel comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum KernelSource {
    /// The running kernel, natively.
    Host,
    /// A Debian package resolved from the archive's index.
    Debian(DebianSpec),
    /// A kernel image (and modules tree) on disk, e.g. one just built.
    Custom {
        /// `arch/x86/boot/bzImage` or a vmlinuz.
        image: PathBuf,
        /// `lib/modules/VER` (after `make modules_install`), if any.
        modules: Option<PathBuf>,
    },
}

/// How to find a Debian kernel in the index.
#[derive(Debug, Clone, PartialEq)]
pub struct DebianSpec {
    /// Suites searched (`bookworm`, `bookworm-security`).
    pub suites: Vec<String>,
    /// Image package patterns, preferred first.
    pub image: Vec<String>,
    /// Separate modules package pattern (its `*` is the image's capture).
    pub modules_package: Option<String>,
    /// Expected `uname -r` pattern.
    pub release: String,
}

/// A problem with the kernel list.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the kernel list {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax or an unknown/missing field.
    #[error("kernel list {path} is not valid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A field has a value that cannot work.
    #[error("kernel list {path}, kernel `{kernel}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The entry.
        kernel: String,
        /// What is wrong and what to do.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    schema: u32,
    #[serde(default)]
    modules: Vec<String>,
    #[serde(rename = "kernel", default)]
    kernels: Vec<RawKernel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKernel {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    host: bool,
    #[serde(default)]
    suites: Vec<String>,
    #[serde(default)]
    image: Vec<String>,
    #[serde(default)]
    modules_package: Option<String>,
    #[serde(default)]
    release: Option<String>,
    #[serde(default)]
    extra: bool,
}

impl MatrixConfig {
    /// Reads and validates a kernel list file.
    pub fn load(path: &Path) -> Result<MatrixConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        MatrixConfig::parse(&text, path)
    }

    /// Parses and validates the text of a kernel list (`path` is for messages).
    pub fn parse(text: &str, path: &Path) -> Result<MatrixConfig, ConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().to_string(),
        })?;
        let invalid = |kernel: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            kernel: kernel.to_string(),
            message,
        };
        if raw.schema != 1 {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!(
                    "schema {} is not understood by this kharness (it reads schema 1)",
                    raw.schema
                ),
            });
        }
        for m in &raw.modules {
            if m.is_empty() || !m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(invalid("(modules)", format!("`{m}` is not a module name")));
            }
        }
        let mut kernels = Vec::new();
        for k in raw.kernels {
            validate_name(&k.name).map_err(|m| invalid(&k.name, m))?;
            if k.name == "all" {
                return Err(invalid(
                    &k.name,
                    "`all` is reserved (`kharness matrix all` runs every kernel); choose another name".into(),
                ));
            }
            if kernels.iter().any(|o: &KernelSpec| o.name == k.name) {
                return Err(invalid(&k.name, "appears twice; kernel names must be unique".into()));
            }
            let debian_fields =
                !k.suites.is_empty() || !k.image.is_empty() || k.modules_package.is_some() || k.release.is_some();
            let source = if k.host {
                if debian_fields {
                    return Err(invalid(
                        &k.name,
                        "`host = true` takes no suites/image/modules_package/release".into(),
                    ));
                }
                KernelSource::Host
            } else {
                if k.suites.is_empty() {
                    return Err(invalid(
                        &k.name,
                        "no `suites`; list the Debian suites to search (e.g. [\"bookworm\"]), or set `host = true`"
                            .into(),
                    ));
                }
                if let Some(s) = k
                    .suites
                    .iter()
                    .find(|s| s.is_empty() || s.contains(char::is_whitespace) || s.contains('/'))
                {
                    return Err(invalid(&k.name, format!("suite `{s}` is not a suite name")));
                }
                if k.image.is_empty() {
                    return Err(invalid(
                        &k.name,
                        "no `image` patterns; give at least one, e.g. \"linux-image-6.1.0-*-cloud-amd64\"".into(),
                    ));
                }
                for p in k.image.iter().chain(k.modules_package.iter()) {
                    if p.matches('*').count() != 1
                        || !p.chars().all(|c| c.is_ascii_alphanumeric() || "-.+*".contains(c))
                    {
                        return Err(invalid(
                            &k.name,
                            format!("package pattern `{p}` must be a package name with exactly one `*`"),
                        ));
                    }
                }
                let release = k.release.ok_or_else(|| {
                    invalid(
                        &k.name,
                        "no `release` pattern (the `uname -r` the package must contain)".into(),
                    )
                })?;
                if release.matches('*').count() > 1 || release.is_empty() {
                    return Err(invalid(
                        &k.name,
                        format!("release pattern `{release}` may have at most one `*`"),
                    ));
                }
                KernelSource::Debian(DebianSpec {
                    suites: k.suites,
                    image: k.image,
                    modules_package: k.modules_package,
                    release,
                })
            };
            let description = k.description.unwrap_or_else(|| match &source {
                KernelSource::Host => "the running kernel".into(),
                _ => format!("Debian kernel {}", k.name),
            });
            kernels.push(KernelSpec {
                name: k.name,
                description,
                source,
                extra: k.extra,
            });
        }
        if kernels.is_empty() {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                message: "no [[kernel]] entries".into(),
            });
        }
        Ok(MatrixConfig {
            modules: raw.modules,
            kernels,
        })
    }

    /// Every suite any Debian kernel searches, in first-use order.
    pub fn suites(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for k in &self.kernels {
            if let KernelSource::Debian(d) = &k.source {
                for s in &d.suites {
                    if !out.contains(s) {
                        out.push(s.clone());
                    }
                }
            }
        }
        out
    }
}

/// Kernel names are short and safe as file names: letters, digits, `._-`.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 40 {
        return Err("a kernel name must have 1 to 40 characters".into());
    }
    if name.starts_with('.') || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        return Err(format!(
            "kernel name `{name}` may only use letters, digits, `.`, `_` and `-`"
        ));
    }
    Ok(())
}

/// Matches `text` against a pattern with at most one `*`; the `*` matches a
/// run of characters without `-`. Returns what the `*` matched (empty when
/// the pattern has none).
pub fn capture<'a>(pattern: &str, text: &'a str) -> Option<&'a str> {
    match pattern.split_once('*') {
        None => (pattern == text).then_some(""),
        Some((pre, post)) => {
            let rest = text.strip_prefix(pre)?;
            let mid = rest.strip_suffix(post)?;
            (!mid.is_empty() && !mid.contains('-')).then_some(mid)
        }
    }
}

/// A pattern's `*` replaced by `with`.
pub fn fill(pattern: &str, with: &str) -> String {
    pattern.replacen('*', with, 1)
}

/// Deterministic shard selection: the `i`-th of `n` shards (1-based) takes
/// the kernels at list positions `p` with `p % n == i - 1`.
pub fn shard<T: Clone>(items: &[T], i: usize, n: usize) -> Vec<T> {
    items
        .iter()
        .enumerate()
        .filter(|(p, _)| n > 0 && p % n == i.wrapping_sub(1))
        .map(|(_, t)| t.clone())
        .collect()
}

/// Parses `I/N` (1 ≤ I ≤ N).
pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let err = || format!("--shard `{s}`: give I/N with 1 ≤ I ≤ N, e.g. 1/2");
    let (i, n) = s.split_once('/').ok_or_else(err)?;
    let i: usize = i.trim().parse().map_err(|_| err())?;
    let n: usize = n.trim().parse().map_err(|_| err())?;
    if i == 0 || n == 0 || i > n {
        return Err(err());
    }
    Ok((i, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn parse(text: &str) -> Result<MatrixConfig, ConfigError> {
        MatrixConfig::parse(text, Path::new("k.toml"))
    }

    #[test]
    fn shipped_list_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/kernels.toml");
        let cfg = MatrixConfig::load(&path).unwrap();
        let names: Vec<&str> = cfg.kernels.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(
            names,
            ["5.10", "6.1", "6.12", "7.2", "6.1-rt", "6.12-rt", "7.2-rt", "host"]
        );
        let default: Vec<&str> = cfg
            .kernels
            .iter()
            .filter(|k| !k.extra)
            .map(|k| k.name.as_str())
            .collect();
        assert_eq!(default, ["5.10", "6.1", "6.12", "7.2", "host"]);
        assert!(parse("schema = 1\n[[kernel]]\nname = \"all\"\nhost = true\n")
            .unwrap_err()
            .to_string()
            .contains("reserved"));
        assert!(cfg.modules.iter().any(|m| m == "veth") && cfg.modules.iter().any(|m| m == "sctp"));
        assert_eq!(
            cfg.suites(),
            ["bullseye", "bullseye-security", "bookworm", "bookworm-security", "sid"]
        );
        let KernelSource::Debian(d) = &cfg.kernels[3].source else {
            panic!()
        };
        assert_eq!(d.modules_package.as_deref(), Some("linux-modules-7.2.*-cloud-amd64"));
    }

    #[rstest]
    #[case::host_with_suites("[[kernel]]\nname = \"a\"\nhost = true\nsuites = [\"sid\"]\n", "takes no")]
    #[case::no_suites("[[kernel]]\nname = \"a\"\nimage = [\"x-*\"]\nrelease = \"1\"\n", "no `suites`")]
    #[case::no_image("[[kernel]]\nname = \"a\"\nsuites = [\"sid\"]\nrelease = \"1\"\n", "no `image`")]
    #[case::image_without_star(
        "[[kernel]]\nname = \"a\"\nsuites = [\"sid\"]\nimage = [\"x\"]\nrelease = \"1\"\n",
        "exactly one `*`"
    )]
    #[case::no_release("[[kernel]]\nname = \"a\"\nsuites = [\"sid\"]\nimage = [\"x-*\"]\n", "no `release`")]
    #[case::bad_name("[[kernel]]\nname = \"a b\"\nhost = true\n", "may only use")]
    #[case::same_name_twice(
        "[[kernel]]\nname = \"a\"\nhost = true\n[[kernel]]\nname = \"a\"\nhost = true\n",
        "twice"
    )]
    #[case::unknown_field("[[kernel]]\nname = \"a\"\nhost = true\ncolour = 1\n", "unknown field")]
    #[case::no_kernel("", "no [[kernel]]")]
    fn rejects_bad_entries(#[case] body: &str, #[case] want: &str) {
        let e = parse(&format!("schema = 1\n{body}")).unwrap_err().to_string();
        assert!(e.contains(want), "{body:?}: {e}");
    }

    #[test]
    fn rejects_another_schema_and_names_the_bad_kernel() {
        assert!(parse("schema = 2\n[[kernel]]\nname=\"h\"\nhost=true\n")
            .unwrap_err()
            .to_string()
            .contains("schema 2"));
        let e = parse("schema = 1\n[[kernel]]\nname = \"x1\"\nsuites = [\"sid\"]\nimage = [\"x\"]\nrelease = \"1\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("kernel `x1`"), "{e}");
    }

    #[test]
    fn patterns() {
        assert_eq!(
            capture("linux-image-5.10.0-*-cloud-amd64", "linux-image-5.10.0-46-cloud-amd64"),
            Some("46")
        );
        assert_eq!(
            capture(
                "linux-image-5.10.0-*-cloud-amd64",
                "linux-image-5.10.0-46-cloud-amd64-unsigned"
            ),
            None
        );
        assert_eq!(
            capture(
                "linux-image-5.10.0-*-cloud-amd64",
                "linux-image-5.10.0-46-rt-cloud-amd64"
            ),
            None
        );
        assert_eq!(
            capture(
                "linux-binary-7.2.*-cloud-amd64",
                "linux-binary-7.2.13+deb14-cloud-amd64"
            ),
            Some("13+deb14")
        );
        assert_eq!(
            capture(
                "linux-binary-7.2.*-cloud-amd64",
                "linux-binary-unsigned-7.2.13+deb14-cloud-amd64"
            ),
            None
        );
        assert_eq!(capture("abc", "abc"), Some(""));
        assert_eq!(
            fill("linux-modules-7.2.*-cloud-amd64", "13+deb14"),
            "linux-modules-7.2.13+deb14-cloud-amd64"
        );
    }

    #[test]
    fn shards_partition_the_list() {
        let items: Vec<u32> = (0..5).collect();
        assert_eq!(shard(&items, 1, 2), [0, 2, 4]);
        assert_eq!(shard(&items, 2, 2), [1, 3]);
        let mut all: Vec<u32> = (1..=3).flat_map(|i| shard(&items, i, 3)).collect();
        all.sort();
        assert_eq!(all, items);
        assert_eq!(shard(&items, 5, 5), [4]);
        assert!(shard(&items, 6, 6).is_empty());
        assert_eq!(parse_shard("2/4"), Ok((2, 4)));
    }

    #[rstest]
    #[case::zero_index("0/2")]
    #[case::index_past_count("3/2")]
    #[case::no_count("1")]
    #[case::not_numbers("a/b")]
    #[case::zero_count("1/0")]
    fn bad_shards_are_refused(#[case] bad: &str) {
        assert!(parse_shard(bad).is_err(), "{bad}");
    }
}
