//! Hourly and daily rollups for the period that just ended.
//!
//! The original strategy tags each rollup with its hour (`hour:2026-11-28T10:00:00`), a new tag value every
//! hour: unbounded cardinality. Here each rollup is a gauge carrying the DogStatsD timestamp
//! (`|T`) of the last second of the period it describes (Datadog ingests such points up to an
//! hour old, so not the period's start), tagged only `aggregation:hourly` or `aggregation:daily`.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use paymetrics::{kpi::PeriodTotals, rollup::HourlyRollup};
//!
//! let hour = UNIX_EPOCH + Duration::from_secs(10 * 3600);
//! let totals = PeriodTotals { payments: 4, payments_succeeded: 3, volume: 300.0, fees: 8.7, ..Default::default() };
//! let rollup = HourlyRollup::from_totals(hour, &totals);
//! assert_eq!(rollup.success_rate_percent, 75.0);
//! let points = rollup.points();
//! assert_eq!(points[0].name, "aggregated.payments.total");
//! assert_eq!(points[0].timestamp, 10 * 3600 + 3599);
//! ```

use std::time::{Duration, SystemTime};

use crate::{
    PaymetricsHandle,
    clock::{day_start, hour_start, unix_seconds},
    kpi::{PeriodTotals, percent, round2},
    message::TimestampedMetric,
    uniques::Uniques,
    window::{Span, Windows},
};

/// Gauge (timestamped), payments completed in the hour, any status.
pub const HOURLY_TOTAL: &str = "aggregated.payments.total";
/// Gauge (timestamped), percent of the hour's completions that succeeded; 0 when none.
pub const HOURLY_SUCCESS_RATE: &str = "aggregated.payments.success_rate";
/// Gauge (timestamped), mean value of the hour's successful payments; 0 when none.
pub const HOURLY_AVG_VALUE: &str = "aggregated.payments.avg_value";
/// Gauge (timestamped), sum of the hour's successful payment values.
pub const HOURLY_TOTAL_VOLUME: &str = "aggregated.payments.total_volume";
/// Gauge (timestamped), sum of the hour's fees.
pub const HOURLY_TOTAL_FEES: &str = "aggregated.payments.total_fees";
/// Gauge (timestamped), payments completed in the day.
pub const DAILY_TOTAL_PAYMENTS: &str = "aggregated.daily.total_payments";
/// Gauge (timestamped), sum of the day's successful payment values.
pub const DAILY_TOTAL_VOLUME: &str = "aggregated.daily.total_volume";
/// Gauge (timestamped), distinct active users of the day (HyperLogLog estimate).
pub const DAILY_TOTAL_USERS: &str = "aggregated.daily.total_users";
/// Gauge (timestamped), sum of the day's fees.
pub const DAILY_TOTAL_REVENUE: &str = "aggregated.daily.total_revenue";
/// Tag key on every rollup: `hourly` or `daily`.
pub const AGGREGATION: &str = "aggregation";

/// The rollup of one UTC hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HourlyRollup {
    /// Start of the hour.
    pub hour_start: SystemTime,
    /// [`HOURLY_TOTAL`].
    pub total_payments: u64,
    /// [`HOURLY_SUCCESS_RATE`], percent.
    pub success_rate_percent: f64,
    /// [`HOURLY_AVG_VALUE`].
    pub avg_value: f64,
    /// [`HOURLY_TOTAL_VOLUME`].
    pub total_volume: f64,
    /// [`HOURLY_TOTAL_FEES`].
    pub total_fees: f64,
}

impl HourlyRollup {
    /// The rollup of the hour containing `hour`, from that hour's totals.
    pub fn from_totals(hour: SystemTime, t: &PeriodTotals) -> Self {
        Self {
            hour_start: hour_start(hour),
            total_payments: t.payments,
            // Rollups read 0 (not the KPI's 100) for an hour without payments.
            success_rate_percent: percent(t.payments_succeeded, t.payments, 0.0),
            avg_value: if t.payments_succeeded == 0 {
                0.0
            } else {
                round2(t.volume / t.payments_succeeded as f64)
            },
            total_volume: t.volume,
            total_fees: t.fees,
        }
    }

    /// The rollup as timestamped gauges, stamped with the hour's last second.
    pub fn points(&self) -> Vec<TimestampedMetric> {
        let at = self.hour_start + Duration::from_secs(3599);
        [
            (HOURLY_TOTAL, self.total_payments as f64),
            (HOURLY_SUCCESS_RATE, self.success_rate_percent),
            (HOURLY_AVG_VALUE, self.avg_value),
            (HOURLY_TOTAL_VOLUME, self.total_volume),
            (HOURLY_TOTAL_FEES, self.total_fees),
        ]
        .into_iter()
        .map(|(name, v)| TimestampedMetric::gauge(name, v, at).tag(AGGREGATION, "hourly"))
        .collect()
    }
}

/// The rollup of one UTC day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DailyRollup {
    /// Start of the day.
    pub day_start: SystemTime,
    /// [`DAILY_TOTAL_PAYMENTS`].
    pub total_payments: u64,
    /// [`DAILY_TOTAL_VOLUME`].
    pub total_volume: f64,
    /// [`DAILY_TOTAL_USERS`].
    pub total_users: u64,
    /// [`DAILY_TOTAL_REVENUE`].
    pub total_revenue: f64,
}

impl DailyRollup {
    /// The rollup of the day containing `day`, from its totals and its distinct active users.
    pub fn from_totals(day: SystemTime, t: &PeriodTotals, active_users: u64) -> Self {
        Self {
            day_start: day_start(day),
            total_payments: t.payments,
            total_volume: t.volume,
            total_users: active_users,
            total_revenue: t.fees,
        }
    }

    /// The rollup as timestamped gauges, stamped with the day's last second.
    pub fn points(&self) -> Vec<TimestampedMetric> {
        let at = self.day_start + Duration::from_secs(86_399);
        [
            (DAILY_TOTAL_PAYMENTS, self.total_payments as f64),
            (DAILY_TOTAL_VOLUME, self.total_volume),
            (DAILY_TOTAL_USERS, self.total_users as f64),
            (DAILY_TOTAL_REVENUE, self.total_revenue),
        ]
        .into_iter()
        .map(|(name, v)| TimestampedMetric::gauge(name, v, at).tag(AGGREGATION, "daily"))
        .collect()
    }
}

/// Publishes the rollup of the UTC hour containing `hour` now, from this process's `windows`,
/// and returns it: for a backfill, a test, or a process without `paymetrics-automation`'s
/// scheduler (which publishes each hour's rollup at the top of the next).
///
/// First flushes `metrics` (blocking until its exporters are done, at most its shutdown
/// timeout) so the windows hold every delta recorded so far; then reads the hour's
/// [`PeriodTotals`] from `windows`, which must track [`PeriodTotals::window_config`] and still
/// hold that hour (two days of hours by default); then queues the rollup's timestamped points
/// with `metrics`, to go out at the next flush. Datadog ingests timestamped points up to an
/// hour old: older periods can be computed but will be dropped by the intake.
///
/// Publishing the same hour twice sends its points twice, with one timestamp: a gauge keeps
/// the last. A fleet's rollup is the sum of its instances': use the scheduler's fleet mode.
///
/// ```
/// use paymetrics::{kpi::PeriodTotals, rollup};
///
/// let (window_exporter, windows) = PeriodTotals::window_config().build();
/// let metrics = paymetrics::builder().without_dogstatsd().exporter(window_exporter).build()?;
/// // ... payments recorded through metrics.recorder() ...
/// let this_hour = rollup::publish_hourly(&metrics.handle(), &windows, metrics.clock().now());
/// assert_eq!(this_hour.total_payments, 0);
/// # Ok::<(), paymetrics::Error>(())
/// ```
pub fn publish_hourly(
    metrics: &PaymetricsHandle,
    windows: &Windows,
    hour: SystemTime,
) -> HourlyRollup {
    metrics.flush();
    let totals = PeriodTotals::from_windows(windows, Span::Hour(hour), hour);
    let rollup = HourlyRollup::from_totals(hour, &totals);
    send(metrics, rollup.points());
    rollup
}

/// Publishes the rollup of the UTC day containing `day` now, as [`publish_hourly`] does for an
/// hour, and returns it. Its `total_users` is the day's distinct active users from `uniques`
/// (the ones your [`BusinessEvents`](crate::events::BusinessEvents) feeds), which hold the
/// current day and the one before it (see [`Uniques::day`]): 0 for an older day.
pub fn publish_daily(
    metrics: &PaymetricsHandle,
    windows: &Windows,
    uniques: &Uniques,
    day: SystemTime,
) -> DailyRollup {
    metrics.flush();
    let totals = PeriodTotals::from_windows(windows, Span::Day(day), day);
    let users = uniques
        .day(day)
        .map_or(0, |s| s.daily_active.estimate().round() as u64);
    let rollup = DailyRollup::from_totals(day, &totals, users);
    send(metrics, rollup.points());
    rollup
}

fn send(metrics: &PaymetricsHandle, points: Vec<TimestampedMetric>) {
    for point in points {
        // A full queue drops the point and counts it in the client telemetry.
        metrics.send(point);
    }
}

/// The start of the hour before the one containing `now`: the hour that just ended.
pub fn previous_hour(now: SystemTime) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(unix_seconds(hour_start(now)).saturating_sub(3600))
}

/// The start of the day before the one containing `now`: the day that just ended.
pub fn previous_day(now: SystemTime) -> SystemTime {
    SystemTime::UNIX_EPOCH
        + Duration::from_secs(unix_seconds(day_start(now)).saturating_sub(86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_hours_and_days_follow_the_seed() {
        let h = HourlyRollup::from_totals(SystemTime::UNIX_EPOCH, &PeriodTotals::default());
        assert_eq!(
            (h.total_payments, h.success_rate_percent, h.avg_value),
            (0, 0.0, 0.0)
        );
        let d = DailyRollup::from_totals(SystemTime::UNIX_EPOCH, &PeriodTotals::default(), 0);
        assert_eq!(d.points().len(), 4);
        assert!(
            d.points()
                .iter()
                .all(|p| p.timestamp == 86_399 && p.tags == ["aggregation:daily"])
        );
    }

    #[test]
    fn previous_periods() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(2 * 86_400 + 3 * 3600 + 5);
        assert_eq!(unix_seconds(previous_hour(t)), 2 * 86_400 + 2 * 3600);
        assert_eq!(unix_seconds(previous_day(t)), 86_400);
    }
}
