//! [`CircuitBreakerState`]: how any circuit breaker reports its state to the client layer.

use paymetrics::events::external::CircuitState;

/// A circuit breaker's state, read by
/// [`ExternalServiceMetricsLayer`](super::ExternalServiceMetricsLayer) after every call to set
/// `external_service.circuit_breaker.state` (1 open, 0 closed or half-open).
///
/// Implement it for your breaker's handle, or pass a closure:
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
/// use paymetrics_tower::{CircuitState, ExternalServiceMetricsLayer};
///
/// let open = Arc::new(AtomicBool::new(false)); // however your breaker keeps its state
/// let layer = ExternalServiceMetricsLayer::new("card-processor").circuit_breaker({
///     let open = Arc::clone(&open);
///     move || if open.load(Ordering::Relaxed) { CircuitState::Open } else { CircuitState::Closed }
/// });
/// # drop(layer);
/// ```
pub trait CircuitBreakerState: Send + Sync + 'static {
    /// The breaker's state now.
    fn circuit_state(&self) -> CircuitState;
}

impl<F> CircuitBreakerState for F
where
    F: Fn() -> CircuitState + Send + Sync + 'static,
{
    fn circuit_state(&self) -> CircuitState {
        self()
    }
}
