//! Collectors: what the scheduler samples every collector interval ([`Collector`]), and the
//! built-in one for distinct users ([`UniquesCollector`]).

use std::sync::Arc;

use paymetrics::{
    events::{payment, user},
    uniques::Uniques,
};

/// Something sampled on a schedule: a gauge read from a pool, a queue depth, a process's
/// memory. The scheduler calls [`collect`](Self::collect) every collector interval (30 s by
/// default) with the instance's paymetrics recorder current, so `metrics::gauge!` and friends
/// record into it.
///
/// `collect` runs on the scheduler's task: keep it quick and non-blocking (read atomics, take a
/// short lock). Work that waits on I/O belongs in a task of its own that records when it has
/// something. A panicking collector is logged and counted, and the others still run.
///
/// Closures are collectors:
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
/// use paymetrics_automation::Collector;
///
/// let queue_depth = Arc::new(AtomicUsize::new(0));
/// let depth = Arc::clone(&queue_depth);
/// let collector = move || {
///     metrics::gauge!("queue.depth", "queue" => "settlements")
///         .set(depth.load(Ordering::Relaxed) as f64);
/// };
/// collector.collect();
/// ```
pub trait Collector: Send + Sync + 'static {
    /// Samples and records.
    fn collect(&self);
}

impl<F> Collector for F
where
    F: Fn() + Send + Sync + 'static,
{
    fn collect(&self) {
        self()
    }
}

/// Publishes this process's distinct-user estimates from its [`Uniques`] as gauges:
/// [`user::DAILY_ACTIVE`] and [`user::MONTHLY_ACTIVE`] (users active in the current UTC day and
/// month) and [`payment::UNIQUE_SENDERS`] (payment senders in the current UTC day), each the
/// HyperLogLog estimate rounded to a whole number (standard error 0.81 %).
///
/// These describe one process. Distinct counts do not add up across instances (a user served by
/// two replicas is one user), so in fleet mode the scheduler publishes the fleet's merged
/// estimates with each KPI round instead, and does not run this collector unless you add it.
///
/// ```
/// use std::sync::Arc;
/// use paymetrics::{clock::SystemClock, events::user, uniques::Uniques};
/// use paymetrics_automation::{Collector, UniquesCollector};
///
/// let uniques = Arc::new(Uniques::new(Arc::new(SystemClock)));
/// uniques.observe_active_user("user-1");
/// let recorded = paymetrics::testing::capture(|| UniquesCollector::new(uniques).collect());
/// assert_eq!(recorded.gauge(user::DAILY_ACTIVE, &[]), Some(1.0));
/// ```
#[derive(Debug, Clone)]
pub struct UniquesCollector {
    uniques: Arc<Uniques>,
}

impl UniquesCollector {
    /// Publishes the estimates of `uniques`.
    pub fn new(uniques: Arc<Uniques>) -> Self {
        Self { uniques }
    }
}

impl Collector for UniquesCollector {
    fn collect(&self) {
        let current = self.uniques.current();
        metrics::gauge!(user::DAILY_ACTIVE).set(current.daily_active.estimate().round());
        metrics::gauge!(user::MONTHLY_ACTIVE).set(current.monthly_active.estimate().round());
        metrics::gauge!(payment::UNIQUE_SENDERS).set(current.daily_senders.estimate().round());
    }
}
