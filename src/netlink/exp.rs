//! (netlink codec work: exp)
