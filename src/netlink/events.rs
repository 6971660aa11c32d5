//! (netlink I/O work: events)
