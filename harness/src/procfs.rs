//! Parsers for the per-namespace MIB counter files and a snapshot/delta type.
//!
//! The files are read through `/proc/thread-self/net/…`, which shows the
//! network namespace of the *calling thread*. `/proc/net` is a link to
//! `/proc/self/net`, the namespace of the thread group leader, which is the
//! wrong one from a thread that has `setns`'d.
//!
//! Formats (`net/ipv4/proc.c`, `net/ipv6/proc.c`):
//! - `snmp` and `netstat`: pairs of lines, `Proto: Name1 Name2 …` then
//!   `Proto: v1 v2 …`.
//! - `snmp6`: one `Name value` per line.
//!
//! Keys are `Proto.Name` (`Tcp.OutRsts`, `TcpExt.IPReversePathFilter`,
//! `Ip6.InReceives`).

use std::collections::BTreeMap;
use std::fmt;

/// A parse failure, naming the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed MIB file at line {line}: {what}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub what: String,
}

/// Counters by `Proto.Name`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mib(pub BTreeMap<String, i64>);

impl Mib {
    /// A counter by key, `None` if the kernel does not export it.
    pub fn get(&self, key: &str) -> Option<i64> {
        self.0.get(key).copied()
    }

    /// Adds every counter of `other` (later files win on duplicate keys).
    pub fn merge(&mut self, other: Mib) {
        self.0.extend(other.0);
    }

    /// `after - self` for every key present in both, skipping zeros.
    /// Gauges such as `Tcp.CurrEstab` can go down, so deltas are signed; a
    /// difference beyond `i64` saturates.
    pub fn delta(&self, after: &Mib) -> BTreeMap<String, i64> {
        after
            .0
            .iter()
            .filter_map(|(k, v)| {
                let before = self.0.get(k).copied().unwrap_or(0);
                let d = v.saturating_sub(before);
                (d != 0).then(|| (k.clone(), d))
            })
            .collect()
    }
}

impl fmt::Display for Mib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.0 {
            writeln!(f, "{k} {v}")?;
        }
        Ok(())
    }
}

/// Parses `snmp` / `netstat` (header line, value line, per protocol).
pub fn parse_paired(text: &str) -> Result<Mib, ParseError> {
    let mut out = BTreeMap::new();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() % 2 != 0 {
        return Err(ParseError {
            line: lines.len(),
            what: "odd number of lines".into(),
        });
    }
    for (pair, chunk) in lines.chunks(2).enumerate() {
        let line = pair * 2 + 1;
        let (hp, hnames) = split_proto(chunk[0]).ok_or_else(|| ParseError {
            line,
            what: "missing `Proto:` prefix".into(),
        })?;
        let (vp, vvals) = split_proto(chunk[1]).ok_or_else(|| ParseError {
            line: line + 1,
            what: "missing `Proto:` prefix".into(),
        })?;
        if hp != vp {
            return Err(ParseError {
                line: line + 1,
                what: format!("header is for {hp} but values are for {vp}"),
            });
        }
        let names: Vec<&str> = hnames.split_whitespace().collect();
        let vals: Vec<&str> = vvals.split_whitespace().collect();
        if names.len() != vals.len() {
            return Err(ParseError {
                line: line + 1,
                what: format!("{hp}: {} names but {} values", names.len(), vals.len()),
            });
        }
        for (n, v) in names.iter().zip(vals) {
            let v: i64 = v.parse().map_err(|_| ParseError {
                line: line + 1,
                what: format!("{hp}.{n}: `{v}` is not a number"),
            })?;
            out.insert(format!("{hp}.{n}"), v);
        }
    }
    Ok(Mib(out))
}

/// Parses `snmp6` (`Name value` per line). Keys keep the kernel's names
/// (`Ip6InReceives`) under the `Ip6`/`Icmp6`/`Udp6`/`UdpLite6` prefix split
/// off: `Ip6.InReceives`.
pub fn parse_snmp6(text: &str) -> Result<Mib, ParseError> {
    let mut out = BTreeMap::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let mut it = l.split_whitespace();
        let (Some(name), Some(val), None) = (it.next(), it.next(), it.next()) else {
            return Err(ParseError {
                line: i + 1,
                what: "expected `Name value`".into(),
            });
        };
        let v: i64 = val.parse().map_err(|_| ParseError {
            line: i + 1,
            what: format!("{name}: `{val}` is not a number"),
        })?;
        let key = ["UdpLite6", "Icmp6", "Udp6", "Ip6"]
            .iter()
            .find_map(|p| name.strip_prefix(p).map(|rest| format!("{p}.{rest}")))
            .unwrap_or_else(|| name.to_string());
        out.insert(key, v);
    }
    Ok(Mib(out))
}

fn split_proto(line: &str) -> Option<(&str, &str)> {
    let (p, rest) = line.split_once(':')?;
    if p.is_empty() || p.contains(char::is_whitespace) {
        return None;
    }
    Some((p, rest))
}

/// Reads snmp + netstat + snmp6 of the calling thread's network namespace.
/// Call it from inside the namespace (see [`crate::netns::NetNs::run`]).
/// A missing `snmp6` (IPv6 disabled) is not an error.
pub fn read_thread_mib() -> std::io::Result<Mib> {
    MibFiles::open_here()?.read()
}

/// The files of the MIB, and whether each is in the paired-line format
/// (`snmp6` is one `name value` per line, and absent without IPv6).
const MIB_FILES: [(&str, bool); 3] = [("snmp", true), ("netstat", true), ("snmp6", false)];

/// The MIB files of one namespace, opened once inside it and read again
/// from offset 0 whenever the counters are wanted.
///
/// A `/proc/net` file stays bound to the namespace it was opened in
/// (`seq_open_net` takes the namespace when the file is opened), and a
/// read at offset 0 makes seq_file generate the text afresh, so a read from
/// any thread sees the counters of that namespace as they are now. Reading
/// this way takes two `pread`s per file, where opening the files on a
/// thread that enters the namespace costs a thread, a `setns`, and an
/// `openat`, a `statx`, several `read`s and a `close` per file: in a TCG
/// guest, where every system call and page fault is emulated, that was a
/// large share of the cases' CPU time (`raw.verdict_property` reads the MIB
/// a few hundred times).
#[derive(Debug)]
pub struct MibFiles {
    files: Vec<(&'static str, bool, std::fs::File)>,
    // One reader at a time: seq_file keeps a read position per open file.
    buf: std::sync::Mutex<Vec<u8>>,
}

impl MibFiles {
    /// Opens the calling thread's namespace's MIB files
    /// (`/proc/thread-self/net/…`); `snmp6` is skipped where IPv6 is absent.
    pub fn open_here() -> std::io::Result<MibFiles> {
        let mut files = Vec::new();
        for (file, paired) in MIB_FILES {
            let path = format!("/proc/thread-self/net/{file}");
            match std::fs::File::open(&path) {
                Ok(f) => files.push((file, paired, f)),
                Err(e) if file == "snmp6" && e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(std::io::Error::new(e.kind(), format!("{path}: {e}"))),
            }
        }
        Ok(MibFiles {
            files,
            buf: std::sync::Mutex::new(vec![0; 32 << 10]),
        })
    }

    /// Every counter, as the kernel reports it now.
    pub fn read(&self) -> std::io::Result<Mib> {
        use std::os::unix::fs::FileExt;
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        let mut mib = Mib::default();
        for (file, paired, f) in &self.files {
            // The buffer keeps its full, initialised length from read to
            // read; `filled` is what this read has put in it.
            let mut filled = 0;
            loop {
                if filled == buf.len() {
                    let grown = filled + filled.max(16 << 10);
                    buf.resize(grown, 0);
                }
                match f.read_at(&mut buf[filled..], filled as u64) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(std::io::Error::new(e.kind(), format!("/proc/net/{file}: {e}"))),
                }
            }
            let text = std::str::from_utf8(&buf[..filled])
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("/proc/net/{file}: {e}")))?;
            let parsed = if *paired { parse_paired(text) } else { parse_snmp6(text) };
            mib.merge(
                parsed.map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("/proc/net/{file}: {e}"))
                })?,
            );
        }
        Ok(mib)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNMP: &str = "Ip: Forwarding DefaultTTL\nIp: 2 64\nTcp: RtoAlgorithm OutRsts CurrEstab\nTcp: 1 5 -1\n";

    #[test]
    fn paired() {
        let m = parse_paired(SNMP).unwrap();
        assert_eq!(m.get("Ip.DefaultTTL"), Some(64));
        assert_eq!(m.get("Tcp.OutRsts"), Some(5));
        assert_eq!(m.get("Tcp.CurrEstab"), Some(-1));
        assert_eq!(m.get("Tcp.Nope"), None);
    }

    #[test]
    fn paired_errors_name_the_line() {
        let e = parse_paired("Ip: A B\nIp: 1\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse_paired("Ip: A\nTcp: 1\n").is_err());
        assert!(parse_paired("Ip: A\n").is_err());
        assert!(parse_paired("Ip: A\nIp: x\n").is_err());
    }

    #[test]
    fn snmp6() {
        let m = parse_snmp6("Ip6InReceives 3\nIcmp6OutMsgs 1\nUdp6InDatagrams 9\nUdpLite6InErrors 0\n").unwrap();
        assert_eq!(m.get("Ip6.InReceives"), Some(3));
        assert_eq!(m.get("Icmp6.OutMsgs"), Some(1));
        assert_eq!(m.get("Udp6.InDatagrams"), Some(9));
        assert_eq!(m.get("UdpLite6.InErrors"), Some(0));
        assert!(parse_snmp6("Ip6InReceives\n").is_err());
    }

    #[test]
    fn delta_skips_unchanged() {
        let a = parse_paired(SNMP).unwrap();
        let b = parse_paired("Ip: Forwarding DefaultTTL\nIp: 2 64\nTcp: RtoAlgorithm OutRsts CurrEstab\nTcp: 1 6 -1\n")
            .unwrap();
        let d = a.delta(&b);
        assert_eq!(d.len(), 1);
        assert_eq!(d["Tcp.OutRsts"], 1);
    }

    #[test]
    fn delta_of_extreme_values_does_not_overflow() {
        // Reproduced by fuzz/fuzz_targets/procfs_paired.rs: `after - before`
        // overflowed (a panic in debug builds) for values far apart.
        let a = parse_paired("Tcp: CurrEstab\nTcp: -9223372036854775808\n").unwrap();
        let b = parse_paired("Tcp: CurrEstab\nTcp: 1\n").unwrap();
        assert_eq!(a.delta(&b)["Tcp.CurrEstab"], i64::MAX);
        assert_eq!(b.delta(&a)["Tcp.CurrEstab"], i64::MIN);
    }

    #[test]
    fn real_host_files_parse() {
        // These exist on every Linux host this runs on; no privilege needed.
        let m = read_thread_mib().unwrap();
        assert!(m.get("Tcp.ActiveOpens").is_some());
        assert!(m.get("TcpExt.TCPTimeouts").is_some());
    }
}
