//! Flushing on SIGTERM and SIGINT: [`shutdown_signal`], for graceful shutdown in tokio servers.
//!
//! Every Kubernetes rollout stops a pod with SIGTERM. A process that dies of it never drops the
//! [`Paymetrics`](crate::Paymetrics) guard, so the last flush interval of metrics (the ones that
//! explain the deploy) is lost. Serving until the signal, then dropping the guard, sends them.

/// Completes when the process receives SIGTERM or SIGINT (Ctrl-C).
///
/// Hand it to axum's `with_graceful_shutdown` (or `select!` on it), then drop the
/// [`Paymetrics`](crate::Paymetrics) guard, or call [`close`](crate::Paymetrics::close), to
/// flush what was recorded before the signal:
///
/// ```no_run
/// # async fn run(app: axum::Router) -> Result<(), Box<dyn std::error::Error>> {
/// let metrics = paymetrics::init()?;
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
/// axum::serve(listener, app)
///     .with_graceful_shutdown(paymetrics::shutdown_signal())
///     .await?;
/// drop(metrics); // the final flush, bounded by the shutdown timeout
/// # Ok(()) }
/// ```
///
/// It needs a tokio runtime with its I/O driver enabled (`#[tokio::main]` has it). A signal
/// that cannot be listened for (no driver, a sandbox forbidding it) is logged once and then
/// ignored: the future waits for the other one instead of completing at once. Available with
/// the `tokio` feature.
pub async fn shutdown_signal() {
    use std::{future::Future, pin::pin, task::Poll};
    use tokio::signal::unix::{SignalKind, signal};

    let mut interrupt = Some(Box::pin(tokio::signal::ctrl_c()));
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(stream) => Some(stream),
        Err(e) => {
            tracing::warn!(target: "paymetrics", "cannot listen for SIGTERM: {e}");
            None
        }
    };
    let received = std::future::poll_fn(|cx| {
        if let Some(ctrl_c) = interrupt.as_mut() {
            match ctrl_c.as_mut().poll(cx) {
                Poll::Ready(Ok(())) => return Poll::Ready("SIGINT"),
                Poll::Ready(Err(e)) => {
                    tracing::warn!(target: "paymetrics", "cannot listen for SIGINT: {e}");
                    interrupt = None;
                }
                Poll::Pending => {}
            }
        }
        if let Some(term) = terminate.as_mut()
            && term.poll_recv(cx).is_ready()
        {
            return Poll::Ready("SIGTERM");
        }
        Poll::Pending
    });
    let name = pin!(received).await;
    tracing::info!(target: "paymetrics", "{name} received: shutting down, metrics flush when the guard drops");
}
