//! [`InstrumentedConsumer`] (a `lapin::Consumer` whose deliveries record themselves) and
//! [`InstrumentedDelivery`] (a delivery that records its consumption once: when it is acked,
//! nacked or rejected, or when it is dropped, as a panicking handler does).

use std::{
    fmt,
    ops::{Deref, DerefMut},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures_core::Stream;
use lapin::{
    Consumer,
    message::Delivery,
    options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions},
    types::ShortString,
};
use paymetrics::events::{QueueOperation, QueueOperationKind};

use crate::{
    ErrorType,
    channel::Instruments,
    retries::{delivery_count, retry_count},
};

/// What the consumer's queue does with the messages it gives up on, which the broker does not
/// tell the consumer: it decides which settlements are counted in `queue.dlq.messages`.
///
/// ```
/// use paymetrics_lapin::ConsumerOptions;
///
/// // A quorum queue with `x-dead-letter-exchange` and `x-delivery-limit: 3`.
/// let options = ConsumerOptions::default().dead_letter_exchange(true).delivery_limit(3);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumerOptions {
    dead_letter_exchange: bool,
    delivery_limit: Option<u32>,
}

impl ConsumerOptions {
    /// The queue has a dead-letter exchange (`x-dead-letter-exchange`): a nack or reject
    /// without requeue dead-letters the message.
    pub fn dead_letter_exchange(mut self, yes: bool) -> Self {
        self.dead_letter_exchange = yes;
        self
    }

    /// The queue is a quorum queue with `x-delivery-limit: limit` and a dead-letter exchange: a
    /// nack or reject with requeue that takes the message past the limit dead-letters it.
    pub fn delivery_limit(mut self, limit: u32) -> Self {
        self.delivery_limit = Some(limit);
        self
    }

    /// Whether settling a delivery (with `requeue`, its quorum delivery count being `count`)
    /// sends it to the dead-letter exchange.
    fn dead_letters(&self, requeue: bool, count: u32) -> bool {
        if requeue {
            self.delivery_limit
                .is_some_and(|limit| count.saturating_add(1) > limit)
        } else {
            self.dead_letter_exchange
        }
    }
}

/// What the deliveries of one consumer share.
struct Shared {
    queue: ShortString,
    instruments: Arc<Instruments>,
    options: ConsumerOptions,
}

/// A [`lapin::Consumer`] yielding [`InstrumentedDelivery`]s. Errors pass through untouched.
///
/// ```no_run
/// # async fn run(channel: paymetrics_lapin::InstrumentedChannel) -> lapin::Result<()> {
/// use futures_util::StreamExt;
/// use lapin::{options::*, types::FieldTable};
/// use paymetrics_lapin::ConsumerOptions;
///
/// let mut consumer = channel
///     .basic_consume("payouts".into(), "worker".into(), BasicConsumeOptions::default(), FieldTable::default())
///     .await?
///     .with_options(ConsumerOptions::default().dead_letter_exchange(true));
/// while let Some(delivery) = consumer.next().await {
///     let delivery = delivery?;
///     if delivery.data.is_empty() {
///         delivery.reject(BasicRejectOptions { requeue: false }).await?; // dead-lettered
///     } else {
///         delivery.ack(BasicAckOptions::default()).await?;
///     }
/// }
/// # Ok(()) }
/// ```
pub struct InstrumentedConsumer {
    inner: Consumer,
    shared: Arc<Shared>,
}

impl fmt::Debug for InstrumentedConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedConsumer")
            .field("inner", &self.inner)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl InstrumentedConsumer {
    pub(crate) fn new(
        consumer: Consumer,
        instruments: Arc<Instruments>,
        options: ConsumerOptions,
    ) -> Self {
        let shared = Arc::new(Shared {
            queue: consumer.queue(),
            instruments,
            options,
        });
        Self {
            inner: consumer,
            shared,
        }
    }

    /// Tells the consumer what its queue does with rejected messages (see
    /// [`ConsumerOptions`]).
    pub fn with_options(self, options: ConsumerOptions) -> Self {
        let shared = Arc::new(Shared {
            queue: self.shared.queue.clone(),
            instruments: Arc::clone(&self.shared.instruments),
            options,
        });
        Self {
            inner: self.inner,
            shared,
        }
    }

    /// The wrapped consumer.
    pub fn get_ref(&self) -> &Consumer {
        &self.inner
    }

    /// Unwraps the consumer; its deliveries are no longer recorded.
    pub fn into_inner(self) -> Consumer {
        self.inner
    }
}

impl Stream for InstrumentedConsumer {
    type Item = lapin::Result<InstrumentedDelivery>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = std::task::ready!(Pin::new(&mut self.inner).poll_next(cx));
        Poll::Ready(item.map(|result| {
            result.map(|delivery| InstrumentedDelivery {
                delivery,
                received: Instant::now(),
                shared: Arc::clone(&self.shared),
                recorded: AtomicBool::new(false),
            })
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// A [`Delivery`] that records `operation:consume` exactly once, and each settlement the
/// broker accepts as `operation:ack` or `operation:nack`.
///
/// It dereferences to the delivery (`data`, `properties`, `redelivered`, ...). Its
/// [`ack`](Self::ack), [`nack`](Self::nack) and [`reject`](Self::reject) are lapin's, recorded:
/// the consumption's processing time runs from the delivery to that call. Settling through
/// `delivery.acker` directly bypasses them; the consumption is then recorded when the delivery
/// is dropped. Dropped unsettled while its thread panics, it also counts an
/// [`ErrorType::Panic`] (the broker redelivers the message once the channel closes).
pub struct InstrumentedDelivery {
    delivery: Delivery,
    received: Instant,
    shared: Arc<Shared>,
    recorded: AtomicBool,
}

impl fmt::Debug for InstrumentedDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedDelivery")
            .field("delivery", &self.delivery)
            .field("queue", &self.shared.queue)
            .finish_non_exhaustive()
    }
}

impl Deref for InstrumentedDelivery {
    type Target = Delivery;

    fn deref(&self) -> &Delivery {
        &self.delivery
    }
}

impl DerefMut for InstrumentedDelivery {
    fn deref_mut(&mut self) -> &mut Delivery {
        &mut self.delivery
    }
}

/// How a delivery was settled.
#[derive(Clone, Copy)]
enum Settlement {
    Ack,
    Nack { requeue: bool },
}

impl InstrumentedDelivery {
    /// [`Acker::ack`](lapin::Acker::ack), recorded.
    pub async fn ack(&self, options: BasicAckOptions) -> lapin::Result<bool> {
        let elapsed = self.received.elapsed();
        let result = self.delivery.acker.ack(options).await;
        self.settled(Settlement::Ack, elapsed, &result);
        result
    }

    /// [`Acker::nack`](lapin::Acker::nack), recorded.
    pub async fn nack(&self, options: BasicNackOptions) -> lapin::Result<bool> {
        let elapsed = self.received.elapsed();
        let result = self.delivery.acker.nack(options).await;
        let requeue = options.requeue;
        self.settled(Settlement::Nack { requeue }, elapsed, &result);
        result
    }

    /// [`Acker::reject`](lapin::Acker::reject), recorded as `operation:nack` (a reject is a
    /// nack of one message).
    pub async fn reject(&self, options: BasicRejectOptions) -> lapin::Result<bool> {
        let elapsed = self.received.elapsed();
        let result = self.delivery.acker.reject(options).await;
        let requeue = options.requeue;
        self.settled(Settlement::Nack { requeue }, elapsed, &result);
        result
    }

    /// The earlier deliveries of this message, as recorded in `queue.message.retry_count`
    /// (see [`retry_count`](crate::retry_count)).
    pub fn retry_count(&self) -> u32 {
        retry_count(&self.delivery.properties, self.delivery.redelivered)
    }

    /// Unwraps the delivery, recording its consumption now; its settlement is not recorded.
    pub fn into_inner(mut self) -> Delivery {
        self.consumed(self.received.elapsed(), false);
        let placeholder = Delivery::mock(0, "".into(), "".into(), false, Vec::new());
        std::mem::replace(&mut self.delivery, placeholder)
    }

    fn settled(&self, how: Settlement, elapsed: Duration, result: &lapin::Result<bool>) {
        let shared = &*self.shared;
        let accepted = matches!(result, Ok(true));
        let dead_lettered = accepted
            && match how {
                Settlement::Ack => false,
                Settlement::Nack { requeue } => shared
                    .options
                    .dead_letters(requeue, delivery_count(&self.delivery.properties)),
            };
        self.consumed(elapsed, dead_lettered);
        let operation = match how {
            Settlement::Ack => QueueOperationKind::Ack,
            Settlement::Nack { .. } => QueueOperationKind::Nack,
        };
        match result {
            Ok(true) => self.record(operation, None, false),
            Ok(false) => shared.instruments.errors.record(
                shared.queue.as_str(),
                operation,
                ErrorType::NotSent,
            ),
            Err(_) => shared.instruments.errors.record(
                shared.queue.as_str(),
                operation,
                ErrorType::Failed,
            ),
        }
    }

    /// Records `operation:consume` unless it already was.
    fn consumed(&self, elapsed: Duration, dead_lettered: bool) {
        if self.recorded.swap(true, Ordering::Relaxed) {
            return;
        }
        self.record(QueueOperationKind::Consume, Some(elapsed), dead_lettered);
    }

    fn record(&self, operation: QueueOperationKind, elapsed: Option<Duration>, dead: bool) {
        let shared = &*self.shared;
        let delivery = &self.delivery;
        let consume = operation == QueueOperationKind::Consume;
        shared.instruments.events.queue_operation(&QueueOperation {
            queue_name: shared.queue.as_str(),
            operation,
            message_type: shared
                .instruments
                .message_type
                .of(&delivery.properties, &delivery.data),
            processing_time_ms: elapsed.map(|t| t.as_secs_f64() * 1000.0),
            depth: None,
            message_size_bytes: consume.then_some(delivery.data.len() as u64),
            retry_count: consume.then(|| self.retry_count()),
            dead_lettered: dead,
        });
    }
}

impl Drop for InstrumentedDelivery {
    fn drop(&mut self) {
        if self.recorded.load(Ordering::Relaxed) {
            return;
        }
        self.consumed(self.received.elapsed(), false);
        if std::thread::panicking() {
            let shared = &*self.shared;
            let kind = QueueOperationKind::Consume;
            shared
                .instruments
                .errors
                .record(shared.queue.as_str(), kind, ErrorType::Panic);
        }
    }
}
