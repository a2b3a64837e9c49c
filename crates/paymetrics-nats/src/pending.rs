//! [`PendingSampler`]: `queue.depth.current`, the messages a consumer has yet to be delivered,
//! from consumer info, on demand or on the automation scheduler.

#[cfg(feature = "automation")]
use std::sync::atomic::Ordering;
use std::sync::{Arc, atomic::AtomicBool};

use async_nats::jetstream::Context;
use metrics::{Gauge, Label, SharedString};
use paymetrics::events::{
    normalize,
    queue::{DEPTH_CURRENT, QUEUE_NAME},
};

use crate::CONSUMER;

/// The error of one sample.
pub type SampleError = Box<dyn std::error::Error + Send + Sync>;

/// Samples `queue.depth.current` (tags `queue_name`: the stream, and `consumer`) for a fixed
/// list of consumers: each one's `num_pending`, the stream's messages it has yet to be
/// delivered (as RabbitMQ's depth counts the ready messages; those delivered and awaiting an
/// ack are not included).
///
/// A failed sample leaves the gauge at its last value. With the `automation` feature it is a
/// `paymetrics_automation::Collector`: each `collect` starts one round of requests on a task of
/// the runtime it was created in (a round still running is not doubled), and the gauges are
/// set when the server answers.
///
/// ```no_run
/// # async fn run(js: async_nats::jetstream::Context) {
/// use paymetrics_nats::PendingSampler;
///
/// let sampler = PendingSampler::new(js, [("PAYOUTS", "worker")]);
/// for (stream, consumer, pending) in sampler.sample().await {
///     println!("{stream}/{consumer}: {:?}", pending.ok());
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PendingSampler {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    context: Context,
    consumers: Vec<(String, String)>,
    /// A round started by `collect` is running.
    #[cfg_attr(not(feature = "automation"), allow(dead_code))]
    running: AtomicBool,
    #[cfg_attr(not(feature = "automation"), allow(dead_code))]
    runtime: Option<tokio::runtime::Handle>,
}

impl PendingSampler {
    /// Samples each `(stream, consumer)` through `context`. Created inside a Tokio runtime,
    /// `collect` runs its rounds on that runtime.
    pub fn new<S: Into<String>, C: Into<String>>(
        context: Context,
        consumers: impl IntoIterator<Item = (S, C)>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                context,
                consumers: consumers
                    .into_iter()
                    .map(|(s, c)| (s.into(), c.into()))
                    .collect(),
                running: AtomicBool::new(false),
                runtime: tokio::runtime::Handle::try_current().ok(),
            }),
        }
    }

    /// Asks for each consumer's info and sets its gauge (registered with the recorder in effect
    /// for the caller); returns each `(stream, consumer, pending)` or the error.
    pub async fn sample(&self) -> Vec<(String, String, Result<u64, SampleError>)> {
        let gauges = self.inner.gauges();
        self.inner.sample(&gauges).await
    }
}

impl Inner {
    fn gauges(&self) -> Vec<Gauge> {
        let tag = |value: &str| SharedString::from(normalize::sanitize(value).into_owned());
        self.consumers
            .iter()
            .map(|(stream, consumer)| {
                let labels = vec![
                    Label::new(QUEUE_NAME, tag(stream)),
                    Label::new(CONSUMER, tag(consumer)),
                ];
                metrics::gauge!(DEPTH_CURRENT, labels)
            })
            .collect()
    }

    async fn sample(&self, gauges: &[Gauge]) -> Vec<(String, String, Result<u64, SampleError>)> {
        let mut pending = Vec::with_capacity(self.consumers.len());
        for ((stream, consumer), gauge) in self.consumers.iter().zip(gauges) {
            let result = self.pending(stream, consumer).await;
            match &result {
                Ok(count) => gauge.set(*count as f64),
                Err(error) => tracing::debug!(
                    target: "paymetrics_nats",
                    stream = stream.as_str(),
                    consumer = consumer.as_str(),
                    %error,
                    "consumer pending not sampled; queue.depth.current keeps its last value"
                ),
            }
            pending.push((stream.clone(), consumer.clone(), result));
        }
        pending
    }

    async fn pending(&self, stream: &str, consumer: &str) -> Result<u64, SampleError> {
        let stream = self.context.get_stream(stream).await?;
        Ok(stream.consumer_info(consumer).await?.num_pending)
    }
}

#[cfg(feature = "automation")]
impl paymetrics_automation::Collector for PendingSampler {
    fn collect(&self) {
        let Some(runtime) = &self.inner.runtime else {
            tracing::debug!(target: "paymetrics_nats", "PendingSampler made outside a Tokio runtime: not sampling");
            return;
        };
        if self.inner.running.swap(true, Ordering::AcqRel) {
            return;
        }
        // Registered here, where the scheduler has made its recorder current.
        let gauges = self.inner.gauges();
        let inner = Arc::clone(&self.inner);
        runtime.spawn(async move {
            inner.sample(&gauges).await;
            inner.running.store(false, Ordering::Release);
        });
    }
}
