//! The pure core of meshmux: config, merge, manifest, JSON-RPC inspection, RBAC and the
//! decisions the Envoy filter acts on. It does no IO, never reads the clock, and nothing
//! reachable from request bytes may panic: it builds for wasm32 and native alike.

pub mod civil;
pub mod claims;
#[cfg(feature = "config")]
pub mod config;
#[cfg(feature = "config")]
pub mod credentials;
#[cfg(feature = "config")]
pub mod envvars;
pub mod exchange;
pub mod gateway;
pub mod glob;
pub mod health;
pub mod manifest;
pub mod merge;
pub mod metrics;
pub mod offerings;
pub mod origin;
pub mod outcome_scan;
pub mod pin;
pub mod protocol;
pub mod rbac;
pub mod reply;
pub mod revocation;
pub mod rpc;
pub mod servers;
pub mod session;
pub mod upstream;
#[cfg(feature = "config")]
pub mod users;

pub use gateway::{Caller, Gateway, Outcome};
pub use manifest::{FilterConfig, Manifest};
