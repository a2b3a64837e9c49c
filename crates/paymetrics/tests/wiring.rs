//! `BusinessMetrics`: events, uniques, windows and on-demand rollups wired to one paymetrics.

use std::time::{Duration, SystemTime};

use paymetrics::{
    business::BusinessMetrics,
    clock::ManualClock,
    events::{
        ActivityType, DeviceType, PaymentCompletion, PaymentMethod, PaymentStatus, UserActivity,
        UserTier, payment, user,
    },
    export::{MemoryExporter, MemoryReader},
    message::{Message, TimestampedMetric},
    rollup,
};

const DAY: u64 = 86_400 * 20_000; // 2024-10-04T00:00:00Z

fn at(seconds_into_day: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(DAY + seconds_into_day)
}

fn completion(status: PaymentStatus, amount: f64, fees: f64) -> PaymentCompletion<'static> {
    PaymentCompletion {
        status,
        amount,
        fees: Some(fees),
        currency: "EUR",
        payment_method: PaymentMethod::Card,
        processing_time_ms: None,
    }
}

fn activity(user_id: &str) -> UserActivity<'_> {
    UserActivity {
        user_id,
        activity_type: ActivityType::Login,
        user_tier: UserTier::Standard,
        device_type: DeviceType::Mobile,
        session_duration_ms: None,
    }
}

fn points(sent: &MemoryReader) -> Vec<TimestampedMetric> {
    sent.messages()
        .into_iter()
        .filter_map(|m| match m {
            Message::Timestamped(point) => Some(point),
            _ => None,
        })
        .collect()
}

fn point<'a>(points: &'a [TimestampedMetric], name: &str) -> &'a TimestampedMetric {
    let found: Vec<_> = points.iter().filter(|p| p.name == name).collect();
    assert_eq!(found.len(), 1, "{name}: {points:?}");
    found[0]
}

#[test]
fn a_past_hour_and_the_day_are_published_on_demand() {
    let clock = ManualClock::new(at(10 * 3600 + 1800));
    let (memory, sent) = MemoryExporter::new();
    let builder = paymetrics::builder()
        .without_dogstatsd()
        .clock(clock.clone())
        .exporter(memory);
    let (metrics, business) = BusinessMetrics::build(builder).unwrap();
    let events = &business.events;

    metrics::with_local_recorder(metrics.recorder(), || {
        events.payment_completion(&completion(PaymentStatus::Completed, 100.0, 1.0));
        events.payment_completion(&completion(PaymentStatus::Completed, 50.0, 2.0));
        events.payment_completion(&completion(PaymentStatus::Declined, 70.0, 0.0));
        events.user_activity(&activity("user-1"));
        events.user_activity(&activity("user-2"));
        events.user_activity(&activity("user-1"));
    });
    metrics.flush(); // the 10:30 deltas land in the 10:00 hour
    clock.advance(Duration::from_secs(3600)); // 11:30
    metrics::with_local_recorder(metrics.recorder(), || {
        events.payment_completion(&completion(PaymentStatus::Completed, 25.0, 0.5));
        events.user_activity(&activity("user-3"));
    });

    // The events fed the wired uniques.
    assert_eq!(
        business.uniques.current().daily_active.estimate().round(),
        3.0
    );

    // Backfill the hour that ended: only its three completions.
    let hour = rollup::publish_hourly(&metrics.handle(), &business.windows, at(10 * 3600));
    assert_eq!(hour.total_payments, 3);
    assert_eq!(hour.success_rate_percent, 66.67);
    assert_eq!(hour.total_volume, 150.0);
    assert_eq!(hour.avg_value, 75.0);
    assert_eq!(hour.total_fees, 3.0);

    // The whole day so far: the 11:30 completion was flushed by publish_hourly.
    let day = rollup::publish_daily(
        &metrics.handle(),
        &business.windows,
        &business.uniques,
        at(0),
    );
    assert_eq!(day.total_payments, 4);
    assert_eq!(day.total_volume, 175.0);
    assert_eq!(day.total_revenue, 3.5);
    assert_eq!(day.total_users, 3);

    metrics.flush();
    let sent_points = points(&sent);
    assert_eq!(sent_points.len(), 9, "{sent_points:?}");
    let total = point(&sent_points, rollup::HOURLY_TOTAL);
    assert_eq!(total.value, 3.0);
    assert_eq!(total.timestamp, DAY + 10 * 3600 + 3599);
    assert_eq!(total.tags, ["aggregation:hourly"]);
    let users = point(&sent_points, rollup::DAILY_TOTAL_USERS);
    assert_eq!(users.value, 3.0);
    assert_eq!(users.timestamp, DAY + 86_399);
    assert_eq!(users.tags, ["aggregation:daily"]);
}

#[test]
fn a_day_the_uniques_no_longer_hold_has_no_users() {
    let clock = ManualClock::new(at(3600));
    let builder = paymetrics::builder()
        .without_dogstatsd()
        .clock(clock.clone());
    let (metrics, business) = BusinessMetrics::build(builder).unwrap();
    metrics::with_local_recorder(metrics.recorder(), || {
        business.events.user_activity(&activity("user-1"));
    });
    let publish = || {
        rollup::publish_daily(
            &metrics.handle(),
            &business.windows,
            &business.uniques,
            at(0),
        )
        .total_users
    };
    // Three days later the day is still the latest one before today.
    clock.advance(Duration::from_secs(3 * 86_400));
    assert_eq!(publish(), 1);
    // Once another day has passed, it is gone.
    clock.advance(Duration::from_secs(86_400));
    assert_eq!(publish(), 0);
}

#[test]
fn the_unique_user_gauges_go_out_only_when_published() {
    let (memory, sent) = MemoryExporter::new();
    let builder = paymetrics::builder().without_dogstatsd().exporter(memory);
    let (metrics, business) = BusinessMetrics::build(builder).unwrap();
    let gauge = |name: &str| {
        sent.latest()
            .and_then(|s| s.gauge(name, &[]))
            .map(|g| g.value)
    };

    metrics::with_local_recorder(metrics.recorder(), || {
        business.events.user_activity(&activity("user-1"));
    });
    metrics.flush();
    assert_eq!(gauge(user::DAILY_ACTIVE), None);

    metrics::with_local_recorder(metrics.recorder(), || business.uniques.publish());
    metrics.flush();
    assert_eq!(gauge(user::DAILY_ACTIVE), Some(1.0));
    assert_eq!(gauge(user::MONTHLY_ACTIVE), Some(1.0));
    assert_eq!(gauge(payment::UNIQUE_SENDERS), Some(0.0));
}
