//! The Redis store on a real Redis Cluster (6 nodes with replicas, started by
//! `scripts/redis-cluster` on free loopback ports): sums and merges as on one Redis, and a
//! primary killed by its pid and failed over without blocking any operation, totals exact
//! afterwards.
#![cfg(feature = "redis")]

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use paymetrics::{kpi::PeriodTotals, uniques::HyperLogLog};
use paymetrics_automation::{
    RedisStore,
    store::{FleetStore, Granularity, InstanceReport, SketchKey},
};
use tokio::time::Instant;

/// A cluster of the test's own, stopped (its nodes killed by pid) when dropped.
struct Cluster {
    dir: PathBuf,
    seed: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/redis-cluster")
}

impl Cluster {
    fn start(name: &str) -> Cluster {
        let dir = std::env::temp_dir().join(format!("pma-cluster-{name}-{}", std::process::id()));
        let out = Command::new(script())
            .arg("start")
            .arg(&dir)
            .output()
            .expect("scripts/redis-cluster");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let seed = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        Cluster { dir, seed }
    }

    /// A store on the cluster for the fleet `namespace`.
    fn store(&self, namespace: &str, timeout: Duration) -> RedisStore {
        RedisStore::builder(&self.seed)
            .cluster(true)
            .namespace(namespace)
            .operation_timeout(timeout)
            .build()
            .unwrap()
    }

    /// Kills the primary serving `slot` by its pid; returns its port.
    async fn kill_primary_of(&self, slot: u16) -> u16 {
        let mut c = redis::Client::open(self.seed.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut c)
            .await
            .unwrap();
        let port = nodes
            .lines()
            .filter(|l| l.contains("master") && !l.contains("fail"))
            .find(|l| {
                l.split(' ').skip(8).any(|range| {
                    let (a, b) = range.split_once('-').unwrap_or((range, range));
                    matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
                })
            })
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|addr| addr.split(['@', ':']).nth(1))
            .and_then(|p| p.parse::<u16>().ok())
            .expect("the slot's primary");
        let pid = std::fs::read_to_string(self.dir.join(format!("{port}.pid"))).unwrap();
        let status = Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .unwrap();
        assert!(status.success());
        port
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn report(payments: u64, volume: f64, users: &[&str]) -> (InstanceReport, HyperLogLog) {
    let totals = PeriodTotals {
        payments,
        volume,
        ..Default::default()
    };
    let mut report = InstanceReport::new(SystemTime::now());
    report.hours.push((3600, totals));
    let hll = HyperLogLog::new();
    users.iter().for_each(|u| hll.insert(u.as_bytes()));
    report
        .sketches
        .push((SketchKey::daily_active_users(UNIX_EPOCH), hll.to_bytes()));
    (report, hll)
}

#[tokio::test(flavor = "current_thread")]
async fn sums_and_merges_survive_a_primary_failover() {
    let cluster = Cluster::start("failover");
    let timeout = Duration::from_secs(1);
    let store = cluster.store("fleet", timeout);
    let (a, hll_a) = report(3, 30.5, &["u1", "u2"]);
    let (b, hll_b) = report(4, 40.25, &["u2", "u3"]);
    store.write("a", &a).await.unwrap();
    store.write("b", &b).await.unwrap();
    store.write("a", &a).await.unwrap(); // retried: adds nothing
    let now = SystemTime::now();
    let hour = store.totals(Granularity::Hour, &[3600], now).await.unwrap();
    assert_eq!(
        (hour.value.payments, hour.value.volume, hour.complete),
        (7, 70.75, true)
    );
    let merged = HyperLogLog::new();
    merged.merge(&hll_a);
    merged.merge(&hll_b);
    let users = store
        .sketch(SketchKey::daily_active_users(UNIX_EPOCH), now)
        .await
        .unwrap();
    assert_eq!(
        users.value.unwrap().to_bytes(),
        merged.to_bytes(),
        "exactly the merge"
    );

    // Let the replicas catch up, then kill the namespace's primary by pid.
    let mut c = redis::Client::open(cluster.seed.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("{fleet}")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut c)
        .await
        .unwrap_or(redis::Value::Nil);
    cluster.kill_primary_of(slot).await;

    // Instance a goes on writing (5 payments now): every call returns within its bound,
    // failing until a replica took over, then succeeding.
    let (a2, _) = report(5, 50.0, &["u1"]);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let started = Instant::now();
        let result = store.write("a", &a2).await;
        assert!(
            started.elapsed() < timeout + Duration::from_secs(2),
            "an operation blocked for {:?}",
            started.elapsed()
        );
        if result.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "no failover: {result:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hour = store
        .totals(Granularity::Hour, &[3600], SystemTime::now())
        .await
        .unwrap();
    assert_eq!(
        (hour.value.payments, hour.value.volume, hour.complete),
        (9, 90.25, true),
        "exact after the failover, and the replica kept the generation"
    );
}

async fn node(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The namespace's slot moved by hand, as `redis-cli --cluster reshard` does: reads follow
/// `ASK` mid-migration; writes (multi-key scripts touching keys not yet on either side) get
/// `TRYAGAIN` until the move ends and fail within their bound; after it, `MOVED`, and the
/// totals are exact.
#[tokio::test(flavor = "current_thread")]
async fn a_resharding_redirects_and_totals_stay_exact() {
    let cluster = Cluster::start("reshard");
    let timeout = Duration::from_secs(1);
    let store = cluster.store("moving", timeout);
    let (a, _) = report(3, 30.5, &["u1"]);
    let (b, _) = report(4, 40.25, &["u2"]);
    store.write("a", &a).await.unwrap();

    let mut seed = node(cluster.seed.rsplit(':').next().unwrap().parse().unwrap()).await;
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("{moving}")
        .query_async(&mut seed)
        .await
        .unwrap();
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut seed)
        .await
        .unwrap();
    let primaries: Vec<(String, u16, bool)> = nodes
        .lines()
        .filter(|l| l.contains("master"))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let port = f[1].split(['@', ':']).nth(1).unwrap().parse().unwrap();
            let owns = f[8..].iter().any(|r| {
                let (x, y) = r.split_once('-').unwrap_or((r, r));
                matches!((x.parse::<u16>(), y.parse::<u16>()), (Ok(x), Ok(y)) if (x..=y).contains(&slot))
            });
            (f[0].to_owned(), port, owns)
        })
        .collect();
    let source = primaries.iter().find(|p| p.2).unwrap().clone();
    let target = primaries.iter().find(|p| !p.2).unwrap().clone();
    let (mut src, mut dst) = (node(source.1).await, node(target.1).await);
    let setslot = |state: &str, id: &str| {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SETSLOT").arg(slot).arg(state).arg(id);
        cmd
    };
    let _: () = setslot("IMPORTING", &source.0)
        .query_async(&mut dst)
        .await
        .unwrap();
    let _: () = setslot("MIGRATING", &target.0)
        .query_async(&mut src)
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(slot)
        .arg(1000)
        .query_async(&mut src)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    let _: () = redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(target.1)
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS")
        .arg(&keys)
        .query_async(&mut src)
        .await
        .unwrap();
    let users = store
        .sketch(SketchKey::daily_active_users(UNIX_EPOCH), SystemTime::now())
        .await
        .expect("a read of keys that all moved follows ASK");
    assert!(users.value.is_some() && users.complete);
    let started = Instant::now();
    let during = store.write("b", &b).await;
    assert!(
        started.elapsed() < timeout + Duration::from_secs(2),
        "blocked"
    );
    // Whatever it was (TRYAGAIN until the move ends), it never counts twice afterwards.
    let _ = during;
    for p in &primaries {
        let mut c = node(p.1).await;
        let _: () = setslot("NODE", &target.0)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    store.write("b", &b).await.expect("followed MOVED");
    store.write("a", &a).await.expect("a retry");
    let hour = store
        .totals(Granularity::Hour, &[3600], SystemTime::now())
        .await
        .unwrap();
    assert_eq!(
        (hour.value.payments, hour.value.volume, hour.complete),
        (7, 70.75, true)
    );
}
