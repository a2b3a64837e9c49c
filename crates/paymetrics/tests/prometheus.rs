//! A Prometheus `/metrics` endpoint beside paymetrics: metrics-exporter-prometheus attached with
//! `PaymetricsBuilder::attach_recorder` sees everything recorded through paymetrics, typed
//! events included, and renders it in the exposition format.

use metrics_exporter_prometheus::PrometheusBuilder;
use paymetrics::events::{
    BusinessEvents, PaymentAttempt, PaymentCompletion, PaymentMethod, PaymentStatus,
};

#[test]
fn typed_events_and_facade_metrics_render_as_prometheus_exposition() {
    let prometheus = PrometheusBuilder::new().build_recorder();
    let exposition = prometheus.handle();
    let metrics = paymetrics::builder()
        .without_dogstatsd()
        .attach_recorder(prometheus)
        .build()
        .unwrap();

    metrics::with_local_recorder(metrics.recorder(), || {
        let events = BusinessEvents::default();
        for amount in [12.5, 40.0] {
            events.payment_attempt(&PaymentAttempt {
                amount,
                currency: "EUR",
                payment_method: PaymentMethod::Card,
                sender_id: "user-1",
                sender_country: Some("FR"),
                receiver_country: Some("DE"),
            });
        }
        events.payment_completion(&PaymentCompletion {
            status: PaymentStatus::Completed,
            amount: 40.0,
            fees: None,
            currency: "EUR",
            payment_method: PaymentMethod::Card,
            processing_time_ms: Some(120.0),
        });
        metrics::gauge!("settlement.queue.depth", "queue" => "sepa").set(7.0);
    });

    let text = exposition.render();
    let lines: Vec<&str> = text.lines().collect();
    let has = |line: &str| lines.contains(&line);
    assert!(has("# TYPE business_payment_attempts counter"), "{text}");
    assert!(
        has(
            "business_payment_attempts{currency=\"EUR\",payment_method=\"card\",amount_range=\"small\",sender_country=\"FR\",receiver_country=\"DE\"} 2"
        ),
        "{text}"
    );
    assert!(
        has(
            "business_payment_amount_sum{currency=\"EUR\",payment_method=\"card\",amount_range=\"small\",sender_country=\"FR\",receiver_country=\"DE\"} 52.5"
        ),
        "{text}"
    );
    assert!(
        has(
            "business_payment_success_rate{status=\"completed\",currency=\"EUR\",payment_method=\"card\",processing_time_bucket=\"normal\",success=\"true\"} 1"
        ),
        "{text}"
    );
    assert!(has("settlement_queue_depth{queue=\"sepa\"} 7"), "{text}");
}
