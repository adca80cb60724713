//! Support crate for the integration tests; see all/ and build.rs.
