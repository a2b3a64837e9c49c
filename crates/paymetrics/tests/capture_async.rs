//! `testing::capture_async` on both tokio runtimes, with work on other threads.
//!
//! A test binary of its own: `capture_async` installs a process-wide recorder.

use std::time::Duration;

use paymetrics::{
    events::{BusinessEvents, PaymentAttempt, PaymentMethod, payment},
    testing::capture_async,
};

async fn attempt(events: &BusinessEvents, currency: &str) {
    events.payment_attempt(&PaymentAttempt {
        amount: 10.0,
        currency,
        payment_method: PaymentMethod::Card,
        sender_id: "user-1",
        sender_country: Some("FR"),
        receiver_country: None,
    });
    tokio::task::yield_now().await;
}

#[tokio::test(flavor = "current_thread")]
async fn current_thread_runtime_captures_spawned_tasks() {
    let recorded = capture_async(async {
        let events = BusinessEvents::default();
        let spawned = {
            let events = events.clone();
            tokio::spawn(async move { attempt(&events, "EUR").await })
        };
        attempt(&events, "EUR").await;
        spawned.await.unwrap();
    })
    .await;
    assert_eq!(
        recorded.counter(payment::ATTEMPTS, &[(payment::CURRENCY, "EUR")]),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_thread_runtime_captures_other_workers_and_blocking_threads() {
    let recorded = capture_async(async {
        let events = BusinessEvents::default();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let events = events.clone();
            tasks.push(tokio::spawn(async move { attempt(&events, "JPY").await }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        // The blocking pool's threads are never the test's thread: captured too.
        let test_thread = std::thread::current().id();
        let other = tokio::task::spawn_blocking(move || {
            metrics::counter!("jobs.blocking").increment(1);
            std::thread::current().id() != test_thread
        });
        assert!(other.await.unwrap());
    })
    .await;
    assert_eq!(
        recorded.counter(payment::ATTEMPTS, &[(payment::CURRENCY, "JPY")]),
        Some(16)
    );
    assert_eq!(recorded.counter("jobs.blocking", &[]), Some(1));
}

/// Two captures running at once, on two runtimes (as parallel `#[tokio::test]`s do): each sees
/// only its own metrics, because the second waits for the first.
#[test]
fn concurrent_captures_are_serialised_not_mixed() {
    let run = |name: &'static str, n: u64| {
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_time()
                .build()
                .unwrap();
            rt.block_on(capture_async(async move {
                for _ in 0..n {
                    tokio::spawn(async move { metrics::counter!(name).increment(1) })
                        .await
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }))
        })
    };
    let a = run("capture.a", 20);
    let b = run("capture.b", 30);
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert_eq!(a.names(), ["capture.a"]);
    assert_eq!(b.names(), ["capture.b"]);
    assert_eq!(a.counter("capture.a", &[]), Some(20));
    assert_eq!(b.counter("capture.b", &[]), Some(30));
}

/// Between captures nothing is kept: what is recorded outside one is not in the next.
#[tokio::test(flavor = "current_thread")]
async fn nothing_recorded_between_captures_leaks_into_the_next() {
    let first = capture_async(async { metrics::counter!("between.first").increment(1) }).await;
    metrics::counter!("between.outside").increment(1);
    let second = capture_async(async { metrics::counter!("between.second").increment(1) }).await;
    assert_eq!(first.counter("between.first", &[]), Some(1));
    assert_eq!(second.names(), ["between.second"]);
}

/// Two captures awaited together on one current-thread runtime: the lock is asynchronous, so
/// the second waits without blocking the thread the first needs.
#[tokio::test(flavor = "current_thread")]
async fn joined_captures_on_one_thread_do_not_deadlock() {
    let (a, b) = tokio::join!(
        capture_async(async {
            metrics::counter!("joined.a").increment(1);
            tokio::task::yield_now().await;
            metrics::counter!("joined.a").increment(1);
        }),
        capture_async(async { metrics::counter!("joined.b").increment(1) }),
    );
    assert_eq!(a.names(), ["joined.a"]);
    assert_eq!(a.counter("joined.a", &[]), Some(2));
    assert_eq!(b.names(), ["joined.b"]);
}
