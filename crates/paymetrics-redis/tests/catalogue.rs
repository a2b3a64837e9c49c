//! Everything a connection records is in this crate's catalogue, and every entry a connection
//! records by itself is exercised: the catalogue cannot drift from the code. (The size gauge
//! and the hit-rate KPI come from the size sampler and the KPI exporter, tested in their own
//! files; here they only need to be catalogued.)

use std::collections::BTreeSet;

use paymetrics::catalogue::Catalogue;
use paymetrics_redis::{
    CACHE_SIZE_CURRENT, InstrumentedConnection, KPI_CACHE_HIT_RATE, catalogue::METRICS,
};
use redis::{AsyncCommands, Cmd, Pipeline, RedisFuture, Value, aio::ConnectionLike};

/// Answers `GET hit` with a value, other `GET`s with nil, `SET` with OK, and fails `DEL`.
#[derive(Clone)]
struct Scripted;

impl ConnectionLike for Scripted {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let packed = String::from_utf8_lossy(&cmd.get_packed_command()).into_owned();
        Box::pin(async move {
            if packed.contains("DEL") {
                Err(std::io::Error::other("connection reset").into())
            } else if packed.contains("GET") && packed.contains("hit") {
                Ok(Value::BulkString(b"v".to_vec()))
            } else if packed.contains("GET") {
                Ok(Value::Nil)
            } else {
                Ok(Value::Okay)
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        _offset: usize,
        _count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let values = vec![Value::Okay; pipeline.len()];
        Box::pin(async move { Ok(values) })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

#[test]
fn every_recorded_series_is_catalogued_and_every_command_entry_is_recorded() {
    let mut catalogue = Catalogue::core();
    catalogue.extend(METRICS).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let recorded = catalogue
        .check_during(|| {
            runtime.block_on(async {
                let mut connection = InstrumentedConnection::new(Scripted);
                let _: Option<String> = connection.get("session:hit").await.unwrap();
                let _: Option<String> = connection.get("session:miss").await.unwrap();
                let _: () = connection.set_ex("session:1", "v", 60).await.unwrap();
                let _ = connection.del::<_, ()>("session:1").await.unwrap_err();
            })
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let catalogued: BTreeSet<_> = METRICS
        .iter()
        .map(|d| d.name.to_owned())
        .filter(|n| n != CACHE_SIZE_CURRENT && n != KPI_CACHE_HIT_RATE)
        .collect();
    let recorded: BTreeSet<_> = recorded.into_iter().collect();
    assert_eq!(recorded, catalogued);
}
