//! The cached metric handles of one instrumented connection (shared by its clones) and the
//! code that records a command or a pipeline into them.
//!
//! Handles live in a two-level table: key patterns (a fixed number of slots, filled as the
//! classifier names new patterns, plus the reserved `other`, `none` and `mixed`), then
//! operations (indexed by the closed [`Operation`] enum). Each handle is registered with the
//! recorder in effect the first time it is used, then only its atomics are touched: the hot
//! path allocates nothing and formats nothing.

use std::{sync::OnceLock, time::Duration};

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, SharedString};
use redis::{Cmd, Pipeline, Value};

use crate::{
    CACHE_SIZE_CURRENT, CACHE_TTL_DISTRIBUTION, CACHE_TYPE, CACHE_TYPE_REDIS, ERROR_TYPE,
    KEY_PATTERN, KEY_PATTERN_MIXED, KEY_PATTERN_NONE, KEY_PATTERN_OTHER, KeyClassifier, OPERATION,
    OPERATIONS_COUNT, OPERATIONS_ERRORS, OPERATIONS_HIT_MISS, OPERATIONS_RESPONSE_TIME, RESULT,
    RESULT_HIT, RESULT_MISS,
    command::{self, Operation, Parsed, Read},
    error_type::{ERROR_TYPES, ErrorType},
};

/// What became of one command.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome<'v> {
    /// The server replied (possibly with an error reply).
    Reply(&'v Value),
    /// No reply: the connection failed, timed out, or the caller gave up.
    Failed(ErrorType),
    /// Sent, but its reply is not known (a pipeline reply shorter than the pipeline).
    Unknown,
}

/// The handles of one connection and its clones.
pub(crate) struct Instruments {
    classifier: Box<dyn KeyClassifier>,
    slots: Box<[OnceLock<Pattern>]>,
    other: Pattern,
    none: Pattern,
    mixed: Pattern,
    size: OnceLock<Gauge>,
}

impl std::fmt::Debug for Instruments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let patterns: Vec<&str> = self
            .slots
            .iter()
            .map_while(|s| s.get().map(|p| &*p.name))
            .collect();
        f.debug_struct("Instruments")
            .field("key_patterns", &patterns)
            .field("max_key_patterns", &self.slots.len())
            .finish_non_exhaustive()
    }
}

/// One key pattern: its tag value and its per-operation handles, made on first use.
struct Pattern {
    name: SharedString,
    ops: Box<[OnceLock<Box<Cells>>]>,
}

impl Pattern {
    fn new(name: SharedString) -> Self {
        Self {
            name,
            ops: (0..Operation::ALL.len()).map(|_| OnceLock::new()).collect(),
        }
    }

    fn series(&self, op: Operation) -> Series<'_> {
        Series {
            pattern: &self.name,
            op,
            cells: self.ops[op.index()].get_or_init(Box::default),
        }
    }
}

/// The handles of one `(operation, key_pattern)`, each registered on first use.
#[derive(Default)]
struct Cells {
    count: OnceLock<Counter>,
    response_time: OnceLock<Histogram>,
    hit: OnceLock<Counter>,
    miss: OnceLock<Counter>,
    ttl: OnceLock<Histogram>,
    errors: [OnceLock<Counter>; ERROR_TYPES],
}

/// [`Cells`] with what it takes to register them.
struct Series<'a> {
    pattern: &'a SharedString,
    op: Operation,
    cells: &'a Cells,
}

static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

impl Series<'_> {
    fn key(&self, name: &'static str, extra: Option<(&'static str, &'static str)>) -> Key {
        let mut labels = Vec::with_capacity(4);
        labels.push(Label::from_static_parts(OPERATION, self.op.as_str()));
        labels.push(Label::from_static_parts(CACHE_TYPE, CACHE_TYPE_REDIS));
        labels.push(Label::new(KEY_PATTERN, self.pattern.clone()));
        if let Some((k, v)) = extra {
            labels.push(Label::from_static_parts(k, v));
        }
        Key::from_parts(name, labels)
    }

    fn counter(
        &self,
        cell: &OnceLock<Counter>,
        name: &'static str,
        extra: Option<(&'static str, &'static str)>,
    ) {
        cell.get_or_init(|| {
            metrics::with_recorder(|r| r.register_counter(&self.key(name, extra), &METADATA))
        })
        .increment(1);
    }

    fn count(&self) {
        self.counter(&self.cells.count, OPERATIONS_COUNT, None);
    }

    fn hit_miss(&self, hit: bool, n: u64) {
        if n == 0 {
            return;
        }
        let (cell, result) = if hit {
            (&self.cells.hit, RESULT_HIT)
        } else {
            (&self.cells.miss, RESULT_MISS)
        };
        cell.get_or_init(|| {
            metrics::with_recorder(|r| {
                r.register_counter(
                    &self.key(OPERATIONS_HIT_MISS, Some((RESULT, result))),
                    &METADATA,
                )
            })
        })
        .increment(n);
    }

    fn error(&self, error: ErrorType) {
        self.counter(
            &self.cells.errors[error.index()],
            OPERATIONS_ERRORS,
            Some((ERROR_TYPE, error.as_str())),
        );
    }

    fn histogram(&self, cell: &OnceLock<Histogram>, name: &'static str, value: f64) {
        cell.get_or_init(|| {
            metrics::with_recorder(|r| r.register_histogram(&self.key(name, None), &METADATA))
        })
        .record(value);
    }

    fn response_time(&self, elapsed: Duration) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        self.histogram(&self.cells.response_time, OPERATIONS_RESPONSE_TIME, ms);
    }

    fn ttl(&self, seconds: f64) {
        self.histogram(&self.cells.ttl, CACHE_TTL_DISTRIBUTION, seconds);
    }
}

impl Instruments {
    pub(crate) fn new(classifier: Box<dyn KeyClassifier>, max_key_patterns: usize) -> Self {
        Self {
            classifier,
            slots: (0..max_key_patterns).map(|_| OnceLock::new()).collect(),
            other: Pattern::new(SharedString::const_str(KEY_PATTERN_OTHER)),
            none: Pattern::new(SharedString::const_str(KEY_PATTERN_NONE)),
            mixed: Pattern::new(SharedString::const_str(KEY_PATTERN_MIXED)),
            size: OnceLock::new(),
        }
    }

    /// The pattern of a command's key (`none` without one), interned: past the cap, `other`.
    fn pattern(&self, key: Option<&[u8]>) -> &Pattern {
        let Some(key) = key else {
            return &self.none;
        };
        let name = self.classifier.classify(key);
        if name == KEY_PATTERN_OTHER {
            return &self.other;
        }
        // Slots fill in order and are never emptied, so the first empty one ends the search.
        // Two threads racing for a slot with different names: one wins, the other moves on.
        for slot in self.slots.iter() {
            let pattern = match slot.get() {
                Some(pattern) => pattern,
                None => slot.get_or_init(|| Pattern::new(SharedString::from(name.to_owned()))),
            };
            if *pattern.name == *name {
                return pattern;
            }
        }
        &self.other
    }

    /// Records one command sent alone: its count, its outcome (an error, hits and misses, a
    /// TTL) and its response time.
    pub(crate) fn command(&self, cmd: &Cmd, outcome: Outcome<'_>, elapsed: Duration) {
        self.record(cmd, outcome, Some(elapsed));
    }

    /// Records one command, with its response time if it went alone; returns its key pattern.
    fn record(&self, cmd: &Cmd, outcome: Outcome<'_>, elapsed: Option<Duration>) -> &Pattern {
        let parsed = Parsed::new(cmd);
        let pattern = if parsed.op == Operation::Other {
            &self.other // where its key is, if it has one, is not known
        } else {
            self.pattern(parsed.key)
        };
        let series = pattern.series(parsed.op);
        series.count();
        if let Some(elapsed) = elapsed {
            series.response_time(elapsed);
        }
        match outcome {
            Outcome::Unknown => {}
            Outcome::Failed(error) => series.error(error),
            Outcome::Reply(Value::ServerError(error)) => series.error(ErrorType::of_reply(error)),
            Outcome::Reply(reply) => {
                match parsed.op.read() {
                    Read::No => {}
                    Read::PerKey => self.per_key_reads(parsed.op, cmd, reply),
                    read => {
                        let tally = command::hit_miss(read, cmd, reply);
                        series.hit_miss(true, tally.hits);
                        series.hit_miss(false, tally.misses);
                    }
                }
                if let Some(seconds) = command::ttl_seconds(parsed.op.ttl(), cmd, reply) {
                    series.ttl(seconds);
                }
            }
        }
        pattern
    }

    /// `MGET`: one hit or miss per key, each under its own key's pattern.
    fn per_key_reads(&self, op: Operation, cmd: &Cmd, reply: &Value) {
        let Value::Array(values) = reply else {
            return;
        };
        for (key, value) in command::keys(cmd).zip(values) {
            self.pattern(Some(key))
                .series(op)
                .hit_miss(command::is_hit(value), 1);
        }
    }

    /// Records a pipeline: each command as [`command`](Self::command) does, but without a response
    /// time, then one response time for the round trip under `pipeline` or `transaction`, with
    /// the key pattern its commands share (`mixed` if they differ).
    pub(crate) fn pipeline(
        &self,
        pipeline: &Pipeline,
        result: Result<&[Value], ErrorType>,
        elapsed: Duration,
    ) {
        let transaction = pipeline.is_transaction();
        // A transaction's reply is `EXEC`'s: an array of the commands' replies, or nil when a
        // `WATCH`ed key changed and nothing ran.
        let replies: Result<&[Value], ErrorType> = match result {
            Ok(replies) if transaction => match replies.last() {
                Some(Value::Array(items)) => Ok(items),
                Some(Value::Nil) => Err(ErrorType::Aborted),
                _ => Ok(&[]),
            },
            other => other,
        };
        let mut common: Option<&Pattern> = None;
        let mut mixed = false;
        for (i, cmd) in pipeline.cmd_iter().enumerate() {
            let outcome = match replies {
                Ok(replies) => replies.get(i).map_or(Outcome::Unknown, Outcome::Reply),
                Err(error) => Outcome::Failed(error),
            };
            let pattern = self.record(cmd, outcome, None);
            match common {
                None => common = Some(pattern),
                Some(seen) if !std::ptr::eq(seen, pattern) => mixed = true,
                Some(_) => {}
            }
        }
        let pattern = match (common, mixed) {
            (_, true) => &self.mixed,
            (Some(pattern), false) => pattern,
            (None, false) => &self.none,
        };
        let op = if transaction {
            Operation::Transaction
        } else {
            Operation::Pipeline
        };
        pattern.series(op).response_time(elapsed);
    }

    /// The `cache.size.current` gauge, registered with the recorder in effect on first use.
    pub(crate) fn size_gauge(&self) -> &Gauge {
        self.size.get_or_init(|| {
            let key = Key::from_static_parts(CACHE_SIZE_CURRENT, SIZE_LABELS);
            metrics::with_recorder(|r| r.register_gauge(&key, &METADATA))
        })
    }
}

static SIZE_LABELS: &[Label] = &[Label::from_static_parts(CACHE_TYPE, CACHE_TYPE_REDIS)];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PrefixClassifier;

    #[test]
    fn patterns_are_interned_up_to_the_cap_then_other() {
        let instruments = Instruments::new(Box::new(PrefixClassifier), 2);
        let name = |key: &[u8]| instruments.pattern(Some(key)).name.to_string();
        assert_eq!(name(b"user:1"), "user");
        assert_eq!(name(b"session:1"), "session");
        assert_eq!(name(b"user:2"), "user");
        assert_eq!(name(b"cart:1"), "other");
        assert_eq!(name(b"12345"), "other");
        assert_eq!(&*instruments.pattern(None).name, "none");
        assert!(std::ptr::eq(
            instruments.pattern(Some(b"user:9")),
            instruments.pattern(Some(b"user:10"))
        ));
    }
}
