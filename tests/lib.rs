//! End-to-end tests that span paymetrics' crates; the tests are this package's test targets
//! (`faults.rs`: the fault suite). Tests that exercise one crate live in that crate.
