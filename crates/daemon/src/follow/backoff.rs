//! Reconnect delays: exponential from [`Backoff::MIN`], capped at [`Backoff::MAX`], each
//! drawn uniformly from its upper half (jitter), so that followers cut at once by a
//! primary's restart do not all come back in the same instant.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The delay before the next attempt.
#[derive(Debug)]
pub struct Backoff {
    attempt: u32,
    seed: std::collections::hash_map::RandomState,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            attempt: 0,
            seed: std::collections::hash_map::RandomState::new(),
        }
    }
}

impl Backoff {
    /// The first delay's ceiling.
    pub const MIN: Duration = Duration::from_millis(100);
    /// The longest delay.
    pub const MAX: Duration = Duration::from_secs(5);

    /// The delay before the next attempt: in `[c/2, c]` for the ceiling
    /// `c = min(MIN * 2^attempt, MAX)`.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = Self::MIN
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(Self::MAX);
        self.attempt = self.attempt.saturating_add(1);
        let mut h = self.seed.build_hasher();
        h.write_u32(self.attempt);
        let unit = (h.finish() >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        ceiling.mul_f64(0.5 + 0.5 * unit)
    }

    /// Attempts made since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// After a success: the next failure waits the shortest delay again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_with_jitter_and_reset() {
        let mut b = Backoff::default();
        let d: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        for (i, d) in d.iter().enumerate() {
            let ceiling = (Backoff::MIN * (1 << i)).min(Backoff::MAX);
            assert!(*d >= ceiling / 2 && *d <= ceiling, "attempt {i}: {d:?}");
        }
        assert!(d[11] >= Backoff::MAX / 2, "capped, not shrinking");
        assert_eq!(b.attempts(), 12);
        b.reset();
        assert!(b.next_delay() <= Backoff::MIN);
    }
}
