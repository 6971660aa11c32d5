//! Shared fixtures for the system tests (filled in by the harness work).
