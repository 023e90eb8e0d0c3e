//! The gateway decision, driven through the sans-IO `Exchange` the way the filter drives it,
//! with a fixed manifest (three envs; `query` has `explain` on Dev only; role-based access)
//! and arbitrary request heads, bodies and callers. Invariants:
//! - no panic; every local reply is JSON when it says so;
//! - a call is forwarded only to an env the caller may call that tool in (checked against an
//!   oracle written out here, not the policy's own RBAC), and only when the strict parse
//!   accepted the body;
//! - the forwarded body never carries `env`, nor a parameter the target env lacks;
//! - every client header off the allowlist is removed, and the path is the MCP path;
//! - a relayed client answer goes to the env its id names;
//! - the answer to a forwarded call reaches the caller with the caller's own id.
//!
//! Input: `name: value` header lines, a blank line, then the body (no blank line: all body).
//! Pseudo-headers set the caller and the session cache: `x-fuzz-roles: a,b` (absent: no auth
//! configured for the caller, i.e. unrestricted), `x-fuzz-session: none | stateless | <id>`.

use std::collections::HashMap;
use std::sync::OnceLock;

use policy::exchange::{Action, Exchange, HeaderOp, Host, Request, ResponseHead, SideCall};
use policy::manifest::{EnvDescriptions, EnvEntry, FilterAuth, Manifest, ServerInfo};
use policy::merge::{EnvTools, merge_with};
use policy::reply::LocalReply;
use policy::rpc::{self, Message};
use policy::session::{BackendSession, shared_key};
use policy::{Caller, FilterConfig, Gateway};
use serde_json::{Map, Value, json};

const ENVS: [&str; 3] = ["Prod", "Staging", "Dev"];

fn tool(name: &str, props: Value) -> Value {
    json!({"name": name, "description": format!("{name} tool"),
           "inputSchema": {"type": "object", "properties": props}})
}

fn build() -> Gateway {
    let shared = tool("search_logs", json!({"query": {"type": "string"}}));
    let prod = [
        shared.clone(),
        tool("rollback", json!({"release": {"type": "string"}})),
    ];
    let staging = [
        shared.clone(),
        tool("query", json!({"sql": {"type": "string"}})),
    ];
    let dev = [
        shared,
        tool(
            "query",
            json!({"sql": {"type": "string"}, "explain": {"type": "boolean"}}),
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
        EnvDescriptions::PerTool,
    );
    let envs = ENVS
        .iter()
        .map(|e| EnvEntry {
            name: (*e).into(),
            description: format!("{e} env"),
            cluster: format!("env_{e}"),
            url: format!("http://{e}.internal/mcp"),
            authority: format!("{e}.internal"),
            path: "/mcp".into(),
            protocol_version: "2025-06-18".into(),
            server_info: None,
            unreachable: None,
            stale: None,
            server: None,
            label: None,
        })
        .collect();
    let manifest = Manifest {
        format: policy::manifest::MANIFEST_FORMAT,
        hash: String::new(),
        server: ServerInfo {
            name: "meshmux".into(),
            version: "fuzz".into(),
            instructions: Some("hi".into()),
            env_descriptions: EnvDescriptions::PerTool,
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
    let roles = serde_json::from_value(json!({
        "admin": {"allowed_envs": {"*": ["*"]}},
        "staging-reader": {"allowed_envs": {"Staging": ["*"]}},
        "prod-logs": {"allowed_envs": {"Prod": ["search_*"]}}
    }));
    let auth = FilterAuth {
        claims_path: vec!["envoy.filters.http.jwt_authn".into(), "jwt_payload".into()],
        roles: roles.unwrap_or_else(|e| panic!("roles: {e}")),
        resource_metadata: None,
        revocations: Default::default(),
    };
    let config = FilterConfig {
        manifest,
        mcp_path: "/mcp".into(),
        max_body_bytes: 64 * 1024,
        backends: Default::default(),
        auth: Some(auth),
        metrics: Default::default(),
        host_policy: Default::default(),
    };
    Gateway::new(config).unwrap_or_else(|e| panic!("gateway: {e}"))
}

fn gateway() -> &'static Gateway {
    static GW: OnceLock<Gateway> = OnceLock::new();
    GW.get_or_init(build)
}

/// The access rules above, written out: may `caller` call `tool` in `env`?
fn oracle_allows(caller: &Caller, tool: &str, env: &str) -> bool {
    let exists = match tool {
        "search_logs" => true,
        "rollback" => env == "Prod",
        "query" => env == "Staging" || env == "Dev",
        _ => false,
    };
    let Caller::Roles(roles) = caller else {
        return exists;
    };
    let has = |r: &str| roles.iter().any(|x| x == r);
    exists
        && (has("admin")
            || (has("staging-reader") && env == "Staging")
            || (has("prod-logs") && env == "Prod" && tool.starts_with("search_")))
}

/// The parameters `tool` has in `env` (the manifest's own record).
fn env_params(tool: &str, env: &str) -> &'static [&'static str] {
    match (tool, env) {
        ("search_logs", _) => &["query"],
        ("rollback", "Prod") => &["release"],
        ("query", "Staging") => &["sql"],
        ("query", "Dev") => &["sql", "explain"],
        _ => &[],
    }
}
/// Every parameter any env of `tool` has (the ones stripped when the target env lacks them).
fn all_params(tool: &str) -> &'static [&'static str] {
    match tool {
        "search_logs" => &["query"],
        "rollback" => &["release"],
        "query" => &["sql", "explain"],
        _ => &[],
    }
}

const KEPT: [&str; 9] = [
    "content-type",
    "user-agent",
    "traceparent",
    "tracestate",
    "x-request-id",
    "content-length",
    "accept",
    "transfer-encoding",
    "x-forwarded-proto",
];

#[derive(Default)]
struct FakeHost {
    shared: HashMap<String, (Vec<u8>, u32)>,
    caller: Option<Caller>,
    next_token: u32,
    next_id: u64,
}

impl Host for FakeHost {
    fn caller(&self) -> Caller {
        self.caller.clone().unwrap_or(Caller::Unrestricted)
    }
    fn principal(&self) -> String {
        "fuzz".into()
    }
    fn revoked(&self) -> Option<LocalReply> {
        None
    }
    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.shared.get(key) {
            Some((v, cas)) => (Some(v.clone()), Some(*cas)),
            None => (None, None),
        }
    }
    fn shared_set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        let current = self.shared.get(key).map(|(_, c)| *c);
        if cas.is_some() && cas != current {
            return false;
        }
        let next = current.unwrap_or(0) + 1;
        self.shared.insert(key.into(), (value.to_vec(), next));
        true
    }
    fn dispatch(&mut self, _call: &SideCall) -> Result<u32, String> {
        self.next_token += 1;
        Ok(self.next_token)
    }
    fn next_call_id(&mut self) -> String {
        self.next_id += 1;
        policy::exchange::ids::call(1, self.next_id)
    }
}

struct Input<'a> {
    headers: Vec<(String, String)>,
    caller: Option<Caller>,
    session: Option<Option<String>>,
    body: &'a [u8],
}

fn split(data: &[u8]) -> Input<'_> {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(p) => (&data[..p], &data[p + 2..]),
        None => (&b""[..], data),
    };
    let mut input = Input {
        headers: Vec::new(),
        caller: None,
        session: None,
        body,
    };
    for line in String::from_utf8_lossy(head).lines() {
        // `:path: /mcp` — a pseudo-header's name has a leading colon.
        let Some(p) = line.get(1..).and_then(|l| l.find(": ")).map(|p| p + 1) else {
            continue;
        };
        let (name, value) = (line[..p].to_ascii_lowercase(), line[p + 2..].to_owned());
        match name.as_str() {
            "x-fuzz-roles" => {
                input.caller = Some(Caller::Roles(
                    value
                        .split(',')
                        .filter(|r| !r.is_empty())
                        .map(str::to_owned)
                        .collect(),
                ))
            }
            "x-fuzz-session" => {
                input.session = match value.as_str() {
                    "none" => None,
                    "stateless" => Some(None),
                    id => Some(Some(id.to_owned())),
                }
            }
            _ => input.headers.push((name, value)),
        }
    }
    for (name, value) in [
        (":method", "POST"),
        (":path", "/mcp"),
        ("content-type", "application/json"),
    ] {
        if !input.headers.iter().any(|(n, _)| n == name) {
            input.headers.push((name.into(), value.into()));
        }
    }
    input
}

fn drain(ex: &mut Exchange) -> Vec<Action> {
    std::iter::from_fn(|| ex.poll_action()).collect()
}

pub fn check(data: &[u8]) {
    let gw = gateway();
    let input = split(data);
    let mut host = FakeHost {
        caller: input.caller.clone(),
        ..Default::default()
    };
    if let Some(session_id) = &input.session {
        for env in ENVS {
            let s = BackendSession {
                url: format!("http://{env}.internal/mcp"),
                session_id: session_id.clone(),
                protocol_version: "2025-06-18".into(),
            };
            host.shared_set(&shared_key(env), &s.encode(), None);
        }
    }
    let caller = host.caller();
    let request =
        Request::from_headers(input.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let mut ex = Exchange::new();
    ex.handle_request_head(gw, &mut host, request.clone(), false);
    let mut actions = drain(&mut ex);
    if ex.wants_request_body(true) {
        ex.handle_request_body(gw, &mut host, input.body.len(), true, input.body);
        actions.extend(drain(&mut ex));
    }

    for a in &actions {
        if let Action::Reply(r) = a {
            assert!((200..600).contains(&r.status), "status {}", r.status);
            let json = r
                .headers
                .iter()
                .any(|(n, v)| *n == "content-type" && v.contains("json"));
            if json {
                assert!(
                    serde_json::from_slice::<Value>(&r.body).is_ok(),
                    "a JSON reply that is not JSON: {}",
                    r.body_text()
                );
            }
        }
    }
    let routes: Vec<&String> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Route(env) => Some(env),
            _ => None,
        })
        .collect();
    let Some(env) = routes.first() else {
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, Action::ReplaceRequestBody { .. })),
            "a body replaced without a route: {actions:?}"
        );
        return;
    };
    assert_eq!(routes.len(), 1, "routed twice: {actions:?}");
    let sent = actions.iter().find_map(|a| match a {
        Action::ReplaceRequestBody { body, .. } => Some(body),
        _ => None,
    });
    let Some(sent) = sent else {
        panic!("routed without a body: {actions:?}")
    };
    let Ok(Value::Object(sent)) = serde_json::from_slice::<Value>(sent) else {
        panic!(
            "forwarded body is no JSON object: {}",
            String::from_utf8_lossy(sent)
        );
    };
    let original = rpc::parse(input.body);
    let ops: Vec<&HeaderOp> = actions
        .iter()
        .filter_map(|a| match a {
            Action::EditRequestHeaders(ops) => Some(ops),
            _ => None,
        })
        .flatten()
        .collect();
    for (name, _) in &input.headers {
        if !name.starts_with(':') && !KEPT.contains(&name.as_str()) {
            assert!(
                ops.contains(&&HeaderOp::Remove(name.clone())),
                "client header `{name}` reaches the backend: {ops:?}"
            );
        }
    }
    assert!(
        ops.contains(&&HeaderOp::Set(":path".into(), "/mcp".into())),
        "{ops:?}"
    );

    match original {
        Ok(Message::Request { id, method, object }) => {
            assert_eq!(method, "tools/call", "forwarded {method}");
            let params = object.get("params").and_then(Value::as_object);
            let name = params
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let args = params
                .and_then(|p| p.get("arguments"))
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            assert_eq!(
                args.get("env").and_then(Value::as_str),
                Some(env.as_str()),
                "routed to another env"
            );
            assert!(
                oracle_allows(&caller, name, env),
                "{caller:?} may not call {name} in {env}"
            );
            assert_eq!(sent.get("method"), Some(&Value::from("tools/call")));
            let sent_params = sent.get("params").and_then(Value::as_object);
            assert_eq!(
                sent_params.and_then(|p| p.get("name")),
                Some(&Value::from(name))
            );
            let sent_args = sent_params
                .and_then(|p| p.get("arguments"))
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            assert!(!sent_args.contains_key("env"), "`env` forwarded: {sent:?}");
            for p in all_params(name) {
                if !env_params(name, env).contains(p) {
                    assert!(!sent_args.contains_key(*p), "`{p}` forwarded to {env}");
                }
            }
            for (k, v) in &sent_args {
                assert_eq!(args.get(k), Some(v), "argument `{k}` changed");
            }
            answer(gw, &mut host, &mut ex, &id, &sent, &request);
        }
        Ok(Message::Response { object }) => {
            let id = object.get("id").and_then(Value::as_str).unwrap_or_default();
            let named = id.strip_prefix("mmx-s:").and_then(|r| r.split(':').next());
            assert_eq!(named, Some(env.as_str()), "relayed to another env");
            assert!(!sent.contains_key("method"));
        }
        other => panic!("forwarded {other:?}"),
    }
}

/// The backend answers the forwarded call with the id it got; the caller must get its own.
fn answer(
    gw: &Gateway,
    host: &mut FakeHost,
    ex: &mut Exchange,
    id: &Value,
    sent: &Map<String, Value>,
    request: &Request,
) {
    if !ex.wants_response_head() {
        return;
    }
    let body =
        json!({"jsonrpc": "2.0", "id": sent.get("id"), "result": {"content": []}}).to_string();
    let head = ResponseHead {
        status: 200,
        content_type: Some("application/json"),
        session_id: true,
        end_of_stream: false,
    };
    ex.handle_response_head(gw, host, head);
    let mut rewritten = false;
    for a in drain(ex) {
        if let Action::EditResponseHeaders(ops) = a {
            rewritten |= ops.contains(&HeaderOp::Remove("content-length".into()));
        }
    }
    let bytes = body.as_bytes();
    let (a, b) = bytes.split_at(bytes.len() / 2);
    let mut out = Vec::new();
    for (chunk, end) in [(a, false), (b, true)] {
        let wanted = ex.response_bytes_wanted(chunk.len(), end).min(chunk.len());
        ex.handle_response_chunk(gw, host, chunk.len(), end, &chunk[..wanted]);
        let mut written = false;
        for action in drain(ex) {
            if let Action::WriteResponseChunk { bytes, .. } = action {
                out.extend(bytes);
                written = true;
            }
        }
        if !written {
            out.extend_from_slice(chunk);
        }
    }
    let got: Value = serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("answer {:?}: {e}", String::from_utf8_lossy(&out)));
    assert_eq!(
        got.get("id"),
        Some(id),
        "the caller got another id (rewritten: {rewritten})"
    );
    let modern = request.protocol_version.as_deref().map(str::trim) == Some("2026-07-28");
    if modern {
        assert_eq!(
            got["result"].get("resultType"),
            Some(&Value::from("complete"))
        );
    }
}
