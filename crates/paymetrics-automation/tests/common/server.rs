//! A `redis-server` of a test's own (on a free port, with a password, killed by pid and
//! restarted empty), fleet instances on it, and a capture of this crate's logs.
#![allow(dead_code, unreachable_pub)]

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use paymetrics::{clock::ManualClock, events::PaymentStatus::Completed};
use paymetrics_automation::RedisStore;
use redis::RedisResult;
use tokio::time::{Instant, sleep};
use tracing::Level;

use super::{DEADLINE, Instance, completion, start};

pub const PASSWORD: &str = "paymetrics-test-secret";

/// A `redis-server` child process with a password, killed when dropped (also on panic).
pub struct Server {
    child: Option<Child>,
    port: u16,
}

impl Server {
    /// Starts a server on a free port, retrying with another port if it could not bind.
    pub async fn start() -> Server {
        for _ in 0..5 {
            let port = free_port();
            let mut server = Server { child: None, port };
            if server.restart().await {
                return server;
            }
        }
        panic!("could not start redis-server on a free port");
    }

    pub fn url(&self) -> String {
        format!("redis://:{PASSWORD}@127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on its port; `true` once it answers `PING`.
    pub async fn restart(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                PASSWORD,
            ])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && child.try_wait().ok().flatten().is_some()
            {
                self.child = None;
                return false; // exited: the port was taken
            }
            if self.ping().await {
                return true;
            }
            sleep(Duration::from_millis(20)).await;
        }
        false
    }

    pub async fn ping(&self) -> bool {
        let Ok(mut c) = self.connect().await else {
            return false;
        };
        let pong: RedisResult<String> = redis::cmd("PING").query_async(&mut c).await;
        pong.is_ok()
    }

    pub async fn connect(&self) -> RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    /// The number of instances with an entry for `key` (fields `i:<instance>`; the fleet's
    /// `sum` is not one).
    pub async fn hlen(&self, key: &str) -> usize {
        let mut c = self.connect().await.expect("the server is up");
        let fields: Vec<String> = redis::cmd("HKEYS")
            .arg(key)
            .query_async(&mut c)
            .await
            .unwrap();
        fields.iter().filter(|f| f.starts_with("i:")).count()
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

/// Records `n` completed payments of `amount` (fees `fees` each) on `instance` and flushes,
/// as its periodic flusher would.
pub fn pay(instance: &Instance, n: usize, amount: f64, fees: f64) {
    instance.record(|e| {
        for _ in 0..n {
            completion(e, Completed, amount, fees);
        }
    });
    assert!(instance.metrics.flush());
}

/// A `tracing` subscriber that keeps this crate's events. Install it as the global default in
/// a test binary of its own: a thread's default misses events whose callsites other test
/// threads registered first.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<(Level, String)>>>);

impl Logs {
    /// The messages logged at `level` that contain `text`.
    pub fn count(&self, level: Level, text: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(l, m)| *l == level && m.contains(text))
            .count()
    }
}

impl tracing::Subscriber for Logs {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if event.metadata().target() != "paymetrics::automation" {
            return;
        }
        let mut message = String::new();
        event.record(
            &mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
                if field.name() == "message" {
                    message = format!("{value:?}");
                }
            },
        );
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), message));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A fleet instance on `server`'s namespace `namespace`, without KPIs, writing every 30 s.
pub fn instance(
    clock: &ManualClock,
    server: &Server,
    namespace: &str,
    id: &str,
    publish_delay: Duration,
) -> Instance {
    let store = store(server, namespace);
    let id = id.to_owned();
    start(clock, move |b| {
        b.fleet(store)
            .instance_id(id)
            .without_kpis()
            .collector_interval(Duration::from_secs(30))
            .publish_delay(publish_delay)
            .store_timeout(Duration::from_secs(2))
    })
}

pub fn store(server: &Server, namespace: &str) -> RedisStore {
    RedisStore::builder(server.url())
        .namespace(namespace)
        .operation_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}
