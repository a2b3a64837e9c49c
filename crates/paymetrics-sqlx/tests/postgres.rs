//! The instrumented pool against a real PostgreSQL server (`PAYMETRICS_TEST_POSTGRES_URL`, by
//! default `postgres://postgres@127.0.0.1:5432/test`). Each test creates its own uniquely named
//! table through the bare pool, so only the test's own queries are recorded, and drops it even
//! when the test fails.

mod common;

use std::time::Duration;

use common::{
    DB, POOL, error_tags, postgres_url, tags, unique_table, until, with_paymetrics, with_probe,
};
use futures_util::{FutureExt, TryStreamExt, future::join_all};
use paymetrics_sqlx::{
    InstrumentedPool, POOL_ACQUIRE_TIME, POOL_ACTIVE_CONNECTIONS, POOL_IDLE_CONNECTIONS,
    POOL_TOTAL_CONNECTIONS, QUERIES_COUNT, QUERIES_ERRORS, QUERIES_EXECUTION_TIME,
    QUERIES_ROWS_AFFECTED,
};
use sqlx::{
    AssertSqlSafe, Connection, Executor, PgConnection, PgPool, Postgres, Row, SqlSafeStr,
    postgres::PgPoolOptions,
};

struct Fixture {
    bare: PgPool,
    pool: InstrumentedPool<Postgres>,
    table: Table,
}

/// Drops the table when the test ends, passes or not (on a thread of its own: `Drop` cannot
/// await, and the test's runtime is busy running it).
struct Table(String);

impl Drop for Table {
    fn drop(&mut self) {
        let sql = format!("DROP TABLE IF EXISTS {}", self.0);
        let dropped = std::thread::spawn(move || {
            common::runtime().block_on(async {
                let mut conn = PgConnection::connect(&postgres_url()).await?;
                sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await?;
                conn.close().await
            })
        })
        .join();
        if !std::thread::panicking() {
            dropped.expect("drop thread").expect("DROP TABLE");
        }
    }
}

async fn fixture(table: String, max_connections: u32) -> Fixture {
    let bare = PgPoolOptions::new()
        .max_connections(max_connections)
        .connect(&postgres_url())
        .await
        .expect("PostgreSQL at PAYMETRICS_TEST_POSTGRES_URL");
    let table = Table(table);
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE {} (id BIGINT PRIMARY KEY, amount_cents BIGINT NOT NULL, currency TEXT NOT NULL)",
        table.0
    )))
    .execute(&bare)
    .await
    .expect("CREATE TABLE");
    let pool = InstrumentedPool::builder(bare.clone()).database(DB).build();
    Fixture { bare, pool, table }
}

impl Fixture {
    fn t(&self) -> &str {
        &self.table.0
    }

    /// `sql` with `{t}` replaced by the table's name.
    fn sql(&self, sql: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(sql.replace("{t}", self.t()))
    }
}

#[test]
fn crud_records_every_metric_and_tag() {
    let name = unique_table("crud");
    let table = name.clone();
    let snapshot = with_paymetrics(move || async move {
        let f = fixture(table, 2).await;
        let pool = &f.pool;

        let inserted = sqlx::query(f.sql(
            "INSERT INTO {t} (id, amount_cents, currency) VALUES (1, 1250, 'EUR'), (2, 800, 'EUR'), (3, 99, 'USD')",
        ))
        .execute(pool)
        .await
        .unwrap();
        assert_eq!(inserted.rows_affected(), 3);

        let eur = sqlx::query(f.sql("SELECT id FROM {t} WHERE currency = $1"))
            .bind("EUR")
            .fetch_all(pool)
            .await
            .unwrap();
        assert_eq!(eur.len(), 2);
        let none = sqlx::query(f.sql("SELECT id FROM {t} WHERE currency = $1"))
            .bind("GBP")
            .fetch_optional(pool)
            .await
            .unwrap();
        assert!(none.is_none());

        let updated = sqlx::query(
            f.sql("UPDATE {t} SET amount_cents = amount_cents + 1 WHERE currency = 'EUR'"),
        )
        .execute(pool)
        .await
        .unwrap();
        assert_eq!(updated.rows_affected(), 2);

        let deleted = sqlx::query(f.sql("DELETE FROM {t} WHERE id = $1"))
            .bind(3_i64)
            .execute(pool)
            .await
            .unwrap();
        assert_eq!(deleted.rows_affected(), 1);
    });
    let t = name.as_str();

    let count = |op| snapshot.counter(QUERIES_COUNT, &tags(op, t)).unwrap().total;
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
            .histogram(QUERIES_EXECUTION_TIME, &tags(op, t))
            .unwrap();
        assert_eq!(time.count, queries, "{op} execution_time");
        assert!(time.min > 0.0 && time.max < 60_000.0, "{op}: {time:?}");
        let affected = snapshot
            .histogram(QUERIES_ROWS_AFFECTED, &tags(op, t))
            .unwrap();
        assert_eq!(affected.count, queries, "{op} rows_affected");
        assert!((affected.sum - rows).abs() < 0.1, "{op} rows: {affected:?}");
    }
    assert_eq!(snapshot.counter_delta_sum(QUERIES_ERRORS), 0);
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
    assert!(active >= 1.0, "{active}");
    assert_eq!(active + idle, total);
}

#[test]
fn failing_queries_count_errors_by_kind() {
    let name = unique_table("errors");
    let table = name.clone();
    let recorded = common::capture(move || async move {
        let f = fixture(table, 2).await;
        let pool = &f.pool;
        sqlx::query(f.sql("INSERT INTO {t} VALUES (1, 10, 'EUR')"))
            .execute(pool)
            .await
            .unwrap();

        let missing = sqlx::query("SELECT * FROM pm_sqlx_no_such_table")
            .fetch_all(pool)
            .await;
        assert!(matches!(missing, Err(sqlx::Error::Database(_))));
        let duplicate = sqlx::query(f.sql("INSERT INTO {t} VALUES (1, 20, 'EUR')"))
            .execute(pool)
            .await;
        assert!(duplicate.is_err());
        let null =
            sqlx::query(f.sql("INSERT INTO {t} (id, amount_cents) VALUES ($1, $2) RETURNING id"))
                .bind(2_i64)
                .bind(5_i64)
                .fetch_one(pool)
                .await;
        assert!(null.is_err());
        let syntax = sqlx::query("SELEC 1").execute(pool).await;
        assert!(syntax.is_err());
        // A bad argument fails before reaching the server, and is recorded all the same.
        let wrong_type = sqlx::query(f.sql("SELECT id FROM {t} WHERE id = $1"))
            .bind("not a number")
            .fetch_all(pool)
            .await;
        assert!(wrong_type.is_err());
    });
    let t = name.as_str();

    assert_eq!(
        recorded.counter(
            QUERIES_ERRORS,
            &error_tags("select", "pm_sqlx_no_such_table", "database")
        ),
        Some(1)
    );
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("select", "pm_sqlx_no_such_table")),
        Some(1)
    );
    assert_eq!(
        recorded.histogram(
            QUERIES_ROWS_AFFECTED,
            &tags("select", "pm_sqlx_no_such_table")
        ),
        None
    );
    assert_eq!(
        recorded.counter(QUERIES_ERRORS, &error_tags("insert", t, "unique_violation")),
        Some(1)
    );
    assert_eq!(
        recorded.counter(
            QUERIES_ERRORS,
            &error_tags("insert", t, "not_null_violation")
        ),
        Some(1)
    );
    assert_eq!(recorded.counter(QUERIES_COUNT, &tags("insert", t)), Some(3));
    assert_eq!(
        recorded.histogram(QUERIES_ROWS_AFFECTED, &tags("insert", t)),
        Some(vec![1.0])
    );
    assert_eq!(
        recorded.counter(QUERIES_ERRORS, &error_tags("other", "unknown", "database")),
        Some(1)
    );
    assert_eq!(
        recorded.counter(QUERIES_ERRORS, &error_tags("select", t, "database")),
        Some(1)
    );
    assert_eq!(
        recorded
            .histogram(QUERIES_EXECUTION_TIME, &tags("select", t))
            .map(|v| v.len()),
        Some(1)
    );
}

#[test]
fn transactions_record_their_queries() {
    let name = unique_table("tx");
    let table = name.clone();
    let recorded = common::capture(move || async move {
        let f = fixture(table, 2).await;

        let mut tx = f.pool.begin().await.unwrap();
        sqlx::query(f.sql("INSERT INTO {t} VALUES ($1, $2, $3)"))
            .bind(1_i64)
            .bind(500_i64)
            .bind("EUR")
            .execute(&mut *tx)
            .await
            .unwrap();
        {
            let mut savepoint = tx.begin().await.unwrap();
            sqlx::query(f.sql("INSERT INTO {t} VALUES (2, 1, 'EUR')"))
                .execute(&mut *savepoint)
                .await
                .unwrap();
            savepoint.rollback().await.unwrap();
        }
        let seen: i64 = sqlx::query_scalar(f.sql("SELECT count(*) FROM {t}"))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(seen, 1);
        // Not visible outside before the commit.
        let outside: i64 = sqlx::query_scalar(f.sql("SELECT count(*) FROM {t}"))
            .fetch_one(&f.bare)
            .await
            .unwrap();
        assert_eq!(outside, 0);
        tx.commit().await.unwrap();

        let mut serializable = f
            .pool
            .begin_with("BEGIN ISOLATION LEVEL SERIALIZABLE")
            .await
            .unwrap();
        sqlx::query(f.sql("DELETE FROM {t}"))
            .execute(&mut *serializable)
            .await
            .unwrap();
        serializable.rollback().await.unwrap();

        let ids: Vec<i64> = sqlx::query_scalar(f.sql("SELECT id FROM {t}"))
            .fetch_all(&f.bare)
            .await
            .unwrap();
        assert_eq!(ids, [1]);
    });
    let t = name.as_str();

    assert_eq!(recorded.counter(QUERIES_COUNT, &tags("insert", t)), Some(2));
    assert_eq!(
        recorded.histogram(QUERIES_ROWS_AFFECTED, &tags("insert", t)),
        Some(vec![1.0, 1.0])
    );
    assert_eq!(recorded.counter(QUERIES_COUNT, &tags("select", t)), Some(1));
    assert_eq!(recorded.counter(QUERIES_COUNT, &tags("delete", t)), Some(1));
    assert_eq!(
        recorded.histogram(QUERIES_ROWS_AFFECTED, &tags("delete", t)),
        Some(vec![1.0])
    );
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("other", "unknown")),
        None
    );
    assert_eq!(
        recorded
            .histogram(POOL_ACQUIRE_TIME, &POOL)
            .map(|v| v.len()),
        Some(2)
    );
}

#[test]
fn pool_gauges_under_concurrent_load() {
    const MAX: u32 = 4;
    with_probe(|probe| async move {
        let f = fixture(unique_table("gauges"), MAX).await;
        let t = f.t();
        let pool = &f.pool;
        let gauges = |r: &paymetrics::testing::Recorded| {
            (
                r.gauge(POOL_ACTIVE_CONNECTIONS, &POOL).unwrap(),
                r.gauge(POOL_IDLE_CONNECTIONS, &POOL).unwrap(),
                r.gauge(POOL_TOTAL_CONNECTIONS, &POOL).unwrap(),
            )
        };

        let mut conns: Vec<_> = join_all((0..MAX).map(|_| pool.acquire()))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let counts = join_all(conns.iter_mut().map(|conn| {
            sqlx::query_scalar::<_, i64>(f.sql("SELECT count(*) FROM {t}")).fetch_one(&mut **conn)
        }))
        .await;
        assert!(counts.into_iter().all(|c| c.unwrap() == 0));
        let r = probe.read();
        assert_eq!(gauges(&r), (4.0, 0.0, 4.0));
        assert_eq!(r.counter(QUERIES_COUNT, &tags("select", t)), Some(4));
        assert_eq!(
            r.histogram(POOL_ACQUIRE_TIME, &POOL).map(|v| v.len()),
            Some(4)
        );

        drop(conns);
        until(|| pool.num_idle() == MAX as usize).await;
        pool.record_pool_gauges();
        assert_eq!(gauges(&probe.read()), (0.0, 4.0, 4.0));

        let results = join_all((0..16).map(|i| {
            sqlx::query(f.sql("INSERT INTO {t} VALUES ($1, 1, 'EUR')"))
                .bind(i64::from(i))
                .execute(pool)
        }))
        .await;
        assert!(results.into_iter().all(|r| r.is_ok()));
        let r = probe.read();
        let (active, idle, total) = gauges(&r);
        assert_eq!(total, 4.0);
        assert!(active >= 1.0 && active + idle == total, "{active} + {idle}");
        assert_eq!(r.counter(QUERIES_COUNT, &tags("insert", t)), Some(16));
        assert_eq!(
            r.histogram(QUERIES_ROWS_AFFECTED, &tags("insert", t)),
            Some(vec![1.0; 16])
        );
        assert_eq!(
            r.histogram(POOL_ACQUIRE_TIME, &POOL).map(|v| v.len()),
            Some(16)
        );
    });
}

#[test]
fn abandoned_queries_are_recorded_once() {
    with_probe(|probe| async move {
        let f = fixture(unique_table("abandon"), 2).await;
        let t = f.t();
        sqlx::query(f.sql("INSERT INTO {t} SELECT n, 1, 'EUR' FROM generate_series(1, 500) n"))
            .execute(&f.bare)
            .await
            .unwrap();

        // Stops polling after the first of 500 rows.
        let mut rows = sqlx::query(f.sql("SELECT id FROM {t} ORDER BY id")).fetch(&f.pool);
        let first = rows.try_next().await.unwrap().unwrap();
        assert_eq!(first.get::<i64, _>(0), 1);
        drop(rows);
        let r = probe.read();
        assert_eq!(r.counter(QUERIES_COUNT, &tags("select", t)), Some(1));
        assert_eq!(
            r.histogram(QUERIES_ROWS_AFFECTED, &tags("select", t)),
            Some(vec![1.0])
        );
        assert_eq!(
            r.histogram(QUERIES_EXECUTION_TIME, &tags("select", t))
                .map(|v| v.len()),
            Some(1)
        );

        // A query cancelled while the server is still on it: blocked behind a row lock, so the
        // timeout always fires first.
        let mut lock = f.bare.begin().await.unwrap();
        sqlx::query(f.sql("SELECT id FROM {t} WHERE id = 1 FOR UPDATE"))
            .fetch_one(&mut *lock)
            .await
            .unwrap();
        let blocked =
            sqlx::query(f.sql("UPDATE {t} SET amount_cents = 2 WHERE id = 1")).execute(&f.pool);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), blocked)
                .await
                .is_err()
        );
        lock.rollback().await.unwrap();
        let r = probe.read();
        assert_eq!(r.counter(QUERIES_COUNT, &tags("update", t)), Some(1));
        let waited = r
            .histogram(QUERIES_EXECUTION_TIME, &tags("update", t))
            .unwrap();
        assert!(waited.len() == 1 && waited[0] >= 50.0, "{waited:?}");
        // Cancelled before the database said how many rows changed: no rows, no error.
        assert_eq!(r.histogram(QUERIES_ROWS_AFFECTED, &tags("update", t)), None);
        assert!(
            r.counter(QUERIES_ERRORS, &error_tags("update", t, "database"))
                .is_none()
        );

        // A future dropped after its first poll, and one never polled.
        let once = sqlx::query(f.sql("DELETE FROM {t} WHERE id = 500"))
            .execute(&f.pool)
            .now_or_never();
        assert!(once.is_none_or(|done| done.is_ok()));
        drop(sqlx::query(f.sql("DELETE FROM {t}")).execute(&f.pool));
        let r = probe.read();
        assert_eq!(r.counter(QUERIES_COUNT, &tags("delete", t)), Some(1));

        // The connections that were abandoned mid-query still work.
        let (left,): (i64,) = sqlx::query_as(f.sql("SELECT count(*) FROM {t}"))
            .fetch_one(&f.pool)
            .await
            .unwrap();
        assert!(left == 499 || left == 500, "{left}");
        let mut both: Vec<_> = join_all((0..2).map(|_| f.pool.acquire()))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        for conn in &mut both {
            sqlx::query("SELECT 1").execute(&mut **conn).await.unwrap();
        }
        let r = probe.read();
        assert_eq!(r.counter(QUERIES_COUNT, &tags("select", t)), Some(1));
        assert_eq!(
            r.counter(QUERIES_COUNT, &tags("select", "unknown")),
            Some(2)
        );
        assert!(!r.names().contains(&QUERIES_ERRORS.to_owned()));
    });
}

#[test]
fn connections_describe_and_explicit_tables() {
    let name = unique_table("conn");
    let table = name.clone();
    let recorded = common::capture(move || async move {
        let f = fixture(table, 1).await;
        let mut conn = f.pool.acquire().await.unwrap();
        sqlx::query(f.sql("INSERT INTO {t} VALUES (1, 10, 'EUR')"))
            .execute(&mut *conn)
            .await
            .unwrap();
        let joined = sqlx::query(f.sql("SELECT a.id FROM {t} a JOIN {t} b USING (id)"))
            .fetch_all(&mut conn.with_table("Joined"))
            .await
            .unwrap();
        assert_eq!(joined.len(), 1);
        conn.ping().await.unwrap();
        drop(conn);

        let described = (&f.pool)
            .describe(
                f.sql("SELECT id, currency FROM {t} WHERE id = $1")
                    .into_sql_str(),
            )
            .await
            .unwrap();
        assert_eq!(described.columns().len(), 2);
        let series: Vec<i32> = sqlx::query_scalar("SELECT n FROM generate_series(1, 3) n")
            .fetch_all(&f.pool.with_table("series"))
            .await
            .unwrap();
        assert_eq!(series, [1, 2, 3]);
    });
    let t = name.as_str();
    assert_eq!(recorded.counter(QUERIES_COUNT, &tags("insert", t)), Some(1));
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("select", "joined")),
        Some(1)
    );
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("select", "series")),
        Some(1)
    );
    assert_eq!(
        recorded.histogram(QUERIES_ROWS_AFFECTED, &tags("select", "series")),
        Some(vec![3.0])
    );
    // acquire(), describe and the last query.
    assert_eq!(
        recorded
            .histogram(POOL_ACQUIRE_TIME, &POOL)
            .map(|v| v.len()),
        Some(3)
    );
}

/// sqlx APIs that insist on `&PgPool` get the inner pool; the rest of the exchange is recorded.
#[test]
fn a_listener_connects_through_the_inner_pool() {
    let channel = unique_table("channel");
    let recorded = common::capture(|| async {
        let bare = PgPoolOptions::new()
            .max_connections(2)
            .connect(&postgres_url())
            .await
            .expect("PostgreSQL at PAYMETRICS_TEST_POSTGRES_URL");
        let pool = InstrumentedPool::builder(bare).database(DB).build();
        let mut listener = sqlx::postgres::PgListener::connect_with(pool.as_ref())
            .await
            .unwrap();
        listener.listen(&channel).await.unwrap();
        sqlx::query("SELECT pg_notify($1, 'captured')")
            .bind(&channel)
            .execute(&pool)
            .await
            .unwrap();
        let notification = tokio::time::timeout(Duration::from_secs(30), listener.recv())
            .await
            .expect("a notification in time")
            .unwrap();
        assert_eq!(
            (notification.channel(), notification.payload()),
            (channel.as_str(), "captured")
        );
    });
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("select", "unknown")),
        Some(1)
    );
}
