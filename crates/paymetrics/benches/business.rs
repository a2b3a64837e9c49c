//! Recording a payment attempt: the typed API against the same metrics through plain `metrics`
//! macros with `String` tags built per call (the common way), both into a paymetrics recorder.
//!
//! Functions of the `payment_attempt` group, each cycling through the same eight attempts:
//!
//! * `typed`: [`BusinessEvents::payment_attempt`], cached handles, the sender counted in the
//!   in-process uniques sketch;
//! * `typed_no_uniques`: the same with an empty sender id, so the metrics alone;
//! * `plain_strings`: `counter!` and `histogram!` with five labels formatted per call
//!   (uppercased currency, categorised amount, `to_string` everywhere);
//! * `plain_strings_uniques`: the same plus the uniques sketch, apples to apples with `typed`.
//!
//! In `cargo bench` mode, interleaved rounds outside criterion then print the typed/plain ratio
//! (target: at most 0.5): the machine is shared, and back-to-back rounds cancel its drift
//! better than two criterion functions measured seconds apart. Last, 1- and 2-thread
//! throughput of the typed API beside bare cached handles (what the recorder itself allows).
//!
//! ```text
//! cargo bench -p paymetrics --bench business -- --warm-up-time 1 --measurement-time 3
//! ```

use std::{
    hint::black_box,
    sync::{Arc, Barrier},
    time::{Duration, Instant},
};

use criterion::Criterion;
use metrics::{Counter, Histogram, Label};
use paymetrics::{
    PaymetricsBuilder,
    events::{BusinessEvents, PaymentAttempt, PaymentMethod, payment},
    uniques::Uniques,
};

/// One attempt as an application holds it.
struct Input {
    amount: f64,
    currency: &'static str,
    method: PaymentMethod,
    sender_id: &'static str,
    sender_country: &'static str,
    receiver_country: &'static str,
}

const INPUTS: [Input; 8] = [
    input(12.5, "eur", PaymentMethod::Card, "user-1001", "DE", "FR"),
    input(48.0, "EUR", PaymentMethod::Wallet, "user-1002", "FR", "FR"),
    input(230.0, "USD", PaymentMethod::Card, "user-1003", "US", "GB"),
    input(3.2, "usd", PaymentMethod::Bank, "user-1004", "US", "US"),
    input(1_250.0, "GBP", PaymentMethod::Card, "user-1005", "GB", "IE"),
    input(95.0, "EUR", PaymentMethod::Card, "user-1006", "NL", "DE"),
    input(
        15_000.0,
        "CHF",
        PaymentMethod::Bank,
        "user-1007",
        "CH",
        "DE",
    ),
    input(0.8, "EUR", PaymentMethod::Wallet, "user-1008", "ES", "ES"),
];

const fn input(
    amount: f64,
    currency: &'static str,
    method: PaymentMethod,
    sender_id: &'static str,
    sender_country: &'static str,
    receiver_country: &'static str,
) -> Input {
    Input {
        amount,
        currency,
        method,
        sender_id,
        sender_country,
        receiver_country,
    }
}

fn typed(events: &BusinessEvents, a: &Input, with_uniques: bool) {
    events.payment_attempt(&PaymentAttempt {
        amount: a.amount,
        currency: a.currency,
        payment_method: a.method,
        sender_id: if with_uniques { a.sender_id } else { "" },
        sender_country: Some(a.sender_country),
        receiver_country: Some(a.receiver_country),
    });
}

fn categorize_amount(amount: f64) -> &'static str {
    match amount {
        a if a < 10.0 => "micro",
        a if a < 100.0 => "small",
        a if a < 1_000.0 => "medium",
        a if a < 10_000.0 => "large",
        _ => "enterprise",
    }
}

/// The common way: tags formatted into fresh strings for every event.
fn plain(a: &Input) {
    let labels = vec![
        Label::new(payment::CURRENCY, a.currency.to_uppercase()),
        Label::new(payment::PAYMENT_METHOD, a.method.as_str().to_string()),
        Label::new(
            payment::AMOUNT_RANGE,
            categorize_amount(a.amount).to_string(),
        ),
        Label::new(payment::SENDER_COUNTRY, a.sender_country.to_string()),
        Label::new(payment::RECEIVER_COUNTRY, a.receiver_country.to_string()),
    ];
    metrics::counter!(payment::ATTEMPTS, labels.clone()).increment(1);
    metrics::histogram!(payment::AMOUNT, labels).record(a.amount);
}

fn benches(c: &mut Criterion, events: &BusinessEvents, uniques: &Uniques) {
    let mut group = c.benchmark_group("payment_attempt");
    let mut i = 0usize;
    let mut next = move || {
        i = i.wrapping_add(1);
        &INPUTS[i & 7]
    };
    group.bench_function("typed", |b| {
        b.iter(|| typed(events, black_box(next()), true))
    });
    group.bench_function("typed_no_uniques", |b| {
        b.iter(|| typed(events, black_box(next()), false))
    });
    group.bench_function("plain_strings", |b| b.iter(|| plain(black_box(next()))));
    group.bench_function("plain_strings_uniques", |b| {
        b.iter(|| {
            let a = black_box(next());
            plain(a);
            uniques.observe_sender(a.sender_id);
        })
    });
    group.finish();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median ns per event of `f` and of `g`, over interleaved rounds.
fn interleaved(mut f: impl FnMut(&Input), mut g: impl FnMut(&Input)) -> (f64, f64) {
    const ROUNDS: usize = 21;
    const EVENTS: usize = 40_000;
    let round = |h: &mut dyn FnMut(&Input)| {
        let start = Instant::now();
        for i in 0..EVENTS {
            h(black_box(&INPUTS[i & 7]));
        }
        start.elapsed().as_nanos() as f64 / EVENTS as f64
    };
    let (mut fs, mut gs) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        fs.push(round(&mut f));
        gs.push(round(&mut g));
    }
    (median(fs), median(gs))
}

/// Records a thread's event `i`: `(thread, i)`.
type Recording<'a> = dyn Fn(usize, usize) + Sync + 'a;

/// Events per second with 1 thread and summed over 2 threads: medians of interleaved rounds.
/// `record(thread, i)` records a thread's event `i`.
fn scaling(record: &Recording<'_>) -> (f64, f64) {
    const ROUNDS: usize = 11;
    const EVENTS: usize = 200_000;
    let round = |n: usize| {
        let barrier = Barrier::new(n);
        let start = Instant::now();
        std::thread::scope(|scope| {
            for t in 0..n {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    for i in 0..EVENTS {
                        record(t, i);
                    }
                });
            }
        });
        (n * EVENTS) as f64 / start.elapsed().as_secs_f64()
    };
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        one.push(round(1));
        two.push(round(2));
    }
    (median(one), median(two))
}

fn main() {
    let paymetrics = PaymetricsBuilder::new()
        .without_dogstatsd()
        .build()
        .expect("build paymetrics");
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    metrics::with_local_recorder(paymetrics.recorder(), || {
        // Created inside the recorder's scope: its handles register with this recorder.
        let events = BusinessEvents::default();
        let uniques = Arc::clone(events.uniques());
        benches(&mut c, &events, &uniques);
        c.final_summary();
        if !benchmarking {
            return;
        }

        let (typed_ns, plain_ns) = interleaved(|a| typed(&events, a, true), plain);
        let (bare_ns, plain_u_ns) = interleaved(
            |a| typed(&events, a, false),
            |a| {
                plain(a);
                uniques.observe_sender(a.sender_id);
            },
        );
        println!("\nInterleaved rounds, median ns per payment attempt:");
        println!("| case | ns |");
        println!("|---|---|");
        println!("| typed | {typed_ns:.1} |");
        println!("| typed_no_uniques | {bare_ns:.1} |");
        println!("| plain_strings | {plain_ns:.1} |");
        println!("| plain_strings_uniques | {plain_u_ns:.1} |");
        let ratio = typed_ns / plain_ns;
        println!(
            "\ntyped / plain_strings = {ratio:.3} (target <= 0.5: {})",
            if ratio <= 0.5 { "met" } else { "MISSED" }
        );
        println!(
            "typed / plain_strings_uniques = {:.3}; typed_no_uniques / plain_strings = {:.3}",
            typed_ns / plain_u_ns,
            bare_ns / plain_ns
        );

        // The series are warm: threads without a recorder of their own record through the
        // cached handles into this recorder. (Plain macros could not: they would find none.)
        // Bare handles, registered once here, show what the recorder's cells themselves allow.
        let handles: Vec<(Counter, Histogram)> = INPUTS
            .iter()
            .map(|a| {
                let labels = [Label::new(payment::SENDER_COUNTRY, a.sender_country)];
                (
                    metrics::counter!(payment::ATTEMPTS, labels.iter()),
                    metrics::histogram!(payment::AMOUNT, labels.iter()),
                )
            })
            .collect();
        let bare = |t: usize, i: usize| {
            let (counter, histogram) = &handles[(i + t) & 7];
            counter.increment(1);
            histogram.record(black_box(INPUTS[(i + t) & 7].amount));
        };
        let no_uniques =
            |t: usize, i: usize| typed(&events, black_box(&INPUTS[(i + t) & 7]), false);
        let with_uniques =
            |t: usize, i: usize| typed(&events, black_box(&INPUTS[(i + t) & 7]), true);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!("\nThroughput, M events/s ({cores} cores, shared machine):");
        println!("| case | 1 thread | 2 threads | 2 / 1 |");
        println!("|---|---|---|---|");
        let cases: [(&str, &Recording<'_>); 3] = [
            ("bare handles (counter + histogram)", &bare),
            ("typed_no_uniques", &no_uniques),
            ("typed", &with_uniques),
        ];
        for (name, record) in cases {
            let (one, two) = scaling(record);
            println!(
                "| {name} | {:.1} | {:.1} | {:.2} |",
                one / 1e6,
                two / 1e6,
                two / one
            );
        }
    });
}
