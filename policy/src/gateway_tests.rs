use serde_json::{Value, json};

use super::*;
use crate::manifest::EnvDescriptions;
use crate::manifest::{EnvEntry, FilterAuth, Manifest, ServerInfo};
use crate::merge::{EnvTools, merge_with};

fn tool(name: &str, props: Value, required: &[&str]) -> Value {
    json!({"name": name, "description": format!("{name} tool"),
           "inputSchema": {"type": "object", "properties": props, "required": required}})
}

pub(crate) fn gateway(auth: bool) -> Gateway {
    gateway_in(auth, EnvDescriptions::PerTool)
}

/// The test gateway (Prod, Staging, Dev; `instructions` "hi"), with the envs described where
/// `described` says.
fn gateway_in(auth: bool, described: EnvDescriptions) -> Gateway {
    let shared = tool(
        "search_logs",
        json!({"query": {"type": "string"}}),
        &["query"],
    );
    let prod = [
        shared.clone(),
        tool("rollback", json!({"release": {"type": "string"}}), &[]),
    ];
    let staging = [
        shared.clone(),
        tool("query", json!({"sql": {"type": "string"}}), &["sql"]),
    ];
    let dev = [
        shared,
        tool(
            "query",
            json!({"sql": {"type": "string"}, "explain": {"type": "boolean"}}),
            &["sql"],
        ),
    ];
    let merged = merge_with(
        &[
            EnvTools {
                env: "Prod",
                description: "Production",
                tools: &prod,
            },
            EnvTools {
                env: "Staging",
                description: "Staging",
                tools: &staging,
            },
            EnvTools {
                env: "Dev",
                description: "Development",
                tools: &dev,
            },
        ],
        described,
    );
    let envs = ["Prod", "Staging", "Dev"]
        .iter()
        .map(|e| EnvEntry {
            name: (*e).into(),
            description: format!("{e} env"),
            cluster: format!("env_{e}"),
            url: format!("http://{e}.internal/mcp"),
            authority: format!("{e}.internal"),
            path: "/mcp".into(),
            protocol_version: if *e == "Dev" {
                "2025-03-26".into()
            } else {
                "2025-06-18".into()
            },
            server_info: None,
            unreachable: None,
            stale: None,
            server: None,
            label: None,
        })
        .collect();
    let manifest = Manifest {
        format: crate::manifest::MANIFEST_FORMAT,
        hash: String::new(),
        server: ServerInfo {
            name: "meshmux".into(),
            version: "test".into(),
            instructions: Some("hi".into()),
            env_descriptions: described,
            tool_exposure: Default::default(),
        },
        envs,
        tools: merged.tools,
        warnings: merged.warnings,
        errors: merged.errors,
        pinning: None,
        prompts: vec![],
        resources: vec![],
        resource_templates: vec![],
    }
    .seal();
    let auth = auth.then(|| FilterAuth {
        claims_path: vec!["envoy.filters.http.jwt_authn".into(), "jwt_payload".into()],
        roles: serde_json::from_value(json!({
            "admin": {"allowed_envs": {"*": ["*"]}},
            "staging-reader": {"allowed_envs": {"Staging": ["*"]}},
            "prod-logs": {"allowed_envs": {"Prod": ["search_*"]}}
        }))
        .unwrap(),
        resource_metadata: None,
        revocations: Default::default(),
    });
    let config = FilterConfig {
        manifest,
        mcp_path: "/mcp".into(),
        max_body_bytes: 4096,
        backends: Default::default(),
        auth,
        metrics: Default::default(),
        host_policy: Default::default(),
    };
    Gateway::new(config).unwrap()
}

pub(crate) fn post() -> RequestHead<'static> {
    RequestHead {
        method: "POST",
        path: "/mcp",
        content_type: Some("application/json"),
        ..Default::default()
    }
}

pub(crate) fn roles(r: &[&str]) -> Caller {
    Caller::Roles(r.iter().map(|s| s.to_string()).collect())
}

/// Runs one body through the gateway and returns (status, body) of the reply, or
/// `FORWARD <env> <body>` for a forwarded call.
fn run(head: &RequestHead<'_>, body: &str, caller: &Caller) -> (u16, String) {
    run_in(EnvDescriptions::PerTool, head, body, caller)
}

/// [`run`] against the gateway whose envs are described where `described` says.
fn run_in(
    described: EnvDescriptions,
    head: &RequestHead<'_>,
    body: &str,
    caller: &Caller,
) -> (u16, String) {
    let gateway = gateway_in(*caller != Caller::Unrestricted, described);
    let body = with_modern_meta(head, body);
    match gateway.on_body(head, body.as_bytes(), caller) {
        Outcome::Reply(r) | Outcome::Initialized(r) => (r.status, r.body_text()),
        Outcome::Cancel { request_id } => (202, format!("CANCEL {request_id}")),
        Outcome::LogLevel { level, reply } => (reply.status, format!("LOG {level}")),
        Outcome::Denied { reply, tool, env } => (
            reply.status,
            format!("DENIED {tool}@{env} {}", reply.body_text()),
        ),
        Outcome::Forward(f) => (
            0,
            format!(
                "FORWARD {} {} {} {}",
                f.cluster,
                f.protocol_version,
                f.id,
                String::from_utf8_lossy(&f.body())
            ),
        ),
    }
}

/// A 2026-07-28 request carries its version and the client's capabilities in `_meta`; tests
/// written without them get them added (tests of their absence call `on_body` directly).
fn with_modern_meta(head: &RequestHead<'_>, body: &str) -> String {
    let modern = head
        .protocol_version
        .is_some_and(crate::protocol::header_era);
    let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(body) else {
        return body.to_owned();
    };
    if !modern || !object.contains_key("method") {
        return body.to_owned();
    }
    let params = object.entry("params").or_insert_with(|| json!({}));
    let Some(params) = params.as_object_mut() else {
        return body.to_owned();
    };
    let meta = params.entry("_meta").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        meta.entry("io.modelcontextprotocol/protocolVersion")
            .or_insert_with(|| json!(head.protocol_version));
        meta.entry("io.modelcontextprotocol/clientCapabilities")
            .or_insert_with(|| json!({}));
    }
    Value::Object(object).to_string()
}

fn check(body: &str, caller: &Caller, status: u16, needle: &str) {
    check_head(&post(), body, caller, status, needle);
}

fn check_head(head: &RequestHead<'_>, body: &str, caller: &Caller, status: u16, needle: &str) {
    let (got_status, got) = run(head, body, caller);
    assert_eq!(got_status, status, "{body}\n→ {got}");
    assert!(
        got.contains(needle),
        "{body}\n→ {got}\nshould contain {needle}"
    );
}

fn call(name: &str, args: Value) -> String {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": args}}).to_string()
}

const ANY: Caller = Caller::Unrestricted;

#[test]
fn head_checks() {
    let g = gateway(false);
    let verdict = |head: RequestHead<'_>| match g.on_headers(&head) {
        Head::Pass => (0, String::new()),
        Head::ReadBody => (1, String::new()),
        Head::Reply(r) => (r.status, r.body_text()),
    };
    assert_eq!(verdict(post()).0, 1);
    assert_eq!(
        verdict(RequestHead {
            content_type: Some("Application/JSON; charset=utf-8"),
            ..post()
        })
        .0,
        1
    );
    assert_eq!(
        verdict(RequestHead {
            path: "/mcp?x=1",
            ..post()
        })
        .0,
        1
    );
    assert_eq!(
        verdict(RequestHead {
            path: "/auth/login",
            method: "GET",
            ..post()
        })
        .0,
        0
    );
    let cases: [(RequestHead<'_>, u16, &str); 6] = [
        (
            RequestHead {
                method: "GET",
                ..post()
            },
            405,
            "use POST",
        ),
        (
            RequestHead {
                method: "DELETE",
                ..post()
            },
            405,
            "DELETE",
        ),
        (
            RequestHead {
                content_type: Some("text/plain"),
                ..post()
            },
            415,
            "application/json",
        ),
        (
            RequestHead {
                content_type: None,
                ..post()
            },
            415,
            "got none",
        ),
        (
            RequestHead {
                content_encoding: Some("gzip"),
                ..post()
            },
            415,
            "gzip",
        ),
        (
            RequestHead {
                content_length: Some("5000"),
                ..post()
            },
            413,
            "4096",
        ),
    ];
    for (head, status, needle) in cases {
        let (got, body) = verdict(head);
        assert_eq!(got, status, "{body}");
        assert!(body.contains(needle), "{body} should contain {needle}");
    }
    assert!(g.body_too_large(4097).is_some_and(|r| r.status == 413));
    assert!(g.body_too_large(4096).is_none());
}

#[test]
fn local_answers() {
    check(
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#,
        &ANY,
        200,
        r#""protocolVersion":"2025-06-18""#,
    );
    check(
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2099-01-01"}}"#,
        &ANY,
        200,
        r#""protocolVersion":"2025-11-25""#,
    );
    check(
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
        &ANY,
        200,
        r#""instructions":"hi""#,
    );
    check(
        r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#,
        &ANY,
        200,
        r#"{"jsonrpc":"2.0","id":"p","result":{}}"#,
    );
    check(
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        &ANY,
        202,
        "",
    );
    check(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#, &ANY, 202, "");
    check(
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/list"}"#,
        &ANY,
        200,
        "-32601",
    );
    check(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"abc"}}"#,
        &ANY,
        200,
        "Invalid cursor",
    );
    check(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        &ANY,
        200,
        r#""name":"rollback""#,
    );
}

#[test]
fn bad_bodies() {
    check("[]", &ANY, 400, "batches");
    check("{nope", &ANY, 400, "-32700");
    check(
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/list"}"#,
        &ANY,
        400,
        "duplicate key `method`",
    );
    check(&"x".repeat(5000), &ANY, 413, "exceeds");
}

#[test]
fn tools_call_routes_and_rewrites() {
    check(
        &call("search_logs", json!({"query": "boom", "env": "Staging"})),
        &ANY,
        0,
        r#"FORWARD env_Staging 2025-06-18 7 {"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search_logs","arguments":{"query":"boom"}}}"#,
    );
    // `explain` exists on Dev only: kept for Dev, stripped for Staging.
    check(
        &call("query", json!({"sql": "1", "explain": true, "env": "Dev"})),
        &ANY,
        0,
        r#"env_Dev 2025-03-26 7 "#,
    );
    check(
        &call("query", json!({"sql": "1", "explain": true, "env": "Dev"})),
        &ANY,
        0,
        r#""explain":true"#,
    );
    check(
        &call(
            "query",
            json!({"sql": "1", "explain": true, "env": "Staging"}),
        ),
        &ANY,
        0,
        r#""arguments":{"sql":"1"}"#,
    );
    // Unknown arguments are the backend's to judge.
    check(
        &call(
            "search_logs",
            json!({"query": "q", "extra": 1, "env": "Prod"}),
        ),
        &ANY,
        0,
        r#""extra":1"#,
    );
}

#[test]
fn tools_call_errors() {
    check(
        &call("nope", json!({"env": "Prod"})),
        &ANY,
        200,
        "Unknown tool: nope",
    );
    check(
        &call("search_logs", json!({"query": "q"})),
        &ANY,
        200,
        "Missing required argument `env` for tool `search_logs`. Valid envs: Prod, Staging, Dev.",
    );
    check(
        &call("rollback", json!({"env": "Staging"})),
        &ANY,
        200,
        "Unknown env `Staging` for tool `rollback`. Valid envs: Prod.",
    );
    check(
        &call("search_logs", json!({"env": 3})),
        &ANY,
        200,
        "must be a string",
    );
    check(
        &call("search_logs", json!({"env": "Prod"}))
            .replace("\"env\":\"Prod\"", "\"env\":\"Mars\""),
        &ANY,
        200,
        r#""isError":true"#,
    );
    check(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
        &ANY,
        200,
        "-32602",
    );
    check(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}"#,
        &ANY,
        200,
        "-32602",
    );
    check(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_logs","arguments":[1]}}"#,
        &ANY,
        200,
        "-32602",
    );
}

#[test]
fn rbac_narrows_and_denies() {
    let staging = roles(&["staging-reader"]);
    check(
        &call("search_logs", json!({"query": "q", "env": "Staging"})),
        &staging,
        0,
        "FORWARD env_Staging",
    );
    check(
        &call("search_logs", json!({"query": "q", "env": "Prod"})),
        &staging,
        200,
        "DENIED search_logs@Prod",
    );
    check(
        &call("search_logs", json!({"query": "q", "env": "Prod"})),
        &staging,
        200,
        "Valid envs for you: Staging.",
    );
    check(
        &call("rollback", json!({"env": "Prod"})),
        &staging,
        200,
        "Unknown tool: rollback",
    );
    check(
        &call("search_logs", json!({"query": "q", "env": "Prod"})),
        &roles(&[]),
        200,
        "Unknown tool",
    );
    check(
        &call("search_logs", json!({"query": "q", "env": "Prod"})),
        &roles(&["ghost"]),
        200,
        "Unknown tool",
    );

    let list = |caller: &Caller| -> Value {
        let (_, body) = run(
            &post(),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            caller,
        );
        serde_json::from_str(&body).unwrap()
    };
    let names = |v: &Value| -> Vec<String> {
        v["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(&list(&roles(&["admin"]))),
        ["search_logs", "rollback", "query"]
    );
    let narrowed = list(&roles(&["prod-logs"]));
    assert_eq!(names(&narrowed), ["search_logs"]);
    let env = &narrowed["result"]["tools"][0]["inputSchema"]["properties"]["env"];
    assert_eq!(env["enum"], json!(["Prod"]));
    assert_eq!(
        env["description"],
        json!("Environment to run this tool in. One of:\n- Prod: Prod env")
    );
    assert!(
        list(&roles(&[]))["result"]["tools"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn era_2026_headers_must_match_the_body() {
    let head =
        |method: &'static str, name: Option<&'static str>, env: Option<&'static str>| RequestHead {
            protocol_version: Some("2026-07-28"),
            mcp_method: Some(method),
            mcp_name: name,
            mcp_param_env: env,
            ..post()
        };
    let body = call("search_logs", json!({"query": "q", "env": "Prod"}));
    check_head(
        &head("tools/call", Some("search_logs"), Some("Prod")),
        &body,
        &ANY,
        0,
        "FORWARD env_Prod 2025-06-18",
    );
    check_head(
        &head(
            "tools/call",
            Some("=?base64?c2VhcmNoX2xvZ3M=?="),
            Some("=?base64?UHJvZA==?="),
        ),
        &body,
        &ANY,
        0,
        "FORWARD",
    );
    check_head(
        &head("tools/call", Some("search_logs"), None),
        &body,
        &ANY,
        400,
        "Mcp-Param-Env",
    );
    check_head(
        &head("tools/list", Some("search_logs"), None),
        &body,
        &ANY,
        400,
        "-32020",
    );
    check_head(
        &head("tools/call", Some("other"), None),
        &body,
        &ANY,
        400,
        "Mcp-Name",
    );
    check_head(
        &head("tools/call", None, None),
        &body,
        &ANY,
        400,
        "Mcp-Name",
    );
    check_head(
        &head("tools/call", Some("search_logs"), Some("Dev")),
        &body,
        &ANY,
        400,
        "Mcp-Param-Env",
    );
    let discover = r#"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    check_head(
        &head("server/discover", None, None),
        discover,
        &ANY,
        200,
        r#""supportedVersions":["2025-03-26","2025-06-18","2025-11-25","2026-07-28"]"#,
    );
    let wrong_meta = discover.replace("2026-07-28\"}", "2025-06-18\"}");
    check_head(
        &head("server/discover", None, None),
        &wrong_meta,
        &ANY,
        400,
        "MCP-Protocol-Version",
    );
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    check_head(
        &head("tools/list", None, None),
        list,
        &ANY,
        200,
        r#""resultType":"complete""#,
    );
    // initialize-era clients get no 2026 fields.
    let (_, legacy) = run(&post(), list, &ANY);
    assert!(!legacy.contains("resultType"), "{legacy}");
}

#[test]
fn era_2026_meta_is_not_forwarded_but_progress_tokens_are() {
    let head = RequestHead {
        protocol_version: Some("2026-07-28"),
        mcp_method: Some("tools/call"),
        mcp_name: Some("search_logs"),
        mcp_param_env: Some("Prod"),
        ..post()
    };
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "search_logs", "arguments": {"query": "q", "env": "Prod"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientInfo": {"name": "c", "version": "1"},
                  "progressToken": "p1"}}})
    .to_string();
    let (_, got) = run(&head, &body, &ANY);
    assert!(got.contains(r#""_meta":{"progressToken":"p1"}"#), "{got}");
    assert!(!got.contains("io.modelcontextprotocol"), "{got}");
    let bare = body.replace(r#","progressToken":"p1""#, "");
    let (_, got) = run(&head, &bare, &ANY);
    assert!(!got.contains("_meta"), "{got}");
}

#[test]
fn era_2026_requests_are_checked_as_the_revision_says() {
    let g = gateway(false);
    let head = |method: &'static str, version: &'static str| RequestHead {
        protocol_version: Some(version),
        mcp_method: Some(method),
        ..post()
    };
    let answer = |head: &RequestHead<'_>, body: Value| match g.on_body(
        head,
        body.to_string().as_bytes(),
        &ANY,
    ) {
        Outcome::Reply(r) => (r.status, serde_json::from_slice::<Value>(&r.body).unwrap()),
        other => panic!("{other:?}"),
    };
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}});
    // Without the required `_meta`: -32602 and HTTP 400.
    let (status, v) = answer(
        &head("server/discover", "2026-07-28"),
        json!({"jsonrpc": "2.0", "id": 3, "method": "server/discover"}),
    );
    assert_eq!(
        (status, v["error"]["code"].clone(), v["id"].clone()),
        (400, json!(-32602), json!(3))
    );
    // An unsupported version: -32022 with the request's id and what we support.
    let (status, v) = answer(
        &head("tools/list", "2099-01-01"),
        json!({"jsonrpc": "2.0", "id": "x", "method": "tools/list"}),
    );
    assert_eq!(status, 400);
    assert_eq!(v["id"], json!("x"));
    assert_eq!(v["error"]["code"], json!(-32022));
    assert_eq!(v["error"]["data"]["requested"], json!("2099-01-01"));
    assert_eq!(v["error"]["data"]["supported"][3], json!("2026-07-28"));
    // `ping` and `initialize` are gone, and unknown methods are 404.
    for method in ["ping", "initialize", "resources/list"] {
        let (status, v) = answer(
            &head(method, "2026-07-28"),
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"_meta": meta}}),
        );
        assert_eq!(
            (status, v["error"]["code"].clone()),
            (404, json!(-32601)),
            "{method}"
        );
    }
    // The gateway's own tool errors carry `resultType`.
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "search_logs", "arguments": {"query": "q"}, "_meta": meta}});
    let h = RequestHead {
        mcp_name: Some("search_logs"),
        ..head("tools/call", "2026-07-28")
    };
    let (status, v) = answer(&h, call);
    assert_eq!(status, 200);
    assert_eq!(v["result"]["isError"], json!(true));
    assert_eq!(v["result"]["resultType"], json!("complete"));
    // A body `env` needs the `Mcp-Param-Env` the served schema declares.
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "search_logs", "arguments": {"query": "q", "env": "Prod"}, "_meta": meta}});
    let (status, v) = answer(&h, call);
    assert_eq!((status, v["error"]["code"].clone()), (400, json!(-32020)));
    // Legacy clients keep their forms.
    let (status, v) = answer(
        &post(),
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
    );
    assert_eq!((status, v["result"].clone()), (200, json!({})));
}

#[test]
fn client_answers_to_relayed_requests_go_to_their_env() {
    let g = gateway(false);
    let relay = |id: Value| {
        g.on_body(
            &post(),
            json!({"jsonrpc": "2.0", "id": id, "result": {"action": "accept"}})
                .to_string()
                .as_bytes(),
            &ANY,
        )
    };
    match relay(json!(crate::exchange::ids::server_request(
        "Staging",
        "c0",
        &json!(4)
    ))) {
        Outcome::Forward(f) => {
            assert_eq!(f.kind, crate::gateway::ForwardKind::Relay);
            assert_eq!(f.env, "Staging");
            assert_eq!(f.message["id"], json!(4));
        }
        other => panic!("{other:?}"),
    }
    // Ids the gateway did not make, or envs it does not know, are accepted and dropped.
    for id in [json!(4), json!("mmx-s:Nope:c0:4")] {
        assert!(matches!(relay(id), Outcome::Reply(r) if r.status == 202));
    }
}

#[path = "gateway_env_tests.rs"]
mod env_descriptions;
