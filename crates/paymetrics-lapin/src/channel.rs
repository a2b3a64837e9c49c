//! [`InstrumentedChannel`] (a `lapin::Channel` that records its publishes and consumers), its
//! builder, the confirm future it returns, and the handles they share.

use std::{
    fmt,
    future::Future,
    ops::Deref,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use lapin::{
    BasicProperties, Channel, Confirmation, PublisherConfirm,
    options::{BasicConsumeOptions, BasicPublishOptions},
    types::{FieldTable, ShortString},
};
use paymetrics::events::{BusinessEvents, QueueOperation, QueueOperationKind};

use crate::{ConsumerOptions, ErrorType, InstrumentedConsumer, MessageType, errors::Errors};

/// Default cap on `queue.operations.errors` series kept with their own queue name, per channel
/// and its clones.
pub const DEFAULT_MAX_ERROR_SERIES: usize = 64;

/// What a channel, its clones, its consumers and their deliveries share.
#[derive(Debug)]
pub(crate) struct Instruments {
    pub(crate) events: BusinessEvents,
    pub(crate) message_type: MessageType,
    pub(crate) errors: Errors,
}

impl Instruments {
    /// One `publish` operation.
    fn publish(
        &self,
        queue: &str,
        message_type: Option<&str>,
        size: usize,
        time: Option<Duration>,
    ) {
        self.events.queue_operation(&QueueOperation {
            queue_name: queue,
            operation: QueueOperationKind::Publish,
            message_type,
            processing_time_ms: time.map(|t| t.as_secs_f64() * 1000.0),
            depth: None,
            message_size_bytes: Some(size as u64),
            retry_count: None,
            dead_lettered: false,
        });
    }
}

/// A [`lapin::Channel`] that records every message it publishes and every delivery of the
/// consumers it starts (see the [crate documentation](crate) for the metrics).
///
/// It dereferences to the channel, so every other method is the channel's own. Clones share
/// their handles. Handles are registered with the `metrics` recorder in effect when each series
/// is first used: install the recorder first.
///
/// ```no_run
/// # async fn run(channel: lapin::Channel) -> lapin::Result<()> {
/// use lapin::{BasicProperties, options::*};
/// use paymetrics_lapin::InstrumentedChannel;
///
/// let channel = InstrumentedChannel::new(channel);
/// channel.confirm_select(ConfirmSelectOptions::default()).await?; // the channel's own method
/// let confirmation = channel
///     .basic_publish("".into(), "payouts".into(), BasicPublishOptions::default(), b"{}", BasicProperties::default())
///     .await?
///     .await?;
/// assert!(confirmation.is_ack());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct InstrumentedChannel {
    inner: Channel,
    instruments: Arc<Instruments>,
}

impl fmt::Debug for InstrumentedChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedChannel")
            .field("inner", &self.inner.id())
            .field("message_type", &self.instruments.message_type)
            .finish_non_exhaustive()
    }
}

impl Deref for InstrumentedChannel {
    type Target = Channel;

    fn deref(&self) -> &Channel {
        &self.inner
    }
}

impl InstrumentedChannel {
    /// Wraps `channel` with the defaults: a new [`BusinessEvents`] handle, the `type` property
    /// as the message type.
    pub fn new(channel: Channel) -> Self {
        InstrumentedChannelBuilder::default().wrap(channel)
    }

    /// A builder, to share a [`BusinessEvents`] handle or choose where message types come
    /// from.
    pub fn builder() -> InstrumentedChannelBuilder {
        InstrumentedChannelBuilder::default()
    }

    /// Another channel (after a reconnection, say) recording into the same handles, caps and
    /// series as this one.
    pub fn rewrap(&self, channel: Channel) -> Self {
        Self {
            inner: channel,
            instruments: Arc::clone(&self.instruments),
        }
    }

    /// The wrapped channel; what is published through it directly is not recorded.
    pub fn get_ref(&self) -> &Channel {
        &self.inner
    }

    /// Unwraps the channel.
    pub fn into_inner(self) -> Channel {
        self.inner
    }

    /// [`Channel::basic_publish`], recorded: `operation:publish` with the message's size, and
    /// its confirm latency once the returned [`InstrumentedConfirm`] resolves (or, without
    /// publisher confirms, the time this call took).
    pub async fn basic_publish(
        &self,
        exchange: ShortString,
        routing_key: ShortString,
        options: BasicPublishOptions,
        payload: &[u8],
        properties: BasicProperties,
    ) -> lapin::Result<InstrumentedConfirm> {
        let instruments = &self.instruments;
        // The queue on the default exchange, else the exchange: both named by the application.
        let queue = if exchange.as_str().is_empty() {
            routing_key.clone()
        } else {
            exchange.clone()
        };
        let message_type = instruments
            .message_type
            .of(&properties, payload)
            .map(Box::<str>::from);
        let size = payload.len();
        let start = Instant::now();
        let result = self
            .inner
            .basic_publish(exchange, routing_key, options, payload, properties)
            .await;
        let handed_over = start.elapsed();
        let confirm = match result {
            Ok(confirm) => confirm,
            Err(error) => {
                instruments.publish(queue.as_str(), message_type.as_deref(), size, None);
                let kind = QueueOperationKind::Publish;
                instruments
                    .errors
                    .record(queue.as_str(), kind, ErrorType::Failed);
                return Err(error);
            }
        };
        if !self.inner.status().confirm() {
            instruments.publish(
                queue.as_str(),
                message_type.as_deref(),
                size,
                Some(handed_over),
            );
            return Ok(InstrumentedConfirm {
                inner: confirm,
                pending: None,
            });
        }
        Ok(InstrumentedConfirm {
            inner: confirm,
            pending: Some(Pending {
                instruments: Arc::clone(instruments),
                queue,
                message_type,
                size,
                start,
            }),
        })
    }

    /// [`Channel::basic_consume`], its deliveries recorded (see [`InstrumentedConsumer`]). A
    /// `no_ack` consumer records each delivery when it is dropped.
    pub async fn basic_consume(
        &self,
        queue: ShortString,
        consumer_tag: ShortString,
        options: BasicConsumeOptions,
        arguments: FieldTable,
    ) -> lapin::Result<InstrumentedConsumer> {
        let consumer = self
            .inner
            .basic_consume(queue, consumer_tag, options, arguments)
            .await?;
        Ok(self.wrap_consumer(consumer, ConsumerOptions::default()))
    }

    /// Records the deliveries of a consumer started elsewhere, into this channel's handles.
    pub fn wrap_consumer(
        &self,
        consumer: lapin::Consumer,
        options: ConsumerOptions,
    ) -> InstrumentedConsumer {
        InstrumentedConsumer::new(consumer, Arc::clone(&self.instruments), options)
    }
}

/// Configures an [`InstrumentedChannel`].
///
/// ```
/// use paymetrics::events::BusinessEvents;
/// use paymetrics_lapin::{InstrumentedChannel, MessageType};
///
/// # fn wrap(channel: lapin::Channel) -> InstrumentedChannel {
/// InstrumentedChannel::builder()
///     .events(BusinessEvents::default()) // share the application's handle and its caps
///     .message_type(MessageType::header("event"))
///     .wrap(channel)
/// # }
/// ```
#[derive(Debug)]
pub struct InstrumentedChannelBuilder {
    events: Option<BusinessEvents>,
    message_type: MessageType,
    max_error_series: usize,
}

impl Default for InstrumentedChannelBuilder {
    fn default() -> Self {
        Self {
            events: None,
            message_type: MessageType::default(),
            max_error_series: DEFAULT_MAX_ERROR_SERIES,
        }
    }
}

impl InstrumentedChannelBuilder {
    /// The handle that records (and bounds queue names and message types); a new
    /// `BusinessEvents::default()` if not given.
    pub fn events(mut self, events: BusinessEvents) -> Self {
        self.events = Some(events);
        self
    }

    /// Where `message_type` comes from ([`MessageType::Property`] by default).
    pub fn message_type(mut self, source: MessageType) -> Self {
        self.message_type = source;
        self
    }

    /// Caps the `queue.operations.errors` series kept with their own queue name (default
    /// [`DEFAULT_MAX_ERROR_SERIES`]); later ones are recorded under `other`.
    pub fn max_error_series(mut self, max: usize) -> Self {
        self.max_error_series = max;
        self
    }

    /// Wraps `channel`.
    pub fn wrap(self, channel: Channel) -> InstrumentedChannel {
        InstrumentedChannel {
            inner: channel,
            instruments: Arc::new(Instruments {
                events: self.events.unwrap_or_default(),
                message_type: self.message_type,
                errors: Errors::new(self.max_error_series),
            }),
        }
    }
}

/// What a publish awaiting its confirm records once it is known.
struct Pending {
    instruments: Arc<Instruments>,
    queue: ShortString,
    message_type: Option<Box<str>>,
    size: usize,
    start: Instant,
}

impl Pending {
    fn record(self, time: Option<Duration>, error: Option<ErrorType>) {
        let instruments = &self.instruments;
        let queue = self.queue.as_str();
        instruments.publish(queue, self.message_type.as_deref(), self.size, time);
        if let Some(error) = error {
            let kind = QueueOperationKind::Publish;
            instruments.errors.record(queue, kind, error);
        }
    }
}

/// [`lapin::PublisherConfirm`], recording the publish when it resolves: its confirm latency,
/// and a `nack`, `returned` or `failed` error. Dropped unresolved, it records the publish
/// without a latency (lapin keeps the confirm for `wait_for_confirms`, as it always does).
pub struct InstrumentedConfirm {
    inner: PublisherConfirm,
    pending: Option<Pending>,
}

impl fmt::Debug for InstrumentedConfirm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedConfirm")
            .field("inner", &self.inner)
            .field("recorded", &self.pending.is_none())
            .finish()
    }
}

impl Future for InstrumentedConfirm {
    type Output = lapin::Result<Confirmation>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = std::task::ready!(Pin::new(&mut self.inner).poll(cx));
        if let Some(pending) = self.pending.take() {
            let latency = pending.start.elapsed();
            match &result {
                Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => {
                    pending.record(Some(latency), None)
                }
                Ok(Confirmation::Ack(Some(_))) => {
                    pending.record(Some(latency), Some(ErrorType::Returned))
                }
                Ok(Confirmation::Nack(_)) => pending.record(Some(latency), Some(ErrorType::Nack)),
                Err(_) => pending.record(None, Some(ErrorType::Failed)),
            }
        }
        Poll::Ready(result)
    }
}

impl Drop for InstrumentedConfirm {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.record(None, None);
        }
    }
}
