//! Counting distinct users in process, so no user id ever leaves it.
//!
//! Sending user ids as DogStatsD set values (`business.user.daily_active`). That leaks
//! identifiers to the metrics pipeline, and a DogStatsD set counts uniques per 10-second flush
//! only: "daily active" built from it is meaningless. Here each id is hashed in process into a
//! [`HyperLogLog`] sketch per UTC day (and month), and only the estimate is published as a gauge.
//! Sketches merge exactly (register-wise max), so a fleet's daily actives are the merge of every
//! instance's sketch (see `paymetrics-automation`'s fleet store), never a sum.

use std::{
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicU8, Ordering::Relaxed},
    },
    time::SystemTime,
};

use crate::{
    clock::{self, SharedClock},
    events::{payment, user},
};

/// Sketch precision: `2^14` one-byte registers (16 KiB).
pub const PRECISION: u32 = 14;
const REGISTERS: usize = 1 << PRECISION;
/// The sketch's standard error, `1.04 / sqrt(2^14)`: 0.81 %.
pub const STANDARD_ERROR: f64 = 0.008125;

/// A stable 64-bit hash (FNV-1a, then MurmurHash3's finaliser for avalanche): the same id
/// hashes the same in every process and every build, so fleet sketches merge.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A HyperLogLog sketch with atomic registers: inserts are lock-free.
///
/// ```
/// use paymetrics::uniques::HyperLogLog;
/// let hll = HyperLogLog::new();
/// for id in ["u1", "u2", "u1"] {
///     hll.insert(id.as_bytes());
/// }
/// assert_eq!(hll.estimate().round(), 2.0);
/// ```
#[derive(Debug)]
pub struct HyperLogLog {
    registers: Box<[AtomicU8]>,
}

impl Default for HyperLogLog {
    fn default() -> Self {
        Self::new()
    }
}

impl HyperLogLog {
    /// An empty sketch.
    pub fn new() -> Self {
        Self {
            registers: (0..REGISTERS).map(|_| AtomicU8::new(0)).collect(),
        }
    }

    /// Adds an id (hashed here; the id itself is not kept).
    pub fn insert(&self, id: &[u8]) {
        self.insert_hash(stable_hash(id));
    }

    /// Adds a value already hashed with [`stable_hash`].
    pub fn insert_hash(&self, hash: u64) {
        let index = (hash >> (64 - PRECISION)) as usize;
        let rest = hash << PRECISION;
        let rank = (rest.leading_zeros().min(64 - PRECISION) + 1) as u8;
        let register = &self.registers[index];
        if register.load(Relaxed) < rank {
            register.fetch_max(rank, Relaxed);
        }
    }

    /// The estimated number of distinct ids (standard error [`STANDARD_ERROR`]).
    pub fn estimate(&self) -> f64 {
        let m = REGISTERS as f64;
        let mut sum = 0.0;
        let mut zeros = 0;
        for r in self.registers.iter() {
            let r = r.load(Relaxed);
            sum += 2f64.powi(-i32::from(r));
            zeros += usize::from(r == 0);
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln() // linear counting for small cardinalities
        } else {
            raw
        }
    }

    /// The registers, for storage elsewhere (a fleet store).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.registers.iter().map(|r| r.load(Relaxed)).collect()
    }

    /// Merges registers produced by [`to_bytes`](Self::to_bytes) (register-wise max; exact).
    /// Returns `false`, merging nothing, when `bytes` has the wrong length.
    pub fn merge_bytes(&self, bytes: &[u8]) -> bool {
        if bytes.len() != REGISTERS {
            return false;
        }
        for (r, b) in self.registers.iter().zip(bytes) {
            r.fetch_max(*b, Relaxed);
        }
        true
    }

    /// Merges another sketch into this one.
    pub fn merge(&self, other: &HyperLogLog) {
        for (r, o) in self.registers.iter().zip(other.registers.iter()) {
            r.fetch_max(o.load(Relaxed), Relaxed);
        }
    }
}

/// The sketches of one period.
#[derive(Debug, Clone)]
pub struct PeriodSketches {
    /// UTC day number (days since the epoch).
    pub day: u64,
    /// `(year, month)` in UTC.
    pub month: (i64, u32),
    /// Users active this day.
    pub daily_active: Arc<HyperLogLog>,
    /// Users active this month.
    pub monthly_active: Arc<HyperLogLog>,
    /// Payment senders this day.
    pub daily_senders: Arc<HyperLogLog>,
}

impl PeriodSketches {
    fn new(at: SystemTime, previous: Option<&PeriodSketches>) -> Self {
        let month = clock::year_month(at);
        Self {
            day: clock::unix_seconds(at) / 86_400,
            month,
            daily_active: Arc::default(),
            monthly_active: match previous {
                Some(p) if p.month == month => Arc::clone(&p.monthly_active),
                _ => Arc::default(),
            },
            daily_senders: Arc::default(),
        }
    }
}

#[derive(Debug)]
struct Periods {
    current: PeriodSketches,
    previous: Option<PeriodSketches>,
}

/// Distinct active users (per UTC day and month) and payment senders (per UTC day).
///
/// ```
/// use paymetrics::{clock::SystemClock, uniques::Uniques};
/// let uniques = Uniques::new(std::sync::Arc::new(SystemClock));
/// uniques.observe_active_user("user-1");
/// uniques.observe_active_user("user-1");
/// uniques.observe_sender("user-1");
/// assert_eq!(uniques.current().daily_active.estimate().round(), 1.0);
/// ```
#[derive(Debug)]
pub struct Uniques {
    clock: SharedClock,
    periods: RwLock<Periods>,
}

impl Uniques {
    /// Tracks periods by `clock`.
    pub fn new(clock: SharedClock) -> Self {
        let current = PeriodSketches::new(clock.now(), None);
        Self {
            clock,
            periods: RwLock::new(Periods {
                current,
                previous: None,
            }),
        }
    }

    /// Runs `f` on the sketches for now (under the read lock: no reference counts touched on
    /// the recording path), rolling the day (and month) over when the clock has moved on.
    fn with_current<R>(&self, f: impl Fn(&PeriodSketches) -> R) -> R {
        let now = self.clock.now();
        let day = clock::unix_seconds(now) / 86_400;
        {
            let periods = self.periods.read().unwrap_or_else(PoisonError::into_inner);
            if periods.current.day == day {
                return f(&periods.current);
            }
        }
        let mut periods = self.periods.write().unwrap_or_else(PoisonError::into_inner);
        if periods.current.day != day {
            let next = PeriodSketches::new(now, Some(&periods.current));
            periods.previous = Some(std::mem::replace(&mut periods.current, next));
        }
        f(&periods.current)
    }

    /// Counts `user_id` as active today and this month.
    pub fn observe_active_user(&self, user_id: &str) {
        let hash = stable_hash(user_id.as_bytes());
        self.with_current(|s| {
            s.daily_active.insert_hash(hash);
            s.monthly_active.insert_hash(hash);
        });
    }

    /// Counts `sender_id` as a payment sender today.
    pub fn observe_sender(&self, sender_id: &str) {
        let hash = stable_hash(sender_id.as_bytes());
        self.with_current(|s| s.daily_senders.insert_hash(hash));
    }

    /// The current period's sketches.
    pub fn current(&self) -> PeriodSketches {
        self.with_current(PeriodSketches::clone)
    }

    /// Records this process's estimates now, as gauges through the `metrics` facade (into the
    /// current recorder), each rounded to a whole number and without tags:
    /// [`user::DAILY_ACTIVE`] and [`user::MONTHLY_ACTIVE`] (users active in the current UTC day
    /// and month) and [`payment::UNIQUE_SENDERS`] (payment senders in the current UTC day).
    ///
    /// Nothing calls this by itself: feeding the sketches (through
    /// [`BusinessEvents`](crate::events::BusinessEvents)) publishes nothing. Call it on a
    /// schedule (every collector interval), or let `paymetrics-automation`'s scheduler do it by
    /// giving it these uniques. Distinct counts do not add up across a fleet's instances: a
    /// fleet publishes the merge of its sketches instead (see `paymetrics-automation`).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use paymetrics::{clock::SystemClock, events::{payment, user}, uniques::Uniques};
    ///
    /// let uniques = Uniques::new(Arc::new(SystemClock));
    /// for id in ["user-1", "user-2", "user-1"] {
    ///     uniques.observe_active_user(id);
    /// }
    /// uniques.observe_sender("user-2");
    /// let recorded = paymetrics::testing::capture(|| uniques.publish());
    /// assert_eq!(recorded.gauge(user::DAILY_ACTIVE, &[]), Some(2.0));
    /// assert_eq!(recorded.gauge(user::MONTHLY_ACTIVE, &[]), Some(2.0));
    /// assert_eq!(recorded.gauge(payment::UNIQUE_SENDERS, &[]), Some(1.0));
    /// ```
    pub fn publish(&self) {
        let current = self.current();
        metrics::gauge!(user::DAILY_ACTIVE).set(current.daily_active.estimate().round());
        metrics::gauge!(user::MONTHLY_ACTIVE).set(current.monthly_active.estimate().round());
        metrics::gauge!(payment::UNIQUE_SENDERS).set(current.daily_senders.estimate().round());
    }

    /// The sketches of the UTC day containing `day`, if this `Uniques` still holds it: the
    /// current day, and the day before it that was current last (yesterday, for a process that
    /// records every day).
    pub fn day(&self, day: SystemTime) -> Option<PeriodSketches> {
        let wanted = clock::unix_seconds(day) / 86_400;
        let current = self.current();
        if current.day == wanted {
            return Some(current);
        }
        self.previous().filter(|p| p.day == wanted)
    }

    /// The sketches of the day that was current before this one, once a day has rolled over
    /// (yesterday, unless no day was observed in between), for the daily rollup.
    pub fn previous(&self) -> Option<PeriodSketches> {
        self.with_current(|_| ());
        self.periods
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .previous
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn within_two_percent_for_100_000_ids() {
        let hll = HyperLogLog::new();
        for i in 0..100_000 {
            hll.insert(format!("user-{i}").as_bytes());
            hll.insert(format!("user-{i}").as_bytes());
        }
        let error = (hll.estimate() - 100_000.0).abs() / 100_000.0;
        assert!(error < 0.02, "error {error}");
    }

    #[test]
    fn small_counts_are_near_exact_and_merges_are_unions() {
        let a = HyperLogLog::new();
        let b = HyperLogLog::new();
        for i in 0..100 {
            a.insert(format!("a{i}").as_bytes());
            b.insert(format!("b{i}").as_bytes());
            b.insert(format!("a{i}").as_bytes());
        }
        assert_eq!(a.estimate().round(), 100.0);
        assert!(a.merge_bytes(&b.to_bytes()));
        assert!((a.estimate() - 200.0).abs() <= 2.0, "{}", a.estimate());
        assert!(!a.merge_bytes(&[1, 2, 3]));
    }

    #[test]
    fn days_and_months_roll_over() {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 * 30));
        let uniques = Uniques::new(Arc::new(clock.clone()));
        uniques.observe_active_user("a");
        uniques.observe_active_user("b");
        clock.advance(Duration::from_secs(86_400)); // 1970-02-01: a new month too
        uniques.observe_active_user("a");
        assert_eq!(uniques.current().daily_active.estimate().round(), 1.0);
        assert_eq!(uniques.current().monthly_active.estimate().round(), 1.0);
        assert_eq!(
            uniques.previous().unwrap().daily_active.estimate().round(),
            2.0
        );
        clock.advance(Duration::from_secs(86_400));
        uniques.observe_active_user("c");
        assert_eq!(uniques.current().daily_active.estimate().round(), 1.0);
        assert_eq!(uniques.current().monthly_active.estimate().round(), 2.0);
    }

    #[test]
    fn a_day_is_found_while_it_is_today_or_yesterday() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 * 10 + 5);
        let clock = ManualClock::new(start);
        let uniques = Uniques::new(Arc::new(clock.clone()));
        uniques.observe_active_user("a");
        let estimate = |at| uniques.day(at).map(|s| s.daily_active.estimate().round());
        assert_eq!(estimate(start), Some(1.0));
        clock.advance(Duration::from_secs(86_400));
        uniques.observe_active_user("b");
        uniques.observe_active_user("c");
        assert_eq!(estimate(start), Some(1.0));
        assert_eq!(estimate(start + Duration::from_secs(86_400)), Some(2.0));
        clock.advance(Duration::from_secs(2 * 86_400));
        assert_eq!(estimate(start), None);
        assert_eq!(estimate(start + Duration::from_secs(86_400 * 100)), None);
    }
}
