//! Where a message's `message_type` tag comes from: the AMQP `type` property, a header, or a
//! classifier of the application's own. The value is bounded afterwards, by the
//! [`BusinessEvents`](paymetrics::events::BusinessEvents) handle's cap on distinct values.

use std::{fmt, sync::Arc};

use lapin::{
    BasicProperties,
    types::{AMQPValue, ShortString},
};

/// Names the type of a message from its properties and payload: a name shared by many
/// messages (`settle_batch`), never an id. `None` records `unknown`.
///
/// Any `Fn(&BasicProperties, &[u8]) -> Option<&'static str>` is a classifier:
///
/// ```
/// use lapin::BasicProperties;
/// use paymetrics_lapin::MessageClassifier;
///
/// let by_prefix = |_: &BasicProperties, payload: &[u8]| -> Option<&'static str> {
///     payload.starts_with(b"{\"refund\"").then_some("refund")
/// };
/// assert_eq!(by_prefix.classify(&BasicProperties::default(), b"{\"refund\":1}"), Some("refund"));
/// ```
pub trait MessageClassifier: Send + Sync + 'static {
    /// The message's type, borrowed from the message or static. Called once per message
    /// published or consumed, so keep it cheap.
    fn classify<'m>(&self, properties: &'m BasicProperties, payload: &'m [u8]) -> Option<&'m str>;
}

impl<F> MessageClassifier for F
where
    F: Fn(&BasicProperties, &[u8]) -> Option<&'static str> + Send + Sync + 'static,
{
    fn classify<'m>(&self, properties: &'m BasicProperties, payload: &'m [u8]) -> Option<&'m str> {
        self(properties, payload)
    }
}

/// Where `message_type` comes from.
///
/// ```
/// use lapin::{BasicProperties, types::{AMQPValue, FieldTable}};
/// use paymetrics_lapin::MessageType;
///
/// let mut headers = FieldTable::default();
/// headers.insert("event".into(), AMQPValue::LongString("refund".into()));
/// let properties = BasicProperties::default().with_headers(headers).with_type("ignored".into());
///
/// assert_eq!(MessageType::Property.of(&properties, b""), Some("ignored"));
/// assert_eq!(MessageType::header("event").of(&properties, b""), Some("refund"));
/// assert_eq!(MessageType::header("missing").of(&properties, b""), None);
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum MessageType {
    /// The AMQP `type` property (`BasicProperties::with_kind`). The default.
    #[default]
    Property,
    /// A header holding a string.
    Header(ShortString),
    /// A classifier of your own.
    Classifier(Arc<dyn MessageClassifier>),
    /// None: every message is `unknown`.
    None,
}

impl fmt::Debug for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageType::Property => f.write_str("Property"),
            MessageType::Header(name) => f.debug_tuple("Header").field(name).finish(),
            MessageType::Classifier(_) => f.write_str("Classifier(..)"),
            MessageType::None => f.write_str("None"),
        }
    }
}

impl MessageType {
    /// From the header `name`.
    pub fn header(name: &str) -> Self {
        MessageType::Header(name.into())
    }

    /// From `classifier`.
    pub fn classifier(classifier: impl MessageClassifier) -> Self {
        MessageType::Classifier(Arc::new(classifier))
    }

    /// The type of a message, unbounded yet (the events handle bounds it).
    pub fn of<'m>(&self, properties: &'m BasicProperties, payload: &'m [u8]) -> Option<&'m str> {
        match self {
            MessageType::Property => properties.kind().as_ref().map(ShortString::as_str),
            MessageType::Header(name) => match properties.headers().as_ref()?.inner().get(name)? {
                AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
                AMQPValue::ShortString(s) => Some(s.as_str()),
                _ => None,
            },
            MessageType::Classifier(classifier) => classifier.classify(properties, payload),
            MessageType::None => None,
        }
    }
}
