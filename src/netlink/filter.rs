//! (netlink I/O work: filter)
