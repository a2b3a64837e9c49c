//! Minor units through the typed events: the recorded values are the exact decimal amounts.

use paymetrics::{
    events::{
        BusinessEvents, ConfirmedFraud, FraudAction, FraudDetection, PaymentCompletion,
        PaymentMethod, PaymentStatus, fraud, payment,
    },
    money::Money,
    testing,
};

#[test]
fn completions_and_fraud_losses_record_minor_units_exactly() {
    // (minor units of the amount, of the fee, currency, amount and fee in major units)
    let cases: [(i64, i64, &str, f64, f64); 4] = [
        (12_345, 152, "EUR", 123.45, 1.52),
        (12_345, 99, "JPY", 12_345.0, 99.0),
        (12_345, 7, "KWD", 12.345, 0.007),
        (10_001, 1, "usd", 100.01, 0.01),
    ];
    for (amount, fee, currency, expected_amount, expected_fee) in cases {
        let (amount, fee) = (
            Money::from_minor(amount, currency),
            Money::from_minor(fee, currency),
        );
        let recorded = testing::capture(|| {
            let events = BusinessEvents::default();
            events.payment_completion(&PaymentCompletion {
                status: PaymentStatus::Completed,
                amount: amount.into(),
                fees: Some(fee.into()),
                currency: amount.currency(),
                payment_method: PaymentMethod::Card,
                processing_time_ms: None,
            });
            events.fraud_detection(&FraudDetection {
                action: FraudAction::Block,
                risk_score: 95.0,
                model_version: None,
                detection_time_ms: None,
                amount: Some(amount.into()),
            });
            events.confirmed_fraud(&ConfirmedFraud {
                blocked: true,
                amount: amount.into(),
            });
        });
        let currency = [(payment::CURRENCY, amount.currency())];
        assert_eq!(
            recorded.histogram(payment::TRANSACTION_VALUE, &currency),
            Some(vec![expected_amount]),
            "{amount}"
        );
        assert_eq!(
            recorded.histogram(payment::FEES, &currency),
            Some(vec![expected_fee]),
            "{fee}"
        );
        assert_eq!(
            recorded.histogram(fraud::LOSS_PREVENTED, &[]),
            Some(vec![expected_amount])
        );
        assert_eq!(
            recorded.histogram(fraud::CONFIRMED_AMOUNT, &[(fraud::BLOCKED, "true")]),
            Some(vec![expected_amount])
        );
    }
}
