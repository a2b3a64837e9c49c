//! Key classifiers: how a key becomes its bounded `key_pattern` tag (`user:42` -> `user`).
//!
//! A classifier only names patterns; the connection bounds how many distinct names it accepts
//! (see [`InstrumentedConnectionBuilder::max_key_patterns`](crate::InstrumentedConnectionBuilder::max_key_patterns)).

use crate::KEY_PATTERN_OTHER;

/// Turns a key into its `key_pattern` tag value: a name shared by many keys, never the key.
///
/// The pattern may be a `&'static str` or a part of the key itself (for example its prefix, as
/// [`PrefixClassifier`] does): the connection copies each new pattern once and stops accepting
/// new ones past its cap, recording [`KEY_PATTERN_OTHER`] instead.
///
/// Any `Fn(&[u8]) -> &'static str` is a classifier:
///
/// ```
/// use paymetrics_redis::KeyClassifier;
///
/// let classify = |key: &[u8]| -> &'static str {
///     if key.starts_with(b"user:") {
///         "user"
///     } else if key.starts_with(b"fx:") {
///         "fx_rate"
///     } else {
///         "other"
///     }
/// };
/// assert_eq!(classify.classify(b"user:42"), "user");
/// ```
pub trait KeyClassifier: Send + Sync + 'static {
    /// The pattern of `key`: a static name or a part of `key`; [`KEY_PATTERN_OTHER`] when none
    /// fits. Called once per command (once per key for `MGET`), so keep it cheap.
    fn classify<'k>(&self, key: &'k [u8]) -> &'k str;
}

impl<F> KeyClassifier for F
where
    F: Fn(&[u8]) -> &'static str + Send + Sync + 'static,
{
    fn classify<'k>(&self, key: &'k [u8]) -> &'k str {
        self(key)
    }
}

/// The default classifier: the part of the key before its first `:` when that part is short
/// (1 to [`PrefixClassifier::MAX_LEN`] bytes) and made of ASCII letters, `_` and `-`;
/// otherwise [`KEY_PATTERN_OTHER`].
///
/// `user:42` -> `user`, `fx_rate:EUR:USD` -> `fx_rate`, `42:user` -> `other`,
/// `session` -> `other`.
///
/// ```
/// use paymetrics_redis::{KeyClassifier, PrefixClassifier};
///
/// assert_eq!(PrefixClassifier.classify(b"user:42"), "user");
/// assert_eq!(PrefixClassifier.classify(b"fx_rate:EUR:USD"), "fx_rate");
/// assert_eq!(PrefixClassifier.classify(b"7f3a:user"), "other");
/// assert_eq!(PrefixClassifier.classify(b"no-separator"), "other");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PrefixClassifier;

impl PrefixClassifier {
    /// The longest prefix taken as a pattern, in bytes.
    pub const MAX_LEN: usize = 32;
}

impl KeyClassifier for PrefixClassifier {
    fn classify<'k>(&self, key: &'k [u8]) -> &'k str {
        let window = &key[..key.len().min(Self::MAX_LEN + 1)];
        let Some(end) = window.iter().position(|&b| b == b':') else {
            return KEY_PATTERN_OTHER;
        };
        let prefix = &key[..end];
        if prefix.is_empty()
            || !prefix
                .iter()
                .all(|b| b.is_ascii_alphabetic() || *b == b'_' || *b == b'-')
        {
            return KEY_PATTERN_OTHER;
        }
        // Only ASCII letters, `_` and `-`: valid UTF-8.
        std::str::from_utf8(prefix).unwrap_or(KEY_PATTERN_OTHER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_classifier_takes_short_alphabetic_prefixes_only() {
        let c = PrefixClassifier;
        assert_eq!(c.classify(b"user:42"), "user");
        assert_eq!(c.classify(b"user_profile:42:settings"), "user_profile");
        assert_eq!(c.classify(b"rate-limit:ip"), "rate-limit");
        assert_eq!(c.classify(b":42"), "other");
        assert_eq!(c.classify(b"42:user"), "other");
        assert_eq!(c.classify(b"user42:x"), "other");
        assert_eq!(c.classify(b"user"), "other");
        assert_eq!(c.classify(b""), "other");
        assert_eq!(c.classify("ünï:x".as_bytes()), "other");
        let long = format!("{}:x", "a".repeat(PrefixClassifier::MAX_LEN));
        assert_eq!(c.classify(long.as_bytes()), "a".repeat(32));
        let too_long = format!("{}:x", "a".repeat(PrefixClassifier::MAX_LEN + 1));
        assert_eq!(c.classify(too_long.as_bytes()), "other");
    }
}
