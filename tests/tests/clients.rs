//! Real clients of every era work through the gateway: the rmcp client with `initialize`
//! (2025) and with `server/discover` (2026-07-28), and the official TypeScript SDK client.

// Helpers of an integration test may fail the test on the spot, like the tests themselves
// (clippy.toml allows this inside #[test] functions only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::{Value, json};
use tests::fixtures::CLIENT_TOKEN;
use tests::{OpsEnvs, RmcpClient, TsClient, is_error, result_text};

fn names(tools: &[Value]) -> Vec<String> {
    tools
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_rmcp_client_of_the_initialize_era_lists_and_calls() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;
    let raw = ops.gw.list_tools()?;

    let client = RmcpClient::connect_with_token(&ops.gw.url(), CLIENT_TOKEN)?;
    let tools = client.list_all_tools()?;
    let result = client.call_tool("search_logs", json!({"env": "Staging", "query": "oom"}))?;

    assert!(client.protocol_version()?.starts_with("2025-"));
    assert_eq!(names(&tools), names(raw["tools"].as_array().unwrap()));
    // The `x-mcp-header` hint on `env` is for 2026-07-28 clients only.
    for tool in &tools {
        let env = &tool["inputSchema"]["properties"]["env"];
        assert!(
            env.is_object() && env.get("x-mcp-header").is_none(),
            "{tool:#}"
        );
    }
    assert!(!is_error(&result), "{result:#}");
    assert!(result_text(&result).starts_with("[Staging] search_logs"));
    let call = &ops.staging.wait_for_records(1)?[0];
    assert_eq!(call.header("authorization"), None, "{call:#?}");
    Ok(())
}

#[test]
fn the_rmcp_client_of_the_2026_era_discovers_and_calls() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    let client = RmcpClient::discover(&ops.gw.url())?;
    let tools = client.list_all_tools()?;
    let result = client.call_tool(
        "get_service_status",
        json!({"env": "Dev", "service": "api"}),
    )?;

    assert_eq!(client.protocol_version()?, "2026-07-28");
    assert_eq!(tools.len(), 6, "{tools:#?}");
    for tool in &tools {
        let env = &tool["inputSchema"]["properties"]["env"];
        assert_eq!(env["x-mcp-header"], "Env", "{tool:#}");
    }
    assert!(!is_error(&result), "{result:#}");
    assert_eq!(result["structuredContent"]["env"], "Dev", "{result:#}");
    let call = &ops.dev.wait_for_records(1)?[0];
    assert_eq!(call.arguments.get("env"), None);
    for header in call.headers.keys() {
        assert!(
            !header.starts_with("mcp-method") && !header.starts_with("mcp-name"),
            "a 2026 client header reached the backend: {call:#?}"
        );
    }
    Ok(())
}

#[test]
fn the_typescript_sdk_client_lists_and_calls() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    let out = TsClient::new(&ops.gw.url())
        .header("Authorization", &format!("Bearer {CLIENT_TOKEN}"))
        .call("search_logs", json!({"env": "Prod", "query": "5xx"}))
        .call(
            "get_service_status",
            json!({"env": "Staging", "service": "web"}),
        )
        .call("search_logs", json!({"env": "Nowhere", "query": "5xx"}))
        .run()?;

    assert_eq!(out["serverVersion"]["name"], "meshmux", "{out:#}");
    assert_eq!(out["tools"].as_array().unwrap().len(), 6, "{out:#}");
    let results = out["results"].as_array().unwrap();
    let prod = &results[0]["result"];
    assert!(
        result_text(prod).starts_with("[Prod] search_logs"),
        "{out:#}"
    );
    let staging = &results[1]["result"];
    assert_eq!(staging["structuredContent"]["env"], "Staging", "{out:#}");
    let nowhere = &results[2]["result"];
    assert!(is_error(nowhere), "{out:#}");
    assert!(result_text(nowhere).contains("Prod"), "{out:#}");
    for b in [&ops.prod, &ops.staging] {
        let call = &b.wait_for_records(1)?[0];
        assert_eq!(call.header("authorization"), None, "{call:#?}");
    }
    Ok(())
}

/// A 2026-07-28 `tools/call` as a raw client sends it: `_meta` in the body, the headers that
/// mirror it (`mcp_name` may disagree with the body).
fn call_2026(ops: &OpsEnvs, mcp_name: &str) -> anyhow::Result<tests::Response> {
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {
            "name": "search_logs",
            "arguments": {"env": "Prod", "query": "x"},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "raw-2026", "version": "0"},
                "io.modelcontextprotocol/clientCapabilities": {}
            }
        }
    });
    ops.gw
        .post(body.to_string())
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", mcp_name)
        .header("mcp-param-env", "Prod")
        .send()
}

#[test]
fn the_2026_headers_must_agree_with_the_body() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    let mismatch = call_2026(&ops, "rollback_deployment")?;
    assert_eq!(mismatch.status, 400, "{}", mismatch.text());
    assert_eq!(mismatch.error()?.0, -32020);
    assert_eq!(ops.calls_received()?, 0);

    let agreed = call_2026(&ops, "search_logs")?;
    assert_eq!(agreed.status, 200, "{}", agreed.text());
    let result = agreed.result()?;
    assert!(result_text(&result).starts_with("[Prod] search_logs"));
    // Every 2026-07-28 result says what kind it is, the backend's (2025-era) ones too.
    assert_eq!(result["resultType"], "complete", "{result:#}");
    Ok(())
}

#[test]
fn a_2026_request_with_its_meta_reaches_an_initialize_era_backend() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;
    // A 2026-07-28 request is self-contained: its `_meta` repeats the protocol version, the
    // client info and capabilities. The backend session speaks 2025-11-25, so that `_meta`
    // must not be forwarded as is (an rmcp backend refuses a `_meta` version that differs
    // from the MCP-Protocol-Version header).
    let resp = call_2026(&ops, "search_logs")?;

    let result = resp.result()?;
    assert!(!is_error(&result), "{result:#}");
    assert!(
        result_text(&result).starts_with("[Prod] search_logs"),
        "{result:#}"
    );
    Ok(())
}

#[test]
fn initialize_negotiates_the_clients_version() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    for version in ["2025-03-26", "2025-06-18", "2025-11-25"] {
        let body = json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": version, "capabilities": {},
                       "clientInfo": {"name": "raw", "version": "0"}}
        });
        let result = ops.gw.post_json(&body.to_string())?.result()?;

        assert_eq!(result["protocolVersion"], version);
        assert_eq!(result["serverInfo"]["name"], "meshmux");
        assert!(result["capabilities"]["tools"].is_object(), "{result:#}");
    }
    Ok(())
}
