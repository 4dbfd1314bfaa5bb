//! What differs between the kernels of one matrix run: for every case, the
//! observations whose values are not the same on every kernel that ran it
//! (struct lengths, buffer defaults, counters, errno and extack texts), the
//! outcome when it differs (a feature one kernel lacks), and on each kernel
//! the version gates the model took (`gate.*` observations) and the known
//! issue or skip reason it named.
//!
//! Observations a case marked volatile (`Ctx::observe_volatile`: ports,
//! inodes, timings, seeds) are left out: they differ from run to run on one
//! kernel, so a difference between kernels says nothing.
//!
//! A kernel takes part in an observation's comparison when the case ran
//! there and recorded observations (a skip or a harness failure has nothing
//! to compare; its outcome row says what happened). An observation a kernel
//! did not record while the others did is shown as `absent`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use kharness::case::Outcome;

use super::results::{case_names, Matrix, MatrixResult};

/// The name of the row that compares outcomes.
pub const OUTCOME: &str = "outcome";

/// Every difference of a matrix run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Differences {
    /// Kernel names, the columns of every row.
    pub kernels: Vec<String>,
    /// Cases with at least one differing observation, in catalog order.
    pub cases: Vec<CaseDiff>,
    /// How many differing observation names were left out as volatile.
    pub volatile_left_out: usize,
}

/// One case's differences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseDiff {
    /// Result name (`tcp.fill[veth]`).
    pub case: String,
    /// Family: the part of the id before the first `.`.
    pub family: String,
    /// The differing observations.
    pub rows: Vec<DiffRow>,
    /// Per kernel (column order): the version gates the model took, as
    /// `gate.name = value`.
    pub gates: Vec<Vec<String>>,
    /// Per kernel: the known issue (xfail), skip or failure reason.
    pub reasons: Vec<Option<String>>,
    /// What the case documents about kernel differences (`kharness explain`'s
    /// "kernels"), when the catalog was at hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

/// One differing observation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffRow {
    /// Observation name, or [`OUTCOME`].
    pub observation: String,
    /// Per kernel: the value (`absent` when not recorded), or `None` where
    /// the kernel takes no part (case not run, skipped, nothing observed).
    pub values: Vec<Option<String>>,
    /// Per kernel: whether the value differs from the first kernel's that
    /// takes part (the cell to highlight).
    pub changed: Vec<bool>,
    /// Per kernel: what the model predicted there, when the prediction
    /// failed (`expected X (source)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected: Vec<Option<String>>,
}

impl Differences {
    /// Number of differing observations (outcome rows included).
    pub fn count(&self) -> usize {
        self.cases.iter().map(|c| c.rows.len()).sum()
    }

    /// Families that have differences, sorted.
    pub fn families(&self) -> Vec<String> {
        self.cases
            .iter()
            .map(|c| c.family.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}

/// A value as one short string: strings bare, the rest as JSON.
pub fn render(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "null".into(),
        other => other.to_string(),
    }
}

fn outcome_label(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "FAIL",
        Outcome::Skip => "skip",
        Outcome::Xfail => "xfail",
        Outcome::Xpass => "XPASS",
    }
}

/// Whether a result has observations to compare.
fn compares(r: &MatrixResult) -> bool {
    r.report.outcome != Outcome::Skip && !r.report.observations.is_empty()
}

/// Marks each value that differs from the first present one; `None` when
/// fewer than two distinct values are present.
fn changed(values: &[Option<String>]) -> Option<Vec<bool>> {
    let distinct: BTreeSet<&String> = values.iter().flatten().collect();
    if distinct.len() < 2 {
        return None;
    }
    let first = values.iter().flatten().next()?;
    Some(values.iter().map(|v| v.as_ref().is_some_and(|v| v != first)).collect())
}

/// Computes the differences; `order` is the catalog order of result names,
/// `docs` maps a case id (without variant) to its "kernels" text.
pub fn compute(m: &Matrix, order: &[String], docs: &BTreeMap<String, String>) -> Differences {
    let kernels: Vec<String> = m.kernels.iter().map(|k| k.name.clone()).collect();
    let mut out = Differences {
        kernels,
        ..Differences::default()
    };
    let mut volatile_names: BTreeSet<(String, String)> = BTreeSet::new();
    for case in case_names(m, order) {
        let results: Vec<Option<&MatrixResult>> = m.kernels.iter().map(|k| k.result(&case)).collect();
        // Volatile on any kernel (a name, or a glob of `mark_volatile`).
        let is_volatile = |name: &str| results.iter().flatten().any(|r| r.report.is_volatile(name));
        let mut rows = Vec::new();
        // The outcome, where it differs.
        let outcomes: Vec<Option<String>> = results
            .iter()
            .map(|r| r.map(|r| outcome_label(r.report.outcome).to_string()))
            .collect();
        if let Some(ch) = changed(&outcomes) {
            rows.push(DiffRow {
                observation: OUTCOME.into(),
                values: outcomes,
                changed: ch,
                expected: Vec::new(),
            });
        }
        // Every observation name any comparing kernel recorded.
        let names: BTreeSet<&String> = results
            .iter()
            .flatten()
            .filter(|r| compares(r))
            .flat_map(|r| r.report.observations.keys())
            .collect();
        for name in names {
            let values: Vec<Option<String>> = results
                .iter()
                .map(|r| match r {
                    Some(r) if compares(r) => Some(
                        r.report
                            .observations
                            .get(name)
                            .map(render)
                            .unwrap_or_else(|| "absent".into()),
                    ),
                    _ => None,
                })
                .collect();
            let Some(ch) = changed(&values) else { continue };
            if is_volatile(name) {
                volatile_names.insert((case.clone(), name.clone()));
                continue;
            }
            let expected: Vec<Option<String>> = results
                .iter()
                .map(|r| {
                    r.and_then(|r| r.report.mismatches.iter().find(|x| &x.counter == name))
                        .map(|x| format!("expected {} ({})", x.expected, x.source))
                })
                .collect();
            rows.push(DiffRow {
                observation: name.clone(),
                values,
                changed: ch,
                expected: if expected.iter().any(Option::is_some) {
                    expected
                } else {
                    Vec::new()
                },
            });
        }
        if rows.is_empty() {
            continue;
        }
        let gates = results
            .iter()
            .map(|r| {
                r.map(|r| {
                    r.report
                        .observations
                        .iter()
                        .filter(|(n, _)| n.starts_with("gate."))
                        .map(|(n, v)| format!("{n} = {}", render(v)))
                        .collect()
                })
                .unwrap_or_default()
            })
            .collect();
        let reasons = m
            .kernels
            .iter()
            .zip(&results)
            .map(|(k, r)| r.and_then(|r| k.reason_of(&r.report)))
            .collect();
        let id = case.split('[').next().unwrap_or(&case);
        out.cases.push(CaseDiff {
            family: id.split('.').next().unwrap_or(id).to_string(),
            explanation: docs.get(id).cloned(),
            case,
            rows,
            gates,
            reasons,
        });
    }
    out.volatile_left_out = volatile_names.len();
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::results::tests::report;
    use crate::results::{KernelRun, KernelStatus, MatrixResult};
    use kharness::case::CaseReport;
    use serde_json::json;

    fn result(r: CaseReport) -> MatrixResult {
        MatrixResult {
            report: r,
            tcp_info_len: 0,
        }
    }

    fn with_obs(case: &str, outcome: Outcome, obs: &[(&str, serde_json::Value)]) -> CaseReport {
        let mut r = report(case, outcome, None);
        for (n, v) in obs {
            r.observations.insert(n.to_string(), v.clone());
        }
        r
    }

    fn kernel(name: &str, i: usize, results: Vec<CaseReport>) -> KernelRun {
        let mut k = KernelRun::new(name, i, name);
        k.status = KernelStatus::Completed;
        k.results = results.into_iter().map(result).collect();
        k
    }

    pub(crate) fn synthetic() -> Matrix {
        let info = |len: i64, gate: &str, port: i64| {
            let mut r = with_obs(
                "tcp.info_diag",
                Outcome::Pass,
                &[
                    ("client.getsockopt_len", json!(len)),
                    ("gate.tcp_info_len", json!(gate)),
                    ("client.port", json!(port)),
                    ("client.state", json!("ESTABLISHED")),
                ],
            );
            r.volatile.push("client.port".into());
            r
        };
        let same = || with_obs("unix.pair", Outcome::Pass, &[("x", json!(1))]);
        let mut old_sctp = report("sctp.basic", Outcome::Skip, Some("kernel lacks SCTP"));
        old_sctp.observations.insert("gate.sctp".into(), json!("no SCTP"));
        let mut oob_old = with_obs(
            "unix.oob",
            Outcome::Xfail,
            &[
                ("stream.send_oob", json!("EOPNOTSUPP")),
                ("gate.af_unix_oob", json!("before 5.15")),
            ],
        );
        oob_old.reason = Some("no MSG_OOB: evidence".into());
        oob_old.mismatches.push(kharness::model::Mismatch {
            counter: "stream.send_oob".into(),
            expected: "\"ok\"".into(),
            observed: json!("EOPNOTSUPP"),
            source: "queue_oob()".into(),
        });
        let oob_new = with_obs(
            "unix.oob",
            Outcome::Pass,
            &[("stream.send_oob", json!("ok")), ("gate.af_unix_oob", json!("5.15+"))],
        );
        let a = kernel(
            "5.10",
            0,
            vec![info(232, "5.4+: 232 bytes", 1000), same(), old_sctp, oob_old],
        );
        let b = kernel(
            "6.1",
            1,
            vec![
                info(240, "6.2+: 240 bytes", 2000),
                same(),
                with_obs("sctp.basic", Outcome::Pass, &[("gate.sctp", json!("SCTP registered"))]),
                oob_new.clone(),
            ],
        );
        let c = kernel("7.2", 2, vec![info(240, "6.2+: 240 bytes", 3000), same(), oob_new]);
        Matrix {
            schema: crate::results::SCHEMA,
            harness: "test".into(),
            kernels: vec![a, b, c],
            wall_ms: 1,
            shard: None,
            differences: None,
        }
    }

    #[test]
    fn finds_what_differs_and_leaves_out_the_rest() {
        let m = synthetic();
        let docs = BTreeMap::from([("tcp.info_diag".to_string(), "the struct grows".to_string())]);
        let d = compute(&m, &[], &docs);
        assert_eq!(d.kernels, ["5.10", "6.1", "7.2"]);
        let names: Vec<&str> = d.cases.iter().map(|c| c.case.as_str()).collect();
        // unix.pair is the same everywhere: not listed.
        assert_eq!(names, ["tcp.info_diag", "sctp.basic", "unix.oob"]);
        let info = &d.cases[0];
        let obs: Vec<&str> = info.rows.iter().map(|r| r.observation.as_str()).collect();
        // The port is volatile; the state is the same everywhere.
        assert_eq!(obs, ["client.getsockopt_len", "gate.tcp_info_len"]);
        assert_eq!(d.volatile_left_out, 1);
        assert_eq!(
            info.rows[0].values,
            [
                Some("232".to_string()),
                Some("240".to_string()),
                Some("240".to_string())
            ]
        );
        assert_eq!(info.rows[0].changed, [false, true, true]);
        assert_eq!(info.explanation.as_deref(), Some("the struct grows"));
        assert_eq!(info.gates[0], ["gate.tcp_info_len = 5.4+: 232 bytes"]);
        // SCTP: the outcome differs, the skip's reason is named; 7.2 did not run it.
        let sctp = &d.cases[1];
        assert_eq!(sctp.rows.len(), 1, "{sctp:?}");
        assert_eq!(sctp.rows[0].observation, OUTCOME);
        assert_eq!(
            sctp.rows[0].values,
            [Some("skip".to_string()), Some("pass".to_string()), None]
        );
        assert_eq!(sctp.reasons[0].as_deref(), Some("kernel lacks SCTP"));
        assert_eq!(sctp.family, "sctp");
        // unix.oob: outcome, the value and the gate; the failed prediction is named.
        let oob = &d.cases[2];
        let obs: Vec<&str> = oob.rows.iter().map(|r| r.observation.as_str()).collect();
        assert_eq!(obs, [OUTCOME, "gate.af_unix_oob", "stream.send_oob"]);
        assert!(oob.rows[2].expected[0].as_deref().unwrap().contains("queue_oob()"));
        assert_eq!(oob.reasons[0].as_deref(), Some("no MSG_OOB: evidence"));
        assert_eq!(d.count(), 6);
        assert_eq!(d.families(), ["sctp", "tcp", "unix"]);
    }

    #[test]
    fn identical_kernels_have_no_differences() {
        let mut m = synthetic();
        let first = m.kernels[2].clone();
        for (i, k) in m.kernels.iter_mut().enumerate() {
            *k = KernelRun {
                name: k.name.clone(),
                index: i,
                ..first.clone()
            };
        }
        let d = compute(&m, &[], &BTreeMap::new());
        assert!(d.cases.is_empty(), "{d:?}");
        // …but one changed value is found, and a volatile mark hides only its own name.
        let r = &mut m.kernels[0].results[0].report;
        r.observations.insert("client.state".into(), json!("CLOSE"));
        let d = compute(&m, &[], &BTreeMap::new());
        assert_eq!(d.count(), 1);
        assert_eq!(d.cases[0].rows[0].observation, "client.state");
        m.kernels[0].results[0].report.volatile.push("client.state".into());
        assert_eq!(compute(&m, &[], &BTreeMap::new()).count(), 0);
    }

    #[test]
    fn an_observation_one_kernel_lacks_is_absent() {
        let mut m = synthetic();
        m.kernels[1].results[0].report.observations.remove("client.state");
        let d = compute(&m, &[], &BTreeMap::new());
        let row = d.cases[0]
            .rows
            .iter()
            .find(|r| r.observation == "client.state")
            .expect("listed");
        assert_eq!(row.values[1].as_deref(), Some("absent"));
    }
}
