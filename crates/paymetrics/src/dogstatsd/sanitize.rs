//! Sanitising names, tags and fields by Datadog's rules, so no input can break a datagram.
//!
//! Datadog's rules: a metric name starts with a letter, then ASCII letters, digits, `_` and
//! `.`, at most 200 characters in all; a tag starts with a letter, then letters (Unicode
//! allowed), digits, `_`, `-`, `:`, `.` and `/`, at most 200 characters, and never ends with
//! `:`. What paymetrics does, when a series is encoded (never on the recording thread):
//!
//! * **Metric names** keep ASCII letters, digits, `_` and `.`; every other character (`:`, `|`,
//!   `@`, `#`, `,`, spaces, newlines, non-ASCII) becomes `_`. A name that does not start with an
//!   ASCII letter (and the Agent reads a message starting `_sc` as a service check) gets the
//!   prefix `m`, and an empty name becomes `m`. The configured prefix and the name are cut
//!   together to 200 characters ([`prefixed_name`]).
//! * **Tags** are `key:value`. Both parts keep Unicode letters and digits, `_`, `-`, `.` and
//!   `/`; the value also keeps `:`. Every other character (`|`, `,`, `#`, `@`, spaces, newlines)
//!   becomes `_`. A tag that does not start with a letter (`-dash`, `9region:eu`, an empty key)
//!   gets the prefix `t`. A tag with an empty value is sent as its key alone. Tags are cut to
//!   200 characters, then trailing `:` are removed (`version:1.0:` becomes `version:1.0`).
//!   Datadog lowercases tags on intake; paymetrics leaves case alone.
//! * **Timestamps** (`|T`) above `i64::MAX` seconds are not representable on Datadog's side:
//!   such a point is dropped when it is queued and counted
//!   (`paymetrics.client.invalid_dropped`).
//! * **Origin fields** (`c:`, `e:`) and host names lose `|`, `#`, `@`, whitespace and control
//!   characters; `,` is kept because `e:` is a comma list.
//! * **Event titles and texts** have newlines escaped as `\n` (the Agent turns them back) and
//!   carriage returns removed (the Agent strips one before a newline, which would break the
//!   length); their lengths delimit them, so `|` is allowed.
//! * **Service-check messages** have newlines escaped, carriage returns removed, `m:` written
//!   as `m\:`, and `|` turned into `_` (the message is the last field; a `|` would end it).
//!
//! Non-finite values never reach the encoder: the recorder drops and counts them.

/// The longest name or tag Datadog keeps.
pub const MAX_LENGTH: usize = 200;

fn truncate(mut s: String) -> String {
    if let Some((cut, _)) = s.char_indices().nth(MAX_LENGTH) {
        s.truncate(cut);
    }
    s
}

/// Sanitises a metric (or service-check) name.
///
/// ```
/// use paymetrics::dogstatsd::sanitize;
/// assert_eq!(sanitize::name("api.requests|count:x"), "api.requests_count_x");
/// ```
pub fn name(raw: &str) -> String {
    name_within(raw, MAX_LENGTH)
}

/// Sanitises a metric name and puts `prefix.` before it, the whole cut to 200 characters.
///
/// ```
/// use paymetrics::dogstatsd::sanitize;
/// assert_eq!(sanitize::prefixed_name("paypal", "api.requests"), "paypal.api.requests");
/// assert_eq!(sanitize::prefixed_name("paypal", &"x".repeat(300)).len(), 200);
/// ```
pub fn prefixed_name(prefix: &str, raw: &str) -> String {
    let prefix = name(prefix);
    let mut out = String::with_capacity(prefix.len() + raw.len() + 2);
    out.push_str(&prefix);
    out.push('.');
    out.push_str(&name_within(raw, MAX_LENGTH.saturating_sub(out.len())));
    out.truncate(MAX_LENGTH);
    out
}

/// [`name`] cut to `max` characters (names are ASCII: characters are bytes).
pub(crate) fn name_within(raw: &str, max: usize) -> String {
    let mut out = String::with_capacity(raw.len() + 1);
    if !raw.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.push('m');
    }
    out.extend(raw.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            c
        } else {
            '_'
        }
    }));
    out.truncate(max);
    out
}

fn tag_char(c: char, colon_ok: bool) -> char {
    if c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/') || (colon_ok && c == ':') {
        c
    } else {
        '_'
    }
}

/// Sanitises one tag from its key and value.
///
/// ```
/// use paymetrics::dogstatsd::sanitize;
/// assert_eq!(sanitize::tag("endpoint", "/v1/pay|x,#y"), "endpoint:/v1/pay_x__y");
/// assert_eq!(sanitize::tag("a:b", "c:d"), "a_b:c:d");
/// assert_eq!(sanitize::tag("flag", ""), "flag");
/// ```
pub fn tag(key: &str, value: &str) -> String {
    let mut out = String::with_capacity(key.len() + value.len() + 2);
    if !key.starts_with(char::is_alphabetic) {
        out.push('t');
    }
    out.extend(key.chars().map(|c| tag_char(c, false)));
    if !value.is_empty() {
        out.push(':');
        out.extend(value.chars().map(|c| tag_char(c, true)));
    }
    let mut out = truncate(out);
    let kept = out.trim_end_matches(':').len();
    out.truncate(kept);
    out
}

/// Sanitises a tag already written as `key:value`.
pub fn raw_tag(raw: &str) -> String {
    match raw.split_once(':') {
        Some((k, v)) => tag(k, v),
        None => tag(raw, ""),
    }
}

/// Sanitises an origin field (`c:`, `e:`) or a host name.
pub fn field(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_control() && !c.is_whitespace() && !matches!(c, '|' | '#' | '@'))
        .collect()
}

/// Escapes newlines in an event title or text.
pub fn event_text(raw: &str) -> String {
    raw.replace('\r', "").replace('\n', "\\n")
}

/// Escapes a service-check message.
pub fn service_check_message(raw: &str) -> String {
    event_text(raw).replace("m:", "m\\:").replace('|', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(name(""), "m");
        assert_eq!(name("_scheduler.runs"), "m_scheduler.runs");
        assert_eq!(name("@scan"), "m_scan");
        assert_eq!(name("9lives"), "m9lives");
        assert_eq!(name("a b\nc@d#e,f"), "a_b_c_d_e_f");
        assert_eq!(name("né"), "n_");
        assert_eq!(name(&"x".repeat(300)).len(), 200);
        assert_eq!(prefixed_name("p", &"x".repeat(300)).len(), 200);
        assert_eq!(prefixed_name("9p", "_sc"), "m9p.m_sc");
    }

    #[test]
    fn tags() {
        assert_eq!(tag("", "v"), "t:v");
        assert_eq!(tag("-dash", ""), "t-dash");
        assert_eq!(tag("9region", "eu_west_"), "t9region:eu_west_");
        assert_eq!(tag("_", "v"), "t_:v");
        assert_eq!(tag("version", ":1.0:"), "version::1.0");
        assert_eq!(tag("k", ":::"), "k");
        assert_eq!(tag("é", "x"), "é:x");
        let cut = tag("version", &format!("{}:x", "a".repeat(191)));
        assert!(!cut.ends_with(':') && cut.chars().count() <= 200, "{cut}");
        assert_eq!(tag("country", "São Paulo"), "country:São_Paulo");
        assert_eq!(tag("k", "a\nb|c@d"), "k:a_b_c_d");
        let long = tag("k", &"é".repeat(300));
        assert_eq!(long.chars().count(), 200);
        assert_eq!(raw_tag("a:b:c"), "a:b:c");
        assert_eq!(raw_tag("a|b"), "a_b");
    }

    #[test]
    fn fields_and_texts() {
        assert_eq!(field("it-false,cn-a|b #c"), "it-false,cn-abc");
        assert_eq!(event_text("a\nb\r\nc\r"), "a\\nb\\nc");
        assert_eq!(service_check_message("m:x|y\nz"), "m\\:x_y\\nz");
    }
}
