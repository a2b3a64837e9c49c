//! The broker drops the application's connection (as a RabbitMQ restart or failover does,
//! forced here with `rabbitmqctl close_connection` on this test's connection only): what was
//! in flight is counted once as a failure, the application reconnects, and recording goes on
//! into the same series with nothing counted twice.

mod common;

use std::process::Command;

use common::{capture, connect, error_tags, tags, unique, within};
use futures_util::StreamExt;
use lapin::{BasicProperties, options::*, types::FieldTable};
use paymetrics::events::queue::{
    MESSAGE_RETRY_COUNT, OPERATIONS_COUNT, OPERATIONS_PROCESSING_TIME,
};
use paymetrics_lapin::{InstrumentedChannel, OPERATIONS_ERRORS};

/// Asks the broker to close the connection whose client-provided name is `name`.
fn close_connection(name: &str) {
    let listed = Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "-q",
            "--no-table-headers",
            "pid",
            "client_properties",
        ])
        .output()
        .expect("rabbitmqctl (run the tests as root, as CI does)");
    let listed = String::from_utf8_lossy(&listed.stdout);
    let pid = listed
        .lines()
        .find(|line| line.contains(name))
        .and_then(|line| line.split_whitespace().next())
        .unwrap_or_else(|| panic!("connection {name} not listed by rabbitmqctl:\n{listed}"));
    let closed = Command::new("rabbitmqctl")
        .args(["close_connection", pid, "paymetrics test: broker went away"])
        .status()
        .unwrap();
    assert!(closed.success());
}

#[test]
fn a_dropped_connection_is_counted_once_and_recording_resumes_after_reconnecting() {
    let queue = unique("reconnect");
    let q = queue.clone();
    let recorded = capture(|| async move {
        let first = connect(&q).await;
        let channel = InstrumentedChannel::new(within(first.create_channel()).await.unwrap());
        within(channel.confirm_select(ConfirmSelectOptions::default()))
            .await
            .unwrap();
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        within(channel.queue_declare(q.as_str().into(), durable, FieldTable::default()))
            .await
            .unwrap();
        let publish = |channel: InstrumentedChannel, payload: &'static [u8]| {
            let q = q.clone();
            async move {
                let properties = BasicProperties::default()
                    .with_type("payout".into())
                    .with_delivery_mode(2);
                let confirm = channel
                    .basic_publish(
                        "".into(),
                        q.as_str().into(),
                        BasicPublishOptions::default(),
                        payload,
                        properties,
                    )
                    .await?;
                confirm.await
            }
        };
        for payload in [&b"a"[..], b"b"] {
            assert!(
                within(publish(channel.clone(), payload))
                    .await
                    .unwrap()
                    .is_ack()
            );
        }
        within(channel.basic_qos(1, BasicQosOptions::default()))
            .await
            .unwrap();
        let mut consumer = within(channel.basic_consume(
            q.as_str().into(),
            "worker".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ))
        .await
        .unwrap();
        let held = within(consumer.next()).await.unwrap().unwrap();
        assert_eq!(held.data, b"a");

        close_connection(&q);
        // The consumer ends (or fails) once the connection is gone.
        if let Some(next) = within(consumer.next()).await {
            assert!(next.is_err());
        }
        assert!(within(publish(channel.clone(), b"lost")).await.is_err());
        assert!(
            !within(held.ack(BasicAckOptions::default()))
                .await
                .unwrap_or(false)
        );

        // The application reconnects and keeps the same instruments.
        let second = connect(&q).await;
        let channel = channel.rewrap(within(second.create_channel()).await.unwrap());
        within(channel.confirm_select(ConfirmSelectOptions::default()))
            .await
            .unwrap();
        assert!(
            within(publish(channel.clone(), b"c"))
                .await
                .unwrap()
                .is_ack()
        );
        let mut consumer = within(channel.basic_consume(
            q.as_str().into(),
            "worker".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ))
        .await
        .unwrap();
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let delivery = within(consumer.next()).await.unwrap().unwrap();
            seen.push(delivery.data.clone());
            assert!(
                within(delivery.ack(BasicAckOptions::default()))
                    .await
                    .unwrap()
            );
        }
        seen.sort();
        assert_eq!(seen, [b"a", b"b", b"c"]);
        within(channel.queue_delete(q.as_str().into(), QueueDeleteOptions::default()))
            .await
            .unwrap();
    });

    let publish = tags(&queue, "publish", "payout");
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &publish),
        Some(4),
        "a, b, the lost one, c"
    );
    assert_eq!(
        recorded
            .histogram(OPERATIONS_PROCESSING_TIME, &publish)
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        recorded.counter(OPERATIONS_ERRORS, &error_tags(&queue, "publish", "failed")),
        Some(1)
    );

    let consume = tags(&queue, "consume", "payout");
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &consume),
        Some(4),
        "a, a again, b, c"
    );
    let mut retries = recorded.histogram(MESSAGE_RETRY_COUNT, &consume).unwrap();
    retries.sort_by(f64::total_cmp);
    assert_eq!(retries, vec![0.0, 0.0, 0.0, 1.0], "only a was redelivered");
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags(&queue, "ack", "payout")),
        Some(3)
    );
    let lost_ack = ["not_sent", "failed"].map(|e| {
        recorded
            .counter(OPERATIONS_ERRORS, &error_tags(&queue, "ack", e))
            .unwrap_or(0)
    });
    assert_eq!(
        lost_ack.iter().sum::<u64>(),
        1,
        "the ack on the dead channel"
    );
}
