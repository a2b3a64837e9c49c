//! The paymetrics demo: simulated payment traffic, sent over DogStatsD to a listener started
//! in process (or to your agent when `DD_AGENT_HOST` or `DD_DOGSTATSD_URL` is set).

use std::time::Duration;

use paymetrics::{PaymetricsBuilder, dogstatsd::DogStatsdBuilder};
use paymetrics_workspace::agent::{Aggregate, UdpReceiver};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let external = std::env::var_os("DD_AGENT_HOST").is_some()
        || std::env::var_os("DD_DOGSTATSD_URL").is_some();
    let receiver = UdpReceiver::bind()?;
    let mut dogstatsd = DogStatsdBuilder::new().service("paymetrics-demo");
    if !external {
        dogstatsd = dogstatsd.address(receiver.url());
    }
    let metrics = PaymetricsBuilder::new()
        .flush_interval(Duration::from_secs(1))
        .dogstatsd(dogstatsd)
        .install()?;
    for i in 0..1000u32 {
        let currency = ["USD", "EUR", "GBP"][i as usize % 3];
        metrics::counter!("business.payment.attempts", "currency" => currency).increment(1);
        metrics::histogram!("business.payment.amount", "currency" => currency)
            .record(10.0 + f64::from(i % 990));
    }
    metrics.flush();
    let mut aggregate = Aggregate::default();
    for payload in receiver.drain(Duration::from_millis(300)) {
        aggregate.ingest(&payload);
    }
    for (key, total) in &aggregate.series {
        println!("{key:<80} count={:<8} sum={}", total.count, total.sum);
    }
    metrics.shutdown();
    Ok(())
}
