//! AF_NETLINK sockets (filled in by the netlink work).
