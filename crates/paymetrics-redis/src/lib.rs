//! Datadog cache metrics for [`redis`]: an instrumented async connection recording through the
//! [`metrics`] facade into paymetrics (or any `metrics` recorder).
//!
//! [`InstrumentedConnection`] wraps anything implementing [`redis::aio::ConnectionLike`] (a
//! `MultiplexedConnection`, a `ConnectionManager`, a cluster connection) and implements it in
//! turn: [`redis::AsyncCommands`], `Cmd::query_async` and pipelines work unchanged, replies and
//! errors pass through untouched, and every command is recorded on its way.
//!
//! # Quick start
//!
//! ```no_run
//! use redis::AsyncCommands;
//! use paymetrics_redis::InstrumentedConnection;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let _metrics = paymetrics::init()?;
//! let client = redis::Client::open("redis://127.0.0.1:6379")?;
//! let mut cache = InstrumentedConnection::new(client.get_connection_manager().await?);
//!
//! let _: () = cache.set_ex("user:42", "profile", 300).await?; // ttl 300 s, key_pattern:user
//! let hit: Option<String> = cache.get("user:42").await?;     // result:hit
//! let miss: Option<String> = cache.get("user:43").await?;    // result:miss
//! # Ok(()) }
//! ```
//!
//! # What is recorded
//!
//! Per command (each command of a pipeline or a transaction too), tagged
//! `operation` (the lowercase command name from the closed [`Operation`] set, `other` beyond
//! it), `cache_type:redis` and `key_pattern` (see below):
//!
//! * [`OPERATIONS_COUNT`]: every command sent, failed or not.
//! * [`OPERATIONS_HIT_MISS`], `result:hit|miss`: reads. `GET`, `GETEX`, `GETDEL`, `HGET`: nil
//!   is a miss. `MGET`: one per key, each under its own key's pattern. `HMGET`: one per field.
//!   `EXISTS k1 k2 ...`: the count is the hits, the other keys misses. `HEXISTS`: 0 is a miss.
//!   `HGETALL`: empty is a miss.
//! * [`OPERATIONS_RESPONSE_TIME`]: milliseconds from sending to the reply, once per round
//!   trip: a command sent alone under its own operation, a pipeline under `pipeline` (or
//!   `transaction`) with its commands' shared key pattern, or `mixed`.
//! * [`OPERATIONS_ERRORS`], `error_type` from the closed [`ErrorType`] set: failures (refused or
//!   dropped connection, timeout, future dropped before the reply) and error replies
//!   (`WRONGTYPE`, `ERR`, ...), including a failing command inside a pipeline.
//! * [`CACHE_TTL_DISTRIBUTION`]: the TTL **in seconds** that a successful `SET ... EX|PX|EXAT|PXAT`,
//!   `SETEX`, `PSETEX`, `GETEX ... EX|PX|EXAT|PXAT`, `EXPIRE`, `PEXPIRE`, `EXPIREAT` or
//!   `PEXPIREAT` set. Milliseconds are converted (`PX 1500` is 1.5), absolute times are taken
//!   relative to now. Nothing when the TTL did not apply (`NX` on an existing key, `EXPIRE` on a
//!   missing key) or was not positive (the key is deleted instead).
//!
//! Opt-in: [`CACHE_SIZE_CURRENT`], the number of keys (`DBSIZE`), sampled on a schedule by
//! [`InstrumentedConnection::spawn_size_sampler`] or once by
//! [`InstrumentedConnection::sample_size`].
//!
//! The KPI [`KPI_CACHE_HIT_RATE`]: hits as a percentage of reads over a sliding window
//! (10 minutes by default), computed from paymetrics snapshots by [`HitRateExporter`] (see
//! [`kpi`]). The original strategy's `cache_hit_rate_low` alert (below 80 % over 10 minutes) needs exactly
//! this ratio: as a monitor on `avg:kpi.cache.hit_rate{cache_type:redis}`, or computed from the
//! counter, `sum:cache.operations.hit_miss{result:hit}.as_count() /
//! sum:cache.operations.hit_miss{*}.as_count() * 100`; both rest on the `result` tag recorded
//! here.
//!
//! # Key patterns
//!
//! Raw keys never become tags. A [`KeyClassifier`] names the pattern of each command's first key
//! (`user:42` -> `user`); the default, [`PrefixClassifier`], takes the prefix before the first
//! `:` if it is short and alphabetic, else `other`. Each connection (with its clones) accepts at
//! most [`DEFAULT_MAX_KEY_PATTERNS`] distinct patterns (configurable); later ones are recorded
//! as [`KEY_PATTERN_OTHER`], and so are commands outside the [`Operation`] set (where their key
//! is, if they have one, is not known). Commands without a key are [`KEY_PATTERN_NONE`].
//!
//! ```
//! use paymetrics_redis::InstrumentedConnection;
//!
//! # fn wrap<C>(connection: C) -> InstrumentedConnection<C> {
//! InstrumentedConnection::builder()
//!     .key_classifier(|key: &[u8]| -> &'static str {
//!         if key.starts_with(b"fx:") { "fx_rate" } else { "other" }
//!     })
//!     .wrap(connection)
//! # }
//! ```
//!
//! # Cost
//!
//! Metric handles are cached per connection in tables indexed by operation and pattern, and
//! registered on first use; a command then costs a boxed future, two clock reads, a parse of its
//! name without allocating, the classifier, and a few atomic updates: about 120 ns of CPU per
//! `GET` in isolation, 140 to 280 ns next to a loopback round trip of 10 to 15 µs, on a shared
//! 2-vCPU Xeon (see `benches/README.md`).
//!
//! # Reconnections
//!
//! The handles belong to the wrapper, not to a socket: wrapping a `ConnectionManager`, the
//! commands that fail while the server is away are recorded with `error_type:connection` (or
//! `timeout`), and recording goes on unchanged once the manager has reconnected.
//!
//! # Feature flags
//!
//! * `connection-manager` (default): `redis/connection-manager`, to wrap a `ConnectionManager`.
//! * `cluster-async`: `redis/cluster-async`, to wrap a cluster connection.

pub mod catalogue;
mod classifier;
mod command;
mod connection;
mod error_type;
mod instruments;
pub mod kpi;
mod size;

pub use classifier::{KeyClassifier, PrefixClassifier};
pub use command::Operation;
pub use connection::{
    DEFAULT_MAX_KEY_PATTERNS, InstrumentedConnection, InstrumentedConnectionBuilder,
};
pub use error_type::ErrorType;
pub use kpi::{CacheHitRate, DEFAULT_HIT_RATE_WINDOW, HitMiss, HitRateExporter, HitRateReader};
pub use size::{MIN_SIZE_SAMPLE_INTERVAL, SizeSampler};

/// Counter, commands sent (failed ones included). Tags: [`OPERATION`], [`CACHE_TYPE`],
/// [`KEY_PATTERN`].
pub const OPERATIONS_COUNT: &str = "cache.operations.count";
/// Counter, reads: keys (or fields) found and not found. Tags as [`OPERATIONS_COUNT`] plus
/// [`RESULT`] ([`RESULT_HIT`] or [`RESULT_MISS`]).
pub const OPERATIONS_HIT_MISS: &str = "cache.operations.hit_miss";
/// Histogram, milliseconds from sending a command (or a pipeline) to its reply or failure.
/// Tags as [`OPERATIONS_COUNT`]; [`OPERATION`] is `pipeline` or `transaction` for a pipeline's
/// round trip.
pub const OPERATIONS_RESPONSE_TIME: &str = "cache.operations.response_time";
/// Counter, commands that failed or got an error reply. Tags as [`OPERATIONS_COUNT`] plus
/// [`ERROR_TYPE`].
pub const OPERATIONS_ERRORS: &str = "cache.operations.errors";
/// Histogram, seconds: TTLs set by commands that succeeded. Tags as [`OPERATIONS_COUNT`].
pub const CACHE_TTL_DISTRIBUTION: &str = "cache.ttl.distribution";
/// Gauge, keys in the connection's database (`DBSIZE`). Tag: [`CACHE_TYPE`]. Opt-in.
pub const CACHE_SIZE_CURRENT: &str = "cache.size.current";
/// Gauge, percent (0 to 100): hits over reads in a sliding window, from
/// [`OPERATIONS_HIT_MISS`]. Tag: [`CACHE_TYPE`]. Not set while the window has no reads.
pub const KPI_CACHE_HIT_RATE: &str = "kpi.cache.hit_rate";

/// Tag key: the command, from the closed [`Operation`] set.
pub const OPERATION: &str = "operation";
/// Tag key: the kind of cache; [`CACHE_TYPE_REDIS`] here.
pub const CACHE_TYPE: &str = "cache_type";
/// Tag key: the key's pattern, from the [`KeyClassifier`], bounded per connection.
pub const KEY_PATTERN: &str = "key_pattern";
/// Tag key: [`RESULT_HIT`] or [`RESULT_MISS`].
pub const RESULT: &str = "result";
/// Tag key: the failure, from the closed [`ErrorType`] set.
pub const ERROR_TYPE: &str = "error_type";

/// [`CACHE_TYPE`] value of everything this crate records.
pub const CACHE_TYPE_REDIS: &str = "redis";
/// [`RESULT`] value: found.
pub const RESULT_HIT: &str = "hit";
/// [`RESULT`] value: not found.
pub const RESULT_MISS: &str = "miss";
/// [`KEY_PATTERN`] value: the classifier named no pattern, the connection's cap was reached, or
/// the command is outside the [`Operation`] set.
pub const KEY_PATTERN_OTHER: &str = "other";
/// [`KEY_PATTERN`] value: a command without a key (`PING`, `DBSIZE`, `PUBLISH`, ...).
pub const KEY_PATTERN_NONE: &str = "none";
/// [`KEY_PATTERN`] value: a pipeline whose commands have different patterns (its round trip's
/// response time only).
pub const KEY_PATTERN_MIXED: &str = "mixed";

/// What can go wrong setting up the optional parts. Recording itself never fails.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// [`InstrumentedConnection::spawn_size_sampler`] was called outside a Tokio runtime.
    #[error("the DBSIZE sampler needs a Tokio runtime: call spawn_size_sampler from within one")]
    NoRuntime,
}
