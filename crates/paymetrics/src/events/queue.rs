//! Message-queue operations.
//!
//! ```
//! use paymetrics::events::{BusinessEvents, QueueOperation, QueueOperationKind, queue};
//!
//! let recorded = paymetrics::testing::capture(|| {
//!     let events = BusinessEvents::default();
//!     events.queue_operation(&QueueOperation {
//!         queue_name: "payments.settlement",
//!         operation: QueueOperationKind::Consume,
//!         message_type: Some("settle_batch"),
//!         processing_time_ms: Some(35.0),
//!         depth: Some(120),
//!         message_size_bytes: Some(2_048),
//!         retry_count: Some(0),
//!         dead_lettered: false,
//!     });
//! });
//! let tags = [
//!     (queue::QUEUE_NAME, "payments.settlement"),
//!     (queue::OPERATION, "consume"),
//!     (queue::MESSAGE_TYPE, "settle_batch"),
//! ];
//! assert_eq!(recorded.counter(queue::OPERATIONS_COUNT, &tags), Some(1));
//! assert_eq!(recorded.gauge(queue::DEPTH_CURRENT, &tags), Some(120.0));
//! assert_eq!(recorded.counter(queue::DLQ_MESSAGES, &tags), None);
//! ```

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, Label};

use super::{
    BusinessEvents,
    business::{Cache, counter, gauge, histogram},
    normalize::{Interner, UNKNOWN},
};

/// Counter, queue operations. Tags: [`QUEUE_NAME`], [`OPERATION`], [`MESSAGE_TYPE`].
pub const OPERATIONS_COUNT: &str = "queue.operations.count";
/// Distribution, milliseconds the operation took; only when timed. Tags as
/// [`OPERATIONS_COUNT`].
pub const OPERATIONS_PROCESSING_TIME: &str = "queue.operations.processing_time";
/// Gauge, messages waiting in the queue as last observed; only when given. Tags as
/// [`OPERATIONS_COUNT`] (the original strategy tags the depth with the operation and message type too).
pub const DEPTH_CURRENT: &str = "queue.depth.current";
/// Distribution, message size in bytes; only when given. Tags as [`OPERATIONS_COUNT`].
pub const MESSAGE_SIZE: &str = "queue.message.size";
/// Distribution, deliveries of the message before this one (0 on the first); only when given.
/// Tags as [`OPERATIONS_COUNT`].
pub const MESSAGE_RETRY_COUNT: &str = "queue.message.retry_count";
/// Counter, messages sent to the dead-letter queue. Tags as [`OPERATIONS_COUNT`].
pub const DLQ_MESSAGES: &str = "queue.dlq.messages";

/// Tag key: the queue's name, sanitised and bounded per handle.
pub const QUEUE_NAME: &str = "queue_name";
/// Tag key: a [`QueueOperationKind`].
pub const OPERATION: &str = "operation";
/// Tag key: the message's type, sanitised and bounded per handle; `unknown` when none.
pub const MESSAGE_TYPE: &str = "message_type";

tag_enum! {
    /// What was done to the queue (`operation` tag).
    QueueOperationKind {
        /// `publish`: a message was sent.
        Publish => "publish",
        /// `consume`: a message was received and processed.
        Consume => "consume",
        /// `ack`: a message was acknowledged.
        Ack => "ack",
        /// `nack`: a message was rejected (and possibly requeued).
        Nack => "nack",
        /// `other`: anything else (purge, peek).
        Other => "other",
    }
}

/// One operation on a message queue: records [`OPERATIONS_COUNT`], each optional measurement
/// that is given, and [`DLQ_MESSAGES`] when the message was dead-lettered.
#[derive(Debug, Clone, Copy)]
pub struct QueueOperation<'a> {
    /// The queue's name (not a per-tenant or per-message name). Sanitised and bounded per
    /// handle.
    pub queue_name: &'a str,
    /// What was done.
    pub operation: QueueOperationKind,
    /// The message's type; `None` is `unknown`. Sanitised and bounded per handle.
    pub message_type: Option<&'a str>,
    /// Milliseconds the operation took, if measured.
    pub processing_time_ms: Option<f64>,
    /// Messages waiting in the queue, if observed.
    pub depth: Option<u64>,
    /// The message's size in bytes, if known.
    pub message_size_bytes: Option<u64>,
    /// Deliveries of this message before this one, if known.
    pub retry_count: Option<u32>,
    /// Whether the message was sent to the dead-letter queue.
    pub dead_lettered: bool,
}

/// The queue events' handle tables.
pub(super) struct Caches {
    queue_name: Interner,
    message_type: Interner,
    operations: Cache<OperationSeries>,
}

impl Caches {
    pub(super) fn new(max_values_per_tag: usize) -> Self {
        Self {
            queue_name: Interner::new(UNKNOWN, max_values_per_tag),
            message_type: Interner::new(UNKNOWN, max_values_per_tag),
            operations: Cache::default(),
        }
    }
}

struct OperationSeries {
    labels: Vec<Label>,
    count: OnceLock<Counter>,
    processing_time: OnceLock<Histogram>,
    depth: OnceLock<Gauge>,
    size: OnceLock<Histogram>,
    retries: OnceLock<Histogram>,
    dlq: OnceLock<Counter>,
}

impl BusinessEvents {
    /// Records a message-queue operation (see [`QueueOperation`]).
    pub fn queue_operation(&self, event: &QueueOperation<'_>) {
        let caches = &self.inner.queue;
        let name = caches.queue_name.id(Some(event.queue_name));
        let operation = event.operation;
        let message_type = caches.message_type.id(event.message_type);
        let key =
            u64::from(name) | u64::from(operation as u8) << 16 | u64::from(message_type) << 24;
        caches.operations.record(
            key,
            || OperationSeries {
                labels: vec![
                    Label::new(QUEUE_NAME, caches.queue_name.value(name)),
                    Label::from_static_parts(OPERATION, operation.as_str()),
                    Label::new(MESSAGE_TYPE, caches.message_type.value(message_type)),
                ],
                count: OnceLock::new(),
                processing_time: OnceLock::new(),
                depth: OnceLock::new(),
                size: OnceLock::new(),
                retries: OnceLock::new(),
                dlq: OnceLock::new(),
            },
            |s| {
                counter(&s.count, OPERATIONS_COUNT, &s.labels).increment(1);
                if let Some(ms) = event.processing_time_ms {
                    histogram(&s.processing_time, OPERATIONS_PROCESSING_TIME, &s.labels).record(ms);
                }
                if let Some(depth) = event.depth {
                    gauge(&s.depth, DEPTH_CURRENT, &s.labels).set(depth as f64);
                }
                if let Some(bytes) = event.message_size_bytes {
                    histogram(&s.size, MESSAGE_SIZE, &s.labels).record(bytes as f64);
                }
                if let Some(retries) = event.retry_count {
                    histogram(&s.retries, MESSAGE_RETRY_COUNT, &s.labels)
                        .record(f64::from(retries));
                }
                if event.dead_lettered {
                    counter(&s.dlq, DLQ_MESSAGES, &s.labels).increment(1);
                }
            },
        );
    }
}

/// Counter, queue operations that failed. Tags: [`QUEUE_NAME`], [`OPERATION`] and
/// [`ERROR_TYPE`]. Recorded by the broker integrations through [`QueueErrors`].
pub const OPERATIONS_ERRORS: &str = "queue.operations.errors";
/// Tag key: what went wrong, from a closed set the recording integration documents.
pub const ERROR_TYPE: &str = "error_type";

/// The bounded table of `queue.operations.errors` counters, shared by broker integrations.
///
/// Errors are rare, so their counters live behind a mutex in a map keyed by queue name,
/// operation and error type; the map is capped, so no stream of queue names can grow it without
/// bound: once it holds `max_series` series, new ones are recorded with the queue name `other`.
///
/// ```
/// use paymetrics::events::{QueueOperationKind, queue::QueueErrors};
///
/// let errors = QueueErrors::new(64);
/// errors.record("settlements", QueueOperationKind::Publish, "nack");
/// ```
#[derive(Debug)]
pub struct QueueErrors {
    max_series: usize,
    counters: std::sync::Mutex<std::collections::HashMap<ErrorKey, Counter>>,
}

type ErrorKey = (Box<str>, QueueOperationKind, &'static str);

static ERROR_METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);

impl QueueErrors {
    /// A table keeping at most `max_series` series with their own queue name.
    pub fn new(max_series: usize) -> Self {
        Self {
            max_series,
            counters: std::sync::Mutex::default(),
        }
    }

    /// Counts one failure of `operation` on `queue` (sanitised as every open tag value is).
    pub fn record(&self, queue: &str, operation: QueueOperationKind, error_type: &'static str) {
        let mut counters = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut key: ErrorKey = (
            Box::from(super::normalize::sanitize(queue)),
            operation,
            error_type,
        );
        if !counters.contains_key(&key) && counters.len() >= self.max_series {
            key.0 = Box::from(super::normalize::OTHER);
        }
        let counter = counters.entry(key).or_insert_with_key(|(name, _, _)| {
            let labels = vec![
                Label::new(QUEUE_NAME, metrics::SharedString::from(name.to_string())),
                Label::from_static_parts(OPERATION, operation.as_str()),
                Label::from_static_parts(ERROR_TYPE, error_type),
            ];
            let key = metrics::Key::from_parts(OPERATIONS_ERRORS, labels);
            metrics::with_recorder(|r| r.register_counter(&key, &ERROR_METADATA))
        });
        counter.increment(1);
    }
}
