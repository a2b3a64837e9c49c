//! Cached metric handles and the guard that records each exchange exactly once.
//!
//! The hot path never formats a label: a route template's [`EndpointSeries`] is found with one
//! hash probe when the request arrives, and its handles for (method, status, tier, outcome) with
//! another when the exchange ends. What is recorded, and with which tags, is documented on the
//! constants in the parent module.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hash, Hasher, RandomState},
    sync::{
        Arc, OnceLock, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use http::{HeaderName, StatusCode};
use metrics::{Counter, Gauge, Histogram, Recorder, SharedString};

use super::{
    ENDPOINT, ERROR, MAX_CACHED_ENDPOINTS, MAX_CACHED_SERIES_PER_ENDPOINT, METHOD, OUTCOME,
    Outcome, RATE_LIMIT_REMAINING, REQUESTS_COUNT, REQUESTS_ERROR_RATE, REQUESTS_IN_FLIGHT,
    REQUESTS_RESPONSE_TIME, REQUESTS_SIZE, RESPONSES_SIZE, STATUS_CLIENT_CLOSED, STATUS_CODE,
    STATUS_INNER_ERROR, USER_TIER, UserTier,
};
use super::{
    layer::{Config, OuterTimeout},
    route,
};
use crate::method;

/// How much earlier than its declared duration an outer timeout may seem to fire, seen from this
/// layer: the outer layer starts its clock just before it calls this one (a few microseconds
/// earlier), and timers never fire before their deadline.
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// An address identifying the `metrics` recorder current on this thread.
fn current_recorder() -> usize {
    metrics::with_recorder(|r| std::ptr::from_ref::<dyn Recorder>(r).cast::<()>().addr())
}

/// Every route template's series, for one layer (shared by its clones).
#[derive(Debug, Default)]
pub(crate) struct Cache {
    endpoints: RwLock<Endpoints>,
}

#[derive(Debug, Default)]
struct Endpoints {
    /// The recorder the handles below were registered with. When the current one differs (the
    /// layer served a request before paymetrics was installed, or a test swapped recorders),
    /// the table starts afresh so that no request is recorded into a stale recorder.
    recorder: usize,
    /// Keyed by the template as the request carries it; `None` for an ignored route.
    map: HashMap<SharedString, Option<Arc<EndpointSeries>>, FastState>,
}

impl Cache {
    /// The series of the route `template`, created on first use; `None` if the route is
    /// ignored.
    pub(crate) fn endpoint(&self, template: &str, config: &Config) -> Option<Arc<EndpointSeries>> {
        let recorder = current_recorder();
        {
            let endpoints = self
                .endpoints
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if endpoints.recorder == recorder
                && let Some(series) = endpoints.map.get(template)
            {
                return series.clone();
            }
        }
        self.create(template, config, recorder)
    }

    #[cold]
    fn create(
        &self,
        template: &str,
        config: &Config,
        recorder: usize,
    ) -> Option<Arc<EndpointSeries>> {
        let mut endpoints = self
            .endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if endpoints.recorder != recorder {
            endpoints.map.clear();
            endpoints.recorder = recorder;
        }
        if let Some(series) = endpoints.map.get(template) {
            return series.clone();
        }
        let series = route::resolve(template, &config.routes).map(|endpoint| {
            Arc::new(EndpointSeries::new(
                endpoint,
                config.rate_limit_header.clone(),
                config.outer_timeout,
            ))
        });
        if endpoints.map.len() < MAX_CACHED_ENDPOINTS {
            let key = SharedString::from(template.to_owned());
            endpoints.map.insert(key, series.clone());
        }
        series
    }
}

/// One route template: its in-flight gauges and the handles of its series.
#[derive(Debug)]
pub(crate) struct EndpointSeries {
    /// The tag value: the template as [`endpoint_tag`](super::endpoint_tag) writes it, or its
    /// group's.
    endpoint: SharedString,
    pub(crate) rate_limit_header: Option<HeaderName>,
    outer_timeout: Option<OuterTimeout>,
    in_flight: [OnceLock<Gauge>; method::COUNT],
    series: RwLock<HashMap<SeriesKey, SeriesHandles, FastState>>,
}

/// The labels of one exchange besides its endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    method: u8,
    status: u16,
    outcome: Outcome,
    tier: UserTier,
}

/// The handles of one series of every metric recorded at the end of an exchange.
#[derive(Debug)]
struct SeriesHandles {
    count: Counter,
    error_rate: Counter,
    response_time: Histogram,
    /// Registered when a request with a body first ends: bodyless requests record no size.
    request_size: OnceLock<Histogram>,
    response_size: Histogram,
    /// Registered when a response first carries the header: a gauge registered but never set
    /// would otherwise be exported as 0 remaining.
    rate_limit: OnceLock<Gauge>,
}

impl EndpointSeries {
    fn new(
        endpoint: SharedString,
        rate_limit_header: Option<HeaderName>,
        outer_timeout: Option<OuterTimeout>,
    ) -> Self {
        Self {
            endpoint,
            rate_limit_header,
            outer_timeout,
            in_flight: Default::default(),
            series: RwLock::new(HashMap::with_hasher(FastState::default())),
        }
    }

    fn in_flight(&self, method: u8) -> &Gauge {
        self.in_flight[usize::from(method)].get_or_init(|| {
            metrics::gauge!(
                REQUESTS_IN_FLIGHT,
                METHOD => method::NAMES[usize::from(method)],
                ENDPOINT => self.endpoint.clone()
            )
        })
    }

    fn with_handles(&self, key: SeriesKey, f: impl FnOnce(&SeriesHandles, &SeriesKey)) {
        {
            let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(handles) = series.get(&key) {
                return f(handles, &key);
            }
        }
        let handles = self.register(&key);
        f(&handles, &key);
        let mut series = self.series.write().unwrap_or_else(PoisonError::into_inner);
        if series.len() < MAX_CACHED_SERIES_PER_ENDPOINT {
            series.entry(key).or_insert(handles);
        }
    }

    #[cold]
    fn register(&self, key: &SeriesKey) -> SeriesHandles {
        let labels = self.labels(key);
        let error = key.status >= 400 || matches!(key.outcome, Outcome::Error | Outcome::Panic);
        let mut with_error = labels.to_vec();
        with_error.push((
            ERROR,
            SharedString::const_str(if error { "true" } else { "false" }),
        ));
        SeriesHandles {
            count: metrics::counter!(REQUESTS_COUNT, &labels),
            error_rate: metrics::counter!(REQUESTS_ERROR_RATE, &with_error),
            response_time: metrics::histogram!(REQUESTS_RESPONSE_TIME, &labels),
            request_size: OnceLock::new(),
            response_size: metrics::histogram!(RESPONSES_SIZE, &labels),
            rate_limit: OnceLock::new(),
        }
    }

    fn labels(&self, key: &SeriesKey) -> [(&'static str, SharedString); 5] {
        [
            (
                METHOD,
                SharedString::const_str(method::NAMES[usize::from(key.method)]),
            ),
            (ENDPOINT, self.endpoint.clone()),
            (STATUS_CODE, SharedString::from(key.status.to_string())),
            (USER_TIER, key.tier.to_label()),
            (OUTCOME, SharedString::const_str(key.outcome.as_str())),
        ]
    }

    fn request_size<'a>(&self, handles: &'a SeriesHandles, key: &SeriesKey) -> &'a Histogram {
        handles.request_size.get_or_init(|| {
            let labels = self.labels(key);
            metrics::histogram!(REQUESTS_SIZE, &labels)
        })
    }

    fn rate_limit<'a>(&self, handles: &'a SeriesHandles, key: &SeriesKey) -> &'a Gauge {
        handles.rate_limit.get_or_init(|| {
            let labels = self.labels(key);
            metrics::gauge!(RATE_LIMIT_REMAINING, &labels[..4])
        })
    }
}

/// Records one exchange exactly once: through [`finish`](Self::finish) at the end of the body,
/// on an error or a panic, or on drop, as [`Outcome::Cancelled`].
#[derive(Debug)]
pub(crate) struct RecordGuard {
    state: Option<Exchange>,
}

#[derive(Debug)]
struct Exchange {
    start: Instant,
    endpoint: Arc<EndpointSeries>,
    method: u8,
    tier: Option<UserTier>,
    status: Option<u16>,
    /// `None` for a request without a body: no `api.requests.size` sample.
    request_bytes: Option<Arc<AtomicU64>>,
    response_bytes: u64,
    rate_limit: Option<f64>,
}

impl RecordGuard {
    /// A guard for a request of an ignored route: records nothing.
    pub(crate) fn ignored() -> Self {
        Self { state: None }
    }

    /// Starts an exchange: counts it in flight.
    pub(crate) fn start(
        start: Instant,
        endpoint: Arc<EndpointSeries>,
        method: u8,
        tier: Option<UserTier>,
        request_bytes: Option<Arc<AtomicU64>>,
    ) -> Self {
        endpoint.in_flight(method).increment(1.0);
        Self {
            state: Some(Exchange {
                start,
                endpoint,
                method,
                tier,
                status: None,
                request_bytes,
                response_bytes: 0,
                rate_limit: None,
            }),
        }
    }

    /// Notes what the response head tells: status, rate-limit header, tier. Returns whether
    /// the server will send no body at all (HEAD, 1xx, 204, 304): hyper drops such a body
    /// without polling it, so the exchange ends here.
    pub(crate) fn head(&mut self, parts: &http::response::Parts) -> bool {
        let Some(state) = &mut self.state else {
            return false;
        };
        state.status = Some(parts.status.as_u16());
        if let Some(header) = &state.endpoint.rate_limit_header {
            state.rate_limit = parts
                .headers
                .get(header)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite());
        }
        if let Some(tier) = parts.extensions.get::<UserTier>() {
            state.tier = Some(tier.clone());
        }
        let status = parts.status;
        state.method == method::HEAD
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
    }

    /// Counts response body bytes; returns the running total.
    pub(crate) fn add_response_bytes(&mut self, n: usize) -> u64 {
        match &mut self.state {
            Some(state) => {
                state.response_bytes += n as u64;
                state.response_bytes
            }
            None => 0,
        }
    }

    /// Records the exchange, once; later calls (and the drop) do nothing.
    pub(crate) fn finish(&mut self, outcome: Outcome) {
        let Some(state) = self.state.take() else {
            return;
        };
        let elapsed = state.start.elapsed();
        let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
        let (status, outcome) = match (state.status, outcome) {
            (Some(status), outcome) => (status, outcome),
            (None, Outcome::Cancelled) => match state.endpoint.outer_timeout {
                // The outer timeout layer answered, and the client got its response.
                Some(timeout) if elapsed + TIMER_SLACK >= timeout.after => {
                    (timeout.status, Outcome::Completed)
                }
                _ => (STATUS_CLIENT_CLOSED, Outcome::Cancelled),
            },
            (None, outcome) => (STATUS_INNER_ERROR, outcome),
        };
        let request_bytes = state.request_bytes.as_ref().map(|n| n.load(Relaxed));
        let key = SeriesKey {
            method: state.method,
            status,
            outcome,
            tier: state.tier.unwrap_or(UserTier::UNKNOWN),
        };
        let endpoint = &state.endpoint;
        endpoint.with_handles(key, |handles, key| {
            handles.count.increment(1);
            handles.error_rate.increment(1);
            handles.response_time.record(elapsed_ms);
            if let Some(bytes) = request_bytes {
                endpoint.request_size(handles, key).record(bytes as f64);
            }
            handles.response_size.record(state.response_bytes as f64);
            if let Some(remaining) = state.rate_limit {
                endpoint.rate_limit(handles, key).set(remaining);
            }
        });
        endpoint.in_flight(state.method).decrement(1.0);
    }
}

impl Drop for RecordGuard {
    fn drop(&mut self) {
        // Dropped while unwinding: the inner service's `call` panicked.
        let outcome = if std::thread::panicking() {
            Outcome::Panic
        } else {
            Outcome::Cancelled
        };
        self.finish(outcome);
    }
}

/// A hasher for route templates and [`SeriesKey`]s, hashed on every request: FxHash's
/// multiply-rotate, seeded per table so that values a client might influence (a classifier's
/// output, a tier) cannot be tuned to collide.
#[derive(Debug, Clone)]
struct FastState(u64);

impl Default for FastState {
    fn default() -> Self {
        Self(RandomState::new().hash_one(0u8) | 1)
    }
}

impl BuildHasher for FastState {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.0)
    }
}

#[derive(Debug)]
struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(tail));
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tier: &'static str, status: u16) -> SeriesKey {
        SeriesKey {
            method: 0,
            status,
            outcome: Outcome::Completed,
            tier: UserTier::new(tier),
        }
    }

    #[test]
    fn fast_hasher_separates_keys_and_agrees_with_itself() {
        let state = FastState::default();
        let a = state.hash_one(key("premium", 200));
        assert_eq!(a, state.hash_one(key("premium", 200)));
        assert_ne!(a, state.hash_one(key("premium", 201)));
        assert_ne!(a, state.hash_one(key("premiun", 200)));
        assert_eq!(
            state.hash_one(UserTier::from(String::from("gold"))),
            state.hash_one(UserTier::new("gold"))
        );
    }

    #[test]
    fn a_guard_records_once_and_returns_the_in_flight_gauge_to_zero() {
        let recorded = paymetrics::testing::capture(|| {
            let cache = Cache::default();
            let series = cache
                .endpoint("/x", &Config::default())
                .expect("not ignored");
            let mut guard = RecordGuard::start(Instant::now(), Arc::clone(&series), 0, None, None);
            assert!(!guard.head(&http::Response::new(()).into_parts().0));
            guard.finish(Outcome::Completed);
            guard.finish(Outcome::Error);
            drop(guard);
            drop(RecordGuard::start(Instant::now(), series, 0, None, None));
        });
        let tags = |status, outcome| {
            [
                (METHOD, "GET"),
                (ENDPOINT, "/x"),
                (STATUS_CODE, status),
                (USER_TIER, "unknown"),
                (OUTCOME, outcome),
            ]
        };
        assert_eq!(
            recorded.counter(REQUESTS_COUNT, &tags("200", "completed")),
            Some(1)
        );
        assert_eq!(
            recorded.counter(REQUESTS_COUNT, &tags("499", "cancelled")),
            Some(1)
        );
        assert_eq!(
            recorded.counter(REQUESTS_COUNT, &tags("200", "error")),
            None
        );
        let in_flight = [(METHOD, "GET"), (ENDPOINT, "/x")];
        assert_eq!(recorded.gauge(REQUESTS_IN_FLIGHT, &in_flight), Some(0.0));
    }
}
