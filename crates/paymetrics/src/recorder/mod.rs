//! The recorder: one registry, one atomic cell per series, a cardinality guard and idle expiry.
//!
//! This is where the hot path ends. A lookup first tries the calling thread's front cache
//! (`front.rs`: a slot in a shard no other thread writes), then the
//! [`metrics_util::registry::Registry`] (one hash probe under a shard read lock), and hands out
//! an `Arc` to the series' cell; recording touches only that cell's atomics. Everything else
//! (snapshots, formatting, I/O) happens on the flusher thread, which calls [`Inner::collect`].
//! Wire formats and sockets live in the exporters and are unknown here.

mod counter;
mod front;
mod gauge;
pub(crate) mod histogram;
mod shards;

use std::{
    cell::RefCell,
    collections::{HashMap, HashSet},
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
use front::FrontCache;
pub(crate) use gauge::GaugeCell;
pub(crate) use histogram::HistogramCell;
use shards::SeededFastHash;
pub(crate) use shards::{FastHasher, thread_index};

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
    // A cell built by `Inner::create_*` (with its attached-recorder handles), and its metric's
    // state when admission looked it up, waiting for the registry to ask the storage for it.
    // The registry calls the storage synchronously, on this thread, at most once per
    // `get_or_create_*`, so the slot never leaks across calls.
    static PENDING: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

struct Pending {
    cell: PendingCell,
    name: Option<Arc<NameState>>,
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
    names: RwLock<HashMap<SharedString, Arc<NameState>, SeededFastHash>>,
    /// Live series across all names, overflow series excluded.
    live: AtomicUsize,
    strings: Interner,
}

/// Label keys and values (and names) shared between the series that use them: a currency or
/// status value repeated across thousands of series is stored once. Strings no series uses any
/// more are swept at expiry.
#[derive(Debug, Default)]
struct Interner {
    strings: std::sync::Mutex<Strings>,
}

/// How many strings that kept their address [`Strings::kept`] remembers.
const MAX_KEPT: usize = 4096;

#[derive(Debug, Default)]
struct Strings {
    /// Owned strings (values formatted per call), one shared copy each.
    shared: HashSet<Arc<str>, SeededFastHash>,
    /// Strings whose clone kept their address (static strings, mostly: metric names and tag
    /// keys), by address and length, each with that clone. Holding the clone keeps the address
    /// valid, so a string found at that address is this very string: no clone is needed to tell
    /// it is not owned. Bounded by [`MAX_KEPT`]; past it, such strings are cloned to check.
    kept: HashMap<(usize, usize), SharedString, SeededFastHash>,
}

impl Strings {
    /// The string to register for `text`: a clone of a static or shared one (same address),
    /// otherwise the interned copy. `clone` gives `text` as its key holds it (only called for a
    /// string met for the first time, and for owned ones).
    fn get(&mut self, text: &str, clone: impl FnOnce() -> SharedString) -> SharedString {
        let at = (text.as_ptr() as usize, text.len());
        if let Some(kept) = self.kept.get(&at) {
            return kept.clone();
        }
        if let Some(shared) = self.shared.get(text) {
            return SharedString::from(Arc::clone(shared));
        }
        let copy = clone();
        if std::ptr::eq(copy.as_ptr(), text.as_ptr()) {
            if self.kept.len() < MAX_KEPT {
                self.kept.insert(at, copy.clone());
            }
            return copy;
        }
        drop(copy);
        let shared: Arc<str> = Arc::from(text);
        self.shared.insert(Arc::clone(&shared));
        SharedString::from(shared)
    }
}

impl Interner {
    /// `key` with its owned strings interned and its label array retained (shared by clones).
    ///
    /// Static and already-shared strings are kept as they are: cloning them keeps their address,
    /// which lets a static macro key match its registered copy by address on the hot path.
    /// Owned strings (values formatted per call) are replaced by the interned copy. Nothing of
    /// `key` is copied that the interner already holds.
    fn key(&self, key: &Key) -> Key {
        let mut strings = self.strings.lock().unwrap_or_else(PoisonError::into_inner);
        let name = strings.get(key.name(), || key.name_shared().into_inner());
        let labels: Vec<Label> = key
            .labels()
            .map(|label| {
                let k = strings.get(label.key(), || label.clone().into_parts().0);
                let v = strings.get(label.value(), || label.clone().into_parts().1);
                Label::new(k, v)
            })
            .collect();
        drop(strings);
        Key::from_parts(name, labels).to_retained()
    }

    fn shrink(&self) {
        let mut strings = self.strings.lock().unwrap_or_else(PoisonError::into_inner);
        strings.shared.shrink_to_fit();
    }

    fn sweep(&self) {
        let mut strings = self.strings.lock().unwrap_or_else(PoisonError::into_inner);
        strings.shared.retain(|s| Arc::strong_count(s) > 1);
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

    /// Counts a new series; `name` is its metric's state if admission looked it up already.
    fn count_new(&self, key: &Key, name: Option<Arc<NameState>>) {
        if !is_overflow(key) {
            let name = name.unwrap_or_else(|| self.name_state(key.name()));
            name.live.fetch_add(1, Relaxed);
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

    fn take_pending(&self, key: &Key) -> Option<PendingCell> {
        let pending = PENDING.with(|p| p.borrow_mut().take());
        let (cell, name) = pending.map_or((None, None), |p| (Some(p.cell), p.name));
        self.count_new(key, name);
        cell
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
        match self.take_pending(&key.0) {
            Some(PendingCell::Counter(cell)) => cell,
            _ => Arc::new(CounterCell::new(Box::new([]))),
        }
    }

    fn gauge(&self, key: &SeriesKey) -> Self::Gauge {
        match self.take_pending(&key.0) {
            Some(PendingCell::Gauge(cell)) => cell,
            _ => Arc::new(GaugeCell::new(Arc::clone(&self.stats), Box::new([]))),
        }
    }

    fn histogram(&self, key: &SeriesKey) -> Self::Histogram {
        match self.take_pending(&key.0) {
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
    front: FrontCache,
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
            front: FrontCache::default(),
            stats,
            limits,
            attached,
        }
    }

    /// Returns the key to register `key` under: itself; its metric's overflow series once the
    /// metric has `max_series_per_metric` live series, or once all metrics together have
    /// `max_series`; the global overflow series when the global cap is reached and the metric
    /// has no series to fold into (a flood of names must not grow the per-name bookkeeping).
    /// With it, the metric's state when the key is admitted as itself (for the live count).
    fn admit(&self, key: &Key) -> (Key, Option<Arc<NameState>>) {
        let storage = self.registry.storage();
        if is_overflow(key) {
            return (storage.strings.key(key), None);
        }
        let overflow = |name: &str| {
            self.stats.overflow_registrations.fetch_add(1, Relaxed);
            let key = Key::from_parts(
                SharedString::from(name.to_owned()),
                vec![Label::from_static_parts(OVERFLOW_TAG_KEY, "true")],
            );
            (key, None)
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
            return (storage.strings.key(key), Some(state));
        }
        overflow(key.name())
    }

    #[cold]
    fn create_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        let (key, name) = self.admit(key);
        let series = SeriesKey::from_ref(&key);
        if name.is_none()
            && let Some(cell) = self.registry.get_counter(series)
        {
            return Counter::from_arc(cell); // the overflow series, already registered
        }
        let attached = self
            .attached
            .iter()
            .map(|r| r.register_counter(&key, metadata))
            .collect();
        let cell = PendingCell::Counter(Arc::new(CounterCell::new(attached)));
        PENDING.with(|p| *p.borrow_mut() = Some(Pending { cell, name }));
        let cell = self.registry.get_or_create_counter(series, Arc::clone);
        PENDING.with(|p| p.borrow_mut().take());
        Counter::from_arc(cell)
    }

    #[cold]
    fn create_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        let (key, name) = self.admit(key);
        let series = SeriesKey::from_ref(&key);
        if name.is_none()
            && let Some(cell) = self.registry.get_gauge(series)
        {
            return Gauge::from_arc(cell); // the overflow series, already registered
        }
        let attached = self
            .attached
            .iter()
            .map(|r| r.register_gauge(&key, metadata))
            .collect();
        let cell = PendingCell::Gauge(Arc::new(GaugeCell::new(Arc::clone(&self.stats), attached)));
        PENDING.with(|p| *p.borrow_mut() = Some(Pending { cell, name }));
        let cell = self.registry.get_or_create_gauge(series, Arc::clone);
        PENDING.with(|p| p.borrow_mut().take());
        Gauge::from_arc(cell)
    }

    #[cold]
    fn create_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        let (key, name) = self.admit(key);
        let series = SeriesKey::from_ref(&key);
        if name.is_none()
            && let Some(cell) = self.registry.get_histogram(series)
        {
            return Histogram::from_arc(cell); // the overflow series, already registered
        }
        let attached = self
            .attached
            .iter()
            .map(|r| r.register_histogram(&key, metadata))
            .collect();
        let cell = HistogramCell::new(Arc::clone(&self.stats), attached);
        let cell = PendingCell::Histogram(Arc::new(cell));
        PENDING.with(|p| *p.borrow_mut() = Some(Pending { cell, name }));
        let cell = self.registry.get_or_create_histogram(series, Arc::clone);
        PENDING.with(|p| p.borrow_mut().take());
        Histogram::from_arc(cell)
    }

    #[inline]
    pub(crate) fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        match self.front.get::<CounterCell>(key) {
            Some(local) => Counter::from_arc(local),
            None => self.lookup_counter(key, metadata),
        }
    }

    /// The registry, on a front-cache miss.
    fn lookup_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        match self.registry.get_counter(SeriesKey::from_ref(key)) {
            Some(cell) => match self.front.offer(key, cell) {
                Ok(local) => Counter::from_arc(local),
                Err(cell) => Counter::from_arc(cell),
            },
            None => self.create_counter(key, metadata),
        }
    }

    #[inline]
    pub(crate) fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        match self.front.get::<GaugeCell>(key) {
            Some(local) => Gauge::from_arc(local),
            None => self.lookup_gauge(key, metadata),
        }
    }

    /// The registry, on a front-cache miss.
    fn lookup_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        match self.registry.get_gauge(SeriesKey::from_ref(key)) {
            Some(cell) => match self.front.offer(key, cell) {
                Ok(local) => Gauge::from_arc(local),
                Err(cell) => Gauge::from_arc(cell),
            },
            None => self.create_gauge(key, metadata),
        }
    }

    #[inline]
    pub(crate) fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        match self.front.get::<HistogramCell>(key) {
            Some(local) => Histogram::from_arc(local),
            None => self.lookup_histogram(key, metadata),
        }
    }

    /// The registry, on a front-cache miss.
    fn lookup_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        match self.registry.get_histogram(SeriesKey::from_ref(key)) {
            Some(cell) => match self.front.offer(key, cell) {
                Ok(local) => Histogram::from_arc(local),
                Err(cell) => Histogram::from_arc(cell),
            },
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
        // Cached entries of series due to expire would otherwise count as holders.
        self.front.purge(limit);
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
    fn a_series_seen_again_is_served_from_the_front_cache() {
        let rec = inner(10, 3);
        static LABELS: [Label; 1] = [Label::from_static_parts("k", "v")];
        static KEY: Key = Key::from_static_parts("m", &LABELS);
        rec.register_counter(&KEY, &meta()).increment(1); // created
        assert_eq!(rec.front.len(), 0, "a first sighting caches nothing");
        rec.register_counter(&KEY, &meta()).increment(2); // registry hit: cached
        assert_eq!(rec.front.len(), 1);
        rec.register_counter(&KEY, &meta()).increment(3); // front cache hit
        // The same key as another type is another series, in its own slot.
        rec.register_gauge(&KEY, &meta()).set(4.0);
        rec.register_gauge(&KEY, &meta()).set(5.0);
        rec.register_gauge(&KEY, &meta()).increment(1.0);
        assert_eq!(rec.front.len(), 2);
        let s = rec.collect();
        assert_eq!(s.len(), 2);
        assert!(
            s.iter()
                .any(|s| s.value == SeriesValue::Counter(CounterValue { total: 6, delta: 6 }))
        );
        assert!(
            s.iter()
                .any(|s| matches!(&s.value, SeriesValue::Gauge(g) if g.value == 6.0))
        );
    }

    #[test]
    fn cached_series_still_expire_and_held_ones_stay() {
        let rec = inner(10, 1);
        let key = |name: &str| Key::from_parts(name.to_owned(), vec![Label::new("k", "v")]);
        for name in ["c", "held"] {
            for _ in 0..3 {
                rec.register_counter(&key(name), &meta()).increment(1);
            }
        }
        rec.register_histogram(&key("h"), &meta()).record(1.0);
        rec.register_histogram(&key("h"), &meta()).record(1.0);
        assert_eq!(rec.front.len(), 3);
        let held = rec.register_counter(&key("held"), &meta()); // from the front cache
        for _ in 0..3 {
            rec.collect();
            rec.expire_idle();
        }
        assert_eq!(rec.live_series(), 1, "only the held series is left");
        assert_eq!(rec.front.len(), 0);
        held.increment(5);
        let s = rec.collect();
        assert_eq!(
            s[0].value,
            SeriesValue::Counter(CounterValue { total: 8, delta: 5 })
        );
        // Expired keys register afresh, and are cached again once seen again.
        rec.register_counter(&key("c"), &meta()).increment(1);
        rec.register_counter(&key("c"), &meta()).increment(1);
        assert_eq!(rec.front.len(), 1);
        let s = rec.collect();
        let c = s.iter().find(|s| s.key.name() == "c").unwrap();
        assert_eq!(
            c.value,
            SeriesValue::Counter(CounterValue { total: 2, delta: 2 })
        );
    }

    #[test]
    fn threads_share_series_through_their_front_caches() {
        let rec = inner(10, 3);
        static LABELS: [Label; 2] = [
            Label::from_static_parts("a", "1"),
            Label::from_static_parts("b", "2"),
        ];
        static KEY: Key = Key::from_static_parts("shared", &LABELS);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        rec.register_counter(&KEY, &meta()).increment(1);
                    }
                });
            }
        });
        let s = rec.collect();
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[0].value,
            SeriesValue::Counter(CounterValue {
                total: 40_000,
                delta: 40_000
            })
        );
        assert_eq!(rec.live_series(), 1);
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
        assert_eq!(strings.strings.lock().unwrap().shared.len(), 4);
        for _ in 0..3 {
            rec.collect();
            rec.expire_idle();
        }
        assert_eq!(rec.live_series(), 0);
        assert!(
            strings.strings.lock().unwrap().shared.is_empty(),
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
