//! A drop-in, wire-compatible reimplementation of conntrackd 1.4.7.
//!
//! The crate is layered from pure code at the bottom to threads at the top:
//!
//! * **codecs** — [`config`] (conntrackd.conf 1.4.7), [`netlink`] (ctnetlink messages) and
//!   [`wire`] (the sync protocol), as typed views over byte buffers. They never touch a socket
//!   or a clock, and they never panic on input: every length is checked before a field is read.
//! * **sans-IO core** — [`cache`] (per-shard internal and external caches, kernel ⇄ wire
//!   conversions), [`filter`] and [`sync`] (FTFW, ALARM, NOTRACK). Time is passed in.
//! * **I/O** — the ctnetlink socket layer ([`netlink::socket`], [`netlink::events`]), the sync
//!   [`channel`]s and the control socket ([`ctl`]).
//! * **threads** — [`runtime`] (reader, workers, link thread, rings, placement) and [`daemon`]
//!   (start-up, shutdown, control handler, commit).
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
