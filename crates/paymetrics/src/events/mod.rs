//! Typed business and technical events: one call records every metric the seed's
//! `BusinessMetrics` and `TechnicalMetrics` record for that event, through the `metrics` facade.
//!
//! Metric names and tag keys are constants next to their documentation, in the module of the
//! domain that records them. Open-ended tag values (currencies, countries, model versions) are
//! normalised and bounded so that no caller can explode cardinality.

pub mod external;
