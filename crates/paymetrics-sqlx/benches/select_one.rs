//! `SELECT 1` on an in-memory SQLite pool, bare and through `InstrumentedPool`, in one run, with
//! paymetrics installed as the global recorder (so the wrapped side really records). Two read
//! paths: `fetch_one` (sqlx's `fetch_optional`) and `fetch_all` (`fetch_many`, the stream).
//!
//! After criterion's cases, an interleaved A/B summary is printed: rounds of a batch bare and the
//! same batch wrapped (alternating which goes first), so that drift in the machine's load hits
//! both sides alike. It reports, per query, the median wall time of each side and the median CPU
//! time of the calling thread: all of the wrapper's work happens on that thread, while SQLite
//! runs on sqlx's worker thread, so on a shared machine the CPU time isolates the wrapper's cost
//! from the scheduling noise of a cross-thread round trip.
//!
//! ```text
//! cargo bench -p paymetrics-sqlx --bench select_one -- --warm-up-time 1 --measurement-time 5
//! ```

use std::{hint::black_box, time::Instant};

use criterion::Criterion;
use paymetrics_sqlx::InstrumentedPool;
use sqlx::{Executor, Sqlite, sqlite::SqlitePoolOptions};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs `SELECT 1` `iters` times through `db` and returns the time taken.
fn fetch_one<'p, E>(rt: &tokio::runtime::Runtime, db: E, iters: u64) -> std::time::Duration
where
    E: Executor<'p, Database = Sqlite> + Copy,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(db).await.unwrap();
            black_box(one);
        }
        start.elapsed()
    })
}

fn fetch_all<'p, E>(rt: &tokio::runtime::Runtime, db: E, iters: u64) -> std::time::Duration
where
    E: Executor<'p, Database = Sqlite> + Copy,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let rows: Vec<i32> = sqlx::query_scalar("SELECT 1").fetch_all(db).await.unwrap();
            black_box(rows);
        }
        start.elapsed()
    })
}

fn select_one(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let (bare, wrapped) = pools(rt);
    let (bare, wrapped) = (&*bare, &*wrapped);

    let mut group = c.benchmark_group("select_one");
    group.bench_function("fetch_one/bare", |b| {
        b.iter_custom(|n| fetch_one(rt, bare, n))
    });
    group.bench_function("fetch_one/wrapped", |b| {
        b.iter_custom(|n| fetch_one(rt, wrapped, n))
    });
    group.bench_function("fetch_all/bare", |b| {
        b.iter_custom(|n| fetch_all(rt, bare, n))
    });
    group.bench_function("fetch_all/wrapped", |b| {
        b.iter_custom(|n| fetch_all(rt, wrapped, n))
    });
    group.finish();
}

/// The same in-memory database, bare and wrapped, warmed (statement cache, series).
fn pools(rt: &tokio::runtime::Runtime) -> (Box<sqlx::SqlitePool>, Box<InstrumentedPool<Sqlite>>) {
    let bare = rt.block_on(async {
        SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .expect("in-memory SQLite")
    });
    let wrapped = InstrumentedPool::new(bare.clone());
    fetch_one(rt, &bare, 200);
    fetch_one(rt, &wrapped, 200);
    fetch_all(rt, &bare, 200);
    fetch_all(rt, &wrapped, 200);
    (Box::new(bare), Box::new(wrapped))
}

/// CPU time consumed by the calling thread so far.
fn thread_cpu() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

const ROUNDS: usize = 41;
const BATCH: u64 = 2_000;

/// Median nanoseconds per query over the rounds: (wall, thread CPU).
#[derive(Default)]
struct Side {
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

impl Side {
    fn run(&mut self, f: impl FnOnce() -> std::time::Duration) {
        let cpu = thread_cpu();
        let wall = f();
        let cpu = thread_cpu() - cpu;
        self.wall.push(wall.as_nanos() as f64 / BATCH as f64);
        self.cpu.push(cpu.as_nanos() as f64 / BATCH as f64);
    }

    fn medians(mut self) -> (f64, f64) {
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        (median(&mut self.wall), median(&mut self.cpu))
    }
}

/// Interleaved rounds of `BATCH` queries, bare and wrapped, alternating which goes first.
fn interleaved(
    rt: &tokio::runtime::Runtime,
    bare: &sqlx::SqlitePool,
    wrapped: &InstrumentedPool<Sqlite>,
    stream: bool,
) -> ((f64, f64), (f64, f64)) {
    let (mut b, mut w) = (Side::default(), Side::default());
    for round in 0..ROUNDS {
        let run_bare = |side: &mut Side| {
            side.run(|| {
                if stream {
                    fetch_all(rt, bare, BATCH)
                } else {
                    fetch_one(rt, bare, BATCH)
                }
            })
        };
        let run_wrapped = |side: &mut Side| {
            side.run(|| {
                if stream {
                    fetch_all(rt, wrapped, BATCH)
                } else {
                    fetch_one(rt, wrapped, BATCH)
                }
            })
        };
        if round % 2 == 0 {
            run_bare(&mut b);
            run_wrapped(&mut w);
        } else {
            run_wrapped(&mut w);
            run_bare(&mut b);
        }
    }
    (b.medians(), w.medians())
}

/// Criterion's cases, then (when benchmarking, not under `cargo test`) the A/B summary.
fn main() {
    let _metrics = paymetrics::builder()
        .without_dogstatsd()
        .install()
        .expect("paymetrics");
    let rt = runtime();
    let mut c = Criterion::default().configure_from_args();
    select_one(&mut c, &rt);
    c.final_summary();

    if std::env::args().any(|a| a == "--bench") {
        let (bare, wrapped) = pools(&rt);
        println!(
            "\ninterleaved A/B, median ns per SELECT 1 ({ROUNDS} rounds of {BATCH} each side):"
        );
        println!(
            "{:<10} {:<11} {:>9} {:>9} {:>8} {:>7}",
            "path", "clock", "bare", "wrapped", "added", "ratio"
        );
        for (name, stream) in [("fetch_one", false), ("fetch_all", true)] {
            let ((bw, bc), (ww, wc)) = interleaved(&rt, &bare, &wrapped, stream);
            for (clock, b, w) in [("wall", bw, ww), ("thread cpu", bc, wc)] {
                println!(
                    "{name:<10} {clock:<11} {b:>9.0} {w:>9.0} {:>8.0} {:>7.4}",
                    w - b,
                    w / b
                );
            }
        }
    }
}
