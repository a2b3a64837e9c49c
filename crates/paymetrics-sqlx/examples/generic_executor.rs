//! Code written against sqlx's own types, with an instrumented pool: repository functions generic
//! over the executor (so they take the pool, a transaction or a connection, instrumented or
//! not), migrations, and the inner pool where sqlx insists on its own type.
//!
//! ```text
//! cargo run -p paymetrics-sqlx --features sqlite --example generic_executor
//! ```

use paymetrics::export::MemoryExporter;
use paymetrics_sqlx::{InstrumentedPool, QUERIES_COUNT};
use sqlx::{Executor, Sqlite, SqlitePool, Transaction};

/// A repository function: generic over the executor, so it takes `&pool`, `&mut *tx` and
/// `&mut *conn` of sqlx's types and of the instrumented ones alike.
async fn amount<'c, E>(db: E, id: i64) -> Result<Option<i64>, sqlx::Error>
where
    E: Executor<'c, Database = Sqlite>,
{
    sqlx::query_scalar("SELECT amount_cents FROM payments WHERE id = ?")
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Code that cannot change its signature, typed against sqlx's transaction.
async fn legacy_insert(tx: &mut Transaction<'_, Sqlite>, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO payments (id, amount_cents, currency) VALUES (?, 500, 'EUR')")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In a service: `let _metrics = paymetrics::init()?;`. Here, a memory exporter to print from.
    let (exporter, reader) = MemoryExporter::new();
    let metrics = paymetrics::builder()
        .without_dogstatsd()
        .exporter(exporter)
        .install()?;

    let pool = InstrumentedPool::builder(SqlitePool::connect("sqlite::memory:").await?)
        .database("payments")
        .build();

    // Migrations take the pool as it is (through sqlx's `Acquire`), or the inner one.
    sqlx::migrate!("tests/migrations")
        .run(pool.as_ref())
        .await?;

    sqlx::query("INSERT INTO payments (id, amount_cents, currency) VALUES (1, 1250, 'EUR')")
        .execute(&pool)
        .await?;
    println!("through the pool: {:?}", amount(&pool, 1).await?);

    let mut tx = pool.begin().await?;
    println!("in a transaction: {:?}", amount(&mut *tx, 1).await?);
    // Not recorded: the function only takes sqlx's own transaction.
    legacy_insert(tx.as_mut(), 2).await?;
    println!("after the legacy insert: {:?}", amount(&mut *tx, 2).await?);
    tx.commit().await?;

    let mut conn = pool.acquire().await?;
    println!("on a connection: {:?}", amount(&mut *conn, 2).await?);
    drop(conn);

    // The same function on the bare sqlx pool: works, records nothing.
    println!("on the bare pool: {:?}", amount(pool.get_ref(), 1).await?);

    metrics.flush();
    let snapshot = reader.latest().ok_or("no snapshot")?;
    println!(
        "\n{QUERIES_COUNT}: {} queries recorded",
        snapshot.counter_delta_sum(QUERIES_COUNT)
    );
    Ok(())
}
