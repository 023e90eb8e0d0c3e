//! Packaging, checked without Docker or Kubernetes (neither runs here): compose.yaml against
//! the Dockerfile, its config and the native path; the Istio and Envoy Gateway manifests
//! against the filter's contract. Each check is one a realistic mistake would fail.

// Helpers of an integration test may fail the test on the spot, like the tests themselves
// (clippy.toml allows this inside #[test] functions only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "packaging/compose.rs"]
mod compose;
#[path = "packaging/dockerfile.rs"]
mod dockerfile;
#[path = "packaging/mesh.rs"]
mod mesh;
#[path = "packaging/support.rs"]
mod support;
