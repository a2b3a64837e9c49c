//! Helpers for an application's own tests: record, then assert what was recorded.
//!
//! Enabled by the `testing` cargo feature (off by default, so a production build does not
//! compile `metrics-util`'s debugging recorder). Turn it on for your tests only:
//!
//! ```toml
//! [dev-dependencies]
//! paymetrics = { version = "0.1", features = ["testing"] }
//! ```
//!
//! Built on `metrics_util`'s `DebuggingRecorder`, so no flusher, socket or agent is involved:
//! counters read as totals, gauges as their last value, histograms as every value recorded.
//!
//! * [`capture`] runs a closure with a recorder on the calling thread only
//!   ([`metrics::with_local_recorder`]): captures on different threads never mix.
//! * [`capture_async`] runs a future, for `#[tokio::test]` on a current-thread or multi-thread
//!   runtime: what any thread records while it runs is captured, including tasks spawned onto
//!   other workers.
//!
//! Queries match a **subset of labels**: the labels you name must be on the series, and the
//! series may carry more. Every matching series counts: counters are summed, histograms'
//! samples concatenated, gauges summed (see [`Recorded::gauge`]). Name every label to read a
//! single series.
//!
//! ```
//! use paymetrics::testing;
//!
//! fn charge(amount: f64, method: &'static str) {
//!     metrics::counter!("business.payment.attempts", "currency" => "EUR", "payment_method" => method)
//!         .increment(1);
//!     metrics::histogram!("business.payment.amount", "currency" => "EUR").record(amount);
//! }
//!
//! let recorded = testing::capture(|| {
//!     charge(12.5, "card");
//!     charge(40.0, "wallet");
//! });
//! // Both series carry currency:EUR: their totals add up.
//! assert_eq!(recorded.counter("business.payment.attempts", &[("currency", "EUR")]), Some(2));
//! assert_eq!(
//!     recorded.counter("business.payment.attempts", &[("currency", "EUR"), ("payment_method", "card")]),
//!     Some(1)
//! );
//! assert_eq!(recorded.histogram("business.payment.amount", &[("currency", "EUR")]), Some(vec![12.5, 40.0]));
//! assert_eq!(recorded.counter("business.payment.attempts", &[("currency", "USD")]), None);
//! ```

use std::{
    future::Future,
    mem,
    pin::Pin,
    sync::{Arc, Mutex, OnceLock, PoisonError, RwLock},
    task::{Context, Poll, Waker},
};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::{
    CompositeKey, MetricKind,
    debugging::{DebugValue, DebuggingRecorder, Snapshotter},
};

/// Runs `f` with a fresh recording recorder installed on this thread and returns what it
/// recorded.
///
/// Only the calling thread records into it (it is a [`metrics::with_local_recorder`] scope), so
/// tests running in parallel never see each other's metrics. For async code use
/// [`capture_async`].
///
/// ```
/// let recorded = paymetrics::testing::capture(|| {
///     metrics::counter!("jobs.done", "queue" => "settlements").increment(3);
/// });
/// assert_eq!(recorded.counter("jobs.done", &[]), Some(3));
/// ```
pub fn capture(f: impl FnOnce()) -> Recorded {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, f);
    Recorded::from_snapshotter(&snapshotter)
}

/// Runs `future` to completion with a fresh recording recorder seen by every thread of the
/// process, and returns what was recorded meanwhile.
///
/// `metrics`' local recorders are thread-local, so a multi-thread runtime's workers would not
/// see one. Instead, the first call installs a routing recorder as the process's global
/// recorder, which forwards to the capture in progress (and drops what is recorded between
/// captures). Captures are serialised by a process-wide asynchronous lock: concurrent tests
/// wait their turn instead of mixing their metrics.
///
/// Because the recorder is global for the duration:
///
/// * anything recorded by any thread without a thread-local recorder is captured, so run
///   tests that record outside a capture in another test binary (each file in `tests/` is
///   one), or use [`capture`] for them;
/// * a test binary that uses `capture_async` cannot also install another global recorder
///   (`paymetrics::init()`, `PaymetricsBuilder::install`): build paymetrics with `build()` and
///   scope it with [`metrics::with_local_recorder`] there instead;
/// * `metrics` handles created inside one capture (for example by a
///   [`BusinessEvents`](crate::events::BusinessEvents)) keep recording into that capture:
///   create them inside the future.
///
/// # Panics
///
/// If another global `metrics` recorder was installed in this process before the first call:
/// nothing could be captured then, and a silent empty capture would make assertions lie.
///
/// ```
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() {
/// let recorded = paymetrics::testing::capture_async(async {
///     // A task on another worker thread: captured too.
///     tokio::spawn(async { metrics::counter!("jobs.done").increment(1) }).await.unwrap();
///     metrics::counter!("jobs.done").increment(1);
/// })
/// .await;
/// assert_eq!(recorded.counter("jobs.done", &[]), Some(2));
/// # }
/// ```
pub async fn capture_async(future: impl Future<Output = ()>) -> Recorded {
    install_router();
    let _turn = CAPTURE_LOCK.acquire().await;
    let recorder = Arc::new(DebuggingRecorder::new());
    let snapshotter = recorder.snapshotter();
    let previous = ROUTER_TARGET
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .replace(recorder);
    debug_assert!(previous.is_none(), "captures are serialised by the lock");
    // Clears the target even if the future panics, so the next capture starts clean.
    let _target = ClearTarget;
    future.await;
    Recorded::from_snapshotter(&snapshotter)
}

/// Where the routing recorder forwards to: the capture in progress, if any.
static ROUTER_TARGET: RwLock<Option<Arc<DebuggingRecorder>>> = RwLock::new(None);

/// Serialises [`capture_async`] calls across the process.
static CAPTURE_LOCK: AsyncLock = AsyncLock::new();

fn install_router() {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    let installed = *INSTALLED.get_or_init(|| metrics::set_global_recorder(Router).is_ok());
    assert!(
        installed,
        "paymetrics::testing::capture_async: another global metrics recorder is installed in this \
         process, so nothing could be captured; use `capture`, or keep the global install out of \
         this test binary"
    );
}

struct ClearTarget;

impl Drop for ClearTarget {
    fn drop(&mut self) {
        ROUTER_TARGET
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

/// The global recorder of [`capture_async`]: forwards to the capture in progress, else records
/// nothing.
struct Router;

impl Router {
    fn with_target<T>(&self, f: impl FnOnce(&DebuggingRecorder) -> T) -> Option<T> {
        let target = ROUTER_TARGET.read().unwrap_or_else(PoisonError::into_inner);
        target.as_deref().map(f)
    }
}

impl Recorder for Router {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.with_target(|r| r.describe_counter(key, unit, description));
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.with_target(|r| r.describe_gauge(key, unit, description));
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.with_target(|r| r.describe_histogram(key, unit, description));
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.with_target(|r| r.register_counter(key, metadata))
            .unwrap_or_else(Counter::noop)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.with_target(|r| r.register_gauge(key, metadata))
            .unwrap_or_else(Gauge::noop)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.with_target(|r| r.register_histogram(key, metadata))
            .unwrap_or_else(Histogram::noop)
    }
}

/// A lock whose waiters are futures, not threads: a capture holds it across its `.await`s, and
/// a blocking lock there would stall a runtime's worker (or deadlock a current-thread runtime
/// that runs two captures concurrently).
struct AsyncLock {
    state: Mutex<LockState>,
}

struct LockState {
    held: bool,
    waiters: Vec<Waker>,
}

impl AsyncLock {
    const fn new() -> Self {
        Self {
            state: Mutex::new(LockState {
                held: false,
                waiters: Vec::new(),
            }),
        }
    }

    fn acquire(&'static self) -> Acquire {
        Acquire { lock: self }
    }
}

struct Acquire {
    lock: &'static AsyncLock,
}

impl Future for Acquire {
    type Output = LockGuard;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<LockGuard> {
        let mut state = self
            .lock
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if state.held {
            if !state.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                state.waiters.push(cx.waker().clone());
            }
            Poll::Pending
        } else {
            state.held = true;
            Poll::Ready(LockGuard { lock: self.lock })
        }
    }
}

struct LockGuard {
    lock: &'static AsyncLock,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let waiters = {
            let mut state = self
                .lock
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            state.held = false;
            mem::take(&mut state.waiters)
        };
        // Every waiter polls again; one wins, the others register anew.
        for waker in waiters {
            waker.wake();
        }
    }
}

/// What [`capture`] or [`capture_async`] saw: every series with its value.
#[derive(Debug)]
pub struct Recorded {
    entries: Vec<(CompositeKey, DebugValue)>,
}

impl Recorded {
    /// Reads the current values from a `DebuggingRecorder`'s snapshotter (for tests that manage
    /// their own recorder). Reading resets the recorder's counters, gauges and histograms, as
    /// `Snapshotter::snapshot` does.
    ///
    /// ```
    /// use metrics_util::debugging::DebuggingRecorder;
    ///
    /// let recorder = DebuggingRecorder::new();
    /// let snapshotter = recorder.snapshotter();
    /// metrics::with_local_recorder(&recorder, || metrics::gauge!("queue.depth").set(4.0));
    /// let recorded = paymetrics::testing::Recorded::from_snapshotter(&snapshotter);
    /// assert_eq!(recorded.gauge("queue.depth", &[]), Some(4.0));
    /// ```
    pub fn from_snapshotter(snapshotter: &Snapshotter) -> Self {
        let entries = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(k, _, _, v)| (k, v))
            .collect();
        Self { entries }
    }

    /// The values of every series of kind `kind` named `name` that carries all of `labels`
    /// (and possibly more), in the order they were first registered.
    fn matching<'a>(
        &'a self,
        kind: MetricKind,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a DebugValue> + 'a {
        self.entries
            .iter()
            .filter(move |(k, _)| {
                let key = k.key();
                k.kind() == kind
                    && key.name() == name
                    && labels
                        .iter()
                        .all(|(lk, lv)| key.labels().any(|l| l.key() == *lk && l.value() == *lv))
            })
            .map(|(_, v)| v)
    }

    /// The total of every counter `name` carrying all of `labels` (labels in any order; the
    /// series may carry more). `&[]` sums every series of the name. `None` when no series
    /// matches.
    ///
    /// ```
    /// let recorded = paymetrics::testing::capture(|| {
    ///     metrics::counter!("payments", "currency" => "EUR", "status" => "ok").increment(2);
    ///     metrics::counter!("payments", "currency" => "EUR", "status" => "failed").increment(1);
    ///     metrics::counter!("payments", "currency" => "JPY", "status" => "ok").increment(5);
    /// });
    /// assert_eq!(recorded.counter("payments", &[("currency", "EUR")]), Some(3));
    /// assert_eq!(recorded.counter("payments", &[("status", "ok")]), Some(7));
    /// assert_eq!(recorded.counter("payments", &[]), Some(8));
    /// assert_eq!(recorded.counter("payments", &[("currency", "USD")]), None);
    /// ```
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        self.matching(MetricKind::Counter, name, labels)
            .filter_map(|v| match v {
                DebugValue::Counter(v) => Some(*v),
                _ => None,
            })
            .reduce(u64::saturating_add)
    }

    /// The last value of gauge `name{labels}` when one series matches; when several carry all
    /// of `labels`, the sum of their last values (Datadog's `sum:` space aggregation: the
    /// connections of every pool, the depth of every queue). `None` when no series matches.
    ///
    /// ```
    /// let recorded = paymetrics::testing::capture(|| {
    ///     metrics::gauge!("pool.connections", "pool" => "primary", "state" => "idle").set(3.0);
    ///     metrics::gauge!("pool.connections", "pool" => "replica", "state" => "idle").set(2.0);
    ///     metrics::gauge!("pool.connections", "pool" => "primary", "state" => "busy").set(7.0);
    /// });
    /// assert_eq!(recorded.gauge("pool.connections", &[("pool", "primary"), ("state", "busy")]), Some(7.0));
    /// assert_eq!(recorded.gauge("pool.connections", &[("state", "idle")]), Some(5.0));
    /// assert_eq!(recorded.gauge("pool.connections", &[("pool", "cache")]), None);
    /// ```
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.matching(MetricKind::Gauge, name, labels)
            .filter_map(|v| match v {
                DebugValue::Gauge(v) => Some(v.into_inner()),
                _ => None,
            })
            .reduce(|a, b| a + b)
    }

    /// Every value recorded into the histograms `name` carrying all of `labels`: each series'
    /// values in the order recorded, series after series in the order they were first
    /// registered. `None` when no series matches.
    ///
    /// ```
    /// let recorded = paymetrics::testing::capture(|| {
    ///     metrics::histogram!("latency", "route" => "/pay", "status" => "200").record(12.0);
    ///     metrics::histogram!("latency", "route" => "/pay", "status" => "500").record(80.0);
    ///     metrics::histogram!("latency", "route" => "/pay", "status" => "200").record(14.0);
    /// });
    /// assert_eq!(recorded.histogram("latency", &[("route", "/pay")]), Some(vec![12.0, 14.0, 80.0]));
    /// assert_eq!(recorded.histogram("latency", &[("status", "500")]), Some(vec![80.0]));
    /// ```
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Option<Vec<f64>> {
        self.matching(MetricKind::Histogram, name, labels)
            .filter_map(|v| match v {
                DebugValue::Histogram(v) => Some(v.iter().map(|x| x.into_inner())),
                _ => None,
            })
            .fold(None, |all: Option<Vec<f64>>, values| {
                let mut all = all.unwrap_or_default();
                all.extend(values);
                Some(all)
            })
    }

    /// Names of every series recorded, sorted and deduplicated.
    ///
    /// ```
    /// let recorded = paymetrics::testing::capture(|| {
    ///     metrics::counter!("b.count").increment(1);
    ///     metrics::gauge!("a.level").set(1.0);
    /// });
    /// assert_eq!(recorded.names(), ["a.level", "b.count"]);
    /// ```
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .entries
            .iter()
            .map(|(k, _)| k.key().name().to_owned())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_subset_matches_agree_on_a_single_series() {
        let recorded = capture(|| {
            metrics::counter!("c", "a" => "1", "b" => "2").increment(4);
            metrics::counter!("c", "a" => "1", "b" => "3").increment(1);
        });
        assert_eq!(recorded.counter("c", &[("b", "2"), ("a", "1")]), Some(4));
        assert_eq!(recorded.counter("c", &[("a", "1")]), Some(5));
        // A label the series do not carry matches none of them.
        assert_eq!(recorded.counter("c", &[("a", "1"), ("z", "9")]), None);
        // Kinds do not mix.
        assert_eq!(recorded.gauge("c", &[]), None);
        assert_eq!(recorded.histogram("c", &[]), None);
    }

    #[test]
    fn an_empty_capture_matches_nothing() {
        let recorded = capture(|| {});
        assert_eq!(recorded.counter("c", &[]), None);
        assert!(recorded.names().is_empty());
    }
}
