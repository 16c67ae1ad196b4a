//! Sliding-window counters: the [`LimitStore`] interface and the in-process
//! [`MemoryStore`].
//!
//! # Algorithm and accuracy
//!
//! A window (a minute, an hour, a day) is cut into [`SLOTS`] equal slots
//! (1 s, 1 min, 24 min). A counter keeps the hits of the current slot and of
//! the [`SLOTS`] before it in a ring of `SLOTS + 1` numbers plus their sum,
//! so its memory is fixed (about 260 bytes) whatever the traffic. A hit
//! therefore stops counting between `window` and `window + window/60` after
//! it was made: the limiter never admits more than `max_requests` in any
//! interval of one window, and at worst refuses for one slot longer than an
//! exact sliding log would (1 s for a per-minute rule, 1 min per hour, 24 min
//! per day). `retry_after` is computed from the slots, so it tells the
//! caller exactly when enough hits will have expired.
//!
//! Counters live in a [`DashMap`] keyed by (rule id, subject), looked up by
//! borrowed strings so a hit on an existing counter allocates nothing.
//! Counters with no hit left in their window are evicted by
//! [`LimitStore::evict_idle`] (run periodically); the number of counters is
//! capped, and when the cap is reached after eviction new subjects are let
//! through uncounted (with a warning) rather than refused, so memory
//! pressure cannot turn into an outage.
//!
//! # Several hubs
//!
//! Hubs that share limits need a shared store. A Redis [`LimitStore`] would
//! keep the same slot layout: one key per (rule, subject, slot) —
//! `gh:rl:{rule}:{subject}:{slot}` — written with `INCR` + `EXPIRE window+slot`,
//! and a Lua script that, atomically on the server, reads the `SLOTS + 1`
//! keys of the window (`MGET`), compares their sum with `max`, increments the
//! current slot only when under it, and returns the sum and the age of the
//! oldest non-empty slot for `retry_after`. Slot numbers come from Redis
//! `TIME` inside the script so hubs with skewed clocks agree; `undo` is a
//! `DECR` of the slot it incremented. (A sorted set per subject with
//! `ZREMRANGEBYSCORE` + `ZCARD` + `ZADD` is exact but costs memory per hit,
//! which the slot layout avoids.) The in-process `peek`-then-`hit` protocol
//! maps onto one script call per rule.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use dashmap::mapref::one::RefMut;

use super::Window;

/// Slots per window.
pub const SLOTS: u64 = 60;
/// Ring length: the current slot plus a full window of past ones.
const RING: usize = SLOTS as usize + 1;

/// Which counter: a rule and the subject it counts (a username, key id,
/// backend, tool, or the rule's own match value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterKey<'a> {
    pub rule: &'a str,
    pub subject: &'a str,
}

/// The answer of [`LimitStore::peek`] and [`LimitStore::hit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitResult {
    /// Under the limit; `count` includes this hit for [`LimitStore::hit`].
    Allowed { count: u64 },
    /// At the limit: `count` hits in the window; one more is allowed after `retry_after`.
    Refused { count: u64, retry_after: Duration },
}

/// Where sliding-window counters live. Implementations must make `hit`
/// atomic per key (check and increment as one step).
pub trait LimitStore: Send + Sync + std::fmt::Debug {
    /// Whether one more hit would be allowed, without counting it.
    fn peek(&self, key: CounterKey<'_>, window: Window, max: u64, now: Instant) -> HitResult;
    /// Counts one hit when under `max`.
    fn hit(&self, key: CounterKey<'_>, window: Window, max: u64, now: Instant) -> HitResult;
    /// Counts `n` (tokens) without a maximum: the caller admitted the request earlier.
    fn add(&self, key: CounterKey<'_>, window: Window, n: u64, now: Instant);
    /// Takes back one hit counted at `now` by [`LimitStore::hit`].
    fn undo(&self, key: CounterKey<'_>, window: Window, now: Instant);
    /// Hits currently in the window.
    fn count(&self, key: CounterKey<'_>, window: Window, now: Instant) -> u64;
    /// Drops every counter of `rule` (deleted or changed).
    fn forget_rule(&self, rule: &str);
    /// Drops counters with no hit left in their window; returns how many.
    fn evict_idle(&self, now: Instant) -> usize;
    /// How many counters exist.
    fn len(&self) -> usize;
    /// True when no counter exists.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One sliding window.
#[derive(Debug, Clone)]
struct Counter {
    window: Window,
    /// Absolute number of the newest slot seen.
    head: u64,
    slots: [u32; RING],
    total: u64,
}

impl Counter {
    fn new(window: Window, slot: u64) -> Self {
        Self { window, head: slot, slots: [0; RING], total: 0 }
    }

    /// Moves the window forward to `slot`, expiring what fell out.
    fn advance(&mut self, slot: u64) {
        if slot <= self.head {
            return;
        }
        if slot - self.head >= RING as u64 {
            self.slots = [0; RING];
            self.total = 0;
        } else {
            for s in self.head + 1..=slot {
                let i = (s % RING as u64) as usize;
                self.total -= u64::from(self.slots[i]);
                self.slots[i] = 0;
            }
        }
        self.head = slot;
    }

    /// Time until `total` drops below `max`, from `now` (at `slot_offset` into the head slot).
    fn retry_after(&self, max: u64, slot_len: Duration, into_slot: Duration) -> Duration {
        let need = (self.total + 1).saturating_sub(max);
        let mut dropped = 0u64;
        // Oldest slot first: it expires when the head reaches it + RING.
        for age in (0..RING as u64).rev() {
            let Some(abs) = self.head.checked_sub(age) else { continue };
            dropped += u64::from(self.slots[(abs % RING as u64) as usize]);
            if dropped >= need {
                // Slot `abs` leaves the ring when the head is abs + RING, i.e.
                // (RING - age) slots after the head slot's start.
                let slots_ahead = u32::try_from(RING as u64 - age).unwrap_or(u32::MAX);
                return (slot_len * slots_ahead).saturating_sub(into_slot);
            }
        }
        slot_len * RING as u32
    }
}

/// A counter key owned by the map.
#[derive(Debug, PartialEq, Eq)]
struct OwnedKey {
    rule: Box<str>,
    subject: Box<str>,
}

/// A view of a key, owned or borrowed, so lookups need no allocation.
trait KeyView {
    fn parts(&self) -> (&str, &str);
}

impl KeyView for OwnedKey {
    fn parts(&self) -> (&str, &str) {
        (&self.rule, &self.subject)
    }
}

impl KeyView for CounterKey<'_> {
    fn parts(&self) -> (&str, &str) {
        (self.rule, self.subject)
    }
}

impl Hash for dyn KeyView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (rule, subject) = self.parts();
        rule.hash(state);
        subject.hash(state);
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn KeyView + '_ {}

impl Hash for OwnedKey {
    // Must hash exactly like `dyn KeyView`.
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn KeyView).hash(state);
    }
}

impl<'a> Borrow<dyn KeyView + 'a> for OwnedKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

/// The in-process [`LimitStore`].
#[derive(Debug)]
pub struct MemoryStore {
    epoch: Instant,
    map: DashMap<OwnedKey, Counter>,
    max_counters: usize,
    /// Seconds since `epoch` of the last "table full" warning, to log it once a minute.
    warned_full: AtomicU64,
}

impl MemoryStore {
    /// A store holding at most `max_counters` counters; slot numbers count from `epoch`.
    pub fn new(epoch: Instant, max_counters: usize) -> Self {
        Self { epoch, map: DashMap::new(), max_counters: max_counters.max(1), warned_full: AtomicU64::new(u64::MAX) }
    }

    /// The absolute slot of `now` and how far into it `now` is.
    fn slot(&self, window: Window, now: Instant) -> (u64, Duration) {
        let since = now.saturating_duration_since(self.epoch);
        let len = window.slot_len();
        let slot = u64::try_from(since.as_nanos() / len.as_nanos()).unwrap_or(u64::MAX);
        let into = Duration::from_nanos(u64::try_from(since.as_nanos() % len.as_nanos()).unwrap_or(0));
        (slot, into)
    }

    /// Brings `c` to `now`: expires what left the window; starts over when
    /// the rule's window changed. Returns how far into its slot `now` is.
    fn catch_up(&self, c: &mut Counter, window: Window, now: Instant) -> Duration {
        let (slot, into) = self.slot(window, now);
        if c.window != window {
            // The rule's window changed: its history means nothing now.
            *c = Counter::new(window, slot);
        }
        c.advance(slot);
        into
    }

    /// The counter of `key`, created when absent; `None` when the table is
    /// full even after evicting idle counters.
    fn counter(&self, key: CounterKey<'_>, window: Window, now: Instant) -> Option<RefMut<'_, OwnedKey, Counter>> {
        if let Some(c) = self.map.get_mut(&key as &dyn KeyView) {
            return Some(c);
        }
        if self.map.len() >= self.max_counters {
            self.evict_idle(now);
            if self.map.len() >= self.max_counters {
                self.warn_full(now);
                return None;
            }
        }
        let (slot, _) = self.slot(window, now);
        let owned = OwnedKey { rule: key.rule.into(), subject: key.subject.into() };
        // Another caller may have inserted it meanwhile: the entry API settles that.
        Some(self.map.entry(owned).or_insert_with(|| Counter::new(window, slot)))
    }

    fn judge(&self, c: &mut Counter, window: Window, max: u64, now: Instant) -> Option<HitResult> {
        let into = self.catch_up(c, window, now);
        (c.total >= max).then(|| HitResult::Refused { count: c.total, retry_after: c.retry_after(max, window.slot_len(), into) })
    }

    fn record(c: &mut Counter) {
        Self::record_n(c, 1);
    }

    fn record_n(c: &mut Counter, n: u64) {
        let i = (c.head % RING as u64) as usize;
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let before = c.slots[i];
        c.slots[i] = before.saturating_add(n);
        c.total += u64::from(c.slots[i] - before);
    }

    fn warn_full(&self, now: Instant) {
        let minute = now.saturating_duration_since(self.epoch).as_secs() / 60;
        if self.warned_full.swap(minute, Ordering::Relaxed) != minute {
            tracing::warn!(max = self.max_counters, "rate limit table is full: new subjects are not counted until idle ones expire");
        }
    }
}

impl LimitStore for MemoryStore {
    fn peek(&self, key: CounterKey<'_>, window: Window, max: u64, now: Instant) -> HitResult {
        if max == 0 {
            return HitResult::Refused { count: 0, retry_after: window.duration() };
        }
        match self.map.get_mut(&key as &dyn KeyView) {
            Some(mut c) => self.judge(&mut c, window, max, now).unwrap_or(HitResult::Allowed { count: c.total }),
            None => HitResult::Allowed { count: 0 },
        }
    }

    fn hit(&self, key: CounterKey<'_>, window: Window, max: u64, now: Instant) -> HitResult {
        if max == 0 {
            return HitResult::Refused { count: 0, retry_after: window.duration() };
        }
        let Some(mut c) = self.counter(key, window, now) else {
            return HitResult::Allowed { count: 1 };
        };
        if let Some(refused) = self.judge(&mut c, window, max, now) {
            return refused;
        }
        Self::record(&mut c);
        HitResult::Allowed { count: c.total }
    }

    fn add(&self, key: CounterKey<'_>, window: Window, n: u64, now: Instant) {
        let Some(mut c) = self.counter(key, window, now) else { return };
        self.catch_up(&mut c, window, now);
        Self::record_n(&mut c, n);
    }

    fn undo(&self, key: CounterKey<'_>, window: Window, now: Instant) {
        if let Some(mut c) = self.map.get_mut(&key as &dyn KeyView) {
            let (slot, _) = self.slot(window, now);
            c.advance(slot);
            // The hit went into `slot` unless the window moved on since.
            if c.head.saturating_sub(slot) < RING as u64 {
                let i = (slot % RING as u64) as usize;
                if c.slots[i] > 0 {
                    c.slots[i] -= 1;
                    c.total -= 1;
                }
            }
        }
    }

    fn count(&self, key: CounterKey<'_>, window: Window, now: Instant) -> u64 {
        match self.map.get_mut(&key as &dyn KeyView) {
            Some(mut c) if c.window == window => {
                let (slot, _) = self.slot(window, now);
                c.advance(slot);
                c.total
            }
            _ => 0,
        }
    }

    fn forget_rule(&self, rule: &str) {
        self.map.retain(|k, _| &*k.rule != rule);
    }

    fn evict_idle(&self, now: Instant) -> usize {
        let before = self.map.len();
        self.map.retain(|_, c| {
            let (slot, _) = self.slot(c.window, now);
            c.advance(slot);
            c.total > 0
        });
        before.saturating_sub(self.map.len())
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn key(subject: &str) -> CounterKey<'_> {
        CounterKey { rule: "r", subject }
    }

    #[test]
    fn counts_slide_and_expire() {
        let t0 = Instant::now();
        let m = MemoryStore::new(t0, 100);
        assert_eq!(m.hit(key("a"), Window::Minute, 3, t0), HitResult::Allowed { count: 1 });
        assert_eq!(m.hit(key("a"), Window::Minute, 3, t0 + 10 * S), HitResult::Allowed { count: 2 });
        assert_eq!(m.hit(key("a"), Window::Minute, 3, t0 + 20 * S), HitResult::Allowed { count: 3 });
        // Full: the oldest hit (slot 0) leaves the ring at slot 61.
        let HitResult::Refused { count: 3, retry_after } = m.hit(key("a"), Window::Minute, 3, t0 + 30 * S) else { panic!() };
        assert_eq!(retry_after, 31 * S);
        assert_eq!(m.count(key("a"), Window::Minute, t0 + 30 * S), 3);
        // Other subjects are independent.
        assert_eq!(m.hit(key("b"), Window::Minute, 3, t0 + 30 * S), HitResult::Allowed { count: 1 });
        // Never more than max in any one-minute interval: at 60 s the first hit still counts...
        assert!(matches!(m.hit(key("a"), Window::Minute, 3, t0 + 60 * S), HitResult::Refused { .. }));
        // ...and at 61 s it does not.
        assert_eq!(m.hit(key("a"), Window::Minute, 3, t0 + 61 * S), HitResult::Allowed { count: 3 });
        // Long after, everything expired and the counters are evicted.
        assert_eq!(m.count(key("a"), Window::Minute, t0 + 200 * S), 0);
        assert_eq!(m.evict_idle(t0 + 200 * S), 2);
        assert!(m.is_empty());
    }

    #[test]
    fn peek_does_not_count_and_undo_takes_back() {
        let t0 = Instant::now();
        let m = MemoryStore::new(t0, 100);
        assert_eq!(m.peek(key("a"), Window::Hour, 1, t0), HitResult::Allowed { count: 0 });
        assert!(m.is_empty(), "peeking at an unknown subject creates nothing");
        m.hit(key("a"), Window::Hour, 1, t0);
        assert!(matches!(m.peek(key("a"), Window::Hour, 1, t0), HitResult::Refused { .. }));
        m.undo(key("a"), Window::Hour, t0);
        assert_eq!(m.hit(key("a"), Window::Hour, 1, t0), HitResult::Allowed { count: 1 });
    }

    #[test]
    fn retry_after_counts_enough_expiries() {
        let t0 = Instant::now();
        let m = MemoryStore::new(t0, 100);
        // Day window: 24-minute slots. Two hits in slot 0, one in slot 1.
        m.hit(key("a"), Window::Day, 3, t0);
        m.hit(key("a"), Window::Day, 3, t0);
        m.hit(key("a"), Window::Day, 3, t0 + Duration::from_secs(24 * 60));
        let at = t0 + Duration::from_secs(24 * 60 * 2 + 30);
        let HitResult::Refused { retry_after, .. } = m.hit(key("a"), Window::Day, 3, at) else { panic!() };
        // Slot 0 leaves the ring at slot 61, i.e. 61 * 24 min after t0.
        assert_eq!(at + retry_after, t0 + Duration::from_secs(61 * 24 * 60));
    }

    #[test]
    fn table_is_bounded() {
        let t0 = Instant::now();
        let m = MemoryStore::new(t0, 2);
        m.hit(key("a"), Window::Minute, 1, t0);
        m.hit(key("b"), Window::Minute, 1, t0);
        // Full: a new subject passes uncounted instead of being refused.
        assert_eq!(m.hit(key("c"), Window::Minute, 1, t0), HitResult::Allowed { count: 1 });
        assert_eq!(m.hit(key("c"), Window::Minute, 1, t0), HitResult::Allowed { count: 1 });
        assert_eq!(m.len(), 2);
        // Once the others expire there is room again.
        assert_eq!(m.hit(key("c"), Window::Minute, 1, t0 + 120 * S), HitResult::Allowed { count: 1 });
        assert!(matches!(m.hit(key("c"), Window::Minute, 1, t0 + 120 * S), HitResult::Refused { .. }));
        m.forget_rule("r");
        assert!(m.is_empty());
    }
}
