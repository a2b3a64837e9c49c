//! What one flush saw: plain values per series, the input of exporters and in-process queries.
//!
//! A [`Snapshot`] is taken by the flusher every flush interval. Counters carry their total and
//! the delta since the previous flush, gauges their value, histograms the samples recorded in
//! the interval as exact count, sum, min and max plus log-linear buckets for quantiles (see
//! [`HistogramValue::quantile`] for the error bound), and the values an exporter sends for them
//! ([`HistogramValue::wire_values`]: they add up to the exact sum).

use std::fmt::Write as _;
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
    /// Integers up to this magnitude (1,024) are counted apart and sent and read exactly.
    pub const EXACT_INTEGER_BOUND: u32 = histogram::EXACT_INTEGER_BOUND;

    /// The largest relative error (1/64, 1.56 %) of a value in
    /// [`wire_values`](Self::wire_values) against a sample it stands for, and so of a
    /// percentile computed from them against the recorded sample of that rank: the width of a
    /// bucket, in which the values move to add up to the exact sum. Exact integers, min and max
    /// have none.
    pub const WIRE_RELATIVE_ERROR: f64 = histogram::WIRE_RELATIVE_ERROR;

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
    /// A bucket's value is its midpoint clamped to `[min, max]`, or the integer itself for
    /// integers up to [`Self::EXACT_INTEGER_BOUND`]; see [`quantile`](Self::quantile) for
    /// the error bound. Exporters send [`wire_values`](Self::wire_values) instead.
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.buckets
            .iter()
            .map(|&(k, n)| (self.representative(k), n))
    }

    /// The values to send for this interval, as `(value, samples it stands for)`, ascending by
    /// value: what DogStatsD exporters put on the wire, one value per weight.
    ///
    /// Weighted by their counts, the values add up to the exact [`sum`](Self::sum) (to within
    /// `f64` rounding, about `1e-15` of the sum of magnitudes), the counts to the exact
    /// [`count`](Self::count), and the smallest and largest values are the exact
    /// [`min`](Self::min) and [`max`](Self::max) (split off with a count of 1 when they share a
    /// bucket). Integers up to [`Self::EXACT_INTEGER_BOUND`] in magnitude are sent as
    /// themselves, and magnitudes below `2^-20` as 0 (their sum, under `2^-20` each, is kept
    /// only when another bucket can take it). Every other value stays in its bucket
    /// (within [`Self::WIRE_RELATIVE_ERROR`], 1/64 or 1.56 %, of each sample it stands for):
    /// one common fraction of every bucket's width moves the values together until the sum is
    /// met, each is then rounded to the fewest significant digits that keep it within 1/64 of
    /// its bucket's width (the rounding error carried into the next value, lightest buckets
    /// first), and the value with the most mass takes the last remainder at full precision
    /// (passing what would leave its bucket to the next heaviest).
    ///
    /// A sample recorded while its interval was drained can leave its count in one interval
    /// and its sum in the next: such an interval still sends its drained sum, so totals over
    /// consecutive intervals stay exact.
    pub fn wire_values(&self) -> Vec<(f64, u64)> {
        if self.count == 0 {
            return vec![];
        }
        if self.min == self.max && self.extremes_consistent() {
            return vec![(self.min, self.count)];
        }
        self.exact_wire_values()
            .unwrap_or_else(|| self.buckets().collect())
    }

    /// [`wire_values`](Self::wire_values) for consistent intervals; `None` when min, max or
    /// sum do not describe the buckets (a drain raced a sample, or `merge` of such intervals).
    fn exact_wire_values(&self) -> Option<Vec<(f64, u64)>> {
        if !(self.extremes_consistent() && self.sum.is_finite()) {
            return None;
        }
        let (min, max) = (self.min, self.max);
        // (low, high, weight, exact): an exact entry is one known value.
        let mut entries: Vec<(f64, f64, u64, bool)> = self
            .buckets
            .iter()
            .map(|&(key, n)| {
                if key == 0 {
                    let zero = 0f64.clamp(min, max);
                    (zero, zero, n, true)
                } else {
                    let (low, high) = histogram::bucket_bounds(key);
                    (low, high, n, histogram::is_exact(key))
                }
            })
            .collect();
        let mut out: Vec<(f64, u64)> = Vec::with_capacity(entries.len() + 2);
        // The exact extremes travel as themselves: split one sample off the entry that holds
        // each, unless an exact entry already is that value.
        for extreme in [min, max] {
            if entries.iter().any(|e| e.3 && e.0 == extreme) {
                continue;
            }
            let bucket_of = |e: &&mut (f64, f64, u64, bool)| {
                let tiny = 2f64.powi(histogram::MIN_EXPONENT);
                let (low, high) = if e.3 && e.0 == 0.0 {
                    (-tiny, tiny)
                } else {
                    (e.0, e.1)
                };
                e.2 > 0 && low <= extreme && extreme <= high
            };
            let entry = if extreme == min {
                entries.iter_mut().find(bucket_of)
            } else {
                entries.iter_mut().rev().find(bucket_of)
            }?;
            entry.2 -= 1;
            out.push((extreme, 1));
        }
        entries.retain(|e| e.2 > 0);
        let mut residual = self.sum - out.iter().map(|&(v, n)| v * n as f64).sum::<f64>();
        let mut free = Vec::with_capacity(entries.len());
        for (low, high, weight, exact) in entries {
            if exact {
                out.push((low, weight));
                residual -= low * weight as f64;
            } else {
                free.push((low.max(min), high.min(max), weight));
            }
        }
        if !free.is_empty() {
            adjust(&free, residual, &mut out)?;
        }
        if !residual.is_finite() {
            return None;
        }
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        Some(out)
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
    /// Integers up to [`Self::EXACT_INTEGER_BOUND`] read exactly. `q = 0` and `q = 1`
    /// return the exact min and max.
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

/// Sends `free` buckets (`(low, high, weight)`, bounds already within `[min, max]`) as values
/// inside their bounds whose weighted sum is `target`; see [`HistogramValue::wire_values`].
/// `None` when the bounds are too far apart for `f64` arithmetic (magnitudes near `f64::MAX`).
fn adjust(free: &[(f64, f64, u64)], target: f64, out: &mut Vec<(f64, u64)>) -> Option<()> {
    let weight = |w: u64| w as f64;
    let low: f64 = free.iter().map(|&(l, _, w)| l * weight(w)).sum();
    let high: f64 = free.iter().map(|&(_, h, w)| h * weight(w)).sum();
    if !(low.is_finite() && high.is_finite() && (high - low).is_finite()) {
        return None;
    }
    // The same fraction of every bucket: the smallest largest move that meets the sum.
    let t = if high > low {
        ((target - low) / (high - low)).clamp(0.0, 1.0)
    } else {
        0.5
    };
    let ideal: Vec<f64> = free
        .iter()
        .map(|&(l, h, _)| l * (1.0 - t) + h * t)
        .collect();
    // Lightest mass first, so the rounding error carried into a value is never more than that
    // value's own rounding allowance; the heaviest takes the remainder exactly.
    let mut order: Vec<usize> = (0..free.len()).collect();
    order.sort_by(|&a, &b| {
        (ideal[a].abs() * weight(free[a].2)).total_cmp(&(ideal[b].abs() * weight(free[b].2)))
    });
    let last = *order.last().expect("free is not empty");
    let mut values = vec![0.0; free.len()];
    let mut sent = 0.0;
    let mut carry = 0.0;
    for &i in &order[..order.len() - 1] {
        let (l, h, w) = free[i];
        // At an edge, the edge itself: the carry then shrinks instead of growing.
        let wanted = ideal[i] + carry / weight(w);
        let value = if wanted <= l {
            l
        } else if wanted >= h {
            h
        } else {
            shortest_within(wanted, (h - l) / 64.0, l, h)
        };
        carry += (ideal[i] - value) * weight(w);
        sent += value * weight(w);
        values[i] = value;
    }
    let (l, h, w) = free[last];
    values[last] = ((target - sent) / weight(w)).clamp(l, h);
    // The remainder overflowed the heaviest bucket only when the values sit at their edges
    // (min and max close in, or samples of both signs): the others take it, heaviest first,
    // at full precision and inside their bounds.
    let mut rest = target - sent - values[last] * weight(w);
    for &i in order.iter().rev() {
        if rest == 0.0 {
            break;
        }
        let (l, h, w) = free[i];
        let moved = (values[i] + rest / weight(w)).clamp(l, h);
        rest -= (moved - values[i]) * weight(w);
        values[i] = moved;
    }
    if !values.iter().all(|v| v.is_finite()) {
        return None;
    }
    out.extend(values.into_iter().zip(free.iter().map(|&(_, _, w)| w)));
    Some(())
}

/// The value with the fewest significant decimal digits within `tolerance` of `wanted` and
/// inside `[low, high]`: short on the wire, and parsed back to the same `f64` (ryu prints the
/// shortest text that round-trips).
fn shortest_within(wanted: f64, tolerance: f64, low: f64, high: f64) -> f64 {
    let mut text = String::with_capacity(32);
    for digits in 1..=17 {
        text.clear();
        let _ = write!(text, "{:.*e}", digits - 1, wanted);
        let value: f64 = text.parse().unwrap_or(wanted);
        if (value - wanted).abs() <= tolerance && low <= value && value <= high {
            return value;
        }
    }
    wanted
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
    use proptest::prelude::*;

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
        // Min and max do not describe it: the wire falls back to the bucket values.
        assert_eq!(raced.wire_values(), vec![(mid, 1)]);
        let mut two = raced.clone();
        two.merge(&raced);
        assert_eq!(two.wire_values(), vec![(mid, 2)]);
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

    /// The samples the wire values stand for, one per weight, ascending.
    fn expand(values: &[(f64, u64)]) -> Vec<f64> {
        let mut out: Vec<f64> = values
            .iter()
            .flat_map(|&(v, n)| std::iter::repeat_n(v, n as usize))
            .collect();
        out.sort_by(f64::total_cmp);
        out
    }

    /// Every property `wire_values` promises, checked against the recorded samples.
    fn check_wire_values(samples: &[f64]) -> Result<(), String> {
        let h = hist(samples.iter().copied());
        let wire = h.wire_values();
        let weights: u64 = wire.iter().map(|&(_, n)| n).sum();
        if weights != samples.len() as u64 {
            return Err(format!("count {weights} != {}", samples.len()));
        }
        if wire.iter().any(|&(v, n)| n == 0 || !v.is_finite()) {
            return Err(format!("empty weight or non-finite value: {wire:?}"));
        }
        let sent: f64 = wire.iter().map(|&(v, n)| v * n as f64).sum();
        let magnitude: f64 = samples.iter().map(|v| v.abs()).sum();
        // Magnitudes below 2^-20 travel as 0: their sum is kept only when other buckets can
        // take it.
        let tiny = 2f64.powi(histogram::MIN_EXPONENT);
        let below = samples.iter().filter(|v| v.abs() < tiny).count() as f64;
        if (sent - h.sum).abs() > 1e-12 * magnitude + below * tiny {
            return Err(format!("sum {sent} != {} ({wire:?})", h.sum));
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let expanded = expand(&wire);
        if (expanded[0], expanded[expanded.len() - 1]) != (h.min, h.max) {
            return Err(format!("min/max {expanded:?} vs {} {}", h.min, h.max));
        }
        // Every percentile: the sample of each rank against the wire value of that rank.
        for (k, (&x, &y)) in sorted.iter().zip(&expanded).enumerate() {
            if (x - y).abs() > x.abs() * HistogramValue::WIRE_RELATIVE_ERROR + tiny {
                return Err(format!("rank {k}: sent {y} for {x}"));
            }
        }
        // Small integers travel as themselves, with their exact count.
        let bound = f64::from(HistogramValue::EXACT_INTEGER_BOUND);
        for &x in &sorted {
            if x.fract() == 0.0 && x != 0.0 && x.abs() <= bound {
                let recorded = sorted.iter().filter(|&&v| v == x).count() as u64;
                if !wire.contains(&(x, recorded)) {
                    return Err(format!("{x} x{recorded} not sent as such: {wire:?}"));
                }
            }
        }
        // Each wire value parses back from its text exactly (what the encoder writes).
        for &(v, _) in &wire {
            let text = ryu::Buffer::new().format_finite(v).to_owned();
            if text.parse::<f64>() != Ok(v) {
                return Err(format!("{v} does not round-trip"));
            }
        }
        Ok(())
    }

    #[test]
    fn wire_values_add_up_to_the_exact_sum() {
        // The example: a retry count of 1 is sent as 1, message sizes as recorded.
        let retries = hist([1.0, 1.0, 0.0, 2.0, 1.0]);
        assert_eq!(retries.wire_values(), vec![(0.0, 1), (1.0, 3), (2.0, 1)]);
        let sizes = hist([40.0, 40.0, 1000.0, 999.0, 1024.0]);
        assert_eq!(
            sizes.wire_values(),
            vec![(40.0, 2), (999.0, 1), (1000.0, 1), (1024.0, 1)]
        );
        // Amounts with cents: the sum comes back, min and max as themselves.
        let amounts = [12.5, 12.75, 99.99, 100.01, 100.02, 250.5, 7.25, 7.3, 7.35];
        check_wire_values(&amounts).unwrap();
        let wire = hist(amounts).wire_values();
        assert_eq!(wire.first(), Some(&(7.25, 1)));
        assert_eq!(wire.last(), Some(&(250.5, 1)));
        check_wire_values(
            &(1..=10_000)
                .map(|i| f64::from(i) * 0.37)
                .collect::<Vec<_>>(),
        )
        .unwrap();
        check_wire_values(&[1e-9, 2e-9, 5.0, 5.5]).unwrap();
        check_wire_values(&[-3.5, -3.25, 2.5, 1e15, 1e20]).unwrap();
    }

    #[test]
    fn all_equal_samples_send_one_value() {
        assert_eq!(hist([19.99; 7]).wire_values(), vec![(19.99, 7)]);
        assert_eq!(hist([123.456]).wire_values(), vec![(123.456, 1)]);
        assert!(HistogramValue::empty().wire_values().is_empty());
    }

    #[test]
    fn magnitudes_near_f64_max_fall_back_to_bucket_values() {
        let h = hist([f64::MAX, -f64::MAX, 5.5, 1.0, 1e308, 1e308]);
        let wire = h.wire_values();
        assert_eq!(wire.iter().map(|&(_, n)| n).sum::<u64>(), 6);
        assert!(wire.iter().all(|&(v, _)| v.is_finite()), "{wire:?}");
    }

    fn sample() -> impl Strategy<Value = f64> {
        prop_oneof![
            // small integers: retry counts, sizes
            (0u32..1500).prop_map(f64::from),
            // amounts with cents
            (0u64..10_000_000).prop_map(|c| c as f64 / 100.0),
            // latencies, log-uniform from 1 us to 1e6 ms
            (-6.0f64..6.0).prop_map(|e| 10f64.powf(e)),
            // anything finite, either sign
            (-1e12f64..1e12),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn wire_values_keep_every_promise(samples in proptest::collection::vec(sample(), 1..300)) {
            if let Err(e) = check_wire_values(&samples) {
                return Err(TestCaseError::fail(e));
            }
        }

        #[test]
        fn same_sign_sums_are_exact_to_1e_9(
            samples in proptest::collection::vec((1u64..100_000_000).prop_map(|c| c as f64 / 100.0), 1..2000),
        ) {
            let h = hist(samples.iter().copied());
            let sent: f64 = h.wire_values().iter().map(|&(v, n)| v * n as f64).sum();
            let exact: f64 = samples.iter().sum();
            prop_assert!(((sent - exact) / exact).abs() <= 1e-9, "{sent} vs {exact}");
        }
    }
}
