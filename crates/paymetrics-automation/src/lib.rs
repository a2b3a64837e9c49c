//! Background automation for [`paymetrics`]: collectors, business KPIs and hourly and
//! daily rollups on one tokio task, describing one process or, with a shared store, a whole
//! fleet of replicas.
//!
//! One scheduler ([`Automation`]), rather than a loop per job with `sleep`s, reads paymetrics'
//! [windows](paymetrics::window) and [uniques](paymetrics::uniques) rather than counters kept
//! by hand in Redis, and every instance of a fleet writes its own absolute totals to a
//! [`FleetStore`]; one instance per period sums them and publishes.
//!
//! # Quick start
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use paymetrics::{PaymetricsBuilder, kpi::PeriodTotals, uniques::Uniques};
//! use paymetrics_automation::Automation;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The windows the KPIs and rollups read: give their exporter to paymetrics.
//! let (window_exporter, windows) = PeriodTotals::window_config().build();
//! let metrics = PaymetricsBuilder::new()
//!     .without_dogstatsd() // a real service keeps DogStatsD on
//!     .exporter(window_exporter)
//!     .build()?;
//! let uniques = Arc::new(Uniques::new(metrics.clock()));
//!
//! let automation = Automation::builder(&metrics, windows)
//!     .uniques(Arc::clone(&uniques))
//!     .collector(|| metrics::gauge!("settlement.queue.depth").set(3.0))
//!     .collector_interval(Duration::from_secs(30))
//!     .kpi_interval(Duration::from_secs(300))
//!     .spawn()?;
//!
//! // ... record payments with paymetrics::events::BusinessEvents::new(uniques) ...
//!
//! automation.shutdown().await; // before the paymetrics guard, so the last points go out
//! metrics.shutdown();
//! # Ok(()) }
//! ```
//!
//! # What runs, and when
//!
//! Every time is read from paymetrics' [`Clock`](paymetrics::clock::Clock) (the one given to
//! [`PaymetricsBuilder::clock`](paymetrics::PaymetricsBuilder::clock)), and ticks fall on
//! multiples of their interval since the Unix epoch, so a fleet ticks together:
//!
//! | when | what |
//! |---|---|
//! | every collector interval (30 s) | the [`Collector`]s run; this instance writes its totals to the store |
//! | every KPI interval (5 min) | flush, write; then the KPIs of the last hour and day are published as timestamped gauges ([`paymetrics::kpi`] names), stamped with the round's time |
//! | the top of each UTC hour | flush, write; then the hour's [rollup](paymetrics::rollup::HourlyRollup) |
//! | each UTC midnight | flush, write; then the day's [rollup](paymetrics::rollup::DailyRollup), with the day's distinct users from the uniques |
//!
//! KPIs and rollups are queued with [`PaymetricsHandle::send`](paymetrics::PaymetricsHandle::send)
//! as timestamped points, so each is sent exactly once by the instance that published it.
//! (A gauge set through the facade would be re-sent by that instance every flush until it
//! expired, beside the next round's publisher's.)
//!
//! # One process, or a fleet
//!
//! Alone (the default), the scheduler keeps a private [`MemoryStore`]: what it publishes is
//! what this process recorded, and a [`UniquesCollector`] publishes its distinct-user gauges.
//!
//! A payment service runs as many replicas, and its rollups and KPIs must describe all of them.
//! With [`AutomationBuilder::fleet`] (or [`fleet_from_env`](AutomationBuilder::fleet_from_env),
//! which reads `REDIS_URL`), every instance writes to a shared store:
//!
//! * **Absolute values, one entry per instance.** Each period (minute, hour, day sketch) is a
//!   hash with one field per instance holding that instance's totals so far. A write replaces
//!   the field, and carries every period the instance still holds: a retried write changes
//!   nothing, and a store that lost everything (Redis restarted; ours keeps nothing on disk) is
//!   whole again after each instance's next write. The publisher sums the fields (merges the
//!   sketches), so nothing is ever counted twice.
//! * **One publisher per period.** A lock with expiry (`SET NX PX`) per KPI round, hour and
//!   day: exactly one instance publishes each. The others count it as skipped.
//! * **A publish delay** (15 s): instances write at the period's end; the publisher reads a
//!   little later.
//! * **Never in the way.** Store calls happen on the scheduler's task only, each bounded by a
//!   timeout. When Redis is down, the instance keeps recording locally, logs, and retries on
//!   the next tick; a publication is retried until its period can no longer be published
//!   (Datadog takes timestamped points up to an hour old). The store's health is the outcome
//!   of real calls (a write reaches Redis every collector interval even with nothing to
//!   write): [`Automation::store_reachable`], one warning when it becomes unreachable and one
//!   line when it answers again (at most one such pair a minute), and
//!   [`AutomationStats::writes`] counts only writes that Redis acknowledged.
//!
//! ## What survives a Redis restart
//!
//! Redis here keeps nothing on disk: a restart empties it, locks included. The guarantee:
//!
//! * **Each figure is published at most once, and only from complete data.** A figure (a
//!   rollup; one KPI) is published only if the store has lost nothing since the earliest
//!   period it reads began. Every store call checks an `epoch` key in the same transaction;
//!   the first instance that had seen the old epoch to reach the emptied Redis records the
//!   loss as of its clock (within a collector interval of Redis answering again), and keeps
//!   that record itself. So a period begun before a loss is never published from what is left,
//!   and its lock, lost with the rest, cannot let a second instance publish it again (nor the
//!   same one: it keeps the record even if Redis empties once more).
//! * **The cost:** such periods are not published at all, even after the live instances'
//!   writes have made the store whole again (the store cannot know that no instance that
//!   stopped meanwhile is missing). After a loss the hourly rollup and the last-hour KPIs come
//!   back with the first hour begun after it, the daily rollup and the 24-hour acquisition
//!   rate with the next day, the monthly active users with the next month. Each withheld
//!   publication is counted in [`AutomationStats::publications_incomplete`]; each instance
//!   warns once per loss it notices.
//! * **Readers** of the store get a [`FleetRead`](store::FleetRead) whose `complete` says
//!   whether the value covers the fleet: after a loss, a period's zero is "unknown", not zero.
//! * **Limits:** a loss that no instance alive had seen the store before (every instance
//!   restarted along with Redis) is not noticed; nothing was recorded in it that the new
//!   instances hold. An instance that takes a period's lock and dies before publishing leaves
//!   that period unpublished (at most once, rather than twice).
//!
//! # Testing without sleeping
//!
//! Give paymetrics a [`ManualClock`](paymetrics::clock::ManualClock) (the scheduler reads
//! the same one), move it, and wait for [`Automation::caught_up`]; see this crate's tests,
//! which cross hour and day boundaries, and restart Redis, in milliseconds. The scheduler
//! re-reads the clock at least every [clock poll
//! interval](AutomationBuilder::clock_poll_interval): set it to a few milliseconds in tests.
//!
//! # Feature flags
//!
//! * `redis` (default): [`RedisStore`].
//! * `tls` (default): `rediss://` URLs, with rustls (its *ring* provider, installed as the
//!   process default unless one is already) and the webpki root certificates.

mod automation;
pub mod catalogue;
mod collector;
mod log;
mod report;
mod scheduler;
pub mod store;

pub use automation::{
    Automation, AutomationBuilder, AutomationStats, DEFAULT_CLOCK_POLL_INTERVAL,
    DEFAULT_COLLECTOR_INTERVAL, DEFAULT_FLEET_PUBLISH_DELAY, DEFAULT_KPI_INTERVAL,
    DEFAULT_STORE_TIMEOUT,
};
pub use collector::{Collector, UniquesCollector};
#[cfg(feature = "redis")]
pub use store::RedisStore;
pub use store::{FleetStore, MemoryStore};

/// What can go wrong when setting automation up. Running never fails: the scheduler logs and
/// retries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// [`AutomationBuilder::spawn`] was called outside a tokio runtime.
    #[error(
        "no tokio runtime: spawn the automation from within a tokio runtime (#[tokio::main] or Runtime::enter)"
    )]
    NoRuntime,
    /// A setting out of range.
    #[error("invalid paymetrics automation configuration: {0}")]
    InvalidConfig(String),
    /// A Redis URL that cannot be used (the message never repeats the URL, which may hold a
    /// password).
    #[error("invalid Redis URL: {0}")]
    InvalidRedisUrl(String),
}
