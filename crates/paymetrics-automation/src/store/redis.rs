//! [`RedisStore`]: the fleet store on Redis (`redis://`, `rediss://` with the `tls` feature,
//! passwords and ACL users).
//!
//! # Keys
//!
//! Every key starts with `paymetrics:{<namespace>}:`; the braces make the namespace a Redis
//! Cluster hash tag, so one fleet's keys share a slot and pipelines stay on one node.
//!
//! | key | type | field | value | expiry after the last write |
//! |---|---|---|---|---|
//! | `minute:<unix start>` | hash | instance id | totals, `payments=5,volume=12.5,...` | [`MINUTE_RETENTION`] |
//! | `hour:<unix start>` | hash | instance id | totals | [`HOUR_RETENTION`] |
//! | `users:<day>`, `senders:<day>`, `monthly_users:<yyyymm>` | hash | instance id | 16 KiB of HyperLogLog registers | [`SKETCH_RETENTION`] |
//! | `lock:<kind>:<period>` | string | | the publishing instance's id | until the period can no longer be published |
//! | `epoch` | string | | a token naming this generation of the data | none |
//! | `complete_since` | sorted set | member `fleet` | score: Unix ms before which data was lost | none |
//!
//! Each instance writes all of its fields in one transaction (`HSET` + `PEXPIRE` per key).
//! Expiries are relative (`PEXPIRE`, not `PEXPIREAT`) so they follow Redis's clock, whatever
//! the application's clock says.
//!
//! An ACL user for the store needs `MULTI`, `EXEC`, `SET`, `GET`, `HSET`, `HGETALL`, `PEXPIRE`,
//! `ZADD` and `ZSCORE` on the namespace's keys.
//!
//! # Noticing that Redis lost its data
//!
//! Every operation, reads and writes alike, is one `MULTI` transaction that begins with
//! `SET epoch <new random token> NX` and `GET epoch`: the first store to reach an empty Redis
//! names the generation, and the others adopt its token. A store that finds another token
//! than the one it saw last knows that everything it saw before is gone (a restart without
//! persistence, a `FLUSHALL`, a failover to an empty node; a failover to a replica keeps the
//! token and is not a loss). It then records the loss as of its clock's `now` (`ZADD
//! complete_since GT <ms> fleet`), keeps that record itself, and asserts it again in each of
//! its later transactions, so a second restart does not erase it. Every read returns
//! `complete: false` when the data it covers began before the latest recorded loss.
//!
//! What this cannot see: a loss that no store noticed, because no store that had reached the
//! previous generation has reached Redis since (for instance every instance restarted with
//! Redis). Then the instances alive are new, and their data is all in the new generation.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use paymetrics::{kpi::PeriodTotals, uniques::HyperLogLog};
use redis::{
    Client, FromRedisValue, IntoConnectionInfo, Pipeline, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use super::{
    FleetRead, FleetStore, Granularity, HOUR_RETENTION, InstanceReport, MINUTE_RETENTION,
    SKETCH_RETENTION, SketchKey, StoreError, StoreFuture, decode_totals, encode_totals,
};
use crate::Error;

/// The namespace when none is configured and `DD_SERVICE` is not set.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Default bound on each Redis operation, connecting included.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

/// The fleet store on Redis.
///
/// Creating one does not connect: the connection is made on first use by the scheduler and
/// re-made after failures, so a Redis that is down at start-up, or restarts, never stops the
/// application. Every operation is bounded by the [operation
/// timeout](RedisStoreBuilder::operation_timeout).
///
/// ```no_run
/// use std::time::Duration;
/// use paymetrics_automation::RedisStore;
///
/// let store = RedisStore::builder("rediss://:s3cret@cache.internal:6380/0")
///     .namespace("payments-api")
///     .operation_timeout(Duration::from_secs(1))
///     .build()?;
/// # Ok::<(), paymetrics_automation::Error>(())
/// ```
pub struct RedisStore {
    client: Client,
    prefix: String,
    timeout: Duration,
    manager: Mutex<Option<ConnectionManager>>,
    generation: Mutex<Generation>,
}

/// The only member of the `complete_since` sorted set (a sorted set for `ZADD GT`: a loss
/// recorded later never moves the mark back).
const COMPLETE_SINCE_MEMBER: &str = "fleet";

/// What this store knows of the data's history in Redis.
#[derive(Debug, Default)]
struct Generation {
    /// The epoch token of the generation it last saw; `None` before its first answer.
    seen: Option<String>,
    /// Unix ms before which data was lost: the latest loss this store noticed or read.
    complete_since_ms: Option<u64>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the connection info: it may hold a password.
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Configures a [`RedisStore`].
#[derive(Clone)]
pub struct RedisStoreBuilder {
    url: String,
    namespace: String,
    timeout: Duration,
    username: Option<String>,
    password: Option<String>,
    root_certificate_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("namespace", &self.namespace)
            .field("timeout", &self.timeout)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("root_certificate_pem", &self.root_certificate_pem.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A builder for the server at `url`: `redis://[[user]:password@]host[:port][/db]`, or
    /// `rediss://...` for TLS (the `tls` feature).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            timeout: DEFAULT_OPERATION_TIMEOUT,
            username: None,
            password: None,
            root_certificate_pem: None,
        }
    }

    /// The store at `url` with the defaults.
    pub fn new(url: impl Into<String>) -> Result<Self, Error> {
        Self::builder(url).build()
    }

    /// The store configured by the environment, or `None` when `REDIS_URL` is not set (then
    /// the fleet is this process alone):
    ///
    /// * `REDIS_URL`: the server, as for [`builder`](Self::builder).
    /// * `REDIS_AUTH_TOKEN` or `REDIS_PASSWORD`: the password, when the URL has none.
    /// * `PAYMETRICS_FLEET_NAMESPACE`, else `DD_SERVICE`, else [`DEFAULT_NAMESPACE`]: which
    ///   fleet this instance belongs to.
    pub fn from_env() -> Result<Option<Self>, Error> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let Some(url) = var("REDIS_URL") else {
            return Ok(None);
        };
        let mut builder = Self::builder(url);
        if let Some(password) = var("REDIS_AUTH_TOKEN").or_else(|| var("REDIS_PASSWORD")) {
            builder.password = Some(password);
        }
        if let Some(namespace) = var("PAYMETRICS_FLEET_NAMESPACE").or_else(|| var("DD_SERVICE")) {
            builder = builder.namespace(namespace);
        }
        builder.build().map(Some)
    }

    fn key(&self, rest: std::fmt::Arguments<'_>) -> String {
        format!("{}{rest}", self.prefix)
    }

    fn totals_key(&self, granularity: Granularity, start: u64) -> String {
        self.key(format_args!("{}:{start}", granularity.as_str()))
    }

    fn sketch_key(&self, key: SketchKey) -> String {
        self.key(format_args!("{}:{}", key.kind.as_str(), key.period))
    }

    /// The connection, made (lazily, without waiting) on first use; it reconnects by itself.
    fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let mut manager = self.manager.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(m) = manager.as_ref() {
            return Ok(m.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let m = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(unavailable)?;
        *manager = Some(m.clone());
        Ok(m)
    }

    /// Runs `ops` in one transaction behind the generation check (see the module's docs), and
    /// returns their replies (as `T`) with the time, in Unix ms, before which data was lost.
    async fn transaction<T: FromRedisValue>(
        &self,
        now: SystemTime,
        ops: impl FnOnce(&mut Pipeline),
    ) -> Result<(T, Option<u64>), StoreError> {
        let epoch = self.key(format_args!("epoch"));
        let since = self.key(format_args!("complete_since"));
        let asserted = self.generation().complete_since_ms;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(&epoch)
            // A new token for every offer: one the store offered before and that took may
            // have been lost with the data, and offering it again would hide the loss.
            .arg(random_token())
            .arg("NX")
            .ignore()
            .cmd("GET")
            .arg(&epoch);
        if let Some(ms) = asserted {
            record_loss(&mut pipe, &since, ms);
        }
        pipe.zscore(&since, COMPLETE_SINCE_MEMBER);
        ops(&mut pipe);
        let mut replies: Vec<Value> = self
            .run(|mut c| async move { pipe.query_async(&mut c).await })
            .await?;
        if replies.len() < 2 {
            return Err(StoreError::Corrupt(format!(
                "{} replies to a transaction",
                replies.len()
            )));
        }
        let rest = replies.split_off(2);
        let [epoch, recorded]: [Value; 2] = replies
            .try_into()
            .map_err(|_| StoreError::Corrupt("the generation check".into()))?;
        let epoch = Option::<String>::from_redis_value(epoch).map_err(corrupt)?;
        let recorded = Option::<f64>::from_redis_value(recorded).map_err(corrupt)?;
        let value = T::from_redis_value(Value::Array(rest)).map_err(corrupt)?;
        let now_ms = u64::try_from(millis_since_epoch(now)).unwrap_or(u64::MAX);
        let (complete_since, lost) = self.observe(epoch, recorded, now_ms);
        if lost {
            tracing::warn!(
                target: "paymetrics::automation",
                "the fleet store lost its data (Redis restarted empty, was flushed, or failed over to an empty node): what instances wrote before now and cannot write again is gone, so the fleet's figures of periods begun before now will not be published"
            );
            // Recorded at once so that instances that did not see the old generation know;
            // if this fails, the next transaction asserts it again.
            let mut record = redis::pipe();
            record_loss(&mut record, &since, now_ms);
            if let Err(e) = self
                .run(|mut c| async move { record.exec_async(&mut c).await })
                .await
            {
                tracing::debug!(target: "paymetrics::automation", error = %e, "recording the loss failed; retried with the next operation");
            }
        }
        Ok((value, complete_since))
    }

    fn generation(&self) -> std::sync::MutexGuard<'_, Generation> {
        self.generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes in the generation a transaction saw; returns the time before which data was
    /// lost, and whether this transaction is the first to notice a loss.
    fn observe(
        &self,
        epoch: Option<String>,
        recorded: Option<f64>,
        now_ms: u64,
    ) -> (Option<u64>, bool) {
        let mut generation = self.generation();
        // A missing epoch right after SET NX means something deleted it: a loss as well.
        let lost = generation.seen.is_some() && generation.seen != epoch;
        let mut since = generation.complete_since_ms;
        if lost {
            since = since.max(Some(now_ms));
        }
        if let Some(recorded) = recorded.filter(|ms| ms.is_finite() && *ms >= 0.0) {
            since = since.max(Some(recorded as u64));
        }
        generation.complete_since_ms = since;
        generation.seen = epoch;
        (since, lost)
    }

    /// Runs `op` on the connection within the operation timeout.
    async fn run<T, F>(&self, op: impl FnOnce(ConnectionManager) -> F) -> Result<T, StoreError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.connection()?;
        match tokio::time::timeout(self.timeout, op(connection)).await {
            Ok(result) => result.map_err(unavailable),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        }
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Raises the `complete_since` mark to `ms` (never lowers it).
fn record_loss(pipe: &mut Pipeline, key: &str, ms: u64) {
    pipe.cmd("ZADD")
        .arg(key)
        .arg("GT")
        .arg(ms)
        .arg(COMPLETE_SINCE_MEMBER)
        .ignore();
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn millis_since_epoch(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

/// Whether data that began at `start` (Unix seconds) is whole, data having been lost before
/// `complete_since` (Unix ms).
fn whole_since(start: u64, complete_since: Option<u64>) -> bool {
    complete_since.is_none_or(|since| u128::from(start) * 1000 >= u128::from(since))
}

/// A random token: the process's hasher seed, the time and a per-process counter.
fn random_token() -> String {
    use std::{
        hash::BuildHasher,
        sync::atomic::{AtomicU64, Ordering::Relaxed},
    };
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let random = std::collections::hash_map::RandomState::new().hash_one((
        std::process::id(),
        SystemTime::now(),
        NEXT.fetch_add(1, Relaxed),
    ));
    format!("{random:016x}")
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

impl RedisStoreBuilder {
    /// Which fleet this instance belongs to (default [`DEFAULT_NAMESPACE`]): instances with
    /// the same namespace on the same Redis are summed together. Use the service's name.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Bounds each operation, connecting included (default [`DEFAULT_OPERATION_TIMEOUT`]).
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The ACL user, when the URL has none.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// The password (or ElastiCache auth token), when the URL has none.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// For `rediss://`: trusts only the certificate authorities in `pem` (a private CA)
    /// instead of the webpki roots.
    #[cfg(feature = "tls")]
    pub fn tls_root_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificate_pem = Some(pem.into());
        self
    }

    /// Checks the configuration and returns the store; does not connect.
    pub fn build(self) -> Result<RedisStore, Error> {
        if self.namespace.is_empty()
            || self
                .namespace
                .chars()
                .any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control())
        {
            return Err(Error::InvalidConfig(format!(
                "fleet namespace {:?}: use a non-empty name without braces or spaces, such as the service name",
                self.namespace
            )));
        }
        let tls = self.url.trim_start().starts_with("rediss://");
        if tls && !cfg!(feature = "tls") {
            return Err(Error::InvalidRedisUrl(
                "rediss:// needs paymetrics-automation's `tls` feature".into(),
            ));
        }
        #[cfg(feature = "tls")]
        if tls {
            // redis enables rustls without a crypto provider; give it ring's unless the
            // application installed one already (then `install_default` fails, harmlessly).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let mut info = self.url.as_str().into_connection_info().map_err(|e| {
            // The error never echoes the URL, which may hold a password.
            Error::InvalidRedisUrl(format!(
                "{e}; expected redis://[[user]:password@]host[:port][/db] or rediss://..."
            ))
        })?;
        let mut settings = info.redis_settings().clone();
        if settings.password().is_none()
            && let Some(password) = &self.password
        {
            settings = settings.set_password(password);
        }
        if settings.username().is_none()
            && let Some(username) = &self.username
        {
            settings = settings.set_username(username);
        }
        info = info.set_redis_settings(settings);
        let client = match self.root_certificate_pem {
            None => Client::open(info).map_err(|e| Error::InvalidRedisUrl(e.to_string()))?,
            #[cfg(feature = "tls")]
            Some(pem) if tls => Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
            .map_err(|e| Error::InvalidConfig(format!("TLS root certificates: {e}")))?,
            Some(_) => {
                return Err(Error::InvalidConfig(
                    "TLS root certificates were given for a redis:// URL; use rediss://".into(),
                ));
            }
        };
        Ok(RedisStore {
            client,
            prefix: format!("paymetrics:{{{}}}:", self.namespace),
            timeout: self.timeout,
            manager: Mutex::new(None),
            generation: Mutex::new(Generation::default()),
        })
    }
}

impl FleetStore for RedisStore {
    fn write<'a>(&'a self, instance: &'a str, report: &'a InstanceReport) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // Never skipped when the report is empty: the transaction's answer is the store's
            // health, and its generation check notices a loss.
            self.transaction::<()>(report.taken_at, |pipe| {
                for (granularity, periods, retention) in [
                    (Granularity::Minute, &report.minutes, MINUTE_RETENTION),
                    (Granularity::Hour, &report.hours, HOUR_RETENTION),
                ] {
                    for (start, totals) in periods {
                        let key = self.totals_key(granularity, *start);
                        pipe.hset(&key, instance, encode_totals(totals))
                            .ignore()
                            .pexpire(&key, millis(retention))
                            .ignore();
                    }
                }
                for (key, registers) in &report.sketches {
                    let key = self.sketch_key(*key);
                    pipe.hset(&key, instance, registers.as_slice())
                        .ignore()
                        .pexpire(&key, millis(SKETCH_RETENTION))
                        .ignore();
                }
            })
            .await
            .map(|((), _)| ())
        })
    }

    fn totals<'a>(
        &'a self,
        granularity: Granularity,
        starts: &'a [u64],
        now: SystemTime,
    ) -> StoreFuture<'a, FleetRead<PeriodTotals>> {
        Box::pin(async move {
            let (periods, complete_since): (Vec<HashMap<String, String>>, _) = self
                .transaction(now, |pipe| {
                    for start in starts {
                        pipe.hgetall(self.totals_key(granularity, *start));
                    }
                })
                .await?;
            let mut sum = PeriodTotals::default();
            for entries in &periods {
                for encoded in entries.values() {
                    sum.add(&decode_totals(encoded)?);
                }
            }
            let earliest = starts.iter().copied().min().unwrap_or(u64::MAX);
            Ok(FleetRead::new(sum, whole_since(earliest, complete_since)))
        })
    }

    fn sketch(
        &self,
        key: SketchKey,
        now: SystemTime,
    ) -> StoreFuture<'_, FleetRead<Option<HyperLogLog>>> {
        Box::pin(async move {
            let ((entries,), complete_since): ((HashMap<String, Vec<u8>>,), _) = self
                .transaction(now, |pipe| {
                    pipe.hgetall(self.sketch_key(key));
                })
                .await?;
            let complete = whole_since(key.start(), complete_since);
            if entries.is_empty() {
                return Ok(FleetRead::new(None, complete));
            }
            let merged = HyperLogLog::new();
            for registers in entries.values() {
                if !merged.merge_bytes(registers) {
                    return Err(StoreError::Corrupt(format!(
                        "a sketch of {} bytes",
                        registers.len()
                    )));
                }
            }
            Ok(FleetRead::new(Some(merged), complete))
        })
    }

    fn try_lock<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
        now: SystemTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let key = self.key(format_args!("lock:{name}"));
            let ((holder,), _): ((Option<String>,), _) = self
                .transaction(now, |pipe| {
                    pipe.cmd("SET")
                        .arg(&key)
                        .arg(owner)
                        .arg("NX")
                        .arg("PX")
                        .arg(millis(ttl))
                        .ignore()
                        .cmd("GET")
                        .arg(&key);
                })
                .await?;
            Ok(holder.as_deref() == Some(owner))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_whole_only_when_it_began_at_or_after_the_last_loss() {
        assert!(whole_since(0, None));
        assert!(whole_since(3600, Some(3_600_000)));
        assert!(!whole_since(3600, Some(3_600_001)));
        assert!(whole_since(u64::MAX, Some(u64::MAX)), "no overflow");
    }

    #[test]
    fn a_new_epoch_after_one_seen_is_a_loss_and_the_latest_loss_wins() {
        let store = RedisStore::new("redis://127.0.0.1:1").unwrap();
        let epoch = |t: &str| Some(t.to_owned());
        assert_eq!(store.observe(epoch("a"), None, 10), (None, false), "first");
        assert_eq!(store.observe(epoch("a"), None, 20), (None, false), "same");
        assert_eq!(store.observe(epoch("b"), None, 30), (Some(30), true), "new");
        assert_eq!(store.observe(epoch("b"), Some(25.0), 40), (Some(30), false));
        assert_eq!(
            store.observe(epoch("b"), Some(35.0), 40),
            (Some(35), false),
            "another store noticed a later loss"
        );
        assert_eq!(store.observe(None, Some(f64::NAN), 50), (Some(50), true));
        let fresh = RedisStore::new("redis://127.0.0.1:1").unwrap();
        assert_eq!(
            fresh.observe(epoch("c"), Some(35.0), 60),
            (Some(35), false),
            "a store that never saw the old generation learns of the loss from Redis"
        );
        assert_ne!(random_token(), random_token());
    }
}
