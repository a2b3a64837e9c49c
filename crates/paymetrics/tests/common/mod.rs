//! Helpers shared by the end-to-end tests.
#![allow(dead_code, unreachable_pub)]

use std::{collections::HashMap, time::Duration};

use paymetrics::{Paymetrics, PaymetricsBuilder, dogstatsd::DogStatsdBuilder};

/// Generous: the machine is a shared 2-core box.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// How long a receiver waits for silence before it stops draining.
pub const QUIET: Duration = Duration::from_millis(300);

/// A DogStatsD builder that ignores the process environment and this machine's cgroup, with
/// telemetry off: the datagrams depend only on what the test sets.
pub fn dogstatsd(address: &str) -> DogStatsdBuilder {
    DogStatsdBuilder::new()
        .address(address)
        .env_lookup(|_| None)
        .origin_detection(false)
        .telemetry(None)
}

/// The same, reading its variables from `vars`.
pub fn dogstatsd_with_env(vars: &[(&str, &str)]) -> DogStatsdBuilder {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    DogStatsdBuilder::new()
        .env_lookup(move |k| vars.get(k).cloned())
        .origin_detection(false)
        .telemetry(None)
}

/// paymetrics with a flush interval long enough that only explicit flushes happen.
pub fn start(dogstatsd: DogStatsdBuilder) -> Paymetrics {
    PaymetricsBuilder::new()
        .flush_interval(Duration::from_secs(3600))
        .dogstatsd(dogstatsd)
        .build()
        .expect("paymetrics starts")
}

/// Payloads as text.
pub fn texts(payloads: Vec<Vec<u8>>) -> Vec<String> {
    payloads
        .into_iter()
        .map(|p| String::from_utf8(p).expect("UTF-8 payload"))
        .collect()
}

/// Every line of every payload, sorted (series order within a flush is unspecified).
pub fn sorted_lines(payloads: Vec<Vec<u8>>) -> Vec<String> {
    let mut lines: Vec<String> = texts(payloads)
        .iter()
        .flat_map(|p| p.lines().map(str::to_owned))
        .collect();
    lines.sort();
    lines
}
