//! The instrumented context against the NATS server on this machine: acknowledged publishes,
//! consumption and redelivery, dead letters past `max_deliver`, a panicking handler, a publish
//! with no stream, and consumer pending counts.

mod common;

use std::time::Duration;

use async_nats::{
    HeaderMap,
    jetstream::{self, AckKind, consumer::pull},
};
use common::{
    DEADLINE, capture, connect, error_tags, nats_url, stream_and_consumer, tags, unique, within,
};
use futures_util::StreamExt;
use paymetrics::events::queue::{
    DEPTH_CURRENT, DLQ_MESSAGES, MESSAGE_RETRY_COUNT, MESSAGE_SIZE, OPERATIONS_COUNT,
    OPERATIONS_PROCESSING_TIME, QUEUE_NAME,
};
use paymetrics_nats::{
    CONSUMER, InstrumentedJetStream, MessageType, OPERATIONS_ERRORS, PendingSampler,
};

fn typed(kind: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("Payment-Event", kind);
    headers
}

async fn instrumented() -> InstrumentedJetStream {
    InstrumentedJetStream::builder()
        .message_type(MessageType::header("Payment-Event"))
        .wrap(jetstream::new(connect(&nats_url()).await))
}

#[test]
fn acknowledged_publishes_and_consumption_with_a_redelivery() {
    let name = unique("ACKS");
    let n = name.clone();
    let recorded = capture(|| async move {
        let js = instrumented().await;
        let (_stream, consumer) = stream_and_consumer(&js, &n, pull::Config::default()).await;
        for payload in ["12345", "1234567890"] {
            let ack =
                within(js.publish_with_headers(format!("{n}.eu"), typed("payout"), payload.into()))
                    .await
                    .unwrap();
            assert_eq!(within(ack).await.unwrap().stream, n);
        }
        let mut messages = within(js.messages(&consumer)).await.unwrap();
        let (mut acked, mut naked) = (0, false);
        while acked < 2 {
            let message = within(messages.next()).await.unwrap().unwrap();
            if !naked {
                naked = true;
                assert_eq!(message.retry_count(), 0);
                within(message.ack_with(AckKind::Nak(None))).await.unwrap();
            } else {
                within(message.double_ack()).await.unwrap();
                acked += 1;
            }
        }
        within(js.delete_stream(&n)).await.unwrap();
    });

    let publish = tags(&name, "publish", "payout");
    assert_eq!(recorded.counter(OPERATIONS_COUNT, &publish), Some(2));
    let mut sizes = recorded.histogram(MESSAGE_SIZE, &publish).unwrap();
    sizes.sort_by(f64::total_cmp);
    assert_eq!(sizes, vec![5.0, 10.0]);
    let latencies = recorded
        .histogram(OPERATIONS_PROCESSING_TIME, &publish)
        .unwrap();
    assert_eq!(latencies.len(), 2);
    assert!(
        latencies
            .iter()
            .all(|ms| *ms > 0.0 && *ms < DEADLINE.as_millis() as f64)
    );

    let consume = tags(&name, "consume", "payout");
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &consume),
        Some(3),
        "three deliveries"
    );
    assert_eq!(
        recorded
            .histogram(OPERATIONS_PROCESSING_TIME, &consume)
            .unwrap()
            .len(),
        3
    );
    let mut retries = recorded.histogram(MESSAGE_RETRY_COUNT, &consume).unwrap();
    retries.sort_by(f64::total_cmp);
    assert_eq!(retries, vec![0.0, 0.0, 1.0], "the naked message came back");
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags(&name, "ack", "payout")),
        Some(2)
    );
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags(&name, "nack", "payout")),
        Some(1)
    );
    assert_eq!(recorded.counter(DLQ_MESSAGES, &consume), None);
}

#[test]
fn a_message_naked_on_its_last_delivery_is_a_dead_letter_and_never_comes_back() {
    let name = unique("MAXDELIVER");
    let n = name.clone();
    let recorded = capture(|| async move {
        let js = instrumented().await;
        let config = pull::Config {
            max_deliver: 2,
            ..Default::default()
        };
        let (stream, consumer) = stream_and_consumer(&js, &n, config).await;
        within(
            within(js.publish_with_headers(format!("{n}.x"), typed("refund"), "poison".into()))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
        within(
            within(js.publish_with_headers(format!("{n}.x"), typed("refund"), "fine".into()))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
        let mut messages = within(js.messages(&consumer)).await.unwrap();
        // poison: delivered, naked, delivered again, naked: given up. fine is acked; once it
        // has been, everything the server will ever deliver has been seen.
        let mut poison = 0;
        loop {
            let message = within(messages.next()).await.unwrap().unwrap();
            if &message.payload[..] == b"poison" {
                poison += 1;
                within(message.ack_with(AckKind::Nak(None))).await.unwrap();
            } else {
                within(message.ack()).await.unwrap();
            }
            if poison == 2 {
                break;
            }
        }
        let info = within(stream.consumer_info("worker")).await.unwrap();
        assert_eq!(info.num_pending, 0);
        within(js.delete_stream(&n)).await.unwrap();
    });
    let consume = tags(&name, "consume", "refund");
    assert_eq!(recorded.counter(OPERATIONS_COUNT, &consume), Some(3));
    assert_eq!(
        recorded.counter(DLQ_MESSAGES, &consume),
        Some(1),
        "only the last nak"
    );
    let mut retries = recorded.histogram(MESSAGE_RETRY_COUNT, &consume).unwrap();
    retries.sort_by(f64::total_cmp);
    assert_eq!(retries, vec![0.0, 0.0, 1.0]);
}

#[test]
fn a_terminated_message_is_a_dead_letter() {
    let name = unique("TERM");
    let n = name.clone();
    let recorded = capture(|| async move {
        let js = instrumented().await;
        let (_stream, consumer) = stream_and_consumer(&js, &n, pull::Config::default()).await;
        within(
            within(js.publish_with_headers(format!("{n}.x"), typed("refund"), "bad".into()))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
        let mut messages = within(js.messages(&consumer)).await.unwrap();
        let message = within(messages.next()).await.unwrap().unwrap();
        within(message.ack_with(AckKind::Term)).await.unwrap();
        within(js.delete_stream(&n)).await.unwrap();
    });
    let consume = tags(&name, "consume", "refund");
    assert_eq!(recorded.counter(DLQ_MESSAGES, &consume), Some(1));
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags(&name, "nack", "refund")),
        Some(1)
    );
}

#[test]
fn a_panicking_handler_is_counted_once_and_its_message_redelivered() {
    let name = unique("PANIC");
    let n = name.clone();
    let recorded = capture(|| async move {
        let js = instrumented().await;
        // The server redelivers an unacknowledged message after ack_wait.
        let config = pull::Config {
            ack_wait: Duration::from_secs(1),
            ..Default::default()
        };
        let (_stream, consumer) = stream_and_consumer(&js, &n, config).await;
        within(
            within(js.publish_with_headers(format!("{n}.x"), typed("capture"), "boom".into()))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
        let mut messages = within(js.messages(&consumer)).await.unwrap();
        let handler = tokio::spawn(async move {
            let message = messages.next().await.unwrap().unwrap();
            if &message.payload[..] == b"boom" {
                panic!("the handler failed on purpose");
            }
        });
        assert!(within(handler).await.unwrap_err().is_panic());

        let mut messages = within(js.messages(&consumer)).await.unwrap();
        let message = within(messages.next()).await.unwrap().unwrap();
        assert_eq!(message.retry_count(), 1);
        within(message.ack()).await.unwrap();
        within(js.delete_stream(&n)).await.unwrap();
    });
    let consume = tags(&name, "consume", "capture");
    assert_eq!(recorded.counter(OPERATIONS_COUNT, &consume), Some(2));
    assert_eq!(
        recorded.counter(OPERATIONS_ERRORS, &error_tags(&name, "consume", "panic")),
        Some(1)
    );
    assert_eq!(
        recorded.histogram(MESSAGE_RETRY_COUNT, &consume),
        Some(vec![0.0, 1.0])
    );
    assert_eq!(recorded.counter(DLQ_MESSAGES, &consume), None);
}

#[test]
fn a_publish_no_stream_listens_to_is_a_no_stream_error() {
    let subject = unique("NOSTREAM");
    let recorded = capture(|| async move {
        let js = instrumented().await;
        let ack = within(js.publish_with_headers(subject, typed("refund"), "x".into())).await;
        // Refused at once, or by the ack future: either way, one failed publish.
        if let Ok(ack) = ack {
            assert!(within(ack).await.is_err());
        }
    });
    let unknown = tags("unknown", "publish", "refund");
    assert_eq!(recorded.counter(OPERATIONS_COUNT, &unknown), Some(1));
    assert_eq!(
        recorded.counter(
            OPERATIONS_ERRORS,
            &error_tags("unknown", "publish", "no_stream")
        ),
        Some(1)
    );
}

#[test]
fn pending_counts_are_sampled_per_consumer() {
    let name = unique("PENDING");
    let n = name.clone();
    let recorded = capture(|| async move {
        let js = instrumented().await;
        let (_stream, _consumer) = stream_and_consumer(&js, &n, pull::Config::default()).await;
        for _ in 0..3 {
            within(
                within(js.publish(format!("{n}.x"), "x".into()))
                    .await
                    .unwrap(),
            )
            .await
            .unwrap();
        }
        let sampler = PendingSampler::new(
            js.get_ref().clone(),
            [(n.as_str(), "worker"), (n.as_str(), "missing")],
        );
        let sampled = within(sampler.sample()).await;
        assert_eq!(*sampled[0].2.as_ref().unwrap(), 3);
        assert!(sampled[1].2.is_err());
        within(js.delete_stream(&n)).await.unwrap();
    });
    assert_eq!(
        recorded.gauge(
            DEPTH_CURRENT,
            &[(QUEUE_NAME, name.as_str()), (CONSUMER, "worker")]
        ),
        Some(3.0)
    );
    // The missing consumer's gauge is registered but never set, which paymetrics never
    // exports (the debugging recorder used here would show it as 0): its sample's error, above,
    // is what the test can see.
}
