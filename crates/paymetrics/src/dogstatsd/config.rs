//! DogStatsD configuration: the builder, Datadog's environment variables and the plain
//! [`DogStatsdConfig`] everything downstream reads.
//!
//! The environment variables it reads, and their precedence, are documented on the public
//! [module page](super#configuration).

use std::{fmt, path::PathBuf, str::FromStr, sync::Arc, time::Duration};

use super::{origin, sanitize};
use crate::Error;

/// Default DogStatsD port.
pub const DEFAULT_PORT: u16 = 8125;
/// Default payload size on UDP: a 1500-byte MTU minus IP and UDP headers, as Datadog's clients use.
pub const DEFAULT_UDP_PAYLOAD_BYTES: usize = 1432;
/// Default payload size on Unix sockets (the Agent's default receive buffer).
pub const DEFAULT_UNIX_PAYLOAD_BYTES: usize = 8192;
/// The largest UDP payload (65535 minus the largest IPv4 and UDP headers).
pub const MAX_UDP_PAYLOAD_BYTES: usize = 65467;
/// Default interval between client telemetry reports.
pub const DEFAULT_TELEMETRY_INTERVAL: Duration = Duration::from_secs(10);

/// Where the Agent listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentAddress {
    /// `udp://host:port`: IPv4, IPv6 (`udp://[::1]:8125`) or a host name, resolved again after a
    /// failed send.
    Udp {
        /// Host name or IP literal (without brackets).
        host: String,
        /// Port.
        port: u16,
    },
    /// `unix:///path`: a datagram socket, or a stream socket if the path says so when connecting.
    Unix(PathBuf),
    /// `unixgram:///path`: a Unix datagram socket.
    UnixDatagram(PathBuf),
    /// `unixstream:///path`: a Unix stream socket; each payload carries a 4-byte little-endian
    /// length prefix.
    UnixStream(PathBuf),
}

impl AgentAddress {
    /// Whether this is a Unix socket (which changes the default payload size).
    pub fn is_unix(&self) -> bool {
        !matches!(self, AgentAddress::Udp { .. })
    }
}

impl fmt::Display for AgentAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentAddress::Udp { host, port } if host.contains(':') => {
                write!(f, "udp://[{host}]:{port}")
            }
            AgentAddress::Udp { host, port } => write!(f, "udp://{host}:{port}"),
            AgentAddress::Unix(p) => write!(f, "unix://{}", p.display()),
            AgentAddress::UnixDatagram(p) => write!(f, "unixgram://{}", p.display()),
            AgentAddress::UnixStream(p) => write!(f, "unixstream://{}", p.display()),
        }
    }
}

impl FromStr for AgentAddress {
    type Err = Error;

    /// Parses Datadog's URL scheme.
    ///
    /// ```
    /// use paymetrics::dogstatsd::AgentAddress;
    /// let a: AgentAddress = "udp://[::1]:9125".parse().unwrap();
    /// assert_eq!(a, AgentAddress::Udp { host: "::1".into(), port: 9125 });
    /// assert!("tcp://localhost:8125".parse::<AgentAddress>().is_err());
    /// ```
    fn from_str(url: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::InvalidAddress {
            address: url.to_owned(),
            reason: why.to_owned(),
        };
        let unix_path = |rest: &str| {
            if rest.starts_with('/') {
                Ok(PathBuf::from(rest))
            } else {
                Err(bad(
                    "a Unix socket URL needs an absolute path, as in unix:///var/run/datadog/dsd.socket",
                ))
            }
        };
        if let Some(rest) = url.strip_prefix("udp://") {
            let rest = rest.trim_end_matches('/');
            let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
                let (host, after) = v6
                    .split_once(']')
                    .ok_or_else(|| bad("an IPv6 address needs a closing ']'"))?;
                (host, after.strip_prefix(':'))
            } else {
                match rest.rsplit_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (rest, None),
                }
            };
            if host.is_empty() {
                return Err(bad("the host is empty"));
            }
            let port = match port {
                None => DEFAULT_PORT,
                Some(p) => p
                    .parse()
                    .map_err(|_| bad("the port must be a number from 1 to 65535"))?,
            };
            if port == 0 {
                return Err(bad("the port must be a number from 1 to 65535"));
            }
            Ok(AgentAddress::Udp {
                host: host.to_owned(),
                port,
            })
        } else if let Some(rest) = url.strip_prefix("unixgram://") {
            Ok(AgentAddress::UnixDatagram(unix_path(rest)?))
        } else if let Some(rest) = url.strip_prefix("unixstream://") {
            Ok(AgentAddress::UnixStream(unix_path(rest)?))
        } else if let Some(rest) = url.strip_prefix("unix://") {
            Ok(AgentAddress::Unix(unix_path(rest)?))
        } else {
            Err(bad(
                "expected udp://host:port, unix:///path, unixgram:///path or unixstream:///path",
            ))
        }
    }
}

/// The `card:` field: how much the Agent enriches tags for this client's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    /// `none`
    None,
    /// `low`
    Low,
    /// `orchestrator`
    Orchestrator,
    /// `high`
    High,
}

impl Cardinality {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Cardinality::None => "none",
            Cardinality::Low => "low",
            Cardinality::Orchestrator => "orchestrator",
            Cardinality::High => "high",
        }
    }
}

impl FromStr for Cardinality {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Cardinality::None),
            "low" => Ok(Cardinality::Low),
            "orchestrator" => Ok(Cardinality::Orchestrator),
            "high" => Ok(Cardinality::High),
            _ => Err(Error::InvalidConfig(format!(
                "cardinality {s:?} is not one of none, low, orchestrator, high"
            ))),
        }
    }
}

/// The resolved settings of a DogStatsD exporter: a plain struct, read by the encoder and the
/// transport.
#[derive(Debug, Clone, PartialEq)]
pub struct DogStatsdConfig {
    /// Where to send.
    pub address: AgentAddress,
    /// Largest payload, in bytes, several messages packed in each.
    pub max_payload_bytes: usize,
    /// Prepended to every metric name, with a `.` (telemetry excepted).
    pub prefix: Option<String>,
    /// Tags added to every metric, event and service check (`env:`, `service:`, `version:`,
    /// `dd.internal.entity_id:` and the builder's global tags), already sanitised.
    pub global_tags: Vec<String>,
    /// The container id for the `c:` field (`None` when unknown or origin detection is off).
    pub container_id: Option<String>,
    /// The `e:` field (`None` when unset or origin detection is off).
    pub external_env: Option<String>,
    /// The `card:` field.
    pub cardinality: Option<Cardinality>,
    /// Send histograms as distributions (`d`, the default: percentiles are global across hosts)
    /// or as Agent-side histograms (`h`).
    pub histograms_as_distributions: bool,
    /// Client telemetry interval, or `None` when telemetry is off.
    pub telemetry_interval: Option<Duration>,
    /// The deadline of every step of a send: resolving a host name, connecting, each write.
    pub write_timeout: Duration,
}

type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Builds the DogStatsD exporter; pass it to
/// [`PaymetricsBuilder::dogstatsd`](crate::PaymetricsBuilder::dogstatsd).
///
/// Whatever is not set explicitly is read from Datadog's environment variables (`DD_AGENT_HOST`,
/// `DD_DOGSTATSD_PORT`, `DD_DOGSTATSD_URL`, `DD_ENV`, ...): see the
/// [table of variables](super#configuration).
///
/// ```
/// use paymetrics::dogstatsd::{AgentAddress, DogStatsdBuilder};
///
/// let config = DogStatsdBuilder::new()
///     .address("unixgram:///var/run/datadog/dsd.socket")
///     .service("payments-api")
///     .global_tag("region", "eu-west-1")
///     .prefix("paypal")
///     .env_lookup(|_| None) // ignore the process environment
///     .resolve()
///     .unwrap();
/// assert_eq!(config.address, AgentAddress::UnixDatagram("/var/run/datadog/dsd.socket".into()));
/// assert_eq!(config.max_payload_bytes, 8192);
/// assert_eq!(config.global_tags, ["service:payments-api", "region:eu-west-1"]);
/// ```
#[derive(Clone)]
pub struct DogStatsdBuilder {
    address: Option<String>,
    max_payload_bytes: Option<usize>,
    prefix: Option<String>,
    env: Option<String>,
    service: Option<String>,
    version: Option<String>,
    entity_id: Option<String>,
    global_tags: Vec<(String, String)>,
    origin_detection: Option<bool>,
    container_id: Option<Option<String>>,
    external_env: Option<String>,
    cardinality: Option<Cardinality>,
    histograms_as_distributions: bool,
    telemetry_interval: Option<Option<Duration>>,
    write_timeout: Duration,
    lookup: EnvLookup,
    proc_root: PathBuf,
}

impl fmt::Debug for DogStatsdBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DogStatsdBuilder")
            .field("address", &self.address)
            .field("prefix", &self.prefix)
            .field("global_tags", &self.global_tags)
            .finish_non_exhaustive()
    }
}

impl Default for DogStatsdBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl DogStatsdBuilder {
    /// A builder that reads the process environment for whatever is not set explicitly.
    pub fn new() -> Self {
        Self {
            address: None,
            max_payload_bytes: None,
            prefix: None,
            env: None,
            service: None,
            version: None,
            entity_id: None,
            global_tags: vec![],
            origin_detection: None,
            container_id: None,
            external_env: None,
            cardinality: None,
            histograms_as_distributions: true,
            telemetry_interval: None,
            write_timeout: Duration::from_millis(100),
            lookup: Arc::new(|name| std::env::var(name).ok()),
            proc_root: PathBuf::from("/proc/self"),
        }
    }

    /// Sends to this address (see [`AgentAddress`] for the URL forms); checked at build time.
    pub fn address(mut self, url: impl Into<String>) -> Self {
        self.address = Some(url.into());
        self
    }

    /// Largest payload in bytes (default 1432 on UDP, 8192 on Unix sockets).
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = Some(bytes);
        self
    }

    /// Prefixes every metric name with `prefix.`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// The `env:` tag (else `DD_ENV`).
    pub fn env(mut self, env: impl Into<String>) -> Self {
        self.env = Some(env.into());
        self
    }

    /// The `service:` tag (else `DD_SERVICE`).
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    /// The `version:` tag (else `DD_VERSION`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// The `dd.internal.entity_id:` tag (else `DD_ENTITY_ID`).
    pub fn entity_id(mut self, id: impl Into<String>) -> Self {
        self.entity_id = Some(id.into());
        self
    }

    /// Adds a tag to every metric, event and service check.
    pub fn global_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.global_tags.push((key.into(), value.into()));
        self
    }

    /// Turns the `c:` and `e:` fields on or off (else `DD_ORIGIN_DETECTION_ENABLED`, default on).
    pub fn origin_detection(mut self, enabled: bool) -> Self {
        self.origin_detection = Some(enabled);
        self
    }

    /// Uses this container id for `c:` instead of detecting it (`None`: send no `c:`).
    pub fn container_id(mut self, id: Option<String>) -> Self {
        self.container_id = Some(id);
        self
    }

    /// The `e:` field (else `DD_EXTERNAL_ENV`).
    pub fn external_env(mut self, value: impl Into<String>) -> Self {
        self.external_env = Some(value.into());
        self
    }

    /// The default `card:` field (else `DD_CARDINALITY` or `DATADOG_CARDINALITY`).
    pub fn cardinality(mut self, cardinality: Cardinality) -> Self {
        self.cardinality = Some(cardinality);
        self
    }

    /// Sends histograms as Agent-side histograms (`h`) instead of distributions (`d`).
    pub fn histograms_as_distributions(mut self, enabled: bool) -> Self {
        self.histograms_as_distributions = enabled;
        self
    }

    /// Client telemetry every `interval` (default 10 s); `None` turns it off.
    pub fn telemetry(mut self, interval: Option<Duration>) -> Self {
        self.telemetry_interval = Some(interval);
        self
    }

    /// The deadline of every step of a send on the flusher thread (default 100 ms): resolving
    /// a host name, connecting, each write. Once a write in a flush times out, the rest of that
    /// flush is dropped and counted.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Reads Datadog's variables through `lookup` instead of the process environment.
    pub fn env_lookup(
        mut self,
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.lookup = Arc::new(lookup);
        self
    }

    /// Reads the container id from `dir/cgroup` and `dir/mountinfo` instead of `/proc/self`.
    pub fn proc_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.proc_root = dir.into();
        self
    }

    fn var(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// Resolves builder settings, environment and defaults into a config, checking them.
    pub fn resolve(&self) -> Result<DogStatsdConfig, Error> {
        let address: AgentAddress = if let Some(url) = &self.address {
            url.parse()?
        } else if let Some(url) = self.var("DD_DOGSTATSD_URL") {
            url.parse()?
        } else if let Some(host) = self.var("DD_AGENT_HOST") {
            if host.contains("://") {
                // Datadog's clients accept a URL here too (unix://, unixgram://, udp://).
                host.parse()?
            } else {
                let port = match self.var("DD_DOGSTATSD_PORT") {
                    Some(p) => p.parse().ok().filter(|p| *p != 0).ok_or_else(|| {
                        Error::InvalidConfig(format!(
                            "DD_DOGSTATSD_PORT={p:?} is not a port number from 1 to 65535"
                        ))
                    })?,
                    None => DEFAULT_PORT,
                };
                // A bracketed IPv6 literal, possibly with its own port: parse it as a URL.
                match format!("udp://{host}").parse::<AgentAddress>()? {
                    AgentAddress::Udp { host: h, port: p }
                        if host.starts_with('[') && !host.ends_with(']') =>
                    {
                        AgentAddress::Udp {
                            host: h,
                            port: self.var("DD_DOGSTATSD_PORT").map_or(p, |_| port),
                        }
                    }
                    AgentAddress::Udp { host: h, .. } if host.starts_with('[') => {
                        AgentAddress::Udp { host: h, port }
                    }
                    _ => AgentAddress::Udp { host, port },
                }
            }
        } else {
            AgentAddress::Udp {
                host: "127.0.0.1".into(),
                port: DEFAULT_PORT,
            }
        };

        let max_payload_bytes = self.max_payload_bytes.unwrap_or(if address.is_unix() {
            DEFAULT_UNIX_PAYLOAD_BYTES
        } else {
            DEFAULT_UDP_PAYLOAD_BYTES
        });
        let ceiling = if address.is_unix() {
            u32::MAX as usize
        } else {
            MAX_UDP_PAYLOAD_BYTES
        };
        if !(256..=ceiling).contains(&max_payload_bytes) {
            return Err(Error::InvalidConfig(format!(
                "max_payload_bytes {max_payload_bytes} must be between 256 and {ceiling} for {address}"
            )));
        }

        let mut global_tags = Vec::new();
        let unified = [
            ("env", &self.env, "DD_ENV"),
            ("service", &self.service, "DD_SERVICE"),
            ("version", &self.version, "DD_VERSION"),
            ("dd.internal.entity_id", &self.entity_id, "DD_ENTITY_ID"),
        ];
        for (key, explicit, var) in unified {
            if let Some(value) = explicit.clone().or_else(|| self.var(var)) {
                global_tags.push(sanitize::tag(key, &value));
            }
        }
        global_tags.extend(self.global_tags.iter().map(|(k, v)| sanitize::tag(k, v)));

        let origin_detection = self.origin_detection.unwrap_or_else(|| {
            self.var("DD_ORIGIN_DETECTION_ENABLED")
                .is_none_or(|v| !v.eq_ignore_ascii_case("false"))
        });
        let (container_id, external_env) = if origin_detection {
            let container_id = match &self.container_id {
                Some(explicit) => explicit.clone(),
                None => origin::container_id(&self.proc_root),
            };
            let external = self
                .external_env
                .clone()
                .or_else(|| self.var("DD_EXTERNAL_ENV"));
            (
                container_id
                    .map(|c| sanitize::field(&c))
                    .filter(|c| !c.is_empty()),
                external
                    .map(|e| sanitize::field(&e))
                    .filter(|e| !e.is_empty()),
            )
        } else {
            (None, None)
        };

        let cardinality = match self.cardinality {
            Some(c) => Some(c),
            None => match self
                .var("DD_CARDINALITY")
                .or_else(|| self.var("DATADOG_CARDINALITY"))
            {
                Some(v) => Some(v.parse()?),
                None => None,
            },
        };

        Ok(DogStatsdConfig {
            address,
            max_payload_bytes,
            prefix: self
                .prefix
                .as_deref()
                .map(sanitize::name)
                .filter(|p| !p.is_empty()),
            global_tags,
            container_id,
            external_env,
            cardinality,
            histograms_as_distributions: self.histograms_as_distributions,
            telemetry_interval: self
                .telemetry_interval
                .unwrap_or(Some(DEFAULT_TELEMETRY_INTERVAL)),
            write_timeout: self.write_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn with_env(vars: &[(&str, &str)]) -> DogStatsdBuilder {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        DogStatsdBuilder::new()
            .env_lookup(move |k| vars.get(k).cloned())
            .proc_dir("/nonexistent")
    }

    #[test]
    fn url_forms() {
        let cases = [
            (
                "udp://localhost:9000",
                AgentAddress::Udp {
                    host: "localhost".into(),
                    port: 9000,
                },
            ),
            (
                "udp://10.0.0.1",
                AgentAddress::Udp {
                    host: "10.0.0.1".into(),
                    port: 8125,
                },
            ),
            (
                "udp://[::1]",
                AgentAddress::Udp {
                    host: "::1".into(),
                    port: 8125,
                },
            ),
            (
                "unix:///tmp/dsd.sock",
                AgentAddress::Unix("/tmp/dsd.sock".into()),
            ),
            (
                "unixgram:///tmp/d",
                AgentAddress::UnixDatagram("/tmp/d".into()),
            ),
            (
                "unixstream:///tmp/s",
                AgentAddress::UnixStream("/tmp/s".into()),
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(url.parse::<AgentAddress>().unwrap(), expected, "{url}");
        }
        for bad in [
            "",
            "localhost:8125",
            "udp://:8125",
            "udp://h:0",
            "udp://h:x",
            "unix://rel/path",
            "udp://[::1",
        ] {
            let err = bad.parse::<AgentAddress>().unwrap_err().to_string();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn defaults_with_an_empty_environment() {
        let c = with_env(&[]).resolve().unwrap();
        assert_eq!(
            c.address,
            AgentAddress::Udp {
                host: "127.0.0.1".into(),
                port: 8125
            }
        );
        assert_eq!(c.max_payload_bytes, 1432);
        assert!(c.global_tags.is_empty());
        assert_eq!(c.telemetry_interval, Some(Duration::from_secs(10)));
        assert_eq!(
            (c.container_id, c.external_env, c.cardinality),
            (None, None, None)
        );
    }

    #[test]
    fn precedence_explicit_then_url_then_agent_host() {
        let env = [
            ("DD_DOGSTATSD_URL", "udp://url-host:1111"),
            ("DD_AGENT_HOST", "agent-host"),
            ("DD_DOGSTATSD_PORT", "2222"),
        ];
        let url = with_env(&env).resolve().unwrap().address;
        assert_eq!(
            url,
            AgentAddress::Udp {
                host: "url-host".into(),
                port: 1111
            }
        );
        let host = with_env(&env[1..]).resolve().unwrap().address;
        assert_eq!(
            host,
            AgentAddress::Udp {
                host: "agent-host".into(),
                port: 2222
            }
        );
        let explicit = with_env(&env).address("unixstream:///x").resolve().unwrap();
        assert_eq!(explicit.address, AgentAddress::UnixStream("/x".into()));
        assert_eq!(explicit.max_payload_bytes, 8192);
        let unix_host = with_env(&[("DD_AGENT_HOST", "unix:///var/run/dsd")])
            .resolve()
            .unwrap();
        assert_eq!(unix_host.address, AgentAddress::Unix("/var/run/dsd".into()));
        let bad_port = with_env(&[("DD_AGENT_HOST", "h"), ("DD_DOGSTATSD_PORT", "x")]).resolve();
        assert!(
            bad_port
                .unwrap_err()
                .to_string()
                .contains("DD_DOGSTATSD_PORT")
        );
    }

    #[test]
    fn unified_service_tags_origin_and_cardinality() {
        let env = [
            ("DD_ENV", "prod"),
            ("DD_SERVICE", "payments"),
            ("DD_VERSION", "1.2.3"),
            ("DD_ENTITY_ID", "pod-uid-1"),
            ("DD_EXTERNAL_ENV", "it-false,cn-app,pu-123"),
            ("DD_CARDINALITY", "orchestrator"),
        ];
        let c = with_env(&env)
            .version("2.0")
            .global_tag("team", "core")
            .resolve()
            .unwrap();
        assert_eq!(
            c.global_tags,
            [
                "env:prod",
                "service:payments",
                "version:2.0",
                "dd.internal.entity_id:pod-uid-1",
                "team:core"
            ]
        );
        assert_eq!(c.external_env.as_deref(), Some("it-false,cn-app,pu-123"));
        assert_eq!(c.cardinality, Some(Cardinality::Orchestrator));
        let off = with_env(&[
            ("DD_EXTERNAL_ENV", "x"),
            ("DD_ORIGIN_DETECTION_ENABLED", "false"),
        ])
        .container_id(Some("abc".into()))
        .resolve()
        .unwrap();
        assert_eq!((off.container_id, off.external_env), (None, None));
        let bad = with_env(&[("DD_CARDINALITY", "lots")])
            .resolve()
            .unwrap_err();
        assert!(bad.to_string().contains("lots"));
    }

    #[test]
    fn payload_limits_are_checked() {
        assert!(with_env(&[]).max_payload_bytes(100).resolve().is_err());
        assert!(with_env(&[]).max_payload_bytes(65_468).resolve().is_err());
        assert!(
            with_env(&[])
                .address("unixgram:///x")
                .max_payload_bytes(65_468)
                .resolve()
                .is_ok()
        );
    }
}
