//! Normalising the tag values the original strategy leaves open, so that no caller can explode cardinality.
//!
//! * **Currencies** become one of [`CURRENCIES`] (common ISO 4217 codes, matched
//!   case-insensitively), or [`OTHER`].
//! * **Countries** become two uppercase ASCII letters (ISO 3166-1 alpha-2 shape), or
//!   [`UNKNOWN`]: at most 677 values.
//! * **Open strings** (model versions, referrers, queue names, message types, health
//!   components, external services) are [sanitised](sanitize) and then interned per tag key: the
//!   first [`DEFAULT_MAX_VALUES_PER_TAG`] distinct values (configurable on the
//!   [`BusinessEvents`](super::BusinessEvents) handle) keep their name, later ones are recorded
//!   as [`OTHER`].
//!
//! Closed sets (payment methods, statuses, fraud actions, ...) are enums and need none of this.
//!
//! ```
//! use paymetrics::events::normalize;
//!
//! assert_eq!(normalize::currency(" eur "), "EUR");
//! assert_eq!(normalize::currency("euros"), "other");
//! assert_eq!(normalize::country(Some("de")), "DE");
//! assert_eq!(normalize::country(Some("DEU")), "unknown");
//! assert_eq!(normalize::sanitize(" fraud model\nv2 "), "fraud_model_v2");
//! ```

use std::{
    borrow::Cow,
    collections::HashMap,
    hash::BuildHasherDefault,
    sync::{Arc, PoisonError, RwLock},
};

use metrics::SharedString;

use super::business::{FastHasher, Sharded};

/// Tag value for a currency outside [`CURRENCIES`] and for open values past their tag's cap.
pub const OTHER: &str = "other";
/// Tag value for a missing or malformed country, and the default for several open tags.
pub const UNKNOWN: &str = "unknown";
/// The longest open tag value kept, in characters; longer values are cut.
pub const MAX_VALUE_LENGTH: usize = 64;
/// Distinct values each open tag key keeps before recording [`OTHER`].
pub const DEFAULT_MAX_VALUES_PER_TAG: usize = 50;

/// The currencies kept as tag values (sorted): the currencies PayPal settles in and the other
/// most-traded ISO 4217 codes. Any other code is recorded as [`OTHER`].
pub const CURRENCIES: &[&str] = &[
    "AED", "ARS", "AUD", "BDT", "BGN", "BHD", "BRL", "CAD", "CHF", "CLP", "CNY", "COP", "CZK",
    "DKK", "EGP", "EUR", "GBP", "GHS", "HKD", "HUF", "IDR", "ILS", "INR", "ISK", "JOD", "JPY",
    "KES", "KRW", "KWD", "KZT", "LKR", "MAD", "MXN", "MYR", "NGN", "NOK", "NZD", "OMR", "PEN",
    "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR", "SEK", "SGD", "THB", "TRY", "TWD",
    "UAH", "USD", "UYU", "VND", "XAF", "XOF", "ZAR",
];

/// The index of `raw` in [`CURRENCIES`], or `CURRENCIES.len()` for [`OTHER`]. No allocation.
pub(crate) fn currency_index(raw: &str) -> u8 {
    let other = CURRENCIES.len() as u8;
    let b = raw.trim().as_bytes();
    if b.len() != 3 || !b.iter().all(u8::is_ascii_alphabetic) {
        return other;
    }
    let code = [
        b[0].to_ascii_uppercase(),
        b[1].to_ascii_uppercase(),
        b[2].to_ascii_uppercase(),
    ];
    CURRENCIES
        .binary_search_by(|c| c.as_bytes().cmp(&code[..]))
        .map_or(other, |i| i as u8)
}

/// The tag value of a currency index from [`currency_index`].
pub(crate) fn currency_str(index: u8) -> &'static str {
    CURRENCIES.get(usize::from(index)).copied().unwrap_or(OTHER)
}

/// The `currency` tag value of `raw`: its uppercase ISO 4217 code if it is one of
/// [`CURRENCIES`], else [`OTHER`].
pub fn currency(raw: &str) -> &'static str {
    currency_str(currency_index(raw))
}

/// Every two-letter uppercase pair, `AA` to `ZZ`, so country tag values are `&'static str`.
static ALPHA2: [u8; 26 * 26 * 2] = {
    let mut pairs = [0u8; 26 * 26 * 2];
    let mut i = 0;
    while i < 26 * 26 {
        pairs[2 * i] = b'A' + (i / 26) as u8;
        pairs[2 * i + 1] = b'A' + (i % 26) as u8;
        i += 1;
    }
    pairs
};

/// A country as a number: 0 for [`UNKNOWN`], else `1 + 26 * first + second`. No allocation.
pub(crate) fn country_code(raw: Option<&str>) -> u16 {
    let Some(raw) = raw else { return 0 };
    match raw.trim().as_bytes() {
        &[a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            let a = u16::from(a.to_ascii_uppercase() - b'A');
            let b = u16::from(b.to_ascii_uppercase() - b'A');
            1 + a * 26 + b
        }
        _ => 0,
    }
}

/// The tag value of a code from [`country_code`].
pub(crate) fn country_str(code: u16) -> &'static str {
    if code == 0 || usize::from(code) > 26 * 26 {
        return UNKNOWN;
    }
    let i = usize::from(code - 1) * 2;
    std::str::from_utf8(&ALPHA2[i..i + 2]).unwrap_or(UNKNOWN)
}

/// The country tag value of `raw`: two ASCII letters, uppercased, else [`UNKNOWN`] (also for
/// `None`).
pub fn country(raw: Option<&str>) -> &'static str {
    country_str(country_code(raw))
}

fn keep(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':' | '{' | '}')
}

/// Sanitises an open tag value: surrounding whitespace trimmed; ASCII letters, digits and
/// `_ - . / : { }` kept, every other character (spaces, newlines, DogStatsD delimiters,
/// non-ASCII) replaced by `_`; cut to [`MAX_VALUE_LENGTH`] characters. Case is kept. Borrows
/// when nothing changes.
pub fn sanitize(raw: &str) -> Cow<'_, str> {
    let trimmed = raw.trim();
    if trimmed.len() <= MAX_VALUE_LENGTH && trimmed.chars().all(keep) {
        return Cow::Borrowed(trimmed);
    }
    Cow::Owned(
        trimmed
            .chars()
            .take(MAX_VALUE_LENGTH)
            .map(|c| if keep(c) { c } else { '_' })
            .collect(),
    )
}

/// The id of [`OTHER`] in every [`Interner`].
pub(crate) const OTHER_ID: u16 = 0;
/// The id of an interner's default value (`None` or an empty string).
pub(crate) const DEFAULT_ID: u16 = 1;

/// Bounded interning of one open tag key's values: a value maps to a small id (for the handle
/// caches' keys) and back to a shared string (for labels).
#[derive(Debug)]
pub(crate) struct Interner {
    max_values: usize,
    /// Spellings remembered (raw and sanitised), at most `4 * max_values + 16` of them.
    max_spellings: usize,
    /// Each thread's copy of the spellings it has looked up (see [`Sharded`]).
    local: Sharded<Spellings>,
    state: RwLock<InternState>,
}

type Spellings = HashMap<Box<str>, u16, BuildHasherDefault<FastHasher>>;

#[derive(Debug)]
struct InternState {
    ids: Spellings,
    /// Id to tag value; `[0]` is [`OTHER`], `[1]` the default.
    values: Vec<SharedString>,
}

impl Interner {
    /// Keeps up to `max_values` distinct values besides [`OTHER`] and `default`.
    pub(crate) fn new(default: &'static str, max_values: usize) -> Self {
        let max_values = max_values.min(usize::from(u16::MAX) - 2);
        let mut ids = HashMap::default();
        ids.insert(Box::from(OTHER), OTHER_ID);
        ids.insert(Box::from(default), DEFAULT_ID);
        Self {
            max_values,
            max_spellings: 4 * max_values + 16,
            local: Sharded::default(),
            state: RwLock::new(InternState {
                ids,
                values: vec![
                    SharedString::const_str(OTHER),
                    SharedString::const_str(default),
                ],
            }),
        }
    }

    /// The id of `raw` (`None` is the default value). Allocation-free once `raw` has been seen.
    #[inline]
    pub(crate) fn id(&self, raw: Option<&str>) -> u16 {
        let Some(raw) = raw else { return DEFAULT_ID };
        let local = self.local.get();
        if let Some(&id) = local
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(raw)
        {
            return id;
        }
        self.id_slow(local, raw)
    }

    #[cold]
    #[inline(never)]
    fn id_slow(&self, local: &RwLock<Spellings>, raw: &str) -> u16 {
        let known = self
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .ids
            .get(raw)
            .copied();
        let id = known.unwrap_or_else(|| self.intern(raw));
        let mut local = local.write().unwrap_or_else(PoisonError::into_inner);
        if local.len() < self.max_spellings {
            local.insert(Box::from(raw), id);
        }
        id
    }

    fn intern(&self, raw: &str) -> u16 {
        let clean = sanitize(raw);
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let id = if clean.is_empty() {
            DEFAULT_ID
        } else if let Some(&id) = state.ids.get(clean.as_ref()) {
            id
        } else if state.values.len() - 2 < self.max_values && state.ids.len() < self.max_spellings {
            let id = state.values.len() as u16;
            let value: Arc<str> = Arc::from(clean.as_ref());
            state.values.push(SharedString::from(value));
            state.ids.insert(Box::from(clean.as_ref()), id);
            id
        } else {
            OTHER_ID
        };
        // Remember this spelling too (bounded), so the next lookup is one probe.
        if state.ids.len() < self.max_spellings {
            state.ids.entry(Box::from(raw)).or_insert(id);
        }
        id
    }

    /// The tag value of `id`.
    pub(crate) fn value(&self, id: u16) -> SharedString {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state
            .values
            .get(usize::from(id))
            .cloned()
            .unwrap_or(SharedString::const_str(OTHER))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_sorted_unique_codes() {
        assert!(CURRENCIES.windows(2).all(|w| w[0] < w[1]));
        assert!(
            CURRENCIES.len() < 128,
            "indexes must fit the cache key's 7 bits"
        );
        for c in CURRENCIES {
            assert_eq!(currency(c), *c);
            assert_eq!(currency(&c.to_lowercase()), *c);
        }
        for weird in ["", "EU", "EURO", "E1R", "€", "XYZ", "usd\n", "ÉUR"] {
            let want = if weird == "usd\n" { "USD" } else { OTHER };
            assert_eq!(currency(weird), want, "{weird:?}");
        }
    }

    #[test]
    fn countries_are_two_uppercase_letters() {
        assert_eq!(country(Some("us")), "US");
        assert_eq!(country(Some(" gB ")), "GB");
        assert_eq!(country(Some("AA")), "AA");
        assert_eq!(country(Some("ZZ")), "ZZ");
        for weird in ["", "U", "USA", "U1", "ü", "ÜS"] {
            assert_eq!(country(Some(weird)), UNKNOWN, "{weird:?}");
        }
        assert_eq!(country(None), UNKNOWN);
        for code in 1..=676 {
            let s = country_str(code);
            assert_eq!(country_code(Some(s)), code);
        }
    }

    #[test]
    fn sanitize_keeps_safe_ascii_and_cuts() {
        assert!(matches!(
            sanitize("fraud-v2.1"),
            Cow::Borrowed("fraud-v2.1")
        ));
        assert_eq!(sanitize("a|b,c#d@e f"), "a_b_c_d_e_f");
        assert_eq!(sanitize("/v1/charges/{id}"), "/v1/charges/{id}");
        assert_eq!(sanitize("modèle"), "mod_le");
        assert_eq!(sanitize(&"x".repeat(500)).len(), MAX_VALUE_LENGTH);
        assert_eq!(sanitize("é".repeat(500).as_str()).len(), MAX_VALUE_LENGTH);
    }

    #[test]
    fn interner_caps_distinct_values_and_bounds_memory() {
        let interner = Interner::new(UNKNOWN, 3);
        assert_eq!(interner.id(None), DEFAULT_ID);
        assert_eq!(interner.id(Some("  ")), DEFAULT_ID);
        assert_eq!(interner.id(Some("unknown")), DEFAULT_ID);
        assert_eq!(interner.id(Some("other")), OTHER_ID);
        let a = interner.id(Some("v1"));
        assert_eq!(interner.id(Some(" v1 ")), a);
        assert_eq!(&*interner.value(a), "v1");
        let b = interner.id(Some("v 2"));
        assert_eq!(&*interner.value(b), "v_2");
        let c = interner.id(Some("v3"));
        assert_eq!(interner.id(Some("v4")), OTHER_ID);
        assert_eq!(&*interner.value(OTHER_ID), OTHER);
        assert_eq!([a, b, c], [2, 3, 4]);
        for i in 0..10_000 {
            assert_eq!(interner.id(Some(&format!("overflow-{i}"))), OTHER_ID);
        }
        let state = interner.state.read().unwrap();
        assert!(state.ids.len() <= interner.max_spellings);
        assert!(interner.local.get().read().unwrap().len() <= interner.max_spellings);
        assert_eq!(state.values.len(), 5);
    }
}
