//! Thin wrappers around the system calls the daemon needs.
//!
//! This is the only module where `unsafe` is allowed. Each `unsafe` block calls one libc
//! function, is visible at its call site, and says on a `// SAFETY:` line why the call is sound.
//! `cvt` only turns the `-1`/errno convention into `io::Error`; it hides no unsafety.
#![allow(unsafe_code)]

use std::io;

pub mod eventfd;
pub mod netlink;
pub mod netns;
pub mod notify;
pub mod rtnetlink;
pub mod sched;
pub mod signal;
pub mod socket;

/// Maps libc's `-1` + errno return convention to `io::Result`.
pub(crate) fn cvt<T: IsMinusOne>(ret: T) -> io::Result<T> {
    if ret.is_minus_one() {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Integer types that libc functions return, where `-1` means "see errno".
pub(crate) trait IsMinusOne {
    fn is_minus_one(&self) -> bool;
}

macro_rules! impl_is_minus_one {
    ($($t:ty),*) => {$(
        impl IsMinusOne for $t {
            fn is_minus_one(&self) -> bool {
                *self == -1
            }
        }
    )*};
}
impl_is_minus_one!(i32, isize);
