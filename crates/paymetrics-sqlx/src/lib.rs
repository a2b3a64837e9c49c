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
//! # Code typed against sqlx's types
//!
//! A function that takes `&SqlitePool` or `&mut sqlx::Transaction<'_, Sqlite>` does not accept
//! the instrumented types. Make it generic over the executor instead, as sqlx recommends: it then
//! takes `&pool`, `&mut *tx` and `&mut *conn`, instrumented or not, and what runs through the
//! instrumented ones is recorded.
//!
//! ```
//! use paymetrics_sqlx::InstrumentedPool;
//! use sqlx::{Executor, Sqlite};
//!
//! async fn balance<'c, E>(db: E, account: i64) -> Result<i64, sqlx::Error>
//! where
//!     E: Executor<'c, Database = Sqlite>,
//! {
//!     sqlx::query_scalar("SELECT coalesce(sum(amount_cents), 0) FROM transfers WHERE account = ?")
//!         .bind(account)
//!         .fetch_one(db)
//!         .await
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sqlx::Error> {
//! let pool = InstrumentedPool::new(sqlx::SqlitePool::connect("sqlite::memory:").await?);
//! sqlx::query("CREATE TABLE transfers (account INTEGER, amount_cents INTEGER)")
//!     .execute(&pool)
//!     .await?;
//!
//! assert_eq!(balance(&pool, 7).await?, 0); // the pool
//! let mut tx = pool.begin().await?;
//! sqlx::query("INSERT INTO transfers VALUES (7, 1250)").execute(&mut *tx).await?;
//! assert_eq!(balance(&mut *tx, 7).await?, 1250); // a transaction
//! tx.commit().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Where sqlx itself requires its own pool (`PgListener::connect_with`, `Pool::options`),
//! [`InstrumentedPool::get_ref`] (or `pool.as_ref()`) hands it over; where a function cannot be
//! made generic, `tx.as_mut()` hands over the `sqlx::Transaction`. What runs through those is
//! not recorded. `examples/generic_executor.rs` runs the patterns above, migrations included.
//!
//! # Feature flags
//!
//! * `sqlite`: [`MeteredDatabase`] for `sqlx::Sqlite`.
//! * `postgres`: [`MeteredDatabase`] for `sqlx::Postgres`.
//!
//! Enable the one for each database you instrument:
//!
//! ```toml
//! [dependencies]
//! sqlx = { version = "0.9", default-features = false, features = ["runtime-tokio", "sqlite"] }
//! paymetrics-sqlx = { version = "0.1", features = ["sqlite"] }
//! ```
//!
//! Forgetting it is a compile error that says so, at the first query:
//!
//! ```text
//! error[E0277]: paymetrics-sqlx cannot instrument `Sqlite`
//!   |     sqlx::query("CREATE TABLE t (id INTEGER)").execute(&pool).await?;
//!   |                                                        ^^^^ `Sqlite` is not instrumented in this build
//!   = help: the trait `MeteredDatabase` is not implemented for `Sqlite`
//!   = note: enable paymetrics-sqlx's feature for `Sqlite`: `sqlite` for `Sqlite`, `postgres` for `Postgres`
//! ```
//!
//! Any set of sqlx features works with this crate: it turns on sqlx's `macros` feature, which
//! is the one switch that gives sqlx-core and every driver the application enabled the same
//! `Executor` trait (with the `describe` method the query macros use, which the wrapper
//! forwards). An application that does not use the macros compiles sqlx's macro crates too;
//! the default sqlx features already include them.
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
///
/// It is the only requirement the wrappers put on a database, so a missing feature is reported
/// under this name, with the feature to enable:
///
/// ```compile_fail,E0277
/// # async fn run(pool: sqlx::AnyPool) -> Result<(), sqlx::Error> {
/// let pool = paymetrics_sqlx::InstrumentedPool::new(pool);
/// // error[E0277]: paymetrics-sqlx cannot instrument `Any`
/// sqlx::query("SELECT 1").execute(&pool).await?;
/// # Ok(())
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "paymetrics-sqlx cannot instrument `{Self}`",
    label = "`{Self}` is not instrumented in this build",
    note = "enable paymetrics-sqlx's feature for `{Self}`: `sqlite` for `Sqlite`, `postgres` for `Postgres`"
)]
pub trait MeteredDatabase: sqlx::Database<Connection: DriverExecutor<Self>> {
    /// The rows `result` reports changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

/// A driver's connection, seen as the [`Executor`](sqlx::Executor) its `&mut` is.
///
/// Implemented for every connection type whose `&mut` is an sqlx executor (every sqlx driver's);
/// there is nothing to implement. It exists so that the bound on [`MeteredDatabase`] carries the
/// driver's executor with it: the wrappers' only requirement is then `DB: MeteredDatabase`, which
/// the compiler reports by name (with the feature to enable) when it does not hold.
pub trait DriverExecutor<DB: sqlx::Database>: Send {
    /// `self` as the driver's executor.
    fn executor(&mut self) -> impl sqlx::Executor<'_, Database = DB>;
}

impl<DB, C> DriverExecutor<DB> for C
where
    DB: sqlx::Database,
    C: Send,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = DB>,
{
    fn executor(&mut self) -> impl sqlx::Executor<'_, Database = DB> {
        self
    }
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
