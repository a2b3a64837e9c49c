//! Encoding snapshots into DogStatsD messages and packing them into payloads.
//!
//! Every message ends in `\n` and messages are packed into payloads of at most
//! `max_payload_bytes`. Fields follow the order datadog-go writes:
//! `name:value[:value...]|type|@rate|#tags|c:...|e:...|T...|card:...`.
//!
//! A histogram goes out as one value per non-empty bucket (plus its exact min and max), the
//! bucket's count carried as the sample rate (`|@1/count`, rounded so the Agent's `1/rate` is
//! never below the count), and values sharing a count packed into one multi-value message. Its
//! bytes per flush are thus bounded by its bucket count whatever its rate. The values are
//! [`HistogramValue::wire_values`]: weighted, they add up to the exact sum, so the Agent
//! computes count, sum, min and max exactly, small integers as recorded, and percentiles within
//! a bucket width (1/64, 1.56 %). Sockets are unknown here.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use metrics::Key;

use super::{config::DogStatsdConfig, sanitize};
use crate::{
    message::{AlertType, Event, Priority, ServiceCheck, TimestampedKind, TimestampedMetric},
    snapshot::HistogramValue,
};

/// Payloads being filled; a full one is moved to `ready`.
#[derive(Debug)]
pub(crate) struct Payloads {
    max: usize,
    current: Vec<u8>,
    pub(crate) ready: Vec<Vec<u8>>,
    /// Messages larger than a payload: dropped, counted.
    pub(crate) oversize_messages: u64,
    pub(crate) oversize_bytes: u64,
}

impl Payloads {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            current: Vec::new(),
            ready: Vec::new(),
            oversize_messages: 0,
            oversize_bytes: 0,
        }
    }

    /// Room for one more message in the payload being filled.
    fn push(&mut self, message: &[u8]) {
        if message.len() > self.max {
            self.oversize_messages += 1;
            self.oversize_bytes += message.len() as u64;
            return;
        }
        if self.current.len() + message.len() > self.max {
            self.ready.push(std::mem::take(&mut self.current));
        }
        self.current.extend_from_slice(message);
    }

    /// Moves the last partial payload to `ready` and returns every payload.
    pub(crate) fn finish(&mut self) -> Vec<Vec<u8>> {
        if !self.current.is_empty() {
            self.ready.push(std::mem::take(&mut self.current));
        }
        std::mem::take(&mut self.ready)
    }
}

/// Writes `value` compactly: integral values without a fraction, others in shortest form.
pub(crate) fn write_f64(out: &mut String, value: f64) {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        out.push_str(itoa::Buffer::new().format(value as i64));
    } else {
        out.push_str(ryu::Buffer::new().format_finite(value));
    }
}

/// The largest rate `r` whose Agent-side weight `1/r` is at least `count`, so the Agent's
/// integer conversion of the weight gives back `count` exactly.
pub(crate) fn sample_rate_for(count: u64) -> f64 {
    let n = count as f64;
    let mut rate = 1.0 / n;
    while 1.0 / rate < n {
        rate = f64::from_bits(rate.to_bits() - 1);
    }
    rate
}

fn digits(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Encodes metrics, events and service checks for one exporter configuration.
#[derive(Debug)]
pub(crate) struct Encoder {
    prefix: String,
    global_tags: String,
    /// `|c:...|e:...` (before any timestamp).
    origin: String,
    /// `|card:...`.
    card: String,
    histogram_type: &'static str,
    line: String,
}

impl Encoder {
    pub(crate) fn new(config: &DogStatsdConfig) -> Self {
        let mut origin = String::new();
        if let Some(c) = &config.container_id {
            let _ = write!(origin, "|c:{c}");
        }
        if let Some(e) = &config.external_env {
            let _ = write!(origin, "|e:{e}");
        }
        Self {
            prefix: config
                .prefix
                .as_ref()
                .map(|p| format!("{p}."))
                .unwrap_or_default(),
            global_tags: config.global_tags.join(","),
            origin,
            card: config
                .cardinality
                .map(|c| format!("|card:{}", c.as_str()))
                .unwrap_or_default(),
            histogram_type: if config.histograms_as_distributions {
                "d"
            } else {
                "h"
            },
            line: String::with_capacity(256),
        }
    }

    /// Starts a line with the (prefixed) name: prefix and name together at most 200 characters.
    fn start(&mut self, name: &str, prefixed: bool) {
        self.line.clear();
        if prefixed {
            self.line.push_str(&self.prefix);
        }
        self.line.truncate(sanitize::MAX_LENGTH);
        let room = sanitize::MAX_LENGTH - self.line.len();
        self.line.push_str(&sanitize::name_within(name, room));
    }

    fn tags_from_key(&self, key: &Key, out: &mut String) {
        let mut first = true;
        for label in key.labels() {
            out.push(if first { '#' } else { ',' });
            first = false;
            out.push_str(&sanitize::tag(label.key(), label.value()));
        }
        self.tags_tail(first, out);
    }

    fn tags_from_strings(&self, tags: &[String], out: &mut String) {
        let mut first = true;
        for tag in tags {
            out.push(if first { '#' } else { ',' });
            first = false;
            out.push_str(&sanitize::raw_tag(tag));
        }
        self.tags_tail(first, out);
    }

    fn tags_tail(&self, first: bool, out: &mut String) {
        if !self.global_tags.is_empty() {
            out.push(if first { '#' } else { ',' });
            out.push_str(&self.global_tags);
        } else if first {
            out.pop(); // no tags at all: drop the '|' the caller wrote
        }
    }

    /// `|#tags|c:|e:` then optional `|T`, then `|card:` and the newline.
    fn suffix(&self, tags: &str, timestamp: Option<u64>) -> String {
        let mut s = String::with_capacity(tags.len() + 32);
        s.push_str(tags);
        s.push_str(&self.origin);
        if let Some(ts) = timestamp {
            let _ = write!(s, "|T{ts}");
        }
        s.push_str(&self.card);
        s.push('\n');
        s
    }

    fn key_tags(&self, key: &Key) -> String {
        let mut tags = String::from("|");
        self.tags_from_key(key, &mut tags);
        tags
    }

    /// A counter delta: `name:delta|c`.
    pub(crate) fn counter(&mut self, key: &Key, delta: u64, out: &mut Payloads) {
        let suffix = self.suffix(&self.key_tags(key), None);
        self.start(key.name(), true);
        self.line.push(':');
        self.line.push_str(itoa::Buffer::new().format(delta));
        self.line.push_str("|c");
        self.line.push_str(&suffix);
        out.push(self.line.as_bytes());
    }

    /// A gauge value: `name:value|g`.
    pub(crate) fn gauge(&mut self, key: &Key, value: f64, out: &mut Payloads) {
        let suffix = self.suffix(&self.key_tags(key), None);
        self.start(key.name(), true);
        self.line.push(':');
        write_f64(&mut self.line, value);
        self.line.push_str("|g");
        self.line.push_str(&suffix);
        out.push(self.line.as_bytes());
    }

    /// A histogram's interval: its wire values grouped by count, each group packed into
    /// multi-value messages carrying the count as the sample rate. Values are written by
    /// [`write_f64`] (itoa for integers, ryu's shortest round-trip text otherwise), so the
    /// Agent parses back exactly the `f64` that adds up to the sum.
    pub(crate) fn histogram(&mut self, key: &Key, h: &HistogramValue, out: &mut Payloads) {
        let tags = self.key_tags(key);
        let mut by_count: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for (value, count) in h.wire_values() {
            by_count.entry(count).or_default().push(value);
        }
        for (count, values) in by_count {
            let mut tail = format!("|{}", self.histogram_type);
            if count > 1 {
                tail.push_str("|@");
                tail.push_str(ryu::Buffer::new().format_finite(sample_rate_for(count)));
            }
            let tail = tail + &self.suffix(&tags, None);
            self.start(key.name(), true);
            let head_len = self.line.len();
            let mut n = 0;
            let mut number = String::new();
            for value in values {
                number.clear();
                write_f64(&mut number, value);
                if n > 0 && self.line.len() + 1 + number.len() + tail.len() > out.max {
                    self.line.push_str(&tail);
                    out.push(self.line.as_bytes());
                    self.line.truncate(head_len);
                    n = 0;
                }
                self.line.push(':');
                self.line.push_str(&number);
                n += 1;
            }
            self.line.push_str(&tail);
            out.push(self.line.as_bytes());
        }
    }

    /// A timestamped gauge or count: `name:value|g|#tags|T<ts>`.
    pub(crate) fn timestamped(&mut self, m: &TimestampedMetric, out: &mut Payloads) {
        if !m.value.is_finite() {
            return; // PaymetricsHandle::send already dropped and counted these
        }
        let mut tags = String::from("|");
        self.tags_from_strings(&m.tags, &mut tags);
        let suffix = self.suffix(&tags, Some(m.timestamp.max(1)));
        self.start(&m.name, true);
        self.line.push(':');
        write_f64(
            &mut self.line,
            if m.value.is_finite() { m.value } else { 0.0 },
        );
        self.line.push_str(match m.kind {
            TimestampedKind::Gauge => "|g",
            TimestampedKind::Count => "|c",
        });
        self.line.push_str(&suffix);
        out.push(self.line.as_bytes());
    }

    /// A telemetry count (never prefixed).
    pub(crate) fn telemetry(&mut self, name: &str, value: u64, tags: &str, out: &mut Payloads) {
        self.line.clear();
        let _ = writeln!(
            self.line,
            "{name}:{value}|c|#{tags}{}{}",
            self.origin, self.card
        );
        out.push(self.line.as_bytes());
    }

    /// An event; its text is cut (at a character boundary) so it fits one payload.
    pub(crate) fn event(&mut self, e: &Event, out: &mut Payloads) {
        // The Agent rejects an empty title; one made only of carriage returns ends up empty too.
        let title = sanitize::event_text(&e.title);
        let title = if title.is_empty() {
            "(untitled)".to_owned()
        } else {
            title
        };
        let mut text = sanitize::event_text(&e.text);
        let mut rest = String::new();
        if let Some(ts) = e.timestamp {
            let _ = write!(rest, "|d:{ts}");
        }
        if let Some(h) = &e.hostname {
            let _ = write!(rest, "|h:{}", sanitize::field(h));
        }
        if let Some(k) = &e.aggregation_key {
            let _ = write!(rest, "|k:{}", sanitize::field(k));
        }
        if e.priority == Priority::Low {
            rest.push_str("|p:low");
        }
        if let Some(s) = &e.source_type_name {
            let _ = write!(rest, "|s:{}", sanitize::field(s));
        }
        match e.alert_type {
            AlertType::Info => {}
            AlertType::Error => rest.push_str("|t:error"),
            AlertType::Warning => rest.push_str("|t:warning"),
            AlertType::Success => rest.push_str("|t:success"),
        }
        let mut tags = String::from("|");
        self.tags_from_strings(&e.tags, &mut tags);
        rest.push_str(&self.suffix(&tags, None));
        // `_e{title_len,text_len}:` (lengths at most `out.max` long) plus `|` after the title.
        let header = 6 + digits(title.len()) + digits(out.max);
        let mut title = title;
        if header + title.len() + 1 + rest.len() > out.max {
            // Even the title does not fit: cut it too, keeping room for some text.
            let mut cut = out.max.saturating_sub(header + 1 + rest.len()) / 2;
            while !title.is_char_boundary(cut.min(title.len())) {
                cut -= 1;
            }
            let mut cut_title = title[..cut.min(title.len())].to_owned();
            if cut_title.ends_with('\\') {
                cut_title.pop();
            }
            // No room even for a short title: leave it whole; the event is then counted as too
            // large and dropped, never sent with an empty title the Agent would reject.
            if !cut_title.is_empty() {
                title = cut_title;
            }
        }
        let fixed = header + title.len() + 1 + rest.len();
        if fixed + text.len() > out.max {
            let room = out.max.saturating_sub(fixed);
            let mut cut = room.min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            if text.ends_with('\\') {
                text.pop(); // never leave half of an escaped newline
            }
        }
        self.line.clear();
        let _ = write!(
            self.line,
            "_e{{{},{}}}:{title}|{text}{rest}",
            title.len(),
            text.len()
        );
        out.push(self.line.as_bytes());
    }

    /// A service check: `_sc|name|status|d:|h:|#tags|c:|e:|card:|m:message`.
    pub(crate) fn service_check(&mut self, sc: &ServiceCheck, out: &mut Payloads) {
        self.line.clear();
        let _ = write!(
            self.line,
            "_sc|{}|{}",
            sanitize::name(&sc.name),
            sc.status as u8
        );
        if let Some(ts) = sc.timestamp {
            let _ = write!(self.line, "|d:{ts}");
        }
        if let Some(h) = &sc.hostname {
            let _ = write!(self.line, "|h:{}", sanitize::field(h));
        }
        let mut tags = String::from("|");
        self.tags_from_strings(&sc.tags, &mut tags);
        let mut suffix = self.suffix(&tags, None);
        suffix.pop(); // the message comes last, then the newline
        self.line.push_str(&suffix);
        if let Some(m) = &sc.message {
            let _ = write!(self.line, "|m:{}", sanitize::service_check_message(m));
        }
        self.line.push('\n');
        out.push(self.line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dogstatsd::DogStatsdBuilder;

    fn encoder(b: DogStatsdBuilder) -> Encoder {
        Encoder::new(
            &b.env_lookup(|_| None)
                .origin_detection(false)
                .resolve()
                .unwrap(),
        )
    }

    fn text(p: &mut Payloads) -> Vec<String> {
        p.finish()
            .into_iter()
            .map(|b| String::from_utf8(b).unwrap())
            .collect()
    }

    #[test]
    fn sample_rates_give_back_the_count() {
        for n in 1..100_000u64 {
            let r = sample_rate_for(n);
            assert_eq!((1.0 / r) as u64, n, "{n}");
            let printed: f64 = ryu::Buffer::new().format_finite(r).parse().unwrap();
            assert_eq!(printed, r);
        }
    }

    #[test]
    fn values_are_compact() {
        let mut s = String::new();
        for v in [0.0, 12.0, -3.0, 0.5, 1e20, 1.25e-7] {
            write_f64(&mut s, v);
            s.push(' ');
        }
        assert_eq!(s, "0 12 -3 0.5 1e20 1.25e-7 ");
    }

    #[test]
    fn packing_respects_the_limit_and_newlines() {
        let mut e = encoder(DogStatsdBuilder::new());
        let mut p = Payloads::new(256);
        for i in 0..40 {
            let key = Key::from_parts("m", vec![metrics::Label::new("i", i.to_string())]);
            e.counter(&key, 1, &mut p);
        }
        let payloads = text(&mut p);
        assert!(payloads.len() > 1);
        for payload in &payloads {
            assert!(payload.len() <= 256 && payload.ends_with('\n'));
        }
        assert_eq!(payloads.concat().lines().count(), 40);
        assert_eq!(payloads[0].lines().next(), Some("m:1|c|#i:0"));
    }

    #[test]
    fn events_and_service_checks() {
        let mut e = encoder(DogStatsdBuilder::new().service("pay"));
        let mut p = Payloads::new(1432);
        let ev = Event::new("Alert | high", "line1\nline2")
            .alert_type(AlertType::Error)
            .tag("a", "b");
        e.event(&ev, &mut p);
        let sc = ServiceCheck::new("svc.up", crate::message::ServiceCheckStatus::Warning)
            .message("m: bad|x\ny");
        e.service_check(&sc, &mut p);
        assert_eq!(
            text(&mut p),
            [
                "_e{12,12}:Alert | high|line1\\nline2|t:error|#a:b,service:pay\n\
              _sc|svc.up|1|#service:pay|m:m\\: bad_x\\ny\n"
            ]
        );
    }

    #[test]
    fn an_empty_title_becomes_untitled() {
        let mut e = encoder(DogStatsdBuilder::new());
        let mut p = Payloads::new(1432);
        e.event(&Event::new("\r", ""), &mut p);
        assert_eq!(text(&mut p), ["_e{10,0}:(untitled)|\n"]);
    }

    #[test]
    fn long_event_texts_are_cut_to_fit() {
        let mut e = encoder(DogStatsdBuilder::new());
        let mut p = Payloads::new(300);
        e.event(&Event::new("t", "é".repeat(500)), &mut p);
        let out = text(&mut p);
        assert_eq!(out.len(), 1);
        assert!(out[0].len() <= 300, "{}", out[0].len());
        assert_eq!(p.oversize_messages, 0);
    }
}
