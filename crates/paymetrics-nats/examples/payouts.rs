//! A payout worker on the local NATS JetStream, its queue metrics shown as paymetrics records
//! them: acknowledged publishes, a consumer that acks good messages and terminates bad ones.
//!
//! ```sh
//! scripts/services-queues && cargo run -p paymetrics-nats --example payouts
//! ```

use async_nats::{
    HeaderMap,
    jetstream::{self, AckKind, consumer::pull, stream},
};
use futures_util::StreamExt;
use paymetrics::events::queue;
use paymetrics_nats::{InstrumentedJetStream, MessageType};

const STREAM: &str = "PM_EXAMPLE_PAYOUTS";

fn main() {
    let recorded = paymetrics::testing::capture(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run())
            .expect("NATS with JetStream on 127.0.0.1:4222");
    });
    let consume = [
        (queue::QUEUE_NAME, STREAM),
        (queue::OPERATION, "consume"),
        (queue::MESSAGE_TYPE, "payout"),
    ];
    let publish = [
        (queue::QUEUE_NAME, STREAM),
        (queue::OPERATION, "publish"),
        (queue::MESSAGE_TYPE, "payout"),
    ];
    println!(
        "published:      {:?}",
        recorded.counter(queue::OPERATIONS_COUNT, &publish)
    );
    println!(
        "ack latency ms: {:?}",
        recorded.histogram(queue::OPERATIONS_PROCESSING_TIME, &publish)
    );
    println!(
        "consumed:       {:?}",
        recorded.counter(queue::OPERATIONS_COUNT, &consume)
    );
    println!(
        "dead letters:   {:?}",
        recorded.counter(queue::DLQ_MESSAGES, &consume)
    );
}

async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let client = async_nats::connect("127.0.0.1:4222").await?;
    let js = InstrumentedJetStream::builder()
        .message_type(MessageType::header("Payment-Event"))
        .wrap(jetstream::new(client));
    let stream = js
        .get_or_create_stream(stream::Config {
            name: STREAM.into(),
            subjects: vec![format!("{STREAM}.>")],
            ..Default::default()
        })
        .await?;
    let mut headers = HeaderMap::new();
    headers.insert("Payment-Event", "payout");
    for payload in ["{\"amount\":10}", "", "{\"amount\":25}"] {
        js.publish_with_headers(format!("{STREAM}.eu"), headers.clone(), payload.into())
            .await?
            .await?;
    }
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(
            "worker",
            pull::Config {
                durable_name: Some("worker".into()),
                max_deliver: 3,
                ..Default::default()
            },
        )
        .await?;
    let mut messages = js.messages(&consumer).await?;
    for _ in 0..3 {
        let Some(message) = messages.next().await else {
            break;
        };
        let message = message?;
        if message.payload.is_empty() {
            message.ack_with(AckKind::Term).await?; // never redelivered: a dead letter
        } else {
            message.ack().await?;
        }
    }
    js.delete_stream(STREAM).await?;
    Ok(())
}
