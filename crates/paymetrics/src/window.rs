//! Windows over snapshots: counter sums and merged histograms per minute and per UTC hour, for
//! in-process queries (rates, sums, quantiles over the last hour, totals of a calendar hour or
//! day). KPIs, rollups and local alert evaluation are built on these queries.
//!
//! A [`WindowExporter`] is fed every snapshot by the flusher like any exporter; its
//! [`Windows`] reader answers queries. Only the metrics it is told to track are kept, and only
//! as aggregates per metric and per metric and one label value (never per series), so memory
//! grows with the distinct label values of the tracked metrics times the retention (two hours
//! of minutes, two days of hours by default), not with their series. Queries therefore filter
//! by at most one label. A flush's deltas count in the minute (and hour) containing the instant just before
//! the flush: a boundary is exact to within one flush interval, and exact when a flush runs at
//! the boundary.
//!
//! ```
//! use std::time::Duration;
//! use paymetrics::{PaymetricsBuilder, window::{Span, WindowConfig}};
//!
//! let (exporter, windows) = WindowConfig::tracking(["payments"]).build();
//! let metrics = PaymetricsBuilder::new().without_dogstatsd().exporter(exporter).build().unwrap();
//! metrics::with_local_recorder(metrics.recorder(), || {
//!     metrics::counter!("payments", "success" => "true").increment(9);
//!     metrics::counter!("payments", "success" => "false").increment(1);
//! });
//! metrics.flush();
//! let now = metrics.clock().now();
//! let last_hour = Span::Last(Duration::from_secs(3600));
//! assert_eq!(windows.counter_sum("payments", None, last_hour, now), 10);
//! assert_eq!(windows.counter_sum("payments", Some(("success", "true")), last_hour, now), 9);
//! ```

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use metrics::Key;

/// A query's label filter: every series of the metric (`None`), or those with one label value.
pub type LabelFilter<'a> = Option<(&'a str, &'a str)>;

use crate::{
    clock::unix_seconds,
    export::Exporter,
    snapshot::{HistogramValue, SeriesValue, Snapshot},
};

/// What a period holds for one aggregate.
#[derive(Debug, Clone)]
enum Acc {
    Counter(u64),
    Histogram(HistogramValue),
}

/// One minute's or hour's deltas, aggregated per metric name and per `name` + one label, so a
/// query reads one entry per bucket and memory does not grow with the number of series.
#[derive(Debug, Default)]
struct Bucket {
    /// Counters and histograms by `name`, and by `name\0label\0value`.
    aggregates: HashMap<String, Acc>,
    /// Gauges by name: statistics of the values flushed in this bucket.
    gauges: HashMap<String, GaugeStats>,
}

/// Statistics of a gauge's values over a span: one value per series per flush that updated it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaugeStats {
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Sum of the values.
    pub sum: f64,
    /// Number of values.
    pub count: u64,
    /// The most recent value (of the most recent bucket).
    pub last: f64,
}

impl GaugeStats {
    fn new(v: f64) -> Self {
        Self {
            min: v,
            max: v,
            sum: v,
            count: 1,
            last: v,
        }
    }

    fn add(&mut self, other: &GaugeStats) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.count += other.count;
        self.last = other.last;
    }

    /// The mean of the values.
    pub fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }
}

type Buckets = BTreeMap<u64, Bucket>;

#[derive(Debug, Default)]
struct State {
    minutes: Buckets,
    hours: Buckets,
}

/// Which metrics to track and for how long.
#[derive(Debug, Clone)]
pub struct WindowConfig {
    names: HashSet<String>,
    minute_retention: Duration,
    hour_retention: Duration,
}

impl WindowConfig {
    /// Tracks the metrics with these names, keeping 2 hours of minutes and 49 hours of hours.
    pub fn tracking<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            names: names.into_iter().map(Into::into).collect(),
            minute_retention: Duration::from_secs(2 * 3600),
            hour_retention: Duration::from_secs(49 * 3600),
        }
    }

    /// Also tracks these names.
    pub fn and<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.names.extend(names.into_iter().map(Into::into));
        self
    }

    /// How long minute buckets are kept (rolling windows up to this long are minute-exact).
    pub fn minute_retention(mut self, retention: Duration) -> Self {
        self.minute_retention = retention;
        self
    }

    /// How long hour buckets are kept.
    pub fn hour_retention(mut self, retention: Duration) -> Self {
        self.hour_retention = retention;
        self
    }

    /// The exporter to give the builder, and the reader to query.
    pub fn build(self) -> (WindowExporter, Windows) {
        let windows = Windows {
            config: Arc::new(self),
            state: Arc::default(),
        };
        (
            WindowExporter {
                windows: windows.clone(),
            },
            windows,
        )
    }
}

/// The span of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// The last `Duration` before `now`, minute-exact while within the minute retention, else
    /// whole hours.
    Last(Duration),
    /// The UTC hour starting at this instant (truncated to the hour).
    Hour(SystemTime),
    /// The UTC day starting at this instant (truncated to the day).
    Day(SystemTime),
}

/// Feeds [`Windows`] from the flusher.
#[derive(Debug)]
pub struct WindowExporter {
    windows: Windows,
}

impl Exporter for WindowExporter {
    fn export(&mut self, snapshot: &Snapshot) {
        self.windows.ingest(snapshot);
    }
}

/// Queries over the tracked metrics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Windows {
    config: Arc<WindowConfig>,
    state: Arc<Mutex<State>>,
}

fn add(bucket: &mut Bucket, key: &Key, value: &SeriesValue) {
    match value {
        SeriesValue::Counter(c) if c.delta > 0 => {
            let add = |acc: &mut Acc| {
                if let Acc::Counter(n) = acc {
                    *n += c.delta;
                }
            };
            for_each_aggregate(bucket, key, || Acc::Counter(0), add);
        }
        SeriesValue::Gauge(g) if g.updated => {
            let stats = GaugeStats::new(g.value);
            match bucket.gauges.get_mut(key.name()) {
                Some(existing) => existing.add(&stats),
                None => {
                    bucket.gauges.insert(key.name().to_owned(), stats);
                }
            }
        }
        SeriesValue::Histogram(h) if h.count > 0 => {
            let empty = || Acc::Histogram(HistogramValue::empty());
            let add = |acc: &mut Acc| {
                if let Acc::Histogram(merged) = acc {
                    merged.merge(h);
                }
            };
            for_each_aggregate(bucket, key, empty, add);
        }
        _ => {}
    }
}

/// Applies `add` to the name's aggregate and to each `name\0label\0value` aggregate.
fn for_each_aggregate(
    bucket: &mut Bucket,
    key: &Key,
    new: impl Fn() -> Acc,
    add: impl Fn(&mut Acc),
) {
    let mut id = String::with_capacity(64);
    id.push_str(key.name());
    let name_len = id.len();
    add(aggregate(&mut bucket.aggregates, &id, &new));
    for label in key.labels() {
        id.truncate(name_len);
        id.push('\0');
        id.push_str(label.key());
        id.push('\0');
        id.push_str(label.value());
        add(aggregate(&mut bucket.aggregates, &id, &new));
    }
}

fn aggregate<'a>(
    map: &'a mut HashMap<String, Acc>,
    id: &str,
    new: impl Fn() -> Acc,
) -> &'a mut Acc {
    if !map.contains_key(id) {
        map.insert(id.to_owned(), new());
    }
    map.get_mut(id).expect("inserted above")
}

/// The aggregate id answering `name{filter}`.
fn aggregate_id(name: &str, filter: LabelFilter<'_>) -> String {
    match filter {
        None => name.to_owned(),
        Some((k, v)) => format!("{name}\0{k}\0{v}"),
    }
}

impl Windows {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds one snapshot's deltas (the flusher does this through [`WindowExporter`]).
    pub fn ingest(&self, snapshot: &Snapshot) {
        let at = unix_seconds(
            snapshot
                .taken_at
                .checked_sub(Duration::from_nanos(1))
                .unwrap_or(snapshot.taken_at),
        );
        let (minute, hour) = (at - at % 60, at - at % 3600);
        let mut state = self.lock();
        for series in &snapshot.series {
            if !self.config.names.contains(series.key.name()) {
                continue;
            }
            add(
                state.minutes.entry(minute).or_default(),
                &series.key,
                &series.value,
            );
            add(
                state.hours.entry(hour).or_default(),
                &series.key,
                &series.value,
            );
        }
        let now = unix_seconds(snapshot.taken_at);
        let keep_minutes = now.saturating_sub(self.config.minute_retention.as_secs());
        let keep_hours = now.saturating_sub(self.config.hour_retention.as_secs());
        state.minutes.retain(|start, _| start + 60 > keep_minutes);
        state.hours.retain(|start, _| start + 3600 > keep_hours);
    }

    /// Calls `f` with every bucket the span covers.
    fn visit(&self, span: Span, now: SystemTime, mut f: impl FnMut(&Bucket)) {
        let state = self.lock();
        let now = unix_seconds(now);
        let (minutes, from, to) = match span {
            // Rolling spans start at a whole minute (or hour) at their far end.
            Span::Last(d) if d <= self.config.minute_retention => {
                let from = now.saturating_sub(d.as_secs());
                (true, from - from % 60, now + 1)
            }
            Span::Last(d) => {
                let from = now.saturating_sub(d.as_secs());
                (false, from - from % 3600, now + 1)
            }
            Span::Hour(start) => {
                let s = unix_seconds(start);
                (false, s - s % 3600, s - s % 3600 + 3600)
            }
            Span::Day(start) => {
                let s = unix_seconds(start);
                (false, s - s % 86_400, s - s % 86_400 + 86_400)
            }
        };
        let buckets = if minutes {
            &state.minutes
        } else {
            &state.hours
        };
        for (_, bucket) in buckets.range(from..to) {
            f(bucket);
        }
    }

    /// Sum of the deltas of counter `name` over its series matching `filter`.
    pub fn counter_sum(
        &self,
        name: &str,
        filter: LabelFilter<'_>,
        span: Span,
        now: SystemTime,
    ) -> u64 {
        let mut sum = 0;
        let id = aggregate_id(name, filter);
        self.visit(span, now, |bucket| {
            if let Some(Acc::Counter(n)) = bucket.aggregates.get(&id) {
                sum += n;
            }
        });
        sum
    }

    /// Histogram `name` merged over the span and over its series matching `filter`.
    pub fn histogram(
        &self,
        name: &str,
        filter: LabelFilter<'_>,
        span: Span,
        now: SystemTime,
    ) -> HistogramValue {
        let mut merged = HistogramValue::empty();
        let id = aggregate_id(name, filter);
        self.visit(span, now, |bucket| {
            if let Some(Acc::Histogram(h)) = bucket.aggregates.get(&id) {
                merged.merge(h);
            }
        });
        merged
    }

    /// Statistics of gauge `name` (every series) within the span: one value per series per
    /// flush that saw it updated. `None` when it was not set.
    pub fn gauge_stats(&self, name: &str, span: Span, now: SystemTime) -> Option<GaugeStats> {
        let mut total: Option<GaugeStats> = None;
        self.visit(span, now, |bucket| {
            if let Some(stats) = bucket.gauges.get(name) {
                match &mut total {
                    Some(t) => t.add(stats),
                    None => total = Some(*stats),
                }
            }
        });
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{CounterValue, RecorderStats, Series};

    fn snapshot(at: u64, series: Vec<(&'static str, &'static str, u64)>) -> Snapshot {
        Snapshot {
            taken_at: SystemTime::UNIX_EPOCH + Duration::from_secs(at),
            interval: Duration::from_secs(10),
            series: series
                .into_iter()
                .map(|(name, status, delta)| Series {
                    key: Key::from_parts(name, vec![metrics::Label::new("status", status)]),
                    value: SeriesValue::Counter(CounterValue { total: 0, delta }),
                })
                .collect(),
            messages: vec![],
            stats: RecorderStats::default(),
        }
    }

    #[test]
    fn hours_days_and_rolling_spans() {
        let (_, w) = WindowConfig::tracking(["p"]).build();
        let h10 = 10 * 3600;
        w.ingest(&snapshot(
            h10 + 600,
            vec![("p", "ok", 5), ("other", "ok", 99)],
        ));
        w.ingest(&snapshot(h10 + 3600, vec![("p", "ok", 2), ("p", "bad", 1)])); // flush at 11:00:00
        w.ingest(&snapshot(h10 + 3601, vec![("p", "ok", 7)]));
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(w.counter_sum("p", None, Span::Hour(t(h10 + 5)), t(0)), 8);
        assert_eq!(
            w.counter_sum("p", Some(("status", "ok")), Span::Hour(t(h10)), t(0)),
            7
        );
        assert_eq!(w.counter_sum("p", None, Span::Hour(t(h10 + 3600)), t(0)), 7);
        assert_eq!(w.counter_sum("p", None, Span::Day(t(h10)), t(0)), 15);
        assert_eq!(
            w.counter_sum("other", None, Span::Day(t(h10)), t(0)),
            0,
            "untracked"
        );
        let now = t(h10 + 3601);
        assert_eq!(
            w.counter_sum("p", None, Span::Last(Duration::from_secs(60)), now),
            10
        );
        assert_eq!(
            w.counter_sum("p", None, Span::Last(Duration::from_secs(3600)), now),
            15
        );
        assert_eq!(
            w.counter_sum("p", None, Span::Last(Duration::from_secs(24 * 3600)), now),
            15
        );
        assert_eq!(
            w.counter_sum("p", Some(("status", "ok")), Span::Day(t(h10)), t(0)),
            14
        );
        // An empty window.
        assert_eq!(
            w.counter_sum(
                "p",
                None,
                Span::Last(Duration::from_secs(60)),
                t(h10 + 7200)
            ),
            0
        );
    }
}
