//! The `meshmux` command line: discovers every environment's tools over MCP (rmcp client),
//! merges them with `policy`, writes the manifest and the Envoy config, launches the local
//! stack and serves the demo backends. It owns the IO around `policy`; it must not
//! re-implement anything `policy` decides (config rules, the merge, the manifest's shape).

pub mod backend;
pub mod bridge;
pub mod catalog;
pub mod cli;
pub mod credentials;
pub mod demo;
pub mod diff;
pub mod discover;
pub mod envoy;
pub mod fsutil;
pub mod locate;
pub mod pin;
pub mod report;
pub mod state;
pub mod up;
pub mod watch;
