//! How a property case runs: its seed, how many sequences, and whether it
//! explores.
//!
//! `kharness run` gives every property case a fixed seed and a quick count
//! (the catalog stays fast and repeatable) and replays the case's regression
//! file first; `kharness run --seed S --cases N` changes both; `kharness
//! explore` hands each run a fresh seed, skips the replay, and lets the
//! generators reach further. The settings reach the case process as
//! arguments of `__case` and the case reads them from [`crate::Ctx::property`].

use serde::{Deserialize, Serialize};

/// The seed a property case uses when none is given (`kharness run`).
pub const DEFAULT_SEED: u64 = 0;

/// A property case's run settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertySettings {
    /// Seed of the generated sequences; `None`: [`DEFAULT_SEED`].
    pub seed: Option<u64>,
    /// Sequences per property; `None`: the case's quick default.
    pub cases: Option<u32>,
    /// `kharness explore`: no replay of the regression file first, and the
    /// generators' longer, wider sequences.
    pub explore: bool,
    /// Stop starting new sequences at this time (milliseconds since the Unix
    /// epoch: `explore`'s budget ends then for every case of the round,
    /// however late its process starts); shrinking a failure found before
    /// then is never cut short. `None`: run every sequence.
    pub deadline_unix_ms: Option<u64>,
}

impl PropertySettings {
    /// The seed in effect.
    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or(DEFAULT_SEED)
    }

    /// The 32 bytes of RNG seed for case `id`: the run's seed and the case id
    /// mixed (splitmix64), so that one `--seed` gives every case its own
    /// sequences and `kharness run CASE --seed S` replays exactly what
    /// `explore` ran with seed S. Hand-written: it is eight lines, and the
    /// bytes must never change between releases, which no crate promises.
    pub fn rng_seed(&self, id: &str) -> [u8; 32] {
        let mut x = self.seed()
            ^ id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        out
    }

    /// Milliseconds left to the deadline (0 once past); `None` without one.
    pub fn ms_to_deadline(&self) -> Option<u64> {
        self.deadline_unix_ms.map(|d| d.saturating_sub(unix_ms()))
    }

    /// Whether the deadline has passed.
    pub fn past_deadline(&self) -> bool {
        self.deadline_unix_ms.is_some_and(|d| unix_ms() >= d)
    }

    /// The arguments of `__case` that carry these settings.
    pub fn child_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(s) = self.seed {
            a.extend(["--seed".to_string(), s.to_string()]);
        }
        if let Some(c) = self.cases {
            a.extend(["--cases".to_string(), c.to_string()]);
        }
        if self.explore {
            a.push("--deep".to_string());
        }
        if let Some(b) = self.deadline_unix_ms {
            a.extend(["--deadline-unix-ms".to_string(), b.to_string()]);
        }
        a
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_by_case_and_by_seed_and_are_stable() {
        let a = PropertySettings::default();
        let b = PropertySettings { seed: Some(1), ..a };
        assert_ne!(a.rng_seed("unix.gc_property"), a.rng_seed("tcp.ops_property"));
        assert_ne!(a.rng_seed("unix.gc_property"), b.rng_seed("unix.gc_property"));
        assert_eq!(a.rng_seed("x"), a.rng_seed("x"));
        // Pinned: a seed printed by an older kharness must replay the same run.
        assert_eq!(&a.rng_seed("x")[..4], &[143, 57, 150, 240]);
    }

    #[test]
    fn child_args_round_trip() {
        let s = PropertySettings {
            seed: Some(7),
            cases: Some(3),
            explore: true,
            deadline_unix_ms: None,
        };
        assert_eq!(s.child_args(), ["--seed", "7", "--cases", "3", "--deep"]);
        assert!(PropertySettings::default().child_args().is_empty());
    }
}
