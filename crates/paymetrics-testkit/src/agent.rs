//! A stand-in for the Datadog Agent's DogStatsD intake: receivers for UDP and Unix sockets, a
//! parser that follows the Agent's rules (`comp/dogstatsd/server`, `parse.go`), and an
//! aggregate of what arrived, as the Agent would compute it.
//!
//! The parser is strict where the Agent or its Rust successor (Saluki) is strict: a message
//! without a `|type`, an unknown type, an empty name, an unparsable or non-finite value, an
//! unparsable sample rate or timestamp, an event whose lengths do not match, or a service check
//! with a bad status is an error.

use std::{
    collections::BTreeMap,
    fmt,
    io::{self, Read},
    net::UdpSocket,
    os::unix::net::{UnixDatagram, UnixListener, UnixStream},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// A DogStatsD metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetricType {
    /// `g`
    Gauge,
    /// `c`
    Count,
    /// `h`
    Histogram,
    /// `d`
    Distribution,
    /// `s`
    Set,
    /// `ms`
    Timing,
}

impl MetricType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "g" => Self::Gauge,
            "c" => Self::Count,
            "h" => Self::Histogram,
            "d" => Self::Distribution,
            "s" => Self::Set,
            "ms" => Self::Timing,
            _ => return None,
        })
    }

    /// The wire letter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gauge => "g",
            Self::Count => "c",
            Self::Histogram => "h",
            Self::Distribution => "d",
            Self::Set => "s",
            Self::Timing => "ms",
        }
    }
}

/// One parsed metric message.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricMessage {
    /// Metric name.
    pub name: String,
    /// Values (several with multi-value packing); empty for sets, see `set_value`.
    pub values: Vec<f64>,
    /// The raw value of a set.
    pub set_value: Option<String>,
    /// Type.
    pub kind: MetricType,
    /// Sample rate (1 when absent).
    pub sample_rate: f64,
    /// Tags, as sent.
    pub tags: Vec<String>,
    /// `c:` field.
    pub container: Option<String>,
    /// `e:` field.
    pub external: Option<String>,
    /// `card:` field.
    pub cardinality: Option<String>,
    /// `T` field.
    pub timestamp: Option<i64>,
}

/// One parsed event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMessage {
    /// Title, newlines restored.
    pub title: String,
    /// Text, newlines restored.
    pub text: String,
    /// Optional fields other than tags, as `(prefix, value)`.
    pub fields: Vec<(String, String)>,
    /// Tags.
    pub tags: Vec<String>,
}

/// One parsed service check.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceCheckMessage {
    /// Name.
    pub name: String,
    /// Status, 0 to 3.
    pub status: u8,
    /// The `m:` message, escapes undone.
    pub message: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
}

/// Any DogStatsD message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A metric.
    Metric(MetricMessage),
    /// An event.
    Event(EventMessage),
    /// A service check.
    ServiceCheck(ServiceCheckMessage),
}

/// Why a message was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The message.
    pub message: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}", self.reason, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Splits a payload into messages as the Agent does: on `\n`, dropping one trailing `\r` and
/// skipping empty lines. With `eol_required`, an unterminated last line is an error.
pub fn split_payload(payload: &str, eol_required: bool) -> Result<Vec<&str>, ParseError> {
    if eol_required && !payload.is_empty() && !payload.ends_with('\n') {
        let last = payload.rsplit('\n').next().unwrap_or_default();
        return Err(ParseError {
            message: last.to_owned(),
            reason: "unterminated message",
        });
    }
    Ok(payload
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty())
        .collect())
}

/// Parses every message of a payload, requiring the final newline paymetrics always writes.
pub fn parse_payload(payload: &[u8]) -> Result<Vec<Message>, ParseError> {
    let text = std::str::from_utf8(payload).map_err(|_| ParseError {
        message: String::from_utf8_lossy(payload).into_owned(),
        reason: "payload is not UTF-8",
    })?;
    split_payload(text, true)?
        .into_iter()
        .map(parse_message)
        .collect()
}

/// Parses one message.
pub fn parse_message(line: &str) -> Result<Message, ParseError> {
    let err = |reason| ParseError {
        message: line.to_owned(),
        reason,
    };
    if line.starts_with("_e{") {
        parse_event(line).ok_or_else(|| err("invalid event"))
    } else if line.starts_with("_sc") {
        parse_service_check(line).ok_or_else(|| err("invalid service check"))
    } else {
        parse_metric(line).map_err(err)
    }
}

fn parse_tags(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_metric(line: &str) -> Result<Message, &'static str> {
    let mut parts = line.split('|');
    let head = parts.next().unwrap_or_default();
    let kind = parts.next().ok_or("missing type")?;
    let kind = MetricType::parse(kind).ok_or("unknown metric type")?;
    let (name, raw_values) = head.split_once(':').ok_or("missing ':' before the value")?;
    if name.is_empty() {
        return Err("empty name");
    }
    let mut message = MetricMessage {
        name: name.to_owned(),
        values: vec![],
        set_value: None,
        kind,
        sample_rate: 1.0,
        tags: vec![],
        container: None,
        external: None,
        cardinality: None,
        timestamp: None,
    };
    if kind == MetricType::Set {
        if raw_values.is_empty() {
            return Err("empty set value");
        }
        message.set_value = Some(raw_values.to_owned());
    } else {
        for v in raw_values.split(':').filter(|v| !v.is_empty()) {
            let v: f64 = v.parse().map_err(|_| "unparsable value")?;
            if !v.is_finite() {
                return Err("non-finite value");
            }
            message.values.push(v);
        }
        if message.values.is_empty() {
            return Err("no value");
        }
    }
    for field in parts {
        if let Some(rate) = field.strip_prefix('@') {
            message.sample_rate = rate.parse().map_err(|_| "unparsable sample rate")?;
        } else if let Some(tags) = field.strip_prefix('#') {
            message.tags = parse_tags(tags);
        } else if let Some(c) = field.strip_prefix("c:") {
            message.container = Some(c.to_owned());
        } else if let Some(e) = field.strip_prefix("e:") {
            message.external = Some(e.to_owned());
        } else if let Some(card) = field.strip_prefix("card:") {
            message.cardinality = Some(card.to_owned());
        } else if let Some(ts) = field.strip_prefix('T') {
            let ts: i64 = ts.parse().map_err(|_| "unparsable timestamp")?;
            if ts <= 0 {
                return Err("timestamp must be positive");
            }
            message.timestamp = Some(ts);
        }
    }
    Ok(Message::Metric(message))
}

fn parse_event(line: &str) -> Option<Message> {
    let rest = line.strip_prefix("_e{")?;
    let (lens, rest) = rest.split_once("}:")?;
    let (title_len, text_len) = lens.split_once(',')?;
    let (title_len, text_len): (usize, usize) = (title_len.parse().ok()?, text_len.parse().ok()?);
    if title_len == 0 || rest.len() < title_len + 1 + text_len {
        return None;
    }
    let title = rest.get(..title_len)?;
    if rest.as_bytes()[title_len] != b'|' {
        return None;
    }
    let text = rest.get(title_len + 1..title_len + 1 + text_len)?;
    let mut fields = vec![];
    let mut tags = vec![];
    let tail = &rest[title_len + 1 + text_len..];
    if !tail.is_empty() && !tail.starts_with('|') {
        return None;
    }
    for field in tail.split('|').skip(1) {
        if let Some(t) = field.strip_prefix('#') {
            tags = parse_tags(t);
        } else if let Some((k, v)) = field.split_once(':') {
            fields.push((k.to_owned(), v.to_owned()));
        }
    }
    Some(Message::Event(EventMessage {
        title: title.replace("\\n", "\n"),
        text: text.replace("\\n", "\n"),
        fields,
        tags,
    }))
}

fn parse_service_check(line: &str) -> Option<Message> {
    let mut parts = line.split('|');
    if parts.next()? != "_sc" {
        return None;
    }
    let name = parts.next()?;
    let status: u8 = parts.next()?.parse().ok()?;
    if name.is_empty() || status > 3 {
        return None;
    }
    let mut check = ServiceCheckMessage {
        name: name.to_owned(),
        status,
        message: None,
        tags: vec![],
    };
    for field in parts {
        if let Some(t) = field.strip_prefix('#') {
            check.tags = parse_tags(t);
        } else if let Some(m) = field.strip_prefix("m:") {
            check.message = Some(m.replace("m\\:", "m:").replace("\\n", "\n"));
        }
    }
    Some(Message::ServiceCheck(check))
}

/// A series as the Agent keys it: name, type and sorted tags.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    /// Name.
    pub name: String,
    /// Type.
    pub kind: MetricType,
    /// Tags, sorted.
    pub tags: Vec<String>,
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}|{}|{}",
            self.name,
            self.kind.as_str(),
            self.tags.join(",")
        )
    }
}

/// What the Agent would compute for one series over everything received.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SeriesTotal {
    /// Counts: the sum of values reinflated by their sample rates. Distributions and
    /// histograms: the number of samples (weights). Gauges: the number of points.
    pub count: f64,
    /// Counts and distributions: the weighted sum. Gauges: the last value.
    pub sum: f64,
    /// Smallest value seen.
    pub min: f64,
    /// Largest value seen.
    pub max: f64,
}

/// Everything received, aggregated per series, plus events and service checks.
#[derive(Debug, Default, Clone)]
pub struct Aggregate {
    /// Per-series totals.
    pub series: BTreeMap<SeriesKey, SeriesTotal>,
    /// Events, in order.
    pub events: Vec<EventMessage>,
    /// Service checks, in order.
    pub service_checks: Vec<ServiceCheckMessage>,
    /// Messages that did not parse.
    pub errors: Vec<ParseError>,
    /// Payloads received.
    pub payloads: usize,
    /// Bytes received.
    pub bytes: usize,
}

impl Aggregate {
    /// Parses a payload and adds what it holds.
    pub fn ingest(&mut self, payload: &[u8]) {
        self.payloads += 1;
        self.bytes += payload.len();
        let text = String::from_utf8_lossy(payload);
        let lines = match split_payload(&text, true) {
            Ok(lines) => lines,
            Err(e) => {
                self.errors.push(e);
                return;
            }
        };
        for line in lines {
            match parse_message(line) {
                Ok(Message::Metric(m)) => self.add_metric(m),
                Ok(Message::Event(e)) => self.events.push(e),
                Ok(Message::ServiceCheck(sc)) => self.service_checks.push(sc),
                Err(e) => self.errors.push(e),
            }
        }
    }

    fn add_metric(&mut self, m: MetricMessage) {
        let mut tags = m.tags.clone();
        tags.sort();
        let key = SeriesKey {
            name: m.name,
            kind: m.kind,
            tags,
        };
        let total = self.series.entry(key).or_insert(SeriesTotal {
            count: 0.0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        });
        let weight = if m.sample_rate > 0.0 && m.sample_rate <= 1.0 {
            1.0 / m.sample_rate
        } else {
            1.0
        };
        for v in m.values {
            total.min = total.min.min(v);
            total.max = total.max.max(v);
            match m.kind {
                MetricType::Gauge => {
                    total.count += 1.0;
                    total.sum = v;
                }
                MetricType::Count => {
                    total.count += v * weight;
                    total.sum += v * weight;
                }
                // The Agent converts a sketch weight to an integer count.
                _ => {
                    let n = weight.trunc();
                    total.count += n;
                    total.sum += v * n;
                }
            }
        }
    }

    /// The total for `name` of type `kind` with exactly these tags (any order).
    pub fn get(&self, name: &str, kind: MetricType, tags: &[&str]) -> Option<SeriesTotal> {
        let mut tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        tags.sort();
        self.series
            .get(&SeriesKey {
                name: name.to_owned(),
                kind,
                tags,
            })
            .copied()
    }

    /// Every series named `name`.
    pub fn named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (&'a SeriesKey, &'a SeriesTotal)> {
        self.series.iter().filter(move |(k, _)| k.name == name)
    }
}

/// A UDP DogStatsD receiver on loopback.
#[derive(Debug)]
pub struct UdpReceiver {
    socket: UdpSocket,
}

impl UdpReceiver {
    /// Binds `127.0.0.1` on a free port.
    pub fn bind() -> io::Result<Self> {
        Self::bind_to("127.0.0.1:0")
    }

    /// Binds the given address.
    pub fn bind_to(addr: &str) -> io::Result<Self> {
        Ok(Self {
            socket: UdpSocket::bind(addr)?,
        })
    }

    /// The socket.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// The `udp://host:port` URL to give paymetrics.
    pub fn url(&self) -> String {
        format!("udp://{}", self.socket.local_addr().expect("bound socket"))
    }

    /// The next payload, or `None` after `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Vec<u8>> {
        self.socket
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .ok()?;
        let mut buf = vec![0; 65_536];
        let n = self.socket.recv(&mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    }

    /// Payloads until none arrives for `quiet`.
    pub fn drain(&self, quiet: Duration) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.recv_timeout(quiet)).collect()
    }

    /// Payloads until `done` says the aggregate is complete, or `deadline` passes.
    pub fn collect_until(
        &self,
        deadline: Duration,
        done: impl Fn(&Aggregate) -> bool,
    ) -> Aggregate {
        collect_until(deadline, done, |t| self.recv_timeout(t))
    }
}

fn collect_until(
    deadline: Duration,
    done: impl Fn(&Aggregate) -> bool,
    mut recv: impl FnMut(Duration) -> Option<Vec<u8>>,
) -> Aggregate {
    let end = Instant::now() + deadline;
    let mut aggregate = Aggregate::default();
    while !done(&aggregate) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if let Some(p) = recv(left.min(Duration::from_millis(200))) {
            aggregate.ingest(&p);
        }
    }
    aggregate
}

/// A Unix datagram receiver at a temporary path (removed on drop).
#[derive(Debug)]
pub struct UnixDatagramReceiver {
    socket: UnixDatagram,
    path: PathBuf,
}

impl UnixDatagramReceiver {
    /// Binds a fresh socket file under `dir`.
    pub fn bind_in(dir: &Path) -> io::Result<Self> {
        let path = dir.join(format!("dsd-{}-{}.sock", std::process::id(), unique()));
        Ok(Self {
            socket: UnixDatagram::bind(&path)?,
            path,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next payload, or `None` after `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Vec<u8>> {
        self.socket
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .ok()?;
        let mut buf = vec![0; 65_536];
        let n = self.socket.recv(&mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    }

    /// Payloads until none arrives for `quiet`.
    pub fn drain(&self, quiet: Duration) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.recv_timeout(quiet)).collect()
    }
}

impl Drop for UnixDatagramReceiver {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A Unix stream receiver: accepts connections and splits their length-prefixed frames.
#[derive(Debug)]
pub struct UnixStreamReceiver {
    listener: UnixListener,
    path: PathBuf,
    conn: Option<UnixStream>,
}

impl UnixStreamReceiver {
    /// Binds a fresh socket file under `dir`.
    pub fn bind_in(dir: &Path) -> io::Result<Self> {
        let path = dir.join(format!(
            "dsd-stream-{}-{}.sock",
            std::process::id(),
            unique()
        ));
        Ok(Self {
            listener: UnixListener::bind(&path)?,
            path,
            conn: None,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next frame's payload (without its 4-byte little-endian length), or `None` after
    /// `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        if self.conn.is_none() {
            self.listener.set_nonblocking(true).ok()?;
            let end = Instant::now() + timeout;
            loop {
                match self.listener.accept() {
                    Ok((c, _)) => {
                        c.set_nonblocking(false).ok()?;
                        self.conn = Some(c);
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < end => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => return None,
                }
            }
        }
        let conn = self.conn.as_mut()?;
        conn.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .ok()?;
        let mut len = [0u8; 4];
        conn.read_exact(&mut len).ok()?;
        let mut payload = vec![0; u32::from_le_bytes(len) as usize];
        conn.read_exact(&mut payload).ok()?;
        Some(payload)
    }

    /// Payloads until none arrives for `quiet`.
    pub fn drain(&mut self, quiet: Duration) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.recv_timeout(quiet)).collect()
    }
}

impl Drop for UnixStreamReceiver {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_rules() {
        assert_eq!(
            split_payload("a:1|g\r\n\nb:2|c\n", true).unwrap(),
            ["a:1|g", "b:2|c"]
        );
        assert!(split_payload("a:1|g\nb:2|c", true).is_err());
        let Message::Metric(m) =
            parse_message("x:1::2:|d|@0.5|#a:b,c|c:ci-1|T12|card:low|f:x").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (m.values, m.sample_rate, m.tags),
            (vec![1.0, 2.0], 0.5, vec!["a:b".into(), "c".into()])
        );
        assert_eq!(
            (
                m.container.as_deref(),
                m.timestamp,
                m.cardinality.as_deref()
            ),
            (Some("ci-1"), Some(12), Some("low"))
        );
        for bad in [
            "x:1",
            "x:1|q",
            ":1|c",
            "x:|c",
            "x:NaN|g",
            "x:1|c|@x",
            "x:1|g|T-5",
            "x:1|g|TABC",
        ] {
            assert!(parse_message(bad).is_err(), "{bad}");
        }
        assert!(
            matches!(parse_message("_e{3,2}:a|b|hi|#t"), Ok(Message::Event(e)) if e.title == "a|b" && e.text == "hi")
        );
        assert!(parse_message("_e{0,2}:|hi").is_err());
        assert!(parse_message("_e{5,2}:a|hi").is_err());
        assert!(parse_message("_sc|n|4").is_err());
        assert!(
            matches!(parse_message("_sc|n|2|#a|m:x\\ny"), Ok(Message::ServiceCheck(s)) if s.message.as_deref() == Some("x\ny"))
        );
    }
}
