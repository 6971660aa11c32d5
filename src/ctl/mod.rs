//! The UNIX control socket, byte-compatible with conntrackd 1.4.7.
//!
//! The C daemon and its client talk over a `SOCK_STREAM` UNIX socket: the client writes one
//! 4-byte request code (a C `int` in host byte order), the daemon writes plain text and
//! closes. Our client must work against the C daemon and the C client against our daemon,
//! so every byte here follows the reference (control-and-cli.md §1–§3):
//!
//! * [`proto`] — request codes (open newtype with the C names) and the request decoder;
//! * [`server`] — the accept loop on its own thread, dispatching to a [`server::CtlHandler`];
//! * [`client`] — `conntrackd -s/-i/-e/-c/…` against a running daemon (ours or the C one);
//! * [`render`] — the exact text layouts of `-s …` and of `-i`/`-e` lines;
//! * [`lock`] — the `LockFile` that keeps two daemons from running at once.

pub mod client;
pub mod lock;
pub mod proto;
pub mod render;
pub mod server;

pub use lock::{LockError, LockFile};
pub use proto::{ProtoError, RequestCode};
pub use server::{CtlHandler, CtlServer};
