//! The gauge cell: the last value set, as `f64` bits in one atomic.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};

use metrics::GaugeFn;

use super::Stats;

/// Storage behind a `metrics::Gauge` handle.
#[derive(Debug)]
pub(crate) struct GaugeCell {
    bits: AtomicU64,
    /// Set by any update, cleared by the flusher: a gauge set to the same value is still live.
    touched: AtomicBool,
    /// Consecutive flushes with no update (flusher only); `u32::MAX` until the first update,
    /// so a gauge registered but never set (or only ever set to NaN) is never exported.
    pub(crate) idle_flushes: AtomicU32,
    stats: std::sync::Arc<Stats>,
    attached: Box<[metrics::Gauge]>,
}

impl GaugeCell {
    pub(crate) fn new(stats: std::sync::Arc<Stats>, attached: Box<[metrics::Gauge]>) -> Self {
        Self {
            bits: AtomicU64::new(0f64.to_bits()),
            touched: AtomicBool::new(false),
            idle_flushes: AtomicU32::new(u32::MAX),
            stats,
            attached,
        }
    }

    pub(crate) fn value(&self) -> f64 {
        f64::from_bits(self.bits.load(Acquire))
    }

    /// Whether it was updated since the previous [`take`](Self::take).
    pub(crate) fn has_unflushed(&self) -> bool {
        self.touched.load(Acquire)
    }

    /// Returns the value and whether it was updated since the previous call; flusher only.
    pub(crate) fn take(&self) -> (f64, bool) {
        let touched = self.touched.swap(false, AcqRel);
        (self.value(), touched)
    }

    #[inline]
    fn touch(&self) {
        // Unconditional: a load-then-store could read a stale `true` just before the flusher
        // clears it and skip the store, losing this update's flag.
        self.touched.store(true, Release);
    }

    fn adjust(&self, delta: f64) {
        if !delta.is_finite() {
            self.stats.non_finite_dropped.fetch_add(1, Relaxed);
            return;
        }
        let mut current = self.bits.load(Relaxed);
        loop {
            let next = f64::from_bits(current) + delta;
            if !next.is_finite() {
                self.stats.non_finite_dropped.fetch_add(1, Relaxed);
                return;
            }
            match self
                .bits
                .compare_exchange_weak(current, next.to_bits(), AcqRel, Relaxed)
            {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        self.touch();
    }
}

impl GaugeFn for GaugeCell {
    fn increment(&self, value: f64) {
        self.adjust(value);
        for other in self.attached.iter() {
            other.increment(value);
        }
    }

    fn decrement(&self, value: f64) {
        self.adjust(-value);
        for other in self.attached.iter() {
            other.decrement(value);
        }
    }

    #[inline]
    fn set(&self, value: f64) {
        if value.is_finite() {
            self.bits.store(value.to_bits(), Release);
            self.touch();
        } else {
            self.stats.non_finite_dropped.fetch_add(1, Relaxed);
        }
        for other in self.attached.iter() {
            other.set(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_adjust_and_reject_non_finite() {
        let stats = std::sync::Arc::new(Stats::default());
        let g = GaugeCell::new(stats.clone(), Box::new([]));
        assert_eq!(g.take(), (0.0, false));
        g.set(5.0);
        g.increment(2.5);
        g.decrement(1.0);
        assert_eq!(g.take(), (6.5, true));
        assert_eq!(g.take(), (6.5, false));
        g.set(f64::NAN);
        g.increment(f64::INFINITY);
        g.set(f64::MAX);
        g.increment(f64::MAX);
        assert_eq!(g.value(), f64::MAX);
        assert_eq!(stats.non_finite_dropped.load(Relaxed), 3);
    }
}
