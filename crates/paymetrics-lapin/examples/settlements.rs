//! A settlement worker on the local RabbitMQ, its queue metrics shown as paymetrics records
//! them: publishes with confirms, a consumer that acks good messages and dead-letters bad ones.
//!
//! ```sh
//! scripts/services-queues && cargo run -p paymetrics-lapin --example settlements
//! ```

use futures_util::StreamExt;
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::*,
    types::{AMQPValue, FieldTable},
};
use paymetrics::events::queue;
use paymetrics_lapin::{ConsumerOptions, InstrumentedChannel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let recorded = paymetrics::testing::capture(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run()).expect("RabbitMQ on 127.0.0.1:5672");
    });
    let consume = [
        (queue::QUEUE_NAME, "settlements"),
        (queue::OPERATION, "consume"),
        (queue::MESSAGE_TYPE, "settle_batch"),
    ];
    println!(
        "consumed:       {:?}",
        recorded.counter(queue::OPERATIONS_COUNT, &consume)
    );
    println!(
        "dead-lettered:  {:?}",
        recorded.counter(queue::DLQ_MESSAGES, &consume)
    );
    println!(
        "handler ms:     {:?}",
        recorded.histogram(queue::OPERATIONS_PROCESSING_TIME, &consume)
    );
    Ok(())
}

async fn run() -> lapin::Result<()> {
    let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = InstrumentedChannel::new(connection.create_channel().await?);
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    channel
        .queue_declare(
            "settlements.dlq".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    arguments.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString("settlements.dlq".into()),
    );
    channel
        .queue_declare(
            "settlements".into(),
            QueueDeclareOptions::default(),
            arguments,
        )
        .await?;

    for payload in [&b"{\"batch\":1}"[..], b"", b"{\"batch\":2}"] {
        let properties = BasicProperties::default().with_type("settle_batch".into());
        channel
            .basic_publish(
                "".into(),
                "settlements".into(),
                BasicPublishOptions::default(),
                payload,
                properties,
            )
            .await?
            .await?; // the confirm: its latency is publish's processing time
    }

    let mut consumer = channel
        .basic_consume(
            "settlements".into(),
            "worker".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?
        .with_options(ConsumerOptions::default().dead_letter_exchange(true));
    for _ in 0..3 {
        let Some(delivery) = consumer.next().await else {
            break;
        };
        let delivery = delivery?;
        if delivery.data.is_empty() {
            delivery
                .reject(BasicRejectOptions { requeue: false })
                .await?; // to settlements.dlq
        } else {
            delivery.ack(BasicAckOptions::default()).await?;
        }
    }
    channel
        .queue_delete("settlements".into(), QueueDeleteOptions::default())
        .await?;
    channel
        .queue_delete("settlements.dlq".into(), QueueDeleteOptions::default())
        .await?;
    Ok(())
}
