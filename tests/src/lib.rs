//! meshmux's end-to-end harness: real Envoy with the built filter, real MCP backends (the rmcp
//! demo backend, `server-everything`) and real clients (rmcp, the TypeScript SDK), each a
//! process killed on drop. It never skips: a missing prerequisite fails with the command that
//! provides it.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use tests::{Backend, Gateway};
//! let prod = Backend::demo("Prod").record().start()?;
//! let gw = Gateway::builder()
//!     .env("Prod", &prod)
//!     .env_header("Prod", "X-Env-Token", "prod-secret")
//!     .start()?;
//! let result = gw.call_tool("search_logs", serde_json::json!({"env": "Prod", "query": "x"}))?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod authsvc;
pub mod backend;
pub mod browser;
pub mod check;
pub mod config;
pub mod conformance;
pub mod envoy_validate;
pub mod fixtures;
pub mod gateway;
pub mod http;
pub mod logs;
pub mod mesh;
pub mod oidc_idp;
pub mod plain;
pub mod ports;
pub mod prereq;
pub mod process;
pub mod prometheus;
pub mod py_backend;
pub mod redis;
pub mod reload;
pub mod rmcp_client;
pub mod sdk_everything;
pub mod sse;
pub mod ts_client;
pub mod up;
pub mod watch;

pub use backend::{Backend, Record};
pub use check::CheckRun;
pub use config::Config;
pub use fixtures::OpsEnvs;
pub use gateway::Gateway;
pub use http::Response;
pub use rmcp_client::RmcpClient;
pub use ts_client::TsClient;

use std::time::Duration;

/// How long any single readiness wait may take before the test fails with a pointer to the log.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The text of a tool result's content items, joined by newlines.
pub fn result_text(result: &serde_json::Value) -> String {
    result
        .get("content")
        .and_then(serde_json::Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.get("text").and_then(serde_json::Value::as_str))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// Whether a tool result is marked `isError: true`.
pub fn is_error(result: &serde_json::Value) -> bool {
    result.get("isError").and_then(serde_json::Value::as_bool) == Some(true)
}
