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
    /// `nack`: the broker refused a published message (publisher confirms).
    Nack,
    /// `returned`: the broker returned a mandatory message that no queue was bound for.
    Returned,
    /// `failed`: the channel or the connection failed or was closed.
    Failed,
    /// `not_sent`: a settlement that lapin did not send (the delivery was already settled, or
    /// its channel is gone).
    NotSent,
    /// `panic`: the handler panicked while it held the delivery.
    Panic,
}

impl ErrorType {
    /// Every error type.
    pub const ALL: &'static [ErrorType] = &[
        ErrorType::Nack,
        ErrorType::Returned,
        ErrorType::Failed,
        ErrorType::NotSent,
        ErrorType::Panic,
    ];

    /// The `error_type` tag value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorType::Nack => "nack",
            ErrorType::Returned => "returned",
            ErrorType::Failed => "failed",
            ErrorType::NotSent => "not_sent",
            ErrorType::Panic => "panic",
        }
    }
}

static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

type ErrorKey = (Box<str>, QueueOperationKind, ErrorType);

/// The error counters of one channel (and its clones and consumers).
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
            errors.record("a", QueueOperationKind::Publish, ErrorType::Nack);
            errors.record("b q", QueueOperationKind::Publish, ErrorType::Nack);
            errors.record("a", QueueOperationKind::Publish, ErrorType::Nack);
            errors.record("c", QueueOperationKind::Publish, ErrorType::Nack);
            errors.record("d", QueueOperationKind::Publish, ErrorType::Nack);
        });
        let tags = |q| {
            [
                (QUEUE_NAME, q),
                (OPERATION, "publish"),
                (ERROR_TYPE, "nack"),
            ]
        };
        assert_eq!(recorded.counter(OPERATIONS_ERRORS, &tags("a")), Some(2));
        assert_eq!(recorded.counter(OPERATIONS_ERRORS, &tags("b_q")), Some(1));
        assert_eq!(recorded.counter(OPERATIONS_ERRORS, &tags("c")), None);
        assert_eq!(recorded.counter(OPERATIONS_ERRORS, &tags(OTHER)), Some(2));
    }
}
