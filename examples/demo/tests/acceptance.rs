//! The demo is an acceptance test: its end-of-run checks compare what the load generator saw
//! with what arrived over DogStatsD (requests, payments, rows, outcomes, revenue, packets), and
//! it exits non-zero when one fails. This runs it as the README's first command does.

use std::process::Command;

#[test]
fn the_demo_runs_and_every_end_of_run_check_passes() {
    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        // The demo's own listener, whatever this machine's environment says.
        .env_remove("DD_DOGSTATSD_URL")
        .env_remove("DD_AGENT_HOST")
        .env_remove("REDIS_URL")
        .output()
        .expect("the demo starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("All checks pass."),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
