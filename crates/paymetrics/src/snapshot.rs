//! What one flush saw: plain values per series, the input of exporters and in-process queries.
//!
//! A [`Snapshot`] is taken by the flusher every flush interval. Counters carry their total and
//! the delta since the previous flush, gauges their value, histograms the samples recorded in
//! the interval as exact count, sum, min and max plus log-linear buckets for quantiles (see
//! [`HistogramValue::quantile`] for the error bound).

use std::time::{Duration, SystemTime};

use metrics::Key;

use crate::{
    message::Message,
    recorder::histogram::{self, Drained},
};

/// The values of every live series at one flush, plus the messages queued since the previous one.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// When the flush ran.
    pub taken_at: SystemTime,
    /// Time since the previous flush (or since the recorder started): the interval the deltas cover.
    pub interval: Duration,
    /// One entry per registered series.
    pub series: Vec<Series>,
    /// Events, service checks and timestamped points queued since the previous flush.
    pub messages: Vec<Message>,
    /// The recorder's own counters at this flush.
    pub stats: RecorderStats,
}

/// Counts the recorder keeps about itself, cumulative since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// Series registered now, overflow series excluded.
    pub live_series: usize,
    /// NaN or infinite gauge and histogram values, dropped when recorded.
    pub non_finite_dropped: u64,
    /// Registrations folded into an overflow series by the cardinality guard.
    pub overflow_registrations: u64,
    /// Series removed after staying idle.
    pub series_expired: u64,
    /// Messages dropped because the queue was full.
    pub messages_dropped: u64,
    /// Events, service checks and timestamped points dropped because their timestamp is past
    /// what Datadog can represent (above `i64::MAX` seconds).
    pub invalid_dropped: u64,
}

/// One series: its key (name and labels) and its value at the flush.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Metric name and labels, as recorded.
    pub key: Key,
    /// The value, by metric type.
    pub value: SeriesValue,
}

/// A series' value, by metric type.
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesValue {
    /// A monotonic counter.
    Counter(CounterValue),
    /// A gauge.
    Gauge(GaugeValue),
    /// A histogram's samples for the interval (boxed: it is the large variant, and a snapshot
    /// holds one value per live series).
    Histogram(Box<HistogramValue>),
}

/// A counter at one flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterValue {
    /// Sum of all increments since the series was registered.
    pub total: u64,
    /// Sum of the increments in this interval.
    pub delta: u64,
}

/// A gauge at one flush.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaugeValue {
    /// The last value set.
    pub value: f64,
    /// Whether it was set, incremented or decremented in this interval.
    pub updated: bool,
    /// Whether it was updated within the idle-expiry window; exporters send only active gauges.
    pub active: bool,
}

/// A histogram's samples over one interval (or, after [`merge`](Self::merge), several).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramValue {
    /// Number of samples.
    pub count: u64,
    /// Exact sum of the samples.
    pub sum: f64,
    /// Smallest sample, or `+inf` when empty.
    pub min: f64,
    /// Largest sample, or `-inf` when empty.
    pub max: f64,
    buckets: Vec<(i32, u64)>,
}

impl HistogramValue {
    pub(crate) fn from_drained(d: Drained) -> Self {
        Self {
            count: d.count,
            sum: d.sum,
            min: d.min,
            max: d.max,
            buckets: d.buckets,
        }
    }

    /// An empty histogram.
    pub fn empty() -> Self {
        Self {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            buckets: vec![],
        }
    }

    /// The mean of the samples, or `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// The buckets as `(representative value, count)`, ascending by value, empty ones left out.
    ///
    /// A bucket's value is its midpoint clamped to `[min, max]`; see [`quantile`](Self::quantile)
    /// for the error bound.
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.buckets
            .iter()
            .map(|&(k, n)| (self.representative(k), n))
    }

    /// Whether min and max describe the buckets. A sample recorded while its interval was being
    /// drained can leave its bucket in one interval and its sum, min and max in the next.
    fn extremes_consistent(&self) -> bool {
        self.min <= self.max
    }

    fn representative(&self, key: i32) -> f64 {
        // One sample whose min, max and sum agree: its value is known exactly.
        if self.count == 1 && self.min == self.max && self.sum == self.min {
            return self.sum;
        }
        let mid = histogram::bucket_value(key);
        if self.extremes_consistent() {
            mid.clamp(self.min, self.max)
        } else {
            mid
        }
    }

    /// The `q`-quantile (`0.0..=1.0`, nearest rank), or `None` when empty or `q` is out of range.
    ///
    /// The result is within a relative error of [`histogram::RELATIVE_ERROR`] (1/128, 0.79 %)
    /// of a sample of that rank, for magnitudes in `[2^-20, 2^44)`; smaller magnitudes read as 0.
    /// `q = 0` and `q = 1` return the exact min and max.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        if q == 0.0 && self.extremes_consistent() {
            return Some(self.min);
        }
        if q == 1.0 && self.extremes_consistent() {
            return Some(self.max);
        }
        let rank = ((q * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for &(key, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(self.representative(key));
            }
        }
        Some(self.max)
    }

    /// Adds another interval's samples to this one (exact: buckets are summed).
    ///
    /// A histogram's count, sum, min and max come from separate atomics: a sample recorded
    /// during the drain of its interval may count in one interval and add its sum, min and max
    /// to the next. Totals over consecutive intervals stay exact; within one interval the sum can
    /// be off by the samples in flight, and a lone sample is only reported exactly when its
    /// min, max and sum agree.
    pub fn merge(&mut self, other: &HistogramValue) {
        if other.count == 0 {
            return;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        let mut merged = Vec::with_capacity(self.buckets.len() + other.buckets.len());
        let (mut a, mut b) = (
            self.buckets.iter().peekable(),
            other.buckets.iter().peekable(),
        );
        loop {
            match (a.peek(), b.peek()) {
                (Some(&&(ka, na)), Some(&&(kb, nb))) => {
                    if ka == kb {
                        merged.push((ka, na + nb));
                        a.next();
                        b.next();
                    } else if ka < kb {
                        merged.push((ka, na));
                        a.next();
                    } else {
                        merged.push((kb, nb));
                        b.next();
                    }
                }
                (Some(&&x), None) => {
                    merged.push(x);
                    a.next();
                }
                (None, Some(&&x)) => {
                    merged.push(x);
                    b.next();
                }
                (None, None) => break,
            }
        }
        self.buckets = merged;
    }
}

/// Whether `key` has exactly these labels, in any order.
fn labels_match(key: &Key, labels: &[(&str, &str)]) -> bool {
    key.labels().len() == labels.len()
        && labels
            .iter()
            .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
}

impl Snapshot {
    /// The series named `name` with exactly `labels` (in any order).
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<&SeriesValue> {
        self.series
            .iter()
            .find(|s| s.key.name() == name && labels_match(&s.key, labels))
            .map(|s| &s.value)
    }

    /// The counter `name{labels}`.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Option<CounterValue> {
        match self.find(name, labels)? {
            SeriesValue::Counter(c) => Some(*c),
            _ => None,
        }
    }

    /// The gauge `name{labels}`.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<GaugeValue> {
        match self.find(name, labels)? {
            SeriesValue::Gauge(g) => Some(*g),
            _ => None,
        }
    }

    /// The histogram `name{labels}`.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Option<&HistogramValue> {
        match self.find(name, labels)? {
            SeriesValue::Histogram(h) => Some(h.as_ref()),
            _ => None,
        }
    }

    /// Sum of the counter deltas of every series named `name`, whatever its labels.
    pub fn counter_delta_sum(&self, name: &str) -> u64 {
        self.series
            .iter()
            .filter(|s| s.key.name() == name)
            .filter_map(|s| match &s.value {
                SeriesValue::Counter(c) => Some(c.delta),
                _ => None,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::HistogramCell;
    use metrics::HistogramFn;

    fn hist(values: impl IntoIterator<Item = f64>) -> HistogramValue {
        let cell = HistogramCell::new(Default::default(), Box::new([]));
        for v in values {
            cell.record(v);
        }
        HistogramValue::from_drained(cell.drain())
    }

    #[test]
    fn quantiles_are_within_the_stated_error() {
        let h = hist((1..=10_000).map(f64::from));
        for (q, exact) in [(0.5, 5000.0), (0.95, 9500.0), (0.99, 9900.0)] {
            let got = h.quantile(q).unwrap();
            assert!(
                (got - exact).abs() / exact <= histogram::RELATIVE_ERROR,
                "{q}: {got}"
            );
        }
        assert_eq!(h.quantile(0.0), Some(1.0));
        assert_eq!(h.quantile(1.0), Some(10_000.0));
        assert_eq!(h.quantile(1.5), None);
        assert_eq!(h.mean(), Some(5000.5));
    }

    #[test]
    fn merge_equals_recording_everything_at_once() {
        let mut a = hist([1.0, 5.0, 9.0]);
        a.merge(&hist([-2.0, 5.0, 100.0]));
        let all = hist([1.0, 5.0, 9.0, -2.0, 5.0, 100.0]);
        assert_eq!(a, all);
        let mut e = HistogramValue::empty();
        e.merge(&all);
        assert_eq!(e, all);
    }

    #[test]
    fn a_drain_that_raced_a_record_never_panics_or_invents_a_value() {
        // The bucket of a sample was drained, but its sum, min and max land in the next interval.
        let raced = HistogramValue::from_drained(Drained {
            count: 1,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            buckets: vec![(histogram::bucket_key(5.0), 1)],
        });
        let mid = histogram::bucket_value(histogram::bucket_key(5.0));
        assert_eq!(raced.buckets().collect::<Vec<_>>(), vec![(mid, 1)]);
        assert_eq!(raced.quantile(0.0), Some(mid));
        assert_eq!(raced.quantile(1.0), Some(mid));
        // And the other way round: sum, min and max without a bucket.
        let mut next = HistogramValue::from_drained(Drained {
            count: 0,
            sum: 5.0,
            min: 5.0,
            max: 5.0,
            buckets: vec![],
        });
        next.merge(&raced);
        assert_eq!(next.count, 1);
        assert!(
            next.buckets()
                .all(|(v, _)| (v - 5.0).abs() <= 5.0 * histogram::RELATIVE_ERROR)
        );
    }

    #[test]
    fn a_single_sample_is_reported_exactly() {
        let h = hist([123.456]);
        assert_eq!(h.buckets().collect::<Vec<_>>(), vec![(123.456, 1)]);
        assert_eq!(h.quantile(0.5), Some(123.456));
    }
}
