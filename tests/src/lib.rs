//! Shared harness for reflector integration tests.
