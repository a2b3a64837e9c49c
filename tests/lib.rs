//! End-to-end tests that span paymetrics' crates; the tests are this package's test targets
//! (`faults.rs`: the fault suite). Tests that exercise one crate live in that crate.

/// Every Rust block of the README, compiled and run as a doctest (`cargo test --doc -p
/// paymetrics-e2e`): this package's dev-dependencies see every crate the README uses.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
