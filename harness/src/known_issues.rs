//! Known kernel issues as data: `fixtures/known-issues.toml` (built into the
//! binary) and the team lists given with `--known-issues FILE`.
//!
//! An entry names a case (an id, a result name, or a glob), optionally the
//! observations it explains (exact names or `prefix.*`; none: every
//! observation of the case), the kernels it applies to (a range of real
//! versions, a flavour found in the release string, a build option present
//! or absent), its evidence (the upstream commit, list thread or bug) and a
//! one-line reason:
//!
//! ```toml
//! [[issue]]
//! id = "ipv6-dump-skips-route-between-ecmp-siblings"
//! case = "route.state_machine"
//! observations = ["ipv6_dump_defect.*"]
//! from = "4.11"            # first affected real version (inclusive)
//! before = "7.3"           # first fixed version (exclusive); absent: unfixed
//! flavour = "rt"           # optional: a word of `uname -r` (cloud, rt, …)
//! config = "CONFIG_FOO"    # optional: applies only where set (`!CONFIG_FOO`: unset)
//! evidence = "net/ipv6/ip6_fib.c fib6_dump_node(); reproducer in the case docs"
//! reason = "an IPv6 dump omits a route that sits between two ECMP siblings"
//! ```
//!
//! Applied to a result after the case ran (the runner does it for `run`, the
//! matrix for every kernel's results): a failed result whose every mismatch
//! an applicable entry explains becomes `xfail` with the entry named; a
//! passed result where an applicable entry's observations were all checked
//! and none failed becomes `xpass` (the issue no longer occurs: time to drop
//! the entry, or the fix landed).

use serde::{Deserialize, Serialize};

use crate::case::{CaseReport, Outcome};
use crate::kernel::KernelInfo;

/// The project's own list, built in.
pub const BUILT_IN: &str = include_str!("../../fixtures/known-issues.toml");

/// One known issue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownIssue {
    /// Short name, unique in its file.
    pub id: String,
    /// Case id, result name (`tcp.fill[veth]`) or glob (`unix.*`).
    pub case: String,
    /// Observations it explains (names, or globs with `*`: `prefix.*`,
    /// `step*.unix`); empty: all.
    #[serde(default)]
    pub observations: Vec<String>,
    /// First affected real version, inclusive (`"6.10"`, `"5.10.210"`).
    #[serde(default)]
    pub from: Option<String>,
    /// First fixed real version, exclusive; absent: not fixed.
    #[serde(default)]
    pub before: Option<String>,
    /// A word that must appear in the release string (`rt`, `cloud`).
    #[serde(default)]
    pub flavour: Option<String>,
    /// `CONFIG_X` (must be set) or `!CONFIG_X` (must be unset).
    #[serde(default)]
    pub config: Option<String>,
    /// Upstream commit, list thread or bug URL.
    pub evidence: String,
    /// One line.
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    issue: Vec<KnownIssue>,
}

fn version(s: &str) -> Result<(u32, u32, u32), String> {
    let mut parts = s.split('.').map(|p| p.parse::<u32>());
    let mut next = |what: &str| match parts.next() {
        None => Ok(0),
        Some(Ok(n)) => Ok(n),
        Some(Err(_)) => Err(format!(
            "`{s}`: the {what} is not a number; write a version such as 6.10 or 5.10.210"
        )),
    };
    let v = (next("major")?, next("minor")?, next("patch")?);
    if s.split('.').count() > 3 || s.trim().is_empty() {
        return Err(format!("`{s}`: write a version such as 6.10 or 5.10.210"));
    }
    Ok(v)
}

/// Parses a list; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Vec<KnownIssue>, String> {
    let f: File = toml::from_str(text).map_err(|e| format!("{origin}: {}", e.to_string().trim()))?;
    let mut seen = std::collections::BTreeSet::new();
    for i in &f.issue {
        let at = format!("{origin}: issue `{}`", i.id);
        if i.id.trim().is_empty() || !seen.insert(i.id.clone()) {
            return Err(format!("{origin}: every issue needs an id of its own (`{}`)", i.id));
        }
        for v in [&i.from, &i.before].into_iter().flatten() {
            version(v).map_err(|e| format!("{at}: {e}"))?;
        }
        if let (Some(a), Some(b)) = (&i.from, &i.before) {
            if version(a)? >= version(b)? {
                return Err(format!("{at}: `from` {a} is not before `before` {b}"));
            }
        }
        if i.evidence.trim().is_empty() || i.reason.trim().is_empty() {
            return Err(format!(
                "{at}: give the evidence (commit, thread or bug) and a one-line reason"
            ));
        }
        if let Some(c) = &i.config {
            if !c.trim_start_matches('!').starts_with("CONFIG_") {
                return Err(format!("{at}: config `{c}` must be CONFIG_NAME or !CONFIG_NAME"));
            }
        }
    }
    Ok(f.issue)
}

/// Reads a team's list.
pub fn load(path: &std::path::Path) -> Result<Vec<KnownIssue>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// The built-in list (its syntax is checked by a unit test).
pub fn built_in() -> Vec<KnownIssue> {
    parse(BUILT_IN, "fixtures/known-issues.toml").expect("the built-in known-issues list parses")
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

/// An observation name, or a glob with `*` (`prefix.*`, `step*.unix`).
fn scope_matches(pattern: &str, name: &str) -> bool {
    glob(pattern.as_bytes(), name.as_bytes())
}

impl KnownIssue {
    /// Whether it names this case (by id, result name or glob).
    pub fn names_case(&self, id: &str, name: &str) -> bool {
        self.case == id
            || self.case == name
            || glob(self.case.as_bytes(), id.as_bytes())
            || glob(self.case.as_bytes(), name.as_bytes())
    }

    /// Whether it applies to this kernel (version range, flavour, config).
    pub fn applies_to(&self, k: &KernelInfo) -> bool {
        let v = k.version;
        let from_ok = self
            .from
            .as_deref()
            .and_then(|f| version(f).ok())
            .is_none_or(|f| v >= f);
        let before_ok = self
            .before
            .as_deref()
            .and_then(|b| version(b).ok())
            .is_none_or(|b| v < b);
        let flavour_ok = self
            .flavour
            .as_deref()
            .is_none_or(|f| k.release.split(['-', '.', '+', '_']).any(|w| w == f));
        let config_ok = match self.config.as_deref() {
            None => true,
            Some(c) => {
                let (want, name) = match c.strip_prefix('!') {
                    Some(n) => (false, n),
                    None => (true, c),
                };
                // An unreadable configuration is no fact: the entry does not apply.
                k.config_option(name) == Some(want)
            }
        };
        from_ok && before_ok && flavour_ok && config_ok
    }

    fn explains(&self, observation: &str) -> bool {
        self.observations.is_empty() || self.observations.iter().any(|p| scope_matches(p, observation))
    }

    /// The kernels it applies to, in words.
    pub fn kernels(&self) -> String {
        let mut s = match (&self.from, &self.before) {
            (Some(a), Some(b)) => format!("{a} up to (not including) {b}"),
            (Some(a), None) => format!("{a} and later (no fix known)"),
            (None, Some(b)) => format!("before {b}"),
            (None, None) => "every version".to_string(),
        };
        if let Some(f) = &self.flavour {
            s.push_str(&format!(", {f} flavour"));
        }
        if let Some(c) = &self.config {
            s.push_str(&format!(", where {c}"));
        }
        s
    }
}

/// Applies `issues` to a result of `kernel` (see the module docs). Results
/// that are neither `fail` nor `pass` are left as they are.
pub fn apply(report: &mut CaseReport, id: &str, kernel: &KernelInfo, issues: &[KnownIssue]) {
    let applicable: Vec<&KnownIssue> = issues
        .iter()
        .filter(|i| i.names_case(id, &report.case) && i.applies_to(kernel))
        .collect();
    if applicable.is_empty() {
        return;
    }
    let named = |is: &[&KnownIssue]| {
        is.iter()
            .map(|i| format!("{}: {} ({})", i.id, i.reason, i.evidence))
            .collect::<Vec<_>>()
            .join("; ")
    };
    match report.outcome {
        Outcome::Fail if !report.mismatches.is_empty() => {
            let all_explained = report
                .mismatches
                .iter()
                .all(|m| applicable.iter().any(|i| i.explains(&m.counter)));
            if all_explained {
                let used: Vec<&KnownIssue> = applicable
                    .iter()
                    .copied()
                    .filter(|i| report.mismatches.iter().any(|m| i.explains(&m.counter)))
                    .collect();
                report.outcome = Outcome::Xfail;
                report.reason = Some(format!("known issue {}", named(&used)));
            }
        }
        Outcome::Pass => {
            // Only an issue whose observations were checked here can be said
            // not to occur.
            let absent: Vec<&KnownIssue> = applicable
                .iter()
                .copied()
                .filter(|i| i.observations.is_empty() || report.observations.keys().any(|o| i.explains(o)))
                .collect();
            if !absent.is_empty() {
                report.outcome = Outcome::Xpass;
                report.reason = Some(format!("known issue did not occur: {}", named(&absent)));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Mismatch;
    use rstest::rstest;

    fn kernel(v: (u32, u32, u32), release: &str) -> KernelInfo {
        KernelInfo {
            release: release.into(),
            version: v,
            tcp_info_len: 280,
            protocols: Default::default(),
            privileges: "root".into(),
            cpus: 2,
        }
    }

    fn issue() -> KnownIssue {
        parse(
            r#"[[issue]]
id = "x"
case = "unix.*"
observations = ["probe.*"]
from = "6.10"
before = "6.19"
evidence = "commit abc"
reason = "a defect"
"#,
            "t",
        )
        .unwrap()
        .remove(0)
    }

    fn report(outcome: Outcome, mismatched: &[&str], observed: &[&str]) -> CaseReport {
        CaseReport {
            case: "unix.gc_property".into(),
            variant: None,
            outcome,
            reason: None,
            duration_ms: 1,
            cpu_ms: None,
            kernel: String::new(),
            observations: observed.iter().map(|o| (o.to_string(), serde_json::json!(1))).collect(),
            mismatches: mismatched
                .iter()
                .map(|c| Mismatch {
                    counter: c.to_string(),
                    expected: "1".into(),
                    observed: serde_json::json!(2),
                    source: "s".into(),
                })
                .collect(),
            checks: 3,
            notes: vec![],
            repetition: 1,
            volatile: vec![],
            attempts: vec![],
        }
    }

    #[test]
    fn the_built_in_list_parses() {
        let _ = built_in();
    }

    #[test]
    fn versions_flavours_and_scope() {
        let i = issue();
        assert!(i.applies_to(&kernel((6, 18, 44), "6.18.44")));
        assert!(!i.applies_to(&kernel((6, 19, 0), "6.19.0")));
        assert!(!i.applies_to(&kernel((6, 1, 158), "6.1.0-41-cloud-amd64")));
        let rt = KnownIssue {
            flavour: Some("rt".into()),
            ..issue()
        };
        assert!(rt.applies_to(&kernel((6, 12, 5), "6.12.5+deb13-rt-amd64")));
        assert!(!rt.applies_to(&kernel((6, 12, 5), "6.12.5+deb13-cloud-amd64")));

        let k = kernel((6, 18, 0), "6.18.0");
        // Every mismatch explained: xfail, named.
        let mut r = report(Outcome::Fail, &["probe.a", "probe.b"], &["probe.a", "probe.b"]);
        apply(&mut r, "unix.gc_property", &k, std::slice::from_ref(&i));
        assert_eq!(r.outcome, Outcome::Xfail);
        assert!(r.reason.unwrap().contains("x: a defect (commit abc)"));
        // One mismatch outside the scope: still fail.
        let mut r = report(Outcome::Fail, &["probe.a", "other"], &["probe.a", "other"]);
        apply(&mut r, "unix.gc_property", &k, std::slice::from_ref(&i));
        assert_eq!(r.outcome, Outcome::Fail);
        // Globs inside a name.
        assert!(scope_matches("step*.unix", "step12.unix"));
        assert!(!scope_matches("step*.unix", "step12.tcp"));
        // Passed with the scope checked: xpass.
        let mut r = report(Outcome::Pass, &[], &["probe.a"]);
        apply(&mut r, "unix.gc_property", &k, std::slice::from_ref(&i));
        assert_eq!(r.outcome, Outcome::Xpass);
        // Passed without the scope ever checked: nothing to say.
        let mut r = report(Outcome::Pass, &[], &["other"]);
        apply(&mut r, "unix.gc_property", &k, std::slice::from_ref(&i));
        assert_eq!(r.outcome, Outcome::Pass);
        // Another kernel: the entry does not apply.
        let mut r = report(Outcome::Fail, &["probe.a"], &["probe.a"]);
        apply(&mut r, "unix.gc_property", &kernel((6, 1, 0), "6.1.0"), &[i]);
        assert_eq!(r.outcome, Outcome::Fail);
    }

    #[rstest]
    #[case::version_not_a_number(
        "[[issue]]\nid = \"a\"\ncase = \"x\"\nevidence = \"e\"\nreason = \"r\"\nfrom = \"six\"\n",
        "not a number"
    )]
    #[case::empty_evidence("[[issue]]\nid = \"a\"\ncase = \"x\"\nevidence = \"\"\nreason = \"r\"\n", "evidence")]
    #[case::from_not_before_before(
        "[[issue]]\nid = \"a\"\ncase = \"x\"\nevidence = \"e\"\nreason = \"r\"\nfrom = \"6.2\"\nbefore = \"6.1\"\n",
        "not before"
    )]
    #[case::unknown_field(
        "[[issue]]\nid = \"a\"\ncase = \"x\"\nevidence = \"e\"\nreason = \"r\"\ncolour = 1\n",
        "unknown field"
    )]
    #[case::config_without_prefix(
        "[[issue]]\nid = \"a\"\ncase = \"x\"\nevidence = \"e\"\nreason = \"r\"\nconfig = \"FOO\"\n",
        "CONFIG_NAME"
    )]
    fn bad_lists_are_refused_with_the_reason(#[case] text: &str, #[case] needle: &str) {
        let e = parse(text, "f.toml").unwrap_err();
        assert!(e.contains(needle), "{e}");
    }
}
