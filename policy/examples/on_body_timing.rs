//! Rough native timing of the request path (`cargo run --release -p policy --example on_body_timing`).
use policy::gateway::{Caller, Gateway, RequestHead};
use policy::manifest::{EnvEntry, FilterConfig, Manifest, ServerInfo};
use policy::merge::{EnvTools, merge};
use serde_json::json;

fn main() {
    let tools = [
        json!({"name": "search_logs", "description": "d", "inputSchema": {"type": "object", "properties": {"query": {"type": "string"}}}}),
    ];
    let merged = merge(&[EnvTools {
        env: "Bench",
        description: "b",
        tools: &tools,
    }]);
    let manifest = Manifest {
        format: 1,
        hash: String::new(),
        server: ServerInfo {
            name: "m".into(),
            version: "1".into(),
            instructions: None,
            env_descriptions: Default::default(),
            tool_exposure: Default::default(),
        },
        envs: vec![EnvEntry {
            name: "Bench".into(),
            description: "b".into(),
            cluster: "env_Bench".into(),
            url: "http://x/mcp".into(),
            authority: "x".into(),
            path: "/mcp".into(),
            protocol_version: "2025-06-18".into(),
            server_info: None,
            unreachable: None,
            stale: None,
            server: None,
            label: None,
        }],
        tools: merged.tools,
        warnings: vec![],
        errors: vec![],
        pinning: None,
        prompts: vec![],
        resources: vec![],
        resource_templates: vec![],
    };
    let g = Gateway::new(FilterConfig {
        manifest,
        mcp_path: "/mcp".into(),
        max_body_bytes: 1 << 20,
        backends: Default::default(),
        auth: None,
        metrics: Default::default(),
        host_policy: Default::default(),
    })
    .unwrap_or_else(|e| unreachable!("{e}"));
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search_logs", "arguments": {"query": "x".repeat(1024), "env": "Bench"}}}).to_string();
    let head = RequestHead {
        method: "POST",
        path: "/mcp",
        content_type: Some("application/json"),
        ..Default::default()
    };
    let n: u32 = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let start = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(g.on_body(&head, body.as_bytes(), &Caller::Unrestricted));
    }
    println!(
        "on_body tools/call 1 KB: {:.2} µs",
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let list = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let start = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(g.on_body(&head, list, &Caller::Unrestricted));
    }
    println!(
        "on_body tools/list: {:.2} µs",
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
