//! Setting paymetrics up: [`PaymetricsBuilder`], the [`Paymetrics`] guard it returns and the
//! cloneable [`PaymetricsHandle`].

use std::{
    sync::{Arc, Mutex, PoisonError},
    thread::JoinHandle,
    time::Duration,
};

use metrics::Recorder;

use crate::{
    Error,
    clock::{Clock, SharedClock, SystemClock},
    dogstatsd::{ClientTelemetry, DogStatsdBuilder, DogStatsdExporter, SharedCounters},
    export::Exporter,
    flusher::{self, Schedule, Shared},
    message::Message,
    recorder::{Inner, Limits, PaymetricsRecorder},
    snapshot::Snapshot,
};

/// Default flush interval: the Agent's own aggregation interval.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(10);
/// Default cap on live series per metric name.
pub const DEFAULT_MAX_SERIES_PER_METRIC: usize = 1000;
/// Default cap on live series across all metric names (about 60 MiB at 600 bytes a series).
pub const DEFAULT_MAX_SERIES: usize = 100_000;
/// Default part of the flush interval over which a large flush's payloads are spread.
pub const DEFAULT_FLUSH_PACING: f64 = 0.5;
/// Default number of idle flushes after which a series expires (5 minutes at 10 s).
pub const DEFAULT_IDLE_FLUSHES_BEFORE_EXPIRY: u32 = 30;
/// Default bound on the final flush at shutdown.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default capacity of the queue of events, service checks and timestamped points.
pub const DEFAULT_MESSAGE_QUEUE_CAPACITY: usize = 10_000;

/// Configures and starts paymetrics.
///
/// ```
/// use std::time::Duration;
/// use paymetrics::{PaymetricsBuilder, dogstatsd::DogStatsdBuilder};
///
/// let metrics = PaymetricsBuilder::new()
///     .flush_interval(Duration::from_secs(2))
///     .max_series_per_metric(500)
///     .dogstatsd(DogStatsdBuilder::new().service("payments-api").prefix("paypal"))
///     .build()?;
/// # metrics.shutdown();
/// # Ok::<(), paymetrics::Error>(())
/// ```
pub struct PaymetricsBuilder {
    flush_interval: Duration,
    flush_pacing: f64,
    max_series_per_metric: usize,
    max_series: usize,
    idle_flushes: u32,
    dogstatsd: Option<DogStatsdBuilder>,
    exporters: Vec<Box<dyn Exporter>>,
    attached: Vec<Arc<dyn Recorder + Send + Sync>>,
    shutdown_timeout: Duration,
    queue_capacity: usize,
    clock: SharedClock,
}

impl std::fmt::Debug for PaymetricsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymetricsBuilder")
            .field("flush_interval", &self.flush_interval)
            .field("flush_pacing", &self.flush_pacing)
            .field("max_series_per_metric", &self.max_series_per_metric)
            .field("max_series", &self.max_series)
            .field("idle_flushes", &self.idle_flushes)
            .field("dogstatsd", &self.dogstatsd)
            .field("exporters", &self.exporters)
            .field("attached_recorders", &self.attached.len())
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish()
    }
}

impl Default for PaymetricsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PaymetricsBuilder {
    /// Defaults: DogStatsD configured from the environment, 10 s flushes, 1000 series per
    /// metric, expiry after 30 idle flushes.
    pub fn new() -> Self {
        Self {
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            flush_pacing: DEFAULT_FLUSH_PACING,
            max_series_per_metric: DEFAULT_MAX_SERIES_PER_METRIC,
            max_series: DEFAULT_MAX_SERIES,
            idle_flushes: DEFAULT_IDLE_FLUSHES_BEFORE_EXPIRY,
            dogstatsd: Some(DogStatsdBuilder::new()),
            exporters: vec![],
            attached: vec![],
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            queue_capacity: DEFAULT_MESSAGE_QUEUE_CAPACITY,
            clock: Arc::new(SystemClock),
        }
    }

    /// How often the flusher snapshots and exports (at least 1 ms, at most a year: longer,
    /// as in "only when I call flush()", is taken as a year).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval =
            interval.clamp(Duration::from_millis(1), Duration::from_secs(365 * 86_400));
        self
    }

    /// Spreads a large flush's payloads over this part of the flush interval (default 0.5;
    /// 0 sends every flush at once; at most 0.9). An Agent drains its socket continuously, so a
    /// flush of thousands of payloads written within milliseconds overflows the socket's receive
    /// buffer where the same payloads spread over half a second do not. Flushes of a few
    /// payloads go out at once; an explicit or final flush is spread over at most half its
    /// deadline. Recording threads are never affected: only the flusher thread waits.
    pub fn flush_pacing(mut self, part_of_interval: f64) -> Self {
        self.flush_pacing = if part_of_interval.is_finite() {
            part_of_interval.clamp(0.0, 0.9)
        } else {
            0.0
        };
        self
    }

    /// Caps live series per metric name. Past the cap, new label combinations are recorded
    /// into one overflow series tagged `paymetrics.overflow:true` and counted; memory stays
    /// bounded. The cap may be passed by at most the number of threads registering at once.
    pub fn max_series_per_metric(mut self, max: usize) -> Self {
        self.max_series_per_metric = max.max(1);
        self
    }

    /// Caps live series across all metric names (default [`DEFAULT_MAX_SERIES`]), so a flood
    /// of distinct names cannot grow memory without bound. Past the cap, a new series of a
    /// metric that already has series goes into that metric's overflow series
    /// (`name{paymetrics.overflow:true}`), and a series of a metric with none goes into the
    /// single `paymetrics.overflow` series of its type; both are counted
    /// (`paymetrics.client.cardinality_overflow`). Nothing recorded is lost: it is only
    /// folded.
    pub fn max_series(mut self, max: usize) -> Self {
        self.max_series = max.max(1);
        self
    }

    /// Expires a series after this many flushes without an update (at least 1). Expired series
    /// are no longer exported and their memory is freed, unless a handle to them is still held:
    /// then they stay registered and resume with their next update.
    pub fn expire_after_idle_flushes(mut self, flushes: u32) -> Self {
        self.idle_flushes = flushes.max(1);
        self
    }

    /// Configures the native DogStatsD exporter (on by default, from the environment).
    pub fn dogstatsd(mut self, builder: DogStatsdBuilder) -> Self {
        self.dogstatsd = Some(builder);
        self
    }

    /// Turns the native DogStatsD exporter off.
    pub fn without_dogstatsd(mut self) -> Self {
        self.dogstatsd = None;
        self
    }

    /// Adds an exporter; every flush hands it the same snapshot.
    pub fn exporter(mut self, exporter: impl Exporter) -> Self {
        self.exporters.push(Box::new(exporter));
        self
    }

    /// Attaches another recorder (for example `metrics-exporter-dogstatsd` or a Prometheus
    /// exporter, for teams that run both: see `cargo run -p paymetrics --example prometheus`)
    /// beside paymetrics' own storage. It sees every registration, once per series,
    /// and every update through the handles paymetrics hands out.
    pub fn attach_recorder(mut self, recorder: impl Recorder + Send + Sync + 'static) -> Self {
        self.attached.push(Arc::new(recorder));
        self
    }

    /// Bounds the final flush of [`Paymetrics::shutdown`] and of dropping the guard (default 5 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Capacity of the queue of events, service checks and timestamped points (default 10,000).
    pub fn message_queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// Reads wall-clock time from `clock` (snapshot times; windows, KPIs and rollups built on
    /// them): a [`ManualClock`](crate::clock::ManualClock) scripts time in tests.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Starts the flusher and returns the guard, without installing the recorder globally; use
    /// [`Paymetrics::recorder`] with [`metrics::with_local_recorder`], or [`install`](Self::install).
    pub fn build(self) -> Result<Paymetrics, Error> {
        let mut exporters = self.exporters;
        let mut dogstatsd = None;
        if let Some(builder) = &self.dogstatsd {
            let exporter = DogStatsdExporter::new(builder.resolve()?);
            dogstatsd = Some(exporter.shared_counters());
            exporters.insert(0, Box::new(exporter));
        }
        let limits = Limits {
            max_series: self.max_series,
            max_series_per_metric: self.max_series_per_metric,
            idle_flushes_before_expiry: self.idle_flushes,
        };
        let inner = Arc::new(Inner::new(limits, self.attached));
        let shared = Arc::new(Shared::new(
            Arc::clone(&inner),
            self.queue_capacity,
            self.clock,
        ));
        let schedule = Schedule {
            interval: self.flush_interval,
            pacing: self.flush_pacing,
            deadline: self.shutdown_timeout,
        };
        let thread =
            flusher::spawn(Arc::clone(&shared), exporters, schedule).map_err(Error::Thread)?;
        Ok(Paymetrics {
            recorder: PaymetricsRecorder { inner },
            handle: PaymetricsHandle {
                shared,
                timeout: self.shutdown_timeout,
            },
            thread: Mutex::new(Some(thread)),
            dogstatsd,
        })
    }

    /// Builds, then installs the recorder as the process-wide `metrics` recorder.
    pub fn install(self) -> Result<Paymetrics, Error> {
        let metrics = self.build()?;
        metrics::set_global_recorder(metrics.recorder.clone())
            .map_err(|_| Error::RecorderAlreadyInstalled)?;
        Ok(metrics)
    }
}

/// A cheap, cloneable handle to a running paymetrics: flush, query, send messages.
#[derive(Debug, Clone)]
pub struct PaymetricsHandle {
    shared: Arc<Shared>,
    timeout: Duration,
}

impl PaymetricsHandle {
    /// Flushes now and waits for the exporters (up to the shutdown timeout); `true` when the
    /// flush is done and every exporter delivered everything (`false` when, for example, the
    /// Agent was unreachable: what was dropped is counted in the client telemetry).
    pub fn flush(&self) -> bool {
        self.shared.flush(self.timeout)
    }

    /// The snapshot of the latest flush: every series' value, for in-process queries.
    pub fn latest_snapshot(&self) -> Option<Arc<Snapshot>> {
        self.shared.latest()
    }

    /// Queues an event, service check or timestamped point for the next flush. Never blocks on
    /// I/O; returns `false` (and counts it) if the queue is full.
    pub fn send(&self, message: impl Into<Message>) -> bool {
        self.shared.send(message.into())
    }
}

/// The running paymetrics. Dropping it (or calling [`shutdown`](Self::shutdown)) flushes one
/// last time, bounded by the shutdown timeout, and stops the flusher.
#[derive(Debug)]
pub struct Paymetrics {
    recorder: PaymetricsRecorder,
    handle: PaymetricsHandle,
    thread: Mutex<Option<JoinHandle<()>>>,
    dogstatsd: Option<SharedCounters>,
}

impl Paymetrics {
    /// The recorder, for [`metrics::with_local_recorder`] or to install yourself.
    pub fn recorder(&self) -> &PaymetricsRecorder {
        &self.recorder
    }

    /// A cloneable handle for other threads and tasks.
    pub fn handle(&self) -> PaymetricsHandle {
        self.handle.clone()
    }

    /// The clock paymetrics reads.
    pub fn clock(&self) -> SharedClock {
        Arc::clone(&self.handle.shared.clock)
    }

    /// See [`PaymetricsHandle::flush`].
    pub fn flush(&self) -> bool {
        self.handle.flush()
    }

    /// See [`PaymetricsHandle::latest_snapshot`].
    pub fn latest_snapshot(&self) -> Option<Arc<Snapshot>> {
        self.handle.latest_snapshot()
    }

    /// See [`PaymetricsHandle::send`].
    pub fn send(&self, message: impl Into<Message>) -> bool {
        self.handle.send(message)
    }

    /// The native DogStatsD exporter's cumulative telemetry, if it is on.
    pub fn dogstatsd_telemetry(&self) -> Option<ClientTelemetry> {
        self.dogstatsd.as_ref().map(|c| c.read())
    }

    /// Flushes one last time and stops the flusher, waiting at most the shutdown timeout;
    /// `true` if the final flush was delivered in time.
    pub fn shutdown(self) -> bool {
        self.close()
    }

    /// Like [`shutdown`](Self::shutdown), but keeps the guard, so what the final flush sent
    /// can still be read ([`dogstatsd_telemetry`](Self::dogstatsd_telemetry),
    /// [`latest_snapshot`](Self::latest_snapshot)). Later calls, and dropping the guard, do
    /// nothing more; recording after it is kept in memory but no longer exported.
    ///
    /// ```
    /// let metrics = paymetrics::builder().without_dogstatsd().build()?;
    /// assert!(metrics.close());
    /// assert!(metrics.latest_snapshot().is_some());
    /// # Ok::<(), paymetrics::Error>(())
    /// ```
    pub fn close(&self) -> bool {
        let Some(thread) = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return true;
        };
        match self.handle.shared.shutdown(self.handle.timeout) {
            Some(delivered) => {
                let _ = thread.join();
                delivered
            }
            None => {
                tracing::warn!(
                    target: "paymetrics",
                    timeout = ?self.handle.timeout,
                    "the final flush did not finish in time; the flusher thread is left to finish alone"
                );
                false
            }
        }
    }
}

impl Drop for Paymetrics {
    fn drop(&mut self) {
        self.close();
    }
}

impl From<crate::message::Event> for Message {
    fn from(e: crate::message::Event) -> Self {
        Message::Event(e)
    }
}

impl From<crate::message::ServiceCheck> for Message {
    fn from(sc: crate::message::ServiceCheck) -> Self {
        Message::ServiceCheck(sc)
    }
}

impl From<crate::message::TimestampedMetric> for Message {
    fn from(m: crate::message::TimestampedMetric) -> Self {
        Message::Timestamped(m)
    }
}
