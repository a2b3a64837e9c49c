//! The scheduler's loop: one tokio task that, by the injected clock, runs the collectors and
//! writes this instance's totals (every collector interval), and publishes KPIs (every KPI
//! interval) and rollups (at the top of each UTC hour and day).
//!
//! Each pass reads the clock once and does everything due by then, so a clock that jumps (a
//! suspended process, a test's `ManualClock`) runs each missed hour's and day's rollup once and
//! the missed collector ticks and KPI rounds once in all. At a period's end the instance first
//! flushes paymetrics, so the period's windows are complete, then writes its totals. A
//! publication is due a publish delay later; it takes the period's lock in the store, reads the
//! fleet's totals, queues the points with the paymetrics handle and flushes. A publication that
//! fails on the store is retried on later ticks until its period can no longer be published.
//! Figures whose reads are incomplete (the store lost data since their period began) are
//! withheld, never published from what is left.
//!
//! Every store call's outcome is the store's health: a write reaches the store even with
//! nothing to write, and only an answer counts as a success.

use std::{
    fmt,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, SystemTime},
};

use paymetrics::{
    PaymetricsHandle, PaymetricsRecorder,
    clock::{SharedClock, day_start, hour_start, unix_seconds},
    events::{payment, user},
    kpi::{self, Kpis},
    message::TimestampedMetric,
    rollup::{DailyRollup, HourlyRollup},
    uniques::Uniques,
    window::Windows,
};
use tokio::sync::watch;

use crate::{
    automation::StatsCells,
    collector::Collector,
    log::Throttle,
    report::{KPI_DAY, KPI_HOUR, day_hours, instance_report, rolling_starts},
    store::{FleetStore, Granularity, SketchKey, StoreError},
};

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);
/// Datadog ingests timestamped points up to an hour old, and a rollup is stamped with its
/// period's last second: past this after the period's end, publishing it is pointless.
const ROLLUP_PUBLISH_WINDOW: Duration = Duration::from_secs(50 * 60);
/// Hours whose end a clock jump may pass over and still be handled (each is rolled up, or given
/// up if already too old); earlier ones are skipped.
const MAX_MISSED_HOURS: u32 = 48;

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) collector_interval: Duration,
    pub(crate) kpi_interval: Option<Duration>,
    pub(crate) hourly_rollups: bool,
    pub(crate) daily_rollups: bool,
    pub(crate) publish_delay: Duration,
    pub(crate) store_timeout: Duration,
    pub(crate) clock_poll_interval: Duration,
    pub(crate) instance_id: String,
    pub(crate) fleet: bool,
}

/// What is published once per period, by one instance of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    /// A KPI round, at this instant.
    Kpi(SystemTime),
    /// The UTC hour starting here.
    Hour(SystemTime),
    /// The UTC day starting here.
    Day(SystemTime),
}

impl Period {
    fn lock_name(self) -> String {
        match self {
            Period::Kpi(t) => format!("kpi:{}", millis_since_epoch(t)),
            Period::Hour(t) => format!("hour:{}", unix_seconds(t)),
            Period::Day(t) => format!("day:{}", unix_seconds(t)),
        }
    }
}

#[derive(Debug)]
struct Publication {
    period: Period,
    due: SystemTime,
    give_up: SystemTime,
}

enum Outcome {
    /// Published, without the figures whose data the store had partly lost (`withheld`).
    Published { withheld: usize },
    /// Another instance holds the period's lock.
    Skipped,
    /// Nothing published: the data of each of its `figures` was partly lost.
    Withheld { figures: usize },
}

/// The store's health, as `StatsCells::store_health` holds it (0, its default, until the first
/// store call returns).
pub(crate) const HEALTH_UP: u8 = 1;
pub(crate) const HEALTH_DOWN: u8 = 2;

pub(crate) struct Scheduler {
    config: Config,
    clock: SharedClock,
    metrics: PaymetricsHandle,
    recorder: PaymetricsRecorder,
    windows: Windows,
    uniques: Option<Arc<Uniques>>,
    collectors: Vec<Box<dyn Collector>>,
    store: Arc<dyn FleetStore>,
    stats: Arc<StatsCells>,
    progress: watch::Sender<Option<SystemTime>>,
    next_collect: SystemTime,
    next_kpi: Option<SystemTime>,
    next_hour: SystemTime,
    next_day: SystemTime,
    pending: Vec<Publication>,
    store_log: Throttle,
    data_log: Throttle,
    collector_log: Throttle,
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler")
            .field("config", &self.config)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default()
}

fn millis_since_epoch(t: SystemTime) -> u128 {
    since_epoch(t).as_millis()
}

/// The latest multiple of `interval` since the epoch at or before `t`.
fn align_down(t: SystemTime, interval: Duration) -> SystemTime {
    let interval = interval.as_nanos().max(1);
    let since = since_epoch(t).as_nanos();
    let aligned = since - since % interval;
    SystemTime::UNIX_EPOCH
        + Duration::new(
            (aligned / 1_000_000_000) as u64,
            (aligned % 1_000_000_000) as u32,
        )
}

impl Scheduler {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: Config,
        clock: SharedClock,
        metrics: PaymetricsHandle,
        recorder: PaymetricsRecorder,
        windows: Windows,
        uniques: Option<Arc<Uniques>>,
        collectors: Vec<Box<dyn Collector>>,
        store: Arc<dyn FleetStore>,
        stats: Arc<StatsCells>,
        progress: watch::Sender<Option<SystemTime>>,
    ) -> Self {
        let start = clock.now();
        Self {
            next_collect: start,
            next_kpi: config.kpi_interval.map(|i| align_down(start, i) + i),
            next_hour: hour_start(start) + HOUR,
            next_day: day_start(start) + DAY,
            config,
            clock,
            metrics,
            recorder,
            windows,
            uniques,
            collectors,
            store,
            stats,
            progress,
            pending: vec![],
            store_log: Throttle::new(),
            data_log: Throttle::new(),
            collector_log: Throttle::new(),
        }
    }

    pub(crate) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            let now = self.clock.now();
            self.pass(now).await;
            let _ = self.progress.send(Some(now));
            if *stop.borrow() {
                break;
            }
            let wait = self
                .next_deadline()
                .duration_since(self.clock.now())
                .unwrap_or_default()
                .min(self.config.clock_poll_interval);
            if wait.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = stop.changed() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if self.config.fleet {
            // Leave the fleet with this instance's last totals in the store.
            self.flush().await;
            self.write(self.clock.now()).await;
        }
    }

    fn next_deadline(&self) -> SystemTime {
        let mut next = self.next_collect.min(self.next_hour).min(self.next_day);
        if let Some(kpi) = self.next_kpi {
            next = next.min(kpi);
        }
        self.pending
            .iter()
            .map(|p| p.due)
            .fold(next, SystemTime::min)
    }

    /// Does everything due at `now`.
    async fn pass(&mut self, now: SystemTime) {
        // After a jump, only the latest periods: older ones are past publishing anyway.
        let earliest_hour_end = hour_start(now)
            .checked_sub(HOUR * (MAX_MISSED_HOURS - 1))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        self.next_hour = self.next_hour.max(earliest_hour_end);
        self.next_day = self.next_day.max(day_start(now));
        let mut ended_hours = vec![];
        while self.next_hour <= now {
            ended_hours.push(self.next_hour - HOUR);
            self.next_hour += HOUR;
        }
        let mut ended_days = vec![];
        while self.next_day <= now {
            ended_days.push(self.next_day - DAY);
            self.next_day += DAY;
        }
        let mut kpi_round = None;
        if let (Some(next), Some(interval)) = (self.next_kpi, self.config.kpi_interval)
            && next <= now
        {
            let round = align_down(now, interval);
            kpi_round = Some(round);
            self.next_kpi = Some(round + interval);
        }
        let collect = self.next_collect <= now;
        if collect {
            self.next_collect =
                align_down(now, self.config.collector_interval) + self.config.collector_interval;
            self.run_collectors();
        }
        let period_ended = !ended_hours.is_empty() || !ended_days.is_empty() || kpi_round.is_some();
        if period_ended {
            // The windows must hold everything up to the period's end before it is written.
            self.flush().await;
        }
        if collect || period_ended {
            self.write(now).await;
        }

        let delay = self.config.publish_delay;
        if self.config.hourly_rollups {
            for hour in ended_hours {
                self.queue(
                    Period::Hour(hour),
                    hour + HOUR + delay,
                    hour + HOUR + ROLLUP_PUBLISH_WINDOW,
                );
            }
        }
        if self.config.daily_rollups {
            for day in ended_days {
                self.queue(
                    Period::Day(day),
                    day + DAY + delay,
                    day + DAY + ROLLUP_PUBLISH_WINDOW,
                );
            }
        }
        if let (Some(round), Some(interval)) = (kpi_round, self.config.kpi_interval) {
            // A newer round supersedes an older one still waiting.
            self.pending.retain(|p| !matches!(p.period, Period::Kpi(_)));
            self.queue(
                Period::Kpi(round),
                round + delay,
                round + interval.max(delay + Duration::from_secs(1)),
            );
        }
        self.publish_due(now).await;
    }

    fn queue(&mut self, period: Period, due: SystemTime, give_up: SystemTime) {
        self.pending.push(Publication {
            period,
            due,
            give_up,
        });
    }

    fn run_collectors(&mut self) {
        StatsCells::bump(&self.stats.collections);
        let mut panicked = 0;
        metrics::with_local_recorder(&self.recorder, || {
            for collector in &self.collectors {
                if catch_unwind(AssertUnwindSafe(|| collector.collect())).is_err() {
                    panicked += 1;
                }
            }
        });
        for _ in 0..panicked {
            StatsCells::bump(&self.stats.collector_panics);
            self.collector_log
                .failed("a collector panicked; the other collectors ran", &"panic");
        }
    }

    /// Flushes paymetrics (a blocking call, bounded by its shutdown timeout) off the runtime.
    async fn flush(&self) {
        let metrics = self.metrics.clone();
        let flushed = tokio::task::spawn_blocking(move || metrics.flush()).await;
        if !matches!(flushed, Ok(true)) {
            tracing::debug!(target: "paymetrics::automation", "a flush did not complete in time");
        }
    }

    /// Bounds a store call by the store timeout.
    async fn bounded<T>(
        &self,
        f: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let timeout = self.config.store_timeout;
        tokio::time::timeout(timeout, f)
            .await
            .unwrap_or(Err(StoreError::Timeout(timeout)))
    }

    /// Notes that the store answered.
    fn store_answered(&mut self) {
        self.stats.store_health.store(HEALTH_UP, Relaxed);
        self.store_log
            .recovered("the fleet store is reachable again");
    }

    /// Notes a failed store call: a store that did not answer is down; one that answered with
    /// data this version cannot read is up, and that is logged apart.
    fn store_failed(&mut self, error: &StoreError) {
        if let StoreError::Corrupt(_) = error {
            self.store_answered();
            self.data_log.failed(
                "the fleet store answered with data this version cannot read; the call is retried on the next tick",
                error,
            );
            return;
        }
        self.stats.store_health.store(HEALTH_DOWN, Relaxed);
        if self.store_log.failed(
            "the fleet store is unreachable: recording goes on locally, and writes and publications are retried on the next ticks",
            error,
        ) {
            StatsCells::bump(&self.stats.store_outages);
        }
    }

    async fn write(&mut self, now: SystemTime) {
        let report = instance_report(&self.windows, self.uniques.as_deref(), now);
        let store = Arc::clone(&self.store);
        match self
            .bounded(store.write(&self.config.instance_id, &report))
            .await
        {
            Ok(()) => {
                StatsCells::bump(&self.stats.writes);
                self.store_answered();
            }
            Err(e) => {
                StatsCells::bump(&self.stats.write_failures);
                self.store_failed(&e);
            }
        }
    }

    async fn publish_due(&mut self, now: SystemTime) {
        if !self.pending.iter().any(|p| p.due <= now) {
            return;
        }
        let (mut due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.due <= now);
        self.pending = waiting;
        due.sort_by_key(|p| p.due);
        for mut publication in due {
            if now > publication.give_up {
                StatsCells::bump(&self.stats.publications_abandoned);
                tracing::warn!(
                    target: "paymetrics::automation",
                    period = ?publication.period,
                    "gave up publishing: the fleet store stayed unavailable until the period could no longer be published"
                );
                continue;
            }
            let outcome = self.publish(&publication, now).await;
            match &outcome {
                Ok(_) => self.store_answered(),
                Err(e) => self.store_failed(e),
            }
            match outcome {
                Ok(Outcome::Published { withheld }) => {
                    let cell = match publication.period {
                        Period::Kpi(_) => &self.stats.kpi_rounds_published,
                        Period::Hour(_) => &self.stats.hourly_rollups_published,
                        Period::Day(_) => &self.stats.daily_rollups_published,
                    };
                    StatsCells::bump(cell);
                    if withheld > 0 {
                        self.withheld(&publication, withheld, true);
                    }
                }
                Ok(Outcome::Withheld { figures }) => self.withheld(&publication, figures, false),
                Ok(Outcome::Skipped) => StatsCells::bump(&self.stats.publications_skipped),
                Err(_) => {
                    StatsCells::bump(&self.stats.publication_failures);
                    publication.due = now + self.config.collector_interval;
                    self.pending.push(publication);
                }
            }
        }
    }

    /// Counts a publication of which `figures` were withheld (the others `published`, if
    /// any). The store warned once when it noticed the loss; this is one line per period, at
    /// debug level.
    fn withheld(&self, publication: &Publication, figures: usize, published: bool) {
        StatsCells::bump(&self.stats.publications_incomplete);
        tracing::debug!(
            target: "paymetrics::automation",
            period = ?publication.period,
            figures,
            published,
            "figures withheld: the fleet store lost part of their data"
        );
    }

    async fn publish(
        &mut self,
        publication: &Publication,
        now: SystemTime,
    ) -> Result<Outcome, StoreError> {
        let store = Arc::clone(&self.store);
        let name = publication.period.lock_name();
        // Held until nobody would try any more, so that no late instance publishes again.
        let ttl =
            publication.give_up.duration_since(now).unwrap_or_default() + Duration::from_secs(300);
        let owner = self.config.instance_id.clone();
        if !self
            .bounded(store.try_lock(&name, &owner, ttl, now))
            .await?
        {
            return Ok(Outcome::Skipped);
        }
        // A rollup is one figure made of one period's data: all of it or nothing.
        let (points, withheld) = match publication.period {
            Period::Kpi(round) => self.kpi_points(round, now).await?,
            Period::Hour(hour) => {
                let starts = [unix_seconds(hour)];
                let totals = self
                    .bounded(store.totals(Granularity::Hour, &starts, now))
                    .await?;
                match totals.into_complete() {
                    Some(totals) => (HourlyRollup::from_totals(hour, &totals).points(), 0),
                    None => (vec![], 1),
                }
            }
            Period::Day(day) => {
                let starts = day_hours(unix_seconds(day));
                let totals = self
                    .bounded(store.totals(Granularity::Hour, &starts, now))
                    .await?;
                let users = self
                    .bounded(store.sketch(SketchKey::daily_active_users(day), now))
                    .await?;
                match (totals.into_complete(), users.into_complete()) {
                    (Some(totals), Some(users)) => {
                        let users = users.map_or(0, |hll| hll.estimate().round() as u64);
                        (DailyRollup::from_totals(day, &totals, users).points(), 0)
                    }
                    _ => (vec![], 1),
                }
            }
        };
        if points.is_empty() {
            return Ok(Outcome::Withheld { figures: withheld });
        }
        for point in points {
            self.metrics.send(point);
        }
        self.flush().await;
        Ok(Outcome::Published { withheld })
    }

    /// The KPIs of the round at `round` (over the hour and the day before it), and in fleet
    /// mode the fleet's distinct-user estimates, as points stamped `round`; with the number of
    /// figures withheld because the store lost part of their data. Each figure stands alone:
    /// the last hour's ratios come back an hour after a loss, the 24-hour acquisition rate a
    /// day after, the monthly users in the next month.
    async fn kpi_points(
        &self,
        round: SystemTime,
        now: SystemTime,
    ) -> Result<(Vec<TimestampedMetric>, usize), StoreError> {
        let store = Arc::clone(&self.store);
        let minutes = rolling_starts(round, KPI_HOUR, 60);
        let hours = rolling_starts(round, KPI_DAY, 3600);
        let last_hour = self
            .bounded(store.totals(Granularity::Minute, &minutes, now))
            .await?;
        let last_day = self
            .bounded(store.totals(Granularity::Hour, &hours, now))
            .await?;
        let kpis = Kpis::from_totals(&last_hour.value, &last_day.value);
        let mut figures = vec![
            (
                kpi::TRANSACTION_SUCCESS_RATE,
                kpis.success_rate_percent,
                last_hour.complete,
            ),
            (
                kpi::TRANSACTION_AVG_VALUE,
                kpis.avg_value,
                last_hour.complete,
            ),
            (
                kpi::CUSTOMER_ACQUISITION_RATE,
                kpis.acquisition_rate,
                last_day.complete,
            ),
            (
                kpi::FRAUD_EFFECTIVENESS,
                kpis.fraud_effectiveness_percent,
                last_hour.complete,
            ),
            (
                kpi::SYSTEM_AVAILABILITY,
                kpis.availability_percent,
                last_hour.complete,
            ),
        ];
        if self.config.fleet && self.uniques.is_some() {
            for (name, key) in [
                (user::DAILY_ACTIVE, SketchKey::daily_active_users(round)),
                (user::MONTHLY_ACTIVE, SketchKey::monthly_active_users(round)),
                (payment::UNIQUE_SENDERS, SketchKey::daily_senders(round)),
            ] {
                let sketch = self.bounded(store.sketch(key, now)).await?;
                let estimate = sketch.value.map_or(0.0, |hll| hll.estimate().round());
                figures.push((name, estimate, sketch.complete));
            }
        }
        let withheld = figures.iter().filter(|(_, _, complete)| !complete).count();
        let points = figures
            .into_iter()
            .filter(|(_, _, complete)| *complete)
            .map(|(name, value, _)| TimestampedMetric::gauge(name, value, round))
            .collect();
        Ok((points, withheld))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::at;

    #[test]
    fn alignment() {
        let t = at(1_795_833_615); // 2026-11-28T02:40:15Z
        assert_eq!(
            unix_seconds(align_down(t, Duration::from_secs(30))),
            1_795_833_600
        );
        assert_eq!(
            unix_seconds(align_down(t, Duration::from_secs(300))),
            1_795_833_600
        );
        assert_eq!(
            align_down(t + Duration::from_millis(1_500), Duration::from_millis(500)),
            t + Duration::from_millis(1_500)
        );
        assert_eq!(Period::Kpi(t).lock_name(), "kpi:1795833615000");
        assert_eq!(Period::Hour(at(3600)).lock_name(), "hour:3600");
    }
}
