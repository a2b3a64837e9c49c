//! Fleet mode against a `redis-server` this test starts on a port of its own, with a password,
//! and kills and restarts (empty: it keeps nothing on disk) in the middle of the hour: the
//! instances keep recording through the outage, their writes heal the store, and the hour's
//! rollup is the exact sum of everything recorded, published once, nothing counted twice. And
//! a Redis that is not there at all: the scheduler never stalls, and gives up on a period only
//! when Datadog would no longer take it. (`outage.rs` restarts one with nothing to write.)
#![cfg(feature = "redis")]

mod common;

use std::time::Duration;

use common::{
    DEADLINE, Instance, advance_to, published_once,
    server::{Server, free_port, pay},
    start, t,
};
use paymetrics::{clock::ManualClock, rollup};
use paymetrics_automation::RedisStore;
use tokio::time::{Instant, sleep};

#[tokio::test(flavor = "current_thread")]
async fn a_restart_mid_hour_heals_and_the_rollup_is_exact() {
    let mut server = Server::start().await;
    let clock = ManualClock::new(t(10, 30, 0));
    let fleet: Vec<Instance> = ["a", "b", "c"]
        .into_iter()
        .map(|id| {
            let store = RedisStore::builder(server.url())
                .namespace("restart")
                .operation_timeout(Duration::from_millis(500))
                .build()
                .unwrap();
            start(&clock, move |b| {
                b.fleet(store)
                    .instance_id(id)
                    .without_kpis()
                    .collector_interval(Duration::from_secs(30))
                    .publish_delay(Duration::from_secs(10))
                    .store_timeout(Duration::from_secs(2))
            })
        })
        .collect();
    let all: Vec<&Instance> = fleet.iter().collect();
    let hour_key = format!("paymetrics:{{restart}}:hour:{}", common::DAY0 + 10 * 3600);
    advance_to(&clock, &all, t(10, 30, 0)).await;

    // Before the restart: 1 + 2 + 3 payments of 10 (fees 0.25), written at 10:30:30.
    clock.set(t(10, 30, 10));
    for (n, instance) in [1, 2, 3].into_iter().zip(&fleet) {
        pay(instance, n, 10.0, 0.25);
    }
    advance_to(&clock, &all, t(10, 30, 30)).await;
    assert_eq!(server.hlen(&hour_key).await, 3);

    // Redis dies. The instances go on recording (4 payments of 100, fees 2.5 each); their
    // writes fail and are counted, and the scheduler keeps time.
    server.kill();
    clock.set(t(10, 31, 10));
    for instance in &fleet {
        pay(instance, 4, 100.0, 2.5);
    }
    advance_to(&clock, &all, t(10, 31, 30)).await;
    for instance in &fleet {
        assert!(instance.automation().stats().write_failures >= 1);
    }

    // Redis is back, empty. More traffic (one payment of 1000 on a), then the next writes
    // heal it: every instance's entry is back, with its absolute totals.
    assert!(server.restart().await, "redis-server restarts on its port");
    assert_eq!(server.hlen(&hour_key).await, 0, "it kept nothing");
    clock.set(t(10, 32, 10));
    pay(&fleet[0], 1, 1000.0, 25.0);
    let writes: Vec<u64> = fleet
        .iter()
        .map(|i| i.automation().stats().writes)
        .collect();
    let mut tick = t(10, 32, 30);
    let deadline = Instant::now() + DEADLINE;
    loop {
        advance_to(&clock, &all, tick).await;
        let healed = fleet
            .iter()
            .zip(&writes)
            .all(|(i, before)| i.automation().stats().writes > *before);
        if healed && server.hlen(&hour_key).await == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the store did not heal");
        assert!(
            tick < t(10, 59, 0),
            "the store did not heal within the hour"
        );
        tick += Duration::from_secs(30);
        sleep(Duration::from_millis(20)).await; // real time for the reconnection
    }

    // The hour ends; one instance publishes the fleet's rollup.
    advance_to(&clock, &all, t(11, 0, 0)).await;
    advance_to(&clock, &all, t(11, 0, 10)).await;
    let hourly: Vec<f64> = [
        rollup::HOURLY_TOTAL,
        rollup::HOURLY_SUCCESS_RATE,
        rollup::HOURLY_AVG_VALUE,
        rollup::HOURLY_TOTAL_VOLUME,
        rollup::HOURLY_TOTAL_FEES,
    ]
    .iter()
    .map(|name| published_once(&all, name, t(10, 59, 59)))
    .collect();
    // 6 + 12 + 1 = 19 payments; 60 + 1200 + 1000 = 2260 (avg 118.95); fees 1.5 + 30 + 25.
    assert_eq!(hourly, [19.0, 100.0, 118.95, 2260.0, 56.5]);
    let published: u64 = fleet
        .iter()
        .map(|i| i.automation().stats().hourly_rollups_published)
        .sum();
    assert_eq!(published, 1);
    for instance in fleet {
        instance.shutdown().await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn with_redis_down_the_scheduler_keeps_time_and_gives_up_late() {
    // Nothing listens on this port.
    let url = format!("redis://127.0.0.1:{}", free_port());
    let clock = ManualClock::new(t(10, 59, 0));
    let a = start(&clock, |b| {
        b.fleet(
            RedisStore::builder(url)
                .operation_timeout(Duration::from_millis(200))
                .build()
                .unwrap(),
        )
        .without_kpis()
        .collector_interval(Duration::from_secs(30))
        .publish_delay(Duration::from_secs(10))
        .store_timeout(Duration::from_millis(500))
    });
    advance_to(&clock, &[&a], t(10, 59, 0)).await;
    clock.set(t(10, 59, 10));
    pay(&a, 2, 50.0, 1.0);

    // Every pass ends, bounded by the timeouts; the hour's rollup is retried on each tick.
    let started = Instant::now();
    advance_to(&clock, &[&a], t(11, 0, 0)).await;
    advance_to(&clock, &[&a], t(11, 0, 10)).await;
    advance_to(&clock, &[&a], t(11, 0, 40)).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let stats = a.automation().stats();
    assert!(stats.write_failures >= 2, "{stats:?}");
    assert_eq!((stats.writes, stats.store_outages), (0, 1), "{stats:?}");
    assert_eq!(a.automation().store_reachable(), Some(false));
    assert!(stats.publication_failures >= 2, "{stats:?}");
    assert_eq!(stats.publications_abandoned, 0, "{stats:?}");
    // Recording went on locally all along.
    let recorded: u64 = a
        .reader
        .snapshots()
        .iter()
        .map(|s| s.counter_delta_sum(paymetrics::events::payment::COMPLETIONS))
        .sum();
    assert_eq!(recorded, 2);

    // Past 11:50 the rollup, stamped 10:59:59, is too old for Datadog: given up, once.
    advance_to(&clock, &[&a], t(11, 50, 30)).await;
    let stats = a.automation().stats();
    assert_eq!(stats.publications_abandoned, 1, "{stats:?}");
    assert_eq!(stats.hourly_rollups_published, 0, "{stats:?}");
    a.shutdown().await;
}
