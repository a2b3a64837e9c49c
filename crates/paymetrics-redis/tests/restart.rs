//! A `ConnectionManager` wrapped in an `InstrumentedConnection`, against a `redis-server` this
//! test starts on a port of its own, kills and restarts: the failures during the outage are
//! recorded with their `error_type`, and the commands after the reconnection as successes.

mod common;

use std::{
    collections::BTreeMap,
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

use common::{DEADLINE, tags, tags_and};
use paymetrics::{PaymetricsBuilder, export::MemoryExporter, snapshot::Snapshot};
use paymetrics_redis::{
    ErrorType, InstrumentedConnection, OPERATIONS_COUNT, OPERATIONS_ERRORS, OPERATIONS_HIT_MISS,
};
use redis::{AsyncCommands, RedisResult, aio::ConnectionManagerConfig};
use tokio::time::{Instant, sleep};

/// A `redis-server` child process, killed when dropped (also when the test panics).
struct Server {
    child: Option<Child>,
    port: u16,
}

impl Server {
    /// Starts a server on a free port, retrying with another port if it could not bind.
    async fn start() -> Server {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free local port")
                .port();
            let mut server = Server { child: None, port };
            if server.restart().await {
                return server;
            }
        }
        panic!("could not start redis-server on a free port");
    }

    /// (Re)starts the server on its port; `true` once it answers `PING`.
    async fn restart(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap();
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && child.try_wait().ok().flatten().is_some()
            {
                self.child = None;
                return false; // exited: the port was taken
            }
            if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                let pong: RedisResult<String> = redis::cmd("PING").query_async(&mut c).await;
                if pong.is_ok() {
                    return true;
                }
            }
            sleep(Duration::from_millis(20)).await;
        }
        false
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn errors_by_type(snapshot: &Snapshot) -> BTreeMap<&'static str, u64> {
    ErrorType::ALL
        .iter()
        .filter_map(|t| {
            let labels = tags_and("get", "user", "error_type", t.as_str());
            let delta = snapshot.counter(OPERATIONS_ERRORS, &labels)?.delta;
            (delta > 0).then_some((t.as_str(), delta))
        })
        .collect()
}

#[test]
fn a_connection_manager_reconnects_after_a_restart_and_both_sides_are_recorded() {
    let (memory, reader) = MemoryExporter::new();
    let metrics = PaymetricsBuilder::new()
        .without_dogstatsd()
        .flush_interval(Duration::from_secs(3600))
        .exporter(memory)
        .build()
        .unwrap();
    let flush = || {
        assert!(metrics.flush());
        reader.latest().expect("a snapshot")
    };
    let rt = common::runtime();
    metrics::with_local_recorder(metrics.recorder(), || {
        rt.block_on(async {
            let mut server = Server::start().await;
            let config = ConnectionManagerConfig::new()
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(10))
                .set_max_delay(Duration::from_millis(50))
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(5)));
            let manager = redis::Client::open(server.url())
                .unwrap()
                .get_connection_manager_with_config(config)
                .await
                .unwrap();
            let mut cache = InstrumentedConnection::new(manager);

            let _: () = cache.set("user:1", "alice").await.unwrap();
            let found: Option<String> = cache.get("user:1").await.unwrap();
            assert_eq!(found.as_deref(), Some("alice"));
            let before = flush();
            assert_eq!(before.counter_delta_sum(OPERATIONS_ERRORS), 0);

            // The outage: every command fails.
            server.kill();
            let mut observed: BTreeMap<&'static str, u64> = BTreeMap::new();
            for _ in 0..2 {
                let result: RedisResult<Option<String>> = cache.get("user:1").await;
                let error = result.expect_err("the server is down");
                let error_type = ErrorType::of_error(&error);
                assert_eq!(error_type, ErrorType::Connection, "{error}");
                *observed.entry(error_type.as_str()).or_default() += 1;
            }

            // The server comes back (empty: no persistence); poll until the manager reconnects.
            assert!(
                server.restart().await,
                "redis-server restarts on port {}",
                server.port
            );
            let deadline = Instant::now() + DEADLINE;
            let mut attempts = 2;
            loop {
                attempts += 1;
                let result: RedisResult<Option<String>> = cache.get("user:1").await;
                match result {
                    Ok(value) => {
                        assert_eq!(value, None, "a fresh server");
                        break;
                    }
                    Err(error) => {
                        let error_type = ErrorType::of_error(&error);
                        *observed.entry(error_type.as_str()).or_default() += 1;
                    }
                }
                assert!(Instant::now() < deadline, "no reconnection in {DEADLINE:?}");
                sleep(Duration::from_millis(20)).await;
            }
            let outage = flush();
            assert_eq!(
                errors_by_type(&outage),
                observed,
                "every failure, with its type"
            );
            assert_eq!(
                outage
                    .counter(OPERATIONS_COUNT, &tags("get", "user"))
                    .unwrap()
                    .delta,
                attempts
            );

            // After the reconnection: successes only.
            for _ in 0..5 {
                let value: Option<String> = cache.get("user:1").await.unwrap();
                assert_eq!(value, None);
            }
            let after = flush();
            assert_eq!(after.counter_delta_sum(OPERATIONS_ERRORS), 0);
            assert_eq!(
                after
                    .counter(OPERATIONS_COUNT, &tags("get", "user"))
                    .unwrap()
                    .delta,
                5
            );
            let misses = tags_and("get", "user", "result", "miss");
            assert_eq!(
                after.counter(OPERATIONS_HIT_MISS, &misses).unwrap().delta,
                5
            );
        });
    });
}
