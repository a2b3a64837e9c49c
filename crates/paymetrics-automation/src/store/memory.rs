//! The in-process [`MemoryStore`]: the default store (a fleet of one), and a shared store for
//! several instances in one process (tests, or several paymetrics in one binary).

use std::{
    collections::HashMap,
    fmt,
    future::ready,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use paymetrics::{kpi::PeriodTotals, uniques::HyperLogLog};

use super::{
    FleetRead, FleetStore, Granularity, HOUR_RETENTION, InstanceReport, MINUTE_RETENTION,
    SKETCH_RETENTION, SketchKey, StoreFuture,
};

/// A [`FleetStore`] in this process's memory, with the same model as the Redis store: one
/// entry per instance and period, replaced on each write, expired by the writers' clock. It
/// lives as long as its instances, so it never loses data: its reads are always complete.
///
/// Without [`AutomationBuilder::fleet`](crate::AutomationBuilder::fleet), each scheduler keeps
/// its own `MemoryStore` and publishes what its own process recorded. Clones share their
/// contents, so giving clones of one store to several instances in a process makes them a fleet.
///
/// ```
/// use paymetrics_automation::MemoryStore;
/// let fleet = MemoryStore::new();
/// let for_second_instance = fleet.clone(); // the same store
/// # drop(for_second_instance);
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    totals: HashMap<(Granularity, u64), Entries<PeriodTotals>>,
    sketches: HashMap<SketchKey, Entries<Vec<u8>>>,
    locks: HashMap<String, (String, SystemTime)>,
}

struct Entries<T> {
    by_instance: HashMap<String, T>,
    expires_at: SystemTime,
}

impl<T> Entries<T> {
    fn put(&mut self, instance: &str, value: T, expires_at: SystemTime) {
        self.by_instance.insert(instance.to_owned(), value);
        self.expires_at = self.expires_at.max(expires_at);
    }
}

impl<T> Default for Entries<T> {
    fn default() -> Self {
        Self {
            by_instance: HashMap::new(),
            expires_at: SystemTime::UNIX_EPOCH,
        }
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("MemoryStore")
            .field("periods", &state.totals.len())
            .field("sketches", &state.sketches.len())
            .field("locks", &state.locks.len())
            .finish()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl FleetStore for MemoryStore {
    fn write<'a>(&'a self, instance: &'a str, report: &'a InstanceReport) -> StoreFuture<'a, ()> {
        let now = report.taken_at;
        let mut state = self.lock();
        for (granularity, periods, retention) in [
            (Granularity::Minute, &report.minutes, MINUTE_RETENTION),
            (Granularity::Hour, &report.hours, HOUR_RETENTION),
        ] {
            for (start, totals) in periods {
                state.totals.entry((granularity, *start)).or_default().put(
                    instance,
                    *totals,
                    now + retention,
                );
            }
        }
        for (key, registers) in &report.sketches {
            state.sketches.entry(*key).or_default().put(
                instance,
                registers.clone(),
                now + SKETCH_RETENTION,
            );
        }
        state.totals.retain(|_, e| e.expires_at > now);
        state.sketches.retain(|_, e| e.expires_at > now);
        Box::pin(ready(Ok(())))
    }

    fn totals<'a>(
        &'a self,
        granularity: Granularity,
        starts: &'a [u64],
        _now: SystemTime,
    ) -> StoreFuture<'a, FleetRead<PeriodTotals>> {
        let state = self.lock();
        let mut sum = PeriodTotals::default();
        for start in starts {
            if let Some(entries) = state.totals.get(&(granularity, *start)) {
                for totals in entries.by_instance.values() {
                    sum.add(totals);
                }
            }
        }
        Box::pin(ready(Ok(FleetRead::new(sum, true))))
    }

    fn sketch(
        &self,
        key: SketchKey,
        _now: SystemTime,
    ) -> StoreFuture<'_, FleetRead<Option<HyperLogLog>>> {
        let state = self.lock();
        let merged = state.sketches.get(&key).map(|entries| {
            let hll = HyperLogLog::new();
            for registers in entries.by_instance.values() {
                hll.merge_bytes(registers);
            }
            hll
        });
        Box::pin(ready(Ok(FleetRead::new(merged, true))))
    }

    fn try_lock<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
        now: SystemTime,
    ) -> StoreFuture<'a, bool> {
        let mut state = self.lock();
        state.locks.retain(|_, (_, expires_at)| *expires_at > now);
        let holder = state
            .locks
            .entry(name.to_owned())
            .or_insert_with(|| (owner.to_owned(), now + ttl));
        Box::pin(ready(Ok(holder.0 == owner)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    fn now<T>(f: StoreFuture<'_, T>) -> T {
        // Every MemoryStore future is ready at once.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = f;
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(r) => r.unwrap(),
            std::task::Poll::Pending => unreachable!("MemoryStore futures are ready"),
        }
    }

    fn totals(payments: u64, volume: f64) -> PeriodTotals {
        PeriodTotals {
            payments,
            payments_succeeded: payments,
            volume,
            ..Default::default()
        }
    }

    #[test]
    fn entries_are_replaced_per_instance_and_summed_across() {
        let store = MemoryStore::new();
        let mut a = InstanceReport::new(at(7200));
        a.hours.push((3600, totals(2, 20.0)));
        a.minutes.push((7140, totals(1, 10.0)));
        let mut b = InstanceReport::new(at(7200));
        b.hours.push((3600, totals(5, 50.5)));
        now(store.write("a", &a));
        now(store.write("a", &a)); // a retry: replaced, not added
        now(store.write("b", &b));
        let hour = now(store.totals(Granularity::Hour, &[3600], at(7200)));
        assert!(hour.complete);
        assert_eq!((hour.value.payments, hour.value.volume), (7, 70.5));
        let minutes = now(store.totals(Granularity::Minute, &[7080, 7140], at(7200)));
        assert_eq!(minutes.value.payments, 1);
        assert_eq!(
            now(store.totals(Granularity::Hour, &[0], at(7200))),
            FleetRead::new(PeriodTotals::default(), true),
            "nothing recorded: a real zero"
        );
    }

    #[test]
    fn sketches_merge_and_entries_expire() {
        let store = MemoryStore::new();
        let key = SketchKey::daily_active_users(at(0));
        for (instance, users) in [("a", ["u1", "u2"]), ("b", ["u2", "u3"])] {
            let hll = HyperLogLog::new();
            users.iter().for_each(|u| hll.insert(u.as_bytes()));
            let mut report = InstanceReport::new(at(100));
            report.sketches.push((key, hll.to_bytes()));
            report.minutes.push((60, totals(1, 1.0)));
            now(store.write(instance, &report));
        }
        let users = now(store.sketch(key, at(100)));
        assert!(users.complete);
        assert_eq!(users.value.unwrap().estimate().round(), 3.0);
        let senders = now(store.sketch(SketchKey::daily_senders(at(0)), at(100)));
        assert!(senders.value.is_none());
        // A later write, past the minute retention, expires the old minute.
        now(store.write("c", &InstanceReport::new(at(100) + MINUTE_RETENTION)));
        let minute = now(store.totals(Granularity::Minute, &[60], at(100)));
        assert_eq!(minute.value.payments, 0);
        assert!(now(store.sketch(key, at(100))).value.is_some());
    }

    #[test]
    fn one_owner_per_lock_until_it_expires() {
        let store = MemoryStore::new();
        let ttl = Duration::from_secs(60);
        assert!(now(store.try_lock("hour:10", "a", ttl, at(0))));
        assert!(!now(store.try_lock("hour:10", "b", ttl, at(1))));
        assert!(
            now(store.try_lock("hour:10", "a", ttl, at(2))),
            "re-entrant"
        );
        assert!(now(store.try_lock("hour:11", "b", ttl, at(2))));
        assert!(now(store.try_lock("hour:10", "b", ttl, at(61))), "expired");
    }
}
