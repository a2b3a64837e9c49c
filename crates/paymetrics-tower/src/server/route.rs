//! Route templates as `endpoint` tag values, and the rules that ignore or group routes.
//!
//! Both run once per distinct template (when its series is created), never per request.

use std::borrow::Cow;

use metrics::SharedString;

use super::{ENDPOINT, UNMATCHED_ENDPOINT};

/// The longest tag DogStatsD keeps is 200 characters, `endpoint:` included; a longer value
/// would be cut on the wire, so it is cut here and the recorded label is what is sent.
const MAX_ENDPOINT_CHARS: usize = 200 - ENDPOINT.len() - 1;

/// Whether Datadog keeps `c` in a tag value (the rule paymetrics' DogStatsD exporter applies:
/// letters, digits, `_`, `-`, `.`, `/` and `:`; anything else would become `_`).
fn tag_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':')
}

/// The [`ENDPOINT`] tag value of a route template: the template as Datadog keeps it.
///
/// axum writes parameters in braces, which a Datadog tag cannot hold (they would be sent as
/// `_`). So:
///
/// * a parameter `{id}` becomes `:id`;
/// * a wildcard `{*rest}` becomes `:rest...` (distinct from a parameter of the same name);
/// * an escaped brace (`{{`, `}}`) and any other character a tag cannot hold becomes `_`;
/// * the value is cut to the 191 characters that fit beside `endpoint:` in a 200-character tag;
/// * an empty template is [`UNMATCHED_ENDPOINT`].
///
/// Already-converted templates are left as they are, so either spelling can be given to
/// [`ApiMetricsLayer::ignore_route`](super::ApiMetricsLayer::ignore_route) and friends.
///
/// ```
/// use paymetrics_tower::server::endpoint_tag;
///
/// assert_eq!(endpoint_tag("/v1/payments/{id}"), "/v1/payments/:id");
/// assert_eq!(endpoint_tag("/v1/payments/{id}/refunds/{refund_id}"), "/v1/payments/:id/refunds/:refund_id");
/// assert_eq!(endpoint_tag("/static/{*path}"), "/static/:path...");
/// assert_eq!(endpoint_tag("/v1/payments/:id"), "/v1/payments/:id");
/// assert_eq!(endpoint_tag("/v1/fx rates"), "/v1/fx_rates");
/// ```
pub fn endpoint_tag(template: &str) -> Cow<'_, str> {
    if template.is_empty() {
        return Cow::Borrowed(UNMATCHED_ENDPOINT);
    }
    // Datadog drops a tag's trailing `:`, so a value must not end with one.
    if template.chars().count() <= MAX_ENDPOINT_CHARS
        && template.chars().all(tag_char)
        && !template.ends_with(':')
    {
        return Cow::Borrowed(template);
    }
    let mut out = String::with_capacity(template.len() + 4);
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("{{").or_else(|| rest.strip_prefix("}}")) {
            out.push('_');
            rest = after;
            continue;
        }
        if c == '{'
            && let Some(close) = rest.find('}')
        {
            let name = &rest[1..close];
            match name.strip_prefix('*') {
                Some(name) => {
                    out.push(':');
                    push_sanitized(&mut out, name);
                    out.push_str("...");
                }
                None => {
                    out.push(':');
                    push_sanitized(&mut out, name);
                }
            }
            rest = &rest[close + 1..];
            continue;
        }
        out.push(if tag_char(c) { c } else { '_' });
        rest = &rest[c.len_utf8()..];
    }
    if let Some((cut, _)) = out.char_indices().nth(MAX_ENDPOINT_CHARS) {
        out.truncate(cut);
    }
    while out.ends_with(':') {
        out.pop();
        out.push('_');
    }
    Cow::Owned(out)
}

fn push_sanitized(out: &mut String, s: &str) {
    out.extend(s.chars().map(|c| if tag_char(c) { c } else { '_' }));
}

/// Which templates a rule applies to.
#[derive(Debug, Clone)]
pub(crate) enum Pattern {
    /// One template (converted).
    Exact(String),
    /// Every template starting with this (converted).
    Prefix(String),
}

impl Pattern {
    /// `pattern` is a template, or a template prefix ending in `*`.
    fn parse(pattern: &str) -> Self {
        match pattern.strip_suffix('*') {
            // `{*rest}` ends in `}`, so a trailing `*` is always the glob.
            Some(prefix) => Self::Prefix(endpoint_tag(prefix).into_owned()),
            None => Self::Exact(endpoint_tag(pattern).into_owned()),
        }
    }

    fn matches(&self, endpoint: &str) -> bool {
        match self {
            Self::Exact(exact) => endpoint == exact,
            Self::Prefix(prefix) => endpoint.starts_with(prefix.as_str()),
        }
    }
}

/// What to do with the requests of some routes.
#[derive(Debug, Clone)]
pub(crate) enum RouteRule {
    Ignore(Pattern),
    Group(Pattern, SharedString),
}

impl RouteRule {
    pub(crate) fn ignore(pattern: &str) -> Self {
        Self::Ignore(Pattern::parse(pattern))
    }

    pub(crate) fn group(pattern: &str, endpoint: &str) -> Self {
        let endpoint = endpoint_tag(endpoint).into_owned();
        Self::Group(Pattern::parse(pattern), SharedString::from(endpoint))
    }
}

/// The endpoint tag value of `template` under `rules` (the first that matches wins), or `None`
/// if its requests are ignored.
pub(crate) fn resolve(template: &str, rules: &[RouteRule]) -> Option<SharedString> {
    let endpoint = endpoint_tag(template);
    for rule in rules {
        match rule {
            RouteRule::Ignore(pattern) if pattern.matches(&endpoint) => return None,
            RouteRule::Group(pattern, group) if pattern.matches(&endpoint) => {
                return Some(group.clone());
            }
            _ => {}
        }
    }
    Some(SharedString::from(endpoint.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn templates_become_datadog_tag_values() {
        assert_eq!(endpoint_tag("/v1/payments/{id}"), "/v1/payments/:id");
        assert_eq!(endpoint_tag("/files/{*path}"), "/files/:path...");
        assert_eq!(endpoint_tag("/{a}/{b}"), "/:a/:b");
        assert_eq!(endpoint_tag("/{{literal}}"), "/_literal_");
        assert_eq!(endpoint_tag("/a|b,c#d@e f"), "/a_b_c_d_e_f");
        assert_eq!(endpoint_tag("/unclosed/{id"), "/unclosed/_id");
        assert_eq!(endpoint_tag("/{we ird}"), "/:we_ird");
        assert_eq!(endpoint_tag("/café/{id}"), "/café/:id");
        assert_eq!(endpoint_tag(""), UNMATCHED_ENDPOINT);
        assert!(matches!(endpoint_tag("/v1/payments"), Cow::Borrowed(_)));
        let long = format!("/{}", "x".repeat(300));
        assert_eq!(endpoint_tag(&long).chars().count(), MAX_ENDPOINT_CHARS);
    }

    #[test]
    fn rules_ignore_group_and_keep_in_order() {
        let rules = [
            RouteRule::ignore("/health"),
            RouteRule::group("/static/*", "/static"),
            RouteRule::ignore("/static/secret"),
            RouteRule::group(
                "/v1/payments/{id}/events/{*rest}",
                "/v1/payments/{id}/events",
            ),
        ];
        let resolve = |t: &str| resolve(t, &rules).map(|s| s.to_string());
        assert_eq!(resolve("/health"), None);
        assert_eq!(resolve("/healthz").as_deref(), Some("/healthz"));
        assert_eq!(resolve("/static/{*path}").as_deref(), Some("/static"));
        assert_eq!(resolve("/static/secret").as_deref(), Some("/static"));
        assert_eq!(
            resolve("/v1/payments/{id}/events/{*rest}").as_deref(),
            Some("/v1/payments/:id/events")
        );
        assert_eq!(
            resolve("/v1/payments/{id}").as_deref(),
            Some("/v1/payments/:id")
        );
        // A converted spelling matches the same template.
        let rules = [RouteRule::ignore("/v1/payments/:id")];
        assert_eq!(super::resolve("/v1/payments/{id}", &rules), None);
        // Requests no route matched can be left out too.
        let rules = [RouteRule::ignore(UNMATCHED_ENDPOINT)];
        assert_eq!(super::resolve(UNMATCHED_ENDPOINT, &rules), None);
        assert!(super::resolve("/unmatched", &rules).is_some());
    }

    proptest! {
        #[test]
        fn every_tag_value_survives_the_wire_unchanged(template in "\\PC{0,250}") {
            let value = endpoint_tag(&template);
            let wire = paymetrics::dogstatsd::sanitize::tag(ENDPOINT, &value);
            prop_assert_eq!(wire, format!("{ENDPOINT}:{value}"));
        }
    }
}
