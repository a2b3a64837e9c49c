//! Exact DogStatsD bytes on real sockets: UDP, Unix datagram and Unix stream.

mod common;

use std::time::Duration;

use common::{QUIET, dogstatsd, sorted_lines, start, texts};
use metrics::with_local_recorder;
use paymetrics::{
    dogstatsd::Cardinality,
    message::{AlertType, Event, ServiceCheck, ServiceCheckStatus, TimestampedMetric},
};
use paymetrics_testkit::agent::{
    UdpReceiver, UnixDatagramReceiver, UnixStreamReceiver, parse_payload,
};

#[test]
fn udp_counter_with_every_field() {
    let rx = UdpReceiver::bind().unwrap();
    let metrics = start(
        dogstatsd(&rx.url())
            .prefix("paypal")
            .env("prod")
            .service("payments")
            .version("1.4.0")
            .global_tag("region", "eu")
            .container_id(Some("abc123".into()))
            .external_env("it-false,cn-api")
            .cardinality(Cardinality::Low)
            .origin_detection(true),
    );
    with_local_recorder(metrics.recorder(), || {
        let c = metrics::counter!("business.payment.attempts", "currency" => "EUR", "payment_method" => "card");
        c.increment(2);
        c.increment(1);
    });
    assert!(metrics.flush());
    assert_eq!(
        texts(rx.drain(QUIET)),
        [
            "paypal.business.payment.attempts:3|c|#currency:EUR,payment_method:card,env:prod,service:payments,version:1.4.0,region:eu|c:abc123|e:it-false,cn-api|card:low\n"
        ]
    );
    // Nothing new, nothing sent: counters go out as deltas.
    assert!(metrics.flush());
    assert!(rx.drain(QUIET).is_empty());
}

#[test]
fn udp_gauge_and_histogram_lines() {
    let rx = UdpReceiver::bind().unwrap();
    let metrics = start(dogstatsd(&rx.url()));
    with_local_recorder(metrics.recorder(), || {
        metrics::gauge!("queue.depth.current", "queue" => "payouts").set(2.5);
        let h = metrics::histogram!("business.payment.processing_time");
        for v in [5.0, 5.0, 5.0, 100.0] {
            h.record(v);
        }
    });
    assert!(metrics.flush());
    // 5 and 100 are small integers, counted apart and sent exactly: 5 with weight 3, and the
    // lone 100 (also the exact max).
    assert_eq!(
        sorted_lines(rx.drain(QUIET)),
        [
            "business.payment.processing_time:100|d",
            "business.payment.processing_time:5|d|@0.3333333333333333",
            "queue.depth.current:2.5|g|#queue:payouts",
        ]
    );
    // An active gauge is sent again on the next flush; an empty histogram is not.
    assert!(metrics.flush());
    assert_eq!(
        sorted_lines(rx.drain(QUIET)),
        ["queue.depth.current:2.5|g|#queue:payouts"]
    );
}

#[test]
fn histograms_as_agent_histograms_and_one_exact_sample() {
    let rx = UdpReceiver::bind().unwrap();
    let metrics = start(dogstatsd(&rx.url()).histograms_as_distributions(false));
    with_local_recorder(metrics.recorder(), || {
        metrics::histogram!("api.requests.response_time").record(12.345);
    });
    assert!(metrics.flush());
    assert_eq!(
        texts(rx.drain(QUIET)),
        ["api.requests.response_time:12.345|h\n"]
    );
}

#[test]
fn payloads_are_packed_up_to_the_limit() {
    let rx = UdpReceiver::bind().unwrap();
    let limit = 256;
    let metrics = start(dogstatsd(&rx.url()).max_payload_bytes(limit));
    with_local_recorder(metrics.recorder(), || {
        for i in 0..60 {
            metrics::counter!("packing.test", "series" => format!("{i:03}")).increment(1);
        }
        // 600 distinct values, one sample each: multi-value messages split across payloads.
        let h = metrics::histogram!("packing.histogram");
        for i in 0..600 {
            h.record(1.0 + f64::from(i) * 0.5);
        }
    });
    assert!(metrics.flush());
    let payloads = texts(rx.drain(QUIET));
    assert!(payloads.len() > 2);
    let mut counters = 0;
    let mut samples = 0;
    for (i, p) in payloads.iter().enumerate() {
        assert!(p.len() <= limit && p.ends_with('\n'), "{p:?}");
        for m in parse_payload(p.as_bytes()).unwrap() {
            let paymetrics_testkit::agent::Message::Metric(m) = m else {
                panic!()
            };
            if m.name == "packing.test" {
                counters += 1;
            } else {
                samples += m.values.len() * (1.0 / m.sample_rate) as usize;
            }
        }
        // Packed: the next payload's first message would not have fit in this one.
        if let Some(next) = payloads.get(i + 1) {
            let first = next.split_inclusive('\n').next().unwrap();
            assert!(p.len() + first.len() > limit, "payload {i} had room");
        }
    }
    assert_eq!(counters, 60);
    assert_eq!(samples, 600);
    let multi = payloads
        .iter()
        .flat_map(|p| p.lines())
        .find(|l| l.starts_with("packing.histogram"))
        .unwrap();
    assert!(multi.matches(':').count() > 10, "{multi}");
}

#[test]
fn unix_datagram_exact_bytes() {
    let dir = std::env::temp_dir();
    let rx = UnixDatagramReceiver::bind_in(&dir).unwrap();
    let metrics = start(dogstatsd(&format!("unixgram://{}", rx.path().display())));
    with_local_recorder(metrics.recorder(), || {
        metrics::counter!("cache.operations.count", "operation" => "get").increment(7);
    });
    assert!(metrics.flush());
    assert_eq!(
        texts(rx.drain(QUIET)),
        ["cache.operations.count:7|c|#operation:get\n"]
    );
}

#[test]
fn unix_scheme_detects_a_datagram_socket() {
    let rx = UnixDatagramReceiver::bind_in(&std::env::temp_dir()).unwrap();
    let metrics = start(dogstatsd(&format!("unix://{}", rx.path().display())));
    with_local_recorder(metrics.recorder(), || {
        metrics::counter!("auto.dgram").increment(1)
    });
    assert!(metrics.flush());
    assert_eq!(texts(rx.drain(QUIET)), ["auto.dgram:1|c\n"]);
}

#[test]
fn unix_stream_frames_carry_a_little_endian_length() {
    for scheme in ["unixstream", "unix"] {
        let mut rx = UnixStreamReceiver::bind_in(&std::env::temp_dir()).unwrap();
        let limit = 512;
        let metrics = start(
            dogstatsd(&format!("{scheme}://{}", rx.path().display())).max_payload_bytes(limit),
        );
        with_local_recorder(metrics.recorder(), || {
            for i in 0..40 {
                metrics::counter!("stream.test", "i" => i.to_string()).increment(1);
            }
        });
        assert!(metrics.flush());
        // The receiver strips and checks each 4-byte prefix; a wrong one would desynchronise
        // the frames and fail the parse.
        let payloads = rx.drain(QUIET);
        assert!(payloads.len() > 1, "{scheme}");
        let mut lines = 0;
        for p in &payloads {
            assert!(p.len() <= limit);
            lines += parse_payload(p).unwrap().len();
        }
        assert_eq!(lines, 40, "{scheme}");
    }
}

#[test]
fn events_service_checks_and_timestamped_points() {
    let rx = UdpReceiver::bind().unwrap();
    let metrics = start(dogstatsd(&rx.url()).service("pay"));
    let at = std::time::UNIX_EPOCH + Duration::from_secs(1_764_291_599);
    metrics.send(
        Event::new("payment_success_rate_low", "91.2% < 95%\nsee runbook")
            .alert_type(AlertType::Error)
            .aggregation_key("alerts")
            .tag("severity", "critical"),
    );
    metrics.send(
        ServiceCheck::new(
            "paymetrics.alert.payment_success_rate_low",
            ServiceCheckStatus::Critical,
        )
        .message("below threshold"),
    );
    metrics.send(
        TimestampedMetric::gauge("aggregated.payments.total", 1234.0, at)
            .tag("aggregation", "hourly"),
    );
    metrics.send(TimestampedMetric::count(
        "aggregated.payments.count",
        3.0,
        at,
    ));
    assert!(metrics.flush());
    assert_eq!(
        texts(rx.drain(QUIET)).concat(),
        "_e{24,24}:payment_success_rate_low|91.2% < 95%\\nsee runbook|k:alerts|t:error|#severity:critical,service:pay\n\
         _sc|paymetrics.alert.payment_success_rate_low|2|#service:pay|m:below threshold\n\
         aggregated.payments.total:1234|g|#aggregation:hourly,service:pay|T1764291599\n\
         aggregated.payments.count:3|c|#service:pay|T1764291599\n"
    );
}

#[test]
fn client_telemetry_reports_what_was_sent() {
    let rx = UdpReceiver::bind().unwrap();
    let metrics = start(dogstatsd(&rx.url()).telemetry(Some(Duration::ZERO)));
    with_local_recorder(metrics.recorder(), || {
        metrics::counter!("t.count").increment(1);
        metrics::gauge!("t.gauge").set(1.0);
        metrics::histogram!("t.hist").record(1.0);
        metrics::histogram!("t.hist").record(2.0);
    });
    assert!(metrics.flush());
    let first = rx.drain(QUIET);
    let is_telemetry = |p: &Vec<u8>| p.starts_with(b"datadog.dogstatsd.client.");
    let first_metric_payloads = first.iter().filter(|p| !is_telemetry(p)).count();
    let first_telemetry_payloads = first.len() - first_metric_payloads;
    let lines = sorted_lines(first);
    let tags = format!(
        "client:rust,client_version:{},client_transport:udp",
        env!("CARGO_PKG_VERSION")
    );
    for expected in [
        format!("datadog.dogstatsd.client.metrics:4|c|#{tags}"),
        format!("datadog.dogstatsd.client.metrics_by_type:2|c|#{tags},metrics_type:distribution"),
        format!("datadog.dogstatsd.client.metrics_by_type:1|c|#{tags},metrics_type:gauge"),
        format!("datadog.dogstatsd.client.aggregated_context:3|c|#{tags}"),
        // Telemetry goes out after this flush's payloads, and counts them.
        format!("datadog.dogstatsd.client.packets_sent:{first_metric_payloads}|c|#{tags}"),
    ] {
        assert!(lines.contains(&expected), "{expected} not in {lines:#?}");
    }
    assert!(metrics.flush());
    let second = rx.drain(QUIET);
    let second_metric_payloads = second.iter().filter(|p| !is_telemetry(p)).count();
    let lines = sorted_lines(second);
    let sent = lines
        .iter()
        .find(|l| l.starts_with("datadog.dogstatsd.client.packets_sent:"))
        .unwrap();
    // The first report's own payloads are counted in the second.
    assert_eq!(
        sent,
        &format!(
            "datadog.dogstatsd.client.packets_sent:{}|c|#{tags}",
            first_telemetry_payloads + second_metric_payloads
        )
    );
}

#[test]
fn udp_over_ipv6_and_a_host_name() {
    let v6 = UdpReceiver::bind_to("[::1]:0").unwrap();
    let port = v6.socket().local_addr().unwrap().port();
    let metrics = start(dogstatsd(&format!("udp://[::1]:{port}")));
    with_local_recorder(metrics.recorder(), || {
        metrics::counter!("over.v6").increment(1)
    });
    assert!(metrics.flush());
    assert_eq!(texts(v6.drain(QUIET)), ["over.v6:1|c\n"]);

    let v4 = UdpReceiver::bind().unwrap();
    let port = v4.socket().local_addr().unwrap().port();
    let metrics = start(dogstatsd(&format!("udp://localhost:{port}")));
    with_local_recorder(metrics.recorder(), || {
        metrics::counter!("by.name").increment(1)
    });
    assert!(metrics.flush());
    assert_eq!(texts(v4.drain(QUIET)), ["by.name:1|c\n"]);
}

#[test]
fn a_unix_stream_that_appears_later_is_reconnected() {
    let dir = std::env::temp_dir().join(format!("paymetrics-reconnect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Learn a path, then free it: the agent is not there yet.
    let path = UnixStreamReceiver::bind_in(&dir).unwrap().path().to_owned();
    let metrics = start(dogstatsd(&format!("unixstream://{}", path.display())));
    with_local_recorder(metrics.recorder(), || {
        metrics::counter!("early").increment(1)
    });
    assert!(!metrics.flush(), "nothing was delivered");
    assert_eq!(
        metrics
            .dogstatsd_telemetry()
            .unwrap()
            .packets_dropped_writer,
        1
    );

    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    // The very next flush reconnects: no backoff outlasts a flush.
    with_local_recorder(metrics.recorder(), || {
        metrics::counter!("late").increment(1)
    });
    assert!(metrics.flush());
    assert_eq!(metrics.dogstatsd_telemetry().unwrap().packets_sent, 1);
    let (mut conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(common::DEADLINE)).unwrap();
    let mut len = [0u8; 4];
    std::io::Read::read_exact(&mut conn, &mut len).unwrap();
    let mut payload = vec![0; u32::from_le_bytes(len) as usize];
    std::io::Read::read_exact(&mut conn, &mut payload).unwrap();
    // Everything counted while disconnected was dropped; what arrived is the latest delta.
    assert!(String::from_utf8(payload).unwrap().starts_with("late:"));
    let _ = std::fs::remove_dir_all(&dir);
}
