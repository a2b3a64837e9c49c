//! Fleet mode against a `redis-server` this test starts on a port of its own, with a password,
//! and kills (by pid) and restarts empty (it keeps nothing on disk):
//!
//! * a restart in the middle of an hour: the instances keep recording, their writes heal the
//!   store, but the hour (begun before the loss) is withheld, not published from what is left;
//!   the next hour is published once, exactly;
//! * a restart after one instance published a period and before another's retry: the period
//!   is not published a second time, and readers see "incomplete", not zero;
//! * KPIs after a restart: each figure comes back once the span it reads began after the loss;
//! * a Redis that is not there at all: the scheduler never stalls, and gives up on a period
//!   only when Datadog would no longer take it.
//!
//! (`outage.rs` restarts one with nothing to write.) Each prints what it measured (`cargo test
//! -- --nocapture`).
#![cfg(feature = "redis")]

mod common;

use std::time::{Duration, SystemTime};

use common::{
    DEADLINE, HOURLY, Instance, advance_to, published_once,
    server::{Server, free_port, instance, pay, store},
    start, t,
};
use paymetrics::{clock::ManualClock, kpi::PeriodTotals, rollup};
use paymetrics_automation::{
    AutomationStats, RedisStore,
    store::{FleetRead, FleetStore, Granularity},
};
use tokio::time::{Instant, sleep};

/// Ticks the clock by the collector interval from `tick` until every instance of `fleet` has
/// had a write acknowledged since `writes` (their counts then) and `done` holds; returns the
/// clock time reached. Redis reconnects in real time, hence the short real pauses between
/// ticks; the deadline is generous.
async fn tick_until_healed(
    clock: &ManualClock,
    fleet: &[&Instance],
    mut tick: SystemTime,
    writes: &[u64],
    mut done: impl AsyncFnMut() -> bool,
) -> SystemTime {
    let deadline = Instant::now() + DEADLINE;
    loop {
        advance_to(clock, fleet, tick).await;
        let healed = fleet
            .iter()
            .zip(writes)
            .all(|(i, before)| i.automation().stats().writes > *before);
        if healed && done().await {
            return tick;
        }
        assert!(Instant::now() < deadline, "the store did not heal");
        tick += Duration::from_secs(30);
        sleep(Duration::from_millis(20)).await;
    }
}

fn writes(fleet: &[&Instance]) -> Vec<u64> {
    fleet
        .iter()
        .map(|i| i.automation().stats().writes)
        .collect()
}

fn sum(fleet: &[&Instance], f: fn(&AutomationStats) -> u64) -> u64 {
    fleet.iter().map(|i| f(&i.automation().stats())).sum()
}

#[tokio::test(flavor = "current_thread")]
async fn a_restart_mid_hour_heals_the_store_but_that_hour_is_withheld() {
    let mut server = Server::start().await;
    let clock = ManualClock::new(t(10, 30, 0));
    let fleet: Vec<Instance> = ["a", "b", "c"]
        .into_iter()
        .map(|id| instance(&clock, &server, "restart", id, Duration::from_secs(10)))
        .collect();
    let all: Vec<&Instance> = fleet.iter().collect();
    let hour_key = format!(
        "paymetrics:{{restart}}:hour_totals:{}",
        common::DAY0 + 10 * 3600
    );
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
        let stats = instance.automation().stats();
        assert!(stats.write_failures >= 1, "{stats:?}");
        assert_eq!(instance.automation().store_reachable(), Some(false));
    }

    // Redis is back, empty. More traffic (one payment of 1000 on a), then the next writes
    // heal it: every instance's entry is back, with its absolute totals.
    assert!(server.restart().await, "redis-server restarts on its port");
    let restarted = Instant::now();
    assert_eq!(server.hlen(&hour_key).await, 0, "it kept nothing");
    clock.set(t(10, 32, 10));
    pay(&fleet[0], 1, 1000.0, 25.0);
    let before = writes(&all);
    let healed_at = tick_until_healed(&clock, &all, t(10, 32, 30), &before, async || {
        server.hlen(&hour_key).await == 3
    })
    .await;
    let healed_after = restarted.elapsed();
    assert!(healed_at < t(10, 59, 0), "healed within the hour");

    // Healed, but the store cannot know that no instance that stopped is missing: a reader
    // that never saw the old data learns from the store that the hour is incomplete.
    let reader = store(&server, "restart");
    let hour = reader
        .totals(Granularity::Hour, &[common::DAY0 + 10 * 3600], t(10, 40, 0))
        .await
        .unwrap();
    assert!(!hour.complete, "{hour:?}");
    assert_eq!(hour.value.payments, 19, "every live instance wrote again");

    // The hour ends: its rollup is withheld by the instance that takes its lock.
    advance_to(&clock, &all, t(11, 0, 0)).await;
    advance_to(&clock, &all, t(11, 0, 10)).await;
    for instance in &fleet {
        assert_eq!(instance.point(rollup::HOURLY_TOTAL, t(10, 59, 59)), None);
    }
    assert_eq!(sum(&all, |s| s.hourly_rollups_published), 0);
    assert_eq!(sum(&all, |s| s.publications_incomplete), 1);
    assert_eq!(sum(&all, |s| s.publications_skipped), 2);

    // The next hour began after the loss: published once, exactly. 1 + 2 + 3 payments of 7.
    clock.set(t(11, 10, 0));
    for (n, instance) in [1, 2, 3].into_iter().zip(&fleet) {
        pay(instance, n, 7.0, 0.5);
    }
    advance_to(&clock, &all, t(12, 0, 0)).await;
    advance_to(&clock, &all, t(12, 0, 10)).await;
    let hourly: Vec<f64> = HOURLY
        .iter()
        .map(|name| published_once(&all, name, t(11, 59, 59)))
        .collect();
    assert_eq!(hourly, [6.0, 100.0, 7.0, 42.0, 3.0]);
    assert_eq!(sum(&all, |s| s.hourly_rollups_published), 1);
    assert_eq!(sum(&all, |s| s.publications_incomplete), 1);
    eprintln!(
        "restart mid-hour: healthy again and healed {healed_after:?} after redis-server answered \
         (clock {:?} after the restart); hour 10:00 published 0 times (withheld: {} of 19 \
         payments rewritten, completeness unknown); hour 11:00 published {} time(s): {hourly:?}",
        healed_at.duration_since(t(10, 32, 0)).unwrap(),
        hour.value.payments,
        sum(&all, |s| s.hourly_rollups_published),
    );
    for instance in fleet {
        instance.shutdown().await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_period_published_before_a_restart_is_not_published_again() {
    let mut server = Server::start().await;
    let clock = ManualClock::new(t(10, 30, 0));
    // a publishes 10 s after the hour, b would 40 s after: b's attempt comes after the
    // restart. c stops before the restart, so what it wrote is lost for good.
    let a = instance(&clock, &server, "again", "a", Duration::from_secs(10));
    let b = instance(&clock, &server, "again", "b", Duration::from_secs(40));
    let c = instance(&clock, &server, "again", "c", Duration::from_secs(10));
    let hour = common::DAY0 + 10 * 3600;
    advance_to(&clock, &[&a, &b, &c], t(10, 30, 0)).await;
    clock.set(t(10, 30, 10));
    pay(&a, 1, 10.0, 0.25);
    pay(&b, 2, 10.0, 0.25);
    pay(&c, 3, 10.0, 0.25);
    advance_to(&clock, &[&a, &b, &c], t(10, 30, 30)).await;
    c.shutdown().await;
    let reader = store(&server, "again"); // a reader that saw the data before the loss
    let before = read_hour(&reader, hour, t(10, 45, 0)).await;
    assert_eq!((before.value.payments, before.complete), (6, true));

    advance_to(&clock, &[&a, &b], t(11, 0, 0)).await;
    advance_to(&clock, &[&a, &b], t(11, 0, 10)).await;
    assert_eq!(a.point(rollup::HOURLY_TOTAL, t(10, 59, 59)), Some(6.0));
    assert_eq!(a.automation().stats().hourly_rollups_published, 1);

    // Redis restarts empty, taking the hour's lock with it.
    server.kill();
    assert!(server.restart().await, "redis-server restarts on its port");
    let restarted = Instant::now();
    let before_writes = writes(&[&a, &b]);
    let mut healthy_after = None;
    tick_until_healed(
        &clock,
        &[&a, &b],
        t(11, 0, 30),
        &before_writes,
        async || {
            healthy_after.get_or_insert_with(|| restarted.elapsed());
            b.automation().stats().publications_incomplete == 1
        },
    )
    .await;
    // The lock was lost, and b took it; but b saw the data it would publish from was partial
    // (c's payments are gone) and withheld it instead of publishing a second time.
    let holder: Option<String> = {
        let mut c = server.connect().await.unwrap();
        redis::cmd("GET")
            .arg(format!("paymetrics:{{again}}:lock:hour:{hour}"))
            .query_async(&mut c)
            .await
            .unwrap()
    };
    assert_eq!(holder.as_deref(), Some("b"));
    let publications = published_count(&[&a, &b], rollup::HOURLY_TOTAL, t(10, 59, 59));
    assert_eq!(publications, 1, "published once, by a, before the restart");
    assert_eq!(b.automation().stats().hourly_rollups_published, 0);

    // Readers: the one that saw the old data noticed the loss itself; a new one learns it from
    // the store. Neither takes the 3 payments left for the hour's total; a period begun after
    // the loss is complete, so its zero is a real zero.
    let after = read_hour(&reader, hour, t(11, 5, 0)).await;
    let fresh = store(&server, "again");
    let fresh_after = read_hour(&fresh, hour, t(11, 5, 0)).await;
    assert_eq!((after.value.payments, after.complete), (3, false));
    assert_eq!(
        (fresh_after.value.payments, fresh_after.complete),
        (3, false)
    );
    assert_eq!(after.into_complete(), None);
    let later = read_hour(&fresh, hour + 2 * 3600, t(11, 5, 0)).await;
    assert_eq!((later.value.payments, later.complete), (0, true));
    eprintln!(
        "publish then restart: hour 10:00 published {publications} time(s) (a: 6 payments); \
         b withheld it (publications_incomplete {}); readers after the restart: {} payments, \
         complete = {} (was 6, complete = true); healthy {:?} after redis-server answered",
        b.automation().stats().publications_incomplete,
        fresh_after.value.payments,
        fresh_after.complete,
        healthy_after.unwrap_or_default(),
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn after_a_loss_kpis_come_back_figure_by_figure() {
    use paymetrics::{
        events::{payment, user},
        kpi,
    };
    const LAST_HOUR: [&str; 4] = [
        kpi::TRANSACTION_SUCCESS_RATE,
        kpi::TRANSACTION_AVG_VALUE,
        kpi::FRAUD_EFFECTIVENESS,
        kpi::SYSTEM_AVAILABILITY,
    ];
    const LONGER: [&str; 4] = [
        kpi::CUSTOMER_ACQUISITION_RATE,
        user::DAILY_ACTIVE,
        user::MONTHLY_ACTIVE,
        payment::UNIQUE_SENDERS,
    ];
    let mut server = Server::start().await;
    let clock = ManualClock::new(t(10, 0, 0));
    let redis = store(&server, "kpis");
    let a = start(&clock, move |b| {
        b.fleet(redis)
            .instance_id("a")
            .collector_interval(Duration::from_secs(30))
            .kpi_interval(Duration::from_secs(300))
            .hourly_rollups(false)
            .daily_rollups(false)
            .publish_delay(Duration::from_secs(10))
            .store_timeout(Duration::from_secs(2))
    });
    advance_to(&clock, &[&a], t(10, 0, 0)).await;
    clock.set(t(10, 1, 0));
    a.record(|e| {
        common::registration(e);
        common::active(e, "u1");
        common::attempt(e, "s1");
    });
    pay(&a, 2, 10.0, 0.5);
    advance_to(&clock, &[&a], t(10, 5, 0)).await;
    advance_to(&clock, &[&a], t(10, 5, 10)).await;
    let figures = |at| {
        LAST_HOUR
            .iter()
            .chain(&LONGER)
            .filter(|name| a.point(name, at).is_some())
            .count()
    };
    assert_eq!(figures(t(10, 5, 0)), 8, "all figures before the loss");

    server.kill();
    assert!(server.restart().await, "redis-server restarts on its port");
    let before = writes(&[&a]);
    let healed_at = tick_until_healed(&clock, &[&a], t(10, 5, 30), &before, async || true).await;
    assert!(healed_at < t(10, 10, 0), "{healed_at:?}");

    // The next round reads the hour before it, begun before the loss: nothing published.
    advance_to(&clock, &[&a], t(10, 10, 0)).await;
    advance_to(&clock, &[&a], t(10, 10, 10)).await;
    assert_eq!(figures(t(10, 10, 0)), 0);
    // An hour later the last hour began after the loss: its four ratios are back; the 24-hour
    // acquisition rate and the day's and month's distinct counts are still withheld.
    advance_to(&clock, &[&a], t(11, 10, 0)).await;
    advance_to(&clock, &[&a], t(11, 10, 10)).await;
    for name in LAST_HOUR {
        assert!(a.point(name, t(11, 10, 0)).is_some(), "{name}");
    }
    for name in LONGER {
        assert_eq!(a.point(name, t(11, 10, 0)), None, "{name}");
    }
    let stats = a.automation().stats();
    assert_eq!(stats.kpi_rounds_published, 2, "10:05 and 11:10: {stats:?}");
    assert_eq!(
        stats.publications_incomplete, 2,
        "10:10 and 11:10: {stats:?}"
    );
    eprintln!(
        "KPIs after a loss: 8 figures at 10:05, {} at 10:10 (loss noticed at {:?} past 10:05), \
         {} at 11:10; {} rounds withheld in whole or part",
        figures(t(10, 10, 0)),
        healed_at.duration_since(t(10, 5, 0)).unwrap(),
        figures(t(11, 10, 0)),
        stats.publications_incomplete,
    );
    a.shutdown().await;
}

/// The fleet's totals of the hour starting at `hour` (Unix seconds). The first call on a
/// connection that the restart broke fails while it reconnects: retried, bounded.
async fn read_hour(store: &RedisStore, hour: u64, now: SystemTime) -> FleetRead<PeriodTotals> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match store.totals(Granularity::Hour, &[hour], now).await {
            Ok(read) => return read,
            Err(e) => assert!(
                Instant::now() < deadline,
                "the reader never got through: {e}"
            ),
        }
        sleep(Duration::from_millis(20)).await;
    }
}

/// How many times any of `instances` sent `name` stamped `at`.
fn published_count(instances: &[&Instance], name: &str, at: SystemTime) -> usize {
    instances
        .iter()
        .flat_map(|i| i.points(name))
        .filter(|(ts, _)| *ts == common::unix(at))
        .count()
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
