//! What the instrumentation adds to a confirmed publish and to a consumed message on the local
//! RabbitMQ, as a ratio to the bare lapin channel in the same run.
//!
//! Rounds of `N` operations, bare then wrapped (the order alternating per round), on the wall
//! clock; the figure is the median over rounds of each round's difference (wrapped minus bare),
//! which sees the same background load on both sides, and its ratio to the bare median. Records
//! into a paymetrics recorder (no exporter) installed with `metrics::with_local_recorder`, on a
//! current-thread Tokio runtime. See `benches/README.md`.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, options::*, types::FieldTable,
};
use paymetrics::PaymetricsBuilder;
use paymetrics_lapin::InstrumentedChannel;

const PAYLOAD: [u8; 256] = [b'x'; 256];

struct Setup {
    bare: Channel,
    wrapped: InstrumentedChannel,
    queue_bare: String,
    queue_wrapped: String,
}

fn properties() -> BasicProperties {
    BasicProperties::default().with_type("settle_batch".into())
}

async fn setup() -> (Connection, Setup) {
    let url = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let connection = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("RabbitMQ on 127.0.0.1:5672");
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let queue_bare = format!("pm-bench-bare-{}", std::process::id());
    let queue_wrapped = format!("pm-bench-wrapped-{}", std::process::id());
    for queue in [&queue_bare, &queue_wrapped] {
        let options = QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        };
        channel
            .queue_declare(queue.as_str().into(), options, FieldTable::default())
            .await
            .unwrap();
    }
    let wrapped = InstrumentedChannel::new(channel.clone());
    (
        connection,
        Setup {
            bare: channel,
            wrapped,
            queue_bare,
            queue_wrapped,
        },
    )
}

async fn timed<F: Future<Output = ()>>(work: F) -> Duration {
    let start = Instant::now();
    work.await;
    start.elapsed()
}

async fn publish_bare(s: &Setup, queue: &str, n: usize) {
    for _ in 0..n {
        let confirm = s
            .bare
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &PAYLOAD,
                properties(),
            )
            .await
            .unwrap();
        assert!(confirm.await.unwrap().is_ack());
    }
}

async fn publish_wrapped(s: &Setup, queue: &str, n: usize) {
    if std::env::var_os("BENCH_AA").is_some() {
        return publish_bare(s, queue, n).await;
    }
    for _ in 0..n {
        let confirm = s
            .wrapped
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &PAYLOAD,
                properties(),
            )
            .await
            .unwrap();
        assert!(confirm.await.unwrap().is_ack());
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Per-operation medians (bare, added) in ns over the rounds.
fn summarize(name: &str, bare: &[Duration], wrapped: &[Duration], n: usize) {
    let per_op = |d: &Duration| d.as_nanos() as f64 / n as f64;
    let mut b: Vec<f64> = bare.iter().map(per_op).collect();
    let mut w: Vec<f64> = wrapped.iter().map(per_op).collect();
    let mut added: Vec<f64> = b.iter().zip(&w).map(|(b, w)| w - b).collect();
    let (bm, wm, am) = (median(&mut b), median(&mut w), median(&mut added));
    println!(
        "{name:<20} bare {bm:>10.0} ns  wrapped {wm:>10.0} ns  added (median of round differences) {am:>7.0} ns  = {:>5.2} %",
        am / bm * 100.0
    );
}

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let (rounds, n) = if benchmarking { (21, 400) } else { (1, 5) };
    let metrics = PaymetricsBuilder::new()
        .without_dogstatsd()
        .build()
        .expect("paymetrics");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(metrics.recorder(), || {
        rt.block_on(async {
            let (_connection, s) = setup().await;
            let (qb, qw) = (s.queue_bare.clone(), s.queue_wrapped.clone());
            let mut bare_consumer = s
                .bare
                .basic_consume(
                    qb.as_str().into(),
                    "bare".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
            let mut wrapped_consumer = s
                .wrapped
                .basic_consume(
                    qw.as_str().into(),
                    "wrapped".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
            s.bare
                .basic_qos(64, BasicQosOptions::default())
                .await
                .unwrap();

            // Warm-up: connections, series registration, the broker's caches.
            publish_bare(&s, "pm-bench-nowhere", n).await;
            publish_wrapped(&s, "pm-bench-nowhere", n).await;

            let (mut pub_bare, mut pub_wrapped) = (Vec::new(), Vec::new());
            let (mut con_bare, mut con_wrapped) = (Vec::new(), Vec::new());
            for round in 0..rounds {
                // Publishes: to queues the consumers drain below (bare to one, wrapped to the other).
                let b = async { pub_bare.push(timed(publish_bare(&s, &qb, n)).await) };
                let w = async { pub_wrapped.push(timed(publish_wrapped(&s, &qw, n)).await) };
                if round % 2 == 0 {
                    b.await;
                    w.await
                } else {
                    w.await;
                    b.await
                }

                // Consumption: receive and ack each of the n messages just published.
                let b = async {
                    con_bare.push(
                        timed(async {
                            for _ in 0..n {
                                let d = bare_consumer.next().await.unwrap().unwrap();
                                d.ack(BasicAckOptions::default()).await.unwrap();
                            }
                        })
                        .await,
                    )
                };
                let w = async {
                    con_wrapped.push(
                        timed(async {
                            for _ in 0..n {
                                let d = wrapped_consumer.next().await.unwrap().unwrap();
                                d.ack(BasicAckOptions::default()).await.unwrap();
                            }
                        })
                        .await,
                    )
                };
                if round % 2 == 0 {
                    b.await;
                    w.await
                } else {
                    w.await;
                    b.await
                }
            }
            println!(
                "paymetrics-lapin: {rounds} rounds of {n} operations per variant, 256-byte messages"
            );
            summarize("confirmed publish", &pub_bare, &pub_wrapped, n);
            summarize("consume + ack", &con_bare, &con_wrapped, n);
        })
    });
}
