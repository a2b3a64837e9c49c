//! [`InstrumentedConnection`]: any `redis::aio::ConnectionLike`, recording every command it
//! sends; and its builder.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use redis::{Cmd, Pipeline, RedisFuture, Value, aio::ConnectionLike};

use crate::{
    KeyClassifier, PrefixClassifier,
    error_type::ErrorType,
    instruments::{Instruments, Outcome},
};

/// Default cap on distinct key patterns per connection (and its clones).
pub const DEFAULT_MAX_KEY_PATTERNS: usize = 32;

/// An async Redis connection that records cache metrics for every command it sends.
///
/// It wraps anything implementing [`redis::aio::ConnectionLike`] (a `MultiplexedConnection`, a
/// `ConnectionManager`, a cluster connection) and implements it in turn, so
/// [`redis::AsyncCommands`], [`redis::AsyncTypedCommands`], `Cmd::query_async` and
/// `Pipeline::query_async` work unchanged. Replies and errors pass through untouched.
///
/// Clones share their metric handles and their key patterns. Handles are registered with the
/// `metrics` recorder in effect when each series is first used (the global one in production;
/// the local one inside [`metrics::with_local_recorder`]), and kept: install the recorder
/// before the first command.
///
/// What is recorded, for each command (each command of a pipeline too):
///
/// | metric | when | tags |
/// |---|---|---|
/// | [`cache.operations.count`](crate::OPERATIONS_COUNT) | every command | `operation`, `cache_type`, `key_pattern` |
/// | [`cache.operations.hit_miss`](crate::OPERATIONS_HIT_MISS) | reads, per key or field | + `result` |
/// | [`cache.operations.response_time`](crate::OPERATIONS_RESPONSE_TIME) | per round trip | as count |
/// | [`cache.operations.errors`](crate::OPERATIONS_ERRORS) | failures and error replies | + `error_type` |
/// | [`cache.ttl.distribution`](crate::CACHE_TTL_DISTRIBUTION) | TTLs set | as count |
pub struct InstrumentedConnection<C> {
    inner: C,
    instruments: Arc<Instruments>,
}

impl<C> InstrumentedConnection<C> {
    /// Wraps `inner` with the defaults: [`PrefixClassifier`], [`DEFAULT_MAX_KEY_PATTERNS`].
    pub fn new(inner: C) -> Self {
        InstrumentedConnectionBuilder::new().wrap(inner)
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }

    /// The wrapped connection; commands sent through it directly are not recorded.
    pub fn get_mut(&mut self) -> &mut C {
        &mut self.inner
    }

    /// Unwraps the connection.
    pub fn into_inner(self) -> C {
        self.inner
    }

    pub(crate) fn instruments(&self) -> &Arc<Instruments> {
        &self.instruments
    }
}

impl InstrumentedConnection<()> {
    /// A builder, to set the key classifier and the pattern cap; its
    /// [`wrap`](InstrumentedConnectionBuilder::wrap) makes the connection (of any type).
    pub fn builder() -> InstrumentedConnectionBuilder {
        InstrumentedConnectionBuilder::new()
    }
}

impl<C: Clone> Clone for InstrumentedConnection<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            instruments: Arc::clone(&self.instruments),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for InstrumentedConnection<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedConnection")
            .field("inner", &self.inner)
            .field("instruments", &self.instruments)
            .finish()
    }
}

/// Configures an [`InstrumentedConnection`].
///
/// ```
/// use paymetrics_redis::InstrumentedConnection;
///
/// # fn wrap<C>(connection: C) -> InstrumentedConnection<C> {
/// InstrumentedConnection::builder()
///     .key_classifier(|key: &[u8]| -> &'static str {
///         if key.starts_with(b"fx:") { "fx_rate" } else { "other" }
///     })
///     .max_key_patterns(8)
///     .wrap(connection)
/// # }
/// ```
pub struct InstrumentedConnectionBuilder {
    classifier: Box<dyn KeyClassifier>,
    max_key_patterns: usize,
}

impl fmt::Debug for InstrumentedConnectionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedConnectionBuilder")
            .field("max_key_patterns", &self.max_key_patterns)
            .finish_non_exhaustive()
    }
}

impl Default for InstrumentedConnectionBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl InstrumentedConnectionBuilder {
    /// The defaults: [`PrefixClassifier`], [`DEFAULT_MAX_KEY_PATTERNS`].
    pub fn new() -> Self {
        Self {
            classifier: Box::new(PrefixClassifier),
            max_key_patterns: DEFAULT_MAX_KEY_PATTERNS,
        }
    }

    /// How keys become `key_pattern` tags.
    pub fn key_classifier(mut self, classifier: impl KeyClassifier) -> Self {
        self.classifier = Box::new(classifier);
        self
    }

    /// Caps the distinct key patterns the connection (and its clones) records; keys of any
    /// pattern past the cap are recorded as [`KEY_PATTERN_OTHER`](crate::KEY_PATTERN_OTHER).
    /// Zero records every key as `other`.
    pub fn max_key_patterns(mut self, max: usize) -> Self {
        self.max_key_patterns = max;
        self
    }

    /// Wraps `inner`.
    pub fn wrap<C>(self, inner: C) -> InstrumentedConnection<C> {
        InstrumentedConnection {
            inner,
            instruments: Arc::new(Instruments::new(self.classifier, self.max_key_patterns)),
        }
    }
}

/// A request on the wire. Dropped before it completed (its future cancelled), it records its
/// command(s) as [`ErrorType::Cancelled`]; a request never polled was never sent and records
/// nothing.
struct InFlight<'a> {
    instruments: &'a Instruments,
    request: Request<'a>,
    start: Instant,
    done: bool,
}

#[derive(Clone, Copy)]
enum Request<'a> {
    Command(&'a Cmd),
    Pipeline(&'a Pipeline),
}

impl<'a> InFlight<'a> {
    fn start(instruments: &'a Instruments, request: Request<'a>) -> Self {
        Self {
            instruments,
            request,
            start: Instant::now(),
            done: false,
        }
    }

    /// The request completed: disarms the guard and returns the time since it was sent.
    fn complete(mut self) -> Duration {
        self.done = true;
        self.start.elapsed()
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let elapsed = self.start.elapsed();
        match self.request {
            Request::Command(cmd) => {
                let cancelled = Outcome::Failed(ErrorType::Cancelled);
                self.instruments.command(cmd, cancelled, elapsed);
            }
            Request::Pipeline(pipeline) => {
                let cancelled = Err(ErrorType::Cancelled);
                self.instruments.pipeline(pipeline, cancelled, elapsed);
            }
        }
    }
}

impl<C: ConnectionLike + Send> ConnectionLike for InstrumentedConnection<C> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let instruments = &*self.instruments;
        let reply = self.inner.req_packed_command(cmd);
        Box::pin(async move {
            let in_flight = InFlight::start(instruments, Request::Command(cmd));
            let result = reply.await;
            let elapsed = in_flight.complete();
            let outcome = match &result {
                Ok(reply) => Outcome::Reply(reply),
                Err(error) => Outcome::Failed(ErrorType::of_error(error)),
            };
            instruments.command(cmd, outcome, elapsed);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let instruments = &*self.instruments;
        let replies = self.inner.req_packed_commands(pipeline, offset, count);
        Box::pin(async move {
            let in_flight = InFlight::start(instruments, Request::Pipeline(pipeline));
            let result = replies.await;
            let elapsed = in_flight.complete();
            let replies = match &result {
                Ok(replies) => Ok(replies.as_slice()),
                Err(error) => Err(ErrorType::of_error(error)),
            };
            instruments.pipeline(pipeline, replies, elapsed);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed_api_works_on<C: redis::AsyncCommands + redis::AsyncTypedCommands + Clone>() {}

    #[test]
    fn every_async_connection_can_be_wrapped_and_keeps_the_typed_api() {
        typed_api_works_on::<InstrumentedConnection<redis::aio::MultiplexedConnection>>();
        #[cfg(feature = "connection-manager")]
        typed_api_works_on::<InstrumentedConnection<redis::aio::ConnectionManager>>();
        #[cfg(feature = "cluster-async")]
        typed_api_works_on::<InstrumentedConnection<redis::cluster_async::ClusterConnection>>();
    }
}
