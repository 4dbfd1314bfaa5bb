//! Waiting for a condition: poll it to a deadline, never sleep a fixed time.
//!
//! The condition is re-checked after yielding the CPU, with a short pause
//! that grows (50 µs up to 2 ms) so a condition that becomes true in
//! microseconds is seen in microseconds, while a slow one does not burn a
//! core. The pause bounds the polling rate; it is not a guess at how long
//! the kernel needs.

use std::time::{Duration, Instant};

/// A condition that did not become true before its deadline.
#[derive(Debug, Clone, thiserror::Error)]
#[error("timed out after {waited:?} waiting for {what}{}", .last.as_ref().map(|l| format!(" (last seen: {l})")).unwrap_or_default())]
pub struct Timeout {
    /// What was waited for.
    pub what: String,
    /// How long.
    pub waited: Duration,
    /// The last value seen, when the caller described it.
    pub last: Option<String>,
}

/// Polls `probe` until it returns `Some`, or `timeout` passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Result<T, Timeout> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(50);
    loop {
        if let Some(v) = probe() {
            return Ok(v);
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(Timeout {
                what: what.to_string(),
                waited,
                last: None,
            });
        }
        std::thread::yield_now();
        std::thread::park_timeout(pause.min(timeout - waited));
        pause = (pause * 2).min(Duration::from_millis(2));
    }
}

/// Polls `probe` until `done(value)`, returning the value; on timeout the
/// error carries the last value seen.
pub fn wait_until<T: std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> T,
    mut done: impl FnMut(&T) -> bool,
) -> Result<T, Timeout> {
    let mut last = None;
    let r = wait_for(what, timeout, || {
        let v = probe();
        if done(&v) {
            Some(v)
        } else {
            last = Some(format!("{v:?}"));
            None
        }
    });
    r.map_err(|mut e| {
        e.last = last;
        e
    })
}

/// Polls `probe` until it returns the same value `stable_for` consecutive
/// times with no change (a counter that has settled), or `timeout` passes.
/// Each poll is one pause apart, so "settled" means unchanged across
/// `stable_for` polls after at least `min_quiet` of wall time.
pub fn wait_settled<T: PartialEq + Clone + std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    min_quiet: Duration,
    mut probe: impl FnMut() -> T,
) -> Result<T, Timeout> {
    let mut last = probe();
    let mut since = Instant::now();
    let mut seen = None;
    let r = wait_for(what, timeout, || {
        let v = probe();
        if v != last {
            last = v;
            since = Instant::now();
            seen = Some(format!("{last:?}"));
            return None;
        }
        (since.elapsed() >= min_quiet).then_some(v)
    });
    r.map_err(|mut e| {
        e.last = seen;
        e
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immediate() {
        assert_eq!(wait_for("x", Duration::from_millis(10), || Some(3)).unwrap(), 3);
    }

    #[test]
    fn eventually() {
        let mut n = 0;
        let v = wait_until(
            "n reaches 5",
            Duration::from_secs(5),
            || {
                n += 1;
                n
            },
            |n| *n >= 5,
        )
        .unwrap();
        assert_eq!(v, 5);
    }

    #[test]
    fn timeout_carries_last_value() {
        let e = wait_until("never", Duration::from_millis(5), || 7, |_| false).unwrap_err();
        assert_eq!(e.last.as_deref(), Some("7"));
        assert!(e.to_string().contains("never"));
    }
}
