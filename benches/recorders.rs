//! Recording cost of paymetrics against `metrics-exporter-dogstatsd` 0.9.8 and a bare atomic.
//!
//! Every case runs three ways in one process, each installed the same way with
//! [`metrics::with_local_recorder`]:
//!
//! * `atomic`: a relaxed `AtomicU64::fetch_add` (the baseline; a no-op recorder is installed);
//! * `metrics-exporter-dogstatsd`: `DogStatsDBuilder::default()` sending to a local UDP socket;
//! * `paymetrics`: `PaymetricsBuilder::new()` with its DogStatsD exporter sending to a local UDP
//!   socket and the environment ignored.
//!
//! After the run (in `cargo bench` mode) a table of median times and ratios, read back from
//! criterion's estimates of this very run, is printed. See `benches/README.md`.

use std::{
    hint::black_box,
    net::UdpSocket,
    path::{Path, PathBuf},
    sync::{
        Barrier,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant, SystemTime},
};

use criterion::{BatchSize, Bencher, Criterion, Throughput};
use metrics::{NoopRecorder, Recorder, counter, gauge, histogram};
use metrics_exporter_dogstatsd::{DogStatsDBuilder, DogStatsDRecorder};
use paymetrics::{Paymetrics, PaymetricsBuilder, dogstatsd::DogStatsdBuilder};

const ATOMIC: &str = "atomic";
const MED: &str = "metrics-exporter-dogstatsd";
const PAY: &str = "paymetrics";
const FUNCTIONS: [&str; 3] = [ATOMIC, MED, PAY];
/// Control for the thread cases: one atomic per thread, on its own cache line.
const ATOMIC_PER_THREAD: &str = "atomic_per_thread";
/// The interleaved ratio of paymetrics' cached handle to the bare atomic (for information).
const HANDLE_VS_ATOMIC: &str = "counter_cached_handle_vs_atomic";

#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

const METHODS: [&str; 4] = ["card", "sepa", "paypal", "apple_pay"];
const VALUES: [f64; 8] = [0.8, 1.7, 3.2, 12.5, 48.0, 95.0, 230.0, 1250.0];

/// The recorders under test, each sending to its own unread local UDP socket.
struct Recorders {
    dogstatsd: DogStatsDRecorder,
    paymetrics: Paymetrics,
    _sinks: [UdpSocket; 2],
}

fn sink() -> (UdpSocket, String) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a local UDP socket");
    let address = socket.local_addr().expect("bound socket").to_string();
    (socket, address)
}

fn paymetrics(address: &str, builder: PaymetricsBuilder) -> Paymetrics {
    builder
        .dogstatsd(
            DogStatsdBuilder::new()
                .address(format!("udp://{address}"))
                .env_lookup(|_| None),
        )
        .build()
        .expect("build paymetrics")
}

impl Recorders {
    fn new() -> Self {
        let (dsd_sink, dsd_address) = sink();
        let (pay_sink, pay_address) = sink();
        let dogstatsd = DogStatsDBuilder::default()
            .with_remote_address(&dsd_address)
            .expect("address")
            .build()
            .expect("build metrics-exporter-dogstatsd");
        Self {
            dogstatsd,
            paymetrics: paymetrics(&pay_address, PaymetricsBuilder::new()),
            _sinks: [dsd_sink, pay_sink],
        }
    }
}

/// Runs `routine` under each recorder, after the bare-atomic baseline, in one group.
fn compare(
    c: &mut Criterion,
    recorders: &Recorders,
    group: &str,
    mut routine: impl FnMut(&mut Bencher<'_>),
) {
    let mut g = c.benchmark_group(group);
    g.bench_function(ATOMIC, |b| {
        let cell = AtomicU64::new(0);
        metrics::with_local_recorder(&NoopRecorder, || b.iter(|| cell.fetch_add(1, Relaxed)));
    });
    g.bench_function(MED, |b| {
        metrics::with_local_recorder(&recorders.dogstatsd, || routine(b));
    });
    g.bench_function(PAY, |b| {
        metrics::with_local_recorder(recorders.paymetrics.recorder(), || routine(b));
    });
    g.finish();
}

/// A recorder the bench's threads can share.
type Shared<'a> = &'a (dyn Recorder + Sync);

/// `threads` threads, each with `recorder` installed, share `2 * iters` calls of
/// `f(thread index)`; returns the wall time, thread start included.
fn spread(threads: u64, iters: u64, recorder: Shared<'_>, f: &(dyn Fn(usize) + Sync)) -> Duration {
    let per_thread = 2 * iters / threads;
    let barrier = Barrier::new(threads as usize);
    let start = Instant::now();
    std::thread::scope(|s| {
        for thread in 0..threads as usize {
            let barrier = &barrier;
            s.spawn(move || {
                metrics::with_local_recorder(recorder, || {
                    barrier.wait();
                    for _ in 0..per_thread {
                        f(thread);
                    }
                });
            });
        }
    });
    start.elapsed()
}

/// What the thread cases call: a cached handle, or the `counter!` macro itself.
#[derive(Clone, Copy, PartialEq)]
enum Calls {
    Handle,
    Macro,
}

/// One labelled counter incremented `2N` times by `threads` threads, through a cached handle
/// or through `counter!` with 5 static labels (each call a lookup).
fn threads_group(
    c: &mut Criterion,
    recorders: &Recorders,
    group: &str,
    threads: u64,
    calls: Calls,
) {
    let mut g = c.benchmark_group(group);
    // One iteration is two increments, whatever the thread count.
    g.throughput(Throughput::Elements(2));
    g.bench_function(ATOMIC, |b| {
        let cell = AtomicU64::new(0);
        let f = |_| {
            cell.fetch_add(1, Relaxed);
        };
        b.iter_custom(|iters| spread(threads, iters, &NoopRecorder, &f));
    });
    // Control: each thread on its own cache line; what this machine's cores give right now.
    g.bench_function(ATOMIC_PER_THREAD, |b| {
        let cells: Vec<Padded> = (0..threads).map(|_| Padded::default()).collect();
        let f = |thread: usize| {
            cells[thread].0.fetch_add(1, Relaxed);
        };
        b.iter_custom(|iters| spread(threads, iters, &NoopRecorder, &f));
    });
    let routine = |b: &mut Bencher<'_>, recorder: Shared<'_>| {
        let handle = metrics::with_local_recorder(recorder, || {
            counter!("bench.threads", "method" => "card", "currency" => "EUR", "status" => "200",
                "region" => "eu-west-1", "merchant_tier" => "gold")
        });
        let f = |_| match calls {
            Calls::Handle => handle.increment(1),
            Calls::Macro => counter_threads_5_labels(),
        };
        b.iter_custom(|iters| spread(threads, iters, recorder, &f));
    };
    g.bench_function(MED, |b| routine(b, &recorders.dogstatsd));
    g.bench_function(PAY, |b| routine(b, recorders.paymetrics.recorder()));
    g.finish();
}

/// Fresh label values for `register_new_series`: every call is a series never seen before.
fn fresh_labels() -> [String; 5] {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let i = NEXT.fetch_add(1, Relaxed);
    [
        METHODS[(i & 3) as usize].to_owned(),
        ["EUR", "USD", "GBP", "JPY"][((i >> 2) & 3) as usize].to_owned(),
        format!("{}", 200 + (i >> 4) % 5),
        format!("eu-west-{}", (i >> 5) % 3),
        format!("m{i:08}"),
    ]
}

fn register_group(c: &mut Criterion, recorders: &Recorders) {
    // A dedicated paymetrics whose cardinality cap does not fold new series into the overflow
    // series: every registration below creates a real series, as it does in the other exporter.
    let (_sink, address) = sink();
    let uncapped = paymetrics(
        &address,
        PaymetricsBuilder::new().max_series_per_metric(usize::MAX),
    );
    let mut g = c.benchmark_group("register_new_series");
    g.bench_function(ATOMIC, |b| {
        let cell = AtomicU64::new(0);
        metrics::with_local_recorder(&NoopRecorder, || b.iter(|| cell.fetch_add(1, Relaxed)));
    });
    let routine = |b: &mut Bencher<'_>| {
        b.iter_batched(
            fresh_labels,
            |[method, currency, status, region, merchant]| {
                counter!("bench.register", "method" => method, "currency" => currency,
                    "status" => status, "region" => region, "merchant" => merchant)
                .increment(1);
            },
            BatchSize::SmallInput,
        );
    };
    // paymetrics first: the other exporter never frees a series, and its forwarder keeps
    // re-sending every one of them every 3 s for the rest of the process.
    g.bench_function(PAY, |b| {
        metrics::with_local_recorder(uncapped.recorder(), || routine(b));
    });
    g.bench_function(MED, |b| {
        metrics::with_local_recorder(&recorders.dogstatsd, || routine(b));
    });
    g.finish();
}

// ---- the cases: one call each, `i` the call number ---------------------------------------

fn counter_static_no_labels(_: usize) {
    counter!("bench.static").increment(1);
}

fn counter_static_5_labels(_: usize) {
    counter!("bench.static_labels", "method" => "card", "currency" => "EUR",
        "status" => "200", "region" => "eu-west-1", "merchant_tier" => "gold")
    .increment(1);
}

/// The thread cases' macro call; the same series as their cached handle.
fn counter_threads_5_labels() {
    counter!("bench.threads", "method" => "card", "currency" => "EUR", "status" => "200",
        "region" => "eu-west-1", "merchant_tier" => "gold")
    .increment(1);
}

fn counter_formatted_5_labels(i: usize) {
    let status = 200 + (i & 1) as u16;
    // Five owned values built per call: three with format!, two copied strings.
    counter!("bench.formatted", "method" => METHODS[i & 3].to_owned(),
        "currency" => "EUR".to_owned(), "status" => format!("{status}"),
        "region" => format!("eu-west-{}", 1), "merchant_tier" => format!("tier-{}", 2))
    .increment(1);
}

fn histogram_5_labels(i: usize) {
    histogram!("bench.histogram", "method" => "card", "currency" => "EUR",
        "status" => "200", "region" => "eu-west-1", "merchant_tier" => "gold")
    .record(black_box(VALUES[i & 7]));
}

fn gauge_set_5_labels(i: usize) {
    gauge!("bench.gauge", "method" => "card", "currency" => "EUR",
        "status" => "200", "region" => "eu-west-1", "merchant_tier" => "gold")
    .set(black_box(VALUES[i & 7]));
}

/// One call of a case; its argument is the call number.
type Case = fn(usize);

/// The macro cases, compared paymetrics against metrics-exporter-dogstatsd.
const MACRO_CASES: [(&str, Case); 5] = [
    ("counter_static_no_labels", counter_static_no_labels),
    ("counter_static_5_labels", counter_static_5_labels),
    ("counter_formatted_5_labels", counter_formatted_5_labels),
    ("gauge_set_5_labels", gauge_set_5_labels),
    // Last: metrics-exporter-dogstatsd keeps every sample until its next flush.
    ("histogram_5_labels", histogram_5_labels),
];

fn cached_handle(recorder: &dyn Recorder) -> metrics::Counter {
    metrics::with_local_recorder(recorder, || {
        counter!("bench.handle", "method" => "card", "currency" => "EUR",
            "status" => "200", "region" => "eu-west-1", "merchant_tier" => "gold")
    })
}

/// Criterion's loop over one case (monomorphised, so the case inlines).
fn iterate(b: &mut Bencher<'_>, case: impl Fn(usize)) {
    let mut i = 0usize;
    b.iter(|| {
        i = i.wrapping_add(1);
        case(i);
    });
}

/// The cases that leave no backlog behind in either exporter.
fn benches_light(c: &mut Criterion, recorders: &Recorders) {
    compare(c, recorders, "counter_static_no_labels", |b| {
        iterate(b, counter_static_no_labels);
    });
    compare(c, recorders, "counter_static_5_labels", |b| {
        iterate(b, counter_static_5_labels);
    });
    compare(c, recorders, "counter_formatted_5_labels", |b| {
        iterate(b, counter_formatted_5_labels);
    });
    compare(c, recorders, "counter_cached_handle", |b| {
        // Registered under the recorder `compare` installed.
        let handle = counter!("bench.handle", "method" => "card", "currency" => "EUR",
            "status" => "200", "region" => "eu-west-1", "merchant_tier" => "gold");
        b.iter(|| handle.increment(1));
    });
    compare(c, recorders, "gauge_set_5_labels", |b| {
        iterate(b, gauge_set_5_labels);
    });
    threads_group(c, recorders, "cached_handle_1_thread_2N", 1, Calls::Handle);
    threads_group(
        c,
        recorders,
        "cached_handle_2_threads_N_each",
        2,
        Calls::Handle,
    );
    threads_group(c, recorders, "macro_5_labels_1_thread_2N", 1, Calls::Macro);
    threads_group(
        c,
        recorders,
        "macro_5_labels_2_threads_N_each",
        2,
        Calls::Macro,
    );
}

/// The cases after which metrics-exporter-dogstatsd's forwarder thread stays busy: it keeps every
/// histogram sample (tens of millions in a criterion run) until its next flush formats them
/// all, and it never frees a series, re-sending every registered one every 3 s for the rest of
/// the process. On two cores that thread takes the second core, so these run last.
fn benches_heavy(c: &mut Criterion, recorders: &Recorders, settle: Duration) {
    compare(c, recorders, "histogram_5_labels", |b| {
        iterate(b, histogram_5_labels);
    });
    std::thread::sleep(settle); // let the forwarder drain the samples before the next group
    register_group(c, recorders);
}

// ---- interleaved A/B checks ----------------------------------------------------------------

/// Rounds of each interleaved check; the median round is reported.
const ROUNDS: usize = 21;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Seconds for `calls` calls of `case` under `recorder`.
fn time_calls(recorder: &dyn Recorder, case: &dyn Fn(usize), calls: usize) -> f64 {
    metrics::with_local_recorder(recorder, || {
        let start = Instant::now();
        for i in 0..calls {
            case(black_box(i));
        }
        start.elapsed().as_secs_f64()
    })
}

/// Median over back-to-back rounds of `time(b) / time(a)`, alternating which goes first.
/// Machine load drifts between criterion's benchmarks, a few seconds apart; two halves of one
/// round see nearly the same load.
fn interleaved_ratio(a: &dyn Fn() -> f64, b: &dyn Fn() -> f64) -> f64 {
    a();
    b();
    median(
        (0..ROUNDS)
            .map(|round| {
                if round % 2 == 0 {
                    let ta = a();
                    b() / ta
                } else {
                    let tb = b();
                    tb / a()
                }
            })
            .collect(),
    )
}

/// paymetrics / metrics-exporter-dogstatsd per macro case and for the cached handle, and
/// paymetrics' cached handle / the bare atomic, each by interleaved rounds.
fn interleaved_ratios(recorders: &Recorders) -> Vec<(&'static str, f64)> {
    const CALLS: usize = 100_000;
    let cell = AtomicU64::new(0);
    let handle = cached_handle(recorders.paymetrics.recorder());
    let med_handle = cached_handle(&recorders.dogstatsd);
    let pm_handle = || time_calls(&NoopRecorder, &|_| handle.increment(1), 10 * CALLS);
    let vs_med = interleaved_ratio(
        &|| time_calls(&NoopRecorder, &|_| med_handle.increment(1), 10 * CALLS),
        &pm_handle,
    );
    let vs_atomic = interleaved_ratio(
        &|| {
            time_calls(
                &NoopRecorder,
                &|_| {
                    cell.fetch_add(1, Relaxed);
                },
                10 * CALLS,
            )
        },
        &pm_handle,
    );
    let mut out = vec![
        ("counter_cached_handle", vs_med),
        (HANDLE_VS_ATOMIC, vs_atomic),
    ];
    for &(name, case) in &MACRO_CASES {
        let ratio = interleaved_ratio(&|| time_calls(&recorders.dogstatsd, &case, CALLS), &|| {
            time_calls(recorders.paymetrics.recorder(), &case, CALLS)
        });
        out.push((name, ratio));
    }
    out
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
    // target/release/deps/recorders-<hash>
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

fn fmt_ns(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

fn fmt_ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

fn verdict(value: Option<f64>, ok: impl Fn(f64) -> bool) -> &'static str {
    match value {
        Some(v) if ok(v) => "met",
        Some(_) => "MISSED",
        None => "-",
    }
}

fn print_table(since: SystemTime, interleaved: &[(&str, f64)]) {
    let dir = criterion_dir();
    let get = |group: &str| FUNCTIONS.map(|f| median_ns(&dir, group, f, since));
    println!("\nMedian ns per operation, this run (criterion estimates in {dir:?}).");
    println!(
        "`interleaved` is the median of {ROUNDS} back-to-back rounds (see the README): the same ratio\n\
         measured so that both sides see the same machine load.\n"
    );
    println!(
        "| case | atomic ns | m-e-d ns | paymetrics ns | m-e-d / atomic | paymetrics / atomic | paymetrics / m-e-d | target | criterion | interleaved | verdict |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|");
    // Every target is paymetrics / m-e-d <= 1.0 in this run.
    let cases = [
        "counter_static_no_labels",
        "counter_static_5_labels",
        "counter_formatted_5_labels",
        "counter_cached_handle",
        "histogram_5_labels",
        "gauge_set_5_labels",
        "register_new_series",
    ];
    for group in cases {
        let [a, m, p] = get(group);
        let ratio = p.zip(m).map(|(p, m)| p / m);
        let inter = interleaved
            .iter()
            .find(|(name, _)| *name == group)
            .map(|(_, r)| *r);
        let ok = |r: f64| r <= 1.0;
        let verdict = match (verdict(ratio, ok), verdict(inter, ok)) {
            (c, "-") => c.to_owned(),
            (c, i) if c == i => c.to_owned(),
            (c, i) => format!("{c} (criterion), {i} (interleaved)"),
        };
        println!(
            "| {group} | {} | {} | {} | {} | {} | {} | pm/med <= 1.0 | {} | {} | {verdict} |",
            fmt_ns(a),
            fmt_ns(m),
            fmt_ns(p),
            fmt_ratio(m, a),
            fmt_ratio(p, a),
            fmt_ratio(p, m),
            ratio.map_or("-".into(), |r| format!("{r:.2}")),
            inter.map_or("-".into(), |r| format!("{r:.2}")),
        );
    }
    if let Some((_, r)) = interleaved.iter().find(|(n, _)| *n == HANDLE_VS_ATOMIC) {
        println!(
            "\nCached handle / bare atomic, interleaved: {r:.2} (for information: the floor a handle \
             behind `metrics`' `Arc<dyn CounterFn>` can reach)."
        );
    }
    for (what, prefix) in [
        ("a cached handle to one labelled counter", "cached_handle"),
        (
            "`counter!` with 5 static labels (one series)",
            "macro_5_labels",
        ),
    ] {
        print_threads(&dir, since, what, prefix);
    }
}

/// The criterion table of 1 thread against 2 threads for the groups `{prefix}_*`.
fn print_threads(dir: &Path, since: SystemTime, what: &str, prefix: &str) {
    // Thread groups: one iteration is two increments.
    let threads = |group: String| {
        [ATOMIC, ATOMIC_PER_THREAD, MED, PAY]
            .map(|f| median_ns(dir, &group, f, since).map(|v| v / 2.0))
    };
    let one = threads(format!("{prefix}_1_thread_2N"));
    let two = threads(format!("{prefix}_2_threads_N_each"));
    if one[3].is_none() && two[3].is_none() {
        return;
    }
    println!(
        "\n{what}, wall ns per increment over all threads. The control `atomic_per_thread` gives\n\
         each thread its own cache line: the scaling the machine allows.\n"
    );
    println!(
        "| threads | atomic (shared) | atomic_per_thread (control) | m-e-d | paymetrics | paymetrics / atomic | paymetrics / m-e-d |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, [a, ctl, m, p]) in [("1 thread, 2N increments", one), ("2 threads, N each", two)] {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} |",
            fmt_ns(a),
            fmt_ns(ctl),
            fmt_ns(m),
            fmt_ns(p),
            fmt_ratio(p, a),
            fmt_ratio(p, m),
        );
    }
    let speedup = |i: usize| one[i].zip(two[i]).map(|(o, t)| o / t);
    let x = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}x"));
    println!(
        "| 2-thread / 1-thread throughput | {} | {} | {} | {} | target: paymetrics >= 1.5x | {} |",
        x(speedup(0)),
        x(speedup(1)),
        x(speedup(2)),
        x(speedup(3)),
        verdict(speedup(3), |s| s >= 1.5),
    );
}

/// Interleaved 1-thread / 2-thread rounds, outside criterion: machine load drifts between
/// criterion's groups, so the ratio of two groups can mislead; the median of back-to-back
/// pairs is steadier. Returns the median speedup (1-thread time / 2-thread time).
fn interleaved_speedup(
    recorder: Shared<'_>,
    one: &(dyn Fn(usize) + Sync),
    two: &(dyn Fn(usize) + Sync),
) -> f64 {
    const ITERS: u64 = 1_000_000; // 2,000,000 increments per measurement
    median(
        (0..ROUNDS)
            .map(|_| {
                let t1 = spread(1, ITERS, recorder, one);
                let t2 = spread(2, ITERS, recorder, two);
                t1.as_secs_f64() / t2.as_secs_f64()
            })
            .collect(),
    )
}

/// 2-thread / 1-thread throughput by interleaved rounds: shared atomic, per-thread atomics
/// (control), then metrics-exporter-dogstatsd and paymetrics through a cached handle and
/// through `counter!` with 5 static labels.
fn thread_speedups(recorders: &Recorders) -> [f64; 6] {
    let shared = [AtomicU64::new(0), AtomicU64::new(0)];
    let cells: Vec<Padded> = (0..2).map(|_| Padded::default()).collect();
    let handles = |recorder: &dyn Recorder| {
        metrics::with_local_recorder(recorder, || {
            // 1-thread rounds use a series no two threads ever touch (paymetrics: never striped).
            [counter!("bench.scaling.one"), counter!("bench.scaling.two")]
        })
    };
    let med = handles(&recorders.dogstatsd);
    let pay = handles(recorders.paymetrics.recorder());
    let atomic = interleaved_speedup(
        &NoopRecorder,
        &|_| {
            shared[0].fetch_add(1, Relaxed);
        },
        &|_| {
            shared[1].fetch_add(1, Relaxed);
        },
    );
    let control = interleaved_speedup(
        &NoopRecorder,
        &|t| {
            cells[t].0.fetch_add(1, Relaxed);
        },
        &|t| {
            cells[t].0.fetch_add(1, Relaxed);
        },
    );
    let m = interleaved_speedup(&NoopRecorder, &|_| med[0].increment(1), &|_| {
        med[1].increment(1)
    });
    let p = interleaved_speedup(&NoopRecorder, &|_| pay[0].increment(1), &|_| {
        pay[1].increment(1)
    });
    // The macro: likewise a series of its own for the 1-thread rounds.
    let one = |_| {
        counter!("bench.scaling_macro.one", "method" => "card", "currency" => "EUR",
            "status" => "200", "region" => "eu-west-1", "merchant_tier" => "gold")
        .increment(1);
    };
    let two = |_| {
        counter!("bench.scaling_macro.two", "method" => "card", "currency" => "EUR",
            "status" => "200", "region" => "eu-west-1", "merchant_tier" => "gold")
        .increment(1);
    };
    let m_macro = interleaved_speedup(&recorders.dogstatsd, &one, &two);
    let p_macro = interleaved_speedup(recorders.paymetrics.recorder(), &one, &two);
    [atomic, control, m, p, m_macro, p_macro]
}

fn print_thread_speedups([atomic, control, m, p, m_macro, p_macro]: [f64; 6]) {
    println!(
        "\nInterleaved check (median of {ROUNDS} back-to-back pairs, 2,000,000 increments each):\n\n\
         | 2-thread / 1-thread throughput | atomic (shared) | atomic_per_thread (control) | m-e-d | paymetrics | paymetrics / control | verdict (>= 1.5x) |\n\
         |---|---:|---:|---:|---:|---:|---|\n\
         | cached handle | {atomic:.2}x | {control:.2}x | {m:.2}x | {p:.2}x | {:.2} | {} |\n\
         | `counter!`, 5 labels | | | {m_macro:.2}x | {p_macro:.2}x | {:.2} | {} |",
        p / control,
        verdict(Some(p), |s| s >= 1.5),
        p_macro / control,
        verdict(Some(p_macro), |s| s >= 1.5),
    );
}

fn main() {
    let since = SystemTime::now();
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let recorders = Recorders::new();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    benches_light(&mut c, &recorders);
    // The interleaved checks run before the heavy cases, for the reason given there.
    let checks = benchmarking.then(|| {
        let speedups = thread_speedups(&recorders);
        (interleaved_ratios(&recorders), speedups)
    });
    let settle = if benchmarking {
        Duration::from_secs(6)
    } else {
        Duration::ZERO
    };
    benches_heavy(&mut c, &recorders, settle);
    c.final_summary();
    if let Some((ratios, speedups)) = checks {
        print_table(since, &ratios);
        print_thread_speedups(speedups);
    }
}
