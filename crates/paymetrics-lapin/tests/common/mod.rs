//! Shared by the RabbitMQ tests: a connection to the broker on 127.0.0.1:5672, unique queue
//! names, a generous deadline on every wait, and a way to run async code under a capturing
//! recorder.

#![allow(dead_code, unreachable_pub)]

use std::{
    future::Future,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use lapin::{Connection, ConnectionProperties};
use paymetrics::testing::Recorded;

/// The deadline of any single wait on the broker: generous, for a busy 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A queue name no other test (or run) uses.
pub fn unique(label: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("pm-{label}-{}-{nanos}-{n}", std::process::id())
}

pub async fn connect(name: &str) -> Connection {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    within(Connection::connect(&amqp_url(), properties))
        .await
        .expect("RabbitMQ on 127.0.0.1:5672 (scripts/services-queues starts it)")
}

/// `future`, or a panic past [`DEADLINE`].
pub async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(DEADLINE, future)
        .await
        .expect("the broker did not answer within the deadline")
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
        (paymetrics_lapin::ERROR_TYPE, error),
    ]
}
