//! `queue.operations.errors`: the closed [`ErrorType`] set and the bounded table of counters.
//!
//! Errors are rare, so their counters live behind a mutex in a map keyed by queue name; the map
//! is capped so that no stream of queue names can grow it without bound.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use metrics::{Counter, Key, Label, Level, Metadata, SharedString};
use paymetrics::events::{
    QueueOperationKind,
    normalize::{self, OTHER},
    queue::{OPERATION, QUEUE_NAME},
};

use crate::{ERROR_TYPE, OPERATIONS_ERRORS};

/// What went wrong with a queue operation (the `error_type` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorType {
    /// `timeout`: no acknowledgement from the stream in time (the server away, or slow).
    Timeout,
    /// `no_stream`: no stream listens on the subject published to.
    NoStream,
    /// `failed`: the publish or the acknowledgement could not be sent, or was refused.
    Failed,
    /// `panic`: the handler panicked while it held the message.
    Panic,
}

impl ErrorType {
    /// Every error type.
    pub const ALL: &'static [ErrorType] = &[
        ErrorType::Timeout,
        ErrorType::NoStream,
        ErrorType::Failed,
        ErrorType::Panic,
    ];

    /// The `error_type` tag value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorType::Timeout => "timeout",
            ErrorType::NoStream => "no_stream",
            ErrorType::Failed => "failed",
            ErrorType::Panic => "panic",
        }
    }

    pub(crate) fn of_publish(error: &async_nats::jetstream::context::PublishError) -> Self {
        use async_nats::jetstream::context::PublishErrorKind;
        match error.kind() {
            PublishErrorKind::TimedOut => ErrorType::Timeout,
            PublishErrorKind::StreamNotFound => ErrorType::NoStream,
            _ => ErrorType::Failed,
        }
    }
}

static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

type ErrorKey = (Box<str>, QueueOperationKind, ErrorType);

/// The error counters of one context (and its clones and message streams).
#[derive(Debug)]
pub(crate) struct Errors {
    /// Series kept with their own queue name; later ones are recorded under `other`.
    max_series: usize,
    counters: Mutex<HashMap<ErrorKey, Counter>>,
}

impl Errors {
    pub(crate) fn new(max_series: usize) -> Self {
        Self {
            max_series,
            counters: Mutex::default(),
        }
    }

    /// Counts one failure of `operation` on `queue` (sanitised); once the table holds
    /// `max_series` series, new ones are recorded with the queue name `other`.
    pub(crate) fn record(&self, queue: &str, operation: QueueOperationKind, error: ErrorType) {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let mut key: ErrorKey = (Box::from(normalize::sanitize(queue)), operation, error);
        if !counters.contains_key(&key) && counters.len() >= self.max_series {
            key.0 = Box::from(OTHER);
        }
        let counter = counters.entry(key).or_insert_with_key(|(name, _, _)| {
            let labels = vec![
                Label::new(QUEUE_NAME, SharedString::from(name.to_string())),
                Label::from_static_parts(OPERATION, operation.as_str()),
                Label::from_static_parts(ERROR_TYPE, error.as_str()),
            ];
            let key = Key::from_parts(OPERATIONS_ERRORS, labels);
            metrics::with_recorder(|r| r.register_counter(&key, &METADATA))
        });
        counter.increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_past_the_cap_are_other() {
        let recorded = paymetrics::testing::capture(|| {
            let errors = Errors::new(2);
            errors.record("a", QueueOperationKind::Publish, ErrorType::Timeout);
            errors.record("b q", QueueOperationKind::Publish, ErrorType::Timeout);
            errors.record("a", QueueOperationKind::Publish, ErrorType::Timeout);
            errors.record("c", QueueOperationKind::Publish, ErrorType::Timeout);
            errors.record("d", QueueOperationKind::Publish, ErrorType::Timeout);
        });
        let tags = |q| {
            [
                (QUEUE_NAME, q),
                (OPERATION, "publish"),
                (ERROR_TYPE, "timeout"),
            ]
        };
        assert_eq!(recorded.counter(OPERATIONS_ERRORS, &tags("a")), Some(2));
        assert_eq!(recorded.counter(OPERATIONS_ERRORS, &tags("b_q")), Some(1));
        assert_eq!(recorded.counter(OPERATIONS_ERRORS, &tags("c")), None);
        assert_eq!(recorded.counter(OPERATIONS_ERRORS, &tags(OTHER)), Some(2));
    }
}
