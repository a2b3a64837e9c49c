//! The histogram cell: log-linear atomic buckets in bounded memory, never a buffer of raw values.
//!
//! A value's bucket comes straight from its `f64` bits: the binary exponent picks an octave and
//! the top [`SUB_BUCKET_BITS`] bits of the mantissa pick one of 64 equal slices of it. Each
//! bucket is reported by its midpoint, so any value in `[2^-20, 2^44)` (about `1e-6` to `1.7e13`)
//! is represented within a relative error of 1/128 (0.79 %). Smaller magnitudes count as zero;
//! larger ones land in the top bucket (and min, max and sum stay exact). Octaves are allocated as
//! 64-bucket pages on first use, so a latency histogram spanning 1 ms to 2 s touches 11 pages
//! (5.6 KiB), whatever its rate.

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering::*};

use metrics::HistogramFn;

use super::Stats;

/// Mantissa bits used to split an octave: 64 sub-buckets.
pub const SUB_BUCKET_BITS: u32 = 6;
const SUB_BUCKETS: usize = 1 << SUB_BUCKET_BITS;
/// Smallest binary exponent kept apart from zero: `2^-20`.
pub const MIN_EXPONENT: i32 = -20;
/// One past the largest binary exponent kept: values from `2^44` on share the top bucket.
pub const MAX_EXPONENT: i32 = 44;
const OCTAVES: usize = (MAX_EXPONENT - MIN_EXPONENT) as usize;
/// Magnitude buckets per sign.
pub(crate) const MAGNITUDE_BUCKETS: usize = OCTAVES * SUB_BUCKETS;
/// The largest relative error of a bucket's representative value, within the kept range.
pub const RELATIVE_ERROR: f64 = 1.0 / (2 * SUB_BUCKETS) as f64;

type Page = [AtomicU64; SUB_BUCKETS];
type PageTable = [AtomicPtr<Page>; OCTAVES];

/// The magnitude bucket of `|value|`, or `None` for values that count as zero.
#[inline]
fn magnitude_bucket(value: f64) -> Option<usize> {
    let bits = value.abs().to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32 - 1023;
    if exponent < MIN_EXPONENT {
        return None;
    }
    if exponent >= MAX_EXPONENT {
        return Some(MAGNITUDE_BUCKETS - 1);
    }
    let sub = ((bits >> (52 - SUB_BUCKET_BITS)) as usize) & (SUB_BUCKETS - 1);
    Some((exponent - MIN_EXPONENT) as usize * SUB_BUCKETS + sub)
}

/// Signed bucket key, ordered like the values: 0 is zero, `k > 0` is magnitude bucket `k - 1`
/// of positive values, `-k` the same bucket of negative values.
#[cfg(test)]
pub(crate) fn bucket_key(value: f64) -> i32 {
    match magnitude_bucket(value) {
        None => 0,
        Some(m) if value > 0.0 => m as i32 + 1,
        Some(m) => -(m as i32 + 1),
    }
}

/// The value a bucket key stands for: the midpoint of its bucket.
pub(crate) fn bucket_value(key: i32) -> f64 {
    if key == 0 {
        return 0.0;
    }
    let magnitude = key.unsigned_abs() as usize - 1;
    let octave = (magnitude / SUB_BUCKETS) as i32 + MIN_EXPONENT;
    let sub = (magnitude % SUB_BUCKETS) as f64;
    let width = 2f64.powi(octave) / SUB_BUCKETS as f64;
    let mid = 2f64.powi(octave) + (sub + 0.5) * width;
    if key > 0 { mid } else { -mid }
}

fn new_page_table() -> Box<PageTable> {
    Box::new(std::array::from_fn(
        |_| AtomicPtr::new(std::ptr::null_mut()),
    ))
}

/// What one drain of a histogram cell found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Drained {
    pub(crate) count: u64,
    pub(crate) sum: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    /// `(bucket key, count)`, ascending by key, zero counts left out.
    pub(crate) buckets: Vec<(i32, u64)>,
}

/// Storage behind a `metrics::Histogram` handle.
#[derive(Debug)]
pub(crate) struct HistogramCell {
    positive: Box<PageTable>,
    negative: AtomicPtr<PageTable>,
    zero: AtomicU64,
    sum_bits: AtomicU64,
    min_bits: AtomicU64,
    max_bits: AtomicU64,
    /// Consecutive flushes with no sample (flusher only).
    pub(crate) idle_flushes: AtomicU32,
    stats: std::sync::Arc<Stats>,
    attached: Box<[metrics::Histogram]>,
}

impl HistogramCell {
    pub(crate) fn new(stats: std::sync::Arc<Stats>, attached: Box<[metrics::Histogram]>) -> Self {
        Self {
            positive: new_page_table(),
            negative: AtomicPtr::new(std::ptr::null_mut()),
            zero: AtomicU64::new(0),
            sum_bits: AtomicU64::new(0f64.to_bits()),
            min_bits: AtomicU64::new(f64::INFINITY.to_bits()),
            max_bits: AtomicU64::new(f64::NEG_INFINITY.to_bits()),
            idle_flushes: AtomicU32::new(0),
            stats,
            attached,
        }
    }

    #[cold]
    fn negative_table(&self) -> &PageTable {
        let current = self.negative.load(Acquire);
        if !current.is_null() {
            // SAFETY: a published table lives until Drop.
            return unsafe { &*current };
        }
        let fresh = Box::into_raw(new_page_table());
        match self
            .negative
            .compare_exchange(std::ptr::null_mut(), fresh, AcqRel, Acquire)
        {
            // SAFETY: we just published our own allocation.
            Ok(_) => unsafe { &*fresh },
            Err(existing) => {
                // SAFETY: `fresh` was never shared; `existing` lives until Drop.
                unsafe {
                    drop(Box::from_raw(fresh));
                    &*existing
                }
            }
        }
    }

    #[inline]
    fn page(table: &PageTable, octave: usize) -> &Page {
        let ptr = table[octave].load(Acquire);
        if !ptr.is_null() {
            // SAFETY: a published page lives until Drop.
            return unsafe { &*ptr };
        }
        Self::new_page(&table[octave])
    }

    #[cold]
    fn new_page(slot: &AtomicPtr<Page>) -> &Page {
        let fresh = Box::into_raw(Box::new(std::array::from_fn(|_| AtomicU64::new(0))));
        match slot.compare_exchange(std::ptr::null_mut(), fresh, AcqRel, Acquire) {
            // SAFETY: we just published our own allocation.
            Ok(_) => unsafe { &*fresh },
            Err(existing) => {
                // SAFETY: `fresh` was never shared; `existing` lives until Drop.
                unsafe {
                    drop(Box::from_raw(fresh));
                    &*existing
                }
            }
        }
    }

    #[inline]
    fn record_local(&self, value: f64) {
        if !value.is_finite() {
            self.stats.non_finite_dropped.fetch_add(1, Relaxed);
            return;
        }
        match magnitude_bucket(value) {
            None => {
                self.zero.fetch_add(1, Relaxed);
            }
            Some(m) => {
                let table = if value > 0.0 {
                    &*self.positive
                } else {
                    self.negative_table()
                };
                Self::page(table, m / SUB_BUCKETS)[m % SUB_BUCKETS].fetch_add(1, Relaxed);
            }
        }
        let mut current = self.sum_bits.load(Relaxed);
        loop {
            let next = (f64::from_bits(current) + value).to_bits();
            match self
                .sum_bits
                .compare_exchange_weak(current, next, Relaxed, Relaxed)
            {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        fetch_extreme(&self.min_bits, value, |v, m| v < m);
        fetch_extreme(&self.max_bits, value, |v, m| v > m);
    }

    /// Whether samples arrived since the previous [`drain`](Self::drain) (a sample sets `min`
    /// last, before its handle is released).
    pub(crate) fn has_unflushed(&self) -> bool {
        self.min_bits.load(Acquire) != f64::INFINITY.to_bits()
    }

    /// Takes every sample recorded since the previous drain; flusher only.
    ///
    /// A sample racing with the drain may have its bucket taken now and its sum next time;
    /// totals over consecutive drains stay exact.
    pub(crate) fn drain(&self) -> Drained {
        let mut buckets = Vec::new();
        let negative = self.negative.load(Acquire);
        if !negative.is_null() {
            // SAFETY: a published table lives until Drop.
            drain_table(unsafe { &*negative }, &mut buckets, |m| -(m as i32 + 1));
            buckets.reverse();
        }
        let zero = take(&self.zero);
        if zero > 0 {
            buckets.push((0, zero));
        }
        drain_table(&self.positive, &mut buckets, |m| m as i32 + 1);
        let count = buckets.iter().map(|(_, c)| c).sum();
        let sum = f64::from_bits(self.sum_bits.swap(0f64.to_bits(), AcqRel));
        let min = f64::from_bits(self.min_bits.swap(f64::INFINITY.to_bits(), AcqRel));
        let max = f64::from_bits(self.max_bits.swap(f64::NEG_INFINITY.to_bits(), AcqRel));
        Drained {
            count,
            sum,
            min,
            max,
            buckets,
        }
    }
}

#[inline]
fn take(cell: &AtomicU64) -> u64 {
    // A load first: most buckets are empty and a plain read keeps their lines shared.
    if cell.load(Relaxed) == 0 {
        0
    } else {
        cell.swap(0, AcqRel)
    }
}

fn drain_table(table: &PageTable, out: &mut Vec<(i32, u64)>, key: impl Fn(usize) -> i32) {
    for (octave, slot) in table.iter().enumerate() {
        let page = slot.load(Acquire);
        if page.is_null() {
            continue;
        }
        // SAFETY: a published page lives until Drop.
        let page = unsafe { &*page };
        for (sub, bucket) in page.iter().enumerate() {
            let n = take(bucket);
            if n > 0 {
                out.push((key(octave * SUB_BUCKETS + sub), n));
            }
        }
    }
}

#[inline]
fn fetch_extreme(cell: &AtomicU64, value: f64, better: impl Fn(f64, f64) -> bool) {
    let mut current = cell.load(Relaxed);
    while better(value, f64::from_bits(current)) {
        match cell.compare_exchange_weak(current, value.to_bits(), Relaxed, Relaxed) {
            Ok(_) => break,
            Err(actual) => current = actual,
        }
    }
}

fn free_table(table: &mut PageTable) {
    for slot in table.iter_mut() {
        let page = *slot.get_mut();
        if !page.is_null() {
            // SAFETY: pages come from Box::into_raw and are freed once, here.
            drop(unsafe { Box::from_raw(page) });
        }
    }
}

impl Drop for HistogramCell {
    fn drop(&mut self) {
        free_table(&mut self.positive);
        let negative = *self.negative.get_mut();
        if !negative.is_null() {
            // SAFETY: the table comes from Box::into_raw and is freed once, here.
            let mut table = unsafe { Box::from_raw(negative) };
            free_table(&mut table);
        }
    }
}

impl HistogramFn for HistogramCell {
    #[inline]
    fn record(&self, value: f64) {
        self.record_local(value);
        for other in self.attached.iter() {
            other.record(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell() -> HistogramCell {
        HistogramCell::new(Default::default(), Box::new([]))
    }

    #[test]
    fn representative_values_stay_within_the_stated_error() {
        let mut v = 2f64.powi(MIN_EXPONENT);
        while v < 2f64.powi(MAX_EXPONENT) {
            for sign in [1.0, -1.0] {
                let rep = bucket_value(bucket_key(sign * v));
                let err = ((rep - sign * v) / v).abs();
                assert!(err <= RELATIVE_ERROR, "{v}: {rep} off by {err}");
            }
            v *= 1.001;
        }
    }

    #[test]
    fn keys_order_like_values() {
        let values = [
            -1e9, -3.5, -1.0, -1e-9, 0.0, 1e-9, 0.25, 1.0, 1.01, 7.0, 1e12, 1e30,
        ];
        let keys: Vec<_> = values.iter().map(|v| bucket_key(*v)).collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]), "{keys:?}");
    }

    #[test]
    fn drain_reports_exact_count_sum_min_max() {
        let h = cell();
        for v in [1.0, 2.0, 2.0, -4.0, 0.0, 1e20] {
            h.record(v);
        }
        h.record(f64::NAN);
        let d = h.drain();
        assert_eq!(d.count, 6);
        assert_eq!(d.sum, 1.0 + 2.0 + 2.0 - 4.0 + 1e20);
        assert_eq!((d.min, d.max), (-4.0, 1e20));
        assert_eq!(d.buckets.len(), 5);
        assert_eq!(d.buckets[0], (bucket_key(-4.0), 1));
        assert_eq!(d.buckets[1], (0, 1));
        assert_eq!(d.buckets[3], (bucket_key(2.0), 2));
        assert_eq!(h.stats.non_finite_dropped.load(Relaxed), 1);
        let empty = h.drain();
        assert_eq!(empty.count, 0);
        assert!(empty.buckets.is_empty());
    }
}
