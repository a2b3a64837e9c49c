//! `cache.size.current`: the number of keys in the connection's database (`DBSIZE`), sampled
//! on demand or on a schedule. Opt-in: nothing here runs unless asked.
//!
//! The `DBSIZE` calls go through the wrapped connection directly, so they are not counted as
//! cache operations.

use std::time::Duration;

use metrics::Gauge;
use redis::{RedisResult, aio::ConnectionLike};
use tokio::{task::JoinHandle, time::MissedTickBehavior};

use crate::{Error, InstrumentedConnection};

/// Shortest sampling interval; shorter ones are raised to it.
pub const MIN_SIZE_SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

impl<C: ConnectionLike + Send> InstrumentedConnection<C> {
    /// Asks the server for `DBSIZE` once and sets [`CACHE_SIZE_CURRENT`](crate::CACHE_SIZE_CURRENT)
    /// to it; returns it.
    pub async fn sample_size(&mut self) -> RedisResult<u64> {
        let gauge = self.instruments().size_gauge().clone();
        sample(self.get_mut(), &gauge).await
    }
}

impl<C: ConnectionLike + Clone + Send + 'static> InstrumentedConnection<C> {
    /// Samples `DBSIZE` into [`CACHE_SIZE_CURRENT`](crate::CACHE_SIZE_CURRENT) now and then every
    /// `every` (at least [`MIN_SIZE_SAMPLE_INTERVAL`]), on a task of the current Tokio runtime,
    /// through a clone of the wrapped connection, until the returned [`SizeSampler`] is dropped.
    ///
    /// The gauge is registered here, with the recorder in effect for the caller. Failures are
    /// logged through `tracing` once when sampling starts failing (at debug level after that)
    /// and the gauge keeps its last value.
    ///
    /// Fails with [`Error::NoRuntime`] outside a Tokio runtime.
    pub fn spawn_size_sampler(&self, every: Duration) -> Result<SizeSampler, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let gauge = self.instruments().size_gauge().clone();
        let mut connection = self.get_ref().clone();
        let every = every.max(MIN_SIZE_SAMPLE_INTERVAL);
        let task = runtime.spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                ticks.tick().await;
                match sample(&mut connection, &gauge).await {
                    Ok(_) => failing = false,
                    Err(error) if !failing => {
                        failing = true;
                        tracing::warn!(
                            target: "paymetrics_redis",
                            %error,
                            "DBSIZE sampling failed; cache.size.current keeps its last value"
                        );
                    }
                    Err(error) => {
                        tracing::debug!(target: "paymetrics_redis", %error, "DBSIZE sampling failed")
                    }
                }
            }
        });
        Ok(SizeSampler { task })
    }
}

async fn sample(connection: &mut (impl ConnectionLike + Send), gauge: &Gauge) -> RedisResult<u64> {
    let keys: u64 = redis::cmd("DBSIZE").query_async(connection).await?;
    gauge.set(keys as f64);
    Ok(keys)
}

/// The task started by [`InstrumentedConnection::spawn_size_sampler`]; dropping it stops the
/// sampling.
#[derive(Debug)]
pub struct SizeSampler {
    task: JoinHandle<()>,
}

impl SizeSampler {
    /// Stops sampling (as dropping does).
    pub fn stop(self) {}
}

impl Drop for SizeSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}
