//! Helpers shared by the integration tests: an instance (paymetrics with windows, uniques,
//! an in-memory exporter, and its scheduler) on a shared `ManualClock`, recording through the
//! typed events API, and reading back the points it published.
#![allow(dead_code, unreachable_pub)]

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use paymetrics::{
    Paymetrics, PaymetricsBuilder,
    clock::ManualClock,
    events::{
        BusinessEvents, ConfirmedFraud, HealthCheck, PaymentCompletion, PaymentMethod,
        PaymentStatus, UserRegistration,
    },
    export::{MemoryExporter, MemoryReader},
    kpi::PeriodTotals,
    message::{Message, TimestampedMetric},
    uniques::Uniques,
};
use paymetrics_automation::{Automation, AutomationBuilder};

#[cfg(feature = "redis")]
pub mod server;

/// Generous: the machine is a shared 2-core box.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The hourly rollup's points, in the order the tests list their values.
pub const HOURLY: [&str; 5] = [
    paymetrics::rollup::HOURLY_TOTAL,
    paymetrics::rollup::HOURLY_SUCCESS_RATE,
    paymetrics::rollup::HOURLY_AVG_VALUE,
    paymetrics::rollup::HOURLY_TOTAL_VOLUME,
    paymetrics::rollup::HOURLY_TOTAL_FEES,
];

/// 2030-01-01T00:00:00Z.
pub const DAY0: u64 = 1_893_456_000;

/// `DAY0` plus hours, minutes and seconds.
pub fn t(hours: u64, minutes: u64, seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(DAY0 + hours * 3600 + minutes * 60 + seconds)
}

pub fn unix(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// One paymetrics instance and its scheduler.
pub struct Instance {
    pub metrics: Paymetrics,
    pub reader: MemoryReader,
    pub events: BusinessEvents,
    pub automation: Option<Automation>,
}

/// Starts an instance on `clock` (flushing only when asked: the scheduler does it at period
/// ends), with its uniques and the test's scheduler settings.
pub fn start(
    clock: &ManualClock,
    configure: impl FnOnce(AutomationBuilder) -> AutomationBuilder,
) -> Instance {
    let (window_exporter, windows) = PeriodTotals::window_config().build();
    let (memory, reader) = MemoryExporter::new();
    let metrics = PaymetricsBuilder::new()
        .without_dogstatsd()
        .flush_interval(Duration::from_secs(24 * 3600))
        .clock(clock.clone())
        .exporter(window_exporter)
        .exporter(memory)
        .build()
        .expect("paymetrics");
    let uniques = Arc::new(Uniques::new(Arc::new(clock.clone())));
    let events = BusinessEvents::new(Arc::clone(&uniques));
    let builder = Automation::builder(&metrics, windows)
        .uniques(uniques)
        .clock_poll_interval(Duration::from_millis(2));
    let automation = configure(builder).spawn().expect("spawn the scheduler");
    Instance {
        metrics,
        reader,
        events,
        automation: Some(automation),
    }
}

impl Instance {
    pub fn automation(&self) -> &Automation {
        self.automation.as_ref().expect("running")
    }

    /// Records through this instance's recorder (typed-event handles bind to the recorder
    /// current at a series' first use).
    pub fn record(&self, f: impl FnOnce(&BusinessEvents)) {
        metrics::with_local_recorder(self.metrics.recorder(), || f(&self.events));
    }

    /// The timestamped points named `name` this instance sent: `(unix seconds, value)`.
    pub fn points(&self, name: &str) -> Vec<(u64, f64)> {
        self.timestamped()
            .into_iter()
            .filter(|m| m.name == name)
            .map(|m| (m.timestamp, m.value))
            .collect()
    }

    /// Every timestamped point this instance sent.
    pub fn timestamped(&self) -> Vec<TimestampedMetric> {
        self.reader
            .messages()
            .into_iter()
            .filter_map(|m| match m {
                Message::Timestamped(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    /// The value of the point `name` stamped `at`, if exactly one was sent.
    pub fn point(&self, name: &str, at: SystemTime) -> Option<f64> {
        let found: Vec<f64> = self
            .points(name)
            .into_iter()
            .filter(|(ts, _)| *ts == unix(at))
            .map(|(_, v)| v)
            .collect();
        assert!(
            found.len() <= 1,
            "{name} at {at:?} sent {} times",
            found.len()
        );
        found.first().copied()
    }

    /// The latest value of gauge `name` in this instance's snapshots.
    pub fn gauge(&self, name: &str) -> Option<f64> {
        self.reader
            .snapshots()
            .iter()
            .rev()
            .find_map(|s| s.gauge(name, &[]).filter(|g| g.updated).map(|g| g.value))
    }

    pub async fn shutdown(mut self) {
        if let Some(automation) = self.automation.take() {
            tokio::time::timeout(DEADLINE, automation.shutdown())
                .await
                .expect("the scheduler stops");
        }
        self.metrics.shutdown();
    }
}

/// Moves the clock to `to` and waits until every instance's scheduler has done what was due.
pub async fn advance_to(clock: &ManualClock, instances: &[&Instance], to: SystemTime) {
    clock.set(to);
    for instance in instances {
        tokio::time::timeout(DEADLINE, instance.automation().caught_up(to))
            .await
            .unwrap_or_else(|_| panic!("a scheduler did not catch up with {to:?}"));
    }
}

/// A payment completion of `amount` with `fees`.
pub fn completion(events: &BusinessEvents, status: PaymentStatus, amount: f64, fees: f64) {
    events.payment_completion(&PaymentCompletion {
        status,
        amount,
        fees: Some(fees),
        currency: "EUR",
        payment_method: PaymentMethod::Card,
        processing_time_ms: Some(120.0),
    });
}

pub fn registration(events: &BusinessEvents) {
    events.user_registration(&UserRegistration {
        method: paymetrics::events::RegistrationMethod::Email,
        country: Some("FR"),
        referrer: None,
    });
}

pub fn confirmed_fraud(events: &BusinessEvents, blocked: bool) {
    events.confirmed_fraud(&ConfirmedFraud {
        blocked,
        amount: 99.0,
    });
}

pub fn health(events: &BusinessEvents, healthy: bool) {
    events.health_check(&HealthCheck {
        component: "postgres",
        healthy,
    });
}

pub fn active(events: &BusinessEvents, user_id: &str) {
    events.user_activity(&paymetrics::events::UserActivity {
        user_id,
        activity_type: paymetrics::events::ActivityType::Login,
        user_tier: paymetrics::events::UserTier::Standard,
        device_type: paymetrics::events::DeviceType::Mobile,
        session_duration_ms: None,
    });
}

/// A payment attempt by `sender_id` (feeds the unique-senders sketch).
pub fn attempt(events: &BusinessEvents, sender_id: &str) {
    events.payment_attempt(&paymetrics::events::PaymentAttempt {
        amount: 10.0,
        currency: "EUR",
        payment_method: PaymentMethod::Card,
        sender_id,
        sender_country: Some("FR"),
        receiver_country: Some("DE"),
    });
}

/// Counts how many of `instances` sent a point named `name` stamped `at`, and returns the
/// value (all senders must agree).
pub fn published_once(instances: &[&Instance], name: &str, at: SystemTime) -> f64 {
    let sent: Vec<f64> = instances.iter().filter_map(|i| i.point(name, at)).collect();
    assert_eq!(
        sent.len(),
        1,
        "{name} at {at:?} sent by {} instances",
        sent.len()
    );
    sent[0]
}

/// Three instances of one fleet record known traffic; the fleet's KPIs and hourly rollup are
/// the sums, each published by exactly one instance. `store` makes each instance's store
/// (its own connection, as if in its own process).
pub async fn three_instances_publish_the_fleet_sum_once<S: paymetrics_automation::FleetStore>(
    store: impl Fn() -> S,
) {
    use paymetrics::{
        events::{PaymentStatus::*, payment, user},
        kpi, rollup,
    };

    let clock = ManualClock::new(t(10, 50, 0));
    let fleet: Vec<Instance> = ["a", "b", "c"]
        .into_iter()
        .map(|id| {
            let store = store();
            start(&clock, move |b| {
                b.fleet(store)
                    .instance_id(id)
                    .collector_interval(Duration::from_secs(30))
                    .kpi_interval(Duration::from_secs(300))
                    .publish_delay(Duration::from_secs(10))
            })
        })
        .collect();
    let all: Vec<&Instance> = fleet.iter().collect();
    let [a, b, c] = [&fleet[0], &fleet[1], &fleet[2]];
    advance_to(&clock, &all, t(10, 50, 0)).await;

    clock.set(t(10, 50, 10));
    a.record(|e| {
        completion(e, Completed, 100.0, 2.5);
        completion(e, Completed, 100.0, 2.5);
        completion(e, Failed, 10.0, 0.0);
        registration(e);
        active(e, "u1");
        active(e, "u2");
        attempt(e, "s1");
    });
    b.record(|e| {
        completion(e, Completed, 40.5, 1.0);
        completion(e, Declined, 20.0, 0.0);
        health(e, true);
        health(e, true);
        active(e, "u2");
        active(e, "u3");
        attempt(e, "s1");
        attempt(e, "s2");
    });
    c.record(|e| {
        for _ in 0..4 {
            completion(e, Completed, 10.25, 0.25);
        }
        confirmed_fraud(e, true);
        confirmed_fraud(e, false);
        active(e, "u4");
    });

    // The KPI round at 10:55: every instance flushes and writes; one publishes 10 s later.
    advance_to(&clock, &all, t(10, 55, 0)).await;
    advance_to(&clock, &all, t(10, 55, 10)).await;
    let kpis: Vec<f64> = [
        kpi::TRANSACTION_SUCCESS_RATE,
        kpi::TRANSACTION_AVG_VALUE,
        kpi::CUSTOMER_ACQUISITION_RATE,
        kpi::FRAUD_EFFECTIVENESS,
        kpi::SYSTEM_AVAILABILITY,
        user::DAILY_ACTIVE,
        user::MONTHLY_ACTIVE,
        payment::UNIQUE_SENDERS,
    ]
    .iter()
    .map(|name| published_once(&all, name, t(10, 55, 0)))
    .collect();
    // 7 of 9 succeeded; 281.5 / 7 = 40.214..; 1 registration; 1 of 2 frauds blocked; 2 of 2
    // checks healthy; users u1..u4 (u2 on two instances), senders s1 and s2 (s1 on two).
    assert_eq!(kpis, [77.78, 40.21, 1.0, 50.0, 100.0, 4.0, 4.0, 2.0]);

    clock.set(t(10, 59, 30));
    a.record(|e| completion(e, Completed, 5.0, 0.5));
    b.record(|e| completion(e, Completed, 5.0, 0.5));
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
    // 11 payments, 9 succeeded (81.82 %), 291.5 (avg 32.39), fees 5.5 + 1.5 + 1.
    assert_eq!(hourly, [11.0, 81.82, 32.39, 291.5, 8.0]);

    let stats: Vec<_> = fleet.iter().map(|i| i.automation().stats()).collect();
    let sum =
        |f: fn(&paymetrics_automation::AutomationStats) -> u64| stats.iter().map(f).sum::<u64>();
    assert_eq!(sum(|s| s.hourly_rollups_published), 1, "{stats:?}");
    // KPI rounds at 10:55 and 11:00, one publisher each.
    assert_eq!(sum(|s| s.kpi_rounds_published), 2, "{stats:?}");
    assert_eq!(sum(|s| s.publications_skipped), 6, "{stats:?}");
    assert_eq!(sum(|s| s.write_failures), 0, "{stats:?}");
    // Nothing lost, nothing down: every figure published, from complete data.
    assert_eq!(sum(|s| s.publications_incomplete), 0, "{stats:?}");
    assert_eq!(sum(|s| s.store_outages), 0, "{stats:?}");
    assert!(
        fleet
            .iter()
            .all(|i| i.automation().store_reachable() == Some(true))
    );
    eprintln!(
        "normal run: hour 10:00 published {} time(s) with {hourly:?}; KPI rounds published {} \
         (10:55: {kpis:?}); {} acknowledged writes, 0 failed, 0 withheld",
        sum(|s| s.hourly_rollups_published),
        sum(|s| s.kpi_rounds_published),
        sum(|s| s.writes),
    );
    for instance in fleet {
        instance.shutdown().await;
    }
}
