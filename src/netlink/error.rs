//! The codec's error type.
//!
//! A small `Copy` enum whose variants carry a `&'static str` naming the field or attribute
//! that failed, so reporting an error never allocates and the hot event path can count it.

use core::fmt;

/// Why a netlink message or attribute could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The buffer ends before the named header or value does.
    Truncated(&'static str),
    /// A length field is impossible (shorter than its header) or an attribute has a size
    /// other than the one its type requires.
    BadLength(&'static str),
    /// A value is out of range for its field (e.g. an address of the wrong family).
    BadValue(&'static str),
    /// A required attribute is absent (e.g. a conntrack without CTA_TUPLE_ORIG).
    Missing(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated(what) => write!(f, "truncated {what}"),
            Self::BadLength(what) => write!(f, "bad length of {what}"),
            Self::BadValue(what) => write!(f, "bad value of {what}"),
            Self::Missing(what) => write!(f, "missing {what}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_display() {
        assert_eq!(
            Error::Truncated("nlmsghdr").to_string(),
            "truncated nlmsghdr"
        );
        assert_eq!(
            Error::BadLength("CTA_MARK").to_string(),
            "bad length of CTA_MARK"
        );
        assert_eq!(Error::BadValue("x").to_string(), "bad value of x");
        assert_eq!(
            Error::Missing("CTA_TUPLE_ORIG").to_string(),
            "missing CTA_TUPLE_ORIG"
        );
    }
}
