//! From one process's windows and uniques to its [`InstanceReport`], and the periods that KPIs
//! and rollups read back. The spans here are the same as [`Kpis::from_windows`]'s, so a fleet
//! of one publishes exactly what its windows say.
//!
//! [`Kpis::from_windows`]: paymetrics::kpi::Kpis::from_windows

use std::time::{Duration, SystemTime};

use paymetrics::{
    clock::unix_seconds,
    kpi::PeriodTotals,
    uniques::Uniques,
    window::{Span, Windows},
};

use crate::store::{InstanceReport, SketchKey, SketchKind, month_period};

/// The rolling window of the hourly KPIs.
pub(crate) const KPI_HOUR: Duration = Duration::from_secs(3600);
/// The rolling window of the daily KPI (customer acquisition).
pub(crate) const KPI_DAY: Duration = Duration::from_secs(86_400);

pub(crate) fn at(unix_seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(unix_seconds)
}

/// Starts of the `period`-second buckets that a rolling window of `span` ending at `now` reads:
/// from the bucket containing `now - span` to the one containing `now`, as
/// [`Windows`]' `Span::Last` does.
pub(crate) fn rolling_starts(now: SystemTime, span: Duration, period: u64) -> Vec<u64> {
    let now = unix_seconds(now);
    let from = now.saturating_sub(span.as_secs());
    (from - from % period..=now - now % period)
        .step_by(period as usize)
        .collect()
}

/// Hour starts of the UTC day starting at `day` (Unix seconds).
pub(crate) fn day_hours(day: u64) -> Vec<u64> {
    (0..24).map(|h| day + h * 3600).collect()
}

/// The totals of the minute starting at `start` (Unix seconds) in `windows`.
///
/// `Span::Last(59 s)` ending at the minute's last second starts at that minute (rolling spans
/// start at a whole minute) and ends within it: exactly one minute bucket. Needs the windows'
/// minute retention to cover the last hour (the default keeps two).
fn minute_totals(windows: &Windows, start: u64) -> PeriodTotals {
    PeriodTotals::from_windows(windows, Span::Last(Duration::from_secs(59)), at(start + 59))
}

/// What this instance writes at `now`: its non-empty minutes of the last hour, its non-empty
/// hours of the last 25, and its current (and, just after midnight, previous) day's sketches.
pub(crate) fn instance_report(
    windows: &Windows,
    uniques: Option<&Uniques>,
    now: SystemTime,
) -> InstanceReport {
    let mut report = InstanceReport::new(now);
    let empty = PeriodTotals::default();
    for start in rolling_starts(now, KPI_HOUR, 60) {
        let totals = minute_totals(windows, start);
        if totals != empty {
            report.minutes.push((start, totals));
        }
    }
    for start in rolling_starts(now, KPI_DAY, 3600) {
        let totals = PeriodTotals::from_windows(windows, Span::Hour(at(start)), now);
        if totals != empty {
            report.hours.push((start, totals));
        }
    }
    if let Some(uniques) = uniques {
        let mut push = |kind, period, registers: Vec<u8>| {
            if registers.iter().any(|r| *r != 0) {
                report
                    .sketches
                    .push((SketchKey { kind, period }, registers));
            }
        };
        let current = uniques.current();
        let (year, month) = current.month;
        push(
            SketchKind::DailyActiveUsers,
            current.day,
            current.daily_active.to_bytes(),
        );
        push(
            SketchKind::DailySenders,
            current.day,
            current.daily_senders.to_bytes(),
        );
        push(
            SketchKind::MonthlyActiveUsers,
            month_period(year, month),
            current.monthly_active.to_bytes(),
        );
        // The day that just ended, for its daily rollup.
        if let Some(previous) = uniques.previous()
            && previous.day + 1 == current.day
        {
            push(
                SketchKind::DailyActiveUsers,
                previous.day,
                previous.daily_active.to_bytes(),
            );
            push(
                SketchKind::DailySenders,
                previous.day,
                previous.daily_senders.to_bytes(),
            );
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use paymetrics::{
        PaymetricsBuilder,
        clock::{Clock, ManualClock},
        events::{BusinessEvents, PaymentCompletion, PaymentMethod, PaymentStatus},
        kpi::Kpis,
    };

    use super::*;
    use crate::store::{FleetStore, Granularity, MemoryStore};

    #[test]
    fn rolling_starts_match_the_windows_spans() {
        let starts = rolling_starts(at(10 * 3600 + 125), KPI_HOUR, 60);
        assert_eq!(starts.len(), 61);
        assert_eq!(starts[0], 9 * 3600 + 120);
        assert_eq!(*starts.last().unwrap(), 10 * 3600 + 120);
        let hours = rolling_starts(at(2 * 86_400), KPI_DAY, 3600);
        assert_eq!((hours.len(), hours[0]), (25, 86_400));
        assert_eq!(day_hours(86_400)[23], 86_400 + 23 * 3600);
    }

    /// A fleet of one reads back from its store exactly what its windows say.
    #[test]
    fn a_report_round_trips_to_the_windows_kpis() {
        let clock = ManualClock::new(at(1_795_833_600)); // 2026-11-28T02:40:00Z
        let (exporter, windows) = PeriodTotals::window_config().build();
        let metrics = PaymetricsBuilder::new()
            .without_dogstatsd()
            .flush_interval(Duration::from_secs(3600))
            .clock(clock.clone())
            .exporter(exporter)
            .build()
            .unwrap();
        let uniques = Arc::new(Uniques::new(Arc::new(clock.clone())));
        // Handles bind to the recorder current at a series' first use: record inside its scope.
        let events = BusinessEvents::new(Arc::clone(&uniques));
        for (minutes, amount, status) in [
            (0, 10.0, PaymentStatus::Completed),
            (1, 20.0, PaymentStatus::Failed),
            (30, 30.5, PaymentStatus::Completed),
            (50, 40.0, PaymentStatus::Completed),
        ] {
            clock.set(at(1_795_833_600 + minutes * 60 + 5));
            metrics::with_local_recorder(metrics.recorder(), || {
                events.payment_completion(&PaymentCompletion {
                    status,
                    amount,
                    fees: Some(1.0),
                    currency: "EUR",
                    payment_method: PaymentMethod::Card,
                    processing_time_ms: None,
                });
            });
            metrics.flush();
        }
        let now = clock.now();
        let report = instance_report(&windows, Some(&uniques), now);
        assert_eq!(report.minutes.len(), 4);
        assert_eq!(report.hours.len(), 2, "02:00 and 03:00");
        let store = MemoryStore::new();
        let ready = |f: crate::store::StoreFuture<'_, crate::store::FleetRead<PeriodTotals>>| {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let mut f = f;
            match f.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(r) => r.unwrap(),
                std::task::Poll::Pending => unreachable!(),
            }
        };
        {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(store.write("me", &report).as_mut().poll(&mut cx).is_ready());
        }
        let hour =
            ready(store.totals(Granularity::Minute, &rolling_starts(now, KPI_HOUR, 60), now)).value;
        let day =
            ready(store.totals(Granularity::Hour, &rolling_starts(now, KPI_DAY, 3600), now)).value;
        assert_eq!(hour.payments, 4);
        assert_eq!(hour.volume, 80.5);
        assert_eq!(
            Kpis::from_totals(&hour, &day),
            Kpis::from_windows(&windows, now)
        );
    }
}
