//! Connections and transactions from an instrumented pool.
//!
//! sqlx 0.9 runs queries on `&mut *conn` and `&mut *tx`, which dereference to the driver's
//! connection. To keep that spelling recording, [`InstrumentedPoolConnection`] and
//! [`InstrumentedTransaction`] dereference to an [`InstrumentedConnection`] (the executor), which
//! in turn dereferences to the driver's connection for everything else (`ping`, `close`, ... and,
//! as `&mut **conn`, unrecorded queries).

use std::{
    fmt,
    ops::{Deref, DerefMut},
    sync::Arc,
};

use futures_core::{future::BoxFuture, stream::BoxStream};
use sqlx::{
    Connection, Database, Describe, Either, Error, Execute, Executor, SqlStr, Transaction,
    pool::PoolConnection,
};

use crate::{
    DriverExecutor, MeteredDatabase,
    execute::Parts,
    pool::Shared,
    series::TableSeries,
    stream::{QueryFuture, QueryStream},
};

/// A connection whose queries are recorded: `&mut InstrumentedConnection` is an [`Executor`].
///
/// You meet it as `&mut *conn` of an [`InstrumentedPoolConnection`] or `&mut *tx` of an
/// [`InstrumentedTransaction`]; `C` is what holds the driver's connection (a
/// [`PoolConnection`], a [`Transaction`], or a borrow of either from
/// [`with_table`](Self::with_table)).
pub struct InstrumentedConnection<DB: Database, C> {
    conn: C,
    shared: Arc<Shared<DB>>,
    table: Option<Arc<TableSeries>>,
}

impl<DB, C> InstrumentedConnection<DB, C>
where
    DB: Database,
    C: DerefMut<Target = DB::Connection>,
{
    fn new(conn: C, shared: Arc<Shared<DB>>, table: Option<Arc<TableSeries>>) -> Self {
        Self {
            conn,
            shared,
            table,
        }
    }

    /// This connection, recording its queries under the `table` tag `table` instead of the
    /// table read from each statement (see [`InstrumentedPool::with_table`](crate::InstrumentedPool::with_table)).
    ///
    /// ```no_run
    /// # async fn run(pool: paymetrics_sqlx::InstrumentedPool<sqlx::Postgres>) -> Result<(), sqlx::Error> {
    /// let mut tx = pool.begin().await?;
    /// sqlx::query("SELECT * FROM hold_release($1)")
    ///     .bind(42_i64)
    ///     .execute(&mut tx.with_table("holds"))
    ///     .await?;
    /// tx.commit().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_table(&mut self, table: &str) -> InstrumentedConnection<DB, &mut DB::Connection> {
        InstrumentedConnection {
            conn: &mut *self.conn,
            table: Some(self.shared.metrics.named_table(table)),
            shared: Arc::clone(&self.shared),
        }
    }

    /// Begins a transaction (or a savepoint inside one) whose queries are recorded.
    pub async fn begin(&mut self) -> Result<InstrumentedTransaction<'_, DB>, Error> {
        let shared = Arc::clone(&self.shared);
        let table = self.table.clone();
        let tx = Connection::begin(&mut *self.conn).await?;
        Ok(InstrumentedTransaction::new(tx, shared, table))
    }

    /// What holds the driver's connection.
    pub fn into_inner(self) -> C {
        self.conn
    }
}

impl<DB, C> Deref for InstrumentedConnection<DB, C>
where
    DB: Database,
    C: Deref<Target = DB::Connection>,
{
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        &self.conn
    }
}

impl<DB, C> DerefMut for InstrumentedConnection<DB, C>
where
    DB: Database,
    C: DerefMut<Target = DB::Connection>,
{
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }
}

impl<DB: Database, C> fmt::Debug for InstrumentedConnection<DB, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedConnection")
            .field("database", &self.shared.metrics.database())
            .finish_non_exhaustive()
    }
}

impl<'c, DB, C> Executor<'c> for &'c mut InstrumentedConnection<DB, C>
where
    DB: MeteredDatabase,
    C: DerefMut<Target = DB::Connection> + Send,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let query = Parts::new(query);
        let recording = self
            .shared
            .metrics
            .recording(query.text(), self.table.as_ref());
        let results = self.conn.executor().fetch_many(query);
        Box::pin(QueryStream::<_, DB>::new(results, recording))
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let query = Parts::new(query);
        let recording = self
            .shared
            .metrics
            .recording(query.text(), self.table.as_ref());
        let row = self.conn.executor().fetch_optional(query);
        Box::pin(QueryFuture::new(row, recording))
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, Error>>
    where
        'c: 'e,
    {
        self.conn.executor().prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<DB>, Error>>
    where
        'c: 'e,
    {
        self.conn.executor().describe(sql)
    }
}

/// A pooled connection whose queries are recorded; from
/// [`InstrumentedPool::acquire`](crate::InstrumentedPool::acquire). Run queries on `&mut *conn`;
/// dropping it returns the connection to the pool.
pub struct InstrumentedPoolConnection<DB: Database> {
    conn: InstrumentedConnection<DB, PoolConnection<DB>>,
}

impl<DB: Database> InstrumentedPoolConnection<DB> {
    pub(crate) fn new(
        conn: PoolConnection<DB>,
        shared: Arc<Shared<DB>>,
        table: Option<Arc<TableSeries>>,
    ) -> Self {
        Self {
            conn: InstrumentedConnection::new(conn, shared, table),
        }
    }

    /// The sqlx connection inside; its queries are not recorded.
    pub fn into_inner(self) -> PoolConnection<DB> {
        self.conn.conn
    }
}

impl<DB: Database> Deref for InstrumentedPoolConnection<DB> {
    type Target = InstrumentedConnection<DB, PoolConnection<DB>>;

    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl<DB: Database> DerefMut for InstrumentedPoolConnection<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

impl<DB: Database> fmt::Debug for InstrumentedPoolConnection<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("InstrumentedPoolConnection")
            .field(&self.conn)
            .finish()
    }
}

/// A transaction whose queries are recorded; from
/// [`InstrumentedPool::begin`](crate::InstrumentedPool::begin) or
/// [`InstrumentedConnection::begin`]. Run queries on `&mut *tx`; as with sqlx, dropping it without
/// [`commit`](Self::commit) rolls back.
pub struct InstrumentedTransaction<'c, DB: Database> {
    conn: InstrumentedConnection<DB, Transaction<'c, DB>>,
}

impl<'c, DB: Database> InstrumentedTransaction<'c, DB> {
    pub(crate) fn new(
        tx: Transaction<'c, DB>,
        shared: Arc<Shared<DB>>,
        table: Option<Arc<TableSeries>>,
    ) -> Self {
        Self {
            conn: InstrumentedConnection::new(tx, shared, table),
        }
    }

    /// Commits the transaction or savepoint.
    pub async fn commit(self) -> Result<(), Error> {
        self.conn.conn.commit().await
    }

    /// Rolls the transaction or savepoint back.
    pub async fn rollback(self) -> Result<(), Error> {
        self.conn.conn.rollback().await
    }

    /// The sqlx transaction inside; its queries are not recorded.
    pub fn into_inner(self) -> Transaction<'c, DB> {
        self.conn.conn
    }
}

impl<'c, DB: Database> Deref for InstrumentedTransaction<'c, DB> {
    type Target = InstrumentedConnection<DB, Transaction<'c, DB>>;

    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl<DB: Database> DerefMut for InstrumentedTransaction<'_, DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

/// The sqlx transaction inside, for a function typed `&mut sqlx::Transaction<'_, DB>` that cannot
/// be made generic over the executor: `f(tx.as_mut())`. Its queries are not recorded; see
/// [the crate documentation](crate#code-typed-against-sqlxs-types) for the generic form, which
/// is.
impl<'c, DB: Database> AsMut<Transaction<'c, DB>> for InstrumentedTransaction<'c, DB> {
    fn as_mut(&mut self) -> &mut Transaction<'c, DB> {
        &mut self.conn.conn
    }
}

impl<DB: Database> fmt::Debug for InstrumentedTransaction<'_, DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("InstrumentedTransaction")
            .field(&self.conn)
            .finish()
    }
}
