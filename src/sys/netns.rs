//! Network-namespace switching for a thread (harness work).
