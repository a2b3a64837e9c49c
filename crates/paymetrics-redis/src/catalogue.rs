//! This crate's entries in the metric catalogue (see [`paymetrics::catalogue`]): `cache.*` from
//! [`InstrumentedConnection`](crate::InstrumentedConnection) and the hit-rate KPI, built from
//! the same constants the connection records with. `tests/catalogue.rs` runs commands through
//! a connection and checks every series against these entries.

use paymetrics::catalogue::{MetricDef, MetricKind, TagDef};

use crate::{
    CACHE_SIZE_CURRENT, CACHE_TTL_DISTRIBUTION, CACHE_TYPE, CACHE_TYPE_REDIS, ERROR_TYPE,
    KEY_PATTERN, KPI_CACHE_HIT_RATE, OPERATION, OPERATIONS_COUNT, OPERATIONS_ERRORS,
    OPERATIONS_HIT_MISS, OPERATIONS_RESPONSE_TIME, RESULT, RESULT_HIT, RESULT_MISS,
};

const SOURCE: &str = "paymetrics-redis (InstrumentedConnection)";
const CACHE_TYPES: &[&str] = &[CACHE_TYPE_REDIS];

const OPERATION_TAGS: &[TagDef] = &[
    TagDef::any(OPERATION),
    TagDef::one_of(CACHE_TYPE, CACHE_TYPES),
    TagDef::any(KEY_PATTERN),
];
const HIT_MISS_TAGS: &[TagDef] = &[
    TagDef::any(OPERATION),
    TagDef::one_of(CACHE_TYPE, CACHE_TYPES),
    TagDef::any(KEY_PATTERN),
    TagDef::one_of(RESULT, &[RESULT_HIT, RESULT_MISS]),
];
const ERROR_TAGS: &[TagDef] = &[
    TagDef::any(OPERATION),
    TagDef::one_of(CACHE_TYPE, CACHE_TYPES),
    TagDef::any(KEY_PATTERN),
    TagDef::any(ERROR_TYPE),
];
const CACHE_TYPE_TAGS: &[TagDef] = &[TagDef::one_of(CACHE_TYPE, CACHE_TYPES)];

use MetricKind::{Count, Distribution, Gauge};

/// Every metric this crate records.
///
/// ```
/// let mut catalogue = paymetrics::catalogue::Catalogue::core();
/// catalogue.extend(paymetrics_redis::catalogue::METRICS)?;
/// assert!(catalogue.get("cache.operations.hit_miss").unwrap().tag("result").is_some());
/// # Ok::<(), paymetrics::catalogue::CatalogueError>(())
/// ```
pub const METRICS: &[MetricDef] = &[
    MetricDef::new(
        OPERATIONS_COUNT,
        Count,
        "command",
        OPERATION_TAGS,
        "Commands sent, failed ones included.",
        SOURCE,
    ),
    MetricDef::new(
        OPERATIONS_HIT_MISS,
        Count,
        "key",
        HIT_MISS_TAGS,
        "Reads split by result:hit/miss.",
        SOURCE,
    ),
    MetricDef::new(
        OPERATIONS_RESPONSE_TIME,
        Distribution,
        "ms",
        OPERATION_TAGS,
        "Time from sending a command (or pipeline) to its reply or failure.",
        SOURCE,
    ),
    MetricDef::new(
        OPERATIONS_ERRORS,
        Count,
        "command",
        ERROR_TAGS,
        "Commands that failed or got an error reply.",
        SOURCE,
    ),
    MetricDef::new(
        CACHE_TTL_DISTRIBUTION,
        Distribution,
        "s",
        OPERATION_TAGS,
        "TTLs set by commands that succeeded.",
        SOURCE,
    ),
    MetricDef::new(
        CACHE_SIZE_CURRENT,
        Gauge,
        "key",
        CACHE_TYPE_TAGS,
        "Keys in the connection's database (DBSIZE, opt-in).",
        SOURCE,
    ),
    MetricDef::new(
        KPI_CACHE_HIT_RATE,
        Gauge,
        "percent",
        CACHE_TYPE_TAGS,
        "Hits over reads in a sliding window.",
        SOURCE,
    ),
];
