//! Setting the scheduler up: [`AutomationBuilder`], the running [`Automation`] guard and its
//! [`AutomationStats`]. The loop itself lives in `scheduler.rs`.

use std::{
    fmt,
    hash::BuildHasher,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, SystemTime},
};

use paymetrics::{Paymetrics, uniques::Uniques, window::Windows};
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    Error,
    collector::{Collector, UniquesCollector},
    scheduler::{Config, Scheduler},
    store::{FleetStore, MemoryStore},
};

/// Default interval of the collectors (and of the fleet store writes).
pub const DEFAULT_COLLECTOR_INTERVAL: Duration = Duration::from_secs(30);
/// Default interval of the KPI rounds.
pub const DEFAULT_KPI_INTERVAL: Duration = Duration::from_secs(300);
/// Default delay, in fleet mode, between a period's end and its publication: every instance
/// writes its final totals at the period's end, and the publisher reads them this much later.
pub const DEFAULT_FLEET_PUBLISH_DELAY: Duration = Duration::from_secs(15);
/// Default bound on each fleet store call made by the scheduler.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default longest sleep between two readings of the clock.
pub const DEFAULT_CLOCK_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Configures the scheduler; [`spawn`](Self::spawn) starts it.
///
/// ```no_run
/// use std::{sync::Arc, time::Duration};
/// use paymetrics::{kpi::PeriodTotals, uniques::Uniques};
/// use paymetrics_automation::Automation;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let (window_exporter, windows) = PeriodTotals::window_config().build();
/// let metrics = paymetrics::builder().exporter(window_exporter).install()?;
/// let uniques = Arc::new(Uniques::new(metrics.clock()));
///
/// let builder = Automation::builder(&metrics, windows)
///     .uniques(uniques)
///     .kpi_interval(Duration::from_secs(60));
/// # #[cfg(feature = "redis")]
/// let builder = builder.fleet_from_env()?; // Redis when REDIS_URL is set
/// let automation = builder.spawn()?;
/// // ... serve ...
/// automation.shutdown().await;
/// metrics.shutdown();
/// # Ok(()) }
/// ```
pub struct AutomationBuilder {
    config: Config,
    metrics: paymetrics::PaymetricsHandle,
    recorder: paymetrics::PaymetricsRecorder,
    clock: paymetrics::clock::SharedClock,
    windows: Windows,
    uniques: Option<Arc<Uniques>>,
    collectors: Vec<Box<dyn Collector>>,
    store: Option<Arc<dyn FleetStore>>,
    publish_delay: Option<Duration>,
}

impl fmt::Debug for AutomationBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutomationBuilder")
            .field("config", &self.config)
            .field("uniques", &self.uniques.is_some())
            .field("collectors", &self.collectors.len())
            .field("store", &self.store)
            .field("publish_delay", &self.publish_delay)
            .finish_non_exhaustive()
    }
}

impl AutomationBuilder {
    pub(crate) fn new(metrics: &Paymetrics, windows: Windows) -> Self {
        Self {
            config: Config {
                collector_interval: DEFAULT_COLLECTOR_INTERVAL,
                kpi_interval: Some(DEFAULT_KPI_INTERVAL),
                hourly_rollups: true,
                daily_rollups: true,
                publish_delay: Duration::ZERO,
                store_timeout: DEFAULT_STORE_TIMEOUT,
                clock_poll_interval: DEFAULT_CLOCK_POLL_INTERVAL,
                instance_id: default_instance_id(),
                fleet: false,
            },
            metrics: metrics.handle(),
            recorder: metrics.recorder().clone(),
            clock: metrics.clock(),
            windows,
            uniques: None,
            collectors: vec![],
            store: None,
            publish_delay: None,
        }
    }

    /// Adds a collector, run every [collector interval](Self::collector_interval).
    pub fn collector(mut self, collector: impl Collector) -> Self {
        self.collectors.push(Box::new(collector));
        self
    }

    /// The process's distinct-user sketches (the ones its
    /// [`BusinessEvents`](paymetrics::events::BusinessEvents) feeds). They give the daily
    /// rollup its `total_users`; alone, their estimates are published by a [`UniquesCollector`],
    /// and in fleet mode they are written to the store and the fleet's merged estimates are
    /// published with each KPI round.
    pub fn uniques(mut self, uniques: Arc<Uniques>) -> Self {
        self.uniques = Some(uniques);
        self
    }

    /// How often the collectors run and this instance writes its totals to the fleet store
    /// (default 30 s, at least 1 ms). Ticks fall on multiples of the interval since the Unix
    /// epoch, so a fleet's instances tick together.
    pub fn collector_interval(mut self, interval: Duration) -> Self {
        self.config.collector_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How often the KPIs are computed and published (default 5 minutes, at least 1 s), on
    /// multiples of the interval since the Unix epoch.
    pub fn kpi_interval(mut self, interval: Duration) -> Self {
        self.config.kpi_interval = Some(interval.max(Duration::from_secs(1)));
        self
    }

    /// Publishes no KPIs.
    pub fn without_kpis(mut self) -> Self {
        self.config.kpi_interval = None;
        self
    }

    /// Whether to publish a rollup at the top of each UTC hour (default `true`).
    pub fn hourly_rollups(mut self, on: bool) -> Self {
        self.config.hourly_rollups = on;
        self
    }

    /// Whether to publish a rollup at each UTC midnight (default `true`).
    pub fn daily_rollups(mut self, on: bool) -> Self {
        self.config.daily_rollups = on;
        self
    }

    /// Makes this instance one of a fleet sharing `store`: it writes its totals there, and KPIs
    /// and rollups are the fleet's, published by one instance per period. Without this, the
    /// scheduler keeps a private [`MemoryStore`] and publishes this process's own numbers.
    pub fn fleet(mut self, store: impl FleetStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// [`fleet`](Self::fleet) on the Redis of [`RedisStore::from_env`](crate::RedisStore::from_env)
    /// when `REDIS_URL` is set; unchanged (in memory) when it is not.
    #[cfg(feature = "redis")]
    pub fn fleet_from_env(self) -> Result<Self, Error> {
        Ok(match crate::RedisStore::from_env()? {
            Some(store) => self.fleet(store),
            None => self,
        })
    }

    /// In fleet mode, how long after a period ends its KPIs or rollup are read and published
    /// (default [`DEFAULT_FLEET_PUBLISH_DELAY`]), so that every instance has written its final
    /// totals first; instances whose clocks differ by more than this may miss their last
    /// moments. Alone, the default is zero.
    pub fn publish_delay(mut self, delay: Duration) -> Self {
        self.publish_delay = Some(delay);
        self
    }

    /// This instance's id in the fleet store (default `<HOSTNAME>-<pid>-<random>`). It must be
    /// unique in the fleet, and should change when the process restarts (a new process starts
    /// with empty totals).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.config.instance_id = id.into();
        self
    }

    /// Bounds each fleet store call made by the scheduler (default 5 s).
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.config.store_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The longest the scheduler sleeps before reading the clock again (default 1 s, at least
    /// 1 ms): how soon it notices that the wall clock jumped, or that a test moved a
    /// [`ManualClock`](paymetrics::clock::ManualClock).
    pub fn clock_poll_interval(mut self, interval: Duration) -> Self {
        self.config.clock_poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Starts the scheduler on the current tokio runtime.
    pub fn spawn(self) -> Result<Automation, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        if self.config.instance_id.is_empty() {
            return Err(Error::InvalidConfig(
                "the instance id is empty; leave the default or give a unique name".into(),
            ));
        }
        let mut config = self.config;
        let mut collectors = self.collectors;
        let store = match self.store {
            Some(store) => {
                config.fleet = true;
                config.publish_delay = self.publish_delay.unwrap_or(DEFAULT_FLEET_PUBLISH_DELAY);
                store
            }
            None => {
                config.publish_delay = self.publish_delay.unwrap_or(Duration::ZERO);
                if let Some(uniques) = &self.uniques {
                    collectors.insert(0, Box::new(UniquesCollector::new(Arc::clone(uniques))));
                }
                Arc::new(MemoryStore::new())
            }
        };
        let stats = Arc::new(StatsCells::default());
        let (progress, caught_up) = watch::channel(None);
        let (stop, stopped) = watch::channel(false);
        let instance_id = config.instance_id.clone();
        let scheduler = Scheduler::new(
            config,
            self.clock,
            self.metrics,
            self.recorder,
            self.windows,
            self.uniques,
            collectors,
            store,
            Arc::clone(&stats),
            progress,
        );
        let task = runtime.spawn(scheduler.run(stopped));
        Ok(Automation {
            task: Some(task),
            stop,
            stats,
            caught_up,
            instance_id,
        })
    }
}

fn default_instance_id() -> String {
    let host: String = std::env::var("HOSTNAME")
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(64)
        .collect();
    let host = if host.is_empty() { "host" } else { &host };
    let pid = std::process::id();
    // RandomState is seeded per process: enough to tell two processes with one pid apart.
    let random = std::collections::hash_map::RandomState::new().hash_one((pid, SystemTime::now()));
    format!("{host}-{pid}-{:08x}", random as u32)
}

/// The running scheduler. [`shutdown`](Self::shutdown) stops it cleanly; dropping it aborts it.
///
/// Shut it down before the [`Paymetrics`] guard, so its last points are flushed.
pub struct Automation {
    task: Option<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    stats: Arc<StatsCells>,
    caught_up: watch::Receiver<Option<SystemTime>>,
    instance_id: String,
}

impl fmt::Debug for Automation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Automation")
            .field("instance_id", &self.instance_id)
            .field("stats", &self.stats())
            .field("caught_up_to", &self.caught_up_to())
            .finish_non_exhaustive()
    }
}

impl Automation {
    /// A builder for the scheduler of `metrics`: it records through `metrics`' recorder, queues
    /// rollups and KPIs with its handle, and reads time from its clock. `windows` must track
    /// [`PeriodTotals::window_config`](paymetrics::kpi::PeriodTotals::window_config) (with at
    /// least an hour of minutes and 25 hours of hours, as by default), and its exporter must
    /// have been given to `metrics`' builder.
    pub fn builder(metrics: &Paymetrics, windows: Windows) -> AutomationBuilder {
        AutomationBuilder::new(metrics, windows)
    }

    /// [`builder`](Self::builder) for a wired
    /// [`BusinessMetrics`](paymetrics::business::BusinessMetrics): its windows, and its
    /// uniques (so the distinct-user gauges and the daily rollup's users are published).
    ///
    /// ```no_run
    /// use paymetrics::business::BusinessMetrics;
    /// use paymetrics_automation::Automation;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let (metrics, business) = BusinessMetrics::install(paymetrics::builder())?;
    /// let automation = Automation::for_business(&metrics, &business).spawn()?;
    /// // ... serve, recording with business.events ...
    /// automation.shutdown().await;
    /// metrics.shutdown();
    /// # Ok(()) }
    /// ```
    pub fn for_business(
        metrics: &Paymetrics,
        business: &paymetrics::business::BusinessMetrics,
    ) -> AutomationBuilder {
        Self::builder(metrics, business.windows.clone()).uniques(Arc::clone(&business.uniques))
    }

    /// This instance's id in the fleet store.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// What the scheduler has done so far.
    pub fn stats(&self) -> AutomationStats {
        self.stats.read()
    }

    /// Whether the fleet store answered the scheduler's latest call (a write every collector
    /// interval, even with nothing to write, so this is at most one interval old); `None`
    /// before the first call returned. A store that answers with data it cannot read counts
    /// as reachable. Alone (the in-memory store), always reachable.
    pub fn store_reachable(&self) -> Option<bool> {
        match self.stats.store_health.load(Relaxed) {
            crate::scheduler::HEALTH_UP => Some(true),
            crate::scheduler::HEALTH_DOWN => Some(false),
            _ => None,
        }
    }

    /// The clock time up to which the scheduler has done all its due work: the reading of the
    /// clock at the start of its latest completed pass. `None` before the first pass.
    pub fn caught_up_to(&self) -> Option<SystemTime> {
        *self.caught_up.borrow()
    }

    /// Waits until the scheduler has done all the work due at `at` or before (by its clock);
    /// returns at once if the scheduler has stopped. With a
    /// [`ManualClock`](paymetrics::clock::ManualClock), a test moves the clock, then awaits
    /// this, then asserts.
    pub async fn caught_up(&self, at: SystemTime) {
        let mut caught_up = self.caught_up.clone();
        let _ = caught_up.wait_for(|t| t.is_some_and(|t| t >= at)).await;
    }

    /// Stops the scheduler and waits for it: the current pass finishes and, in fleet mode, the
    /// instance flushes and writes its totals one last time (bounded by the store timeout).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
            && e.is_panic()
        {
            tracing::error!(target: "paymetrics::automation", "the scheduler panicked");
        }
    }
}

impl Drop for Automation {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Counts of what the scheduler did, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AutomationStats {
    /// Collector rounds run.
    pub collections: u64,
    /// Collector calls that panicked.
    pub collector_panics: u64,
    /// Writes of this instance's totals that the store acknowledged.
    pub writes: u64,
    /// Failed or timed-out writes (retried on the next tick).
    pub write_failures: u64,
    /// KPI rounds this instance published.
    pub kpi_rounds_published: u64,
    /// Hourly rollups this instance published.
    pub hourly_rollups_published: u64,
    /// Daily rollups this instance published.
    pub daily_rollups_published: u64,
    /// Publications left to another instance, which held the period's lock.
    pub publications_skipped: u64,
    /// Publication attempts that failed on the store (retried on the next tick).
    pub publication_failures: u64,
    /// Publications given up: still failing when their period could no longer be published.
    pub publications_abandoned: u64,
    /// Publications (KPI rounds, rollups) of which this instance, holding their lock, withheld
    /// some or all figures because the fleet store had lost part of their data since their
    /// period began (Redis restarted empty). A period withheld entirely is not counted as
    /// published; one withheld in part (a KPI round) is counted in both.
    pub publications_incomplete: u64,
    /// Times the fleet store went from answering to not answering (each outage once, however
    /// many calls failed during it).
    pub store_outages: u64,
}

#[derive(Debug, Default)]
pub(crate) struct StatsCells {
    pub(crate) collections: AtomicU64,
    pub(crate) collector_panics: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) write_failures: AtomicU64,
    pub(crate) kpi_rounds_published: AtomicU64,
    pub(crate) hourly_rollups_published: AtomicU64,
    pub(crate) daily_rollups_published: AtomicU64,
    pub(crate) publications_skipped: AtomicU64,
    pub(crate) publication_failures: AtomicU64,
    pub(crate) publications_abandoned: AtomicU64,
    pub(crate) publications_incomplete: AtomicU64,
    pub(crate) store_outages: AtomicU64,
    /// `scheduler::HEALTH_*`.
    pub(crate) store_health: AtomicU8,
}

impl StatsCells {
    pub(crate) fn bump(cell: &AtomicU64) {
        cell.fetch_add(1, Relaxed);
    }

    fn read(&self) -> AutomationStats {
        AutomationStats {
            collections: self.collections.load(Relaxed),
            collector_panics: self.collector_panics.load(Relaxed),
            writes: self.writes.load(Relaxed),
            write_failures: self.write_failures.load(Relaxed),
            kpi_rounds_published: self.kpi_rounds_published.load(Relaxed),
            hourly_rollups_published: self.hourly_rollups_published.load(Relaxed),
            daily_rollups_published: self.daily_rollups_published.load(Relaxed),
            publications_skipped: self.publications_skipped.load(Relaxed),
            publication_failures: self.publication_failures.load(Relaxed),
            publications_abandoned: self.publications_abandoned.load(Relaxed),
            publications_incomplete: self.publications_incomplete.load(Relaxed),
            store_outages: self.store_outages.load(Relaxed),
        }
    }
}
