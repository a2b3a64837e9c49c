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
//! or merge them (sketches, register-wise max), so nothing can be counted twice.
//!
//! An instance that stops leaves its entries behind until they expire: the payments it
//! processed still count in the periods they happened in.
//!
//! Locks decide who publishes: [`FleetStore::try_lock`] grants a name to one owner until it
//! expires, so exactly one instance publishes each KPI round and each rollup.

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

pub(crate) fn month_period(year: i64, month: u32) -> u64 {
    (year.max(0) as u64) * 100 + u64::from(month)
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

/// Shared storage for a fleet's per-instance totals and sketches, and its publication locks.
///
/// Implementations must be idempotent (an entry is replaced, never added to), must bound every
/// operation in time, and must never panic. The scheduler calls them from its own task only.
pub trait FleetStore: Send + Sync + fmt::Debug + 'static {
    /// Replaces `instance`'s entries for every period in `report`.
    fn write<'a>(&'a self, instance: &'a str, report: &'a InstanceReport) -> StoreFuture<'a, ()>;

    /// The fleet's totals: every instance's entries for the periods starting at `starts`
    /// (Unix seconds, aligned to `granularity`), summed. Missing periods count as zero.
    fn totals<'a>(
        &'a self,
        granularity: Granularity,
        starts: &'a [u64],
    ) -> StoreFuture<'a, PeriodTotals>;

    /// The fleet's sketch: every instance's registers for `key`, merged; `None` when no
    /// instance wrote one.
    fn sketch(&self, key: SketchKey) -> StoreFuture<'_, Option<HyperLogLog>>;

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
}
