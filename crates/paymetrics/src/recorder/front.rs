//! Front caches in front of the registry: the macro path that writes no shared cache line.
//!
//! Every `counter!`/`gauge!`/`histogram!` call asks the recorder for a handle. Through the
//! registry alone that takes a shard read lock, whose reader count is one cache line written by
//! every thread, and clones the series' `Arc`, whose count is another; two threads on the same
//! labelled macro then spend their time handing those two lines back and forth. Here each
//! thread first looks in its own shard of a small cache (picked by [`thread_index`]), locked
//! with a `try_lock` on a line no other thread touches, and hands out a clone of a per-shard
//! wrapper ([`Local`]) around the series' cell, so the reference count it writes is private too.
//!
//! A slot is filled only after a registry hit (a series seen again), and a full slot is only
//! replaced by a key that missed in it twice in a row: a stream of one-off keys, or more hot
//! keys than slots, leaves the cached ones alone instead of allocating a wrapper per call.
//!
//! Expiry: a wrapper holds a reference to its cell, so a cached series never looks unused.
//! The flusher first drops the entries whose series are due to expire ([`FrontCache::purge`]),
//! under each shard's lock; a handle the application still holds keeps its wrapper, and so its
//! cell, as a handle from the registry would.

use std::sync::{Arc, Mutex, PoisonError};

use metrics::{CounterFn, GaugeFn, HistogramFn, Key};

use super::{CounterCell, GaugeCell, HistogramCell, SeriesKey, shards::thread_index};

/// Slots per shard (direct-mapped by key hash).
const SLOTS: usize = 64;

/// A series' cell as handed out from one shard: its reference count is that shard's alone.
///
/// Aligned to a cache line pair so two shards' wrappers never share a line.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Local<C>(Arc<C>);

impl CounterFn for Local<CounterCell> {
    #[inline]
    fn increment(&self, value: u64) {
        self.0.increment(value);
    }

    fn absolute(&self, value: u64) {
        self.0.absolute(value);
    }
}

impl GaugeFn for Local<GaugeCell> {
    fn increment(&self, value: f64) {
        self.0.increment(value);
    }

    fn decrement(&self, value: f64) {
        self.0.decrement(value);
    }

    #[inline]
    fn set(&self, value: f64) {
        self.0.set(value);
    }
}

impl HistogramFn for Local<HistogramCell> {
    #[inline]
    fn record(&self, value: f64) {
        self.0.record(value);
    }

    fn record_many(&self, value: f64, count: usize) {
        self.0.record_many(value, count);
    }
}

/// A cached series, by metric type.
#[derive(Debug)]
pub(crate) enum Handle {
    Counter(Arc<Local<CounterCell>>),
    Gauge(Arc<Local<GaugeCell>>),
    Histogram(Arc<Local<HistogramCell>>),
}

/// A cell type the front cache can hold.
pub(crate) trait Cell: Sized {
    /// Keeps a counter, a gauge and a histogram with the same key in different slots.
    const KIND: u64;
    fn wrap(local: Arc<Local<Self>>) -> Handle;
    fn unwrap(handle: &Handle) -> Option<&Arc<Local<Self>>>;
}

impl Cell for CounterCell {
    const KIND: u64 = 0;
    fn wrap(local: Arc<Local<Self>>) -> Handle {
        Handle::Counter(local)
    }
    fn unwrap(handle: &Handle) -> Option<&Arc<Local<Self>>> {
        match handle {
            Handle::Counter(local) => Some(local),
            _ => None,
        }
    }
}

impl Cell for GaugeCell {
    const KIND: u64 = 1;
    fn wrap(local: Arc<Local<Self>>) -> Handle {
        Handle::Gauge(local)
    }
    fn unwrap(handle: &Handle) -> Option<&Arc<Local<Self>>> {
        match handle {
            Handle::Gauge(local) => Some(local),
            _ => None,
        }
    }
}

impl Cell for HistogramCell {
    const KIND: u64 = 2;
    fn wrap(local: Arc<Local<Self>>) -> Handle {
        Handle::Histogram(local)
    }
    fn unwrap(handle: &Handle) -> Option<&Arc<Local<Self>>> {
        match handle {
            Handle::Histogram(local) => Some(local),
            _ => None,
        }
    }
}

impl Handle {
    fn idle_flushes(&self) -> u32 {
        use std::sync::atomic::Ordering::Relaxed;
        match self {
            Handle::Counter(l) => l.0.idle_flushes.load(Relaxed),
            Handle::Gauge(l) => l.0.idle_flushes.load(Relaxed),
            Handle::Histogram(l) => l.0.idle_flushes.load(Relaxed),
        }
    }
}

#[derive(Debug)]
struct Entry {
    /// A clone of the key as the caller passed it: a macro's static key then matches by the
    /// address of its label array, without comparing strings.
    key: Key,
    handle: Handle,
}

#[derive(Debug, Default)]
struct Slot {
    entry: Option<Entry>,
    /// The tag of the last key that missed in this slot while it was full.
    candidate: u64,
}

/// One thread's (or a few threads') share of the cache; slots are allocated on first use.
#[derive(Debug, Default)]
struct Shard {
    slots: Vec<Slot>,
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// The recorder's front caches: one shard per thread, up to twice the cores (threads beyond
/// share shards; a shard another thread holds is skipped, never waited for).
#[derive(Debug)]
pub(crate) struct FrontCache {
    shards: Box<[Padded<Mutex<Shard>>]>,
}

impl Default for FrontCache {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        let shards = (cores * 2).next_power_of_two().clamp(2, 64);
        Self {
            shards: (0..shards).map(|_| Padded::default()).collect(),
        }
    }
}

/// The slot of a key of kind `kind`, and its tag (never 0, the empty candidate).
#[inline]
fn place(key: &Key, kind: u64) -> (usize, u64) {
    let tag = key.get_hash() ^ kind.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    ((tag >> 58) as usize & (SLOTS - 1), tag)
}

impl FrontCache {
    #[inline]
    fn shard(&self) -> &Mutex<Shard> {
        &self.shards[thread_index() & (self.shards.len() - 1)].0
    }

    /// This thread's cached handle for `key`, if its shard has one and is free.
    #[inline]
    pub(crate) fn get<C: Cell>(&self, key: &Key) -> Option<Arc<Local<C>>> {
        let shard = self.shard().try_lock().ok()?;
        let (slot, _) = place(key, C::KIND);
        let entry = shard.slots.get(slot)?.entry.as_ref()?;
        if SeriesKey::from_ref(&entry.key) == SeriesKey::from_ref(key) {
            C::unwrap(&entry.handle).cloned()
        } else {
            None
        }
    }

    /// After a registry hit for `key`: caches `cell` in this thread's shard if its slot is free
    /// or `key` missed in it twice in a row, and returns the handle to give out: the cached
    /// wrapper, or the cell itself when it was not cached.
    pub(crate) fn offer<C: Cell>(&self, key: &Key, cell: Arc<C>) -> Result<Arc<Local<C>>, Arc<C>> {
        let Ok(mut shard) = self.shard().try_lock() else {
            return Err(cell);
        };
        if shard.slots.is_empty() {
            shard.slots.resize_with(SLOTS, Slot::default);
        }
        let (index, tag) = place(key, C::KIND);
        let slot = &mut shard.slots[index];
        if slot.entry.is_some() && slot.candidate != tag {
            slot.candidate = tag;
            return Err(cell);
        }
        let local = Arc::new(Local(cell));
        slot.candidate = 0;
        let evicted = slot.entry.replace(Entry {
            key: key.clone(),
            handle: C::wrap(Arc::clone(&local)),
        });
        drop(shard);
        drop(evicted); // its key's strings freed outside the lock
        Ok(local)
    }

    /// Drops the cached entries of series idle for at least `idle_flushes` flushes, so that
    /// expiry can tell whether anything else still holds them. Flusher only.
    pub(crate) fn purge(&self, idle_flushes: u32) {
        for shard in self.shards.iter() {
            let mut shard = shard.0.lock().unwrap_or_else(PoisonError::into_inner);
            for slot in shard.slots.iter_mut() {
                if slot
                    .entry
                    .as_ref()
                    .is_some_and(|e| e.handle.idle_flushes() >= idle_flushes)
                {
                    slot.entry = None;
                }
            }
        }
    }

    /// Cached entries across all shards.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.0.lock()
                    .unwrap()
                    .slots
                    .iter()
                    .filter(|s| s.entry.is_some())
                    .count()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use metrics::Label;

    use super::*;

    /// A key whose counter slot is `slot`, other than `not`.
    fn key_in_slot(slot: usize, not: &[&Key]) -> Key {
        (0..)
            .map(|i| Key::from_parts("m", vec![Label::new("i", i.to_string())]))
            .find(|k| place(k, CounterCell::KIND).0 == slot && !not.contains(&k))
            .unwrap()
    }

    fn cell() -> Arc<CounterCell> {
        Arc::new(CounterCell::new(Box::new([])))
    }

    #[test]
    fn a_full_slot_goes_to_a_key_that_misses_twice_in_a_row() {
        let front = FrontCache::default();
        let a = key_in_slot(7, &[]);
        let b = key_in_slot(7, &[&a]);
        let c = key_in_slot(7, &[&a, &b]);
        assert!(
            front.offer(&a, cell()).is_ok(),
            "a free slot takes the first key"
        );
        assert!(front.get::<CounterCell>(&a).is_some());
        // One-off keys taking turns never displace it.
        for _ in 0..3 {
            assert!(front.offer(&b, cell()).is_err());
            assert!(front.offer(&c, cell()).is_err());
        }
        assert!(front.get::<CounterCell>(&a).is_some());
        assert!(front.get::<CounterCell>(&b).is_none());
        // A key missing twice in a row is hot: it takes the slot.
        assert!(front.offer(&b, cell()).is_err());
        assert!(front.offer(&b, cell()).is_ok());
        assert!(front.get::<CounterCell>(&b).is_some());
        assert!(front.get::<CounterCell>(&a).is_none());
        assert!(
            front.get::<GaugeCell>(&b).is_none(),
            "the type is part of the key"
        );
    }

    #[test]
    fn a_shard_held_elsewhere_is_skipped_not_waited_for() {
        let front = FrontCache::default();
        let a = key_in_slot(3, &[]);
        assert!(front.offer(&a, cell()).is_ok());
        let _held = front.shard().lock().unwrap();
        assert!(front.get::<CounterCell>(&a).is_none());
        assert!(front.offer(&a, cell()).is_err());
    }

    #[test]
    fn purge_drops_only_series_due_to_expire() {
        let front = FrontCache::default();
        let (a, b) = (key_in_slot(1, &[]), key_in_slot(2, &[]));
        let (idle, busy) = (cell(), cell());
        idle.idle_flushes
            .store(5, std::sync::atomic::Ordering::Relaxed);
        assert!(front.offer(&a, Arc::clone(&idle)).is_ok());
        assert!(front.offer(&b, Arc::clone(&busy)).is_ok());
        front.purge(5);
        assert_eq!(Arc::strong_count(&idle), 1, "its wrapper is gone");
        assert_eq!(Arc::strong_count(&busy), 2);
        assert_eq!(front.len(), 1);
    }
}
