//! Where instances put their totals so that one of them can publish the fleet's: the
//! [`FleetStore`] trait, what an instance writes ([`InstanceReport`]), and the two stores,
//! [`MemoryStore`] (in process, the default) and, with the `redis` feature, `RedisStore`.
//!
//! # The model
//!
//! Every period (a UTC minute, a UTC hour, a day's or a month's unique-count sketch) is one
//! record holding **one entry per instance**, and an entry holds that instance's **absolute**
//! totals for the period, never an increment. Writing is therefore idempotent: a retried write
//! rewrites the same values, and a store that lost everything (a Redis restart; the machine's
//! Redis keeps nothing on disk) is whole again after every live instance's next write, because
//! each write carries every period the instance still holds. Readers sum the entries (totals)
//! or merge them (sketches, register-wise max), so nothing can be counted twice. A store may
//! do that work as entries arrive, so that reading costs the same whatever the fleet's size:
//! `RedisStore` keeps a running sum beside the entries and merges sketches into one per period.
//!
//! An instance that stops leaves its entries behind until they expire: the payments it
//! processed still count in the periods they happened in.
//!
//! Locks decide who publishes: [`FleetStore::try_lock`] grants a name to one owner until it
//! expires, so exactly one instance publishes each KPI round and each rollup.
//!
//! # Lost data
//!
//! A shared store can lose everything at once (a Redis restarted empty, flushed, or failed
//! over without a replica). Live instances rewrite their absolute totals on their next write,
//! but what an instance wrote before the loss and cannot write again (it stopped, or no longer
//! holds the period) is gone, and so are the locks. So every read says whether it is whole:
//! [`FleetRead::complete`] is `false` when the store lost data after the earliest period read
//! began. The scheduler publishes nothing from an incomplete read: a period begun before a
//! loss is never published from what is left (nor published a second time because its lock
//! was lost), and a reader can tell "unknown since the restart" from a real zero.

#[cfg(feature = "redis")]
use std::fmt::Write as _;
use std::{
    fmt,
    future::Future,
    pin::Pin,
    time::{Duration, SystemTime},
};

use paymetrics::{kpi::PeriodTotals, uniques::HyperLogLog};

mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_hll;

#[cfg(feature = "redis")]
pub use self::redis::{
    DEFAULT_NAMESPACE, DEFAULT_OPERATION_TIMEOUT, RedisStore, RedisStoreBuilder,
};
pub use memory::MemoryStore;

/// How long a minute's totals are kept after an instance last wrote them (the KPIs read the
/// last hour of minutes).
pub const MINUTE_RETENTION: Duration = Duration::from_secs(2 * 3600);
/// How long an hour's totals are kept after an instance last wrote them (the daily rollup and
/// the 24-hour KPI read the last 25 hours).
pub const HOUR_RETENTION: Duration = Duration::from_secs(27 * 3600);
/// How long a sketch is kept after an instance last wrote it (the daily rollup reads the day
/// that just ended).
pub const SKETCH_RETENTION: Duration = Duration::from_secs(49 * 3600);

/// The future a [`FleetStore`] returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why a store operation failed. The scheduler logs it (rate-limited) and tries again on its
/// next tick; recording is never affected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store did not answer in time.
    #[error("the fleet store did not answer within {0:?}")]
    Timeout(Duration),
    /// The store could not be reached or refused the operation.
    #[error("fleet store unavailable: {0}")]
    Unavailable(String),
    /// The store answered with something this version cannot read.
    #[error("unexpected data in the fleet store: {0}")]
    Corrupt(String),
}

/// The length of a totals period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Granularity {
    /// A UTC minute: the rolling last-hour KPIs are summed from minutes.
    Minute,
    /// A UTC hour: rollups and the 24-hour KPI are summed from hours.
    Hour,
}

impl Granularity {
    /// The period's length in seconds.
    pub const fn seconds(self) -> u64 {
        match self {
            Granularity::Minute => 60,
            Granularity::Hour => 3600,
        }
    }

    /// Its name in store keys.
    pub const fn as_str(self) -> &'static str {
        match self {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
        }
    }
}

/// Which unique-count sketch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SketchKind {
    /// Users active in a UTC day; the period is the day number since the epoch.
    DailyActiveUsers,
    /// Users active in a UTC month; the period is `year * 100 + month` (`202611`).
    MonthlyActiveUsers,
    /// Payment senders in a UTC day; the period is the day number since the epoch.
    DailySenders,
}

impl SketchKind {
    /// Its name in store keys.
    pub const fn as_str(self) -> &'static str {
        match self {
            SketchKind::DailyActiveUsers => "users",
            SketchKind::MonthlyActiveUsers => "monthly_users",
            SketchKind::DailySenders => "senders",
        }
    }
}

/// One sketch: its kind and period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SketchKey {
    /// Which sketch.
    pub kind: SketchKind,
    /// Its period (see [`SketchKind`]).
    pub period: u64,
}

impl SketchKey {
    /// The daily-active-users sketch of the UTC day containing `at`.
    pub fn daily_active_users(at: SystemTime) -> Self {
        Self {
            kind: SketchKind::DailyActiveUsers,
            period: paymetrics::clock::unix_seconds(at) / 86_400,
        }
    }

    /// The monthly-active-users sketch of the UTC month containing `at`.
    pub fn monthly_active_users(at: SystemTime) -> Self {
        let (year, month) = paymetrics::clock::year_month(at);
        Self {
            kind: SketchKind::MonthlyActiveUsers,
            period: month_period(year, month),
        }
    }

    /// The payment-senders sketch of the UTC day containing `at`.
    pub fn daily_senders(at: SystemTime) -> Self {
        Self {
            kind: SketchKind::DailySenders,
            period: paymetrics::clock::unix_seconds(at) / 86_400,
        }
    }
}

#[cfg(any(feature = "redis", test))]
impl SketchKey {
    /// When the sketch's period began (Unix seconds): whatever the store lost after this, the
    /// sketch may miss.
    pub(crate) fn start(self) -> u64 {
        match self.kind {
            SketchKind::DailyActiveUsers | SketchKind::DailySenders => {
                self.period.saturating_mul(86_400)
            }
            SketchKind::MonthlyActiveUsers => {
                let (year, month) = (self.period / 100, (self.period % 100).clamp(1, 12));
                days_from_civil(year, month).saturating_mul(86_400)
            }
        }
    }
}

pub(crate) fn month_period(year: i64, month: u32) -> u64 {
    (year.max(0) as u64) * 100 + u64::from(month)
}

/// Days from 1970-01-01 to the first day of `month` (1 to 12) of `year`, by Howard Hinnant's
/// algorithm (the inverse of `paymetrics::clock::year_month`); 0 before 1970.
#[cfg(any(feature = "redis", test))]
fn days_from_civil(year: u64, month: u64) -> u64 {
    // Far past any real period; keeps the arithmetic below in range for corrupt input.
    let year = year.min(1_000_000) as i64 - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u64::try_from(era * 146_097 + doe - 719_468).unwrap_or(0)
}

/// What one instance writes: its absolute totals for every minute and hour it still holds, and
/// its sketches. Built by the scheduler from the instance's windows and uniques.
#[derive(Debug, Clone)]
pub struct InstanceReport {
    /// When the report was taken (by the injected clock); stores expire data relative to it.
    pub taken_at: SystemTime,
    /// `(minute start in Unix seconds, totals)`, non-empty minutes only.
    pub minutes: Vec<(u64, PeriodTotals)>,
    /// `(hour start in Unix seconds, totals)`, non-empty hours only.
    pub hours: Vec<(u64, PeriodTotals)>,
    /// Sketch registers ([`HyperLogLog::to_bytes`]).
    pub sketches: Vec<(SketchKey, Vec<u8>)>,
}

impl InstanceReport {
    /// An empty report taken at `taken_at`.
    pub fn new(taken_at: SystemTime) -> Self {
        Self {
            taken_at,
            minutes: vec![],
            hours: vec![],
            sketches: vec![],
        }
    }
}

/// What a store read returns: the fleet's value, and whether the store holds all of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FleetRead<T> {
    /// The fleet's value: every instance's entries summed (totals) or merged (sketches).
    pub value: T,
    /// `false` when the store lost data (a Redis restarted empty, or flushed) after the
    /// earliest period read began: `value` then holds only what instances wrote again since,
    /// and may fall short of the fleet's real figure by any amount. `true` otherwise, so a
    /// complete zero is a real zero (no instance recorded anything in those periods).
    pub complete: bool,
}

impl<T> FleetRead<T> {
    /// A read of `value`, complete or not.
    pub fn new(value: T, complete: bool) -> Self {
        Self { value, complete }
    }

    /// The value when the read is complete; `None` when part of it was lost.
    pub fn into_complete(self) -> Option<T> {
        self.complete.then_some(self.value)
    }
}

/// Shared storage for a fleet's per-instance totals and sketches, and its publication locks.
///
/// Implementations must be idempotent (an entry is replaced, never added to), must bound every
/// operation in time, and must never panic. The scheduler calls them from its own task only,
/// and takes the result of each call as the store's health: an `Ok` must mean that the store
/// answered.
pub trait FleetStore: Send + Sync + fmt::Debug + 'static {
    /// Replaces `instance`'s entries for every period in `report`. Reaches the store even when
    /// the report is empty, so that `Ok` always means the store acknowledged.
    fn write<'a>(&'a self, instance: &'a str, report: &'a InstanceReport) -> StoreFuture<'a, ()>;

    /// The fleet's totals: every instance's entries for the periods starting at `starts`
    /// (Unix seconds, aligned to `granularity`), summed. In a complete read, missing periods
    /// are real zeros; see [`FleetRead::complete`]. `now` is the injected clock's time: a store
    /// that notices here that it lost data records the loss as of `now`.
    fn totals<'a>(
        &'a self,
        granularity: Granularity,
        starts: &'a [u64],
        now: SystemTime,
    ) -> StoreFuture<'a, FleetRead<PeriodTotals>>;

    /// The fleet's sketch: every instance's registers for `key`, merged; `None` when no
    /// instance wrote one. Complete when the store lost nothing since the sketch's period
    /// began; `now` as for [`totals`](Self::totals).
    fn sketch(
        &self,
        key: SketchKey,
        now: SystemTime,
    ) -> StoreFuture<'_, FleetRead<Option<HyperLogLog>>>;

    /// Takes the lock `name` for `owner` until `ttl` has passed; `true` when `owner` holds it
    /// (taken now, or already held by `owner`, so a retry after a failure proceeds), `false`
    /// when another owner does. `now` is the injected clock's time, for stores that keep time
    /// themselves.
    fn try_lock<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
        now: SystemTime,
    ) -> StoreFuture<'a, bool>;
}

#[cfg(feature = "redis")]
/// Encodes totals as `name=value` pairs (`payments=5,volume=12.5,...`): readable in
/// `redis-cli`, exact (`f64`'s `Display` round-trips), and tolerant of added fields.
pub(crate) fn encode_totals(totals: &PeriodTotals) -> String {
    let mut out = String::with_capacity(160);
    for (i, (name, value)) in totals.fields().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}={value}");
    }
    out
}

#[cfg(feature = "redis")]
/// Decodes [`encode_totals`]; unknown names are ignored, malformed pairs are an error.
pub(crate) fn decode_totals(encoded: &str) -> Result<PeriodTotals, StoreError> {
    let mut fields = Vec::with_capacity(9);
    for pair in encoded.split(',').filter(|p| !p.is_empty()) {
        let parsed = pair
            .split_once('=')
            .and_then(|(name, value)| Some((name, value.parse::<f64>().ok()?)))
            .filter(|(_, value)| value.is_finite());
        match parsed {
            Some(field) => fields.push(field),
            None => return Err(StoreError::Corrupt(format!("totals field {pair:?}"))),
        }
    }
    Ok(PeriodTotals::from_fields(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "redis")]
    #[test]
    fn totals_round_trip_exactly() {
        let totals = PeriodTotals {
            payments: 12,
            payments_succeeded: 11,
            volume: 1234.56,
            fees: 0.1 + 0.2,
            registrations: 3,
            confirmed_fraud: 2,
            confirmed_fraud_blocked: 1,
            health_checks: 60,
            health_checks_ok: 59,
        };
        let encoded = encode_totals(&totals);
        assert!(encoded.starts_with("payments=12,payments_succeeded=11,volume=1234.56,"));
        assert_eq!(decode_totals(&encoded).unwrap(), totals);
        assert_eq!(
            decode_totals("payments=2,future_field=9").unwrap().payments,
            2
        );
        assert!(decode_totals("payments=x").is_err());
        assert!(decode_totals("payments=NaN").is_err());
    }

    #[test]
    fn sketch_keys() {
        // 2026-11-28T02:40:00Z
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_833_600);
        assert_eq!(SketchKey::daily_active_users(at).period, 20_785);
        assert_eq!(SketchKey::monthly_active_users(at).period, 202_611);
        assert_eq!(SketchKey::daily_senders(at).kind, SketchKind::DailySenders);
    }

    #[test]
    fn sketch_periods_start_where_their_day_or_month_does() {
        let unix = |at: SystemTime| paymetrics::clock::unix_seconds(at);
        for s in [
            0,
            1_795_833_600,
            1_893_456_000 - 1,
            951_782_400,
            4_107_542_400,
        ] {
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(s);
            let day = paymetrics::clock::day_start(at);
            assert_eq!(SketchKey::daily_active_users(at).start(), unix(day));
            assert_eq!(SketchKey::daily_senders(at).start(), unix(day));
            // The month's start: its first day, and the day before is in another month.
            let month = SketchKey::monthly_active_users(at);
            let first = SystemTime::UNIX_EPOCH + Duration::from_secs(month.start());
            assert!(first <= at, "{s}");
            assert_eq!(SketchKey::monthly_active_users(first), month, "{s}");
            if let Some(before) = first.checked_sub(Duration::from_secs(1))
                && before >= SystemTime::UNIX_EPOCH
                && month.start() > 0
            {
                assert_ne!(SketchKey::monthly_active_users(before), month, "{s}");
            }
        }
        let odd = SketchKey {
            kind: SketchKind::MonthlyActiveUsers,
            period: u64::MAX,
        };
        let _ = odd.start(); // whatever the store holds, no panic
    }
}
