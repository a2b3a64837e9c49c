//! [`ExternalServiceMetricsLayer`]: configuration, shared by every service it wraps.

use std::{fmt, sync::Arc};

use http::StatusCode;
use metrics::SharedString;
use tower::retry::RetryLayer;
use tower_layer::{Layer, Stack};

use super::{CircuitBreakerState, CountRetries, ExternalServiceMetrics};
use crate::server::endpoint_tag;

/// The `endpoint` of calls whose request carries no [`EndpointTemplate`](super::EndpointTemplate).
pub const DEFAULT_ENDPOINT: &str = "unknown";

/// Records one [`ExternalServiceCall`](paymetrics::events::external::ExternalServiceCall) per
/// call through the client service it wraps; see the [module documentation](super).
///
/// Cheap to clone; clones share their configuration.
#[derive(Clone)]
pub struct ExternalServiceMetricsLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) service_name: SharedString,
    pub(crate) default_endpoint: SharedString,
    pub(crate) breaker: Option<Arc<dyn CircuitBreakerState>>,
    pub(crate) is_success: fn(StatusCode) -> bool,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalServiceConfig")
            .field("service_name", &self.service_name)
            .field("default_endpoint", &self.default_endpoint)
            .field(
                "circuit_breaker",
                &self.breaker.as_ref().map(|b| b.circuit_state()),
            )
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ExternalServiceMetricsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ExternalServiceMetricsLayer")
            .field(&self.config)
            .finish()
    }
}

/// The default success rule: see [`ExternalServiceMetricsLayer::success_when`].
fn default_is_success(status: StatusCode) -> bool {
    !status.is_server_error() && status != StatusCode::TOO_MANY_REQUESTS
}

impl ExternalServiceMetricsLayer {
    /// Calls to `service_name` (for example `card-processor`: a name you choose, not a host).
    pub fn new(service_name: impl Into<SharedString>) -> Self {
        Self {
            config: Arc::new(Config {
                service_name: service_name.into(),
                default_endpoint: SharedString::const_str(DEFAULT_ENDPOINT),
                breaker: None,
                is_success: default_is_success,
            }),
        }
    }

    /// The `endpoint` of calls whose request carries no [`EndpointTemplate`](super::EndpointTemplate)
    /// ([`DEFAULT_ENDPOINT`] otherwise); handy for a client that calls one endpoint. Recorded as
    /// [`endpoint_tag`](crate::server::endpoint_tag) writes it, like every template.
    pub fn default_endpoint(mut self, template: impl Into<SharedString>) -> Self {
        let template: SharedString = template.into();
        let endpoint = SharedString::from(endpoint_tag(&template).into_owned());
        Arc::make_mut(&mut self.config).default_endpoint = endpoint;
        self
    }

    /// Reports `breaker`'s state as `external_service.circuit_breaker.state` after each call.
    pub fn circuit_breaker(mut self, breaker: impl CircuitBreakerState) -> Self {
        Arc::make_mut(&mut self.config).breaker = Some(Arc::new(breaker));
        self
    }

    /// Which response statuses count as a successful call (`success:true`). By default, any
    /// status below 500 except 429 Too Many Requests: the service answered, even if the answer
    /// is a decline. Errors of the inner service (connection failures, timeouts, an open
    /// breaker) and calls dropped before they complete are always failures.
    pub fn success_when(mut self, is_success: fn(StatusCode) -> bool) -> Self {
        Arc::make_mut(&mut self.config).is_success = is_success;
        self
    }

    /// This layer outside a `tower::retry::RetryLayer` running `policy` (wrapped in
    /// [`CountRetries`]): one record per logical call, with its retry count. One `.layer(...)`.
    ///
    /// ```
    /// # use std::future::{Ready, ready};
    /// # use http::{Request, Response};
    /// # #[derive(Clone)] struct RetryServerErrors;
    /// # impl<E> tower::retry::Policy<Request<String>, Response<String>, E> for RetryServerErrors {
    /// #     type Future = Ready<()>;
    /// #     fn retry(&mut self, _: &mut Request<String>, _: &mut Result<Response<String>, E>) -> Option<Ready<()>> { None }
    /// #     fn clone_request(&mut self, _: &Request<String>) -> Option<Request<String>> { None }
    /// # }
    /// use paymetrics_tower::ExternalServiceMetricsLayer;
    /// use tower::ServiceBuilder;
    ///
    /// let layers = ServiceBuilder::new()
    ///     .layer(ExternalServiceMetricsLayer::new("card-processor").retry(RetryServerErrors));
    /// # drop(layers);
    /// ```
    pub fn retry<P>(self, policy: P) -> Stack<RetryLayer<CountRetries<P>>, Self> {
        Stack::new(RetryLayer::new(CountRetries::new(policy)), self)
    }
}

impl<S> Layer<S> for ExternalServiceMetricsLayer {
    type Service = ExternalServiceMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ExternalServiceMetrics::new(inner, Arc::clone(&self.config))
    }
}
