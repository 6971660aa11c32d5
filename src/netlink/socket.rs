//! (netlink I/O work: socket)
