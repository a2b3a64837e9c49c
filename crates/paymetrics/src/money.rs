//! Amounts in integer minor units (cents, yen, fils), as payment systems keep them.
//!
//! The typed events record amounts as `f64` in major units (euros, not cents), because that is
//! what a distribution carries. [`Money`] converts from the integer minor units a ledger holds,
//! with the currency's ISO 4217 exponent: `12345` EUR cents are `123.45`, `12345` JPY are
//! `12345.0`, `12345` KWD fils are `12.345`. Use it wherever an event takes an amount, fees or a
//! fraud loss (`f64: From<Money>`).
//!
//! ```
//! use paymetrics::{
//!     events::{BusinessEvents, PaymentAttempt, PaymentMethod, payment},
//!     money::Money,
//! };
//!
//! let price = Money::from_minor(12_345, "EUR");
//! assert_eq!(price.amount(), 123.45);
//!
//! let recorded = paymetrics::testing::capture(|| {
//!     BusinessEvents::default().payment_attempt(&PaymentAttempt {
//!         amount: price.into(),
//!         currency: price.currency(),
//!         payment_method: PaymentMethod::Card,
//!         sender_id: "user-1842",
//!         sender_country: Some("DE"),
//!         receiver_country: None,
//!     });
//! });
//! assert_eq!(recorded.histogram(payment::AMOUNT, &[(payment::CURRENCY, "EUR")]), Some(vec![123.45]));
//! ```
//!
//! # Exponents
//!
//! From the ISO 4217 list (amendment 179): 0 for `BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX
//! UYI VND VUV XAF XOF XPF`, 3 for `BHD IQD JOD KWD LYD OMR TND`, 4 for `CLF UYW`, and 0 for the
//! codes without a minor unit (`XAG XAU XBA XBB XBC XBD XDR XPD XPT XSU XTS XUA XXX`: the amount
//! is whole units). Every other code, known or not, has [`DEFAULT_EXPONENT`] (2): no code makes
//! a conversion fail or panic.

use std::fmt;

/// The exponent of a currency this module does not list: 2, the exponent of most currencies.
pub const DEFAULT_EXPONENT: u8 = 2;

/// ISO 4217 codes whose exponent is not [`DEFAULT_EXPONENT`], sorted, with their exponent.
const EXPONENTS: &[(&str, u8)] = &[
    ("BHD", 3),
    ("BIF", 0),
    ("CLF", 4),
    ("CLP", 0),
    ("DJF", 0),
    ("GNF", 0),
    ("IQD", 3),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KMF", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("LYD", 3),
    ("OMR", 3),
    ("PYG", 0),
    ("RWF", 0),
    ("TND", 3),
    ("UGX", 0),
    ("UYI", 0),
    ("UYW", 4),
    ("VND", 0),
    ("VUV", 0),
    ("XAF", 0),
    ("XAG", 0),
    ("XAU", 0),
    ("XBA", 0),
    ("XBB", 0),
    ("XBC", 0),
    ("XBD", 0),
    ("XDR", 0),
    ("XOF", 0),
    ("XPD", 0),
    ("XPF", 0),
    ("XPT", 0),
    ("XSU", 0),
    ("XTS", 0),
    ("XUA", 0),
    ("XXX", 0),
];

/// `10^exponent` for every exponent [`EXPONENTS`] holds; each is exact in an `f64`, so a
/// division by it is correctly rounded.
const POWERS_OF_TEN: [f64; 5] = [1.0, 10.0, 100.0, 1_000.0, 10_000.0];

/// The code as three uppercase ASCII letters, or `None` when `raw` (trimmed) is not three
/// ASCII letters.
fn code(raw: &str) -> Option<[u8; 3]> {
    match raw.trim().as_bytes() {
        &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_alphabetic) => Some([
            a.to_ascii_uppercase(),
            b.to_ascii_uppercase(),
            c.to_ascii_uppercase(),
        ]),
        _ => None,
    }
}

/// The ISO 4217 exponent of `currency` (any case, surrounding spaces ignored): how many
/// decimal digits its minor unit has. [`DEFAULT_EXPONENT`] for codes not listed in the
/// [module docs](self) and for malformed input.
///
/// ```
/// use paymetrics::money::exponent;
/// assert_eq!(exponent("JPY"), 0);
/// assert_eq!(exponent("eur"), 2);
/// assert_eq!(exponent("KWD"), 3);
/// assert_eq!(exponent("CLF"), 4);
/// assert_eq!(exponent("ZZZ"), 2);
/// assert_eq!(exponent("not a code"), 2);
/// ```
pub fn exponent(currency: &str) -> u8 {
    code(currency).map_or(DEFAULT_EXPONENT, exponent_of)
}

fn exponent_of(code: [u8; 3]) -> u8 {
    EXPONENTS
        .binary_search_by(|(c, _)| c.as_bytes().cmp(&code[..]))
        .map_or(DEFAULT_EXPONENT, |i| EXPONENTS[i].1)
}

/// An amount of money as an integer number of its currency's minor units.
///
/// ```
/// use paymetrics::money::Money;
///
/// assert_eq!(Money::from_minor(12_345, "EUR").amount(), 123.45);
/// assert_eq!(Money::from_minor(12_345, "JPY").amount(), 12_345.0);
/// assert_eq!(Money::from_minor(12_345, "KWD").amount(), 12.345);
/// assert_eq!(Money::from_minor(-250, "usd").amount(), -2.5);
///
/// let fee = Money::from_minor(152, "EUR");
/// let fees: f64 = fee.into();
/// assert_eq!(fees, 1.52);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor_units: i64,
    code: [u8; 3],
    exponent: u8,
}

impl Money {
    /// `minor_units` of `currency` (an ISO 4217 code, any case), scaled by the currency's
    /// [`exponent`]. A code that is not three ASCII letters is kept as `XXX` ("no currency",
    /// recorded by the events as `other`) and scaled by [`DEFAULT_EXPONENT`].
    pub fn from_minor(minor_units: i64, currency: &str) -> Self {
        match code(currency) {
            Some(code) => Self {
                minor_units,
                code,
                exponent: exponent_of(code),
            },
            None => Self {
                minor_units,
                code: *b"XXX",
                exponent: DEFAULT_EXPONENT,
            },
        }
    }

    /// The amount in major units (euros, not cents), for the events' `amount`, `fees` and
    /// loss fields: the `f64` nearest to the exact decimal value while `|minor_units|` is at
    /// most 2^53 (about 9 × 10^15 minor units), as a `f64` can hold no more digits.
    pub fn amount(&self) -> f64 {
        // Dividing by an exact power of ten rounds once; multiplying by 0.01 would round twice
        // (0.01 is not exact in binary) and give 123.45000000000002 for 12345 cents.
        self.minor_units as f64 / POWERS_OF_TEN[usize::from(self.exponent)]
    }

    /// The amount in minor units, as given.
    pub fn minor_units(&self) -> i64 {
        self.minor_units
    }

    /// The currency's code, uppercase (`XXX` for a malformed code), for the events'
    /// `currency` field.
    pub fn currency(&self) -> &str {
        // Built only from ASCII letters.
        std::str::from_utf8(&self.code).unwrap_or("XXX")
    }

    /// The currency's exponent: the number of decimal digits of its minor unit.
    pub fn exponent(&self) -> u8 {
        self.exponent
    }
}

impl From<Money> for f64 {
    /// [`Money::amount`].
    fn from(money: Money) -> f64 {
        money.amount()
    }
}

impl fmt::Display for Money {
    /// The amount with exactly the currency's decimals, then the code: `123.45 EUR`,
    /// `12345 JPY`, `-0.050 KWD`. Exact (integer arithmetic), whatever the amount.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.minor_units < 0 { "-" } else { "" };
        let units = self.minor_units.unsigned_abs();
        let scale = 10u64.pow(u32::from(self.exponent));
        let (major, minor) = (units / scale, units % scale);
        let width = usize::from(self.exponent);
        if width == 0 {
            write!(f, "{sign}{major} {}", self.currency())
        } else {
            write!(f, "{sign}{major}.{minor:0width$} {}", self.currency())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_for_binary_search() {
        assert!(EXPONENTS.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(
            EXPONENTS
                .iter()
                .all(|(_, e)| usize::from(*e) < POWERS_OF_TEN.len())
        );
    }

    #[test]
    fn exact_amounts_for_every_exponent() {
        let cases: &[(i64, &str, f64)] = &[
            (12_345, "EUR", 123.45),
            (12_345, "USD", 123.45),
            (1, "USD", 0.01),
            (10, "GBP", 0.1),
            (12_345, "JPY", 12_345.0),
            (12_345, "KRW", 12_345.0),
            (12_345, "KWD", 12.345),
            (12_345, "BHD", 12.345),
            (12_345, "JOD", 12.345),
            (12_345, "OMR", 12.345),
            (12_345, "TND", 12.345),
            (12_345, "IQD", 12.345),
            (12_345, "LYD", 12.345),
            (12_345, "CLF", 1.2345),
            (7, "CLF", 0.0007),
            (12_345, "XAU", 12_345.0),
            (-99, "EUR", -0.99),
            (0, "EUR", 0.0),
            (i64::MIN, "JPY", i64::MIN as f64),
        ];
        for &(minor, currency, expected) in cases {
            let money = Money::from_minor(minor, currency);
            assert_eq!(money.amount(), expected, "{minor} {currency}");
            assert_eq!(f64::from(money), expected, "{minor} {currency}");
        }
    }

    #[test]
    fn every_cent_up_to_a_million_euros_converts_to_its_decimal_literal() {
        // The decimal text of the amount parses to the same f64: the conversion is the
        // correctly rounded one, not off by an ulp.
        for cents in (0..100_000_000i64).step_by(9_973) {
            let money = Money::from_minor(cents, "EUR");
            let text = format!("{}.{:02}", cents / 100, cents % 100);
            assert_eq!(money.amount(), text.parse::<f64>().unwrap(), "{text}");
        }
    }

    #[test]
    fn codes_are_normalised_and_unknown_or_malformed_ones_do_not_panic() {
        let m = Money::from_minor(500, " kwd ");
        assert_eq!((m.currency(), m.exponent(), m.amount()), ("KWD", 3, 0.5));
        let unknown = Money::from_minor(500, "ABC");
        assert_eq!((unknown.currency(), unknown.exponent()), ("ABC", 2));
        assert_eq!(unknown.amount(), 5.0);
        for malformed in ["", "EU", "EURO", "€€€", "E1R", "\u{0}\u{0}\u{0}"] {
            let m = Money::from_minor(500, malformed);
            assert_eq!((m.currency(), m.exponent(), m.amount()), ("XXX", 2, 5.0));
        }
        assert_eq!(exponent("ï"), DEFAULT_EXPONENT);
    }

    #[test]
    fn display_is_exact() {
        assert_eq!(Money::from_minor(12_345, "EUR").to_string(), "123.45 EUR");
        assert_eq!(Money::from_minor(5, "EUR").to_string(), "0.05 EUR");
        assert_eq!(Money::from_minor(-50, "KWD").to_string(), "-0.050 KWD");
        assert_eq!(Money::from_minor(12_345, "JPY").to_string(), "12345 JPY");
        assert_eq!(
            Money::from_minor(i64::MIN, "EUR").to_string(),
            "-92233720368547758.08 EUR"
        );
    }
}
