//! In-process metrics for payment platforms that report to Datadog.
//!
//! paymetrics is a recorder for the [`metrics`] facade. Applications (and paymetrics'
//! integrations for tower, sqlx and redis) record with `metrics::counter!`, `gauge!` and
//! `histogram!`; paymetrics aggregates locally in lock-free atomic cells, one registration per
//! series, and a background flusher hands a [`Snapshot`](snapshot::Snapshot) of every series to
//! the exporters every flush interval: the native [DogStatsD exporter](dogstatsd) by default,
//! plus any [`Exporter`](export::Exporter) or other `metrics::Recorder` you attach.
//!
//! # Quick start
//!
//! ```no_run
//! // Reads DD_DOGSTATSD_URL / DD_AGENT_HOST, DD_ENV, DD_SERVICE, DD_VERSION, ...
//! let metrics = paymetrics::init()?;
//!
//! metrics::counter!("business.payment.attempts", "currency" => "EUR").increment(1);
//! metrics::histogram!("business.payment.processing_time", "status" => "completed").record(84.0);
//!
//! // Dropping the guard flushes one last time.
//! drop(metrics);
//! # Ok::<(), paymetrics::Error>(())
//! ```
//!
//! # Concepts
//!
//! * **Recorder** ([`PaymetricsRecorder`]): one [`metrics_util::registry::Registry`], an atomic
//!   cell per series. Counters stripe themselves across cache lines when threads contend;
//!   histograms keep log-linear buckets in bounded memory (relative error 0.79 %), never raw
//!   values. A cardinality guard folds label combinations past a per-metric cap into an overflow
//!   series, and idle series expire.
//! * **Flusher**: the only thread that reads cells and talks to exporters. Recording threads
//!   never block on I/O.
//! * **Snapshots** ([`snapshot`]): counter totals and deltas, gauge values, histogram
//!   count/sum/min/max and quantiles, for exporters and in-process queries.
//! * **Messages** ([`message`]): events, service checks and timestamped points.
//! * **Business events** ([`events`]): typed payment, user, fraud, queue, health and
//!   external-service events with cached handles and bounded tags.
//! * **Windows, uniques, KPIs, rollups** ([`window`], [`uniques`], [`kpi`], [`rollup`]):
//!   in-process queries over the last hour or a calendar period, distinct users without ids
//!   leaving the process, and the business KPIs and hourly and daily rollups.
//! * **Testing** (`testing`, with the `testing` cargo feature): assert what your code recorded.

mod builder;
pub mod business;
pub mod catalogue;
pub mod clock;
pub mod dogstatsd;
pub mod events;
pub mod export;
mod flusher;
pub mod kpi;
pub mod message;
pub mod money;
mod recorder;
pub mod rollup;
#[cfg(feature = "tokio")]
mod signal;
pub mod snapshot;
#[cfg(feature = "testing")]
pub mod testing;
pub mod uniques;
pub mod window;

pub use builder::{
    DEFAULT_FLUSH_INTERVAL, DEFAULT_FLUSH_PACING, DEFAULT_IDLE_FLUSHES_BEFORE_EXPIRY,
    DEFAULT_MAX_SERIES, DEFAULT_MAX_SERIES_PER_METRIC, DEFAULT_MESSAGE_QUEUE_CAPACITY,
    DEFAULT_SHUTDOWN_TIMEOUT, Paymetrics, PaymetricsBuilder, PaymetricsHandle,
};
pub use recorder::{OVERFLOW_METRIC_NAME, OVERFLOW_TAG_KEY, PaymetricsRecorder};
#[cfg(feature = "tokio")]
pub use signal::shutdown_signal;

/// The [`metrics`](https://docs.rs/metrics/0.24) facade paymetrics records through: version
/// 0.24 (0.24.6 or later).
///
/// A recorder only sees what is recorded through the same major version of the facade: code
/// built against another `metrics` (0.23, a future 0.25) records into that version's own global
/// recorder, which nobody installed, and nothing arrives, silently. Record through this
/// re-export, or depend on `metrics = "0.24"` exactly as paymetrics does
/// (`cargo tree -d -i metrics` shows a second version).
///
/// ```
/// let recorded = paymetrics::testing::capture(|| {
///     paymetrics::metrics::counter!("business.payment.attempts").increment(1);
/// });
/// assert_eq!(recorded.counter("business.payment.attempts", &[]), Some(1));
/// ```
pub use metrics;

/// Bucket layout of paymetrics histograms.
pub mod histogram {
    pub use crate::recorder::histogram::{
        MAX_EXPONENT, MIN_EXPONENT, RELATIVE_ERROR, SUB_BUCKET_BITS,
    };
}

/// What can go wrong when setting paymetrics up. Recording itself never fails.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An agent address that does not parse.
    #[error("invalid DogStatsD address {address:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// A setting out of range.
    #[error("invalid paymetrics configuration: {0}")]
    InvalidConfig(String),
    /// Another `metrics` recorder is already installed in this process.
    #[error(
        "a global metrics recorder is already installed; build() and use with_local_recorder, or install once"
    )]
    RecorderAlreadyInstalled,
    /// The flusher thread could not be started.
    #[error("could not start the paymetrics flusher thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// A builder with the defaults: DogStatsD from the environment, 10 s flushes.
pub fn builder() -> PaymetricsBuilder {
    PaymetricsBuilder::new()
}

/// Installs paymetrics as the global recorder, configured from Datadog's environment variables
/// (see [`dogstatsd::DogStatsdBuilder`]), and returns its guard.
pub fn init() -> Result<Paymetrics, Error> {
    PaymetricsBuilder::new().install()
}
