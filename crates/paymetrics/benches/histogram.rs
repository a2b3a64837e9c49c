//! `histogram.record` through a `metrics::Histogram` handle: the current recorder's cell against
//! the cell as it was before exact integers (kept below, verbatim but for its stats type, as
//! the same-run baseline). See `benches/README.md` (Histograms) for the command and figures.
//!
//! With `PM_HIST_CALLGRIND=<before|after>:<n>` the binary records `n` samples into one cell and
//! exits, for `valgrind --tool=callgrind` instruction counts (run with `n` and `0`; the
//! difference over `n` is instructions per record).

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group};

/// The cell's record path before this change (`recorder/histogram.rs` at the parent commit).
#[allow(
    dead_code,
    missing_docs,
    missing_debug_implementations,
    unreachable_pub
)]
mod before {
    use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering::*};

    use metrics::HistogramFn;

    #[derive(Debug, Default)]
    pub struct Stats {
        pub non_finite_dropped: AtomicU64,
    }

    const SUB_BUCKET_BITS: u32 = 6;
    const SUB_BUCKETS: usize = 1 << SUB_BUCKET_BITS;
    /// Smallest binary exponent kept apart from zero: `2^-20`.
    const MIN_EXPONENT: i32 = -20;
    /// One past the largest binary exponent kept: values from `2^44` on share the top bucket.
    const MAX_EXPONENT: i32 = 44;
    const OCTAVES: usize = (MAX_EXPONENT - MIN_EXPONENT) as usize;
    /// Magnitude buckets per sign.
    const MAGNITUDE_BUCKETS: usize = OCTAVES * SUB_BUCKETS;
    /// The largest relative error of a bucket's representative value, within the kept range.
    const RELATIVE_ERROR: f64 = 1.0 / (2 * SUB_BUCKETS) as f64;

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

    #[allow(dead_code)]
    fn bucket_key(value: f64) -> i32 {
        match magnitude_bucket(value) {
            None => 0,
            Some(m) if value > 0.0 => m as i32 + 1,
            Some(m) => -(m as i32 + 1),
        }
    }

    /// The value a bucket key stands for: the midpoint of its bucket.
    fn bucket_value(key: i32) -> f64 {
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
    struct Drained {
        count: u64,
        sum: f64,
        min: f64,
        max: f64,
        /// `(bucket key, count)`, ascending by key, zero counts left out.
        buckets: Vec<(i32, u64)>,
    }

    /// Storage behind a `metrics::Histogram` handle.
    #[derive(Debug)]
    pub struct HistogramCell {
        positive: Box<PageTable>,
        negative: AtomicPtr<PageTable>,
        zero: AtomicU64,
        sum_bits: AtomicU64,
        min_bits: AtomicU64,
        max_bits: AtomicU64,
        /// Consecutive flushes with no sample (flusher only).
        idle_flushes: AtomicU32,
        stats: Stats,
        attached: Box<[metrics::Histogram]>,
    }

    impl HistogramCell {
        pub fn new(stats: Stats, attached: Box<[metrics::Histogram]>) -> Self {
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
        fn has_unflushed(&self) -> bool {
            self.min_bits.load(Acquire) != f64::INFINITY.to_bits()
        }

        /// Takes every sample recorded since the previous drain; flusher only.
        ///
        /// A sample racing with the drain may have its bucket taken now and its sum next time;
        /// totals over consecutive drains stay exact.
        fn drain(&self) -> Drained {
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
}

/// Latency-like values (ms, fractional) and small integers, cycled per call.
const LATENCIES: [f64; 8] = [0.8, 1.7, 3.25, 12.5, 48.0001, 101.3, 250.75, 1900.2];
const INTEGERS: [f64; 8] = [0.0, 1.0, 2.0, 3.0, 40.0, 512.0, 999.0, 1024.0];

fn after_handle() -> (paymetrics::Paymetrics, metrics::Histogram) {
    let metrics = paymetrics::PaymetricsBuilder::new()
        .flush_interval(std::time::Duration::from_secs(3600))
        .build()
        .expect("paymetrics starts");
    let h = metrics::with_local_recorder(metrics.recorder(), || metrics::histogram!("bench.h"));
    (metrics, h)
}

fn before_handle() -> metrics::Histogram {
    metrics::Histogram::from_arc(Arc::new(before::HistogramCell::new(
        before::Stats::default(),
        Box::new([]),
    )))
}

fn record(h: &metrics::Histogram, values: &[f64; 8], i: &mut usize) {
    *i = (*i + 1) & 7;
    h.record(black_box(values[*i]));
}

fn benches(c: &mut Criterion) {
    let (_metrics, after) = after_handle();
    let before = before_handle();
    for (label, values) in [("latency", &LATENCIES), ("integer", &INTEGERS)] {
        let mut g = c.benchmark_group(format!("histogram_record_{label}"));
        let mut i = 0;
        g.bench_function("before", |b| b.iter(|| record(&before, values, &mut i)));
        g.bench_function("after", |b| b.iter(|| record(&after, values, &mut i)));
        g.finish();
    }
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}

fn main() {
    if let Ok(spec) = std::env::var("PM_HIST_CALLGRIND") {
        let (which, n) = spec.split_once(':').expect("before|after:<n>");
        let n: usize = n.parse().expect("a count");
        let values = if which.ends_with("int") {
            &INTEGERS
        } else {
            &LATENCIES
        };
        let (_metrics, after) = after_handle();
        let h = if which.starts_with("before") {
            before_handle()
        } else {
            after
        };
        let mut i = 0;
        for _ in 0..n {
            record(&h, values, &mut i);
        }
        return;
    }
    group();
    Criterion::default().configure_from_args().final_summary();
}
