//! Where a message's `message_type` tag comes from: a header, or a classifier of the
//! application's own. The value is bounded afterwards, by the
//! [`BusinessEvents`](paymetrics::events::BusinessEvents) handle's cap on distinct values.

use std::{fmt, sync::Arc};

use async_nats::HeaderMap;

/// Names the type of a message from its subject, headers and payload: a name shared by many
/// messages (`payout_requested`), never an id. `None` records `unknown`.
///
/// Any `Fn(&str, Option<&HeaderMap>, &[u8]) -> Option<&'static str>` is a classifier:
///
/// ```
/// use async_nats::HeaderMap;
/// use paymetrics_nats::MessageClassifier;
///
/// let by_subject = |subject: &str, _: Option<&HeaderMap>, _: &[u8]| -> Option<&'static str> {
///     subject.starts_with("payouts.").then_some("payout")
/// };
/// assert_eq!(by_subject.classify("payouts.eu", None, b""), Some("payout"));
/// ```
pub trait MessageClassifier: Send + Sync + 'static {
    /// The message's type, borrowed from the message or static. Called once per message
    /// published or consumed, so keep it cheap.
    fn classify<'m>(
        &self,
        subject: &'m str,
        headers: Option<&'m HeaderMap>,
        payload: &'m [u8],
    ) -> Option<&'m str>;
}

impl<F> MessageClassifier for F
where
    F: Fn(&str, Option<&HeaderMap>, &[u8]) -> Option<&'static str> + Send + Sync + 'static,
{
    fn classify<'m>(
        &self,
        subject: &'m str,
        headers: Option<&'m HeaderMap>,
        payload: &'m [u8],
    ) -> Option<&'m str> {
        self(subject, headers, payload)
    }
}

/// Where `message_type` comes from. NATS has no standard type field, so by default every
/// message is `unknown`.
///
/// ```
/// use async_nats::HeaderMap;
/// use paymetrics_nats::MessageType;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("Payment-Event", "refund");
///
/// assert_eq!(MessageType::header("Payment-Event").of("refunds", Some(&headers), b""), Some("refund"));
/// assert_eq!(MessageType::header("Missing").of("refunds", Some(&headers), b""), None);
/// assert_eq!(MessageType::None.of("refunds", Some(&headers), b""), None);
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum MessageType {
    /// None: every message is `unknown`. The default.
    #[default]
    None,
    /// A header.
    Header(Arc<str>),
    /// A classifier of your own.
    Classifier(Arc<dyn MessageClassifier>),
}

impl fmt::Debug for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageType::None => f.write_str("None"),
            MessageType::Header(name) => f.debug_tuple("Header").field(name).finish(),
            MessageType::Classifier(_) => f.write_str("Classifier(..)"),
        }
    }
}

impl MessageType {
    /// From the header `name`.
    pub fn header(name: &str) -> Self {
        MessageType::Header(Arc::from(name))
    }

    /// From `classifier`.
    pub fn classifier(classifier: impl MessageClassifier) -> Self {
        MessageType::Classifier(Arc::new(classifier))
    }

    /// The type of a message, unbounded yet (the events handle bounds it).
    pub fn of<'m>(
        &self,
        subject: &'m str,
        headers: Option<&'m HeaderMap>,
        payload: &'m [u8],
    ) -> Option<&'m str> {
        match self {
            MessageType::None => None,
            MessageType::Header(name) => headers?.get(&**name).map(|v| v.as_str()),
            MessageType::Classifier(classifier) => classifier.classify(subject, headers, payload),
        }
    }
}
