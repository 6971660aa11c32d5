//! The single integration-test binary: every system test runs from here, so the 2-core CI
//! links one executable. Tests that touch the kernel need root and fail (not skip) without it.

mod channel;
mod check_config;
mod cluster;
mod config;
mod ctl;
mod failover;
mod harness;
mod interop;
mod lossy;
mod netlink_kernel;
mod statsmode;
mod systemd;
mod takeover;
mod util;
