//! This crate's entries in the metric catalogue (see [`paymetrics::catalogue`]): `database.*`
//! from [`InstrumentedPool`](crate::InstrumentedPool), built from the same constants the pool
//! records with. `tests/catalogue.rs` runs queries through a pool and checks every series
//! against these entries.

use paymetrics::catalogue::{MetricDef, MetricKind, TagDef};

use crate::{
    DATABASE_TAG, ERROR_TYPE_TAG, OPERATION_TAG, Operation, POOL_ACQUIRE_TIME,
    POOL_ACTIVE_CONNECTIONS, POOL_IDLE_CONNECTIONS, POOL_TOTAL_CONNECTIONS, QUERIES_COUNT,
    QUERIES_ERRORS, QUERIES_EXECUTION_TIME, QUERIES_ROWS_AFFECTED, TABLE_TAG,
};

const SOURCE: &str = "paymetrics-sqlx (InstrumentedPool)";

// Built from `Operation::as_str` so a new operation cannot be missed here silently
// (`tests/catalogue.rs` also checks it against `Operation::ALL`).
const OPERATIONS: &[&str] = &[
    Operation::Select.as_str(),
    Operation::Insert.as_str(),
    Operation::Update.as_str(),
    Operation::Delete.as_str(),
    Operation::Other.as_str(),
];

const QUERY_TAGS: &[TagDef] = &[
    TagDef::one_of(OPERATION_TAG, OPERATIONS),
    TagDef::any(TABLE_TAG),
    TagDef::any(DATABASE_TAG),
];
const ERROR_TAGS: &[TagDef] = &[
    TagDef::one_of(OPERATION_TAG, OPERATIONS),
    TagDef::any(TABLE_TAG),
    TagDef::any(DATABASE_TAG),
    TagDef::any(ERROR_TYPE_TAG),
];
const POOL_TAGS: &[TagDef] = &[TagDef::any(DATABASE_TAG)];

use MetricKind::{Count, Distribution, Gauge};

/// Every metric this crate records.
///
/// ```
/// let mut catalogue = paymetrics::catalogue::Catalogue::core();
/// catalogue.extend(paymetrics_sqlx::catalogue::METRICS)?;
/// assert!(catalogue.get("database.queries.execution_time").is_some());
/// # Ok::<(), paymetrics::catalogue::CatalogueError>(())
/// ```
pub const METRICS: &[MetricDef] = &[
    MetricDef::new(
        QUERIES_COUNT,
        Count,
        "query",
        QUERY_TAGS,
        "Queries run.",
        SOURCE,
    ),
    MetricDef::new(
        QUERIES_EXECUTION_TIME,
        Distribution,
        "ms",
        QUERY_TAGS,
        "Time from a query's first poll to its last row, error or cancellation.",
        SOURCE,
    ),
    MetricDef::new(
        QUERIES_ROWS_AFFECTED,
        Distribution,
        "row",
        QUERY_TAGS,
        "Rows returned or changed by a successful query.",
        SOURCE,
    ),
    MetricDef::new(
        QUERIES_ERRORS,
        Count,
        "query",
        ERROR_TAGS,
        "Failed queries.",
        SOURCE,
    ),
    MetricDef::new(
        POOL_ACTIVE_CONNECTIONS,
        Gauge,
        "connection",
        POOL_TAGS,
        "Connections in use.",
        SOURCE,
    ),
    MetricDef::new(
        POOL_IDLE_CONNECTIONS,
        Gauge,
        "connection",
        POOL_TAGS,
        "Idle connections.",
        SOURCE,
    ),
    MetricDef::new(
        POOL_TOTAL_CONNECTIONS,
        Gauge,
        "connection",
        POOL_TAGS,
        "Open connections, idle or in use.",
        SOURCE,
    ),
    MetricDef::new(
        POOL_ACQUIRE_TIME,
        Distribution,
        "ms",
        POOL_TAGS,
        "Time spent waiting for a connection from the pool.",
        SOURCE,
    ),
];
