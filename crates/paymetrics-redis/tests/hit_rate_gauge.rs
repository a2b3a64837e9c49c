//! The hit-rate KPI gauge as production sees it: paymetrics installed as the global recorder,
//! the `HitRateExporter` setting `kpi.cache.hit_rate` on the flusher thread, and the gauge in
//! the following flush. Its own test binary: it installs a process-wide recorder.

mod common;

use std::time::Duration;

use common::{cleanup, connect, unique};
use paymetrics::{PaymetricsBuilder, export::MemoryExporter};
use paymetrics_redis::{HitRateExporter, InstrumentedConnection, KPI_CACHE_HIT_RATE};
use redis::AsyncCommands;

#[test]
fn the_kpi_gauge_reaches_the_global_recorder_after_a_flush() {
    let (memory, snapshots) = MemoryExporter::new();
    let (kpi, hit_rate) = HitRateExporter::new();
    let metrics = PaymetricsBuilder::new()
        .without_dogstatsd()
        .flush_interval(Duration::from_secs(3600))
        .exporter(memory)
        .exporter(kpi)
        .install()
        .unwrap();

    let id = unique("gauge");
    let key = format!("user:{id}");
    common::runtime().block_on(async {
        let mut cache = InstrumentedConnection::new(connect().await);
        let _: () = cache.set_ex(&key, "v", 60).await.unwrap();
        for _ in 0..4 {
            let _: Option<String> = cache.get(&key).await.unwrap();
        }
        let _: Option<String> = cache.get(format!("user:{id}:missing")).await.unwrap();
        cleanup(&key).await;
    });

    assert!(metrics.flush());
    assert_eq!(hit_rate.hit_rate("redis"), Some(80.0));
    // The exporter set the gauge during that flush; the next one carries it.
    assert!(metrics.flush());
    let latest = snapshots.latest().unwrap();
    let gauge = latest
        .gauge(KPI_CACHE_HIT_RATE, &[("cache_type", "redis")])
        .expect("the KPI gauge");
    assert_eq!(gauge.value, 80.0);
    assert!(gauge.updated);
}
