//! Sequence numbers with 32-bit serial arithmetic (wire-protocol.md §5).
//!
//! The C daemon compares sequence numbers with `before(a, b) ⇔ (int32)(a - b) < 0`, so the
//! counter may wrap past `u32::MAX` (it starts at the Unix time of the first message and
//! counts every message ever sent). Every comparison in `sync` goes through [`Seq`] so
//! that no plain `<` on raw numbers slips in.

use core::fmt;
use core::ops::{Add, Sub};

/// A sequence number of the sync protocol. Ordering is serial (wrapping), not numeric,
/// which is why there is no `PartialOrd`: it would not be transitive.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq(pub u32);

impl Seq {
    /// Signed distance `self - other` in serial arithmetic: negative when `self` is
    /// before `other`.
    #[inline]
    pub const fn distance(self, other: Self) -> i32 {
        // The cast is the C daemon's `(int32_t)(a - b)`.
        self.0.wrapping_sub(other.0) as i32
    }

    /// `self` comes strictly before `other` (the C `before()`).
    #[inline]
    pub const fn before(self, other: Self) -> bool {
        self.distance(other) < 0
    }

    /// `self` comes strictly after `other` (the C `after()`).
    #[inline]
    pub const fn after(self, other: Self) -> bool {
        other.before(self)
    }

    /// `from <= self <= to` in serial arithmetic; the resend-queue test for ACK and NACK
    /// ranges (sync-modes.md §2.3 step 4).
    #[inline]
    pub const fn within(self, from: Self, to: Self) -> bool {
        !self.before(from) && !self.after(to)
    }

    /// The number after this one.
    #[inline]
    pub const fn next(self) -> Self {
        Self(self.0.wrapping_add(1))
    }
}

impl Add<u32> for Seq {
    type Output = Self;
    fn add(self, rhs: u32) -> Self {
        Self(self.0.wrapping_add(rhs))
    }
}

impl Sub<u32> for Seq {
    type Output = Self;
    fn sub(self, rhs: u32) -> Self {
        Self(self.0.wrapping_sub(rhs))
    }
}

impl From<u32> for Seq {
    fn from(v: u32) -> Self {
        Self(v)
    }
}

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seq({})", self.0)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn test_compare_plain() {
        let (a, b) = (Seq(100), Seq(200));
        assert!(a.before(b) && b.after(a));
        assert!(!a.before(a) && !a.after(a));
        assert_eq!(b.distance(a), 100);
        assert_eq!(a.distance(b), -100);
    }

    #[test]
    fn test_compare_across_wrap() {
        let last = Seq(u32::MAX);
        let first = Seq(0);
        assert!(last.before(first), "MAX is before 0 after wrapping");
        assert!(first.after(last));
        assert_eq!(last.next(), first);
        assert_eq!(first.distance(last), 1);
        assert_eq!(Seq(5).distance(Seq(u32::MAX - 4)), 10);
        assert_eq!(Seq(3) - 5, Seq(u32::MAX - 1));
        assert_eq!(Seq(u32::MAX - 1) + 5, Seq(3));
        assert!(Seq(2).within(Seq(u32::MAX - 2), Seq(4)));
        assert!(Seq(u32::MAX).within(Seq(u32::MAX - 2), Seq(4)));
        assert!(!Seq(5).within(Seq(u32::MAX - 2), Seq(4)));
        assert!(!Seq(u32::MAX - 3).within(Seq(u32::MAX - 2), Seq(4)));
    }

    #[test]
    fn test_half_space() {
        // Exactly half the space apart: C's (int32) cast makes the larger one "before".
        let a = Seq(0);
        let b = Seq(0x8000_0000);
        assert!(b.before(a));
        assert!(a.before(Seq(0x7fff_ffff)));
    }

    #[test]
    fn test_unix_time_start() {
        // A counter seeded with the Unix time of the captured FTFW exchange.
        let s = Seq(0x6b06_c9ac);
        assert!(s.before(s + 1) && (s + 1).within(s, s + 300));
    }
}
