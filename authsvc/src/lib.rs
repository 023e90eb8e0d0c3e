//! authsvc: meshmux's OAuth 2.1 authorization-server façade. It logs people in at an upstream
//! IdP, issues its own RS256 tokens for the MCP resource, serves the bot-token UI and keeps
//! state in one store. It holds the only private key; it never sees MCP traffic.

pub mod app;
pub mod config;
pub mod error;
pub mod health;
pub mod idp;
pub mod internal;
pub mod jws;
pub mod keys;
pub mod limit;
pub mod metrics;
pub mod mint;
pub mod oauth;
pub mod revoke;
pub mod store;
pub mod tokens;
pub mod ui;
pub mod users;

pub use app::{App, router};
