//! The instrumented channel against the RabbitMQ on this machine: publishes with confirms,
//! consumption and its outcomes, redelivery, dead-lettering, a panicking handler, depth.

mod common;

use common::{DEADLINE, capture, connect, error_tags, tags, unique, within};
use futures_util::StreamExt;
use lapin::{
    BasicProperties,
    options::*,
    types::{AMQPValue, FieldTable},
};
use paymetrics::events::queue::{
    DEPTH_CURRENT, DLQ_MESSAGES, MESSAGE_RETRY_COUNT, MESSAGE_SIZE, OPERATIONS_COUNT,
    OPERATIONS_PROCESSING_TIME, QUEUE_NAME,
};
use paymetrics_lapin::{ConsumerOptions, DepthSampler, InstrumentedChannel, OPERATIONS_ERRORS};

fn typed(kind: &str) -> BasicProperties {
    BasicProperties::default().with_type(kind.into())
}

async fn declare(channel: &lapin::Channel, queue: &str, arguments: FieldTable) {
    within(channel.queue_declare(queue.into(), QueueDeclareOptions::default(), arguments))
        .await
        .unwrap();
}

async fn delete(channel: &lapin::Channel, queue: &str) {
    within(channel.queue_delete(queue.into(), QueueDeleteOptions::default()))
        .await
        .unwrap();
}

#[test]
fn confirmed_publishes_and_consumption_with_a_redelivery() {
    let queue = unique("confirm");
    let q = queue.clone();
    let recorded = capture(|| async move {
        let connection = connect(&q).await;
        let channel = InstrumentedChannel::new(within(connection.create_channel()).await.unwrap());
        within(channel.confirm_select(ConfirmSelectOptions::default()))
            .await
            .unwrap();
        declare(&channel, &q, FieldTable::default()).await;
        for payload in [&b"12345"[..], b"1234567890"] {
            let confirm = within(channel.basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                payload,
                typed("settle_batch"),
            ))
            .await
            .unwrap();
            assert!(within(confirm).await.unwrap().is_ack());
        }

        let mut consumer = within(channel.basic_consume(
            q.as_str().into(),
            "worker".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ))
        .await
        .unwrap();
        // The first delivery is nacked back to the queue, then redelivered and acked.
        let mut acked = 0;
        let mut nacked = false;
        while acked < 2 {
            let delivery = within(consumer.next()).await.unwrap().unwrap();
            if !nacked {
                nacked = true;
                assert_eq!(delivery.retry_count(), 0);
                let requeue = BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                };
                assert!(within(delivery.nack(requeue)).await.unwrap());
            } else {
                assert!(
                    within(delivery.ack(BasicAckOptions::default()))
                        .await
                        .unwrap()
                );
                acked += 1;
            }
        }
        delete(&channel, &q).await;
    });

    let publish = tags(&queue, "publish", "settle_batch");
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

    let consume = tags(&queue, "consume", "settle_batch");
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
    assert_eq!(
        retries,
        vec![0.0, 0.0, 1.0],
        "the nacked message came back redelivered"
    );
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags(&queue, "ack", "settle_batch")),
        Some(2)
    );
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags(&queue, "nack", "settle_batch")),
        Some(1)
    );
    assert_eq!(recorded.counter(DLQ_MESSAGES, &consume), None);
}

#[test]
fn a_rejected_message_is_dead_lettered_and_its_x_death_is_a_retry() {
    let queue = unique("work");
    let dlq = format!("{queue}.dlq");
    let (q, d) = (queue.clone(), dlq.clone());
    let recorded = capture(|| async move {
        let connection = connect(&q).await;
        let channel = InstrumentedChannel::new(within(connection.create_channel()).await.unwrap());
        declare(&channel, &d, FieldTable::default()).await;
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("".into()),
        );
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(d.as_str().into()),
        );
        declare(&channel, &q, arguments).await;

        within(channel.basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"bad",
            typed("refund"),
        ))
        .await
        .unwrap();
        let mut consumer = within(channel.basic_consume(
            q.as_str().into(),
            "worker".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ))
        .await
        .unwrap()
        .with_options(ConsumerOptions::default().dead_letter_exchange(true));
        let delivery = within(consumer.next()).await.unwrap().unwrap();
        assert!(
            within(delivery.reject(BasicRejectOptions { requeue: false }))
                .await
                .unwrap()
        );

        // The broker really moved it: the dead-letter queue's consumer sees one x-death.
        let mut dead = within(channel.basic_consume(
            d.as_str().into(),
            "dlq".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ))
        .await
        .unwrap();
        let delivery = within(dead.next()).await.unwrap().unwrap();
        assert_eq!(delivery.data, b"bad");
        assert_eq!(delivery.retry_count(), 1);
        assert!(
            within(delivery.ack(BasicAckOptions::default()))
                .await
                .unwrap()
        );
        delete(&channel, &q).await;
        delete(&channel, &d).await;
    });

    let consume = tags(&queue, "consume", "refund");
    assert_eq!(recorded.counter(OPERATIONS_COUNT, &consume), Some(1));
    assert_eq!(recorded.counter(DLQ_MESSAGES, &consume), Some(1));
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags(&queue, "nack", "refund")),
        Some(1)
    );
    let dead = tags(&dlq, "consume", "refund");
    assert_eq!(
        recorded.histogram(MESSAGE_RETRY_COUNT, &dead),
        Some(vec![1.0])
    );
    assert_eq!(
        recorded.counter(DLQ_MESSAGES, &dead),
        None,
        "acked in the dead-letter queue"
    );
}

#[test]
fn a_quorum_queue_dead_letters_past_its_delivery_limit() {
    let queue = unique("quorum");
    let dlq = format!("{queue}.dlq");
    let (q, d) = (queue.clone(), dlq.clone());
    let recorded = capture(|| async move {
        let connection = connect(&q).await;
        let channel = InstrumentedChannel::new(within(connection.create_channel()).await.unwrap());
        declare(&channel, &d, FieldTable::default()).await;
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        arguments.insert("x-delivery-limit".into(), AMQPValue::LongInt(1));
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("".into()),
        );
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(d.as_str().into()),
        );
        within(channel.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        ))
        .await
        .unwrap();
        within(channel.basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"poison",
            typed("payout"),
        ))
        .await
        .unwrap();
        let mut consumer = within(channel.basic_consume(
            q.as_str().into(),
            "worker".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ))
        .await
        .unwrap()
        .with_options(
            ConsumerOptions::default()
                .dead_letter_exchange(true)
                .delivery_limit(1),
        );
        let requeue = BasicNackOptions {
            requeue: true,
            ..Default::default()
        };
        // Delivered, requeued, delivered again, requeued past the limit: dead-lettered.
        for _ in 0..2 {
            let delivery = within(consumer.next()).await.unwrap().unwrap();
            assert!(within(delivery.nack(requeue)).await.unwrap());
        }
        let got = within(async {
            loop {
                if let Some(message) = channel
                    .basic_get(d.as_str().into(), BasicGetOptions { no_ack: true })
                    .await
                    .unwrap()
                {
                    return message;
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert_eq!(got.delivery.data, b"poison");
        delete(&channel, &q).await;
        delete(&channel, &d).await;
    });
    let consume = tags(&queue, "consume", "payout");
    assert_eq!(recorded.counter(OPERATIONS_COUNT, &consume), Some(2));
    assert_eq!(
        recorded.histogram(MESSAGE_RETRY_COUNT, &consume),
        Some(vec![0.0, 1.0])
    );
    assert_eq!(recorded.counter(DLQ_MESSAGES, &consume), Some(1));
}

#[test]
fn a_panicking_handler_is_counted_once_and_its_message_redelivered() {
    let queue = unique("panic");
    let q = queue.clone();
    let recorded = capture(|| async move {
        let connection = connect(&q).await;
        let channel = InstrumentedChannel::new(within(connection.create_channel()).await.unwrap());
        declare(&channel, &q, FieldTable::default()).await;
        within(channel.basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"boom",
            typed("capture"),
        ))
        .await
        .unwrap();

        let worker = channel.rewrap(within(connection.create_channel()).await.unwrap());
        let mut consumer = within(worker.basic_consume(
            q.as_str().into(),
            "worker".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ))
        .await
        .unwrap();
        let handler = tokio::spawn(async move {
            let delivery = consumer.next().await.unwrap().unwrap();
            if delivery.data == b"boom" {
                panic!("the handler failed on purpose");
            }
        });
        assert!(within(handler).await.unwrap_err().is_panic());
        // Closing the worker's channel returns the unacked message to the queue.
        within(worker.close(200, "done".into())).await.unwrap();

        let mut consumer = within(channel.basic_consume(
            q.as_str().into(),
            "second".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ))
        .await
        .unwrap();
        let delivery = within(consumer.next()).await.unwrap().unwrap();
        assert!(delivery.redelivered);
        assert!(
            within(delivery.ack(BasicAckOptions::default()))
                .await
                .unwrap()
        );
        delete(&channel, &q).await;
    });
    let consume = tags(&queue, "consume", "capture");
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &consume),
        Some(2),
        "two deliveries"
    );
    assert_eq!(
        recorded.counter(OPERATIONS_ERRORS, &error_tags(&queue, "consume", "panic")),
        Some(1)
    );
    assert_eq!(
        recorded.histogram(MESSAGE_RETRY_COUNT, &consume),
        Some(vec![0.0, 1.0])
    );
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags(&queue, "ack", "capture")),
        Some(1)
    );
}

#[test]
fn unroutable_mandatory_publishes_are_returned_errors() {
    let exchange = unique("nowhere");
    let e = exchange.clone();
    let recorded = capture(|| async move {
        let connection = connect(&e).await;
        let channel = InstrumentedChannel::new(within(connection.create_channel()).await.unwrap());
        within(channel.confirm_select(ConfirmSelectOptions::default()))
            .await
            .unwrap();
        within(channel.exchange_declare(
            e.as_str().into(),
            lapin::ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        ))
        .await
        .unwrap();
        let mandatory = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let confirm = within(channel.basic_publish(
            e.as_str().into(),
            "no-queue".into(),
            mandatory,
            b"x",
            typed("refund"),
        ))
        .await
        .unwrap();
        let confirmation = within(confirm).await.unwrap();
        assert!(confirmation.take_message().is_some(), "returned");
        within(channel.exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default()))
            .await
            .unwrap();
    });
    assert_eq!(
        recorded.counter(OPERATIONS_COUNT, &tags(&exchange, "publish", "refund")),
        Some(1)
    );
    assert_eq!(
        recorded.counter(
            OPERATIONS_ERRORS,
            &error_tags(&exchange, "publish", "returned")
        ),
        Some(1)
    );
}

#[test]
fn depth_is_sampled_from_passive_declares() {
    let queue = unique("depth");
    let q = queue.clone();
    let recorded = capture(|| async move {
        let connection = connect(&q).await;
        let channel = within(connection.create_channel()).await.unwrap();
        declare(&channel, &q, FieldTable::default()).await;
        within(channel.confirm_select(ConfirmSelectOptions::default()))
            .await
            .unwrap();
        for _ in 0..3 {
            let confirm = within(channel.basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                b"x",
                BasicProperties::default(),
            ))
            .await
            .unwrap();
            within(confirm).await.unwrap();
        }
        let missing = unique("missing");
        let sampler = DepthSampler::new(
            within(connection.create_channel()).await.unwrap(),
            [q.as_str()],
        );
        let depths = within(sampler.sample()).await;
        assert_eq!(depths.len(), 1);
        assert_eq!(*depths[0].1.as_ref().unwrap(), 3);

        // A missing queue fails (and closes the sampler's channel); a new channel recovers.
        let broken = DepthSampler::new(
            within(connection.create_channel()).await.unwrap(),
            [missing.as_str()],
        );
        assert!(within(broken.sample()).await[0].1.is_err());
        delete(&channel, &q).await;
    });
    assert_eq!(
        recorded.gauge(DEPTH_CURRENT, &[(QUEUE_NAME, queue.as_str())]),
        Some(3.0)
    );
}
