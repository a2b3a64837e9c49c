//! A fleet simulation: 100, 1,000 and 10,000 simulated instances write one interval's report
//! (an hour's totals, a minute's, and a daily-users sketch of 200 users each) to the Redis at
//! `REDIS_URL` (`REDIS_CLUSTER=true` for a cluster), then one publisher reads the fleet's
//! totals and sketch. Prints, per fleet size: Redis commands and bytes in and out for the
//! writes and for the publication (from `INFO stats` of the node serving the namespace), the
//! publisher's time, the memory of the sketch key and of the hour's totals key, and the
//! instances' write latency (p50, p99; one write at a time).
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p paymetrics-automation --example fleet_simulation
//! ```

use std::time::{Instant, SystemTime};

use paymetrics::{kpi::PeriodTotals, uniques::HyperLogLog};
use paymetrics_automation::{
    RedisStore,
    store::{FleetStore, Granularity, InstanceReport, SketchKey},
};

async fn stats(c: &mut redis::aio::MultiplexedConnection) -> [u64; 3] {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(c)
        .await
        .unwrap();
    let get = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
            .unwrap_or(0)
    };
    [
        get("total_commands_processed"),
        get("total_net_input_bytes"),
        get("total_net_output_bytes"),
    ]
}

fn delta(a: [u64; 3], b: [u64; 3]) -> String {
    format!(
        "{} commands, {} B in, {} B out",
        b[0] - a[0],
        b[1] - a[1],
        b[2] - a[2]
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let cluster = std::env::var("REDIS_CLUSTER").is_ok_and(|v| v == "true");
    let now = SystemTime::now();
    let day = SketchKey::daily_active_users(now);
    for fleet in [100usize, 1_000, 10_000] {
        let ns = format!("sim-{fleet}-{}", std::process::id());
        let store = RedisStore::builder(&url)
            .namespace(&ns)
            .cluster(cluster)
            .build()
            .unwrap();
        // The node serving the namespace (on a cluster: its slot's primary, by redirection).
        let mut probe = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        if cluster {
            let slot: u16 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(format!("{{{ns}}}"))
                .query_async(&mut probe)
                .await
                .unwrap();
            let slots: redis::Value = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async(&mut probe)
                .await
                .unwrap();
            if let redis::Value::Array(ranges) = slots {
                for r in ranges {
                    if let redis::Value::Array(r) = r
                        && let (Ok(a), Ok(b)) = (
                            redis::from_redis_value::<u16>(r[0].clone()),
                            redis::from_redis_value::<u16>(r[1].clone()),
                        )
                        && (a..=b).contains(&slot)
                        && let redis::Value::Array(node) = &r[2]
                    {
                        let port: u16 = redis::from_redis_value(node[1].clone()).unwrap();
                        probe = redis::Client::open(format!("redis://127.0.0.1:{port}"))
                            .unwrap()
                            .get_multiplexed_async_connection()
                            .await
                            .unwrap();
                    }
                }
            }
        }
        let reports: Vec<InstanceReport> = (0..fleet)
            .map(|i| {
                let mut r = InstanceReport::new(now);
                let totals = PeriodTotals {
                    payments: 10,
                    volume: 125.5,
                    ..Default::default()
                };
                r.minutes.push((60, totals));
                r.hours.push((3600, totals));
                let hll = HyperLogLog::new();
                for u in 0..200 {
                    hll.insert(format!("user-{}", (i * 137 + u) % 1_000_000).as_bytes());
                }
                r.sketches.push((day, hll.to_bytes()));
                r
            })
            .collect();
        let before = stats(&mut probe).await;
        let mut latencies = Vec::with_capacity(fleet);
        // One write at a time: the latency is Redis's service time plus a loopback round trip,
        // without queueing behind other instances.
        for (i, r) in reports.iter().enumerate() {
            let t = Instant::now();
            store
                .write(&format!("instance-{i}"), r)
                .await
                .expect("write");
            latencies.push(t.elapsed());
        }
        let written = stats(&mut probe).await;
        let t = Instant::now();
        let totals = store.totals(Granularity::Hour, &[3600], now).await.unwrap();
        let sketch = store.sketch(day, now).await.unwrap();
        let publisher = t.elapsed();
        let read = stats(&mut probe).await;
        let memory = |key: String| {
            let mut probe = probe.clone();
            async move {
                redis::cmd("MEMORY")
                    .arg("USAGE")
                    .arg(key)
                    .query_async::<Option<u64>>(&mut probe)
                    .await
                    .unwrap()
                    .unwrap_or(0)
            }
        };
        let hll_bytes = memory(format!("paymetrics:{{{ns}}}:hll:users:{}", day.period)).await;
        let hour_bytes = memory(format!("paymetrics:{{{ns}}}:hour_totals:3600")).await;
        latencies.sort();
        let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        println!(
            "{fleet} instances ({}): writes: {}; publication (1 totals read, 1 sketch read): {}, {:?}; \
             sketch key {hll_bytes} B, hour totals key {hour_bytes} B; write latency p50 {:?} p99 {:?}; \
             fleet payments {} (expected {}), users ~{:.0}",
            if cluster { "cluster" } else { "single Redis" },
            delta(before, written),
            delta(written, read),
            publisher,
            p(0.5),
            p(0.99),
            totals.value.payments,
            fleet * 10,
            sketch.value.map(|s| s.estimate()).unwrap_or(0.0),
        );
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("paymetrics:{{{ns}}}:*"))
            .query_async(&mut probe)
            .await
            .unwrap();
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut probe)
            .await
            .unwrap();
    }
}
