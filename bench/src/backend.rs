//! The fast backend both gateways front: a stateless MCP server over JSON that parses each
//! request (as a real server would) and answers from memory.

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// The tools it serves: a realistic catalog of six ops tools.
pub fn tools() -> Value {
    let tool = |name: &str, desc: &str, props: Value| json!({"name": name, "description": desc, "inputSchema": {"type": "object", "properties": props}});
    json!([
        tool(
            "search_logs",
            "Search the service logs for a query and return matching lines.",
            json!({"query": {"type": "string", "description": "Full-text query"}, "limit": {"type": "integer"}})
        ),
        tool(
            "get_service_status",
            "Current health, version and error rate of a service.",
            json!({"service": {"type": "string"}})
        ),
        tool(
            "list_deployments",
            "Recent deployments of a service, newest first.",
            json!({"service": {"type": "string"}, "limit": {"type": "integer"}})
        ),
        tool(
            "query_metrics",
            "Query a metric over a time window.",
            json!({"metric": {"type": "string"}, "window": {"type": "string"}})
        ),
        tool(
            "list_alerts",
            "Firing alerts for a service.",
            json!({"service": {"type": "string"}})
        ),
        tool(
            "get_config",
            "Effective runtime configuration of a service.",
            json!({"service": {"type": "string"}})
        ),
    ])
}

async fn mcp(body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "invalid JSON").into_response();
    };
    let id = request.get("id").cloned();
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(id) = id else {
        return StatusCode::ACCEPTED.into_response();
    };
    let result = match method {
        "initialize" => json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "bench-backend", "version": "1"}
        }),
        "tools/list" => json!({"tools": tools()}),
        "tools/call" => {
            let size = request
                .pointer("/params/arguments")
                .map_or(0, |a| a.to_string().len());
            json!({"content": [{"type": "text", "text": format!("ok: {size} bytes of arguments")}]})
        }
        _ => json!({}),
    };
    let body = json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub fn router() -> Router {
    Router::new().route("/mcp", post(mcp))
}
