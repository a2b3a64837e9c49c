//! Shared by the NATS tests: the JetStream server on 127.0.0.1:4222 (or a private one the test
//! starts and restarts), unique stream names, a generous deadline on every wait, and a way to
//! run async code under a capturing recorder.

#![allow(dead_code, unreachable_pub)]

use std::{
    future::Future,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use async_nats::jetstream::{self, consumer::pull, stream};
use paymetrics::testing::Recorded;

/// The deadline of any single wait on the server: generous, for a busy 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "127.0.0.1:4222".into())
}

/// A stream name no other test (or run) uses (JetStream names: no dots or spaces).
pub fn unique(label: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("PM_{label}_{}_{nanos}_{n}", std::process::id())
}

/// `future`, or a panic past [`DEADLINE`].
pub async fn within<F: std::future::IntoFuture>(future: F) -> F::Output {
    tokio::time::timeout(DEADLINE, future)
        .await
        .expect("the server did not answer within the deadline")
}

pub async fn connect(url: &str) -> async_nats::Client {
    within(async_nats::connect(url))
        .await
        .expect("NATS with JetStream on 127.0.0.1:4222 (scripts/services-queues starts it)")
}

/// A stream on `<name>.>` and a durable pull consumer `worker` on it.
pub async fn stream_and_consumer(
    js: &jetstream::Context,
    name: &str,
    consumer: pull::Config,
) -> (stream::Stream, jetstream::consumer::PullConsumer) {
    let stream = within(js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![format!("{name}.>")],
        ..Default::default()
    }))
    .await
    .unwrap();
    let consumer = within(stream.create_consumer(pull::Config {
        durable_name: Some("worker".into()),
        ..consumer
    }))
    .await
    .unwrap();
    (stream, consumer)
}

/// Runs `test` on a current-thread runtime under a capturing recorder: every task it spawns
/// runs on this thread, so everything recorded lands in the capture.
pub fn capture<F: Future<Output = ()>>(test: impl FnOnce() -> F) -> Recorded {
    paymetrics::testing::capture(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(test())
    })
}

/// The tags of a queue operation.
pub fn tags<'a>(
    queue: &'a str,
    operation: &'a str,
    message_type: &'a str,
) -> [(&'a str, &'a str); 3] {
    use paymetrics::events::queue::{MESSAGE_TYPE, OPERATION, QUEUE_NAME};
    [
        (QUEUE_NAME, queue),
        (OPERATION, operation),
        (MESSAGE_TYPE, message_type),
    ]
}

/// The tags of a queue error.
pub fn error_tags<'a>(
    queue: &'a str,
    operation: &'a str,
    error: &'a str,
) -> [(&'a str, &'a str); 3] {
    use paymetrics::events::queue::{OPERATION, QUEUE_NAME};
    [
        (QUEUE_NAME, queue),
        (OPERATION, operation),
        (paymetrics_nats::ERROR_TYPE, error),
    ]
}

/// A `nats-server -js` of the test's own, on a free port with its store in a temporary
/// directory, that the test can kill and start again on the same port and store.
pub struct PrivateServer {
    pub port: u16,
    store: PathBuf,
    child: Option<Child>,
}

impl PrivateServer {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = std::env::temp_dir().join(unique("store"));
        let mut server = Self {
            port,
            store,
            child: None,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: no goodbye to the clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts the server and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        let child =
            Command::new(std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into()))
                .args([
                    "-js",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-sd",
                ])
                .arg(&self.store)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nats-server on the PATH (scripts/services-queues installs it)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + DEADLINE;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not start"
            );
            std::thread::yield_now();
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}
