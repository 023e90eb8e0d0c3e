//! Waiting for the stack: Envoy's admin says ready and the MCP endpoint answers (or, with
//! auth, challenges) a `ping`; a start-up failure quotes the end of Envoy's log.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::{Stack, http_client};

/// Waits until Envoy's admin says ready and the MCP endpoint answers `ping`.
pub(super) async fn wait_ready(
    stack: &mut Stack,
    mcp_url: &str,
    log: &Path,
    auth: bool,
) -> Result<()> {
    let client = http_client();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::from("not started");
    while Instant::now() < deadline {
        if let Some(child) = stack.envoy.as_mut()
            && let Some(status) = child.try_wait()?
        {
            bail!(
                "Envoy exited during start-up ({status}); the end of {}:\n{}",
                log.display(),
                tail(log, 30)
            );
        }
        last = match probe(&client, &stack.admin, mcp_url, auth).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!(
        "Envoy did not become ready within 60 s ({last}); the end of {}:\n{}",
        log.display(),
        tail(log, 30)
    )
}

/// Envoy is ready and the MCP endpoint answers a ping (with auth, an anonymous ping gets the
/// 401 challenge: that is its sign of life).
async fn probe(
    client: &reqwest::Client,
    admin: &str,
    mcp_url: &str,
    auth: bool,
) -> Result<(), String> {
    let ready = client
        .get(format!("{admin}/ready"))
        .send()
        .await
        .map_err(|e| format!("admin /ready: {e}"))?;
    if !ready.status().is_success() {
        return Err(format!("admin /ready answered {}", ready.status()));
    }
    let ping = client
        .post(mcp_url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":"meshmux-up","method":"ping"}"#)
        .send()
        .await
        .map_err(|e| format!("ping {mcp_url}: {e}"))?;
    let status = ping.status();
    let challenged = ping.headers().contains_key("www-authenticate");
    let body = ping.text().await.unwrap_or_default();
    let answered = status.is_success() && body.contains("\"result\"");
    let challenged = auth && status == reqwest::StatusCode::UNAUTHORIZED && challenged;
    if answered || challenged {
        Ok(())
    } else {
        Err(format!("ping {mcp_url} answered {status}: {body}"))
    }
}

/// The last `lines` lines of a log file (empty when unreadable).
pub(super) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all.get(all.len().saturating_sub(lines)..)
        .unwrap_or_default()
        .join("\n")
}
