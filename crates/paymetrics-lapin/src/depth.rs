//! [`DepthSampler`]: `queue.depth.current`, the ready messages of some queues, read from
//! passive declares, on demand or on the automation scheduler.

#[cfg(feature = "automation")]
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, atomic::AtomicBool};

use lapin::{
    Channel,
    options::QueueDeclareOptions,
    types::{FieldTable, ShortString},
};
use metrics::{Gauge, Label, SharedString};
use paymetrics::events::{
    normalize,
    queue::{DEPTH_CURRENT, QUEUE_NAME},
};

/// Samples `queue.depth.current` (tag `queue_name`) for a fixed list of queues: the messages
/// ready for delivery, from a passive `queue.declare` of each.
///
/// Give it a channel of its own: the broker closes a channel whose passive declare names a
/// queue that does not exist. After a reconnection, hand it the new channel with
/// [`set_channel`](Self::set_channel). A failed sample leaves the gauge at its last value.
///
/// With the `automation` feature it is a `paymetrics_automation::Collector`: each `collect`
/// starts one round of declares on a task of the runtime it was created in (a round still
/// running is not doubled), and the gauges are set when the broker answers.
///
/// ```no_run
/// # async fn run(connection: lapin::Connection) -> lapin::Result<()> {
/// use paymetrics_lapin::DepthSampler;
///
/// let sampler = DepthSampler::new(connection.create_channel().await?, ["payouts", "payouts.dlq"]);
/// for (queue, depth) in sampler.sample().await {
///     println!("{queue}: {:?}", depth.map(|ready| ready));
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DepthSampler {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    channel: Mutex<Channel>,
    queues: Vec<ShortString>,
    /// A round of declares started by `collect` is running.
    #[cfg_attr(not(feature = "automation"), allow(dead_code))]
    running: AtomicBool,
    #[cfg_attr(not(feature = "automation"), allow(dead_code))]
    runtime: Option<tokio::runtime::Handle>,
}

impl DepthSampler {
    /// Samples `queues` through `channel`. Created inside a Tokio runtime, `collect` runs its
    /// rounds on that runtime.
    pub fn new<Q: Into<ShortString>>(
        channel: Channel,
        queues: impl IntoIterator<Item = Q>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                channel: Mutex::new(channel),
                queues: queues.into_iter().map(Into::into).collect(),
                running: AtomicBool::new(false),
                runtime: tokio::runtime::Handle::try_current().ok(),
            }),
        }
    }

    /// Samples through `channel` from now on.
    pub fn set_channel(&self, channel: Channel) {
        *self
            .inner
            .channel
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = channel;
    }

    /// Declares each queue passively and sets its gauge (registered with the recorder in
    /// effect for the caller); returns each queue's ready messages or the error.
    pub async fn sample(&self) -> Vec<(ShortString, lapin::Result<u32>)> {
        let gauges = self.inner.gauges();
        self.inner.sample(&gauges).await
    }
}

impl Inner {
    fn gauges(&self) -> Vec<Gauge> {
        self.queues
            .iter()
            .map(|queue| {
                let name = SharedString::from(normalize::sanitize(queue.as_str()).into_owned());
                let labels = vec![Label::new(QUEUE_NAME, name)];
                metrics::gauge!(DEPTH_CURRENT, labels)
            })
            .collect()
    }

    async fn sample(&self, gauges: &[Gauge]) -> Vec<(ShortString, lapin::Result<u32>)> {
        let channel = self
            .channel
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let mut depths = Vec::with_capacity(self.queues.len());
        for (queue, gauge) in self.queues.iter().zip(gauges) {
            let declared = channel
                .queue_declare(queue.clone(), passive, FieldTable::default())
                .await;
            let depth = declared.map(|q| q.message_count());
            match &depth {
                Ok(ready) => gauge.set(f64::from(*ready)),
                Err(error) => tracing::debug!(
                    target: "paymetrics_lapin",
                    queue = queue.as_str(),
                    %error,
                    "queue depth not sampled; queue.depth.current keeps its last value"
                ),
            }
            depths.push((queue.clone(), depth));
        }
        depths
    }
}

#[cfg(feature = "automation")]
impl paymetrics_automation::Collector for DepthSampler {
    fn collect(&self) {
        let Some(runtime) = &self.inner.runtime else {
            tracing::debug!(target: "paymetrics_lapin", "DepthSampler made outside a Tokio runtime: not sampling");
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
