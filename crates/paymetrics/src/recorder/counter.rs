//! The counter cell: a monotonic `u64` that costs one `fetch_add` for a single thread and stays
//! cheap when several threads hammer it.
//!
//! A counter starts as one atomic, `base`, and a `state` word that remembers which thread added
//! last. The thread that added last adds with a single `fetch_add` on `base` after one load of
//! `state` from the same cache line: the uncontended path is as short as a bare atomic's. When
//! another thread adds, it records the hand-off; once a counter has seen
//! [`INFLATE_AFTER_HANDOFFS`] hand-offs within one flush interval, threads are taking turns on
//! it fast enough for the shared cache line to cost more than the stripes, and it grows a small
//! table of cache-line-padded stripes, as Java's `LongAdder` does: from then on each thread adds
//! to its own stripe. The flusher sums base and stripes. A counter that many threads touch only
//! now and then (a few hand-offs per flush) never pays the stripes' memory.

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering::*};

use metrics::CounterFn;

use super::shards::thread_index;

/// Hand-offs between threads within one flush interval that make a counter grow stripes.
///
/// Two threads adding in a loop hand the line back and forth on nearly every add, so they
/// reach this within microseconds; a counter that request handlers on several workers bump
/// a few times a second hands off a few dozen times per 10 s flush and never does.
pub(crate) const INFLATE_AFTER_HANDOFFS: u32 = 1024;

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

/// This thread's tag in [`CounterCell::state`]: odd, so it never equals a stripes pointer
/// (aligned) or null; it carries no provenance and is never dereferenced.
#[inline]
fn thread_tag() -> *mut Stripes {
    std::ptr::without_provenance_mut(thread_index().wrapping_shl(1) | 1)
}

/// Whether `state` is a tag (or null) rather than the stripes.
#[inline]
fn is_unstriped(state: *mut Stripes) -> bool {
    state.is_null() || state.addr() & 1 == 1
}

/// Storage behind a `metrics::Counter` handle.
#[derive(Debug)]
pub(crate) struct CounterCell {
    base: AtomicU64,
    /// Null before the first add; then the tag of the thread that added last (odd); once
    /// contended, the stripes (an aligned pointer, published once, freed in `Drop`).
    state: AtomicPtr<Stripes>,
    /// Total seen by the previous flush (flusher only).
    flushed: AtomicU64,
    /// Consecutive flushes with no change (flusher only).
    pub(crate) idle_flushes: AtomicU32,
    /// Hand-offs between threads since the previous flush (reset by the flusher).
    handoffs: AtomicU32,
    /// Handles from attached recorders, registered once with this series.
    attached: Box<[metrics::Counter]>,
}

impl CounterCell {
    pub(crate) fn new(attached: Box<[metrics::Counter]>) -> Self {
        Self {
            base: AtomicU64::new(0),
            state: AtomicPtr::new(std::ptr::null_mut()),
            flushed: AtomicU64::new(0),
            idle_flushes: AtomicU32::new(0),
            handoffs: AtomicU32::new(0),
            attached,
        }
    }

    /// The stripes, if the counter has grown them.
    #[inline]
    fn stripes(&self) -> Option<&Stripes> {
        let state = self.state.load(Acquire);
        // SAFETY: a non-tag state is the stripes pointer, published once by `inflate` with
        // Release (read here with Acquire); they live as long as the cell (freed in Drop).
        (!is_unstriped(state)).then(|| unsafe { &*state })
    }

    /// The cumulative total since the series was registered.
    pub(crate) fn total(&self) -> u64 {
        let mut total = self.base.load(Acquire);
        if let Some(stripes) = self.stripes() {
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

    /// Returns `(total, delta since the previous call)`; flusher only. Starts a new interval
    /// for the hand-off count.
    pub(crate) fn take_delta(&self) -> (u64, u64) {
        let total = self.total();
        let previous = self.flushed.swap(total, AcqRel);
        if self.handoffs.load(Relaxed) != 0 {
            self.handoffs.store(0, Relaxed);
        }
        (total, total.wrapping_sub(previous))
    }

    /// Whether the counter has grown stripes.
    #[cfg(test)]
    pub(crate) fn is_striped(&self) -> bool {
        self.stripes().is_some()
    }

    #[cold]
    fn inflate(&self) -> &Stripes {
        let fresh = Box::into_raw(Box::new(Stripes {
            cells: (0..stripe_count()).map(|_| Stripe::default()).collect(),
        }));
        let mut current = self.state.load(Acquire);
        loop {
            if !is_unstriped(current) {
                // SAFETY: `fresh` was never shared; `current` was published by another thread
                // and lives until Drop.
                unsafe {
                    drop(Box::from_raw(fresh));
                    return &*current;
                }
            }
            match self
                .state
                .compare_exchange_weak(current, fresh, AcqRel, Acquire)
            {
                // SAFETY: we just published our own allocation; it lives until Drop.
                Ok(_) => return unsafe { &*fresh },
                Err(actual) => current = actual,
            }
        }
    }

    #[inline]
    fn add(&self, value: u64) {
        let state = self.state.load(Acquire);
        if state == thread_tag() {
            self.base.fetch_add(value, Relaxed);
        } else {
            self.add_other(state, value);
        }
    }

    /// Adds when this thread was not the last to add: on the stripes once they exist,
    /// otherwise on the base, recording the hand-off.
    #[inline(never)]
    fn add_other(&self, state: *mut Stripes, value: u64) {
        if !is_unstriped(state) {
            // SAFETY: a non-tag state is the published stripes, alive as long as the cell.
            let stripes = unsafe { &*state };
            let index = thread_index() & (stripes.cells.len() - 1);
            stripes.cells[index].0.fetch_add(value, Relaxed);
            return;
        }
        self.base.fetch_add(value, Relaxed);
        if state.is_null() {
            // The first add: nobody to hand off from. Losing this race only means another
            // thread's tag stays, and this thread's next add records a hand-off.
            let _ = self
                .state
                .compare_exchange(state, thread_tag(), Relaxed, Relaxed);
        } else if self.handoffs.fetch_add(1, Relaxed) + 1 < INFLATE_AFTER_HANDOFFS {
            let _ = self
                .state
                .compare_exchange(state, thread_tag(), Relaxed, Relaxed);
        } else {
            // This add is counted on the base already; later adds go to the stripes.
            self.inflate();
        }
    }
}

impl Drop for CounterCell {
    fn drop(&mut self) {
        let state = *self.state.get_mut();
        if !is_unstriped(state) {
            // SAFETY: we own the cell exclusively; a non-tag state came from Box::into_raw.
            drop(unsafe { Box::from_raw(state) });
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

    /// Runs `rounds` adds of 1 on `c`, alternating strictly between two threads: every add
    /// after the first is a hand-off.
    fn take_turns(c: &Arc<CounterCell>, rounds: usize) {
        let (to_a, from_b) = std::sync::mpsc::channel::<()>();
        let (to_b, from_a) = std::sync::mpsc::channel::<()>();
        let b = {
            let c = Arc::clone(c);
            std::thread::spawn(move || {
                while from_a.recv().is_ok() {
                    c.increment(1);
                    if to_a.send(()).is_err() {
                        break;
                    }
                }
            })
        };
        for _ in 0..rounds / 2 {
            c.increment(1);
            to_b.send(()).unwrap();
            from_b.recv().unwrap();
        }
        drop(to_b);
        b.join().unwrap();
    }

    #[test]
    fn one_thread_never_stripes() {
        let c = CounterCell::new(Box::new([]));
        for _ in 0..10 * INFLATE_AFTER_HANDOFFS {
            c.increment(1);
        }
        assert!(!c.is_striped());
        assert_eq!(
            c.take_delta(),
            (
                u64::from(10 * INFLATE_AFTER_HANDOFFS),
                u64::from(10 * INFLATE_AFTER_HANDOFFS)
            )
        );
    }

    #[test]
    fn threads_taking_turns_grow_stripes_and_lose_nothing() {
        let c = Arc::new(CounterCell::new(Box::new([])));
        let rounds = 2 * INFLATE_AFTER_HANDOFFS as usize + 2;
        take_turns(&c, rounds);
        assert!(c.is_striped());
        // Both threads keep adding after the switch, on their stripes.
        take_turns(&c, 100);
        assert_eq!(c.total(), rounds as u64 + 100);
    }

    #[test]
    fn hand_offs_count_per_flush_interval() {
        let c = Arc::new(CounterCell::new(Box::new([])));
        let rounds = INFLATE_AFTER_HANDOFFS as usize / 2;
        for flush in 1..=4 {
            take_turns(&c, rounds);
            assert_eq!(c.take_delta(), ((flush * rounds) as u64, rounds as u64));
        }
        assert!(
            !c.is_striped(),
            "a few hand-offs per interval never add up to stripes"
        );
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
