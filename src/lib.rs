//! A drop-in, wire-compatible reimplementation of conntrackd 1.4.7.
//!
//! The crate is layered from pure code at the bottom to threads at the top:
//!
//! * **codecs** — [`config`] (conntrackd.conf 1.4.7) and [`netlink`] (ctnetlink messages as
//!   typed views over byte buffers). They never touch a socket or a clock, and they never panic
//!   on input: every length is checked before any field is read.
//! * **sans-IO core** — the caches and the sync state machines (issue 3). Time is passed in.
//! * **I/O** — the ctnetlink socket layer ([`netlink::socket`]) and, later, the sync channels.
//! * **threads** — the runtime that ties them together (issue 3).
//!
//! [`sys`] sits underneath everything: it is the only module allowed to use `unsafe`, and every
//! block there carries a `// SAFETY:` line.

pub mod cache;
pub mod channel;
pub mod cli;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod filter;
pub mod netlink;
pub mod runtime;
pub mod sync;
pub mod sys;
pub mod wire;
