//! The fleet lease on the machine's Redis (127.0.0.1:6379, a unique key per test): one
//! holder among several instances, compare-and-set renewal and release, and failover.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use paymetrics_infra::{FleetCollector, FleetLease, FleetRunner, RoundFuture, Sink};
use redis::aio::MultiplexedConnection;
use tokio::time::Instant;

/// Generous: the machine is a shared 2-core box.
const DEADLINE: Duration = Duration::from_secs(60);

fn unique_key(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "paymetrics-test:lease:{test}:{}:{nanos}",
        std::process::id()
    )
}

async fn connection() -> MultiplexedConnection {
    redis::Client::open("redis://127.0.0.1:6379")
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis on 127.0.0.1:6379 (scripts/services starts it)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_holder_among_several_instances_and_release_hands_over() {
    let key = unique_key("one_holder");
    let conn = connection().await;
    let leases: Vec<_> = (0..5)
        .map(|_| FleetLease::new(conn.clone(), key.clone(), Duration::from_secs(30)))
        .collect();
    let mut holders = Vec::new();
    for (i, lease) in leases.iter().enumerate() {
        if lease.acquire_or_renew().await.unwrap() {
            holders.push(i);
        }
    }
    assert_eq!(holders.len(), 1, "{holders:?}");
    let holder = holders[0];
    assert!(leases[holder].is_held());
    assert!(leases[holder].renew().await.unwrap());
    for (i, lease) in leases.iter().enumerate().filter(|(i, _)| *i != holder) {
        assert!(
            !lease.renew().await.unwrap(),
            "{i} renewed a lease it does not hold"
        );
        assert!(
            !lease.release().await.unwrap(),
            "{i} released a lease it does not hold"
        );
        assert!(!lease.is_held());
    }
    assert!(leases[holder].release().await.unwrap());
    let next = (holder + 1) % leases.len();
    assert!(leases[next].acquire_or_renew().await.unwrap());
    assert!(!leases[holder].acquire_or_renew().await.unwrap());
    leases[next].release().await.unwrap();
}

/// Records which instance ran each round, and when.
struct Rounds {
    instance: usize,
    log: Arc<Mutex<Vec<(usize, Instant)>>>,
}

impl FleetCollector for Rounds {
    fn name(&self) -> &'static str {
        "rounds"
    }
    fn round<'a>(&'a mut self, _sink: &'a Sink) -> RoundFuture<'a> {
        Box::pin(async move {
            self.log
                .lock()
                .unwrap()
                .push((self.instance, Instant::now()));
        })
    }
}

async fn wait_for(
    log: &Arc<Mutex<Vec<(usize, Instant)>>>,
    what: &str,
    found: impl Fn(&[(usize, Instant)]) -> Option<(usize, Instant)>,
) -> (usize, Instant) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(hit) = found(&log.lock().unwrap()) {
            return hit;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await; // polling, with a deadline
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_takes_over_within_interval_plus_lease() {
    let key = unique_key("failover");
    let conn = connection().await;
    let metrics = paymetrics::builder().without_dogstatsd().build().unwrap();
    let interval = Duration::from_millis(200);
    let ttl = Duration::from_secs(3);
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut running: Vec<_> = (0..3)
        .map(|instance| {
            Some(
                FleetRunner::new(
                    FleetLease::new(conn.clone(), key.clone(), ttl),
                    Sink::new(&metrics),
                )
                .interval(interval)
                .collector(Rounds {
                    instance,
                    log: Arc::clone(&log),
                })
                .spawn()
                .unwrap(),
            )
        })
        .collect();

    // Several rounds, all by one instance.
    let (first, _) = wait_for(&log, "five rounds", |l| (l.len() >= 5).then(|| l[0])).await;
    assert!(
        log.lock().unwrap().iter().all(|(i, _)| *i == first),
        "{:?}",
        log.lock().unwrap()
    );

    // The holder dies without releasing: another takes over once the lease expires.
    running[first].take().unwrap().abort();
    let died = Instant::now();
    let (second, at) = wait_for(&log, "a new holder", |l| {
        l.iter().copied().find(|(i, t)| *i != first && *t > died)
    })
    .await;
    let waited = at - died;
    // One interval plus the lease, and a second of slack for a loaded machine.
    assert!(
        waited <= interval + ttl + Duration::from_secs(1),
        "took over after {waited:?}"
    );

    // The new holder shuts down and releases: the last one takes over at its next try, well
    // before the lease would have expired.
    running[second].take().unwrap().shutdown().await;
    let released = Instant::now();
    let (third, at) = wait_for(&log, "the last holder", |l| {
        l.iter()
            .copied()
            .find(|(i, t)| *i != first && *i != second && *t > released)
    })
    .await;
    assert!(at - released < ttl, "took over after {:?}", at - released);
    running[third].take().unwrap().shutdown().await;
}
