//! Benchmarks of paymetrics against peer crates; the benches are this package's bench targets
//! (see `README.md` beside this file for the commands and the latest figures).
