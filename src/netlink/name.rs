//! Short strings kept inline (helper and expectation-function names), so that a parsed
//! conntrack or expectation owns no heap memory and stays `Copy`.

use super::error::Error;
use core::fmt;

/// Up to `N - 1` bytes of a name (one byte is reserved for the NUL the kernel's limit counts).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InlineName<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

/// A conntrack helper name (`CTA_HELP_NAME`, `CTA_EXPECT_HELP_NAME`): the kernel's
/// `NF_CT_HELPER_NAME_LEN` is 16 including the NUL, so at most 15 bytes.
pub type HelperName = InlineName<16>;

/// An expectation function name (`CTA_EXPECT_FN`, e.g. `nat-follow-master`); the sync
/// protocol carries at most 27 visible bytes, the buffer allows 31.
pub type FnName = InlineName<32>;

impl<const N: usize> InlineName<N> {
    /// Copies `name` (without NUL); longer than `N - 1` bytes is [`Error::BadLength`], an
    /// embedded NUL is [`Error::BadValue`].
    pub fn new(name: &[u8]) -> Result<Self, Error> {
        if name.len() >= N || N > 256 {
            return Err(Error::BadLength("name"));
        }
        if name.contains(&0) {
            return Err(Error::BadValue("name"));
        }
        let mut bytes = [0; N];
        bytes[..name.len()].copy_from_slice(name);
        Ok(Self {
            len: name.len() as u8,
            bytes,
        })
    }

    /// The name's bytes, without NUL.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The name as text, if it is UTF-8 (kernel names are ASCII).
    pub fn as_str(&self) -> Option<&str> {
        core::str::from_utf8(self.as_bytes()).ok()
    }
}

impl<const N: usize> TryFrom<&str> for InlineName<N> {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self, Error> {
        Self::new(s.as_bytes())
    }
}

impl<const N: usize> fmt::Debug for InlineName<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_bytes().escape_ascii().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_name() {
        let n = HelperName::try_from("ftp").unwrap();
        assert_eq!(n.as_bytes(), b"ftp");
        assert_eq!(n.as_str(), Some("ftp"));
        assert_eq!(format!("{n:?}"), "\"ftp\"");
        assert!(HelperName::new(&[b'a'; 15]).is_ok());
        assert_eq!(HelperName::new(&[b'a'; 16]), Err(Error::BadLength("name")));
        assert_eq!(HelperName::new(b"a\0b"), Err(Error::BadValue("name")));
        assert!(FnName::try_from("nat-follow-master").is_ok());
    }
}
