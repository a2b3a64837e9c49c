//! The instrumented pool: a `Pool<DB>` plus the series it records into, usable as an executor
//! wherever the app passed `&pool`. Connections and transactions it hands out live in
//! `connection.rs`.

use std::{fmt, sync::Arc, time::Instant};

use futures_core::{future::BoxFuture, stream::BoxStream};
use futures_util::TryStreamExt;
use sqlx::{
    Acquire, Database, Describe, Either, Error, Execute, Executor, Pool, SqlSafeStr, SqlStr,
    Transaction, pool::PoolConnection,
};

use crate::{
    DEFAULT_DATABASE, DEFAULT_MAX_TABLES, DriverExecutor, InstrumentedPoolConnection,
    InstrumentedTransaction, MeteredDatabase,
    execute::Parts,
    series::{PoolMetrics, TableSeries},
    stream::{Generator, QueryFuture, QueryStream},
};

/// What a pool and everything it hands out share.
pub(crate) struct Shared<DB: Database> {
    pub(crate) pool: Pool<DB>,
    pub(crate) metrics: PoolMetrics,
}

impl<DB: Database> Shared<DB> {
    /// Acquires a connection, recording the wait and then the pool's gauges.
    pub(crate) async fn acquire(&self) -> Result<PoolConnection<DB>, Error> {
        let start = Instant::now();
        let conn = self.pool.acquire().await;
        self.metrics
            .record_acquire_time(start.elapsed().as_secs_f64() * 1e3);
        if conn.is_ok() {
            self.record_pool();
        }
        conn
    }

    pub(crate) fn record_pool(&self) {
        self.metrics
            .record_pool(self.pool.size(), self.pool.num_idle());
    }
}

/// A [`sqlx::Pool`] that records every query run through it.
///
/// `&InstrumentedPool<DB>` is an [`Executor`], so `query(..).fetch_one(&pool)`, `query_as!`,
/// `query!` and friends work unchanged. [`acquire`](Self::acquire) and [`begin`](Self::begin)
/// hand out connections and transactions that record too: pass `&mut *conn` / `&mut *tx` as
/// with sqlx's own. Cloning is cheap and shares the pool and its series.
///
/// ```no_run
/// # async fn run() -> Result<(), sqlx::Error> {
/// use paymetrics_sqlx::InstrumentedPool;
///
/// let pool = sqlx::PgPool::connect("postgres://localhost/payments").await?;
/// let pool = InstrumentedPool::builder(pool).database("payments").build();
///
/// let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM transfers")
///     .fetch_one(&pool)
///     .await?;
///
/// let mut tx = pool.begin().await?;
/// sqlx::query("UPDATE accounts SET frozen = true WHERE id = $1")
///     .bind(7_i64)
///     .execute(&mut *tx)
///     .await?;
/// tx.commit().await?;
/// # let _ = count;
/// # Ok(())
/// # }
/// ```
pub struct InstrumentedPool<DB: Database> {
    pub(crate) shared: Arc<Shared<DB>>,
    pub(crate) table: Option<Arc<TableSeries>>,
}

/// Configures an [`InstrumentedPool`]; from [`InstrumentedPool::builder`].
#[derive(Debug)]
#[must_use]
pub struct InstrumentedPoolBuilder<DB: Database> {
    pool: Pool<DB>,
    database: String,
    max_tables: usize,
}

impl<DB: Database> InstrumentedPoolBuilder<DB> {
    /// The `database` tag of everything this pool records. Default: [`DEFAULT_DATABASE`].
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.database = name.into();
        self
    }

    /// How many distinct `table` tag values the pool records before folding new tables into
    /// [`OVERFLOW_TABLE`](crate::OVERFLOW_TABLE). Default: [`DEFAULT_MAX_TABLES`].
    pub fn max_tables(mut self, max: usize) -> Self {
        self.max_tables = max;
        self
    }

    /// The instrumented pool.
    pub fn build(self) -> InstrumentedPool<DB> {
        InstrumentedPool {
            shared: Arc::new(Shared {
                pool: self.pool,
                metrics: PoolMetrics::new(&self.database, self.max_tables),
            }),
            table: None,
        }
    }
}

impl<DB: Database> InstrumentedPool<DB> {
    /// Instruments `pool` with the defaults: database [`DEFAULT_DATABASE`], at most
    /// [`DEFAULT_MAX_TABLES`] tables.
    pub fn new(pool: Pool<DB>) -> Self {
        Self::builder(pool).build()
    }

    /// A builder to name the database or change the table cap.
    pub fn builder(pool: Pool<DB>) -> InstrumentedPoolBuilder<DB> {
        InstrumentedPoolBuilder {
            pool,
            database: DEFAULT_DATABASE.to_owned(),
            max_tables: DEFAULT_MAX_TABLES,
        }
    }

    /// The same pool, recording every query under the `table` tag `table` (sanitised and
    /// counted against the cap) instead of the table read from the statement. For joins,
    /// subqueries and `SELECT`s of functions, whose table would otherwise be `unknown`.
    ///
    /// ```no_run
    /// # async fn run(pool: paymetrics_sqlx::InstrumentedPool<sqlx::Postgres>) -> Result<(), sqlx::Error> {
    /// let rows = sqlx::query("SELECT * FROM ledger_entries e JOIN accounts a ON a.id = e.account")
    ///     .fetch_all(&pool.with_table("ledger_entries"))
    ///     .await?;
    /// # let _ = rows; Ok(())
    /// # }
    /// ```
    pub fn with_table(&self, table: &str) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            table: Some(self.shared.metrics.named_table(table)),
        }
    }

    /// The `database` tag of this pool.
    pub fn database(&self) -> &str {
        self.shared.metrics.database()
    }

    /// The sqlx pool inside, for sqlx APIs that take a `&Pool` (also as
    /// [`as_ref`](AsRef::as_ref)). Queries run through it directly are not recorded.
    pub fn get_ref(&self) -> &Pool<DB> {
        &self.shared.pool
    }

    /// A clone of the sqlx pool inside (the same pool, not a new one).
    pub fn into_inner(self) -> Pool<DB> {
        self.shared.pool.clone()
    }

    /// Retrieves a connection, recording the wait as [`POOL_ACQUIRE_TIME`](crate::POOL_ACQUIRE_TIME)
    /// and then the pool gauges. Queries on it (`&mut *conn`) are recorded.
    pub async fn acquire(&self) -> Result<InstrumentedPoolConnection<DB>, Error> {
        let conn = self.shared.acquire().await?;
        Ok(InstrumentedPoolConnection::new(
            conn,
            Arc::clone(&self.shared),
            self.table.clone(),
        ))
    }

    /// A connection if one is idle now (no wait to record), or `None`.
    pub fn try_acquire(&self) -> Option<InstrumentedPoolConnection<DB>> {
        let conn = self.shared.pool.try_acquire()?;
        self.shared.record_pool();
        Some(InstrumentedPoolConnection::new(
            conn,
            Arc::clone(&self.shared),
            self.table.clone(),
        ))
    }

    /// Retrieves a connection (recording the wait) and begins a transaction on it. Queries in
    /// the transaction (`&mut *tx`) are recorded; `BEGIN`, `COMMIT` and `ROLLBACK` are not.
    pub async fn begin(&self) -> Result<InstrumentedTransaction<'static, DB>, Error> {
        self.begin_inner(None).await
    }

    /// Like [`begin`](Self::begin), with a custom `BEGIN` statement (for example
    /// `BEGIN ISOLATION LEVEL SERIALIZABLE`).
    pub async fn begin_with(
        &self,
        statement: impl SqlSafeStr,
    ) -> Result<InstrumentedTransaction<'static, DB>, Error> {
        self.begin_inner(Some(statement.into_sql_str())).await
    }

    async fn begin_inner(
        &self,
        statement: Option<SqlStr>,
    ) -> Result<InstrumentedTransaction<'static, DB>, Error> {
        let conn = self.shared.acquire().await?;
        // What `Pool::begin` does after its own acquire; doing it here lets the wait be timed.
        let tx = Transaction::begin(conn, statement).await?;
        Ok(InstrumentedTransaction::new(
            tx,
            Arc::clone(&self.shared),
            self.table.clone(),
        ))
    }

    /// Records the pool gauges ([`POOL_ACTIVE_CONNECTIONS`](crate::POOL_ACTIVE_CONNECTIONS),
    /// [`POOL_IDLE_CONNECTIONS`](crate::POOL_IDLE_CONNECTIONS),
    /// [`POOL_TOTAL_CONNECTIONS`](crate::POOL_TOTAL_CONNECTIONS)) now. They are also recorded
    /// whenever a connection is acquired; call this from a timer so that an idle pool reports
    /// too:
    ///
    /// ```no_run
    /// # async fn run(pool: paymetrics_sqlx::InstrumentedPool<sqlx::Postgres>) {
    /// let sampled = pool.clone();
    /// tokio::spawn(async move {
    ///     let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
    ///     loop {
    ///         every.tick().await;
    ///         sampled.record_pool_gauges();
    ///     }
    /// });
    /// # }
    /// ```
    pub fn record_pool_gauges(&self) {
        self.shared.record_pool();
    }

    /// Connections open now, idle or in use ([`Pool::size`]).
    pub fn size(&self) -> u32 {
        self.shared.pool.size()
    }

    /// Idle connections now ([`Pool::num_idle`]).
    pub fn num_idle(&self) -> usize {
        self.shared.pool.num_idle()
    }

    /// Closes the pool ([`Pool::close`]).
    pub async fn close(&self) {
        self.shared.pool.close().await;
    }

    /// Whether the pool is closed ([`Pool::is_closed`]).
    pub fn is_closed(&self) -> bool {
        self.shared.pool.is_closed()
    }
}

impl<DB: Database> Clone for InstrumentedPool<DB> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            table: self.table.clone(),
        }
    }
}

impl<DB: Database> fmt::Debug for InstrumentedPool<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedPool")
            .field("database", &self.database())
            .field("pool", &self.shared.pool)
            .finish()
    }
}

/// The sqlx pool inside, for sqlx APIs that take a `&Pool`, such as
/// `sqlx::postgres::PgListener::connect_with(pool.as_ref())`. What runs through it is not
/// recorded.
impl<DB: Database> AsRef<Pool<DB>> for InstrumentedPool<DB> {
    fn as_ref(&self) -> &Pool<DB> {
        &self.shared.pool
    }
}

impl<DB: Database> From<Pool<DB>> for InstrumentedPool<DB> {
    fn from(pool: Pool<DB>) -> Self {
        Self::new(pool)
    }
}

impl<'p, DB> Executor<'p> for &'_ InstrumentedPool<DB>
where
    DB: MeteredDatabase,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let query = Parts::new(query);
        let recording = self
            .shared
            .metrics
            .recording(query.text(), self.table.as_ref());
        let shared = Arc::clone(&self.shared);
        // Acquire and stream in one generator (as `&Pool` does), timing the acquire.
        let results = Generator::new(move |results| async move {
            let mut conn = shared.acquire().await?;
            let mut stream = conn.executor().fetch_many(query);
            while let Some(result) = stream.try_next().await? {
                results.send(result).await;
            }
            Ok(())
        });
        Box::pin(QueryStream::<_, DB>::new(results, recording))
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let query = Parts::new(query);
        let recording = self
            .shared
            .metrics
            .recording(query.text(), self.table.as_ref());
        let shared = Arc::clone(&self.shared);
        Box::pin(QueryFuture::new(
            async move {
                shared
                    .acquire()
                    .await?
                    .executor()
                    .fetch_optional(query)
                    .await
            },
            recording,
        ))
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, Error>>
    where
        'p: 'e,
    {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            shared
                .acquire()
                .await?
                .executor()
                .prepare_with(sql, parameters)
                .await
        })
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<DB>, Error>> {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.acquire().await?.executor().describe(sql).await })
    }
}

/// For code generic over [`Acquire`], such as `sqlx::migrate!().run(&pool)`. The connection it
/// hands out is a plain sqlx connection: the wait for it is recorded, its queries are not. Use
/// [`InstrumentedPool::acquire`] and [`InstrumentedPool::begin`] for recorded ones.
impl<'a, DB: Database> Acquire<'a> for &'_ InstrumentedPool<DB> {
    type Database = DB;
    type Connection = PoolConnection<DB>;

    fn acquire(self) -> BoxFuture<'static, Result<PoolConnection<DB>, Error>> {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.acquire().await })
    }

    fn begin(self) -> BoxFuture<'static, Result<Transaction<'a, DB>, Error>> {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { Transaction::begin(shared.acquire().await?, None).await })
    }
}
