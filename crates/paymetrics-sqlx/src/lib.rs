//! Datadog database metrics for [sqlx]: wrap the pool a service already has, keep its queries.
//!
//! [`InstrumentedPool`] wraps a [`sqlx::Pool`]. `&InstrumentedPool<DB>` is an
//! [`Executor`](sqlx::Executor), so `sqlx::query(..).fetch_one(&pool)`, `query_as`, the
//! `query!`/`query_as!` macros, `acquire()` and transactions work as before, and every query
//! records, through the [`metrics`] facade (paymetrics' recorder in production):
//!
//! | metric | type | unit | tags |
//! |---|---|---|---|
//! | [`database.queries.count`](QUERIES_COUNT) | counter | queries | `operation`, `table`, `database` |
//! | [`database.queries.execution_time`](QUERIES_EXECUTION_TIME) | distribution | ms | `operation`, `table`, `database` |
//! | [`database.queries.rows_affected`](QUERIES_ROWS_AFFECTED) | distribution | rows | `operation`, `table`, `database` |
//! | [`database.queries.errors`](QUERIES_ERRORS) | counter | errors | `operation`, `table`, `database`, `error_type` |
//! | [`database.pool.active_connections`](POOL_ACTIVE_CONNECTIONS) | gauge | connections | `database` |
//! | [`database.pool.idle_connections`](POOL_IDLE_CONNECTIONS) | gauge | connections | `database` |
//! | [`database.pool.total_connections`](POOL_TOTAL_CONNECTIONS) | gauge | connections | `database` |
//! | [`database.pool.acquire_time`](POOL_ACQUIRE_TIME) | distribution | ms | `database` |
//!
//! # Quick start
//!
//! ```
//! use paymetrics_sqlx::InstrumentedPool;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sqlx::Error> {
//! // paymetrics::init() (or any `metrics` recorder) first: series register on first use.
//! let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
//! let pool = InstrumentedPool::builder(pool).database("payments").build();
//!
//! sqlx::query("CREATE TABLE transfers (id INTEGER PRIMARY KEY, amount_cents INTEGER)")
//!     .execute(&pool)
//!     .await?;
//! // database.queries.count{operation:insert,table:transfers,database:payments}
//! sqlx::query("INSERT INTO transfers (amount_cents) VALUES (?)")
//!     .bind(1250)
//!     .execute(&pool)
//!     .await?;
//!
//! let mut tx = pool.begin().await?;
//! let (total,): (i64,) = sqlx::query_as("SELECT sum(amount_cents) FROM transfers")
//!     .fetch_one(&mut *tx)
//!     .await?;
//! tx.commit().await?;
//! assert_eq!(total, 1250);
//! # Ok(())
//! # }
//! ```
//!
//! PostgreSQL is the same with a `PgPool`; name each pool with
//! [`InstrumentedPoolBuilder::database`] (the `database` tag, [`DEFAULT_DATABASE`] otherwise).
//!
//! # What is measured
//!
//! * **One recording per query**, made when the last row (or result) has been read, when the
//!   query fails, or when the caller drops it part-way: a stream abandoned after its first row,
//!   a future cancelled by a timeout. A query that is never polled never reaches the database
//!   and is not recorded.
//! * **`execution_time`** runs from the first poll to that point: the time the caller waited for
//!   the query, including any wait for a pooled connection (which is also recorded on its own as
//!   `database.pool.acquire_time`).
//! * **`rows_affected`**: for `select`, the rows returned; for `insert`, `update` and `delete`,
//!   the rows the database reports changed, when sqlx surfaces that count (`execute`, `fetch`,
//!   `fetch_all`, `fetch_many`; not `fetch_one`/`fetch_optional`, which only see a row); nothing
//!   for `other` statements or failed queries.
//! * **`error_type`** is an [`ErrorType`]: sqlx's error variant, and for database errors the
//!   constraint kind (`unique_violation`, ...) or `database`. Never a message.
//! * **`operation`** is read from the statement's first keyword ([`Operation`]); **`table`** from
//!   the `FROM`/`INTO`/`UPDATE` target of a simple statement (lower-cased, sanitised, at most
//!   [`MAX_TABLE_NAME_LEN`] bytes), or set by the caller with
//!   [`InstrumentedPool::with_table`] / [`InstrumentedConnection::with_table`], else
//!   [`UNKNOWN_TABLE`]. Each pool records at most [`DEFAULT_MAX_TABLES`] distinct tables
//!   ([`InstrumentedPoolBuilder::max_tables`]); later ones are tagged [`OVERFLOW_TABLE`].
//! * **Pool gauges** are recorded whenever a connection is acquired, and by
//!   [`InstrumentedPool::record_pool_gauges`] (call it from a timer so an idle pool reports too).
//! * **Transactions**: the queries inside are recorded like any other; `BEGIN`, `SAVEPOINT`,
//!   `COMMIT` and `ROLLBACK` (issued by sqlx, not by the app) are not counted as queries.
//! * **`prepare` and `describe`** are forwarded to the driver and not counted as queries; through
//!   the pool, their connection wait is recorded.
//!
//! Handles are registered with the recorder current when a series is first used, and cached:
//! install paymetrics before the first query.
//!
//! # Connections and transactions
//!
//! As with sqlx 0.9, queries run on `&mut *conn` and `&mut *tx`: [`InstrumentedPoolConnection`]
//! and [`InstrumentedTransaction`] dereference to an [`InstrumentedConnection`], the executor,
//! which dereferences to the driver's connection for everything else. Code generic over
//! [`sqlx::Acquire`] (such as `sqlx::migrate!().run(&pool)`) also accepts `&InstrumentedPool`,
//! but gets plain sqlx connections: its connection waits are recorded, its queries are not.
//!
//! # Feature flags
//!
//! * `sqlite`: [`MeteredDatabase`] for `sqlx::Sqlite`.
//! * `postgres`: [`MeteredDatabase`] for `sqlx::Postgres`.
//!
//! Enable the ones you use. This crate always turns on sqlx's `offline` feature (the one sqlx's
//! `macros` feature turns on) for sqlx-core and those drivers, because the `Executor::describe`
//! the wrapper forwards only exists with it. If you also use another sqlx driver in the same
//! build without sqlx's `macros` feature, turn on that driver's `offline` feature too.
//!
//! # The crate's own `query!` test
//!
//! `tests/macros.rs` builds an app with `sqlx::query!` against the wrapper. The macros read
//! the query descriptions committed in this crate's `.sqlx/` directory, so the test compiles on a
//! fresh clone with no database and no environment variables; the crate's `.env` sets
//! `SQLX_OFFLINE=true` so that a `DATABASE_URL` set for something else is not used. To change
//! those queries, regenerate `.sqlx/` as `tests/macros.rs` explains.

pub mod catalogue;
mod connection;
mod error;
mod execute;
mod pool;
mod series;
mod sql;
mod stream;

pub use connection::{InstrumentedConnection, InstrumentedPoolConnection, InstrumentedTransaction};
pub use error::ErrorType;
pub use pool::{InstrumentedPool, InstrumentedPoolBuilder};
pub use sql::{MAX_SCAN_BYTES, MAX_TABLE_NAME_LEN, Operation};

/// Counter, one per query: `database.queries.count`. Tags: `operation`, `table`, `database`.
pub const QUERIES_COUNT: &str = "database.queries.count";

/// Distribution, milliseconds, one value per query, from its first poll to its last row, its
/// error or its cancellation: `database.queries.execution_time`. Tags: `operation`, `table`,
/// `database`.
pub const QUERIES_EXECUTION_TIME: &str = "database.queries.execution_time";

/// Distribution, rows, one value per successful query (rows returned by a `select`, rows changed
/// by an `insert`, `update` or `delete`): `database.queries.rows_affected`. Tags: `operation`,
/// `table`, `database`.
pub const QUERIES_ROWS_AFFECTED: &str = "database.queries.rows_affected";

/// Counter, one per failed query: `database.queries.errors`. Tags: `operation`, `table`,
/// `database`, `error_type` (an [`ErrorType`]).
pub const QUERIES_ERRORS: &str = "database.queries.errors";

/// Gauge, connections in use (open minus idle): `database.pool.active_connections`. Tag:
/// `database`.
pub const POOL_ACTIVE_CONNECTIONS: &str = "database.pool.active_connections";

/// Gauge, idle connections: `database.pool.idle_connections`. Tag: `database`.
pub const POOL_IDLE_CONNECTIONS: &str = "database.pool.idle_connections";

/// Gauge, open connections, idle or in use: `database.pool.total_connections`. Tag: `database`.
pub const POOL_TOTAL_CONNECTIONS: &str = "database.pool.total_connections";

/// Distribution, milliseconds, one value per connection taken from the pool (for a query,
/// `acquire()` or `begin()`), the time spent waiting for it: `database.pool.acquire_time`.
/// Tag: `database`.
pub const POOL_ACQUIRE_TIME: &str = "database.pool.acquire_time";

/// Tag key: the statement's [`Operation`].
pub const OPERATION_TAG: &str = "operation";
/// Tag key: the statement's table, [`UNKNOWN_TABLE`] or [`OVERFLOW_TABLE`].
pub const TABLE_TAG: &str = "table";
/// Tag key: the pool's name.
pub const DATABASE_TAG: &str = "database";
/// Tag key: the [`ErrorType`] of a failed query.
pub const ERROR_TYPE_TAG: &str = "error_type";

/// `table` of a statement whose table is not read (joins, subqueries, `SELECT 1`, DDL) and not set.
pub const UNKNOWN_TABLE: &str = "unknown";
/// `table` of tables past a pool's cap.
pub const OVERFLOW_TABLE: &str = "other";
/// `database` of a pool not given a name.
pub const DEFAULT_DATABASE: &str = "primary";
/// Distinct tables a pool records before folding the rest into [`OVERFLOW_TABLE`].
pub const DEFAULT_MAX_TABLES: usize = 64;

/// A sqlx database this crate can instrument: it knows how to read the rows affected from its
/// query results (sqlx has no common trait for that). Implemented for `sqlx::Sqlite` and
/// `sqlx::Postgres` behind the `sqlite` and `postgres` features.
#[diagnostic::on_unimplemented(
    message = "paymetrics-sqlx cannot instrument `{Self}`",
    note = "enable paymetrics-sqlx's `sqlite` or `postgres` feature for that database"
)]
pub trait MeteredDatabase: sqlx::Database {
    /// The rows `result` reports changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

#[cfg(feature = "sqlite")]
impl MeteredDatabase for sqlx_sqlite::Sqlite {
    fn rows_affected(result: &sqlx_sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

#[cfg(feature = "postgres")]
impl MeteredDatabase for sqlx_postgres::Postgres {
    fn rows_affected(result: &sqlx_postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }
}
