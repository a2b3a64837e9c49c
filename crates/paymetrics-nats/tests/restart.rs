//! The NATS server dies (SIGKILL) and comes back on the same port and store: the client
//! reconnects by itself, the publish that could not be acknowledged is counted once as a
//! failure, the unacknowledged message is redelivered once, and nothing is counted twice.

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use common::{
    PrivateServer, capture, connect, error_tags, stream_and_consumer, tags, unique, within,
};
use futures_util::StreamExt;
use paymetrics::events::queue::{
    MESSAGE_RETRY_COUNT, OPERATIONS_COUNT, OPERATIONS_PROCESSING_TIME,
};
use paymetrics_nats::{InstrumentedJetStream, OPERATIONS_ERRORS};

#[test]
fn a_server_restart_is_counted_once_and_recording_resumes() {
    let name = unique("RESTART");
    let n = name.clone();
    let recorded = capture(|| async move {
        let mut server = PrivateServer::start();
        let client = connect(&server.url()).await;
        // A short ack timeout, so the publish made while the server is down fails quickly.
        let context = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(2))
            .build(client.clone());
        let js = InstrumentedJetStream::new(context);
        let config = pull::Config {
            ack_wait: Duration::from_secs(2),
            ..Default::default()
        };
        let (_stream, consumer) = stream_and_consumer(&js, &n, config).await;
        for payload in ["a", "b"] {
            within(
                within(js.publish(format!("{n}.x"), payload.into()))
                    .await
                    .unwrap(),
            )
            .await
            .unwrap();
        }
        let mut messages = within(js.messages(&consumer)).await.unwrap();
        let held = within(messages.next()).await.unwrap().unwrap();
        assert_eq!(&held.payload[..], b"a");
        drop(messages);

        server.kill();
        // Sent while the server is away: the client buffers it, and no ack comes in time.
        let lost = match within(js.publish(format!("{n}.x"), "lost".into())).await {
            Ok(ack) => within(ack).await.is_err(),
            Err(_) => true,
        };
        assert!(lost);
        drop(held); // never acknowledged: redelivered after ack_wait

        server.restart();
        within(async {
            while client.connection_state() != async_nats::connection::State::Connected {
                tokio::task::yield_now().await;
            }
        })
        .await;
        within(
            within(js.publish(format!("{n}.x"), "c".into()))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
        let mut messages = within(js.messages(&consumer)).await.unwrap();
        let mut seen = Vec::new();
        while !(seen.contains(&b"a".to_vec())
            && seen.contains(&b"b".to_vec())
            && seen.contains(&b"c".to_vec()))
        {
            let message = within(messages.next()).await.unwrap().unwrap();
            seen.push(message.payload.to_vec());
            within(message.double_ack()).await.unwrap();
        }
        within(js.delete_stream(&n)).await.unwrap();
    });

    let publish = tags(&name, "publish", "unknown");
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &publish),
        Some(3),
        "a, b, c"
    );
    assert_eq!(
        recorded
            .histogram(OPERATIONS_PROCESSING_TIME, &publish)
            .unwrap()
            .len(),
        3
    );
    let failed = tags("unknown", "publish", "unknown");
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &failed),
        Some(1),
        "the lost publish"
    );
    let errors = ["timeout", "failed"].map(|e| {
        recorded
            .counter(OPERATIONS_ERRORS, &error_tags("unknown", "publish", e))
            .unwrap_or(0)
    });
    assert_eq!(errors.iter().sum::<u64>(), 1);

    let consume = tags(&name, "consume", "unknown");
    let consumed = recorded.counter(OPERATIONS_COUNT, &consume).unwrap();
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags(&name, "ack", "unknown")),
        Some(consumed - 1)
    );
    let retries = recorded.histogram(MESSAGE_RETRY_COUNT, &consume).unwrap();
    assert_eq!(
        retries.len() as u64,
        consumed,
        "one retry count per delivery"
    );
    assert!(
        retries.iter().filter(|r| **r >= 1.0).count() >= 1,
        "a came back: {retries:?}"
    );
}
