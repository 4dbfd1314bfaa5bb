//! Observations, predictions and the one comparison between them.
//!
//! A case records what the kernel reported as named [`Value`]s (its
//! observations); its model states what each should be as an [`Expect`]
//! with the source of the claim; [`compare`] turns the pair into the list of
//! [`Mismatch`]es. Nothing else decides pass or fail.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
pub use serde_json::Value;

/// What the model says an observation must be.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// Exactly this value.
    Eq(Value),
    /// An integer `<=` this bound.
    Le(i64),
    /// An integer `>=` this bound.
    Ge(i64),
    /// An integer `>` this bound.
    Gt(i64),
    /// An integer in `lo..=hi`.
    Between(i64, i64),
    /// Any one of these values.
    OneOf(Vec<Value>),
    /// The kernel did not report it (an absent `tcp_info` field, say).
    Absent,
    /// The kernel reported it, any value.
    Present,
}

impl Expect {
    /// `Expect::Eq` from anything serialisable to JSON.
    pub fn eq(v: impl Into<Value>) -> Expect {
        Expect::Eq(v.into())
    }

    /// Whether `observed` satisfies this expectation.
    pub fn holds(&self, observed: &Value) -> bool {
        let int = observed
            .as_i64()
            .or_else(|| observed.as_u64().map(|u| u.min(i64::MAX as u64) as i64));
        match self {
            Expect::Eq(v) => values_equal(v, observed),
            Expect::Le(b) => int.is_some_and(|x| x <= *b),
            Expect::Ge(b) => int.is_some_and(|x| x >= *b),
            Expect::Gt(b) => int.is_some_and(|x| x > *b),
            Expect::Between(lo, hi) => int.is_some_and(|x| *lo <= x && x <= *hi),
            Expect::OneOf(vs) => vs.iter().any(|v| values_equal(v, observed)),
            Expect::Absent => observed.is_null(),
            Expect::Present => !observed.is_null(),
        }
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => {
            // Integers compare exactly (u64 values above 2^53 included).
            match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => x == y,
            }
        }
        _ => a == b,
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Eq(v) => write!(f, "{v}"),
            Expect::Le(b) => write!(f, "<= {b}"),
            Expect::Ge(b) => write!(f, ">= {b}"),
            Expect::Gt(b) => write!(f, "> {b}"),
            Expect::Between(lo, hi) => write!(f, "in {lo}..={hi}"),
            Expect::OneOf(vs) => {
                let s: Vec<String> = vs.iter().map(|v| v.to_string()).collect();
                write!(f, "one of [{}]", s.join(", "))
            }
            Expect::Absent => write!(f, "absent"),
            Expect::Present => write!(f, "present"),
        }
    }
}

/// One claim of the model about one observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The observation it is about.
    pub counter: String,
    /// What it must be.
    pub expect: Expect,
    /// Where the claim comes from (a kernel function, a man page, a seed).
    pub source: String,
}

/// A prediction the kernel did not meet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mismatch {
    /// The observation's name.
    pub counter: String,
    /// What the model predicted, rendered.
    pub expected: String,
    /// What the kernel reported (`null` when it reported nothing).
    pub observed: Value,
    /// Where the prediction comes from.
    pub source: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let obs = if self.observed.is_null() {
            "absent".to_string()
        } else {
            self.observed.to_string()
        };
        write!(
            f,
            "{}: expected {}, observed {} ({})",
            self.counter, self.expected, obs, self.source
        )
    }
}

/// Compares every prediction with the observation of the same name; an
/// observation that was never recorded counts as `null` (absent).
pub fn compare(observations: &BTreeMap<String, Value>, predictions: &[Prediction]) -> Vec<Mismatch> {
    predictions
        .iter()
        .filter_map(|p| {
            let observed = observations.get(&p.counter).cloned().unwrap_or(Value::Null);
            (!p.expect.holds(&observed)).then(|| Mismatch {
                counter: p.counter.clone(),
                expected: p.expect.to_string(),
                observed,
                source: p.source.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expectations() {
        assert!(Expect::eq(5).holds(&json!(5)));
        assert!(Expect::eq(5u64).holds(&json!(5i64)));
        assert!(!Expect::eq(5).holds(&json!(6)));
        assert!(!Expect::eq(5).holds(&Value::Null));
        assert!(Expect::eq(u64::MAX).holds(&json!(u64::MAX)));
        assert!(!Expect::eq(u64::MAX).holds(&json!(u64::MAX - 1)));
        assert!(Expect::Le(3).holds(&json!(3)));
        assert!(!Expect::Le(3).holds(&json!(4)));
        assert!(!Expect::Le(3).holds(&Value::Null));
        assert!(Expect::Gt(0).holds(&json!(1)));
        assert!(!Expect::Gt(0).holds(&json!(0)));
        assert!(Expect::Between(1, 2).holds(&json!(2)));
        assert!(Expect::Absent.holds(&Value::Null));
        assert!(!Expect::Absent.holds(&json!(0)));
        assert!(Expect::Present.holds(&json!(0)));
        assert!(Expect::OneOf(vec![json!("a"), json!(1)]).holds(&json!(1)));
        assert!(Expect::eq("ECONNREFUSED").holds(&json!("ECONNREFUSED")));
    }

    #[test]
    fn compare_reports_each_failure_with_source() {
        let mut obs = BTreeMap::new();
        obs.insert("a".to_string(), json!(1));
        obs.insert("b".to_string(), json!(2));
        let preds = vec![
            Prediction {
                counter: "a".into(),
                expect: Expect::eq(1),
                source: "s1".into(),
            },
            Prediction {
                counter: "b".into(),
                expect: Expect::eq(3),
                source: "s2".into(),
            },
            Prediction {
                counter: "c".into(),
                expect: Expect::Present,
                source: "s3".into(),
            },
        ];
        let m = compare(&obs, &preds);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].counter, "b");
        assert_eq!(m[0].expected, "3");
        assert_eq!(m[0].observed, json!(2));
        assert_eq!(m[1].counter, "c");
        assert!(m[1].to_string().contains("observed absent"));
    }
}
