//! ctnetlink: the kernel's connection-tracking interface.
//!
//! Codec half (pure, no I/O): [`msg`] (nlmsghdr + nfgenmsg views, message builder),
//! [`attr`] (NLA views and the aligned TLV walker), [`ct`] and [`exp`] (CTA_* ⇄ plain data).
//! I/O half: [`socket`] (request/ACK handling, dumps, batched create/update/delete/flush),
//! [`events`] (event subscription, buffer growth on ENOBUFS), [`filter`] (the kernel-space
//! classic-BPF event filter).

pub mod attr;
pub mod consts;
pub mod ct;
pub mod error;
pub mod events;
pub mod exp;
pub mod filter;
pub mod msg;
pub mod name;
pub mod protoinfo;
pub mod socket;
pub mod tuple;

#[cfg(test)]
mod vectors;

pub use error::Error;
