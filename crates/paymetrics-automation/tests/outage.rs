//! A Redis that goes down while an instance has nothing to write, and comes back empty: the
//! store's health comes from real round trips (an empty write still reaches Redis), the
//! scheduler logs one "unreachable" warning and one "reachable again" line, not one per tick,
//! and counts no write that Redis did not acknowledge. Alone in its binary, because it installs
//! the process's log subscriber. Prints what it measured (`cargo test -- --nocapture`).
#![cfg(feature = "redis")]

mod common;

use std::time::Duration;

use common::{
    DEADLINE, advance_to,
    server::{Logs, Server, instance},
    t,
};
use paymetrics::clock::ManualClock;
use tokio::time::{Instant, sleep};
use tracing::Level;

#[tokio::test(flavor = "current_thread")]
async fn with_redis_down_and_nothing_to_write_health_is_real_and_logs_do_not_flap() {
    let logs = Logs::default();
    tracing::subscriber::set_global_default(logs.clone()).expect("the only test here");
    let mut server = Server::start().await;
    let clock = ManualClock::new(t(10, 0, 0));
    let a = instance(&clock, &server, "quiet", "a", Duration::from_secs(10));
    advance_to(&clock, &[&a], t(10, 0, 0)).await;
    // Nothing recorded: the write is empty, and still a round trip.
    assert_eq!(a.automation().store_reachable(), Some(true));
    assert_eq!(a.automation().stats().writes, 1);

    server.kill();
    let mut tick = t(10, 0, 30);
    for _ in 0..10 {
        advance_to(&clock, &[&a], tick).await;
        tick += Duration::from_secs(30);
    }
    let down = a.automation().stats();
    assert_eq!(a.automation().store_reachable(), Some(false));
    assert_eq!(
        down.writes, 1,
        "no write counted during the outage: {down:?}"
    );
    assert_eq!(down.write_failures, 10, "{down:?}");
    assert_eq!(down.store_outages, 1, "{down:?}");

    assert!(server.restart().await, "redis-server restarts on its port");
    let restarted = Instant::now();
    let deadline = Instant::now() + DEADLINE;
    while a.automation().store_reachable() != Some(true) {
        assert!(Instant::now() < deadline, "the store did not come back");
        advance_to(&clock, &[&a], tick).await;
        tick += Duration::from_secs(30);
        sleep(Duration::from_millis(20)).await;
    }
    let healthy_after = restarted.elapsed();
    let up = a.automation().stats();
    assert_eq!(up.writes, 2, "{up:?}");
    assert_eq!(up.store_outages, 1, "{up:?}");
    let unreachable = logs.count(Level::WARN, "unreachable");
    let reachable_again = logs.count(Level::INFO, "reachable again");
    assert_eq!((unreachable, reachable_again), (1, 1));
    eprintln!(
        "outage with nothing to write: {} failed writes, {} acknowledged during the outage, \
         {unreachable} 'unreachable' and {reachable_again} 'reachable again' lines, \
         {} outage(s); healthy {healthy_after:?} after redis-server answered",
        up.write_failures,
        down.writes - 1,
        up.store_outages,
    );
    a.shutdown().await;
}
