//! An app written with sqlx's compile-time checked macros (`query!`, `query_as!`,
//! `query_scalar!`, `migrate!`) builds and runs unchanged against the instrumented pool, its
//! connections and its transactions, and every query is recorded.
//!
//! The macros need each query's description at compile time. They read it from this crate's
//! `.sqlx/` directory (committed), so the test builds with no database and no environment
//! variables; `.env` beside `Cargo.toml` sets `SQLX_OFFLINE=true` so that a `DATABASE_URL` meant
//! for something else is never used. After changing a query or the schema in `migrations/`,
//! regenerate the descriptions from the crate's directory:
//!
//! ```text
//! rm -rf .sqlx /tmp/pm-sqlx-macros.db && mkdir .sqlx
//! sqlite3 /tmp/pm-sqlx-macros.db < tests/migrations/0001_payments.sql
//! touch tests/macros.rs
//! SQLX_OFFLINE=false DATABASE_URL=sqlite:/tmp/pm-sqlx-macros.db SQLX_OFFLINE_DIR=$PWD/.sqlx \
//!     cargo test -p paymetrics-sqlx --test macros --no-run
//! ```

mod common;

use common::{DB, POOL, capture, tags};
use paymetrics_sqlx::{InstrumentedPool, POOL_ACQUIRE_TIME, QUERIES_COUNT, QUERIES_ROWS_AFFECTED};
use sqlx::{Executor, Sqlite, SqlitePool};

#[derive(Debug, PartialEq)]
struct Payment {
    id: i64,
    amount_cents: i64,
    currency: String,
}

// The app's data access, as it was written for `&SqlitePool`.

async fn record_payment(
    db: impl Executor<'_, Database = Sqlite>,
    id: i64,
    amount_cents: i64,
    currency: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "INSERT INTO payments (id, amount_cents, currency) VALUES (?, ?, ?)",
        id,
        amount_cents,
        currency
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

async fn payments_in(
    db: impl Executor<'_, Database = Sqlite>,
    currency: &str,
) -> Result<Vec<Payment>, sqlx::Error> {
    sqlx::query_as!(
        Payment,
        "SELECT id, amount_cents, currency FROM payments WHERE currency = ? ORDER BY id",
        currency
    )
    .fetch_all(db)
    .await
}

async fn total_cents(db: impl Executor<'_, Database = Sqlite>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT COALESCE(SUM(amount_cents), 0) AS "total!: i64" FROM payments"#)
        .fetch_one(db)
        .await
}

#[test]
fn an_app_using_the_query_macros_runs_on_the_wrapper() {
    let recorded = capture(|| async {
        let bare = SqlitePool::connect("sqlite::memory:").await.unwrap();
        let pool = InstrumentedPool::builder(bare).database(DB).build();
        // Migrations take their connection through `Acquire`: plain, not recorded as queries.
        sqlx::migrate!("tests/migrations").run(&pool).await.unwrap();

        assert_eq!(record_payment(&pool, 1, 1250, "EUR").await.unwrap(), 1);
        assert_eq!(record_payment(&pool, 2, 99, "USD").await.unwrap(), 1);

        let mut tx = pool.begin().await.unwrap();
        assert_eq!(record_payment(&mut *tx, 3, 800, "EUR").await.unwrap(), 1);
        let row = sqlx::query!("SELECT count(*) AS n FROM payments")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(row.n, 3);
        tx.commit().await.unwrap();

        let mut conn = pool.acquire().await.unwrap();
        let changed = sqlx::query!(
            "UPDATE payments SET amount_cents = amount_cents + 1 WHERE currency = ?",
            "EUR"
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        assert_eq!(changed.rows_affected(), 2);
        drop(conn);

        assert_eq!(
            payments_in(&pool, "EUR").await.unwrap(),
            [
                Payment {
                    id: 1,
                    amount_cents: 1251,
                    currency: "EUR".into()
                },
                Payment {
                    id: 3,
                    amount_cents: 801,
                    currency: "EUR".into()
                },
            ]
        );
        sqlx::query!("DELETE FROM payments WHERE currency = ?", "USD")
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(total_cents(&pool).await.unwrap(), 2052);
    });

    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("insert", "payments")),
        Some(3)
    );
    assert_eq!(
        recorded.histogram(QUERIES_ROWS_AFFECTED, &tags("insert", "payments")),
        Some(vec![1.0; 3])
    );
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("select", "payments")),
        Some(3)
    );
    // count(*) -> one row; the EUR payments -> two; the total -> one.
    assert_eq!(
        recorded.histogram(QUERIES_ROWS_AFFECTED, &tags("select", "payments")),
        Some(vec![1.0, 2.0, 1.0])
    );
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("update", "payments")),
        Some(1)
    );
    assert_eq!(
        recorded.histogram(QUERIES_ROWS_AFFECTED, &tags("update", "payments")),
        Some(vec![2.0])
    );
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("delete", "payments")),
        Some(1)
    );
    assert_eq!(
        recorded.histogram(QUERIES_ROWS_AFFECTED, &tags("delete", "payments")),
        Some(vec![1.0])
    );
    // Nothing of the migration (it runs on a plain connection) is counted as a query.
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("other", "unknown")),
        None
    );
    assert_eq!(
        recorded.counter(QUERIES_COUNT, &tags("insert", "_sqlx_migrations")),
        None
    );
    // The migration's connection, two inserts, begin, acquire, the select and delete and total.
    assert!(
        recorded
            .histogram(POOL_ACQUIRE_TIME, &POOL)
            .is_some_and(|v| v.len() >= 8)
    );
}
