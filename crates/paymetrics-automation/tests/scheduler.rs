//! The scheduler of one process (the default in-memory store) on a `ManualClock`: KPIs and
//! rollups from a scripted sequence of events against hand-computed values, through empty
//! windows, a minute boundary of the rolling hour, an hour boundary and a day boundary; the
//! collectors' interval; a clean shutdown.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use common::{
    HOURLY, active, advance_to, completion, confirmed_fraud, health, registration, start, t,
};
use paymetrics::{
    clock::ManualClock,
    events::{PaymentStatus::*, user},
    kpi, rollup,
};
use paymetrics_automation::{Automation, Error};

const DAILY: [&str; 4] = [
    rollup::DAILY_TOTAL_PAYMENTS,
    rollup::DAILY_TOTAL_VOLUME,
    rollup::DAILY_TOTAL_USERS,
    rollup::DAILY_TOTAL_REVENUE,
];
const KPIS: [&str; 5] = [
    kpi::TRANSACTION_SUCCESS_RATE,
    kpi::TRANSACTION_AVG_VALUE,
    kpi::CUSTOMER_ACQUISITION_RATE,
    kpi::FRAUD_EFFECTIVENESS,
    kpi::SYSTEM_AVAILABILITY,
];

fn values(instance: &common::Instance, names: &[&str], at: std::time::SystemTime) -> Vec<f64> {
    names
        .iter()
        .map(|name| {
            instance
                .point(name, at)
                .unwrap_or_else(|| panic!("no {name} point at {at:?}"))
        })
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn kpis_and_rollups_match_hand_computed_values() {
    let clock = ManualClock::new(t(10, 58, 0));
    let a = start(&clock, |b| {
        b.collector_interval(Duration::from_secs(30))
            .kpi_interval(Duration::from_secs(300))
    });
    advance_to(&clock, &[&a], t(10, 58, 0)).await;

    // 1. Empty windows. At 11:00 the hour 10:00 ended with nothing recorded: the KPI rules
    //    give 0 for the rollup's ratios, and 100 % for the KPIs' success, fraud and
    //    availability ratios.
    advance_to(&clock, &[&a], t(11, 0, 0)).await;
    assert_eq!(
        values(&a, &HOURLY, t(10, 59, 59)),
        [0.0, 0.0, 0.0, 0.0, 0.0]
    );
    assert_eq!(
        values(&a, &KPIS, t(11, 0, 0)),
        [100.0, 0.0, 0.0, 100.0, 100.0]
    );

    // 2. Traffic at 11:00:10, flushed at the 11:05 KPI round into the minute 11:04.
    clock.set(t(11, 0, 10));
    a.record(|e| {
        completion(e, Completed, 100.0, 2.5);
        completion(e, Completed, 50.0, 1.25);
        completion(e, Failed, 70.0, 0.0);
        completion(e, Completed, 30.25, 0.75);
        registration(e);
        registration(e);
        confirmed_fraud(e, true);
        confirmed_fraud(e, false);
        for healthy in [true, true, true, false] {
            health(e, healthy);
        }
        for user in ["u1", "u2", "u1"] {
            active(e, user);
        }
    });
    advance_to(&clock, &[&a], t(11, 5, 0)).await;
    // 3 of 4 succeeded; 180.25 / 3 = 60.083..; 2 registrations; 1 of 2 frauds blocked;
    // 3 of 4 checks healthy.
    assert_eq!(
        values(&a, &KPIS, t(11, 5, 0)),
        [75.0, 60.08, 2.0, 50.0, 75.0]
    );
    assert_eq!(
        a.gauge(user::DAILY_ACTIVE),
        Some(2.0),
        "the uniques collector"
    );
    assert_eq!(a.gauge(user::MONTHLY_ACTIVE), Some(2.0));

    // 3. An hour boundary: 11:59:50 counts in 11:00, 12:00:10 in 12:00.
    clock.set(t(11, 59, 50));
    a.record(|e| completion(e, Completed, 20.0, 0.5));
    advance_to(&clock, &[&a], t(12, 0, 0)).await;
    clock.set(t(12, 0, 10));
    a.record(|e| completion(e, Completed, 1000.0, 25.0));
    // Hour 11:00: 5 payments, 4 succeeded, 200.25 (avg 50.0625), fees 5.
    assert_eq!(
        values(&a, &HOURLY, t(11, 59, 59)),
        [5.0, 80.0, 50.06, 200.25, 5.0]
    );
    assert_eq!(
        values(&a, &KPIS, t(12, 0, 0)),
        [80.0, 50.06, 2.0, 50.0, 75.0]
    );

    // 4. A minute boundary of the rolling hour: at 12:05 the last hour starts at 11:05, so
    //    the minute 11:04 (its fraud and health checks) has left it; 11:59 and 12:04 are in.
    advance_to(&clock, &[&a], t(12, 5, 0)).await;
    assert_eq!(
        values(&a, &KPIS, t(12, 5, 0)),
        [100.0, 510.0, 2.0, 100.0, 100.0]
    );
    advance_to(&clock, &[&a], t(13, 0, 0)).await;
    assert_eq!(
        values(&a, &HOURLY, t(12, 59, 59)),
        [1.0, 100.0, 1000.0, 1000.0, 25.0]
    );

    // 5. The day boundary, reached by a jump: the day's rollup; the hour 23:00 (empty); the
    //    hours 13:00 to 22:00 are abandoned, too old for Datadog's timestamped intake.
    advance_to(&clock, &[&a], t(24, 0, 0)).await;
    // 6 payments, 1200.25, users u1 and u2, fees 30.
    assert_eq!(values(&a, &DAILY, t(23, 59, 59)), [6.0, 1200.25, 2.0, 30.0]);
    assert_eq!(
        values(&a, &HOURLY, t(23, 59, 59)),
        [0.0, 0.0, 0.0, 0.0, 0.0]
    );
    assert_eq!(a.point(rollup::HOURLY_TOTAL, t(13, 59, 59)), None);
    let stats = a.automation().stats();
    assert_eq!(stats.hourly_rollups_published, 4, "{stats:?}"); // 10, 11, 12, 23
    assert_eq!(stats.publications_abandoned, 10, "{stats:?}"); // 13 to 22
    assert_eq!(stats.daily_rollups_published, 1, "{stats:?}");
    // 11:00, 11:05, 12:00, 12:05, 13:00, 24:00 (one round for the jump).
    assert_eq!(stats.kpi_rounds_published, 6, "{stats:?}");
    assert_eq!((stats.write_failures, stats.publications_skipped), (0, 0));
    // Each rollup point once, tagged, stamped with its period's last second.
    let hourly: Vec<_> = a
        .timestamped()
        .into_iter()
        .filter(|p| p.name == rollup::HOURLY_TOTAL)
        .collect();
    assert_eq!(hourly.len(), 4);
    assert!(hourly.iter().all(|p| p.tags == ["aggregation:hourly"]));
    a.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn collectors_run_every_interval_into_the_instance_recorder() {
    let clock = ManualClock::new(t(10, 0, 5));
    let runs = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&runs);
    let a = start(&clock, move |b| {
        b.collector_interval(Duration::from_secs(30))
            .without_kpis()
            .collector(move || {
                let n = counted.fetch_add(1, Ordering::Relaxed) + 1;
                metrics::gauge!("test.collector.runs").set(n as f64);
            })
            .collector(|| panic!("a broken collector"))
    });
    advance_to(&clock, &[&a], t(10, 0, 5)).await;
    assert_eq!(runs.load(Ordering::Relaxed), 1, "at start");
    advance_to(&clock, &[&a], t(10, 0, 29)).await;
    assert_eq!(runs.load(Ordering::Relaxed), 1, "not yet");
    advance_to(&clock, &[&a], t(10, 0, 30)).await;
    assert_eq!(runs.load(Ordering::Relaxed), 2, "on the multiple of 30 s");
    advance_to(&clock, &[&a], t(10, 2, 0)).await;
    assert_eq!(runs.load(Ordering::Relaxed), 3, "missed ticks run once");
    let stats = a.automation().stats();
    assert_eq!((stats.collections, stats.collector_panics), (3, 3));
    assert!(a.metrics.flush());
    assert_eq!(
        a.gauge("test.collector.runs"),
        Some(3.0),
        "recorded into this instance"
    );

    let mut a = a;
    let scheduler = a.automation.take().expect("running");
    tokio::time::timeout(common::DEADLINE, scheduler.shutdown())
        .await
        .expect("stops");
    clock.set(t(10, 5, 0));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(runs.load(Ordering::Relaxed), 3, "stopped");
}

#[tokio::test(flavor = "current_thread")]
async fn a_jump_of_years_costs_two_days_of_periods_at_most() {
    let clock = ManualClock::new(t(10, 0, 0));
    let a = start(&clock, |b| b.without_kpis());
    advance_to(&clock, &[&a], t(10, 0, 0)).await;
    // Ten years later, 30 s past midnight.
    advance_to(&clock, &[&a], t(24 * 3650, 0, 30)).await;
    let stats = a.automation().stats();
    // The hour and the day that just ended are published; of the older hours, only the last
    // 47 were looked at, and given up as too old for Datadog.
    assert_eq!(stats.hourly_rollups_published, 1, "{stats:?}");
    assert_eq!(stats.daily_rollups_published, 1, "{stats:?}");
    assert_eq!(stats.publications_abandoned, 47, "{stats:?}");
    assert!(
        a.point(rollup::DAILY_TOTAL_PAYMENTS, t(24 * 3650 - 1, 59, 59))
            .is_some()
    );
    a.shutdown().await;
}

#[test]
fn spawning_needs_a_runtime() {
    let (_, windows) = paymetrics::kpi::PeriodTotals::window_config().build();
    let metrics = paymetrics::builder().without_dogstatsd().build().unwrap();
    let err = Automation::builder(&metrics, windows).spawn().unwrap_err();
    assert!(matches!(err, Error::NoRuntime), "{err}");
}
