//! Lifecycle end to end: configuration from the environment, shutdown, no agent, the
//! cardinality guard, idle expiry and attached recorders.

mod common;

use std::time::Duration;

use common::{DEADLINE, QUIET, dogstatsd, dogstatsd_with_env, start, texts};
use metrics::with_local_recorder;
use paymetrics::{OVERFLOW_TAG_KEY, PaymetricsBuilder, export::MemoryExporter};
use paymetrics_testkit::agent::{MetricType, UdpReceiver};

#[test]
fn environment_precedence_url_over_agent_host_explicit_over_both() {
    let url_rx = UdpReceiver::bind().unwrap();
    let host_rx = UdpReceiver::bind().unwrap();
    let explicit_rx = UdpReceiver::bind().unwrap();
    let host_port = host_rx.socket().local_addr().unwrap().port().to_string();
    let url = url_rx.url();
    let env = [
        ("DD_DOGSTATSD_URL", url.as_str()),
        ("DD_AGENT_HOST", "127.0.0.1"),
        ("DD_DOGSTATSD_PORT", host_port.as_str()),
        ("DD_ENV", "staging"),
        ("DD_SERVICE", "payments-api"),
        ("DD_VERSION", "3.1.4"),
    ];
    let send = |builder| {
        let metrics = start(builder);
        with_local_recorder(metrics.recorder(), || {
            metrics::counter!("precedence").increment(1)
        });
        assert!(metrics.flush());
    };
    let line = "precedence:1|c|#env:staging,service:payments-api,version:3.1.4\n";

    send(dogstatsd_with_env(&env));
    assert_eq!(texts(url_rx.drain(QUIET)), [line]);
    assert!(host_rx.drain(QUIET).is_empty());

    send(dogstatsd_with_env(&env[1..]));
    assert_eq!(texts(host_rx.drain(QUIET)), [line]);
    assert!(url_rx.drain(QUIET).is_empty());

    send(
        dogstatsd_with_env(&env)
            .address(explicit_rx.url())
            .service("explicit-svc"),
    );
    assert_eq!(
        texts(explicit_rx.drain(QUIET)),
        ["precedence:1|c|#env:staging,service:explicit-svc,version:3.1.4\n"]
    );
    assert!(url_rx.drain(QUIET).is_empty() && host_rx.drain(QUIET).is_empty());
}

#[test]
fn shutdown_delivers_everything_recorded_before_it() {
    for use_drop in [false, true] {
        let rx = UdpReceiver::bind().unwrap();
        let metrics = start(dogstatsd(&rx.url()));
        with_local_recorder(metrics.recorder(), || {
            for i in 0..2_000u64 {
                metrics::counter!("shutdown.count", "series" => (i % 200).to_string()).increment(1);
                metrics::histogram!("shutdown.latency").record((i % 50) as f64);
            }
            metrics::gauge!("shutdown.gauge").set(42.0);
        });
        // No explicit flush: shutdown (or drop) must do it.
        if use_drop {
            drop(metrics);
        } else {
            assert!(metrics.shutdown());
        }
        let agg = rx.collect_until(DEADLINE, |a| {
            a.named("shutdown.count").map(|(_, t)| t.count).sum::<f64>() >= 2_000.0
                && a.get("shutdown.latency", MetricType::Distribution, &[])
                    .is_some()
        });
        let counted: f64 = agg.named("shutdown.count").map(|(_, t)| t.count).sum();
        assert_eq!(counted, 2_000.0, "drop={use_drop}");
        assert_eq!(agg.named("shutdown.count").count(), 200);
        assert_eq!(
            agg.get("shutdown.latency", MetricType::Distribution, &[])
                .unwrap()
                .count,
            2_000.0
        );
        assert_eq!(
            agg.get("shutdown.gauge", MetricType::Gauge, &[])
                .unwrap()
                .sum,
            42.0
        );
        assert!(agg.errors.is_empty(), "{:?}", agg.errors);
    }
}

#[test]
fn no_agent_on_udp_drops_are_counted_and_the_app_goes_on() {
    // A port that was just free: nothing listens there.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = start(dogstatsd(&format!("udp://127.0.0.1:{port}")));
    for round in 0..6 {
        with_local_recorder(metrics.recorder(), || {
            metrics::counter!("no.agent", "round" => round.to_string()).increment(1)
        });
        // The flush completes, and says nothing was delivered.
        assert!(
            !metrics.flush(),
            "a flush to a closed port delivers nothing"
        );
    }
    let t = metrics.dogstatsd_telemetry().unwrap();
    // Loopback refuses each datagram (ICMP) before the send returns: all six are drops.
    assert_eq!((t.packets_sent, t.packets_dropped_writer), (0, 6), "{t:?}");
    assert_eq!(t.packets_dropped, t.packets_dropped_writer);
    assert!(metrics.shutdown(), "nothing was left to deliver");
}

#[test]
fn no_agent_on_a_missing_unix_socket_drops_are_counted() {
    let path = std::env::temp_dir().join(format!("paymetrics-missing-{}.sock", std::process::id()));
    for scheme in ["unixgram", "unixstream", "unix"] {
        let metrics = start(dogstatsd(&format!("{scheme}://{}", path.display())));
        for _ in 0..3 {
            with_local_recorder(metrics.recorder(), || {
                metrics::counter!("no.socket").increment(1)
            });
            assert!(!metrics.flush(), "{scheme}: nothing was delivered");
        }
        let t = metrics.dogstatsd_telemetry().unwrap();
        assert_eq!(
            (t.packets_sent, t.packets_dropped_writer),
            (0, 3),
            "{scheme}"
        );
        assert!(t.bytes_dropped > 0);
    }
}

#[test]
fn cardinality_cap_folds_new_series_into_one_overflow_series() {
    let rx = UdpReceiver::bind().unwrap();
    let metrics = PaymetricsBuilder::new()
        .flush_interval(Duration::from_secs(3600))
        .max_series_per_metric(100)
        .dogstatsd(dogstatsd(&rx.url()))
        .build()
        .unwrap();
    with_local_recorder(metrics.recorder(), || {
        for user in 0..10_000 {
            // The original strategy's mistake, on purpose: a user id as a tag value.
            metrics::counter!("payments.by_user", "user_id" => user.to_string()).increment(1);
        }
        metrics::counter!("other.metric", "k" => "v").increment(1);
    });
    assert!(metrics.flush());
    let snapshot = metrics.latest_snapshot().unwrap();
    assert_eq!(snapshot.stats.live_series, 101);
    assert_eq!(snapshot.stats.overflow_registrations, 9_900);
    assert_eq!(snapshot.series.len(), 102);
    assert_eq!(
        snapshot
            .counter("payments.by_user", &[(OVERFLOW_TAG_KEY, "true")])
            .unwrap()
            .delta,
        9_900
    );
    let agg = rx.collect_until(DEADLINE, |a| a.named("payments.by_user").count() == 101);
    assert_eq!(agg.named("payments.by_user").count(), 101);
    let overflow = agg
        .get(
            "payments.by_user",
            MetricType::Count,
            &["paymetrics.overflow:true"],
        )
        .unwrap();
    assert_eq!(overflow.count, 9_900.0);
    let total: f64 = agg.named("payments.by_user").map(|(_, t)| t.count).sum();
    assert_eq!(total, 10_000.0, "nothing lost, only folded");
}

#[test]
fn idle_series_expire_and_held_handles_keep_working() {
    let (exporter, reader) = MemoryExporter::new();
    let metrics = PaymetricsBuilder::new()
        .flush_interval(Duration::from_secs(3600))
        .expire_after_idle_flushes(2)
        .without_dogstatsd()
        .exporter(exporter)
        .build()
        .unwrap();
    let held = with_local_recorder(metrics.recorder(), || {
        for i in 0..1_000 {
            metrics::counter!("idle.series", "i" => i.to_string()).increment(1);
            metrics::gauge!("idle.gauge", "i" => i.to_string()).set(1.0);
        }
        metrics::counter!("held.series")
    });
    held.increment(1);
    assert!(metrics.flush());
    assert_eq!(metrics.latest_snapshot().unwrap().stats.live_series, 2_001);
    for _ in 0..3 {
        assert!(metrics.flush());
    }
    let stats = metrics.latest_snapshot().unwrap().stats;
    assert_eq!((stats.live_series, stats.series_expired), (1, 2_000));
    // Idle gauges stopped being active (and exported) before they expired.
    let snapshots = reader.snapshots();
    let idle_gauge = |s: &paymetrics::snapshot::Snapshot| s.gauge("idle.gauge", &[("i", "7")]);
    assert!(idle_gauge(&snapshots[0]).unwrap().active);
    assert!(!idle_gauge(&snapshots[2]).unwrap().active);
    assert!(idle_gauge(&snapshots[3]).is_none());
    held.increment(4);
    assert!(metrics.flush());
    assert_eq!(reader.counter_total("held.series", &[]), 5);
    // An expired key registered again starts a fresh series.
    with_local_recorder(metrics.recorder(), || {
        metrics::counter!("idle.series", "i" => "7").increment(3)
    });
    assert!(metrics.flush());
    assert_eq!(reader.counter_total("idle.series", &[("i", "7")]), 4);
}

#[test]
fn an_attached_recorder_sees_every_registration_once() {
    let debugging = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = debugging.snapshotter();
    let (exporter, reader) = MemoryExporter::new();
    let metrics = PaymetricsBuilder::new()
        .flush_interval(Duration::from_secs(3600))
        .without_dogstatsd()
        .exporter(exporter)
        .attach_recorder(debugging)
        .build()
        .unwrap();
    with_local_recorder(metrics.recorder(), || {
        for _ in 0..10 {
            metrics::counter!("attached.count", "k" => "v").increment(2);
            metrics::gauge!("attached.gauge").set(3.0);
            metrics::histogram!("attached.hist").record(1.5);
        }
    });
    assert!(metrics.flush());
    let seen = paymetrics::testing::Recorded::from_snapshotter(&snapshotter);
    assert_eq!(seen.counter("attached.count", &[("k", "v")]), Some(20));
    assert_eq!(seen.gauge("attached.gauge", &[]), Some(3.0));
    assert_eq!(seen.histogram("attached.hist", &[]).unwrap().len(), 10);
    assert_eq!(reader.counter_total("attached.count", &[("k", "v")]), 20);
}

#[test]
fn metrics_exporter_dogstatsd_attached_beside_the_native_exporter() {
    let native_rx = UdpReceiver::bind().unwrap();
    let peer_rx = UdpReceiver::bind().unwrap();
    let peer = metrics_exporter_dogstatsd::DogStatsDBuilder::default()
        .with_remote_address(peer_rx.socket().local_addr().unwrap().to_string())
        .unwrap()
        .with_flush_interval(Duration::from_millis(100))
        .with_telemetry(false)
        .build()
        .unwrap();
    let metrics = PaymetricsBuilder::new()
        .flush_interval(Duration::from_secs(3600))
        .dogstatsd(dogstatsd(&native_rx.url()))
        .attach_recorder(peer)
        .build()
        .unwrap();
    with_local_recorder(metrics.recorder(), || {
        for i in 0..300u64 {
            metrics::counter!("side.by.side", "shard" => (i % 3).to_string()).increment(1);
        }
    });
    assert!(metrics.flush());
    for rx in [&native_rx, &peer_rx] {
        let agg = rx.collect_until(DEADLINE, |a| {
            a.named("side.by.side").map(|(_, t)| t.count).sum::<f64>() >= 300.0
        });
        for shard in ["shard:0", "shard:1", "shard:2"] {
            assert_eq!(
                agg.get("side.by.side", MetricType::Count, &[shard])
                    .unwrap()
                    .count,
                100.0
            );
        }
    }
}

#[test]
fn an_agent_that_stops_reading_costs_one_timeout_per_flush_not_one_per_payload() {
    // A bound datagram socket nobody reads: its queue fills, then every send would block.
    let dir = std::env::temp_dir();
    let stalled = paymetrics_testkit::agent::UnixDatagramReceiver::bind_in(&dir).unwrap();
    let metrics = PaymetricsBuilder::new()
        .flush_interval(Duration::from_secs(3600))
        .shutdown_timeout(Duration::from_secs(5))
        .max_series_per_metric(50_000)
        .dogstatsd(dogstatsd(&format!(
            "unixgram://{}",
            stalled.path().display()
        )))
        .build()
        .unwrap();
    with_local_recorder(metrics.recorder(), || {
        for i in 0..20_000 {
            metrics::counter!("stalled.agent", "series" => i.to_string()).increment(1);
        }
    });
    // ~77 payloads of 8 KiB at 100 ms each would take ~7 s, over the 5 s bound. The flush
    // says it did not deliver everything; that it completed in time shows in its snapshot and
    // in telemetry that accounts for every payload.
    assert!(
        !metrics.flush(),
        "the stalled agent did not take everything"
    );
    assert!(
        metrics.latest_snapshot().is_some(),
        "the flush completed in time"
    );
    let t = metrics.dogstatsd_telemetry().unwrap();
    assert!(t.packets_sent >= 1, "{t:?}");
    assert!(
        t.packets_dropped_writer >= 50,
        "the rest of the flush is dropped: {t:?}"
    );
    assert_eq!(
        t.packets_sent + t.packets_dropped,
        t.packets_sent + t.packets_dropped_writer
    );
    assert!(metrics.shutdown());
}

#[test]
fn a_flush_interval_of_duration_max_means_flush_on_demand() {
    let (exporter, reader) = MemoryExporter::new();
    let metrics = PaymetricsBuilder::new()
        .flush_interval(Duration::MAX)
        .without_dogstatsd()
        .exporter(exporter)
        .build()
        .unwrap();
    with_local_recorder(metrics.recorder(), || {
        metrics::counter!("on.demand").increment(2)
    });
    assert!(metrics.flush());
    assert_eq!(reader.counter_total("on.demand", &[]), 2);
    assert!(metrics.shutdown());
}
