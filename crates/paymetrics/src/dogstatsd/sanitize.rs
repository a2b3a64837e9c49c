//! Sanitising names, tags and fields by Datadog's rules, so no input can break a datagram.
//!
//! The rules, applied when a series is encoded (never on the recording thread):
//!
//! * **Metric names** keep ASCII letters, digits, `_` and `.`; every other character (`:`, `|`,
//!   `@`, `#`, `,`, spaces, newlines, non-ASCII) becomes `_`. A name that does not start with an
//!   ASCII letter (Datadog requires one; and the Agent reads a message starting `_sc` as a
//!   service check) gets the prefix `m`, and an empty name becomes `m`. Names are cut to 200
//!   characters.
//! * **Tags** are `key:value`. Both parts keep Unicode letters and digits, `_`, `-`, `.` and
//!   `/`; the value also keeps `:`. Every other character (`|`, `,`, `#`, `@`, spaces, newlines)
//!   becomes `_`. A tag with an empty value is sent as its key alone. Tags are cut to 200
//!   characters. Datadog lowercases tags on intake; paymetrics leaves case alone.
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
    truncate(out)
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
    let mut out = String::with_capacity(key.len() + value.len() + 1);
    out.extend(key.chars().map(|c| tag_char(c, false)));
    if out.is_empty() {
        out.push('_');
    }
    if !value.is_empty() {
        out.push(':');
        out.extend(value.chars().map(|c| tag_char(c, true)));
    }
    truncate(out)
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
    }

    #[test]
    fn tags() {
        assert_eq!(tag("", "v"), "_:v");
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
