//! This crate's entries in the metric catalogue (see [`paymetrics::catalogue`]): the distinct
//! user and sender gauges that [`UniquesCollector`](crate::UniquesCollector) publishes from the
//! core's HyperLogLog sketches (their names are the core's constants; this crate records them).
//! The KPI gauges and rollups the scheduler publishes are recorded by the core's `kpi` and
//! `rollup` code and catalogued there. `tests/catalogue.rs` runs the collector and checks.

use paymetrics::{
    catalogue::{MetricDef, MetricKind::Gauge},
    events::{payment, user},
};

const SOURCE: &str = "paymetrics-automation (UniquesCollector)";

/// Every metric this crate records.
///
/// ```
/// let mut catalogue = paymetrics::catalogue::Catalogue::core();
/// catalogue.extend(paymetrics_automation::catalogue::METRICS)?;
/// assert!(catalogue.get("business.user.daily_active").is_some());
/// # Ok::<(), paymetrics::catalogue::CatalogueError>(())
/// ```
pub const METRICS: &[MetricDef] = &[
    MetricDef::new(
        user::DAILY_ACTIVE,
        Gauge,
        "user",
        &[],
        "Distinct active users this UTC day (HyperLogLog estimate, 0.81 % standard error).",
        SOURCE,
    ),
    MetricDef::new(
        user::MONTHLY_ACTIVE,
        Gauge,
        "user",
        &[],
        "Distinct active users this UTC month (HyperLogLog estimate).",
        SOURCE,
    ),
    MetricDef::new(
        payment::UNIQUE_SENDERS,
        Gauge,
        "sender",
        &[],
        "Distinct payment senders this UTC day (HyperLogLog estimate).",
        SOURCE,
    ),
];
