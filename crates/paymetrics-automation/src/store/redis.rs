//! [`RedisStore`]: the fleet store on Redis or Redis Cluster (`redis://`, `rediss://` with
//! the `tls` feature, passwords and ACL users).
//!
//! # Keys
//!
//! Every key starts with `paymetrics:{<namespace>}:`; the braces make the namespace a Redis
//! Cluster hash tag, so one fleet's keys share a slot and each operation is one script on
//! one node.
//!
//! | key | type | content | expiry after the last write |
//! |---|---|---|---|
//! | `minute_totals:<unix start>` | hash | field `sum`: the fleet's totals, `payments=5,volume=12.5,...`; field `i:<instance id>`: that instance's totals | [`MINUTE_RETENTION`] |
//! | `hour_totals:<unix start>` | hash | as for minutes | [`HOUR_RETENTION`] |
//! | `hll:users:<day>`, `hll:senders:<day>`, `hll:monthly_users:<yyyymm>` | string | the fleet's merged sketch, a Redis HyperLogLog (`PFCOUNT` reads it) | [`SKETCH_RETENTION`] |
//! | `scratch` | string | an instance's sketch on its way into `PFMERGE`, deleted in the same script | none: never outlives the script |
//! | `lock:<kind>:<period>` | string | the publishing instance's id | until the period can no longer be published |
//! | `epoch` | string | a token naming this generation of the data | none |
//! | `complete_since` | sorted set | member `fleet`, score: Unix ms before which data was lost | none |
//!
//! # Costs that do not grow with the fleet
//!
//! Each operation is one Lua script (`EVALSHA`; `EVAL` once per node when the node does not
//! know it yet), atomic like a transaction, so a write is one round trip per instance per
//! interval.
//!
//! * **Sketches are merged where they are stored.** An instance's write puts its registers in
//!   Redis's HyperLogLog encoding into `scratch` and `PFMERGE`s them into the period's key:
//!   register-wise max, so a retried or duplicated write changes nothing, and the key stays
//!   12 KiB whether one instance or 100,000 wrote it. The publisher reads that one key.
//! * **Totals are summed as they are written.** An instance writes its absolute totals for a
//!   period; the script compares them with what that instance wrote before (field
//!   `i:<instance>`) and adds the difference to `sum`. A retry finds its own values and adds
//!   nothing; an instance that joins adds all of its totals; one that leaves leaves them (the
//!   payments it processed still count). The publisher reads `sum` only. Counts are exact;
//!   amounts (volume, fees) are `f64` sums whose rounding may differ from summing the
//!   instances' values in another order by a few units in the last place.
//!
//! Expiries are relative (`PEXPIRE`, not `PEXPIREAT`) so they follow Redis's clock, whatever
//! the application's clock says. On Redis Cluster ([`RedisStoreBuilder::cluster`]) the client
//! follows `MOVED` and `ASK` redirections (a resharding) and finds the new primary after a
//! failover; every operation stays bounded by the operation timeout meanwhile. While the
//! namespace's slot is mid-migration, a write that creates a key (a new period, the scratch
//! key) gets `TRYAGAIN` from Redis and fails within that bound; the next write after the move
//! carries the same absolute values, so nothing is lost or counted twice.
//!
//! An ACL user for the store needs `EVALSHA`, `EVAL`, and within scripts `SET`, `GET`, `DEL`,
//! `HGET`, `HSET`, `PEXPIRE`, `PFMERGE`, `ZADD` and `ZSCORE` on the namespace's keys (and
//! `CLUSTER SLOTS` on a cluster).
//!
//! # Noticing that Redis lost its data
//!
//! Every operation, reads and writes alike, begins with `SET epoch <new random token> NX`
//! and `GET epoch` in the same script: the first store to reach an empty Redis names the
//! generation, and the others adopt its token. A store that finds another token than the one
//! it saw last knows that everything it saw before is gone (a restart without persistence, a
//! `FLUSHALL`, a failover to an empty node; a failover to a replica keeps the token and is
//! not a loss). It then records the loss as of its clock's `now` (`ZADD complete_since GT
//! <ms> fleet`), keeps that record itself, and asserts it again in each of its later
//! operations, so a second restart does not erase it. Every read returns `complete: false`
//! when the data it covers began before the latest recorded loss.
//!
//! What this cannot see: a loss that no store noticed, because no store that had reached the
//! previous generation has reached Redis since (for instance every instance restarted with
//! Redis). Then the instances alive are new, and their data is all in the new generation.

use std::{
    sync::{Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use paymetrics::{kpi::PeriodTotals, uniques::HyperLogLog};
use redis::{
    Client, Cmd, FromRedisValue, IntoConnectionInfo, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
    cluster::{ClusterClient, ClusterConfig},
    cluster_async::ClusterConnection,
};

use super::{
    FleetRead, FleetStore, Granularity, HOUR_RETENTION, InstanceReport, MINUTE_RETENTION,
    SKETCH_RETENTION, SketchKey, StoreError, StoreFuture, decode_totals, encode_totals, redis_hll,
};
use crate::Error;

/// The namespace when none is configured and `DD_SERVICE` is not set.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Default bound on each Redis operation, connecting included.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

/// The fleet store on Redis, or on Redis Cluster ([`RedisStoreBuilder::cluster`]).
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
    client: Target,
    prefix: String,
    timeout: Duration,
    connection: Mutex<Option<Connection>>,
    generation: Mutex<Generation>,
}

/// A single Redis, or a cluster reached through its seed nodes.
#[allow(
    clippy::large_enum_variant,
    reason = "one per store, made once: the size does not matter"
)]
enum Target {
    Single(Client),
    Cluster(ClusterClient),
}

/// A connection to the [`Target`]; both reconnect by themselves and are cheap to clone.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> redis::RedisResult<T> {
        match self {
            Connection::Single(c) => cmd.query_async(c).await,
            Connection::Cluster(c) => cmd.query_async(c).await,
        }
    }
}

/// The only member of the `complete_since` sorted set (a sorted set for `ZADD GT`: a loss
/// recorded later never moves the mark back).
const COMPLETE_SINCE_MEMBER: &str = "fleet";

/// Every operation: the generation check, then the operation named by `ARGV[3]`.
///
/// `KEYS[1]` is `epoch`, `KEYS[2]` `complete_since`, the rest the operation's keys.
/// `ARGV[1]` is this store's new epoch token, `ARGV[2]` the loss it asserts (Unix ms, or
/// empty), `ARGV[4..]` the operation's arguments. It returns `{epoch, recorded loss, {...}}`.
/// Numbers are formatted with `%.17g`, which round-trips an `f64`.
const SCRIPT: &str = r#"
redis.call('SET', KEYS[1], ARGV[1], 'NX')
local epoch = redis.call('GET', KEYS[1])
-- A mark of 0 (nothing lost) makes sure the key exists: in a slot being migrated, a script
-- whose keys all exist runs on the node that holds them, one with a missing key gets TRYAGAIN.
redis.call('ZADD', KEYS[2], 'NX', 0, 'fleet')
if ARGV[2] ~= '' then
  redis.call('ZADD', KEYS[2], 'GT', ARGV[2], 'fleet')
end
local recorded = redis.call('ZSCORE', KEYS[2], 'fleet')
local op = ARGV[3]
local out = {}

local function parse(encoded)
  local t = {}
  if encoded then
    for name, value in string.gmatch(encoded, '([^,=]+)=([^,]+)') do
      t[name] = tonumber(value) or 0
    end
  end
  return t
end

local function encode(t)
  local names = {}
  for name in pairs(t) do names[#names + 1] = name end
  table.sort(names)
  local parts = {}
  for i, name in ipairs(names) do parts[i] = name .. '=' .. string.format('%.17g', t[name]) end
  return table.concat(parts, ',')
end

if op == 'write' then
  -- ARGV[4]: the instance's field; ARGV[5]: n, the number of totals; then n pairs
  -- (retention ms, totals) for KEYS[4..3+n], then pairs (retention ms, Redis HLL) for the
  -- sketch keys after them. KEYS[3] is the scratch key.
  local field = ARGV[4]
  local n = tonumber(ARGV[5])
  local a = 6
  for i = 1, n do
    local key = KEYS[3 + i]
    local new = ARGV[a + 1]
    local old = redis.call('HGET', key, field)
    if old ~= new then
      local sum = parse(redis.call('HGET', key, 'sum'))
      local before, after = parse(old), parse(new)
      for name, value in pairs(after) do
        sum[name] = (sum[name] or 0) + value - (before[name] or 0)
      end
      for name, value in pairs(before) do
        if after[name] == nil then sum[name] = (sum[name] or 0) - value end
      end
      redis.call('HSET', key, field, new, 'sum', encode(sum))
    end
    redis.call('PEXPIRE', key, ARGV[a])
    a = a + 2
  end
  local k = 4 + n
  while a < #ARGV do
    redis.call('SET', KEYS[3], ARGV[a + 1])
    redis.call('PFMERGE', KEYS[k], KEYS[3])
    redis.call('DEL', KEYS[3])
    redis.call('PEXPIRE', KEYS[k], ARGV[a])
    a = a + 2
    k = k + 1
  end
elseif op == 'totals' then
  for i = 3, #KEYS do out[i - 2] = redis.call('HGET', KEYS[i], 'sum') end
elseif op == 'sketch' then
  out[1] = redis.call('GET', KEYS[3])
elseif op == 'lock' then
  redis.call('SET', KEYS[3], ARGV[4], 'NX', 'PX', ARGV[5])
  out[1] = redis.call('GET', KEYS[3])
else
  return redis.error_reply('ERR unknown paymetrics operation')
end
return {epoch, recorded, out}
"#;

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
            .field("cluster", &matches!(self.client, Target::Cluster(_)))
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
    cluster: bool,
}

impl std::fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("namespace", &self.namespace)
            .field("timeout", &self.timeout)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("root_certificate_pem", &self.root_certificate_pem.is_some())
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

/// The script's reply to an operation: the generation check's two values, then the
/// operation's own.
type Reply = (Option<String>, Option<f64>, Value);

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
            cluster: false,
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
    /// * `REDIS_CLUSTER`: `true` (or `1`) when `REDIS_URL` is a node of a Redis Cluster.
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
        if let Some(cluster) = var("REDIS_CLUSTER") {
            builder = builder.cluster(match cluster.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(Error::InvalidConfig(format!(
                        "REDIS_CLUSTER={cluster:?}: use true or false"
                    )));
                }
            });
        }
        builder.build().map(Some)
    }

    fn key(&self, rest: std::fmt::Arguments<'_>) -> String {
        format!("{}{rest}", self.prefix)
    }

    fn totals_key(&self, granularity: Granularity, start: u64) -> String {
        self.key(format_args!("{}_totals:{start}", granularity.as_str()))
    }

    fn sketch_key(&self, key: SketchKey) -> String {
        self.key(format_args!("hll:{}:{}", key.kind.as_str(), key.period))
    }

    /// The connection, made (lazily, without waiting) on first use; it reconnects by itself.
    fn connection(&self) -> Result<Connection, StoreError> {
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = connection.as_ref() {
            return Ok(c.clone());
        }
        let made = match &self.client {
            Target::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_secs(1));
                Connection::Single(
                    ConnectionManager::new_lazy_with_config(client.clone(), config)
                        .map_err(unavailable)?,
                )
            }
            Target::Cluster(client) => {
                let config = ClusterConfig::new()
                    .set_connection_timeout(self.timeout)
                    .set_response_timeout(self.timeout);
                Connection::Cluster(client.get_pending_async_connection_with_config(config))
            }
        };
        *connection = Some(made.clone());
        Ok(made)
    }

    /// Runs `op` behind the generation check (see the module's docs) in one script, and
    /// returns its replies with the time, in Unix ms, before which data was lost.
    async fn operation(
        &self,
        now: SystemTime,
        op: &str,
        keys: &[String],
        args: Vec<Vec<u8>>,
    ) -> Result<(Value, Option<u64>), StoreError> {
        let epoch = self.key(format_args!("epoch"));
        let since = self.key(format_args!("complete_since"));
        let asserted = self.generation().complete_since_ms;
        // A new token for every offer: one the store offered before and that took may have
        // been lost with the data, and offering it again would hide the loss.
        let token = random_token();
        let asserted = asserted.map(|ms| ms.to_string()).unwrap_or_default();
        let mut evalsha = redis::cmd("EVALSHA");
        let mut eval = redis::cmd("EVAL");
        for (cmd, script) in [(&mut evalsha, script_hash()), (&mut eval, SCRIPT)] {
            cmd.arg(script)
                .arg(2 + keys.len())
                .arg(&epoch)
                .arg(&since)
                .arg(keys)
                .arg(&token)
                .arg(&asserted)
                .arg(op)
                .arg(&args);
        }
        // EVALSHA first: the script's body is sent once per node (and after a restart or a
        // failover to a node that never ran it), not with every operation.
        let reply: Reply = self
            .run(|mut c| async move {
                match c.query(&evalsha).await {
                    Err(e)
                        if e.kind()
                            == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                    {
                        c.query(&eval).await
                    }
                    other => other,
                }
            })
            .await?;
        let (epoch, recorded, value) = reply;
        let now_ms = u64::try_from(millis_since_epoch(now)).unwrap_or(u64::MAX);
        let (complete_since, lost) = self.observe(epoch, recorded, now_ms);
        if lost {
            tracing::warn!(
                target: "paymetrics::automation",
                "the fleet store lost its data (Redis restarted empty, was flushed, or failed over to an empty node): what instances wrote before now and cannot write again is gone, so the fleet's figures of periods begun before now will not be published"
            );
            // Recorded at once so that instances that did not see the old generation know;
            // if this fails, the next operation asserts it again.
            let mut record = redis::cmd("ZADD");
            record
                .arg(&since)
                .arg("GT")
                .arg(now_ms)
                .arg(COMPLETE_SINCE_MEMBER);
            if let Err(e) = self
                .run(|mut c| async move { c.query::<Value>(&record).await })
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

    /// Takes in the generation an operation saw; returns the time before which data was
    /// lost, and whether this operation is the first to notice a loss.
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
    async fn run<T, F>(&self, op: impl FnOnce(Connection) -> F) -> Result<T, StoreError>
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

/// The SHA1 of [`SCRIPT`], computed once.
fn script_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| redis::Script::new(SCRIPT).get_hash().to_owned())
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
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

    /// Treats the URL as one node of a Redis Cluster (default: a single Redis): the store
    /// learns the cluster's other nodes from it, follows `MOVED` and `ASK` redirections, and
    /// finds the new primary after a failover. The namespace's keys share one hash slot.
    pub fn cluster(mut self, cluster: bool) -> Self {
        self.cluster = cluster;
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
        let client = if self.cluster {
            Target::Cluster(cluster_client(
                info,
                self.timeout,
                self.root_certificate_pem,
                tls,
            )?)
        } else {
            Target::Single(single_client(info, self.root_certificate_pem, tls)?)
        };
        Ok(RedisStore {
            client,
            prefix: format!("paymetrics:{{{}}}:", self.namespace),
            timeout: self.timeout,
            connection: Mutex::new(None),
            generation: Mutex::new(Generation::default()),
        })
    }
}

fn single_client(
    info: redis::ConnectionInfo,
    root_certificate_pem: Option<Vec<u8>>,
    tls: bool,
) -> Result<Client, Error> {
    match root_certificate_pem {
        None => Client::open(info).map_err(|e| Error::InvalidRedisUrl(e.to_string())),
        #[cfg(feature = "tls")]
        Some(pem) if tls => Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            },
        )
        .map_err(|e| Error::InvalidConfig(format!("TLS root certificates: {e}"))),
        Some(_) => Err(root_certificates_without_tls(tls)),
    }
}

fn cluster_client(
    info: redis::ConnectionInfo,
    timeout: Duration,
    root_certificate_pem: Option<Vec<u8>>,
    tls: bool,
) -> Result<ClusterClient, Error> {
    #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
    let mut builder = ClusterClient::builder([info])
        .connection_timeout(timeout)
        .response_timeout(timeout);
    match root_certificate_pem {
        None => {}
        #[cfg(feature = "tls")]
        Some(pem) if tls => {
            builder = builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            });
        }
        Some(_) => return Err(root_certificates_without_tls(tls)),
    }
    builder
        .build()
        .map_err(|e| Error::InvalidRedisUrl(e.to_string()))
}

fn root_certificates_without_tls(_tls: bool) -> Error {
    Error::InvalidConfig(
        "TLS root certificates were given for a redis:// URL; use rediss://".into(),
    )
}

impl FleetStore for RedisStore {
    fn write<'a>(&'a self, instance: &'a str, report: &'a InstanceReport) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // Never skipped when the report is empty: the script's answer is the store's
            // health, and its generation check notices a loss.
            let mut keys = vec![self.key(format_args!("scratch"))];
            let mut args: Vec<Vec<u8>> = vec![format!("i:{instance}").into_bytes(), vec![]];
            let mut totals = 0usize;
            for (granularity, periods, retention) in [
                (Granularity::Minute, &report.minutes, MINUTE_RETENTION),
                (Granularity::Hour, &report.hours, HOUR_RETENTION),
            ] {
                for (start, period) in periods {
                    keys.push(self.totals_key(granularity, *start));
                    args.push(millis(retention).to_string().into_bytes());
                    args.push(encode_totals(period).into_bytes());
                    totals += 1;
                }
            }
            args[1] = totals.to_string().into_bytes();
            for (key, registers) in &report.sketches {
                let encoded = redis_hll::to_redis(registers).ok_or_else(|| {
                    StoreError::Corrupt(format!("a sketch of {} registers", registers.len()))
                })?;
                keys.push(self.sketch_key(*key));
                args.push(millis(SKETCH_RETENTION).to_string().into_bytes());
                args.push(encoded);
            }
            self.operation(report.taken_at, "write", &keys, args)
                .await
                .map(|_| ())
        })
    }

    fn totals<'a>(
        &'a self,
        granularity: Granularity,
        starts: &'a [u64],
        now: SystemTime,
    ) -> StoreFuture<'a, FleetRead<PeriodTotals>> {
        Box::pin(async move {
            let keys: Vec<String> = starts
                .iter()
                .map(|start| self.totals_key(granularity, *start))
                .collect();
            let (value, complete_since) = self.operation(now, "totals", &keys, vec![]).await?;
            let sums = Vec::<Option<String>>::from_redis_value(value).map_err(corrupt)?;
            let mut sum = PeriodTotals::default();
            for encoded in sums.iter().flatten() {
                sum.add(&decode_totals(encoded)?);
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
            let keys = [self.sketch_key(key)];
            let (value, complete_since) = self.operation(now, "sketch", &keys, vec![]).await?;
            let (stored,) = <(Option<Vec<u8>>,)>::from_redis_value(value).map_err(corrupt)?;
            let complete = whole_since(key.start(), complete_since);
            let Some(stored) = stored else {
                return Ok(FleetRead::new(None, complete));
            };
            let merged = HyperLogLog::new();
            match redis_hll::from_redis(&stored) {
                Some(registers) if merged.merge_bytes(&registers) => {
                    Ok(FleetRead::new(Some(merged), complete))
                }
                _ => Err(StoreError::Corrupt(format!(
                    "a sketch of {} bytes that is not a Redis HyperLogLog",
                    stored.len()
                ))),
            }
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
            let keys = [self.key(format_args!("lock:{name}"))];
            let args = vec![
                owner.as_bytes().to_vec(),
                millis(ttl).to_string().into_bytes(),
            ];
            let (value, _) = self.operation(now, "lock", &keys, args).await?;
            let (holder,) = <(Option<String>,)>::from_redis_value(value).map_err(corrupt)?;
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
