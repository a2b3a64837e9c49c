//! Fleet mode: three instances in one test share a store, record known traffic, and the
//! fleet's KPIs and hourly rollup are the sums, each published by exactly one of them. Once on
//! an in-process `MemoryStore`, once on the real Redis of `PAYMETRICS_TEST_REDIS_URL` (each
//! instance with its own connection, under a namespace of its own, deleted afterwards). The
//! Redis store's own contract (idempotent writes, merged sketches, locks, expiries) is checked
//! against the same server.

mod common;

use paymetrics_automation::MemoryStore;

#[tokio::test(flavor = "current_thread")]
async fn in_memory() {
    let store = MemoryStore::new();
    common::three_instances_publish_the_fleet_sum_once(|| store.clone()).await;
}

#[cfg(feature = "redis")]
mod on_redis {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use paymetrics::kpi::PeriodTotals;
    use paymetrics::uniques::HyperLogLog;
    use paymetrics_automation::{
        RedisStore,
        store::{FleetStore, Granularity, InstanceReport, SketchKey},
    };

    use super::common;

    fn redis_url() -> String {
        std::env::var("PAYMETRICS_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    /// A namespace unique to this test and run: tests share one Redis and run in parallel.
    fn namespace(test: &str) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!("pma-{test}-{}-{nanos}", std::process::id())
    }

    async fn connect() -> redis::aio::MultiplexedConnection {
        redis::Client::open(redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test Redis (PAYMETRICS_TEST_REDIS_URL)")
    }

    /// The namespace's keys, sorted.
    async fn keys(namespace: &str) -> Vec<String> {
        let mut c = connect().await;
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("paymetrics:{{{namespace}}}:*"))
            .query_async(&mut c)
            .await
            .unwrap();
        keys.sort();
        keys
    }

    async fn cleanup(namespace: &str) {
        let keys = keys(namespace).await;
        if !keys.is_empty() {
            let mut c = connect().await;
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut c)
                .await
                .unwrap();
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn three_instances_publish_the_fleet_sum_once() {
        let ns = namespace("fleet");
        common::three_instances_publish_the_fleet_sum_once(|| {
            RedisStore::builder(redis_url())
                .namespace(&ns)
                .build()
                .unwrap()
        })
        .await;
        let keys = keys(&ns).await;
        assert!(
            keys.contains(&format!(
                "paymetrics:{{{ns}}}:hour_totals:{}",
                common::DAY0 + 10 * 3600
            )),
            "{keys:?}"
        );
        assert!(
            keys.contains(&format!(
                "paymetrics:{{{ns}}}:lock:hour:{}",
                common::DAY0 + 10 * 3600
            )),
            "{keys:?}"
        );
        cleanup(&ns).await;
    }

    fn report(payments: u64, volume: f64, users: &[&str]) -> InstanceReport {
        let totals = PeriodTotals {
            payments,
            payments_succeeded: payments,
            volume,
            ..Default::default()
        };
        let mut report = InstanceReport::new(SystemTime::now());
        report.minutes.push((600, totals));
        report.hours.push((3600, totals));
        let hll = HyperLogLog::new();
        users.iter().for_each(|u| hll.insert(u.as_bytes()));
        report
            .sketches
            .push((SketchKey::daily_active_users(UNIX_EPOCH), hll.to_bytes()));
        report
    }

    #[tokio::test(flavor = "current_thread")]
    async fn writes_are_idempotent_sums_and_merges_across_instances() {
        let ns = namespace("store");
        let store = RedisStore::builder(redis_url())
            .namespace(&ns)
            .build()
            .unwrap();
        let a = report(3, 30.5, &["u1", "u2"]);
        let b = report(4, 40.25, &["u2", "u3"]);
        store.write("a", &a).await.unwrap();
        store.write("b", &b).await.unwrap();
        store.write("a", &a).await.unwrap(); // a retried write: replaced, not added
        let now = SystemTime::now();
        let hour = store
            .totals(Granularity::Hour, &[3600, 7200], now)
            .await
            .unwrap();
        assert!(
            hour.complete,
            "this Redis lost nothing since the store saw it"
        );
        assert_eq!((hour.value.payments, hour.value.volume), (7, 70.75));
        let minute = store
            .totals(Granularity::Minute, &[600], now)
            .await
            .unwrap();
        assert_eq!(minute.value.payments, 7);
        let users = store
            .sketch(SketchKey::daily_active_users(UNIX_EPOCH), now)
            .await
            .unwrap();
        assert!(users.complete);
        assert_eq!(users.value.unwrap().estimate().round(), 3.0);
        let senders = store
            .sketch(SketchKey::daily_senders(UNIX_EPOCH), now)
            .await
            .unwrap();
        assert_eq!(
            (senders.value.is_none(), senders.complete),
            (true, true),
            "nobody wrote one: a real nothing"
        );

        // What a user sees in redis-cli: the fleet's sum, one field per instance with its
        // absolute values, an expiry.
        let mut c = connect().await;
        let key = format!("paymetrics:{{{ns}}}:hour_totals:3600");
        let fields: std::collections::BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(fields.len(), 3, "{fields:?}");
        assert!(
            fields["i:a"].starts_with("payments=3,payments_succeeded=3,volume=30.5,"),
            "{fields:?}"
        );
        assert!(
            fields["sum"].contains("payments=7,") && fields["sum"].contains("volume=70.75"),
            "a retried write added nothing: {fields:?}"
        );
        // The fleet's sketch is one Redis HyperLogLog, merged in Redis: Redis reads it too.
        let count: u64 = redis::cmd("PFCOUNT")
            .arg(format!("paymetrics:{{{ns}}}:hll:users:0"))
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(count, 3);
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(ttl > 26 * 3600 * 1000 && ttl <= 27 * 3600 * 1000, "{ttl}");

        let ttl = Duration::from_secs(60);
        assert!(store.try_lock("hour:3600", "a", ttl, now).await.unwrap());
        assert!(!store.try_lock("hour:3600", "b", ttl, now).await.unwrap());
        assert!(
            store.try_lock("hour:3600", "a", ttl, now).await.unwrap(),
            "re-entrant"
        );
        let holder: String = redis::cmd("GET")
            .arg(format!("paymetrics:{{{ns}}}:lock:hour:3600"))
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(holder, "a");
        cleanup(&ns).await;
    }

    #[test]
    fn configuration_errors_surface_at_build_time_without_the_password() {
        let err = RedisStore::new("redis://:s3cret@[::1")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid Redis URL"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        let err = RedisStore::builder("redis://127.0.0.1")
            .namespace("a{b}")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("namespace"), "{err}");
        #[cfg(feature = "tls")]
        RedisStore::new("rediss://cache.internal:6380").expect("rediss:// with the tls feature");
        let store = RedisStore::builder("redis://:s3cret@127.0.0.1")
            .build()
            .unwrap();
        assert!(!format!("{store:?}").contains("s3cret"));
    }
}
