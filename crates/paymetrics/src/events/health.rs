//! Health-check results, which the system-availability KPI needs: the share of checks that
//! passed.
//!
//! ```
//! use paymetrics::events::{BusinessEvents, HealthCheck, health};
//!
//! let recorded = paymetrics::testing::capture(|| {
//!     let events = BusinessEvents::default();
//!     events.health_check(&HealthCheck { component: "redis", healthy: false });
//! });
//! let tags = [(health::COMPONENT, "redis"), (health::HEALTHY, "false")];
//! assert_eq!(recorded.counter(health::CHECKS, &tags), Some(1));
//! ```

use std::sync::OnceLock;

use metrics::{Counter, Label};

use super::{
    BusinessEvents,
    business::{Cache, bool_str, counter},
    normalize::{Interner, UNKNOWN},
};

/// Counter, health checks run, split by [`HEALTHY`]: availability is `healthy:true` over all.
/// Tags: [`COMPONENT`], [`HEALTHY`].
pub const CHECKS: &str = "system.health.checks";

/// Tag key: the component checked (`postgres`, `redis`, `card-processor`), sanitised and
/// bounded per handle.
pub const COMPONENT: &str = "component";
/// Tag key: `true` when the check passed, else `false`.
pub const HEALTHY: &str = "healthy";

/// One health check's result: records [`CHECKS`].
#[derive(Debug, Clone, Copy)]
pub struct HealthCheck<'a> {
    /// The component checked; empty is `unknown`. Sanitised and bounded per handle.
    pub component: &'a str,
    /// Whether it passed.
    pub healthy: bool,
}

/// The health events' handle table.
pub(super) struct Caches {
    component: Interner,
    checks: Cache<CheckSeries>,
}

impl Caches {
    pub(super) fn new(max_values_per_tag: usize) -> Self {
        Self {
            component: Interner::new(UNKNOWN, max_values_per_tag),
            checks: Cache::default(),
        }
    }
}

struct CheckSeries {
    labels: Vec<Label>,
    checks: OnceLock<Counter>,
}

impl BusinessEvents {
    /// Records a health check's result (see [`HealthCheck`]).
    pub fn health_check(&self, event: &HealthCheck<'_>) {
        let caches = &self.inner.health;
        let component = caches.component.id(Some(event.component));
        let healthy = event.healthy;
        caches.checks.record(
            u64::from(component) | u64::from(healthy) << 16,
            || CheckSeries {
                labels: vec![
                    Label::new(COMPONENT, caches.component.value(component)),
                    Label::from_static_parts(HEALTHY, bool_str(healthy)),
                ],
                checks: OnceLock::new(),
            },
            |s| counter(&s.checks, CHECKS, &s.labels).increment(1),
        );
    }
}
