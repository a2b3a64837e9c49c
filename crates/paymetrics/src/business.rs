//! The business side wired together: events, windows, uniques, KPIs and rollups, and what
//! publishes each.
//!
//! | piece | fed by | read by | published by |
//! |---|---|---|---|
//! | [`BusinessEvents`] | your code | | each event, at once, through the `metrics` facade (`business.*`, `system.*`, `external_service.*`) |
//! | [`Uniques`] (distinct users) | the events' ids, hashed | the daily rollup | [`Uniques::publish`] (gauges `business.user.daily_active`, `business.user.monthly_active`, `business.payment.unique_senders`): **only when something calls it** |
//! | [`Windows`] (per minute and hour) | the flusher, through its [`WindowExporter`](crate::window::WindowExporter) | KPIs, rollups, alerts | nothing: they are queries |
//! | [`Kpis`](crate::kpi::Kpis) | | [`Windows`] | [`Kpis::publish`](crate::kpi::Kpis::publish), when called |
//! | rollups | | [`Windows`], [`Uniques`] | [`rollup::publish_hourly`](crate::rollup::publish_hourly) and [`rollup::publish_daily`](crate::rollup::publish_daily), when called |
//!
//! [`BusinessMetrics::install`] (or [`build`](BusinessMetrics::build)) makes the connections
//! that must be made before recording: the windows' exporter goes to paymetrics, the uniques
//! run on paymetrics' clock, and the events feed those uniques. What runs on a schedule (the
//! unique-user gauges every 30 s, KPIs every 5 minutes, rollups at the top of each UTC hour and
//! day, and a fleet's merged numbers) is `paymetrics-automation`'s scheduler:
//! `Automation::for_business(&metrics, &business).spawn()`. Without it, call the publishing
//! functions above yourself.
//!
//! # What `BusinessEvents::default()` does, and does not
//!
//! It records every event's counters and distributions through the facade, into whichever
//! recorder is current at each series' first use, and hashes ids into a private [`Uniques`] on
//! the system clock. It does **not** publish the unique-user gauges (nothing reads that private
//! `Uniques` unless you pass [`events.uniques()`](BusinessEvents::uniques) on), feed any
//! windows, or compute KPIs or rollups: those need the wiring here.
//!
//! ```
//! use paymetrics::{
//!     business::BusinessMetrics,
//!     events::{PaymentCompletion, PaymentMethod, PaymentStatus},
//!     export::MemoryExporter,
//!     rollup,
//! };
//!
//! let (memory, sent) = MemoryExporter::new(); // stands in for the DogStatsD agent
//! let builder = paymetrics::builder().without_dogstatsd().exporter(memory);
//! let (metrics, business) = BusinessMetrics::build(builder)?; // `install` in a service
//!
//! metrics::with_local_recorder(metrics.recorder(), || {
//!     business.events.payment_completion(&PaymentCompletion {
//!         status: PaymentStatus::Completed,
//!         amount: 120.0,
//!         fees: Some(3.5),
//!         currency: "EUR",
//!         payment_method: PaymentMethod::Card,
//!         processing_time_ms: Some(95.0),
//!     });
//!     business.uniques.publish(); // the distinct-user gauges, now
//! });
//!
//! // This hour's rollup, now (the scheduler would publish it at the top of the next hour).
//! let hour = rollup::publish_hourly(&metrics.handle(), &business.windows, metrics.clock().now());
//! assert_eq!((hour.total_payments, hour.total_volume, hour.total_fees), (1, 120.0, 3.5));
//! metrics.flush();
//! assert_eq!(sent.messages().len(), hour.points().len());
//! # Ok::<(), paymetrics::Error>(())
//! ```

use std::sync::Arc;

use crate::{
    Error, Paymetrics, PaymetricsBuilder, events::BusinessEvents, kpi::PeriodTotals,
    uniques::Uniques, window::Windows,
};

/// The business pieces of one process, wired to one [`Paymetrics`] (see the
/// [module docs](self) for what publishes what).
///
/// Clone the fields freely: each is a cheap handle.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BusinessMetrics {
    /// Records the typed events and feeds [`uniques`](Self::uniques).
    pub events: BusinessEvents,
    /// This process's distinct users, on paymetrics' clock.
    pub uniques: Arc<Uniques>,
    /// Per-minute and per-hour totals of what KPIs and rollups read
    /// ([`PeriodTotals::window_config`]), fed by paymetrics' flusher.
    pub windows: Windows,
}

impl BusinessMetrics {
    /// Builds paymetrics from `builder` with the windows' exporter added, without installing
    /// it as the global recorder (record through [`metrics::with_local_recorder`] with its
    /// recorder), and the business pieces wired to it.
    pub fn build(builder: PaymetricsBuilder) -> Result<(Paymetrics, Self), Error> {
        let (exporter, windows) = PeriodTotals::window_config().build();
        let metrics = builder.exporter(exporter).build()?;
        let business = Self::wire(&metrics, windows);
        Ok((metrics, business))
    }

    /// As [`build`](Self::build), then installs paymetrics as the global recorder: what a
    /// service does at start-up.
    ///
    /// ```no_run
    /// use paymetrics::business::BusinessMetrics;
    ///
    /// let (metrics, business) = BusinessMetrics::install(paymetrics::builder())?;
    /// // share `business.events`; give `business` to paymetrics-automation's scheduler
    /// # Ok::<(), paymetrics::Error>(())
    /// ```
    pub fn install(builder: PaymetricsBuilder) -> Result<(Paymetrics, Self), Error> {
        let (exporter, windows) = PeriodTotals::window_config().build();
        let metrics = builder.exporter(exporter).install()?;
        let business = Self::wire(&metrics, windows);
        Ok((metrics, business))
    }

    fn wire(metrics: &Paymetrics, windows: Windows) -> Self {
        let uniques = Arc::new(Uniques::new(metrics.clock()));
        Self {
            events: BusinessEvents::new(Arc::clone(&uniques)),
            uniques,
            windows,
        }
    }
}
