//! Helpers shared by the integration tests: the Redis to talk to, unique keys, and a
//! current-thread runtime run under a recording recorder.
#![allow(dead_code, unreachable_pub)]

use std::{
    future::Future,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use paymetrics::testing::Recorded;
use redis::aio::MultiplexedConnection;

/// Generous: the machine is a shared 2-core box.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The Redis the lead's test script starts: `PAYMETRICS_TEST_REDIS_URL`, or the local default.
pub fn redis_url() -> String {
    std::env::var("PAYMETRICS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A part of a key unique to this test and this run: tests share one Redis and run in parallel.
pub fn unique(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("pmr-{test}-{}-{nanos}", std::process::id())
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// Runs the future made by `test` on a current-thread runtime with a recording recorder
/// installed on this thread; returns what was recorded and the future's output.
pub fn record<F: Future>(test: impl FnOnce() -> F) -> (Recorded, F::Output) {
    let rt = runtime();
    let mut output = None;
    let recorded = paymetrics::testing::capture(|| output = Some(rt.block_on(test())));
    (recorded, output.expect("the test future ran"))
}

pub fn client() -> redis::Client {
    redis::Client::open(redis_url()).expect("a valid Redis URL")
}

pub async fn connect() -> MultiplexedConnection {
    client()
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test Redis (PAYMETRICS_TEST_REDIS_URL)")
}

/// Deletes `keys` through a connection that records nothing.
pub async fn cleanup(keys: impl redis::ToRedisArgs + Send + Sync) {
    let mut c = connect().await;
    let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query_async(&mut c).await;
}

/// The tags of a cache series: operation, cache_type:redis, key_pattern.
pub fn tags<'a>(operation: &'a str, pattern: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("operation", operation),
        ("cache_type", "redis"),
        ("key_pattern", pattern),
    ]
}

/// The same with one more tag.
pub fn tags_and<'a>(
    operation: &'a str,
    pattern: &'a str,
    key: &'a str,
    value: &'a str,
) -> [(&'a str, &'a str); 4] {
    [
        ("operation", operation),
        ("cache_type", "redis"),
        ("key_pattern", pattern),
        (key, value),
    ]
}
