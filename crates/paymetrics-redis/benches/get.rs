//! The cost of instrumentation on `GET`, bare and wrapped, in one run.
//!
//! * `get_local_redis`: `GET` of a 32-byte value on the Redis of `PAYMETRICS_TEST_REDIS_URL`
//!   (default `redis://127.0.0.1:6379`) through a `MultiplexedConnection`, bare and wrapped in
//!   an `InstrumentedConnection`. What a user pays, round trip included. Timed in pairs: each
//!   timed GET right after an untimed one of the other kind, so that the machine's background
//!   load, which moves the round trip by more than the overhead, falls on both alike.
//! * `get_in_memory`: the same `GET` through the typed API on a connection that answers at
//!   once from memory, bare and wrapped: the instrumentation's own cost, without the network
//!   noise that is larger than it.
//!
//! Both record into a paymetrics recorder installed with `metrics::with_local_recorder`, on a
//! current-thread Tokio runtime. After the run (in `cargo bench` mode) a table of medians,
//! differences and ratios read back from criterion's estimates of this run is printed, then an
//! interleaved check: rounds of bare and wrapped GETs back to back, on the wall clock and on the
//! thread's CPU clock, whose per-round differences see the same background load. See
//! `benches/README.md`.

use std::{
    hint::black_box,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use criterion::Criterion;
use paymetrics::PaymetricsBuilder;
use paymetrics_redis::InstrumentedConnection;
use redis::{
    AsyncCommands, Cmd, Pipeline, RedisFuture, Value,
    aio::{ConnectionLike, MultiplexedConnection},
};

const KEY: &str = "bench:paymetrics-redis:get";
const BARE: &str = "bare";
const WRAPPED: &str = "wrapped";
const GROUPS: [&str; 2] = ["get_local_redis", "get_in_memory"];

/// A connection that answers every command with the same value, at once.
#[derive(Clone)]
struct InMemory {
    value: Vec<u8>,
}

impl ConnectionLike for InMemory {
    fn req_packed_command<'a>(&'a mut self, _cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let value = Value::BulkString(self.value.clone());
        Box::pin(async move { Ok(value) })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        _offset: usize,
        _count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let values = vec![Value::BulkString(self.value.clone()); pipeline.len()];
        Box::pin(async move { Ok(values) })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// The time of `iters` calls of `timed`, each run right after an untimed call of `other`.
fn paired<T, U>(
    iters: u64,
    mut timed: impl FnMut() -> T,
    mut other: impl FnMut() -> U,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        black_box(other());
        let start = Instant::now();
        black_box(timed());
        total += start.elapsed();
    }
    total
}

async fn get(connection: &mut (impl ConnectionLike + Send + Sync)) -> Option<Vec<u8>> {
    connection.get(KEY).await.expect("GET")
}

/// The connections under test.
struct Connections {
    redis: MultiplexedConnection,
    redis_wrapped: InstrumentedConnection<MultiplexedConnection>,
    memory: InMemory,
    memory_wrapped: InstrumentedConnection<InMemory>,
}

impl Connections {
    fn new(rt: &tokio::runtime::Runtime) -> Self {
        let url = std::env::var("PAYMETRICS_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let client = redis::Client::open(url).expect("a Redis URL");
        let mut redis = rt
            .block_on(client.get_multiplexed_async_connection())
            .expect("connect to the bench Redis (PAYMETRICS_TEST_REDIS_URL)");
        let value = vec![b'x'; 32];
        let _: () = rt
            .block_on(redis.set_ex(KEY, &value, 3600))
            .expect("SET the bench key");
        let memory = InMemory { value };
        Self {
            redis_wrapped: InstrumentedConnection::new(redis.clone()),
            redis,
            memory_wrapped: InstrumentedConnection::new(memory.clone()),
            memory,
        }
    }
}

fn benches(c: &mut Criterion, rt: &tokio::runtime::Runtime, conns: &mut Connections) {
    let Connections {
        redis,
        redis_wrapped,
        memory,
        memory_wrapped,
    } = conns;

    // Paired: each timed GET follows one GET of the other kind, so load from the rest of the
    // machine lands on both sides alike (the round trip's noise is larger than the overhead).
    let mut g = c.benchmark_group("get_local_redis");
    g.bench_function(BARE, |b| {
        b.iter_custom(|iters| {
            paired(
                iters,
                || rt.block_on(get(redis)),
                || rt.block_on(get(redis_wrapped)),
            )
        })
    });
    g.bench_function(WRAPPED, |b| {
        b.iter_custom(|iters| {
            paired(
                iters,
                || rt.block_on(get(redis_wrapped)),
                || rt.block_on(get(redis)),
            )
        })
    });
    g.finish();

    let mut g = c.benchmark_group("get_in_memory");
    g.bench_function(BARE, |b| b.iter(|| black_box(rt.block_on(get(memory)))));
    g.bench_function(WRAPPED, |b| {
        b.iter(|| black_box(rt.block_on(get(memory_wrapped))))
    });
    g.finish();
}

// ---- the interleaved check ---------------------------------------------------------------

/// CPU time consumed by the calling thread.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and the clock id is a constant libc defines.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Mean wall and thread-CPU ns per call of `f` over `n` calls.
fn measure(n: u32, f: &mut dyn FnMut()) -> (f64, f64) {
    let (wall, cpu) = (Instant::now(), thread_cpu_time());
    for _ in 0..n {
        f();
    }
    let per_call = |d: Duration| d.as_nanos() as f64 / f64::from(n);
    (per_call(wall.elapsed()), per_call(thread_cpu_time() - cpu))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `ROUNDS` rounds of `n` calls of each, back to back, the order alternating between rounds.
/// Returns, per clock (wall, CPU): median bare, median wrapped, median of the rounds'
/// differences. Differences within a round see the same background load.
fn interleaved(n: u32, bare: &mut dyn FnMut(), wrapped: &mut dyn FnMut()) -> [[f64; 3]; 2] {
    const ROUNDS: usize = 15;
    let mut rows = vec![];
    for round in 0..ROUNDS {
        let (b, w) = if round % 2 == 0 {
            let b = measure(n, bare);
            (b, measure(n, wrapped))
        } else {
            let w = measure(n, wrapped);
            (measure(n, bare), w)
        };
        rows.push((b, w));
    }
    let clock = |pick: fn(&(f64, f64)) -> f64| {
        [
            median(rows.iter().map(|(b, _)| pick(b)).collect()),
            median(rows.iter().map(|(_, w)| pick(w)).collect()),
            median(rows.iter().map(|(b, w)| pick(w) - pick(b)).collect()),
        ]
    };
    [clock(|t| t.0), clock(|t| t.1)]
}

fn print_interleaved(rt: &tokio::runtime::Runtime, conns: &mut Connections) {
    let Connections {
        redis,
        redis_wrapped,
        memory,
        memory_wrapped,
    } = conns;
    let redis_figures = interleaved(
        2_000,
        &mut || {
            black_box(rt.block_on(get(redis)));
        },
        &mut || {
            black_box(rt.block_on(get(redis_wrapped)));
        },
    );
    let memory_figures = interleaved(
        100_000,
        &mut || {
            black_box(rt.block_on(get(memory)));
        },
        &mut || {
            black_box(rt.block_on(get(memory_wrapped)));
        },
    );
    println!(
        "\nInterleaved check: 15 rounds per case, bare and wrapped back to back in each round;"
    );
    println!(
        "medians over rounds, ns per GET. \"added\" is the median of the rounds' differences.\n"
    );
    println!(
        "| case | clock | bare ns | wrapped ns | added ns | wrapped / bare | target | verdict |"
    );
    println!("|---|---|---:|---:|---:|---:|---|---|");
    for (case, figures) in [
        ("get_local_redis", redis_figures),
        ("get_in_memory", memory_figures),
    ] {
        for (clock, [bare, wrapped, added]) in ["wall", "thread CPU"].into_iter().zip(figures) {
            let verdict = if added < 1000.0 { "met" } else { "MISSED" };
            println!(
                "| {case} | {clock} | {bare:.0} | {wrapped:.0} | {added:.0} | {:.3} | added < 1000 ns | {verdict} |",
                wrapped / bare
            );
        }
    }
}

// ---- the summary table -------------------------------------------------------------------

/// Where criterion writes its estimates (its own lookup order, the `cargo metadata` step aside).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    // target/release/deps/get-<hash>
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("criterion")))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// The median in ns of `group/function`, if this run measured it (written after `since`).
fn median_ns(dir: &Path, group: &str, function: &str, since: SystemTime) -> Option<f64> {
    let path = dir.join(group).join(function).join("new/estimates.json");
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    if modified < since {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn print_table(since: SystemTime) {
    let dir = criterion_dir();
    println!("\nMedian ns per GET, this run (criterion estimates in {dir:?}).\n");
    println!("| case | bare ns | wrapped ns | added ns | wrapped / bare | target | verdict |");
    println!("|---|---:|---:|---:|---:|---|---|");
    for group in GROUPS {
        let bare = median_ns(&dir, group, BARE, since);
        let wrapped = median_ns(&dir, group, WRAPPED, since);
        let cell = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.0}"));
        let added = bare.zip(wrapped).map(|(b, w)| w - b);
        let ratio = bare
            .zip(wrapped)
            .map_or_else(|| "-".into(), |(b, w)| format!("{:.3}", w / b));
        let verdict = match added {
            Some(added) if added < 1000.0 => "met",
            Some(_) => "MISSED",
            None => "-",
        };
        println!(
            "| {group} | {} | {} | {} | {ratio} | added < 1000 ns | {verdict} |",
            cell(bare),
            cell(wrapped),
            cell(added),
        );
    }
}

fn main() {
    let since = SystemTime::now();
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let metrics = PaymetricsBuilder::new()
        .without_dogstatsd()
        .build()
        .expect("build paymetrics");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut conns = Connections::new(&rt);
    metrics::with_local_recorder(metrics.recorder(), || {
        benches(&mut c, &rt, &mut conns);
        c.final_summary();
        if benchmarking {
            print_table(since);
            print_interleaved(&rt, &mut conns);
        }
    });
}
