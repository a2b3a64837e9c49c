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
//!
//! Each instance writes all of its fields in one pipeline (`HSET` + `PEXPIRE` per key). Expiries
//! are relative (`PEXPIRE`, not `PEXPIREAT`) so they follow Redis's clock, whatever the
//! application's clock says.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use paymetrics::{kpi::PeriodTotals, uniques::HyperLogLog};
use redis::{
    Client, IntoConnectionInfo,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use super::{
    FleetStore, Granularity, HOUR_RETENTION, InstanceReport, MINUTE_RETENTION, SKETCH_RETENTION,
    SketchKey, StoreError, StoreFuture, decode_totals, encode_totals,
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
        })
    }
}

impl FleetStore for RedisStore {
    fn write<'a>(&'a self, instance: &'a str, report: &'a InstanceReport) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
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
            if pipe.is_empty() {
                // Still a round trip: the scheduler takes the answer as the store's health.
                pipe.cmd("PING").ignore();
            }
            self.run(|mut c| async move { pipe.exec_async(&mut c).await })
                .await
        })
    }

    fn totals<'a>(
        &'a self,
        granularity: Granularity,
        starts: &'a [u64],
    ) -> StoreFuture<'a, PeriodTotals> {
        Box::pin(async move {
            if starts.is_empty() {
                return Ok(PeriodTotals::default());
            }
            let mut pipe = redis::pipe();
            for start in starts {
                pipe.hgetall(self.totals_key(granularity, *start));
            }
            let periods: Vec<HashMap<String, String>> = self
                .run(|mut c| async move { pipe.query_async(&mut c).await })
                .await?;
            let mut sum = PeriodTotals::default();
            for entries in &periods {
                for encoded in entries.values() {
                    sum.add(&decode_totals(encoded)?);
                }
            }
            Ok(sum)
        })
    }

    fn sketch(&self, key: SketchKey) -> StoreFuture<'_, Option<HyperLogLog>> {
        Box::pin(async move {
            let key = self.sketch_key(key);
            let entries: HashMap<String, Vec<u8>> =
                self.run(|mut c| async move {
                    redis::cmd("HGETALL").arg(&key).query_async(&mut c).await
                })
                .await?;
            if entries.is_empty() {
                return Ok(None);
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
            Ok(Some(merged))
        })
    }

    fn try_lock<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
        _now: SystemTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let key = self.key(format_args!("lock:{name}"));
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("SET")
                .arg(&key)
                .arg(owner)
                .arg("NX")
                .arg("PX")
                .arg(millis(ttl))
                .ignore()
                .cmd("GET")
                .arg(&key);
            let (holder,): (Option<String>,) = self
                .run(|mut c| async move { pipe.query_async(&mut c).await })
                .await?;
            Ok(holder.as_deref() == Some(owner))
        })
    }
}
