//! Commands on the real Redis of `PAYMETRICS_TEST_REDIS_URL`, through the typed `AsyncCommands`
//! API of an instrumented multiplexed connection, asserting what a user would see recorded.
//!
//! Every test uses keys of its own (`<pattern>:pmr-<test>-<pid>-<nanos>...`) and its own
//! recorder, so they run in parallel against one server.

mod common;

use std::time::Duration;

use common::{cleanup, connect, record, tags, tags_and, unique};
use paymetrics::{PaymetricsBuilder, export::MemoryExporter};
use paymetrics_redis::{
    CACHE_SIZE_CURRENT, CACHE_TTL_DISTRIBUTION, CacheHitRate, ErrorType, HitMiss, HitRateExporter,
    InstrumentedConnection, OPERATIONS_COUNT, OPERATIONS_ERRORS, OPERATIONS_HIT_MISS,
    OPERATIONS_RESPONSE_TIME,
};
use redis::{AsyncCommands, AsyncConnectionConfig, RedisResult, SetExpiry, SetOptions};

#[test]
fn gets_record_hits_misses_counts_and_response_times() {
    let id = unique("hits");
    let (key, missing, unpatterned) = (format!("user:{id}:1"), format!("user:{id}:2"), id.clone());
    let (recorded, ()) = record(|| async {
        let mut cache = InstrumentedConnection::new(connect().await);
        let _: () = cache.set(&key, "alice").await.unwrap();
        let found: Option<String> = cache.get(&key).await.unwrap();
        assert_eq!(found.as_deref(), Some("alice"), "replies pass through");
        let found: Option<String> = cache.get(&missing).await.unwrap();
        assert_eq!(found, None);
        let found: Option<String> = cache.get(&unpatterned).await.unwrap();
        assert_eq!(found, None);
        cleanup(&key).await;
    });

    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("set", "user")),
        Some(1)
    );
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("get", "user")),
        Some(2)
    );
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("get", "other")),
        Some(1)
    );
    let hit = tags_and("get", "user", "result", "hit");
    let miss = tags_and("get", "user", "result", "miss");
    assert_eq!(recorded.counter(OPERATIONS_HIT_MISS, &hit), Some(1));
    assert_eq!(recorded.counter(OPERATIONS_HIT_MISS, &miss), Some(1));
    let other_miss = tags_and("get", "other", "result", "miss");
    assert_eq!(recorded.counter(OPERATIONS_HIT_MISS, &other_miss), Some(1));
    // SET is not a read.
    let set_hit = tags_and("set", "user", "result", "hit");
    assert_eq!(recorded.counter(OPERATIONS_HIT_MISS, &set_hit), None);

    let times = recorded
        .histogram(OPERATIONS_RESPONSE_TIME, &tags("get", "user"))
        .unwrap();
    assert_eq!(times.len(), 2);
    assert!(
        times.iter().all(|&ms| ms > 0.0 && ms < 30_000.0),
        "{times:?}"
    );
    assert!(
        !recorded.names().contains(&OPERATIONS_ERRORS.to_string()),
        "no errors: {:?}",
        recorded.names()
    );
    // Raw keys never become tags.
    assert!(format!("{recorded:?}").find(&id).is_none());
}

#[test]
fn multi_key_reads_record_each_key_or_field() {
    let id = unique("mget");
    let (user, session) = (format!("user:{id}:1"), format!("session:{id}:1"));
    let (user_missing, cart_missing) = (format!("user:{id}:2"), format!("cart:{id}:1"));
    let hash = format!("profile:{id}");
    let (recorded, ()) = record(|| async {
        let mut cache = InstrumentedConnection::new(connect().await);
        let _: () = cache.mset(&[(&user, "u"), (&session, "s")]).await.unwrap();
        let values: Vec<Option<String>> = cache
            .mget(&[&user, &user_missing, &session, &cart_missing])
            .await
            .unwrap();
        assert_eq!(values, [Some("u".into()), None, Some("s".into()), None]);

        let _: () = cache.hset(&hash, "name", "alice").await.unwrap();
        let fields: Vec<Option<String>> = cache.hmget(&hash, &["name", "age"]).await.unwrap();
        assert_eq!(fields, [Some("alice".into()), None]);
        let n: u32 = redis::cmd("EXISTS")
            .arg(&user)
            .arg(&user_missing)
            .arg(&session)
            .query_async(&mut cache)
            .await
            .unwrap();
        assert_eq!(n, 2);
        assert!(cache.hexists::<_, _, bool>(&hash, "name").await.unwrap());
        assert!(!cache.hexists::<_, _, bool>(&hash, "age").await.unwrap());
        let all: std::collections::HashMap<String, String> = cache.hgetall(&hash).await.unwrap();
        assert_eq!(all.len(), 1);
        let none: std::collections::HashMap<String, String> =
            cache.hgetall(format!("profile:{id}:none")).await.unwrap();
        assert!(none.is_empty());
        cleanup(&[&user, &session, &hash]).await;
    });

    let mget = |pattern: &str, result: &str| {
        recorded.counter(
            OPERATIONS_HIT_MISS,
            &tags_and("mget", pattern, "result", result),
        )
    };
    assert_eq!(mget("user", "hit"), Some(1));
    assert_eq!(mget("user", "miss"), Some(1));
    assert_eq!(mget("session", "hit"), Some(1));
    assert_eq!(mget("session", "miss"), None);
    assert_eq!(mget("cart", "miss"), Some(1));
    // One MGET, counted under its first key's pattern.
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("mget", "user")),
        Some(1)
    );
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("mget", "session")),
        None
    );

    let read = |op: &str, result: &str| {
        recorded.counter(
            OPERATIONS_HIT_MISS,
            &tags_and(op, "profile", "result", result),
        )
    };
    assert_eq!(
        (read("hmget", "hit"), read("hmget", "miss")),
        (Some(1), Some(1))
    );
    assert_eq!(
        (read("hexists", "hit"), read("hexists", "miss")),
        (Some(1), Some(1))
    );
    assert_eq!(
        (read("hgetall", "hit"), read("hgetall", "miss")),
        (Some(1), Some(1))
    );
    let exists = |result: &str| {
        recorded.counter(
            OPERATIONS_HIT_MISS,
            &tags_and("exists", "user", "result", result),
        )
    };
    assert_eq!((exists("hit"), exists("miss")), (Some(2), Some(1)));
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("mset", "user")),
        Some(1)
    );
}

#[test]
fn pipelines_and_transactions_record_each_command() {
    let id = unique("pipe");
    let (user, missing, session) = (
        format!("user:{id}:1"),
        format!("user:{id}:2"),
        format!("session:{id}:1"),
    );
    let (recorded, ()) = record(|| async {
        let mut cache = InstrumentedConnection::new(connect().await);
        let _: () = cache.set(&session, "not a number").await.unwrap();

        // A pipeline with a hit, a miss, a TTL and an error reply.
        let results: Vec<RedisResult<redis::Value>> = redis::pipe()
            .cmd("SET")
            .arg(&user)
            .arg("u")
            .arg("EX")
            .arg(30)
            .cmd("GET")
            .arg(&user)
            .cmd("GET")
            .arg(&missing)
            .cmd("INCR")
            .arg(&session)
            .ignore_errors()
            .query_async(&mut cache)
            .await
            .unwrap();
        assert!(results[3].is_err(), "the error reply reaches the caller");

        // A transaction whose commands share a pattern.
        let (value, ttl_set): (String, bool) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&user)
            .arg("v")
            .ignore()
            .cmd("GET")
            .arg(&user)
            .cmd("EXPIRE")
            .arg(&user)
            .arg(45)
            .query_async(&mut cache)
            .await
            .unwrap();
        assert_eq!((value.as_str(), ttl_set), ("v", true));

        // A transaction with a command failing at run time: the caller gets the error.
        let failed: RedisResult<(Option<String>, Option<String>)> = redis::pipe()
            .atomic()
            .cmd("GET")
            .arg(&user)
            .cmd("HGET")
            .arg(&user)
            .arg("field")
            .query_async(&mut cache)
            .await;
        assert!(failed.is_err());

        // A transaction that does not run: a WATCHed key changes before EXEC.
        let _: () = redis::cmd("WATCH")
            .arg(&user)
            .query_async(&mut cache)
            .await
            .unwrap();
        let _: () = connect()
            .await
            .set(&user, "changed elsewhere")
            .await
            .unwrap();
        let aborted: Option<(String,)> = redis::pipe()
            .atomic()
            .cmd("GET")
            .arg(&user)
            .query_async(&mut cache)
            .await
            .unwrap();
        assert_eq!(aborted, None);
        cleanup(&[&user, &session]).await;
    });

    // Each command counted under its own operation and pattern.
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("set", "user")),
        Some(2)
    );
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("get", "user")),
        Some(5)
    );
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("incr", "session")),
        Some(1)
    );
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("expire", "user")),
        Some(1)
    );
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("hget", "user")),
        Some(1)
    );
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("watch", "user")),
        Some(1)
    );
    // Hits: GET in the pipeline, GET in the first and second transactions; misses: one.
    assert_eq!(
        recorded.counter(
            OPERATIONS_HIT_MISS,
            &tags_and("get", "user", "result", "hit")
        ),
        Some(3)
    );
    let miss = tags_and("get", "user", "result", "miss");
    assert_eq!(recorded.counter(OPERATIONS_HIT_MISS, &miss), Some(1));
    assert_eq!(
        recorded.histogram(CACHE_TTL_DISTRIBUTION, &tags("set", "user")),
        Some(vec![30.0])
    );
    assert_eq!(
        recorded.histogram(CACHE_TTL_DISTRIBUTION, &tags("expire", "user")),
        Some(vec![45.0])
    );
    let error = |op: &str, pattern: &str, error_type: ErrorType| {
        recorded.counter(
            OPERATIONS_ERRORS,
            &tags_and(op, pattern, "error_type", error_type.as_str()),
        )
    };
    assert_eq!(error("incr", "session", ErrorType::Response), Some(1));
    assert_eq!(error("hget", "user", ErrorType::WrongType), Some(1));
    assert_eq!(
        error("get", "user", ErrorType::Aborted),
        Some(1),
        "the WATCH abort"
    );

    // Response times: one per round trip, none per command of a pipeline.
    let round_trips = |op: &str, pattern: &str| {
        recorded
            .histogram(OPERATIONS_RESPONSE_TIME, &tags(op, pattern))
            .map_or(0, |v| v.len())
    };
    assert_eq!(round_trips("pipeline", "mixed"), 1);
    assert_eq!(round_trips("transaction", "user"), 3);
    assert_eq!(round_trips("get", "user"), 0);
    assert_eq!(round_trips("set", "session"), 1);
    assert_eq!(round_trips("watch", "user"), 1);
}

#[test]
fn ttls_are_recorded_in_seconds() {
    let id = unique("ttl");
    let key = |n: u32| format!("user:{id}:{n}");
    let (recorded, ()) = record(|| async {
        let mut cache = InstrumentedConnection::new(connect().await);
        let ex = SetOptions::default().with_expiration(SetExpiry::EX(60));
        let _: () = cache.set_options(key(1), "v", ex).await.unwrap();
        let _: () = redis::cmd("SET")
            .arg(key(2))
            .arg("v")
            .arg("px")
            .arg(1500)
            .query_async(&mut cache)
            .await
            .unwrap();
        let _: () = cache.set_ex(key(3), "v", 30).await.unwrap();
        let _: () = cache.pset_ex(key(4), "v", 2500).await.unwrap();
        assert!(cache.expire::<_, bool>(key(3), 120).await.unwrap());
        assert!(cache.pexpire::<_, bool>(key(4), 250).await.unwrap());
        // TTLs that did not apply: NX on an existing key, EXPIRE on a missing key.
        let nx = SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(SetExpiry::EX(999));
        let set: Option<String> = cache.set_options(key(1), "v", nx).await.unwrap();
        assert_eq!(set, None);
        assert!(!cache.expire::<_, bool>(key(99), 999).await.unwrap());
        let got: Option<String> = cache.get_ex(key(1), redis::Expiry::EX(90)).await.unwrap();
        assert!(got.is_some());
        cleanup(&(1..=4).map(key).collect::<Vec<_>>()).await;
    });

    let ttl = |op: &str| recorded.histogram(CACHE_TTL_DISTRIBUTION, &tags(op, "user"));
    assert_eq!(ttl("set"), Some(vec![60.0, 1.5]));
    assert_eq!(ttl("setex"), Some(vec![30.0]));
    assert_eq!(ttl("psetex"), Some(vec![2.5]));
    assert_eq!(ttl("expire"), Some(vec![120.0]));
    assert_eq!(ttl("pexpire"), Some(vec![0.25]));
    assert_eq!(ttl("getex"), Some(vec![90.0]));
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("set", "user")),
        Some(3)
    );
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("expire", "user")),
        Some(2)
    );
}

#[test]
fn error_replies_are_recorded_with_their_type_and_passed_through() {
    let id = unique("err");
    let key = format!("user:{id}");
    let (recorded, ()) = record(|| async {
        let mut bare = connect().await;
        let mut cache = InstrumentedConnection::new(connect().await);
        let _: () = cache.set(&key, "not a number").await.unwrap();

        let wrapped: RedisResult<i64> = cache.incr(&key, 1).await;
        let direct: RedisResult<i64> = bare.incr(&key, 1).await;
        let (wrapped, direct) = (wrapped.unwrap_err(), direct.unwrap_err());
        assert_eq!(wrapped.kind(), direct.kind());
        assert_eq!(
            wrapped.to_string(),
            direct.to_string(),
            "the error is passed as is"
        );

        let wrong: RedisResult<Option<String>> = cache.hget(&key, "field").await;
        assert_eq!(wrong.unwrap_err().code(), Some("WRONGTYPE"));
        cleanup(&key).await;
    });

    let error = |op: &str, t: ErrorType| {
        recorded.counter(
            OPERATIONS_ERRORS,
            &tags_and(op, "user", "error_type", t.as_str()),
        )
    };
    // `incr(key, 1)` sends INCRBY.
    assert_eq!(error("incrby", ErrorType::Response), Some(1));
    assert_eq!(error("hget", ErrorType::WrongType), Some(1));
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("incrby", "user")),
        Some(1)
    );
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("hget", "user")),
        Some(1)
    );
    // A failed read is neither a hit nor a miss.
    assert_eq!(
        recorded.counter(
            OPERATIONS_HIT_MISS,
            &tags_and("hget", "user", "result", "hit")
        ),
        None
    );
    let miss = tags_and("hget", "user", "result", "miss");
    assert_eq!(recorded.counter(OPERATIONS_HIT_MISS, &miss), None);
    assert_eq!(
        recorded
            .histogram(OPERATIONS_RESPONSE_TIME, &tags("incrby", "user"))
            .map(|v| v.len()),
        Some(1)
    );
}

#[test]
fn a_response_timeout_and_a_dropped_future_are_recorded_as_errors() {
    let id = unique("timeout");
    let queue = format!("jobs:{id}");
    let (recorded, ()) = record(|| async {
        // The connection gives up after 100 ms; BLPOP would block for 10 s on the server (the
        // server drops it when the connection closes at the end of the test).
        let config =
            AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_millis(100)));
        let connection = common::client()
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .unwrap();
        let mut cache = InstrumentedConnection::new(connection);
        let timed_out: RedisResult<Option<(String, String)>> = cache.blpop(&queue, 10.0).await;
        assert!(timed_out.unwrap_err().is_timeout());

        // The caller gives up first: the command's future is dropped before the reply.
        let config = AsyncConnectionConfig::new().set_response_timeout(None);
        let connection = common::client()
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .unwrap();
        let mut cache = InstrumentedConnection::new(connection);
        let blpop = cache.blpop::<_, Option<(String, String)>>(&queue, 10.0);
        let gave_up = tokio::time::timeout(Duration::from_millis(50), blpop).await;
        assert!(gave_up.is_err());
    });

    let error = |t: ErrorType| {
        recorded.counter(
            OPERATIONS_ERRORS,
            &tags_and("blpop", "jobs", "error_type", t.as_str()),
        )
    };
    assert_eq!(error(ErrorType::Timeout), Some(1));
    assert_eq!(error(ErrorType::Cancelled), Some(1));
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("blpop", "jobs")),
        Some(2)
    );
}

#[test]
fn keyless_and_unknown_commands_are_bounded() {
    let (recorded, ()) = record(|| async {
        let mut cache = InstrumentedConnection::builder()
            .max_key_patterns(1)
            .wrap(connect().await);
        let _: String = redis::cmd("PING").query_async(&mut cache).await.unwrap();
        let _: String = redis::cmd("ECHO")
            .arg("hello")
            .query_async(&mut cache)
            .await
            .unwrap();
        let id = unique("cap");
        let _: Option<String> = cache.get(format!("first:{id}")).await.unwrap();
        let _: Option<String> = cache.get(format!("second:{id}")).await.unwrap();
    });
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("ping", "none")),
        Some(1)
    );
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("other", "other")),
        Some(1)
    );
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("get", "first")),
        Some(1)
    );
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("get", "other")),
        Some(1),
        "past the cap of one pattern"
    );
}

#[test]
fn the_keyspace_size_is_sampled_on_demand_and_on_a_schedule() {
    let id = unique("size");
    let key = format!("user:{id}");
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let gauge = || {
        paymetrics::testing::Recorded::from_snapshotter(&snapshotter)
            .gauge(CACHE_SIZE_CURRENT, &[("cache_type", "redis")])
    };
    let rt = common::runtime();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let mut cache = InstrumentedConnection::new(connect().await);
            let _: () = cache.set_ex(&key, "v", 60).await.unwrap();
            let keys = cache.sample_size().await.unwrap();
            assert!(keys >= 1);
            assert_eq!(gauge(), Some(keys as f64));

            // A fresh connection: the scheduled sampler sets the gauge by itself.
            let fresh = InstrumentedConnection::new(connect().await);
            let sampler = fresh.spawn_size_sampler(Duration::from_millis(20)).unwrap();
            let deadline = tokio::time::Instant::now() + common::DEADLINE;
            let mut samples = 0;
            // Two samples seen: the gauge is re-set on schedule (it was reset to 0 between).
            while samples < 2 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no DBSIZE sample in time"
                );
                if gauge().is_some_and(|v| v >= 1.0) {
                    samples += 1;
                    metrics::gauge!(CACHE_SIZE_CURRENT, "cache_type" => "redis").set(0.0);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            drop(sampler);
        });
    });
    // DBSIZE polls are not cache operations.
    let recorded = paymetrics::testing::Recorded::from_snapshotter(&snapshotter);
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags("dbsize", "none")),
        None
    );
    let rt = common::runtime();
    rt.block_on(cleanup(&key));
}

#[test]
fn the_hit_rate_kpi_is_computed_from_paymetrics_snapshots() {
    let id = unique("kpi");
    let (memory, snapshots) = MemoryExporter::new();
    let (kpi, hit_rate) = HitRateExporter::new();
    let metrics = PaymetricsBuilder::new()
        .without_dogstatsd()
        .flush_interval(Duration::from_secs(3600))
        .exporter(memory)
        .exporter(kpi)
        .build()
        .unwrap();
    let rt = common::runtime();
    let key = format!("user:{id}");
    metrics::with_local_recorder(metrics.recorder(), || {
        rt.block_on(async {
            let mut cache = InstrumentedConnection::new(connect().await);
            let _: () = cache.set_ex(&key, "v", 60).await.unwrap();
            for _ in 0..3 {
                let _: Option<String> = cache.get(&key).await.unwrap();
            }
            let _: Option<String> = cache.get(format!("user:{id}:missing")).await.unwrap();
            cleanup(&key).await;
        });
    });
    assert_eq!(hit_rate.hit_rate("redis"), None, "before the first flush");
    assert!(metrics.flush());
    assert_eq!(hit_rate.totals("redis"), HitMiss { hits: 3, misses: 1 });
    assert_eq!(hit_rate.hit_rate("redis"), Some(75.0));
    assert_eq!(
        snapshots.counter_total(
            OPERATIONS_HIT_MISS,
            &tags_and("get", "user", "result", "hit")
        ),
        3
    );
    let rate = CacheHitRate::from_snapshots(Duration::from_secs(600), &snapshots.snapshots());
    assert_eq!(rate.hit_rate("redis"), Some(75.0));
}
