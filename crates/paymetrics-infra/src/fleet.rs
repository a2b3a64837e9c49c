//! The rounds: every interval, each replica tries to take or renew the [`FleetLease`]; the
//! one that holds it runs every [`FleetCollector`]. Where the metrics go ([`Sink`]) lives here
//! too; the collectors themselves live in their modules.

use std::{fmt, future::Future, pin::Pin, time::Duration};

use paymetrics::{Paymetrics, PaymetricsHandle, PaymetricsRecorder, message::TimestampedMetric};
use redis::aio::ConnectionLike;
use tokio::{sync::watch, task::JoinHandle, time::MissedTickBehavior};

use crate::{
    lease::FleetLease,
    report::{self, Reporter},
};

/// How often the rounds run by default: CloudWatch's finest basic resolution is a minute, and
/// the Kubernetes numbers move at the pace of scheduling.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// How long a take or renewal of the lease lasts by default: two intervals, so a slow round
/// does not lose it, and a dead holder is replaced within three intervals.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(120);

/// Where a collector's numbers go: gauges and counters through the `metrics` facade into a
/// paymetrics recorder, and timestamped points through [`PaymetricsHandle::send`].
#[derive(Debug, Clone)]
pub struct Sink {
    recorder: Option<PaymetricsRecorder>,
    handle: Option<PaymetricsHandle>,
}

impl Sink {
    /// Records into `metrics`' recorder (whether or not it is the global one) and sends its
    /// timestamped points with it.
    pub fn new(metrics: &Paymetrics) -> Self {
        Self {
            recorder: Some(metrics.recorder().clone()),
            handle: Some(metrics.handle()),
        }
    }

    /// Records through whatever recorder is current, and drops timestamped points (unit
    /// tests only).
    #[cfg(test)]
    pub(crate) fn current() -> Self {
        Self {
            recorder: None,
            handle: None,
        }
    }

    /// Runs `f` with this sink's recorder current, so `metrics::gauge!` and friends record
    /// into it. Collectors call it after their awaits: a thread-local recorder does not
    /// follow a task across threads.
    pub fn record<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.recorder {
            Some(recorder) => metrics::with_local_recorder(recorder, f),
            None => f(),
        }
    }

    /// Queues a point with its own timestamp for the next flush; `false` if the queue was
    /// full (paymetrics counts it).
    pub fn send(&self, point: TimestampedMetric) -> bool {
        self.handle.as_ref().is_some_and(|h| h.send(point))
    }
}

/// A future a [`FleetCollector`] round returns.
pub type RoundFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Something that calls an infrastructure API once per round, on the replica that holds the
/// lease, and records what it found into the [`Sink`]. A round reports its own failures
/// (counted in [`report::COLLECTOR_ERRORS`]) and never fails as a whole.
///
/// ```
/// use paymetrics_infra::{FleetCollector, RoundFuture, Sink};
///
/// struct Queues;
/// impl FleetCollector for Queues {
///     fn name(&self) -> &'static str {
///         "queues"
///     }
///     fn round<'a>(&'a mut self, sink: &'a Sink) -> RoundFuture<'a> {
///         Box::pin(async move {
///             let depth = 3.0; // asked from some API
///             sink.record(|| metrics::gauge!("queue.depth").set(depth));
///         })
///     }
/// }
/// ```
pub trait FleetCollector: Send + 'static {
    /// The collector's name, the [`report::COLLECTOR`] tag of its errors and calls.
    fn name(&self) -> &'static str;

    /// One round: ask the APIs, record the answers.
    fn round<'a>(&'a mut self, sink: &'a Sink) -> RoundFuture<'a>;
}

/// The lease outlives a round interval by too little: the holder would lose it between two
/// renewals and replicas would take turns.
#[derive(Debug, thiserror::Error)]
#[error(
    "the fleet lease ({ttl:?}) must last longer than the round interval ({interval:?}); twice the interval is a good choice"
)]
pub struct LeaseTooShort {
    ttl: Duration,
    interval: Duration,
}

/// Runs [`FleetCollector`]s every interval on the replica that holds a [`FleetLease`].
///
/// ```no_run
/// # async fn demo(metrics: &paymetrics::Paymetrics, conn: redis::aio::MultiplexedConnection)
/// # -> Result<(), Box<dyn std::error::Error>> {
/// use paymetrics_infra::{FleetLease, FleetRunner, Sink, DEFAULT_LEASE_TTL};
///
/// let lease = FleetLease::new(conn, "paymetrics:lease:infra", DEFAULT_LEASE_TTL);
/// let running = FleetRunner::new(lease, Sink::new(metrics))
///     // .collector(kubernetes_collector).collector(cloudwatch_collector)
///     .spawn()?;
/// // ... on shutdown: stops the rounds and releases the lease for another replica
/// running.shutdown().await;
/// # Ok(()) }
/// ```
pub struct FleetRunner<C> {
    lease: FleetLease<C>,
    sink: Sink,
    interval: Duration,
    collectors: Vec<Box<dyn FleetCollector>>,
}

impl<C> fmt::Debug for FleetRunner<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetRunner")
            .field("lease", &self.lease)
            .field("interval", &self.interval)
            .field(
                "collectors",
                &self.collectors.iter().map(|c| c.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> FleetRunner<C> {
    /// Rounds every [`DEFAULT_INTERVAL`] under `lease`, recording into `sink`.
    pub fn new(lease: FleetLease<C>, sink: Sink) -> Self {
        Self {
            lease,
            sink,
            interval: DEFAULT_INTERVAL,
            collectors: Vec::new(),
        }
    }

    /// How often the lease is tried or renewed and, while held, the collectors run.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Adds a collector; they run one after the other, in the order added.
    pub fn collector(mut self, collector: impl FleetCollector) -> Self {
        self.collectors.push(Box::new(collector));
        self
    }

    /// Starts the rounds on the current tokio runtime (the first at once).
    pub fn spawn(self) -> Result<RunningFleet, LeaseTooShort> {
        if self.lease.ttl() <= self.interval {
            return Err(LeaseTooShort {
                ttl: self.lease.ttl(),
                interval: self.interval,
            });
        }
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(self.run(stopped));
        Ok(RunningFleet { stop, task })
    }

    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        let mut reporter = Reporter::new("lease");
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stopped.changed() => break,
            }
            let held = match self.lease.acquire_or_renew().await {
                Ok(held) => held,
                Err(e) => {
                    reporter.failed(&self.sink, "lease", report::REASON_STORE, &e);
                    // Redis is down for every replica: the holder keeps collecting until its
                    // lease would have expired, and nobody else starts.
                    self.lease.is_held()
                }
            };
            let key = self.lease.key().to_owned();
            self.sink.record(|| {
                metrics::gauge!(report::LEASE_HELD, report::LEASE => key).set(if held {
                    1.0
                } else {
                    0.0
                });
            });
            if !held {
                continue;
            }
            let sink = &self.sink;
            for collector in &mut self.collectors {
                tokio::select! {
                    () = collector.round(sink) => {}
                    _ = stopped.changed() => return release(&self.lease, &self.sink, &mut reporter).await,
                }
            }
        }
        release(&self.lease, &self.sink, &mut reporter).await;
    }
}

async fn release<C: ConnectionLike + Clone + Send + Sync>(
    lease: &FleetLease<C>,
    sink: &Sink,
    reporter: &mut Reporter,
) {
    if let Err(e) = lease.release().await {
        reporter.failed(sink, "lease", report::REASON_STORE, &e);
    }
}

/// Rounds running on a task; see [`FleetRunner::spawn`].
#[derive(Debug)]
pub struct RunningFleet {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningFleet {
    /// Stops the rounds (interrupting one in progress) and releases the lease, so another
    /// replica takes over at its next round instead of after the lease's ttl.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Stops the rounds without releasing the lease, as if the process had died: another
    /// replica takes over once the lease expires.
    pub fn abort(self) {
        self.task.abort();
    }
}
