//! (netlink codec work: msg)
