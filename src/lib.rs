//! Support shared by the demo, the end-to-end tests and the benches: a small DogStatsD
//! receiver that parses messages by the Datadog Agent's rules.

pub mod agent;
