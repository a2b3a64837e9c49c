//! This crate's entries in the metric catalogue (see [`paymetrics::catalogue`]): `api.*` from
//! [`ApiMetricsLayer`](crate::ApiMetricsLayer) and `external_service.*` from
//! [`ExternalServiceMetricsLayer`](crate::ExternalServiceMetricsLayer), built from the same
//! constants the layers record with. `tests/catalogue.rs` records through both layers and
//! checks every series against these entries.

use paymetrics::{
    catalogue::{BOOL, MetricDef, MetricKind, TagDef},
    events::external,
};

use crate::server;

const SERVER: &str = "paymetrics-tower (ApiMetricsLayer)";
const CLIENT: &str = "paymetrics-tower (ExternalServiceMetricsLayer)";

const REQUEST_TAGS: &[TagDef] = &[
    TagDef::any(server::METHOD),
    TagDef::any(server::ENDPOINT),
    TagDef::any(server::STATUS_CODE),
    TagDef::any(server::USER_TIER),
    TagDef::any(server::OUTCOME),
];
const ERROR_RATE_TAGS: &[TagDef] = &[
    TagDef::any(server::METHOD),
    TagDef::any(server::ENDPOINT),
    TagDef::any(server::STATUS_CODE),
    TagDef::any(server::USER_TIER),
    TagDef::any(server::OUTCOME),
    TagDef::one_of(server::ERROR, BOOL),
];
const RATE_LIMIT_TAGS: &[TagDef] = &[
    TagDef::any(server::METHOD),
    TagDef::any(server::ENDPOINT),
    TagDef::any(server::STATUS_CODE),
    TagDef::any(server::USER_TIER),
];
const IN_FLIGHT_TAGS: &[TagDef] = &[TagDef::any(server::METHOD), TagDef::any(server::ENDPOINT)];
const CALL_TAGS: &[TagDef] = &[
    TagDef::any(external::SERVICE_NAME),
    TagDef::any(external::ENDPOINT),
    TagDef::any(external::METHOD),
];
const CALL_SUCCESS_TAGS: &[TagDef] = &[
    TagDef::any(external::SERVICE_NAME),
    TagDef::any(external::ENDPOINT),
    TagDef::any(external::METHOD),
    TagDef::one_of(external::SUCCESS, BOOL),
];

use MetricKind::{Count, Distribution, Gauge};

/// Every metric this crate records.
///
/// ```
/// let mut catalogue = paymetrics::catalogue::Catalogue::core();
/// catalogue.extend(paymetrics_tower::catalogue::METRICS)?;
/// assert!(catalogue.get("api.requests.response_time").is_some());
/// # Ok::<(), paymetrics::catalogue::CatalogueError>(())
/// ```
pub const METRICS: &[MetricDef] = &[
    MetricDef::new(
        server::REQUESTS_COUNT,
        Count,
        "request",
        REQUEST_TAGS,
        "Inbound HTTP requests.",
        SERVER,
    ),
    MetricDef::new(
        server::REQUESTS_RESPONSE_TIME,
        Distribution,
        "ms",
        REQUEST_TAGS,
        "Time from the call to the end of the response body.",
        SERVER,
    ),
    MetricDef::new(
        server::REQUESTS_SIZE,
        Distribution,
        "byte",
        REQUEST_TAGS,
        "Request body bytes the application read.",
        SERVER,
    ),
    MetricDef::new(
        server::RESPONSES_SIZE,
        Distribution,
        "byte",
        REQUEST_TAGS,
        "Response body bytes handed to the server.",
        SERVER,
    ),
    MetricDef::new(
        server::REQUESTS_ERROR_RATE,
        Count,
        "request",
        ERROR_RATE_TAGS,
        "Requests split by error:true/false.",
        SERVER,
    ),
    MetricDef::new(
        server::RATE_LIMIT_REMAINING,
        Gauge,
        "request",
        RATE_LIMIT_TAGS,
        "The rate-limit header of the latest response carrying one.",
        SERVER,
    ),
    MetricDef::new(
        server::REQUESTS_IN_FLIGHT,
        Gauge,
        "request",
        IN_FLIGHT_TAGS,
        "Requests being served now.",
        SERVER,
    ),
    MetricDef::new(
        external::CALLS_COUNT,
        Count,
        "call",
        CALL_TAGS,
        "Outbound calls to external services.",
        CLIENT,
    ),
    MetricDef::new(
        external::CALLS_RESPONSE_TIME,
        Distribution,
        "ms",
        CALL_TAGS,
        "Time from the start of a call to its outcome.",
        CLIENT,
    ),
    MetricDef::new(
        external::CALLS_SUCCESS_RATE,
        Count,
        "call",
        CALL_SUCCESS_TAGS,
        "Calls split by success:true/false.",
        CLIENT,
    ),
    MetricDef::new(
        external::CALLS_RETRY_COUNT,
        Distribution,
        "retry",
        CALL_TAGS,
        "Retries per logical call.",
        CLIENT,
    ),
    MetricDef::new(
        external::CIRCUIT_BREAKER_STATE,
        Gauge,
        "state (1 open, 0 closed)",
        CALL_TAGS,
        "Whether the circuit breaker is open.",
        CLIENT,
    ),
];
