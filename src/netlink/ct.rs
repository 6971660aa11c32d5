//! (netlink codec work: ct)
