//! The OAuth 2.1 surface toward MCP clients (2025-11-25 authorization spec).

pub mod authorize;
pub mod clients;
pub mod consent;
pub mod metadata;
pub mod register;
pub mod token;

/// The one scope we grant (advertised in both metadata documents).
pub const SCOPE: &str = "mcp:tools";
