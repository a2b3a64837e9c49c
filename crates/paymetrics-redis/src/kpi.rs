//! The cache hit-rate KPI, [`KPI_CACHE_HIT_RATE`]: the share of reads that hit over a sliding
//! window (10 minutes by default), per `cache_type`: the ratio the original strategy's `cache_hit_rate_low`
//! alert (below 80 % over 10 minutes, warning) watches, published as a gauge for dashboards, for
//! monitors that want a plain metric, and for in-process checks.
//!
//! It is computed from paymetrics snapshots, not from a second recording: the counter
//! [`OPERATIONS_HIT_MISS`] carries each flush's hits and misses as deltas, and
//! [`CacheHitRate`] keeps a ring of them, one entry per flush, and drops those older than its
//! window. Two ways to run it:
//!
//! * [`HitRateExporter`]: an exporter paymetrics' flusher hands every snapshot to. After each
//!   flush it sets the gauge through the `metrics` facade and updates its [`HitRateReader`].
//! * [`CacheHitRate::push`] / [`CacheHitRate::from_snapshots`]: the same computation over
//!   snapshots you hold (for example a `MemoryReader`'s), for tests and in-process checks.
//!
//! Why an exporter rather than a query of the recorder: paymetrics has no windows of its own
//! yet, and an exporter sees every snapshot exactly once, so no interval is missed or counted
//! twice. When the recorder grows windows, the KPI becomes a query over them and this module
//! shrinks to the gauge.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use paymetrics::{
    export::Exporter,
    snapshot::{SeriesValue, Snapshot},
};

use crate::{
    CACHE_TYPE, CACHE_TYPE_REDIS, KPI_CACHE_HIT_RATE, OPERATIONS_HIT_MISS, RESULT, RESULT_HIT,
    RESULT_MISS,
};

/// The window of the hit rate unless told otherwise: the original strategy alert's 10 minutes.
pub const DEFAULT_HIT_RATE_WINDOW: Duration = Duration::from_secs(600);

/// Hits and misses of one cache type over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HitMiss {
    /// Reads that found their key (or field).
    pub hits: u64,
    /// Reads that did not.
    pub misses: u64,
}

impl HitMiss {
    /// Hits and misses together.
    pub fn reads(&self) -> u64 {
        self.hits + self.misses
    }

    /// Hits as a percentage of reads (0 to 100), or `None` without reads.
    pub fn hit_rate_percent(&self) -> Option<f64> {
        let reads = self.reads();
        (reads > 0).then(|| self.hits as f64 * 100.0 / reads as f64)
    }
}

impl std::ops::AddAssign for HitMiss {
    fn add_assign(&mut self, other: Self) {
        self.hits += other.hits;
        self.misses += other.misses;
    }
}

/// One flush: the time it covers and its hits and misses by cache type.
#[derive(Debug, Clone)]
struct Interval {
    covers: Duration,
    by_cache_type: Vec<(String, HitMiss)>,
}

/// Hits and misses over a sliding window of snapshots, by cache type.
///
/// ```
/// use std::time::Duration;
/// use paymetrics::{PaymetricsBuilder, export::MemoryExporter};
/// use paymetrics_redis::{CacheHitRate, OPERATIONS_HIT_MISS};
///
/// let (exporter, reader) = MemoryExporter::new();
/// let metrics = PaymetricsBuilder::new().without_dogstatsd().exporter(exporter).build().unwrap();
/// metrics::with_local_recorder(metrics.recorder(), || {
///     let hits = metrics::counter!(OPERATIONS_HIT_MISS, "cache_type" => "redis", "result" => "hit");
///     let misses = metrics::counter!(OPERATIONS_HIT_MISS, "cache_type" => "redis", "result" => "miss");
///     hits.increment(9);
///     misses.increment(1);
/// });
/// metrics.flush();
///
/// let rate = CacheHitRate::from_snapshots(Duration::from_secs(600), &reader.snapshots());
/// assert_eq!(rate.hit_rate("redis"), Some(90.0));
/// ```
#[derive(Debug, Clone)]
pub struct CacheHitRate {
    window: Duration,
    intervals: VecDeque<Interval>,
}

impl Default for CacheHitRate {
    fn default() -> Self {
        Self::new(DEFAULT_HIT_RATE_WINDOW)
    }
}

impl CacheHitRate {
    /// An empty window of `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            intervals: VecDeque::new(),
        }
    }

    /// The window over `snapshots`, oldest first (each snapshot once).
    pub fn from_snapshots<'a>(
        window: Duration,
        snapshots: impl IntoIterator<Item = &'a Snapshot>,
    ) -> Self {
        let mut rate = Self::new(window);
        for snapshot in snapshots {
            rate.push(snapshot);
        }
        rate
    }

    /// The window's length.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Adds the next snapshot's hits and misses, then forgets the flushes that fell out of the
    /// window. A flush is in the window while the flushes after it cover less than the window:
    /// with 10 s flushes and 10 minutes, the last 60.
    pub fn push(&mut self, snapshot: &Snapshot) {
        let mut by_cache_type: Vec<(String, HitMiss)> = vec![];
        for series in &snapshot.series {
            if series.key.name() != OPERATIONS_HIT_MISS {
                continue;
            }
            let SeriesValue::Counter(counter) = &series.value else {
                continue;
            };
            let mut cache_type = CACHE_TYPE_REDIS; // the default when untagged
            let mut result = None;
            for label in series.key.labels() {
                match label.key() {
                    CACHE_TYPE => cache_type = label.value(),
                    RESULT => result = Some(label.value()),
                    _ => {}
                }
            }
            let delta = match result {
                Some(RESULT_HIT) => HitMiss {
                    hits: counter.delta,
                    misses: 0,
                },
                Some(RESULT_MISS) => HitMiss {
                    hits: 0,
                    misses: counter.delta,
                },
                _ => continue,
            };
            match by_cache_type.iter_mut().find(|(t, _)| t == cache_type) {
                Some((_, tally)) => *tally += delta,
                None => by_cache_type.push((cache_type.to_owned(), delta)),
            }
        }
        self.intervals.push_back(Interval {
            covers: snapshot.interval,
            by_cache_type,
        });
        let mut newer = Duration::ZERO;
        let mut keep = 0;
        for interval in self.intervals.iter().rev() {
            if newer >= self.window {
                break;
            }
            newer += interval.covers;
            keep += 1;
        }
        let evicted = self.intervals.len() - keep;
        self.intervals.drain(..evicted);
    }

    /// Hits and misses of `cache_type` over the window.
    pub fn totals(&self, cache_type: &str) -> HitMiss {
        let mut total = HitMiss::default();
        for interval in &self.intervals {
            for (t, tally) in &interval.by_cache_type {
                if t == cache_type {
                    total += *tally;
                }
            }
        }
        total
    }

    /// The hit rate of `cache_type` over the window in percent, or `None` without reads.
    pub fn hit_rate(&self, cache_type: &str) -> Option<f64> {
        self.totals(cache_type).hit_rate_percent()
    }

    /// Hits and misses over the window for every cache type seen in it.
    pub fn by_cache_type(&self) -> BTreeMap<String, HitMiss> {
        let mut all = BTreeMap::<String, HitMiss>::new();
        for interval in &self.intervals {
            for (t, tally) in &interval.by_cache_type {
                *all.entry(t.clone()).or_default() += *tally;
            }
        }
        all
    }
}

/// An exporter that keeps a [`CacheHitRate`] and publishes it after every flush as the gauge
/// [`KPI_CACHE_HIT_RATE`] (percent, tagged `cache_type`), once per cache type with reads in
/// the window; a cache type without reads in the window gets no value.
///
/// The gauge is set through the `metrics` facade on the flusher thread, so it reaches the
/// global recorder: with paymetrics installed ([`paymetrics::init`],
/// [`PaymetricsBuilder::install`](paymetrics::PaymetricsBuilder::install)) it is recorded
/// there and sent with the next flush. With a local recorder only, read the value from the
/// [`HitRateReader`].
///
/// ```no_run
/// use paymetrics::PaymetricsBuilder;
/// use paymetrics_redis::HitRateExporter;
///
/// let (kpi, hit_rate) = HitRateExporter::new();
/// let metrics = PaymetricsBuilder::new().exporter(kpi).install()?;
/// // ... later, in-process:
/// if hit_rate.hit_rate("redis").is_some_and(|rate| rate < 80.0) {
///     // warm the cache
/// }
/// # drop(metrics);
/// # Ok::<(), paymetrics::Error>(())
/// ```
#[derive(Debug)]
pub struct HitRateExporter {
    rate: CacheHitRate,
    shared: Arc<Mutex<BTreeMap<String, HitMiss>>>,
}

/// Reads what a [`HitRateExporter`] computed at the latest flush. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HitRateReader {
    shared: Arc<Mutex<BTreeMap<String, HitMiss>>>,
}

impl HitRateExporter {
    /// An exporter over [`DEFAULT_HIT_RATE_WINDOW`], and its reader.
    pub fn new() -> (Self, HitRateReader) {
        Self::with_window(DEFAULT_HIT_RATE_WINDOW)
    }

    /// An exporter over `window`, and its reader.
    pub fn with_window(window: Duration) -> (Self, HitRateReader) {
        let shared = Arc::default();
        (
            Self {
                rate: CacheHitRate::new(window),
                shared: Arc::clone(&shared),
            },
            HitRateReader { shared },
        )
    }
}

impl Exporter for HitRateExporter {
    fn export(&mut self, snapshot: &Snapshot) {
        self.rate.push(snapshot);
        let totals = self.rate.by_cache_type();
        for (cache_type, tally) in &totals {
            if let Some(rate) = tally.hit_rate_percent() {
                metrics::gauge!(KPI_CACHE_HIT_RATE, CACHE_TYPE => cache_type.clone()).set(rate);
            }
        }
        *self.shared.lock().unwrap_or_else(PoisonError::into_inner) = totals;
    }
}

impl HitRateReader {
    /// The hit rate of `cache_type` in percent at the latest flush, or `None` without reads in
    /// the window (or before the first flush).
    pub fn hit_rate(&self, cache_type: &str) -> Option<f64> {
        self.totals(cache_type).hit_rate_percent()
    }

    /// Hits and misses of `cache_type` in the window at the latest flush.
    pub fn totals(&self, cache_type: &str) -> HitMiss {
        self.shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(cache_type)
            .copied()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use metrics::{Key, Label};
    use paymetrics::snapshot::{CounterValue, RecorderStats, Series};

    use super::*;

    fn hit_miss(cache_type: &'static str, result: &'static str, delta: u64) -> Series {
        Series {
            key: Key::from_parts(
                OPERATIONS_HIT_MISS,
                vec![
                    Label::from_static_parts(CACHE_TYPE, cache_type),
                    Label::from_static_parts(RESULT, result),
                    Label::from_static_parts("key_pattern", "user"),
                ],
            ),
            value: SeriesValue::Counter(CounterValue {
                total: delta,
                delta,
            }),
        }
    }

    fn snapshot(secs: u64, series: Vec<Series>) -> Snapshot {
        Snapshot {
            taken_at: SystemTime::UNIX_EPOCH,
            interval: Duration::from_secs(secs),
            series,
            messages: vec![],
            stats: RecorderStats::default(),
        }
    }

    #[test]
    fn the_rate_covers_the_window_and_forgets_older_flushes() {
        let mut rate = CacheHitRate::new(Duration::from_secs(30));
        assert_eq!(rate.hit_rate("redis"), None);
        // 10 s flushes: the window holds the last three.
        rate.push(&snapshot(10, vec![hit_miss("redis", "miss", 10)]));
        assert_eq!(rate.hit_rate("redis"), Some(0.0));
        rate.push(&snapshot(10, vec![hit_miss("redis", "hit", 10)]));
        rate.push(&snapshot(10, vec![hit_miss("redis", "hit", 20)]));
        assert_eq!(
            rate.totals("redis"),
            HitMiss {
                hits: 30,
                misses: 10
            }
        );
        assert_eq!(rate.hit_rate("redis"), Some(75.0));
        rate.push(&snapshot(10, vec![]));
        assert_eq!(
            rate.totals("redis"),
            HitMiss {
                hits: 30,
                misses: 0
            }
        );
        rate.push(&snapshot(10, vec![]));
        rate.push(&snapshot(10, vec![]));
        assert_eq!(rate.hit_rate("redis"), None, "no reads in the window");
    }

    #[test]
    fn cache_types_are_kept_apart_and_other_series_ignored() {
        let mut other_metric = hit_miss("redis", "hit", 100);
        other_metric.key = Key::from_name("cache.operations.count");
        let rate = CacheHitRate::from_snapshots(
            DEFAULT_HIT_RATE_WINDOW,
            &[snapshot(
                10,
                vec![
                    hit_miss("redis", "hit", 3),
                    hit_miss("redis", "miss", 1),
                    hit_miss("local", "hit", 1),
                    hit_miss("redis", "maybe", 50),
                    other_metric,
                ],
            )],
        );
        assert_eq!(rate.hit_rate("redis"), Some(75.0));
        assert_eq!(rate.hit_rate("local"), Some(100.0));
        assert_eq!(rate.by_cache_type().len(), 2);
    }

    #[test]
    fn the_exporter_publishes_the_gauge_only_with_reads() {
        let (mut exporter, reader) = HitRateExporter::with_window(Duration::from_secs(20));
        let recorded = paymetrics::testing::capture(|| {
            exporter.export(&snapshot(
                10,
                vec![hit_miss("redis", "hit", 4), hit_miss("redis", "miss", 1)],
            ));
        });
        assert_eq!(
            recorded.gauge(KPI_CACHE_HIT_RATE, &[(CACHE_TYPE, "redis")]),
            Some(80.0)
        );
        assert_eq!(reader.hit_rate("redis"), Some(80.0));

        // One quiet flush: the reads are still in the 20 s window.
        exporter.export(&snapshot(10, vec![]));
        assert_eq!(reader.hit_rate("redis"), Some(80.0));
        // A second: they are out, and the gauge gets no value.
        let recorded = paymetrics::testing::capture(|| {
            exporter.export(&snapshot(10, vec![]));
        });
        assert_eq!(
            recorded.gauge(KPI_CACHE_HIT_RATE, &[(CACHE_TYPE, "redis")]),
            None
        );
        assert_eq!(reader.hit_rate("redis"), None);
    }
}
