//! conntrackd.conf 1.4.7 (filled in by the config work).
