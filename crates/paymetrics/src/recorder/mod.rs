//! The recorder: one registry, one atomic cell per series, a cardinality guard and idle expiry.
//!
//! This is where the hot path ends. Registration looks a key up in a
//! [`metrics_util::registry::Registry`] (one hash probe under a shard read lock) and hands out
//! an `Arc` to the series' cell; recording touches only that cell's atomics. Everything else
//! (snapshots, formatting, I/O) happens on the flusher thread, which calls [`Inner::collect`].
//! Wire formats and sockets live in the exporters and are unknown here.

mod counter;
mod gauge;
pub(crate) mod histogram;

use std::{
    cell::RefCell,
    collections::HashMap,
    fmt,
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicU64, AtomicUsize, Ordering::*},
    },
};

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit,
};
use metrics_util::{
    Hashable, KeyHasher,
    registry::{Registry, Storage},
};

pub(crate) use counter::CounterCell;
pub(crate) use gauge::GaugeCell;
pub(crate) use histogram::HistogramCell;

use crate::snapshot::{CounterValue, GaugeValue, HistogramValue, Series, SeriesValue};

/// The tag key that marks a metric's overflow series (see [`PaymetricsBuilder::max_series_per_metric`]).
///
/// [`PaymetricsBuilder::max_series_per_metric`]: crate::PaymetricsBuilder::max_series_per_metric
pub const OVERFLOW_TAG_KEY: &str = "paymetrics.overflow";

/// The registry's key: a [`Key`] with a faster equality test.
///
/// Every `counter!`/`gauge!`/`histogram!` call looks its key up, and `Key`'s own `==` compares
/// labels regardless of order, sorting both label lists first when there are 3 to 7 of them: on
/// five labels that is most of the lookup. Here equality first tries what a lookup nearly always
/// meets: the same name and labels in the same order, where a static key (the macros' `static`
/// key) shares its very strings with its registered copy, so a pointer comparison settles it.
/// Only when that fails does it fall back to `Key`'s order-insensitive comparison, so the
/// relation is exactly `Key`'s; the hash is `Key`'s precomputed hash.
#[derive(Debug, Clone)]
#[repr(transparent)]
pub(crate) struct SeriesKey(Key);

impl SeriesKey {
    /// Views a `&Key` as a `&SeriesKey`, for lookups that must not copy the key.
    #[inline]
    fn from_ref(key: &Key) -> &SeriesKey {
        // SAFETY: `SeriesKey` is `#[repr(transparent)]` over `Key`: same size, alignment and
        // layout, so the pointer cast yields a valid reference, with the input's lifetime.
        unsafe { &*(key as *const Key).cast::<SeriesKey>() }
    }
}

/// Equal text, by address and length first (strings shared with a static key) then by bytes.
#[inline]
fn same_str(a: &str, b: &str) -> bool {
    a.len() == b.len() && (std::ptr::eq(a.as_ptr(), b.as_ptr()) || a == b)
}

/// Same name and same labels in the same order.
#[inline]
fn same_in_order(a: &Key, b: &Key) -> bool {
    let (la, lb) = (a.labels().as_slice(), b.labels().as_slice());
    same_str(a.name(), b.name())
        && la.len() == lb.len()
        && (std::ptr::eq(la, lb)
            || la
                .iter()
                .zip(lb)
                .all(|(x, y)| same_str(x.key(), y.key()) && same_str(x.value(), y.value())))
}

impl PartialEq for SeriesKey {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.0, &other.0);
        a.get_hash() == b.get_hash() && (same_in_order(a, b) || a == b)
    }
}

impl Eq for SeriesKey {}

impl std::hash::Hash for SeriesKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Hashable for SeriesKey {
    type Hasher = KeyHasher;

    #[inline]
    fn hashable(&self) -> u64 {
        self.0.get_hash()
    }
}

/// Counters the recorder keeps about itself; read by exporters' telemetry.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Gauge or histogram values that were NaN or infinite, dropped at record time.
    pub(crate) non_finite_dropped: AtomicU64,
    /// Registrations folded into an overflow series by the cardinality guard.
    pub(crate) overflow_registrations: AtomicU64,
    /// Series removed from the registry after staying idle.
    pub(crate) series_expired: AtomicU64,
    /// Events, service checks and timestamped points dropped because the queue was full.
    pub(crate) messages_dropped: AtomicU64,
    /// Events, service checks and timestamped points with a timestamp above `i64::MAX`.
    pub(crate) invalid_dropped: AtomicU64,
}

/// Per-name bookkeeping for the cardinality guard.
#[derive(Debug, Default)]
struct NameState {
    live: AtomicUsize,
}

thread_local! {
    // A cell built by `Inner::create_*` (with its attached-recorder handles) waiting for the
    // registry to ask the storage for it. The registry calls the storage synchronously, on this
    // thread, at most once per `get_or_create_*`, so the slot never leaks across calls.
    static PENDING: RefCell<Option<PendingCell>> = const { RefCell::new(None) };
}

enum PendingCell {
    Counter(Arc<CounterCell>),
    Gauge(Arc<GaugeCell>),
    Histogram(Arc<HistogramCell>),
}

/// Registry storage: hands out the pending cell and counts live series per name and in all.
#[derive(Debug)]
pub(crate) struct CellStorage {
    stats: Arc<Stats>,
    names: RwLock<HashMap<SharedString, Arc<NameState>>>,
    /// Live series across all names, overflow series excluded.
    live: AtomicUsize,
    strings: Interner,
}

/// Label keys and values (and names) shared between the series that use them: a currency or
/// status value repeated across thousands of series is stored once. Strings no series uses any
/// more are swept at expiry.
#[derive(Debug, Default)]
struct Interner {
    strings: std::sync::Mutex<std::collections::HashSet<Arc<str>>>,
}

impl Interner {
    /// `key` with its owned strings interned and its label array retained (shared by clones).
    ///
    /// Static and already-shared strings are kept as they are: cloning them keeps their address,
    /// which lets a static macro key match its registered copy by address on the hot path.
    /// Owned strings (values formatted per call) are replaced by the interned copy.
    fn key(&self, key: &Key) -> Key {
        let (name, labels) = key.clone().into_parts();
        let mut strings = self.strings.lock().unwrap_or_else(PoisonError::into_inner);
        let mut keep_or_intern = |s: SharedString, original: &str| -> SharedString {
            if std::ptr::eq(s.as_ptr(), original.as_ptr()) {
                return s;
            }
            if let Some(shared) = strings.get(&*s) {
                return SharedString::from(Arc::clone(shared));
            }
            let shared: Arc<str> = Arc::from(&*s);
            strings.insert(Arc::clone(&shared));
            SharedString::from(shared)
        };
        let name = keep_or_intern(name.into_inner(), key.name());
        let labels: Vec<Label> = labels
            .into_iter()
            .zip(key.labels())
            .map(|(label, original)| {
                let (k, v) = label.into_parts();
                Label::new(
                    keep_or_intern(k, original.key()),
                    keep_or_intern(v, original.value()),
                )
            })
            .collect();
        Key::from_parts(name, labels).to_retained()
    }

    fn shrink(&self) {
        self.strings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .shrink_to_fit();
    }

    fn sweep(&self) {
        let mut strings = self.strings.lock().unwrap_or_else(PoisonError::into_inner);
        strings.retain(|s| Arc::strong_count(s) > 1);
    }
}

impl CellStorage {
    fn name_state(&self, name: &str) -> Arc<NameState> {
        if let Some(state) = self
            .names
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return Arc::clone(state);
        }
        let mut names = self.names.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            names
                .entry(SharedString::from(name.to_owned()))
                .or_default(),
        )
    }

    /// The name's state if it has one, without creating it.
    fn existing_name_state(&self, name: &str) -> Option<Arc<NameState>> {
        self.names
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    fn count_new(&self, key: &Key) {
        if !is_overflow(key) {
            self.name_state(key.name()).live.fetch_add(1, Relaxed);
            self.live.fetch_add(1, Relaxed);
        }
    }

    fn count_removed(&self, key: &Key) {
        if is_overflow(key) {
            return;
        }
        self.live.fetch_sub(1, Relaxed);
        if self.name_state(key.name()).live.fetch_sub(1, Relaxed) == 1 {
            // The metric's last series: forget the name, so dynamic names cannot grow the map.
            let mut names = self.names.write().unwrap_or_else(PoisonError::into_inner);
            if names
                .get(key.name())
                .is_some_and(|s| s.live.load(Relaxed) == 0)
            {
                names.remove(key.name());
            }
        }
    }

    fn take_pending(&self) -> Option<PendingCell> {
        PENDING.with(|p| p.borrow_mut().take())
    }
}

fn is_overflow(key: &Key) -> bool {
    key.labels().any(|l| l.key() == OVERFLOW_TAG_KEY)
}

impl Storage<SeriesKey> for CellStorage {
    type Counter = Arc<CounterCell>;
    type Gauge = Arc<GaugeCell>;
    type Histogram = Arc<HistogramCell>;

    fn counter(&self, key: &SeriesKey) -> Self::Counter {
        self.count_new(&key.0);
        match self.take_pending() {
            Some(PendingCell::Counter(cell)) => cell,
            _ => Arc::new(CounterCell::new(Box::new([]))),
        }
    }

    fn gauge(&self, key: &SeriesKey) -> Self::Gauge {
        self.count_new(&key.0);
        match self.take_pending() {
            Some(PendingCell::Gauge(cell)) => cell,
            _ => Arc::new(GaugeCell::new(Arc::clone(&self.stats), Box::new([]))),
        }
    }

    fn histogram(&self, key: &SeriesKey) -> Self::Histogram {
        self.count_new(&key.0);
        match self.take_pending() {
            Some(PendingCell::Histogram(cell)) => cell,
            _ => Arc::new(HistogramCell::new(Arc::clone(&self.stats), Box::new([]))),
        }
    }
}

/// The metric name of the series that take what the global cap folds away from metrics that
/// have no series yet (one per type, tagged `paymetrics.overflow:true`).
pub const OVERFLOW_METRIC_NAME: &str = "paymetrics.overflow";

/// Expiring at least this many series in one flush gives freed memory back to the operating
/// system (glibc keeps it otherwise: after a flood of names expires, RSS would stay high).
const TRIM_AFTER_EXPIRED: u64 = 10_000;

/// Limits the recorder enforces.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) max_series: usize,
    pub(crate) max_series_per_metric: usize,
    pub(crate) idle_flushes_before_expiry: u32,
}

/// A recorder attached beside paymetrics' own storage.
pub(crate) type Attached = Arc<dyn Recorder + Send + Sync>;

/// State shared by the recorder handles and the flusher.
pub(crate) struct Inner {
    registry: Registry<SeriesKey, CellStorage>,
    pub(crate) stats: Arc<Stats>,
    limits: Limits,
    attached: Vec<Attached>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("limits", &self.limits)
            .field("stats", &self.stats)
            .field("attached_recorders", &self.attached.len())
            .finish_non_exhaustive()
    }
}

impl Inner {
    pub(crate) fn new(limits: Limits, attached: Vec<Attached>) -> Self {
        let stats = Arc::new(Stats::default());
        let storage = CellStorage {
            stats: Arc::clone(&stats),
            names: RwLock::default(),
            live: AtomicUsize::new(0),
            strings: Interner::default(),
        };
        Self {
            registry: Registry::new(storage),
            stats,
            limits,
            attached,
        }
    }

    /// Returns the key to register `key` under: itself; its metric's overflow series once the
    /// metric has `max_series_per_metric` live series, or once all metrics together have
    /// `max_series`; the global overflow series when the global cap is reached and the metric
    /// has no series to fold into (a flood of names must not grow the per-name bookkeeping).
    fn admit(&self, key: &Key) -> Key {
        let storage = self.registry.storage();
        if is_overflow(key) {
            return storage.strings.key(key);
        }
        let overflow = |name: &str| {
            self.stats.overflow_registrations.fetch_add(1, Relaxed);
            Key::from_parts(
                SharedString::from(name.to_owned()),
                vec![Label::from_static_parts(OVERFLOW_TAG_KEY, "true")],
            )
        };
        if storage.live.load(Relaxed) >= self.limits.max_series {
            return match storage.existing_name_state(key.name()) {
                Some(state) if state.live.load(Relaxed) > 0 => overflow(key.name()),
                _ => overflow(OVERFLOW_METRIC_NAME),
            };
        }
        let state = storage.name_state(key.name());
        if state.live.load(Relaxed) < self.limits.max_series_per_metric {
            // Interned strings, and a retained label array: later clones (snapshots) share the
            // labels instead of copying them, and series share repeated values.
            return storage.strings.key(key);
        }
        overflow(key.name())
    }

    #[cold]
    fn create_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        let key = self.admit(key);
        let series = SeriesKey::from_ref(&key);
        if let Some(cell) = self.registry.get_counter(series) {
            return Counter::from_arc(cell); // the overflow series, already registered
        }
        let attached = self
            .attached
            .iter()
            .map(|r| r.register_counter(&key, metadata))
            .collect();
        PENDING.with(|p| {
            *p.borrow_mut() = Some(PendingCell::Counter(Arc::new(CounterCell::new(attached))))
        });
        let cell = self.registry.get_or_create_counter(series, Arc::clone);
        PENDING.with(|p| p.borrow_mut().take());
        Counter::from_arc(cell)
    }

    #[cold]
    fn create_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        let key = self.admit(key);
        let series = SeriesKey::from_ref(&key);
        if let Some(cell) = self.registry.get_gauge(series) {
            return Gauge::from_arc(cell); // the overflow series, already registered
        }
        let attached = self
            .attached
            .iter()
            .map(|r| r.register_gauge(&key, metadata))
            .collect();
        let cell = GaugeCell::new(Arc::clone(&self.stats), attached);
        PENDING.with(|p| *p.borrow_mut() = Some(PendingCell::Gauge(Arc::new(cell))));
        let cell = self.registry.get_or_create_gauge(series, Arc::clone);
        PENDING.with(|p| p.borrow_mut().take());
        Gauge::from_arc(cell)
    }

    #[cold]
    fn create_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        let key = self.admit(key);
        let series = SeriesKey::from_ref(&key);
        if let Some(cell) = self.registry.get_histogram(series) {
            return Histogram::from_arc(cell); // the overflow series, already registered
        }
        let attached = self
            .attached
            .iter()
            .map(|r| r.register_histogram(&key, metadata))
            .collect();
        let cell = HistogramCell::new(Arc::clone(&self.stats), attached);
        PENDING.with(|p| *p.borrow_mut() = Some(PendingCell::Histogram(Arc::new(cell))));
        let cell = self.registry.get_or_create_histogram(series, Arc::clone);
        PENDING.with(|p| p.borrow_mut().take());
        Histogram::from_arc(cell)
    }

    pub(crate) fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        match self.registry.get_counter(SeriesKey::from_ref(key)) {
            Some(cell) => Counter::from_arc(cell),
            None => self.create_counter(key, metadata),
        }
    }

    pub(crate) fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        match self.registry.get_gauge(SeriesKey::from_ref(key)) {
            Some(cell) => Gauge::from_arc(cell),
            None => self.create_gauge(key, metadata),
        }
    }

    pub(crate) fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        match self.registry.get_histogram(SeriesKey::from_ref(key)) {
            Some(cell) => Histogram::from_arc(cell),
            None => self.create_histogram(key, metadata),
        }
    }

    fn describe(&self, describe: impl Fn(&dyn Recorder)) {
        for r in &self.attached {
            describe(r.as_ref());
        }
    }

    /// Reads every series once: counter deltas, gauge values, drained histograms. Flusher only.
    pub(crate) fn collect(&self) -> Vec<Series> {
        // Sized up front: the latest snapshot is kept, and a doubling Vec would keep up to
        // twice the room it needs per live series.
        let mut series = Vec::with_capacity(self.live_series() + 16);
        let idle = |cell_idle: &std::sync::atomic::AtomicU32, updated: bool| {
            if updated {
                cell_idle.store(0, Relaxed);
                0
            } else {
                // Flusher-only, so a load and a store suffice; saturating keeps a never-updated
                // gauge (u32::MAX) never-updated.
                let idle = cell_idle.load(Relaxed).saturating_add(1);
                cell_idle.store(idle, Relaxed);
                idle
            }
        };
        let active = |idle_flushes: u32| idle_flushes < self.limits.idle_flushes_before_expiry;
        self.registry.visit_counters(|key, cell| {
            let (total, delta) = cell.take_delta();
            idle(&cell.idle_flushes, delta > 0);
            series.push(Series {
                key: key.0.clone(),
                value: SeriesValue::Counter(CounterValue { total, delta }),
            });
        });
        self.registry.visit_gauges(|key, cell| {
            let (value, updated) = cell.take();
            let idle_flushes = idle(&cell.idle_flushes, updated);
            series.push(Series {
                key: key.0.clone(),
                value: SeriesValue::Gauge(GaugeValue {
                    value,
                    updated,
                    active: active(idle_flushes),
                }),
            });
        });
        self.registry.visit_histograms(|key, cell| {
            let drained = cell.drain();
            idle(&cell.idle_flushes, drained.count > 0);
            series.push(Series {
                key: key.0.clone(),
                value: SeriesValue::Histogram(Box::new(HistogramValue::from_drained(drained))),
            });
        });
        series
    }

    /// Drops series idle for the configured number of flushes that no handle outside the
    /// registry still holds. Flusher only.
    ///
    /// `retain_*` holds the shard's write lock while it decides, so no registration can clone a
    /// handle between the reference-count check and the removal: a removed cell has no other
    /// owner. An update that landed after the flush read the cell (while the exporters ran)
    /// keeps it until the next flush has sent it. A handle held elsewhere keeps its series
    /// registered (it stops being exported while idle) and resumes on its next update.
    pub(crate) fn expire_idle(&self) {
        let limit = self.limits.idle_flushes_before_expiry;
        let storage = self.registry.storage();
        let stats = &self.stats;
        let expired_before = stats.series_expired.load(Relaxed);
        let keep = |key: &SeriesKey, idle: u32, holders: usize, unflushed: bool| {
            let expired = idle >= limit && holders == 1 && !unflushed;
            if expired {
                storage.count_removed(&key.0);
                stats.series_expired.fetch_add(1, Relaxed);
            }
            !expired
        };
        self.registry.retain_counters(|k, c| {
            keep(
                k,
                c.idle_flushes.load(Relaxed),
                Arc::strong_count(c),
                c.has_unflushed(),
            )
        });
        self.registry.retain_gauges(|k, g| {
            keep(
                k,
                g.idle_flushes.load(Relaxed),
                Arc::strong_count(g),
                g.has_unflushed(),
            )
        });
        self.registry.retain_histograms(|k, h| {
            keep(
                k,
                h.idle_flushes.load(Relaxed),
                Arc::strong_count(h),
                h.has_unflushed(),
            )
        });
        storage.strings.sweep();
        let expired = stats.series_expired.load(Relaxed) - expired_before;
        if expired >= TRIM_AFTER_EXPIRED {
            // Tables keep their capacity after removals: shrink ours before handing pages back.
            storage
                .names
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .shrink_to_fit();
            storage.strings.shrink();
            trim_heap();
        }
    }

    /// Live series across all metrics and types, overflow series excluded.
    pub(crate) fn live_series(&self) -> usize {
        self.registry.storage().live.load(Relaxed)
    }
}

/// Gives the heap's free pages back to the operating system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: `malloc_trim` only releases free memory at the top of glibc's heaps and in its
    // arenas; it touches no memory that is in use and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

/// paymetrics' implementation of [`metrics::Recorder`].
///
/// Install it with [`PaymetricsBuilder::install`](crate::PaymetricsBuilder::install), or get one
/// from [`PaymetricsBuilder::build`](crate::PaymetricsBuilder::build) to use with
/// [`metrics::with_local_recorder`]. Cloning is cheap and shares the same storage.
#[derive(Clone, Debug)]
pub struct PaymetricsRecorder {
    pub(crate) inner: Arc<Inner>,
}

impl Recorder for PaymetricsRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner
            .describe(|r| r.describe_counter(key.clone(), unit, description.clone()));
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner
            .describe(|r| r.describe_gauge(key.clone(), unit, description.clone()));
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner
            .describe(|r| r.describe_histogram(key.clone(), unit, description.clone()));
    }

    #[inline]
    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.inner.register_counter(key, metadata)
    }

    #[inline]
    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.inner.register_gauge(key, metadata)
    }

    #[inline]
    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.inner.register_histogram(key, metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inner(max: usize, idle: u32) -> Inner {
        Inner::new(
            Limits {
                max_series: usize::MAX,
                max_series_per_metric: max,
                idle_flushes_before_expiry: idle,
            },
            vec![],
        )
    }

    fn meta() -> Metadata<'static> {
        Metadata::new("test", metrics::Level::INFO, None)
    }

    #[test]
    fn one_registration_per_series() {
        let rec = inner(10, 3);
        let key = Key::from_parts("a", vec![Label::new("k", "v".to_string())]);
        rec.register_counter(&key, &meta()).increment(1);
        rec.register_counter(&key, &meta()).increment(2);
        let s = rec.collect();
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[0].value,
            SeriesValue::Counter(CounterValue { total: 3, delta: 3 })
        );
        assert_eq!(rec.live_series(), 1);
    }

    #[test]
    fn series_key_equality_is_keys_equality() {
        static LABELS: [Label; 3] = [
            Label::from_static_parts("a", "1"),
            Label::from_static_parts("b", "2"),
            Label::from_static_parts("c", "3"),
        ];
        static STATIC: Key = Key::from_static_parts("m", &LABELS);
        let owned = |labels: &[(&str, &str)]| {
            let labels: Vec<Label> = labels
                .iter()
                .map(|(k, v)| Label::new(k.to_string(), v.to_string()))
                .collect();
            Key::from_parts("m".to_string(), labels)
        };
        let same = owned(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let shuffled = owned(&[("c", "3"), ("a", "1"), ("b", "2")]);
        let other_value = owned(&[("a", "1"), ("b", "2"), ("c", "4")]);
        let other_key = owned(&[("a", "1"), ("b", "2"), ("d", "3")]);
        let fewer = owned(&[("a", "1"), ("b", "2")]);
        let retained = STATIC.to_retained();
        let keys = [
            &STATIC,
            &retained,
            &same,
            &shuffled,
            &other_value,
            &other_key,
            &fewer,
        ];
        for a in keys {
            for b in keys {
                let fast = SeriesKey::from_ref(a) == SeriesKey::from_ref(b);
                assert_eq!(fast, a == b, "{a:?} vs {b:?}");
                if fast {
                    assert_eq!(
                        SeriesKey::from_ref(a).hashable(),
                        SeriesKey::from_ref(b).hashable()
                    );
                }
            }
        }
        // Label order does not make another series, whichever order registers first.
        let rec = inner(10, 3);
        rec.register_counter(&shuffled, &meta()).increment(1);
        rec.register_counter(&STATIC, &meta()).increment(2);
        rec.register_counter(&same, &meta()).increment(3);
        let s = rec.collect();
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[0].value,
            SeriesValue::Counter(CounterValue { total: 6, delta: 6 })
        );
    }

    #[test]
    fn overflow_folds_new_series_and_counts_them() {
        let rec = inner(2, 3);
        for i in 0..5 {
            let key = Key::from_parts("a", vec![Label::new("id", i.to_string())]);
            rec.register_counter(&key, &meta()).increment(1);
        }
        assert_eq!(rec.live_series(), 2);
        assert_eq!(rec.stats.overflow_registrations.load(Relaxed), 3);
        let s = rec.collect();
        let overflow = s.iter().find(|s| is_overflow(&s.key)).unwrap();
        assert_eq!(
            overflow.value,
            SeriesValue::Counter(CounterValue { total: 3, delta: 3 })
        );
        // Another metric name has its own budget.
        rec.register_gauge(&Key::from_name("b"), &meta()).set(1.0);
        assert_eq!(rec.live_series(), 3);
    }

    #[test]
    fn an_update_between_collect_and_expiry_keeps_the_series() {
        let rec = inner(10, 1);
        rec.register_counter(&Key::from_name("c"), &meta())
            .increment(1);
        rec.register_histogram(&Key::from_name("h"), &meta())
            .record(1.0);
        rec.register_gauge(&Key::from_name("g"), &meta()).set(1.0);
        rec.collect();
        rec.collect(); // idle for one flush: due to expire
        // Updates land while the exporters run, after collect() read the cells.
        rec.register_counter(&Key::from_name("c"), &meta())
            .increment(5);
        rec.register_histogram(&Key::from_name("h"), &meta())
            .record(2.0);
        rec.register_gauge(&Key::from_name("g"), &meta()).set(3.0);
        rec.expire_idle();
        assert_eq!(rec.live_series(), 3, "nothing unflushed may be dropped");
        let s = rec.collect();
        let c = s.iter().find(|s| s.key.name() == "c").unwrap();
        assert_eq!(
            c.value,
            SeriesValue::Counter(CounterValue { total: 6, delta: 5 })
        );
        rec.collect();
        rec.expire_idle();
        assert_eq!(rec.live_series(), 0);
    }

    #[test]
    fn series_share_interned_strings_until_they_expire() {
        let rec = inner(10, 1);
        for i in 0..3 {
            let key = Key::from_parts(
                "p",
                vec![
                    Label::new("currency", "EUR".to_string()),
                    Label::new("i", i.to_string()),
                ],
            );
            rec.register_counter(&key, &meta()).increment(1);
        }
        let strings = &rec.registry.storage().strings;
        // The owned values "EUR", "0", "1", "2", one copy each; static strings stay static.
        assert_eq!(strings.strings.lock().unwrap().len(), 4);
        for _ in 0..3 {
            rec.collect();
            rec.expire_idle();
        }
        assert_eq!(rec.live_series(), 0);
        assert!(
            strings.strings.lock().unwrap().is_empty(),
            "swept with their series"
        );
    }

    #[test]
    fn names_are_forgotten_with_their_last_series() {
        let rec = inner(10, 1);
        for i in 0..100 {
            rec.register_counter(&Key::from_name(format!("dynamic.{i}")), &meta())
                .increment(1);
        }
        assert_eq!(rec.registry.storage().names.read().unwrap().len(), 100);
        for _ in 0..3 {
            rec.collect();
            rec.expire_idle();
        }
        assert!(rec.registry.storage().names.read().unwrap().is_empty());
        // A name seen again starts counting afresh.
        rec.register_counter(&Key::from_name("dynamic.7"), &meta())
            .increment(1);
        assert_eq!(rec.live_series(), 1);
    }

    #[test]
    fn idle_series_expire_unless_a_handle_is_held() {
        let rec = inner(10, 2);
        let held = rec.register_counter(&Key::from_name("held"), &meta());
        rec.register_counter(&Key::from_name("dropped"), &meta())
            .increment(1);
        rec.register_histogram(&Key::from_name("h"), &meta())
            .record(1.0);
        for _ in 0..3 {
            rec.collect();
            rec.expire_idle();
        }
        assert_eq!(rec.live_series(), 1);
        assert_eq!(rec.stats.series_expired.load(Relaxed), 2);
        held.increment(5);
        let s = rec.collect();
        assert_eq!(
            s[0].value,
            SeriesValue::Counter(CounterValue { total: 5, delta: 5 })
        );
        // A new registration of an expired key starts afresh.
        rec.register_counter(&Key::from_name("dropped"), &meta())
            .increment(2);
        let s = rec.collect();
        let dropped = s.iter().find(|s| s.key.name() == "dropped").unwrap();
        assert_eq!(
            dropped.value,
            SeriesValue::Counter(CounterValue { total: 2, delta: 2 })
        );
    }
}
