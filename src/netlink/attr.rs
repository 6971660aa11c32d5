//! (netlink codec work: attr)
