//! `gateway.tool_exposure: search`: two tools instead of the catalog, ranked and narrowed
//! per caller, and `call_tool` checked exactly as a direct call.

use serde_json::{Value, json};

use super::tests::{post, roles};
use super::*;
use crate::manifest::ToolExposure;

fn search_gateway(auth: bool) -> Gateway {
    let mut config = super::tests::gateway(auth).config().clone();
    config.manifest.server.tool_exposure = ToolExposure::Search;
    Gateway::new(config).unwrap()
}

fn call(name: &str, arguments: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": name, "arguments": arguments}}))
    .unwrap()
}

fn result(outcome: Outcome) -> Value {
    match outcome {
        Outcome::Reply(r) | Outcome::Denied { reply: r, .. } => {
            serde_json::from_slice::<Value>(&r.body).unwrap()["result"].clone()
        }
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[test]
fn the_list_is_two_tools_that_count_what_the_caller_may_use() {
    let gw = search_gateway(true);
    let list = result(gw.on_body(
        &post(),
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        &roles(&["admin"]),
    ));
    let names: Vec<&str> = list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["find_tools", "call_tool"]);
    assert!(
        list["tools"][0]["description"]
            .as_str()
            .unwrap()
            .contains("Search the 3 tools")
    );
    let narrow = result(gw.on_body(
        &post(),
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        &roles(&["prod-logs"]),
    ));
    assert!(
        narrow["tools"][0]["description"]
            .as_str()
            .unwrap()
            .contains("Search the 1 tools")
    );
}

#[test]
fn find_tools_ranks_and_narrows_per_caller() {
    let gw = search_gateway(true);
    let found = result(gw.on_body(
        &post(),
        &call("find_tools", json!({"query": "query sql"})),
        &roles(&["admin"]),
    ));
    let names: Vec<&str> = found["structuredContent"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["query"], "{found:#}");
    assert_eq!(found["structuredContent"]["total"], json!(3));
    // The definition is the one a direct list shows, without the 2026 header hint.
    let env = &found["structuredContent"]["tools"][0]["inputSchema"]["properties"]["env"];
    assert_eq!(env["enum"], json!(["Staging", "Dev"]));
    assert_eq!(env.get("x-mcp-header"), None);
    assert!(
        found["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("\"name\":\"query\"")
    );

    // prod-logs may use search_logs in Prod only: nothing else is found, and the env enum
    // is narrowed.
    let found = result(gw.on_body(
        &post(),
        &call("find_tools", json!({"query": "query logs rollback"})),
        &roles(&["prod-logs"]),
    ));
    let tools = found["structuredContent"]["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1, "{found:#}");
    assert_eq!(tools[0]["name"], json!("search_logs"));
    assert_eq!(
        tools[0]["inputSchema"]["properties"]["env"]["enum"],
        json!(["Prod"])
    );

    let none = result(gw.on_body(
        &post(),
        &call("find_tools", json!({"query": "zebra"})),
        &roles(&["admin"]),
    ));
    assert!(
        none["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("No tool matches")
    );
    let limited = result(gw.on_body(
        &post(),
        &call("find_tools", json!({"query": "tool", "limit": 2})),
        &roles(&["admin"]),
    ));
    assert_eq!(
        limited["structuredContent"]["tools"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let bad = result(gw.on_body(
        &post(),
        &call("find_tools", json!({"query": "x", "limit": 0})),
        &ANY,
    ));
    assert_eq!(bad["isError"], json!(true));
    let missing = result(gw.on_body(&post(), &call("find_tools", json!({})), &ANY));
    assert_eq!(missing["isError"], json!(true));
}

const ANY: Caller = Caller::Unrestricted;

#[test]
fn call_tool_is_a_direct_call_with_every_check() {
    let gw = search_gateway(true);
    let admin = roles(&["admin"]);
    let direct = super::tests::gateway(true).on_body(
        &post(),
        &call(
            "query",
            json!({"sql": "select 1", "env": "Dev", "explain": true}),
        ),
        &admin,
    );
    let through = gw.on_body(
        &post(),
        &call(
            "call_tool",
            json!({"name": "query", "arguments": {"sql": "select 1", "env": "Dev", "explain": true}}),
        ),
        &admin,
    );
    let (Outcome::Forward(direct), Outcome::Forward(through)) = (direct, through) else {
        panic!("both forwarded")
    };
    assert_eq!(through.env, "Dev");
    assert_eq!(through.message, direct.message);

    let denied = gw.on_body(
        &post(),
        &call(
            "call_tool",
            json!({"name": "search_logs", "arguments": {"query": "q", "env": "Staging"}}),
        ),
        &roles(&["prod-logs"]),
    );
    assert!(matches!(denied, Outcome::Denied { .. }), "{denied:?}");
    let hidden = gw.on_body(
        &post(),
        &call(
            "call_tool",
            json!({"name": "rollback", "arguments": {"env": "Prod"}}),
        ),
        &roles(&["prod-logs"]),
    );
    let Outcome::Reply(hidden) = hidden else {
        panic!("{hidden:?}")
    };
    assert!(String::from_utf8_lossy(&hidden.body).contains("Unknown tool: rollback"));
    for name in ["find_tools", "call_tool"] {
        let r = result(gw.on_body(&post(), &call("call_tool", json!({"name": name})), &admin));
        assert_eq!(r["isError"], json!(true), "{name}");
    }
    let r = result(gw.on_body(
        &post(),
        &call("call_tool", json!({"arguments": {}})),
        &admin,
    ));
    assert_eq!(r["isError"], json!(true));
}

#[test]
fn a_2026_caller_names_call_tool_in_its_headers_and_the_inner_call_needs_none() {
    let gw = search_gateway(false);
    let head = RequestHead {
        protocol_version: Some("2026-07-28"),
        mcp_method: Some("tools/call"),
        mcp_name: Some("call_tool"),
        ..post()
    };
    let body = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "call_tool", "arguments": {"name": "search_logs", "arguments": {"query": "q", "env": "Prod"}},
                   "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                             "io.modelcontextprotocol/clientCapabilities": {}}}}))
    .unwrap();
    let Outcome::Forward(f) = gw.on_body(&head, &body, &ANY) else {
        panic!("forwarded")
    };
    assert_eq!(f.env, "Prod");
    assert_eq!(f.message["params"]["name"], json!("search_logs"));
    // Naming the inner tool in Mcp-Name is a mismatch with the body's `call_tool`.
    let wrong = RequestHead {
        mcp_name: Some("search_logs"),
        ..head
    };
    let Outcome::Reply(r) = gw.on_body(&wrong, &body, &ANY) else {
        panic!("refused")
    };
    assert_eq!(r.status, 400);
}
