//! The instrumented pool against a real SQLite database, in memory: every metric and tag a user
//! would see for each operation, failures, transactions, connections, pool gauges under load,
//! and queries abandoned part-way.

mod common;

use std::time::Duration;

use common::{DB, POOL, capture, error_tags, tags, until, with_paymetrics, with_probe};
use futures_util::{FutureExt, StreamExt, TryStreamExt, future::join_all};
use paymetrics_sqlx::{
    InstrumentedPool, POOL_ACQUIRE_TIME, POOL_ACTIVE_CONNECTIONS, POOL_IDLE_CONNECTIONS,
    POOL_TOTAL_CONNECTIONS, QUERIES_COUNT, QUERIES_ERRORS, QUERIES_EXECUTION_TIME,
    QUERIES_ROWS_AFFECTED,
};
use sqlx::{Connection, Executor, Row, SqlSafeStr, Sqlite, SqlitePool, sqlite::SqlitePoolOptions};

const SCHEMA: &str = "CREATE TABLE payments (
    id BIGINT PRIMARY KEY,
    amount_cents BIGINT NOT NULL,
    currency TEXT NOT NULL
)";

/// A fresh in-memory database (shared by the pool's connections) with `payments`, created
/// through the bare pool so that only the test's own queries are recorded.
async fn pool(max_connections: u32) -> (SqlitePool, InstrumentedPool<Sqlite>) {
    let bare = SqlitePoolOptions::new()
        .max_connections(max_connections)
        .connect("sqlite::memory:")
        .await
        .expect("in-memory SQLite");
    sqlx::raw_sql(SCHEMA).execute(&bare).await.expect("schema");
    let pool = InstrumentedPool::builder(bare.clone()).database(DB).build();
    (bare, pool)
}

#[test]
fn crud_records_every_metric_and_tag() {
    let snapshot = with_paymetrics(|| async {
        let (_bare, pool) = pool(2).await;

        let inserted = sqlx::query(
            "INSERT INTO payments (id, amount_cents, currency) VALUES (1, 1250, 'EUR'), (2, 800, 'EUR'), (3, 99, 'USD')",
        )
        .execute(&pool)
        .await
        .unwrap();
        assert_eq!(inserted.rows_affected(), 3);

        let eur = sqlx::query("SELECT id FROM payments WHERE currency = ?")
            .bind("EUR")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(eur.len(), 2);
        let none = sqlx::query("SELECT id FROM payments WHERE currency = ?")
            .bind("GBP")
            .fetch_optional(&pool)
            .await
            .unwrap();
        assert!(none.is_none());

        let updated = sqlx::query(
            "UPDATE payments SET amount_cents = amount_cents + 1 WHERE currency = 'EUR'",
        )
        .execute(&pool)
        .await
        .unwrap();
        assert_eq!(updated.rows_affected(), 2);

        let deleted = sqlx::query("DELETE FROM payments WHERE id = ?")
            .bind(3_i64)
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(deleted.rows_affected(), 1);
    });

    let count = |op| {
        snapshot
            .counter(QUERIES_COUNT, &tags(op, "payments"))
            .unwrap()
            .total
    };
    assert_eq!(count("insert"), 1);
    assert_eq!(count("select"), 2);
    assert_eq!(count("update"), 1);
    assert_eq!(count("delete"), 1);

    for (op, queries, rows) in [
        ("insert", 1, 3.0),
        ("select", 2, 2.0),
        ("update", 1, 2.0),
        ("delete", 1, 1.0),
    ] {
        let time = snapshot
            .histogram(QUERIES_EXECUTION_TIME, &tags(op, "payments"))
            .unwrap();
        assert_eq!(time.count, queries, "{op} execution_time");
        assert!(time.min >= 0.0 && time.max < 60_000.0, "{op}: {time:?}");
        let affected = snapshot
            .histogram(QUERIES_ROWS_AFFECTED, &tags(op, "payments"))
            .unwrap();
        assert_eq!(affected.count, queries, "{op} rows_affected");
        assert!((affected.sum - rows).abs() < 0.1, "{op} rows: {affected:?}");
    }
    // The two selects returned 2 rows and none.
    let select_rows = snapshot
        .histogram(QUERIES_ROWS_AFFECTED, &tags("select", "payments"))
        .unwrap();
    assert_eq!((select_rows.min, select_rows.max), (0.0, 2.0));

    assert_eq!(snapshot.counter_delta_sum(QUERIES_ERRORS), 0);
    // Five queries, five connections taken from the pool.
    assert_eq!(
        snapshot.histogram(POOL_ACQUIRE_TIME, &POOL).unwrap().count,
        5
    );
    let total = snapshot.gauge(POOL_TOTAL_CONNECTIONS, &POOL).unwrap().value;
    let idle = snapshot.gauge(POOL_IDLE_CONNECTIONS, &POOL).unwrap().value;
    let active = snapshot
        .gauge(POOL_ACTIVE_CONNECTIONS, &POOL)
        .unwrap()
        .value;
    assert!((1.0..=2.0).contains(&total), "total {total}");
    assert!(
        active >= 1.0,
        "the query being acquired for is active: {active}"
    );
    assert_eq!(active + idle, total);
}

#[test]
fn failing_queries_count_errors_by_kind() {
    let recorded = capture(|| async {
        let (_bare, pool) = pool(1).await;
        sqlx::query("INSERT INTO payments VALUES (1, 10, 'EUR')")
            .execute(&pool)
            .await
            .unwrap();

        let missing = sqlx::query("SELECT * FROM refunds").fetch_all(&pool).await;
        assert!(matches!(missing, Err(sqlx::Error::Database(_))));
        let duplicate = sqlx::query("INSERT INTO payments VALUES (1, 20, 'EUR')")
            .execute(&pool)
            .await;
        assert!(duplicate.is_err());
        let null = sqlx::query("INSERT INTO payments (id, amount_cents) VALUES (?, ?)")
            .bind(2_i64)
            .bind(5_i64)
            .fetch_optional(&pool)
            .await;
        assert!(null.is_err());
        // No row is not an error of the query: `fetch_one` turns it into `RowNotFound` above
        // the executor.
        let not_found = sqlx::query("SELECT id FROM payments WHERE id = 99")
            .fetch_one(&pool)
            .await;
        assert!(matches!(not_found, Err(sqlx::Error::RowNotFound)));
    });

    assert_eq!(
        recorded.counter(QUERIES_ERRORS, &error_tags("select", "refunds", "database")),
        Some(1)
    );
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("select", "refunds")),
        Some(1)
    );
    assert_eq!(
        recorded
            .histogram(QUERIES_EXECUTION_TIME, &tags("select", "refunds"))
            .map(|v| v.len()),
        Some(1)
    );
    assert_eq!(
        recorded.histogram(QUERIES_ROWS_AFFECTED, &tags("select", "refunds")),
        None
    );

    assert_eq!(
        recorded.counter(
            QUERIES_ERRORS,
            &error_tags("insert", "payments", "unique_violation")
        ),
        Some(1)
    );
    assert_eq!(
        recorded.counter(
            QUERIES_ERRORS,
            &error_tags("insert", "payments", "not_null_violation")
        ),
        Some(1)
    );
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("insert", "payments")),
        Some(3)
    );
    // Only the successful insert reports rows.
    assert_eq!(
        recorded.histogram(QUERIES_ROWS_AFFECTED, &tags("insert", "payments")),
        Some(vec![1.0])
    );

    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("select", "payments")),
        Some(1)
    );
    assert_eq!(
        recorded.histogram(QUERIES_ROWS_AFFECTED, &tags("select", "payments")),
        Some(vec![0.0])
    );
}

#[test]
fn a_pool_timeout_is_a_query_error() {
    let recorded = capture(|| async {
        let bare = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_millis(50))
            .connect("sqlite::memory:")
            .await
            .unwrap();
        let pool = InstrumentedPool::builder(bare).database(DB).build();
        // The only connection is held, so the query cannot get one before the timeout.
        let held = pool.acquire().await.unwrap();
        let timed_out = sqlx::query("SELECT 1").fetch_one(&pool).await;
        assert!(
            matches!(timed_out, Err(sqlx::Error::PoolTimedOut)),
            "{timed_out:?}"
        );
        drop(held);
    });
    assert_eq!(
        recorded.counter(
            QUERIES_ERRORS,
            &error_tags("select", "unknown", "pool_timed_out")
        ),
        Some(1)
    );
    let waited = recorded
        .histogram(QUERIES_EXECUTION_TIME, &tags("select", "unknown"))
        .unwrap();
    assert!(waited.len() == 1 && waited[0] >= 50.0, "{waited:?}");
    // The held connection's wait, then the query's.
    let waits = recorded.histogram(POOL_ACQUIRE_TIME, &POOL).unwrap();
    assert!(waits.len() == 2 && waits[1] >= 50.0, "{waits:?}");
}

#[test]
fn transactions_record_their_queries() {
    let recorded = capture(|| async {
        let (bare, pool) = pool(2).await;

        let mut tx = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO payments VALUES (?, ?, ?)")
            .bind(1_i64)
            .bind(500_i64)
            .bind("EUR")
            .execute(&mut *tx)
            .await
            .unwrap();
        {
            // A savepoint, rolled back.
            let mut savepoint = tx.begin().await.unwrap();
            sqlx::query("INSERT INTO payments VALUES (2, 1, 'EUR')")
                .execute(&mut *savepoint)
                .await
                .unwrap();
            savepoint.rollback().await.unwrap();
        }
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(seen, 1);
        tx.commit().await.unwrap();

        let mut rolled_back = pool.begin().await.unwrap();
        sqlx::query("DELETE FROM payments")
            .execute(&mut *rolled_back)
            .await
            .unwrap();
        rolled_back.rollback().await.unwrap();

        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM payments")
            .fetch_all(&bare)
            .await
            .unwrap();
        assert_eq!(ids, [1]);
    });

    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("insert", "payments")),
        Some(2)
    );
    assert_eq!(
        recorded.histogram(QUERIES_ROWS_AFFECTED, &tags("insert", "payments")),
        Some(vec![1.0, 1.0])
    );
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("select", "payments")),
        Some(1)
    );
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("delete", "payments")),
        Some(1)
    );
    assert_eq!(
        recorded.histogram(QUERIES_ROWS_AFFECTED, &tags("delete", "payments")),
        Some(vec![1.0])
    );
    // BEGIN, SAVEPOINT, COMMIT and ROLLBACK are not queries of the app.
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("other", "unknown")),
        None
    );
    // One connection per transaction.
    assert_eq!(
        recorded
            .histogram(POOL_ACQUIRE_TIME, &POOL)
            .map(|v| v.len()),
        Some(2)
    );
}

#[test]
fn acquired_connections_and_explicit_tables() {
    let recorded = capture(|| async {
        let (_bare, pool) = pool(1).await;
        let mut conn = pool.acquire().await.unwrap();
        sqlx::query("INSERT INTO payments VALUES (1, 10, 'EUR')")
            .execute(&mut *conn)
            .await
            .unwrap();
        // A join names no single table: the caller says which.
        let joined = sqlx::query("SELECT p.id FROM payments p JOIN payments q ON q.id = p.id")
            .fetch_all(&mut conn.with_table("Payments_Join"))
            .await
            .unwrap();
        assert_eq!(joined.len(), 1);
        conn.ping().await.unwrap();
        drop(conn);

        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(one, 1);
        let sub = sqlx::query("SELECT * FROM (SELECT id FROM payments)")
            .fetch_all(&pool.with_table("payments"))
            .await
            .unwrap();
        assert_eq!(sub.len(), 1);
        sqlx::raw_sql("CREATE INDEX payments_currency ON payments (currency)")
            .execute(&pool)
            .await
            .unwrap();
    });

    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("insert", "payments")),
        Some(1)
    );
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("select", "payments_join")),
        Some(1)
    );
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("select", "unknown")),
        Some(1)
    );
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("select", "payments")),
        Some(1)
    );
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("other", "unknown")),
        Some(1)
    );
    // DDL reports no rows (SQLite's change count is stale after it).
    assert_eq!(
        recorded.histogram(QUERIES_ROWS_AFFECTED, &tags("other", "unknown")),
        None
    );
    // acquire() once, then two queries and the DDL through the pool.
    assert_eq!(
        recorded
            .histogram(POOL_ACQUIRE_TIME, &POOL)
            .map(|v| v.len()),
        Some(4)
    );
}

#[test]
fn pool_gauges_under_concurrent_load() {
    const MAX: u32 = 3;
    with_probe(|probe| async move {
        let (_bare, pool) = pool(MAX).await;
        let gauges = |r: &paymetrics::testing::Recorded| {
            (
                r.gauge(POOL_ACTIVE_CONNECTIONS, &POOL).unwrap(),
                r.gauge(POOL_IDLE_CONNECTIONS, &POOL).unwrap(),
                r.gauge(POOL_TOTAL_CONNECTIONS, &POOL).unwrap(),
            )
        };

        // Every connection taken, and all of them busy at once.
        let mut conns: Vec<_> = join_all((0..MAX).map(|_| pool.acquire()))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let counts = join_all(conns.iter_mut().map(|conn| {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM payments").fetch_one(&mut **conn)
        }))
        .await;
        assert!(counts.into_iter().all(|c| c.unwrap() == 0));
        let r = probe.read();
        // Sampled as the last connection was handed out.
        assert_eq!(gauges(&r), (3.0, 0.0, 3.0));
        assert_eq!(
            r.counter(QUERIES_COUNT, &tags("select", "payments")),
            Some(3)
        );
        assert_eq!(
            r.histogram(POOL_ACQUIRE_TIME, &POOL).map(|v| v.len()),
            Some(3)
        );

        // All returned.
        drop(conns);
        until(|| pool.num_idle() == MAX as usize).await;
        pool.record_pool_gauges();
        assert_eq!(gauges(&probe.read()), (0.0, 3.0, 3.0));

        // More queries than connections, all at once: some wait for a connection.
        let results = join_all((0..12).map(|i| {
            sqlx::query("INSERT INTO payments VALUES (?, 1, 'EUR')")
                .bind(i64::from(i))
                .execute(&pool)
        }))
        .await;
        assert!(results.into_iter().all(|r| r.is_ok()));
        let r = probe.read();
        let (active, idle, total) = gauges(&r);
        assert_eq!(total, 3.0);
        assert!(active >= 1.0 && active + idle == total, "{active} + {idle}");
        assert_eq!(
            r.counter(QUERIES_COUNT, &tags("insert", "payments")),
            Some(12)
        );
        assert_eq!(
            r.histogram(QUERIES_ROWS_AFFECTED, &tags("insert", "payments")),
            Some(vec![1.0; 12])
        );
        assert_eq!(
            r.histogram(POOL_ACQUIRE_TIME, &POOL).map(|v| v.len()),
            Some(12)
        );
    });
}

#[test]
fn abandoned_queries_are_recorded_once() {
    let rest = with_probe(|probe| async move {
        let (bare, pool) = pool(1).await;
        for id in 0..5_i64 {
            sqlx::query("INSERT INTO payments VALUES (?, 1, 'EUR')")
                .bind(id)
                .execute(&bare)
                .await
                .unwrap();
        }

        // Stops polling after the first row.
        let mut rows = sqlx::query("SELECT id FROM payments ORDER BY id").fetch(&pool);
        let first = rows.try_next().await.unwrap().unwrap();
        assert_eq!(first.get::<i64, _>(0), 0);
        drop(rows);
        let r = probe.read();
        assert_eq!(
            r.counter(QUERIES_COUNT, &tags("select", "payments")),
            Some(1)
        );
        assert_eq!(
            r.histogram(QUERIES_ROWS_AFFECTED, &tags("select", "payments")),
            Some(vec![1.0])
        );
        assert_eq!(
            r.histogram(QUERIES_EXECUTION_TIME, &tags("select", "payments"))
                .map(|v| v.len()),
            Some(1)
        );

        // The same on a connection, after two rows.
        {
            let mut conn = pool.acquire().await.unwrap();
            let two: Vec<_> = sqlx::query("SELECT id FROM payments")
                .fetch(&mut *conn)
                .take(2)
                .collect()
                .await;
            assert_eq!(two.len(), 2);
        }
        let r = probe.read();
        assert_eq!(
            r.counter(QUERIES_COUNT, &tags("select", "payments")),
            Some(1)
        );
        assert_eq!(
            r.histogram(QUERIES_ROWS_AFFECTED, &tags("select", "payments")),
            Some(vec![2.0])
        );

        // A future dropped after its first poll.
        let once = sqlx::query("DELETE FROM payments WHERE id = 4")
            .execute(&pool)
            .now_or_never();
        assert!(once.is_none_or(|done| done.is_ok()));
        // A future never polled never ran.
        drop(sqlx::query("DELETE FROM payments").execute(&pool));
        let r = probe.read();
        assert_eq!(
            r.counter(QUERIES_COUNT, &tags("delete", "payments")),
            Some(1)
        );
        assert_eq!(
            r.histogram(QUERIES_EXECUTION_TIME, &tags("delete", "payments"))
                .map(|v| v.len()),
            Some(1)
        );

        // A stream read to its end and polled again records once.
        let mut rows = sqlx::query("SELECT id FROM payments WHERE id < 2").fetch(&pool);
        while rows.try_next().await.unwrap().is_some() {}
        assert!(rows.try_next().await.unwrap().is_none());
        drop(rows);
        let r = probe.read();
        assert_eq!(
            r.counter(QUERIES_COUNT, &tags("select", "payments")),
            Some(1)
        );
        assert_eq!(
            r.histogram(QUERIES_ROWS_AFFECTED, &tags("select", "payments")),
            Some(vec![2.0])
        );

        // The pool is still usable: the abandoned queries gave their connection back.
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(left == 4 || left == 5, "{left}");
    });
    assert_eq!(
        rest.counter(QUERIES_COUNT, &tags("select", "payments")),
        Some(1)
    );
    assert!(!rest.names().contains(&QUERIES_ERRORS.to_owned()));
}

#[test]
fn tables_past_the_cap_are_tagged_other() {
    let recorded = capture(|| async {
        let bare = SqlitePool::connect("sqlite::memory:").await.unwrap();
        sqlx::raw_sql("CREATE TABLE a (x INT); CREATE TABLE b (x INT);")
            .execute(&bare)
            .await
            .unwrap();
        let pool = InstrumentedPool::builder(bare)
            .database(DB)
            .max_tables(1)
            .build();
        sqlx::query("SELECT * FROM a")
            .fetch_all(&pool)
            .await
            .unwrap();
        sqlx::query("SELECT * FROM b")
            .fetch_all(&pool)
            .await
            .unwrap();
        sqlx::query("SELECT * FROM a")
            .fetch_all(&pool)
            .await
            .unwrap();
    });
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("select", "a")),
        Some(2)
    );
    assert_eq!(recorded.counter(QUERIES_COUNT, &tags("select", "b")), None);
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("select", "other")),
        Some(1)
    );
}

#[test]
fn describe_prepare_and_acquire_reach_the_inner_pool() {
    let recorded = capture(|| async {
        let (_bare, pool) = pool(1).await;
        let described = (&pool)
            .describe("SELECT id, currency FROM payments".into_sql_str())
            .await
            .unwrap();
        assert_eq!(described.columns().len(), 2);
        let statement = (&pool)
            .prepare("SELECT amount_cents FROM payments WHERE id = ?".into_sql_str())
            .await
            .unwrap();
        assert_eq!(sqlx::Statement::columns(&statement).len(), 1);
        // A prepared statement's query runs through the wrapper too.
        let none = sqlx::Statement::query(&statement)
            .bind(1_i64)
            .fetch_optional(&pool)
            .await
            .unwrap();
        assert!(none.is_none());
        // Generic `Acquire` code gets a plain connection.
        let mut plain = sqlx::Acquire::acquire(&pool).await.unwrap();
        sqlx::query("SELECT 1").execute(&mut *plain).await.unwrap();
    });
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("select", "payments")),
        Some(1)
    );
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("select", "unknown")),
        None
    );
    // describe, prepare, the query and Acquire each took a connection.
    assert_eq!(
        recorded
            .histogram(POOL_ACQUIRE_TIME, &POOL)
            .map(|v| v.len()),
        Some(4)
    );
}

/// A repository function written as the crate documentation recommends: generic over the
/// executor instead of typed `&SqlitePool` or `&mut Transaction`.
async fn amount<'c, E>(db: E, id: i64) -> Option<i64>
where
    E: Executor<'c, Database = Sqlite>,
{
    sqlx::query_scalar("SELECT amount_cents FROM payments WHERE id = ?")
        .bind(id)
        .fetch_optional(db)
        .await
        .expect("select")
}

#[test]
fn generic_executor_functions_take_the_instrumented_pool_transaction_and_connection() {
    let recorded = capture(|| async {
        let (bare, pool) = pool(2).await;
        sqlx::query("INSERT INTO payments VALUES (1, 1250, 'EUR')")
            .execute(&bare)
            .await
            .unwrap();

        assert_eq!(amount(&pool, 1).await, Some(1250));
        let mut tx = pool.begin().await.unwrap();
        assert_eq!(amount(&mut *tx, 1).await, Some(1250));
        // Code typed against sqlx's transaction gets it, unrecorded.
        let inner: &mut sqlx::Transaction<'static, Sqlite> = tx.as_mut();
        assert_eq!(amount(&mut **inner, 1).await, Some(1250));
        tx.commit().await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        assert_eq!(amount(&mut *conn, 1).await, Some(1250));
        drop(conn);
        // And the same function still takes sqlx's own pool, unrecorded.
        assert_eq!(amount(pool.get_ref(), 1).await, Some(1250));
        assert_eq!(amount(&bare, 2).await, None);
    });
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("select", "payments")),
        Some(3),
        "the pool, the transaction and the connection; not the inner transaction or pools"
    );
}

#[test]
fn migrations_run_on_the_inner_pool_or_the_instrumented_one() {
    let recorded = capture(|| async {
        for inner in [true, false] {
            let bare = SqlitePool::connect("sqlite::memory:").await.unwrap();
            let pool = InstrumentedPool::builder(bare).database(DB).build();
            let migrator = sqlx::migrate!("tests/migrations");
            if inner {
                migrator.run(pool.as_ref()).await.unwrap();
            } else {
                migrator.run(&pool).await.unwrap();
            }
            sqlx::query("INSERT INTO payments (amount_cents, currency) VALUES (99, 'USD')")
                .execute(&pool)
                .await
                .expect("the migrated table");
        }
    });
    // The migrations' own statements are not queries of the app; the inserts are.
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("insert", "payments")),
        Some(2)
    );
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("other", "unknown")),
        None
    );
}
