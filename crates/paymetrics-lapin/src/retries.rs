//! A delivery's retry count, from what the broker tells about its earlier deliveries.

use lapin::{
    BasicProperties,
    types::{AMQPValue, FieldTable},
};

/// The `x-delivery-count` header quorum queues set on redeliveries.
const DELIVERY_COUNT: &str = "x-delivery-count";
/// The header listing the dead-letterings a message went through.
const X_DEATH: &str = "x-death";

/// Earlier deliveries of a message, as the broker tells them: `x-delivery-count` (quorum
/// queues) or else 1 if `redelivered` is set, plus the `count` of every `x-death` entry (each a
/// trip through a dead-letter exchange).
///
/// ```
/// use lapin::{BasicProperties, types::{AMQPValue, FieldArray, FieldTable}};
/// use paymetrics_lapin::retry_count;
///
/// let mut death = FieldTable::default();
/// death.insert("count".into(), AMQPValue::LongLongInt(2));
/// death.insert("reason".into(), AMQPValue::LongString("rejected".into()));
/// let mut headers = FieldTable::default();
/// headers.insert("x-death".into(), AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(death)])));
/// let properties = BasicProperties::default().with_headers(headers);
///
/// assert_eq!(retry_count(&BasicProperties::default(), false), 0);
/// assert_eq!(retry_count(&BasicProperties::default(), true), 1);
/// assert_eq!(retry_count(&properties, false), 2);
/// assert_eq!(retry_count(&properties, true), 3);
/// ```
pub fn retry_count(properties: &BasicProperties, redelivered: bool) -> u32 {
    let headers = properties.headers().as_ref();
    let deliveries = headers
        .and_then(|h| h.inner().get(DELIVERY_COUNT))
        .and_then(as_u32)
        .unwrap_or(u32::from(redelivered));
    deliveries.saturating_add(headers.map_or(0, deaths))
}

/// The quorum-queue delivery count alone (0 when absent).
pub(crate) fn delivery_count(properties: &BasicProperties) -> u32 {
    properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(DELIVERY_COUNT))
        .and_then(as_u32)
        .unwrap_or(0)
}

fn deaths(headers: &FieldTable) -> u32 {
    let Some(AMQPValue::FieldArray(entries)) = headers.inner().get(X_DEATH) else {
        return 0;
    };
    entries
        .as_slice()
        .iter()
        .filter_map(|entry| match entry {
            AMQPValue::FieldTable(table) => table.inner().get("count").and_then(as_u32),
            _ => None,
        })
        .fold(0u32, u32::saturating_add)
}

fn as_u32(value: &AMQPValue) -> Option<u32> {
    let n: i64 = match *value {
        AMQPValue::ShortShortInt(n) => n.into(),
        AMQPValue::ShortShortUInt(n) => n.into(),
        AMQPValue::ShortInt(n) => n.into(),
        AMQPValue::ShortUInt(n) => n.into(),
        AMQPValue::LongInt(n) => n.into(),
        AMQPValue::LongUInt(n) => n.into(),
        AMQPValue::LongLongInt(n) => n,
        _ => return None,
    };
    u32::try_from(n.max(0)).ok().or(Some(u32::MAX))
}
