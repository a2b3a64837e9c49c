//! `paymetrics::init()` configured from the process environment, installed globally.
//!
//! This binary holds a single test: it sets Datadog's variables on its own process before any
//! other thread runs, and installs the one global recorder.

use std::time::Duration;

use paymetrics_testkit::agent::{MetricType, UdpReceiver};

#[test]
fn init_reads_the_environment_and_the_guard_flushes_on_drop() {
    let rx = UdpReceiver::bind().unwrap();
    // SAFETY: this is the only test in this binary and nothing else has started a thread that
    // reads the environment yet.
    unsafe {
        std::env::set_var("DD_DOGSTATSD_URL", rx.url());
        std::env::set_var("DD_SERVICE", "init-test");
        std::env::set_var("DD_ORIGIN_DETECTION_ENABLED", "false");
    }
    let metrics = paymetrics::init().expect("installs");
    metrics::counter!("init.global", "k" => "v").increment(5);
    assert!(matches!(
        paymetrics::init(),
        Err(paymetrics::Error::RecorderAlreadyInstalled)
    ));
    drop(metrics);
    let agg = rx.collect_until(Duration::from_secs(30), |a| {
        a.get(
            "init.global",
            MetricType::Count,
            &["k:v", "service:init-test"],
        )
        .is_some()
    });
    let total = agg
        .get(
            "init.global",
            MetricType::Count,
            &["k:v", "service:init-test"],
        )
        .unwrap();
    assert_eq!(total.count, 5.0);
}
