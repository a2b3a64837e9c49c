//! Test support shared by paymetrics' crates, their end-to-end tests and the benches; never
//! published, only ever a dev-dependency.
//!
//! * [`agent`]: a stand-in for the Datadog Agent's DogStatsD intake (UDP and Unix-socket
//!   receivers, a parser that follows the Agent's rules, and an aggregate of what arrived, as
//!   the Agent would compute it).

pub mod agent;
