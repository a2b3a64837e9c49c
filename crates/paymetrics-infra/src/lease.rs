//! [`FleetLease`]: which replica of a fleet collects, decided by a lease on Redis. The rounds
//! that use it live in [`fleet`](crate::fleet).

use std::{
    fmt,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use redis::{Script, aio::ConnectionLike};
use tokio::time::Instant;

/// Extends the lease only while it still holds our token: a replica that paused past its
/// lease (GC, a frozen VM) must not extend the lease of the replica that took over.
const RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#;

/// Deletes the lease only while it still holds our token, for the same reason.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// The lease could not be read or written: Redis is unreachable or refused the command.
#[derive(Debug, thiserror::Error)]
#[error(
    "fleet lease {key:?} on Redis: {source} (check REDIS_URL and that the user may run SET, GET, PEXPIRE, DEL and EVALSHA/EVAL)"
)]
pub struct LeaseError {
    key: String,
    #[source]
    source: redis::RedisError,
}

/// A lease on one Redis key that at most one replica holds at a time: `SET key token NX PX
/// ttl` takes it, a compare-and-set script renews it while it holds this replica's token, and
/// another compare-and-set script releases it on shutdown.
///
/// When the holder dies, its key expires after `ttl`, and the next replica that tries takes
/// it: a fleet whose replicas try every `interval` has a new holder within `interval + ttl`.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use paymetrics_infra::FleetLease;
///
/// let client = redis::Client::open("redis://127.0.0.1:6379")?;
/// let conn = client.get_multiplexed_async_connection().await?;
/// let lease = FleetLease::new(conn, "paymetrics:lease:infra", Duration::from_secs(120));
/// if lease.acquire_or_renew().await? {
///     // this replica collects this round
/// }
/// lease.release().await?;
/// # Ok(()) }
/// ```
pub struct FleetLease<C> {
    conn: C,
    key: String,
    token: String,
    ttl: Duration,
    renew: Script,
    release: Script,
    /// Until when this replica knows it holds the lease (set after a successful take or
    /// renewal, measured from before the command was sent, so it never overestimates).
    held_until: std::sync::Mutex<Option<Instant>>,
}

impl<C> fmt::Debug for FleetLease<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetLease")
            .field("key", &self.key)
            .field("token", &self.token)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<C: ConnectionLike + Clone + Send + Sync> FleetLease<C> {
    /// A lease on `key`, valid for `ttl` after each take or renewal (at least 1 ms), over
    /// `conn` (a multiplexed connection or a `ConnectionManager`, cloned per command). The
    /// token is unique to this lease value: process id, start time and a counter.
    pub fn new(conn: C, key: impl Into<String>, ttl: Duration) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let token = format!(
            "{}-{nanos:x}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Self {
            conn,
            key: key.into(),
            token,
            ttl: ttl.max(Duration::from_millis(1)),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
            held_until: std::sync::Mutex::new(None),
        }
    }

    /// The Redis key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// This replica's token, the value of the key while it holds the lease.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// How long a take or renewal lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Whether this replica holds the lease, as far as it knows without asking Redis: it took
    /// or renewed it less than `ttl` ago (the clock started before the command went out).
    pub fn is_held(&self) -> bool {
        self.held_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|until| Instant::now() < until)
    }

    fn set_held(&self, until: Option<Instant>) {
        *self
            .held_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = until;
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    fn error(&self, source: redis::RedisError) -> LeaseError {
        LeaseError {
            key: self.key.clone(),
            source,
        }
    }

    /// Takes the lease if it is free (`SET key token NX PX ttl`); `true` if this replica now
    /// holds it. Does not renew a lease this replica already holds: see
    /// [`acquire_or_renew`](Self::acquire_or_renew).
    pub async fn try_acquire(&self) -> Result<bool, LeaseError> {
        let started = Instant::now();
        let set: Option<String> = redis::cmd("SET")
            .arg(&self.key)
            .arg(&self.token)
            .arg("NX")
            .arg("PX")
            .arg(self.ttl_ms())
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.error(e))?;
        let taken = set.is_some();
        if taken {
            self.set_held(Some(started + self.ttl));
        }
        Ok(taken)
    }

    /// Extends the lease by `ttl` if this replica still holds it; `false` (and no longer
    /// [held](Self::is_held)) if another replica holds it or it expired.
    pub async fn renew(&self) -> Result<bool, LeaseError> {
        let started = Instant::now();
        let renewed: i64 = self
            .renew
            .key(&self.key)
            .arg(&self.token)
            .arg(self.ttl_ms())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.error(e))?;
        let renewed = renewed == 1;
        self.set_held(renewed.then(|| started + self.ttl));
        Ok(renewed)
    }

    /// Renews the lease if this replica holds it, else tries to take it; `true` if this
    /// replica holds it now. What a replica calls at the start of each round.
    pub async fn acquire_or_renew(&self) -> Result<bool, LeaseError> {
        if self.renew().await? {
            return Ok(true);
        }
        self.try_acquire().await
    }

    /// Gives the lease up if this replica holds it, so another replica takes over at its next
    /// try instead of after `ttl`; `true` if it was held.
    pub async fn release(&self) -> Result<bool, LeaseError> {
        self.set_held(None);
        let released: i64 = self
            .release
            .key(&self.key)
            .arg(&self.token)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.error(e))?;
        Ok(released == 1)
    }
}
