// The full catalogue: the core's, every recording crate's and the infrastructure entries the
// default rules need. Shared by the tests and the export example (`#[path]`), which alone may
// depend on every integration crate.

use paymetrics::catalogue::{Catalogue, CatalogueError};

/// Every metric paymetrics and its integrations can emit.
pub(crate) fn full_catalogue() -> Result<Catalogue, CatalogueError> {
    let mut c = Catalogue::core();
    c.extend(paymetrics_automation::catalogue::METRICS)?
        .extend(paymetrics_tower::catalogue::METRICS)?
        .extend(paymetrics_sqlx::catalogue::METRICS)?
        .extend(paymetrics_redis::catalogue::METRICS)?
        .extend(paymetrics_collectors::catalogue::PROCESS_METRICS)?
        .extend(paymetrics_collectors::catalogue::RUNTIME_METRICS)?
        .extend(paymetrics_collectors::catalogue::CONTAINER_METRICS)?
        .extend(paymetrics_alerts::catalogue::INFRASTRUCTURE)?;
    Ok(c)
}
