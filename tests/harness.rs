//! Tests of the namespace/daemon fixtures themselves (harness work).
