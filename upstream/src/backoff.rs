//! Full-jitter exponential backoff for reconnecting.
//!
//! The n-th consecutive failure (counting from 0) waits a uniformly random
//! delay in `[0, min(cap, base * 2^n)]` ("full jitter"), so a fleet of
//! gateways that lost the same backend does not reconnect in lockstep. A
//! connection that stayed up for at least `reset_after` wipes the slate: the
//! next failure starts from `base` again.

use std::time::Duration;

use rand::Rng;

/// Reconnect delays: full-jitter exponential, 0.5 s → 60 s by default, reset
/// after 30 s connected.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    reset_after: Duration,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Self::BASE, Self::CAP, Self::RESET_AFTER)
    }
}

impl Backoff {
    /// Ceiling of the first delay.
    pub const BASE: Duration = Duration::from_millis(500);
    /// Largest delay ever returned.
    pub const CAP: Duration = Duration::from_secs(60);
    /// A connection that lived this long resets the sequence.
    pub const RESET_AFTER: Duration = Duration::from_secs(30);

    pub fn new(base: Duration, cap: Duration, reset_after: Duration) -> Self {
        Self { base, cap: cap.max(base), reset_after, attempt: 0 }
    }

    /// How many delays were handed out since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The upper bound of the next delay: `min(cap, base * 2^attempt)`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base.checked_mul(factor).map_or(self.cap, |d| d.min(self.cap))
    }

    /// The next delay, drawn from the thread-local RNG.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_with(&mut rand::rng())
    }

    /// The next delay, drawn from `rng` (tests pass a seeded one).
    pub fn next_delay_with<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=nanos))
    }

    /// Starts over from `base`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Tells how long the connection that just ended had been up; resets the
    /// sequence when that was at least `reset_after`.
    pub fn connected_for(&mut self, uptime: Duration) {
        if uptime >= self.reset_after {
            self.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn ceilings_double_from_half_a_second_up_to_a_minute() {
        let mut b = Backoff::default();
        let mut rng = StdRng::seed_from_u64(7);
        let expected = [500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000];
        for want in expected {
            assert_eq!(b.ceiling(), Duration::from_millis(want));
            let d = b.next_delay_with(&mut rng);
            assert!(d <= Duration::from_millis(want), "{d:?} > {want} ms");
        }
        // Far past any overflow point the ceiling stays at the cap.
        for _ in 0..100 {
            let d = b.next_delay_with(&mut rng);
            assert!(d <= Backoff::CAP);
        }
        assert_eq!(b.ceiling(), Backoff::CAP);
    }

    #[test]
    fn delays_are_jittered_over_the_whole_range() {
        // Full jitter: at a fixed attempt, draws spread over [0, ceiling].
        let mut rng = StdRng::seed_from_u64(42);
        let (mut low, mut high) = (0, 0);
        for _ in 0..1000 {
            let mut b = Backoff::default();
            let d = b.next_delay_with(&mut rng);
            assert!(d <= Duration::from_millis(500));
            if d < Duration::from_millis(100) {
                low += 1;
            }
            if d > Duration::from_millis(400) {
                high += 1;
            }
        }
        assert!(low > 100 && high > 100, "low={low} high={high}");
    }

    #[test]
    fn seeded_rng_is_deterministic() {
        let draw = || {
            let mut b = Backoff::default();
            let mut rng = StdRng::seed_from_u64(1);
            (0..5).map(|_| b.next_delay_with(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(), draw());
    }

    #[test]
    fn resets_only_after_a_long_enough_connection() {
        let mut b = Backoff::default();
        for _ in 0..5 {
            b.next_delay();
        }
        assert_eq!(b.ceiling(), Duration::from_secs(16));
        b.connected_for(Duration::from_secs(29));
        assert_eq!(b.ceiling(), Duration::from_secs(16));
        b.connected_for(Duration::from_secs(30));
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.ceiling(), Duration::from_millis(500));
    }

    #[test]
    fn custom_bounds() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(35), Duration::from_secs(1));
        let mut rng = StdRng::seed_from_u64(3);
        let ceilings: Vec<_> = (0..4)
            .map(|_| {
                let c = b.ceiling();
                assert!(b.next_delay_with(&mut rng) <= c);
                c.as_millis()
            })
            .collect();
        assert_eq!(ceilings, [10, 20, 35, 35]);
    }
}
