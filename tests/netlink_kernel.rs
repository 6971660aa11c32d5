//! ctnetlink against the real kernel, in namespaces (netlink I/O work).
