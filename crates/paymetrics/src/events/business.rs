//! The [`BusinessEvents`] handle and its machinery: the per-event tables of cached `metrics`
//! handles, and the recording of external-service calls through the handle.
//!
//! The events themselves (their structs, metric names and tag keys, and the handle method that
//! records each) live in the domain modules: [`payment`](super::payment),
//! [`user`](super::user), [`fraud`](super::fraud), [`queue`](super::queue),
//! [`health`](super::health) and [`external`](super::external).
//!
//! # Why cached handles
//!
//! `metrics::counter!(name, labels)` builds a [`metrics::Key`] and looks it up in the recorder's
//! registry on every call, and a caller that formats its tag values does so every time. Here
//! each event kind has one small table from a packed `u64` (closed enums, currency and country
//! codes, interned ids) to the series' handles, registered through the facade on first use and
//! kept: a hot event costs an uncontended read lock (each thread reads its own shard of the
//! table), one hash probe and the handles' atomics.

use std::{
    collections::HashMap,
    fmt,
    hash::BuildHasherDefault,
    sync::{Arc, Mutex, OnceLock, PoisonError, RwLock},
};

use metrics::{Counter, Gauge, Histogram, Label};

use super::{
    external::{
        CALLS_COUNT, CALLS_RESPONSE_TIME, CALLS_RETRY_COUNT, CALLS_SUCCESS_RATE,
        CIRCUIT_BREAKER_STATE, CircuitState, ENDPOINT, ExternalServiceCall, METHOD, SERVICE_NAME,
        SUCCESS,
    },
    fraud, health,
    normalize::{DEFAULT_MAX_VALUES_PER_TAG, Interner, UNKNOWN},
    payment, queue, user,
};
pub(crate) use crate::recorder::FastHasher;
use crate::{clock::SystemClock, recorder::thread_index, uniques::Uniques};

/// Label combinations cached per event kind. Past it, an event's new combinations are
/// registered through the facade on each call (correct, only slower). By then the recorder's
/// own cap (1000 series per metric by default) already folds them into its overflow series.
pub const MAX_CACHED_SERIES: usize = 1024;

/// The handle to record typed business and technical events.
///
/// Cheap to clone (an `Arc` inside), `Send + Sync`: create one at start-up and share it. It
/// holds the in-process [`Uniques`] sketches, which the payment-attempt and user-activity
/// events feed instead of sending user ids anywhere; their estimates are published only by
/// [`Uniques::publish`] (or `paymetrics-automation`'s scheduler, given them). For the handle
/// wired to windows, KPIs and rollups, see [`BusinessMetrics`](crate::business::BusinessMetrics).
///
/// **Recorder binding.** Each series' `metrics` handles are registered with the recorder that
/// is current (global, or thread-local through [`metrics::with_local_recorder`]) the first time
/// that series is recorded, and kept. Install the recorder before recording through a
/// `BusinessEvents`; in tests, create one `BusinessEvents` per
/// `paymetrics::testing::capture` (feature `testing`) or `with_local_recorder` scope, inside it.
/// Because the handle holds them, its series stay registered for its lifetime (an idle one is
/// not exported, and resumes on its next update); their number is bounded by the closed tag
/// sets, the per-tag caps and [`MAX_CACHED_SERIES`].
///
/// ```
/// use paymetrics::events::{BusinessEvents, HealthCheck};
///
/// let recorded = paymetrics::testing::capture(|| {
///     let events = BusinessEvents::default();
///     events.health_check(&HealthCheck { component: "postgres", healthy: true });
/// });
/// assert_eq!(
///     recorded.counter("system.health.checks", &[("component", "postgres"), ("healthy", "true")]),
///     Some(1)
/// );
/// ```
#[derive(Clone)]
pub struct BusinessEvents {
    pub(super) inner: Arc<Inner>,
}

/// Shared state behind [`BusinessEvents`].
pub(super) struct Inner {
    pub(super) uniques: Arc<Uniques>,
    pub(super) max_values_per_tag: usize,
    pub(super) payment: payment::Caches,
    pub(super) user: user::Caches,
    pub(super) fraud: fraud::Caches,
    pub(super) queue: queue::Caches,
    pub(super) health: health::Caches,
    external: ExternalCaches,
}

impl fmt::Debug for BusinessEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the uniques: their sketches are tens of KiB of registers.
        f.debug_struct("BusinessEvents")
            .field("max_values_per_tag", &self.inner.max_values_per_tag)
            .finish_non_exhaustive()
    }
}

impl Default for BusinessEvents {
    /// A handle with its own private [`Uniques`] on the [`SystemClock`].
    ///
    /// It records every event through the facade and counts distinct users in those uniques,
    /// but nothing publishes their gauges (`business.user.daily_active`,
    /// `business.user.monthly_active`, `business.payment.unique_senders`) unless you call
    /// [`uniques().publish()`](Uniques::publish) or hand [`uniques()`](Self::uniques) to
    /// `paymetrics-automation`'s scheduler; no windows, KPIs or rollups either.
    /// [`BusinessMetrics`](crate::business::BusinessMetrics) wires all of it.
    fn default() -> Self {
        Self::new(Arc::new(Uniques::new(Arc::new(SystemClock))))
    }
}

impl BusinessEvents {
    /// A handle feeding `uniques`, keeping [`DEFAULT_MAX_VALUES_PER_TAG`] distinct values per
    /// open tag key.
    pub fn new(uniques: Arc<Uniques>) -> Self {
        Self::with_max_values_per_tag(uniques, DEFAULT_MAX_VALUES_PER_TAG)
    }

    /// A handle keeping up to `max` distinct values per open tag key (model versions, queue
    /// names, referrers, ...) before recording [`OTHER`](super::normalize::OTHER).
    pub fn with_max_values_per_tag(uniques: Arc<Uniques>, max: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                uniques,
                max_values_per_tag: max,
                payment: payment::Caches::default(),
                user: user::Caches::new(max),
                fraud: fraud::Caches::new(max),
                queue: queue::Caches::new(max),
                health: health::Caches::new(max),
                external: ExternalCaches::new(max),
            }),
        }
    }

    /// The distinct-user sketches this handle feeds (for the KPI job's gauges).
    pub fn uniques(&self) -> &Arc<Uniques> {
        &self.inner.uniques
    }

    /// Records an external-service call: the same five metrics as
    /// [`ExternalServiceCall::record`], through cached handles, with `service_name`, `endpoint`
    /// and `method` sanitised and bounded like every open tag value.
    pub fn external_call(&self, call: &ExternalServiceCall) {
        let c = &self.inner.external;
        let service = c.service_name.id(Some(&call.service_name));
        let endpoint = c.endpoint.id(Some(&call.endpoint));
        let method = c.method.id(Some(&call.method));
        let key = u64::from(service)
            | u64::from(endpoint) << 16
            | u64::from(method) << 32
            | u64::from(call.success) << 48;
        c.calls.record(
            key,
            || {
                let labels = vec![
                    Label::new(SERVICE_NAME, c.service_name.value(service)),
                    Label::new(ENDPOINT, c.endpoint.value(endpoint)),
                    Label::new(METHOD, c.method.value(method)),
                ];
                ExternalSeries {
                    success_labels: with_label(&labels, SUCCESS, bool_str(call.success)),
                    labels,
                    count: OnceLock::new(),
                    response_time: OnceLock::new(),
                    success_rate: OnceLock::new(),
                    retry_count: OnceLock::new(),
                    circuit_breaker: OnceLock::new(),
                }
            },
            |s| {
                counter(&s.count, CALLS_COUNT, &s.labels).increment(1);
                histogram(&s.response_time, CALLS_RESPONSE_TIME, &s.labels)
                    .record(call.duration_ms);
                counter(&s.success_rate, CALLS_SUCCESS_RATE, &s.success_labels).increment(1);
                histogram(&s.retry_count, CALLS_RETRY_COUNT, &s.labels)
                    .record(f64::from(call.retry_count));
                if let Some(state) = call.circuit_breaker {
                    let open = if state == CircuitState::Open {
                        1.0
                    } else {
                        0.0
                    };
                    gauge(&s.circuit_breaker, CIRCUIT_BREAKER_STATE, &s.labels).set(open);
                }
            },
        );
    }
}

struct ExternalCaches {
    service_name: Interner,
    endpoint: Interner,
    method: Interner,
    calls: Cache<ExternalSeries>,
}

impl ExternalCaches {
    fn new(max: usize) -> Self {
        Self {
            service_name: Interner::new(UNKNOWN, max),
            endpoint: Interner::new(UNKNOWN, max),
            method: Interner::new(UNKNOWN, max),
            calls: Cache::default(),
        }
    }
}

struct ExternalSeries {
    labels: Vec<Label>,
    success_labels: Vec<Label>,
    count: OnceLock<Counter>,
    response_time: OnceLock<Histogram>,
    success_rate: OnceLock<Counter>,
    retry_count: OnceLock<Histogram>,
    circuit_breaker: OnceLock<Gauge>,
}

/// The tag value of a boolean: `true` or `false`.
pub(super) const fn bool_str(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

/// `labels` plus one static label at the end.
pub(super) fn with_label(labels: &[Label], key: &'static str, value: &'static str) -> Vec<Label> {
    let mut all = Vec::with_capacity(labels.len() + 1);
    all.extend_from_slice(labels);
    all.push(Label::from_static_parts(key, value));
    all
}

/// The counter `name{labels}`, registered with the current recorder on first use.
#[inline]
pub(super) fn counter<'a>(
    cell: &'a OnceLock<Counter>,
    name: &'static str,
    labels: &[Label],
) -> &'a Counter {
    cell.get_or_init(|| metrics::counter!(name, labels.iter()))
}

/// The gauge `name{labels}`, registered with the current recorder on first use.
#[inline]
pub(super) fn gauge<'a>(
    cell: &'a OnceLock<Gauge>,
    name: &'static str,
    labels: &[Label],
) -> &'a Gauge {
    cell.get_or_init(|| metrics::gauge!(name, labels.iter()))
}

/// The histogram `name{labels}` (a distribution on the wire), registered with the current
/// recorder on first use.
#[inline]
pub(super) fn histogram<'a>(
    cell: &'a OnceLock<Histogram>,
    name: &'static str,
    labels: &[Label],
) -> &'a Histogram {
    cell.get_or_init(|| metrics::histogram!(name, labels.iter()))
}

/// One event kind's series, by packed label key.
///
/// Every thread reads its own shard of the table (picked round-robin, as the recorder's counter
/// stripes are), so recording threads never contend on one lock word: a shared read lock would
/// put back the cache-line ping-pong that striped counters take out. Series are created once,
/// in `all`, and shared by `Arc` with the shards that use them.
pub(super) struct Cache<S> {
    local: Sharded<HashMap<u64, Arc<S>, BuildHasherDefault<FastHasher>>>,
    all: Mutex<HashMap<u64, Arc<S>, BuildHasherDefault<FastHasher>>>,
}

impl<S> Default for Cache<S> {
    fn default() -> Self {
        Self {
            local: Sharded::default(),
            all: Mutex::default(),
        }
    }
}

impl<S> Cache<S> {
    /// Runs `record` on the series of `key`, creating it with `make` on first use.
    #[inline]
    pub(super) fn record(&self, key: u64, make: impl FnOnce() -> S, record: impl FnOnce(&S)) {
        let shard = self.local.get();
        {
            let map = shard.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(series) = map.get(&key) {
                record(series);
                return;
            }
        }
        self.miss(shard, key, make, record);
    }

    #[cold]
    #[inline(never)]
    fn miss(
        &self,
        shard: &RwLock<HashMap<u64, Arc<S>, BuildHasherDefault<FastHasher>>>,
        key: u64,
        make: impl FnOnce() -> S,
        record: impl FnOnce(&S),
    ) {
        let mut all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        let series = match all.get(&key) {
            Some(series) => Arc::clone(series),
            None if all.len() < MAX_CACHED_SERIES => {
                Arc::clone(all.entry(key).or_insert_with(|| Arc::new(make())))
            }
            None => {
                drop(all);
                record(&make()); // registers through the facade, uncached
                return;
            }
        };
        drop(all);
        shard
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, Arc::clone(&series));
        record(&series);
    }
}

/// One `T` per shard, each on its own cache lines; a thread always uses the same shard.
#[derive(Debug)]
pub(crate) struct Sharded<T> {
    shards: Box<[Padded<RwLock<T>>]>,
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T: Default> Default for Sharded<T> {
    fn default() -> Self {
        static SHARDS: OnceLock<usize> = OnceLock::new();
        let shards = *SHARDS.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
            (cores * 2).next_power_of_two().clamp(2, 32)
        });
        Self {
            shards: (0..shards).map(|_| Padded::default()).collect(),
        }
    }
}

impl<T> Sharded<T> {
    /// This thread's shard.
    #[inline]
    pub(crate) fn get(&self) -> &RwLock<T> {
        &self.shards[thread_index() & (self.shards.len() - 1)].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cache_still_records() {
        let cache: Cache<OnceLock<Counter>> = Cache::default();
        let recorded = crate::testing::capture(|| {
            for key in 0..(MAX_CACHED_SERIES as u64 + 10) {
                cache.record(key, OnceLock::new, |c| {
                    counter(c, "cache.test", &[Label::new("k", (key % 3).to_string())]).increment(1)
                });
            }
        });
        assert_eq!(cache.all.lock().unwrap().len(), MAX_CACHED_SERIES);
        let total: u64 = ["0", "1", "2"]
            .iter()
            .map(|k| recorded.counter("cache.test", &[("k", k)]).unwrap())
            .sum();
        assert_eq!(total, MAX_CACHED_SERIES as u64 + 10);
    }
}
