//! The histogram cell: log-linear atomic buckets in bounded memory, never a buffer of raw values.
//!
//! A value's bucket comes straight from its `f64` bits: the binary exponent picks an octave and
//! the top [`SUB_BUCKET_BITS`] bits of the mantissa pick one of 64 equal slices of it. Each
//! bucket's midpoint is within a relative error of 1/128 (0.79 %) of any value in it, for
//! magnitudes in `[2^-20, 2^44)` (about `1e-6` to `1.7e13`). Smaller magnitudes count as zero;
//! larger ones land in the top bucket (and min, max and sum stay exact). Octaves are allocated as
//! 64-bucket pages on first use, so a latency histogram spanning 1 ms to 2 s touches 11 pages
//! (5.6 KiB), whatever its rate.
//!
//! Integers `k` with `1 <= |k| <=` [`EXACT_INTEGER_BOUND`] (1,024) are counted apart, one counter per
//! integer (in 64-integer pages, allocated on first use): retry counts, delivery counts and
//! small sizes come back exactly. Their keys sit next to the log-linear bucket holding them, so
//! keys still order (nearly) like values.
//!
//! What goes on the wire (exact sums, min and max) is computed from a drain in
//! [`crate::snapshot::HistogramValue::wire_values`], off the hot path.

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
/// The largest relative error of a bucket's midpoint, within the kept range: what in-process
/// quantiles ([`crate::snapshot::HistogramValue::quantile`]) are within.
pub const RELATIVE_ERROR: f64 = 1.0 / (2 * SUB_BUCKETS) as f64;
/// The largest relative error of a value sent on the wire for a non-integer sample: one bucket
/// width (1/64), in which the values of one flush move so that they add up to the exact sum.
pub(crate) const WIRE_RELATIVE_ERROR: f64 = 1.0 / SUB_BUCKETS as f64;
/// Integers up to this magnitude are counted exactly, each apart, and sent as themselves.
pub(crate) const EXACT_INTEGER_BOUND: u32 = 1024;
const INT_PAGES: usize = EXACT_INTEGER_BOUND as usize / SUB_BUCKETS;

/// Key slots per magnitude bucket: an integer key is `slot * (m + 1) + offset` (the integer's
/// distance from the bucket's lower bound, below 8 for integers up to 1,024) and the bucket's
/// own key `slot * (m + 1) + LOG_SLOT`, so a bucket's integers order before its other values.
const KEY_SLOTS: i32 = 16;
const LOG_SLOT: i32 = KEY_SLOTS - 1;

type Page = [AtomicU64; SUB_BUCKETS];
type PageTable = [AtomicPtr<Page>; OCTAVES];
/// Pages of exact integers: `INT_PAGES` for `1..=1024`, then as many for `-1..=-1024`.
type IntTable = [AtomicPtr<Page>; 2 * INT_PAGES];

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

/// The lower bound of magnitude bucket `m` (exact: a power of two times `1 + sub/64`).
fn magnitude_low(m: usize) -> f64 {
    let octave = (m / SUB_BUCKETS) as i32 + MIN_EXPONENT;
    let sub = (m % SUB_BUCKETS) as f64;
    2f64.powi(octave) * (1.0 + sub / SUB_BUCKETS as f64)
}

/// One past the largest magnitude of bucket `m`; the top bucket has no upper bound.
fn magnitude_high(m: usize) -> f64 {
    if m + 1 >= MAGNITUDE_BUCKETS {
        f64::INFINITY
    } else {
        magnitude_low(m + 1)
    }
}

/// `|value|` when it is an integer in `1..=EXACT_INTEGER_BOUND`.
#[inline]
fn small_integer(value: f64) -> Option<u64> {
    let bits = value.to_bits();
    let exponent = ((bits >> 52) & 0x7ff).wrapping_sub(1023);
    // Exponents 0..=10 are magnitudes 1 to 2047; the fraction's low `52 - exponent` bits must
    // be zero for an integer.
    if exponent > 10 || bits << (12 + exponent) != 0 {
        return None;
    }
    let k = ((bits & ((1 << 52) - 1)) | (1 << 52)) >> (52 - exponent);
    (k <= u64::from(EXACT_INTEGER_BOUND)).then_some(k)
}

/// The unsigned key of the exact integer `k` (`1..=EXACT_INTEGER_BOUND`).
fn integer_key(k: u32) -> i32 {
    let m = magnitude_bucket(f64::from(k)).expect("integers from 1 have a bucket");
    let offset = f64::from(k) - magnitude_low(m);
    (m as i32 + 1) * KEY_SLOTS + offset as i32
}

/// Signed bucket key, ordered like the values (within a bucket, its exact integers first):
/// 0 is zero, a positive key a positive value, its negation the same magnitude negative.
/// The cell computes the same keys inline; this is the reference its tests compare with.
#[cfg(test)]
pub(crate) fn bucket_key(value: f64) -> i32 {
    let int = value as i64;
    if int as f64 == value && int != 0 && int.unsigned_abs() <= u64::from(EXACT_INTEGER_BOUND) {
        let key = integer_key(int.unsigned_abs() as u32);
        return if int > 0 { key } else { -key };
    }
    match magnitude_bucket(value) {
        None => 0,
        Some(m) => {
            let key = (m as i32 + 1) * KEY_SLOTS + LOG_SLOT;
            if value > 0.0 { key } else { -key }
        }
    }
}

/// Whether a key stands for one exact value (zero or an exact integer).
pub(crate) fn is_exact(key: i32) -> bool {
    key == 0 || key.unsigned_abs() as i32 % KEY_SLOTS != LOG_SLOT
}

/// The signed range `[low, high]` of the values a key holds: one point for exact integers,
/// magnitudes below `2^-20` for zero.
pub(crate) fn bucket_bounds(key: i32) -> (f64, f64) {
    if key == 0 {
        let tiny = 2f64.powi(MIN_EXPONENT);
        return (-tiny, tiny);
    }
    let unsigned = key.unsigned_abs() as i32;
    let m = (unsigned / KEY_SLOTS - 1) as usize;
    let slot = unsigned % KEY_SLOTS;
    let (low, high) = if slot == LOG_SLOT {
        (magnitude_low(m), magnitude_high(m))
    } else {
        let k = magnitude_low(m) + f64::from(slot);
        (k, k)
    };
    if key > 0 { (low, high) } else { (-high, -low) }
}

/// The value a bucket key stands for: the exact integer, 0, or the midpoint of its bucket (the
/// top bucket, unbounded, by its lower bound).
pub(crate) fn bucket_value(key: i32) -> f64 {
    let (low, high) = bucket_bounds(key);
    if key == 0 || low == high {
        return if key == 0 { 0.0 } else { low };
    }
    if low.is_infinite() {
        return high;
    }
    if high.is_infinite() {
        return low;
    }
    low + (high - low) / 2.0
}

fn new_page_table() -> Box<PageTable> {
    Box::new(std::array::from_fn(
        |_| AtomicPtr::new(std::ptr::null_mut()),
    ))
}

fn new_int_table() -> Box<IntTable> {
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
    /// Exact integers, allocated on the first one.
    integers: AtomicPtr<IntTable>,
    zero: AtomicU64,
    sum_bits: AtomicU64,
    min_bits: AtomicU64,
    max_bits: AtomicU64,
    /// Consecutive flushes with no sample (flusher only).
    pub(crate) idle_flushes: AtomicU32,
    stats: std::sync::Arc<Stats>,
    attached: Box<[metrics::Histogram]>,
}

/// The table behind `slot`, published on first use by whichever thread gets there first.
#[cold]
fn published<T>(slot: &AtomicPtr<T>, make: fn() -> Box<T>) -> &T {
    let current = slot.load(Acquire);
    if !current.is_null() {
        // SAFETY: a published table lives until the cell's Drop.
        return unsafe { &*current };
    }
    let fresh = Box::into_raw(make());
    match slot.compare_exchange(std::ptr::null_mut(), fresh, AcqRel, Acquire) {
        // SAFETY: we just published our own allocation.
        Ok(_) => unsafe { &*fresh },
        Err(existing) => {
            // SAFETY: `fresh` was never shared; `existing` lives until the cell's Drop.
            unsafe {
                drop(Box::from_raw(fresh));
                &*existing
            }
        }
    }
}

impl HistogramCell {
    pub(crate) fn new(stats: std::sync::Arc<Stats>, attached: Box<[metrics::Histogram]>) -> Self {
        Self {
            positive: new_page_table(),
            negative: AtomicPtr::new(std::ptr::null_mut()),
            integers: AtomicPtr::new(std::ptr::null_mut()),
            zero: AtomicU64::new(0),
            sum_bits: AtomicU64::new(0f64.to_bits()),
            min_bits: AtomicU64::new(f64::INFINITY.to_bits()),
            max_bits: AtomicU64::new(f64::NEG_INFINITY.to_bits()),
            idle_flushes: AtomicU32::new(0),
            stats,
            attached,
        }
    }

    #[inline]
    fn integer_table(&self) -> &IntTable {
        let current = self.integers.load(Acquire);
        if !current.is_null() {
            // SAFETY: a published table lives until Drop.
            return unsafe { &*current };
        }
        published(&self.integers, new_int_table)
    }

    #[inline]
    fn page(table: &[AtomicPtr<Page>], index: usize) -> &Page {
        let ptr = table[index].load(Acquire);
        if !ptr.is_null() {
            // SAFETY: a published page lives until Drop.
            return unsafe { &*ptr };
        }
        published(&table[index], || {
            Box::new(std::array::from_fn(|_| AtomicU64::new(0)))
        })
    }

    #[inline]
    fn record_local(&self, value: f64) {
        if !value.is_finite() {
            self.stats.non_finite_dropped.fetch_add(1, Relaxed);
            return;
        }
        // Small integers first, from the bits: exponent 0 to 10 and no fraction bits left.
        if let Some(k) = small_integer(value) {
            let i = k as usize - 1;
            let page = if value > 0.0 { 0 } else { INT_PAGES } + i / SUB_BUCKETS;
            Self::page(self.integer_table(), page)[i % SUB_BUCKETS].fetch_add(1, Relaxed);
        } else {
            match magnitude_bucket(value) {
                None => {
                    self.zero.fetch_add(1, Relaxed);
                }
                Some(m) => {
                    let table = if value > 0.0 {
                        &*self.positive
                    } else {
                        published(&self.negative, new_page_table)
                    };
                    Self::page(table, m / SUB_BUCKETS)[m % SUB_BUCKETS].fetch_add(1, Relaxed);
                }
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
            drain_pages(unsafe { &*negative }, &mut buckets, |m| {
                -((m as i32 + 1) * KEY_SLOTS + LOG_SLOT)
            });
        }
        let zero = take(&self.zero);
        if zero > 0 {
            buckets.push((0, zero));
        }
        drain_pages(&*self.positive, &mut buckets, |m| {
            (m as i32 + 1) * KEY_SLOTS + LOG_SLOT
        });
        let integers = self.integers.load(Acquire);
        if !integers.is_null() {
            // SAFETY: a published table lives until Drop.
            drain_pages(unsafe { &*integers }, &mut buckets, |i| {
                let key = integer_key((i % EXACT_INTEGER_BOUND as usize) as u32 + 1);
                if i < EXACT_INTEGER_BOUND as usize {
                    key
                } else {
                    -key
                }
            });
        }
        // Tens of entries, once per flush: a sort is simpler than merging four ordered runs.
        buckets.sort_unstable_by_key(|&(key, _)| key);
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

/// Takes every non-zero counter of `table`, keyed by `key(page * 64 + slot)`.
fn drain_pages(table: &[AtomicPtr<Page>], out: &mut Vec<(i32, u64)>, key: impl Fn(usize) -> i32) {
    for (index, slot) in table.iter().enumerate() {
        let page = slot.load(Acquire);
        if page.is_null() {
            continue;
        }
        // SAFETY: a published page lives until Drop.
        let page = unsafe { &*page };
        for (sub, bucket) in page.iter().enumerate() {
            let n = take(bucket);
            if n > 0 {
                out.push((key(index * SUB_BUCKETS + sub), n));
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

fn free_pages(table: &mut [AtomicPtr<Page>]) {
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
        free_pages(&mut *self.positive);
        let negative = *self.negative.get_mut();
        if !negative.is_null() {
            // SAFETY: the table comes from Box::into_raw and is freed once, here.
            let mut table = unsafe { Box::from_raw(negative) };
            free_pages(&mut *table);
        }
        let integers = *self.integers.get_mut();
        if !integers.is_null() {
            // SAFETY: the table comes from Box::into_raw and is freed once, here.
            let mut table = unsafe { Box::from_raw(integers) };
            free_pages(&mut *table);
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
    fn integers_up_to_the_bound_are_exact_and_apart() {
        let h = cell();
        for k in 1..=i64::from(EXACT_INTEGER_BOUND) {
            for v in [k as f64, -(k as f64)] {
                let key = bucket_key(v);
                assert!(is_exact(key), "{v}");
                assert_eq!(bucket_value(key), v);
                assert_eq!(bucket_bounds(key), (v, v));
                h.record(v);
            }
        }
        // Just past the bound, and a fraction, go to log-linear buckets.
        for v in [1025.0, 1.5, 127.25] {
            assert!(!is_exact(bucket_key(v)), "{v}");
        }
        assert!(is_exact(bucket_key(0.0)));
        let d = h.drain();
        assert_eq!(d.buckets.len(), 2 * EXACT_INTEGER_BOUND as usize);
        assert!(d.buckets.iter().all(|&(_, n)| n == 1));
        let values: Vec<f64> = d.buckets.iter().map(|&(k, _)| bucket_value(k)).collect();
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "drained in value order"
        );
        assert_eq!(d.sum, 0.0);
    }

    #[test]
    fn every_value_lies_within_its_bucket_bounds() {
        let mut v = 2f64.powi(MIN_EXPONENT);
        while v < 2f64.powi(MAX_EXPONENT + 2) {
            for x in [v, -v, v.round(), -v.round()] {
                let (low, high) = bucket_bounds(bucket_key(x));
                assert!(low <= x && x <= high, "{x} not in [{low}, {high}]");
                if x != 0.0 && high.is_finite() && low.is_finite() {
                    assert!((high - low) <= x.abs() * WIRE_RELATIVE_ERROR, "{x}");
                }
            }
            v *= 1.0007;
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
