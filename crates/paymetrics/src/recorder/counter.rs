//! The counter cell: a monotonic `u64` that stays cheap when several threads hammer it.
//!
//! A counter starts as one atomic. The first time two threads collide on it (a failed
//! compare-and-swap), it grows a small table of cache-line-padded stripes, as Java's
//! `LongAdder` does, and from then on each thread adds to its own stripe. The flusher sums
//! base and stripes. Uncontended counters never pay for the stripes.

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};

use metrics::CounterFn;

/// One stripe per cache line, so two threads never share a line.
#[repr(align(128))]
#[derive(Debug, Default)]
struct Stripe(AtomicU64);

#[derive(Debug)]
struct Stripes {
    cells: Box<[Stripe]>,
}

fn stripe_count() -> usize {
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    (cores * 2).next_power_of_two().clamp(4, 64)
}

fn thread_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        // Round-robin assignment: the first threads that touch any counter land on distinct
        // stripes, which hashing a thread id would not guarantee.
        static INDEX: usize = NEXT.fetch_add(1, Relaxed);
    }
    INDEX.with(|i| *i)
}

/// Storage behind a `metrics::Counter` handle.
#[derive(Debug)]
pub(crate) struct CounterCell {
    base: AtomicU64,
    stripes: AtomicPtr<Stripes>,
    /// Total seen by the previous flush (flusher only).
    flushed: AtomicU64,
    /// Consecutive flushes with no change (flusher only).
    pub(crate) idle_flushes: AtomicU32,
    /// Handles from attached recorders, registered once with this series.
    attached: Box<[metrics::Counter]>,
}

impl CounterCell {
    pub(crate) fn new(attached: Box<[metrics::Counter]>) -> Self {
        Self {
            base: AtomicU64::new(0),
            stripes: AtomicPtr::new(std::ptr::null_mut()),
            flushed: AtomicU64::new(0),
            idle_flushes: AtomicU32::new(0),
            attached,
        }
    }

    /// The cumulative total since the series was registered.
    pub(crate) fn total(&self) -> u64 {
        let mut total = self.base.load(Acquire);
        let stripes = self.stripes.load(Acquire);
        if !stripes.is_null() {
            // SAFETY: once published, the stripes live as long as the cell (freed in Drop).
            let stripes = unsafe { &*stripes };
            for s in stripes.cells.iter() {
                total = total.wrapping_add(s.0.load(Acquire));
            }
        }
        total
    }

    /// Whether increments arrived since the previous [`take_delta`](Self::take_delta).
    pub(crate) fn has_unflushed(&self) -> bool {
        self.total() != self.flushed.load(Acquire)
    }

    /// Returns `(total, delta since the previous call)`; flusher only.
    pub(crate) fn take_delta(&self) -> (u64, u64) {
        let total = self.total();
        let previous = self.flushed.swap(total, AcqRel);
        (total, total.wrapping_sub(previous))
    }

    #[cold]
    fn inflate(&self) -> &Stripes {
        let fresh = Box::into_raw(Box::new(Stripes {
            cells: (0..stripe_count()).map(|_| Stripe::default()).collect(),
        }));
        match self
            .stripes
            .compare_exchange(std::ptr::null_mut(), fresh, AcqRel, Acquire)
        {
            // SAFETY: we just published our own allocation; it lives until Drop.
            Ok(_) => unsafe { &*fresh },
            Err(existing) => {
                // SAFETY: `fresh` was never shared; `existing` was published by another thread.
                unsafe {
                    drop(Box::from_raw(fresh));
                    &*existing
                }
            }
        }
    }

    #[inline]
    fn add(&self, value: u64) {
        let stripes = self.stripes.load(Acquire);
        let stripes = if stripes.is_null() {
            let current = self.base.load(Relaxed);
            if self
                .base
                .compare_exchange_weak(current, current.wrapping_add(value), Relaxed, Relaxed)
                .is_ok()
            {
                return;
            }
            self.inflate()
        } else {
            // SAFETY: published stripes live as long as the cell.
            unsafe { &*stripes }
        };
        let index = thread_stripe() & (stripes.cells.len() - 1);
        stripes.cells[index].0.fetch_add(value, Relaxed);
    }
}

impl Drop for CounterCell {
    fn drop(&mut self) {
        let stripes = *self.stripes.get_mut();
        if !stripes.is_null() {
            // SAFETY: we own the cell exclusively; the pointer came from Box::into_raw.
            drop(unsafe { Box::from_raw(stripes) });
        }
    }
}

impl CounterFn for CounterCell {
    #[inline]
    fn increment(&self, value: u64) {
        self.add(value);
        for other in self.attached.iter() {
            other.increment(value);
        }
    }

    /// Raises the total to `value` if it is higher; a counter never goes down.
    fn absolute(&self, value: u64) {
        // Raise the base by the shortfall with a CAS on the base value the total was read with:
        // two concurrent calls cannot both add it (the loser re-reads and finds nothing to add).
        loop {
            let base = self.base.load(Acquire);
            let total = self.total();
            if value <= total {
                break;
            }
            let raised = base.wrapping_add(value - total);
            if self
                .base
                .compare_exchange(base, raised, AcqRel, Acquire)
                .is_ok()
            {
                break;
            }
        }
        for other in self.attached.iter() {
            other.absolute(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn deltas_follow_increments() {
        let c = CounterCell::new(Box::new([]));
        c.increment(3);
        c.increment(4);
        assert_eq!(c.take_delta(), (7, 7));
        assert_eq!(c.take_delta(), (7, 0));
        c.absolute(10);
        assert_eq!(c.take_delta(), (10, 3));
        c.absolute(2);
        assert_eq!(c.take_delta(), (10, 0));
    }

    #[test]
    fn concurrent_absolutes_do_not_overshoot() {
        for _ in 0..200 {
            let c = Arc::new(CounterCell::new(Box::new([])));
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let c = Arc::clone(&c);
                    std::thread::spawn(move || c.absolute(1_000))
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(c.total(), 1_000);
        }
    }

    #[test]
    fn contended_increments_are_all_counted() {
        let c = Arc::new(CounterCell::new(Box::new([])));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        c.increment(1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.total(), 400_000);
    }
}
