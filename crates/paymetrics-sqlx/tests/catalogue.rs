//! Everything the instrumented pool records is in this crate's catalogue, and every catalogue
//! entry is recorded by it: the catalogue cannot drift from the code.

use std::collections::BTreeSet;

use paymetrics::catalogue::Catalogue;
use paymetrics_sqlx::{InstrumentedPool, Operation, catalogue::METRICS};
use sqlx::sqlite::SqlitePoolOptions;

#[test]
fn every_recorded_series_is_catalogued_and_every_entry_is_recorded() {
    let mut catalogue = Catalogue::core();
    catalogue.extend(METRICS).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let recorded = catalogue
        .check_during(|| {
            runtime.block_on(async {
                let bare = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect("sqlite::memory:")
                    .await
                    .unwrap();
                let pool = InstrumentedPool::builder(bare).database("payments").build();
                sqlx::query("CREATE TABLE payments (id BIGINT PRIMARY KEY)")
                    .execute(&pool)
                    .await
                    .unwrap();
                sqlx::query("INSERT INTO payments (id) VALUES (1)")
                    .execute(&pool)
                    .await
                    .unwrap();
                // A duplicate key: the error series.
                sqlx::query("INSERT INTO payments (id) VALUES (1)")
                    .execute(&pool)
                    .await
                    .unwrap_err();
                pool.record_pool_gauges();
            })
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let catalogued: BTreeSet<_> = METRICS.iter().map(|d| d.name.to_owned()).collect();
    let recorded: BTreeSet<_> = recorded.into_iter().collect();
    assert_eq!(recorded, catalogued);
}

#[test]
fn the_operation_values_are_every_operation() {
    let def = METRICS
        .iter()
        .find(|d| d.name == paymetrics_sqlx::QUERIES_COUNT)
        .unwrap();
    let values = def
        .tag(paymetrics_sqlx::OPERATION_TAG)
        .unwrap()
        .values
        .unwrap();
    let all: Vec<_> = Operation::ALL.iter().map(|o| o.as_str()).collect();
    assert_eq!(values, all.as_slice());
}
