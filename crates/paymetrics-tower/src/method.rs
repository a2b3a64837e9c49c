//! The closed set of HTTP methods used as the `method` tag by both layers.

use http::Method;

/// Number of distinct `method` tag values: the nine standard methods and `other`.
pub(crate) const COUNT: usize = 10;

/// The index of `HEAD`.
pub(crate) const HEAD: u8 = 1;

/// The tag value of every method outside the standard nine (extension methods).
pub(crate) const OTHER: &str = "other";

/// Tag values, indexed by [`index`].
pub(crate) const NAMES: [&str; COUNT] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", OTHER,
];

/// The method's index into [`NAMES`]; extension methods map to `other`, so the tag is bounded.
pub(crate) fn index(method: &Method) -> u8 {
    // Compared one by one: `Method`'s standard variants compare without touching bytes.
    const STANDARD: [Method; COUNT - 1] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ];
    STANDARD
        .iter()
        .position(|m| m == method)
        .unwrap_or(COUNT - 1) as u8
}

/// The tag value of `method`.
pub(crate) fn name(method: &Method) -> &'static str {
    NAMES[usize::from(index(method))]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_keep_their_name_and_others_fold() {
        for (i, m) in [Method::GET, Method::POST, Method::PATCH]
            .iter()
            .enumerate()
        {
            assert_eq!(name(m), m.as_str(), "{i}");
        }
        assert_eq!(name(&Method::HEAD), NAMES[usize::from(HEAD)]);
        assert_eq!(name(&Method::from_bytes(b"PURGE").unwrap()), OTHER);
        assert_eq!(name(&Method::from_bytes(b"get").unwrap()), OTHER);
    }
}
