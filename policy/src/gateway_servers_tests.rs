//! Many servers behind one endpoint: namespaced tools, a server with one backend (no `env`),
//! a server with envs (labels routed to their backends), renames, and roles over both.

use serde_json::{Value, json};

use super::tests::{post, roles};
use super::*;
use crate::manifest::{EnvDescriptions, EnvEntry, FilterAuth, Manifest, ServerInfo};
use crate::servers::{BackendTools, ServerEnv, ServerSpec, ToolOverride, assemble};

fn tool(name: &str, props: Value) -> Value {
    json!({"name": name, "description": format!("{name} tool"),
           "inputSchema": {"type": "object", "properties": props}})
}

pub(crate) fn backend(name: &str, label: Option<&str>, server: &str) -> EnvEntry {
    EnvEntry {
        name: name.into(),
        description: format!("{name} backend"),
        cluster: format!("env_{name}"),
        url: format!("http://{name}.internal/mcp"),
        authority: format!("{name}.internal"),
        path: "/mcp".into(),
        protocol_version: "2025-06-18".into(),
        server_info: None,
        unreachable: None,
        stale: None,
        server: Some(server.into()),
        label: label.map(str::to_owned),
    }
}

/// `github` (one backend; its `search` renamed from `search_code`, and a tool with its own
/// `env` parameter) and `obs` (Prod and Staging).
fn gateway(auth: bool) -> Gateway {
    let github = ServerSpec {
        name: "github".into(),
        prefix: Some("github".into()),
        env_arg: false,
        tools: [(
            "search_code".to_owned(),
            ToolOverride {
                name: Some("search".into()),
                description: None,
            },
        )]
        .into(),
        envs: vec![ServerEnv {
            label: "github".into(),
            backend: "github".into(),
        }],
    };
    let obs = ServerSpec {
        name: "obs".into(),
        prefix: Some("obs".into()),
        env_arg: true,
        tools: Default::default(),
        envs: ["Prod", "Staging"]
            .iter()
            .map(|e| ServerEnv {
                label: (*e).into(),
                backend: format!("obs.{e}"),
            })
            .collect(),
    };
    let gh_tools = [
        tool("search_code", json!({"q": {"type": "string"}})),
        tool("deploy", json!({"env": {"type": "string"}})),
    ];
    let obs_tools = [tool("query", json!({"q": {"type": "string"}}))];
    let merged = assemble(
        &[github, obs],
        &[
            BackendTools {
                backend: "github",
                description: "GitHub",
                tools: &gh_tools,
            },
            BackendTools {
                backend: "obs.Prod",
                description: "Production",
                tools: &obs_tools,
            },
            BackendTools {
                backend: "obs.Staging",
                description: "Staging",
                tools: &obs_tools,
            },
        ],
        EnvDescriptions::PerTool,
    );
    assert!(merged.errors.is_empty(), "{:?}", merged.errors);
    let manifest = Manifest {
        format: crate::manifest::MANIFEST_FORMAT,
        hash: String::new(),
        server: ServerInfo {
            name: "meshmux".into(),
            version: "test".into(),
            instructions: None,
            env_descriptions: EnvDescriptions::PerTool,
            tool_exposure: Default::default(),
        },
        envs: vec![
            backend("github", None, "github"),
            backend("obs.Prod", Some("Prod"), "obs"),
            backend("obs.Staging", Some("Staging"), "obs"),
        ],
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
        claims_path: vec!["p".into()],
        roles: serde_json::from_value(json!({
            "dev": {"allowed_envs": {"github": ["github__*"], "Staging": ["obs__*"]}},
            "oncall": {"allowed_envs": {"*": ["obs__*"]}}
        }))
        .unwrap(),
        resource_metadata: None,
        revocations: Default::default(),
    });
    Gateway::new(FilterConfig {
        manifest,
        mcp_path: "/mcp".into(),
        max_body_bytes: 4096,
        backends: Default::default(),
        auth,
        metrics: Default::default(),
        host_policy: Default::default(),
    })
    .unwrap()
}

fn call(name: &str, arguments: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": name, "arguments": arguments}}))
    .unwrap()
}

fn forwarded(outcome: Outcome) -> Forward {
    match outcome {
        Outcome::Forward(f) => *f,
        other => panic!("expected a forward, got {other:?}"),
    }
}

fn reply_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Reply(r) | Outcome::Denied { reply: r, .. } => {
            String::from_utf8_lossy(&r.body).into()
        }
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[test]
fn a_single_backend_tool_is_called_by_its_backend_name_without_env() {
    let gw = gateway(false);
    let f = forwarded(gw.on_body(
        &post(),
        &call("github__search", json!({"q": "x"})),
        &Caller::Unrestricted,
    ));
    assert_eq!(f.env, "github");
    assert_eq!(f.cluster, "env_github");
    assert_eq!(f.tool, "github__search");
    assert_eq!(f.message["params"]["name"], json!("search_code"));
    assert_eq!(f.message["params"]["arguments"], json!({"q": "x"}));
    // The tool's own `env` parameter is its own: it goes through.
    let f = forwarded(gw.on_body(
        &post(),
        &call("github__deploy", json!({"env": "blue"})),
        &Caller::Unrestricted,
    ));
    assert_eq!(f.message["params"]["name"], json!("deploy"));
    assert_eq!(f.message["params"]["arguments"], json!({"env": "blue"}));
    assert_eq!(f.subject, "Server `github`");
}

#[test]
fn a_servers_env_label_routes_to_its_backend() {
    let gw = gateway(false);
    let f = forwarded(gw.on_body(
        &post(),
        &call("obs__query", json!({"q": "x", "env": "Staging"})),
        &Caller::Unrestricted,
    ));
    assert_eq!(f.env, "obs.Staging");
    assert_eq!(f.cluster, "env_obs.Staging");
    // Failures name the server and its env, not the backend.
    assert_eq!(f.subject, "Server `obs` (env `Staging`)");
    assert_eq!(f.message["params"]["name"], json!("query"));
    assert_eq!(f.message["params"]["arguments"], json!({"q": "x"}));
    // The backend's name is not an env callers can name.
    let out = gw.on_body(
        &post(),
        &call("obs__query", json!({"q": "x", "env": "obs.Prod"})),
        &Caller::Unrestricted,
    );
    assert!(
        reply_text(&out).contains("Unknown env `obs.Prod`"),
        "{out:?}"
    );
    // Nor is a backend's tool name a served one.
    let out = gw.on_body(
        &post(),
        &call("query", json!({"env": "Prod"})),
        &Caller::Unrestricted,
    );
    assert!(reply_text(&out).contains("Unknown tool: query"), "{out:?}");
}

#[test]
fn roles_match_namespaced_names_and_narrow_the_list_across_servers() {
    let gw = gateway(true);
    let dev = roles(&["dev"]);
    let list = gw.on_body(
        &post(),
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        &dev,
    );
    let Outcome::Reply(list) = list else {
        panic!("{list:?}")
    };
    let list: Value = serde_json::from_slice(&list.body).unwrap();
    let tools = list["result"]["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["github__search", "github__deploy", "obs__query"]);
    let query = &tools[2];
    assert_eq!(
        query["inputSchema"]["properties"]["env"]["enum"],
        json!(["Staging"])
    );
    assert!(
        !query["inputSchema"]["properties"]["env"]["description"]
            .as_str()
            .unwrap()
            .contains("Production")
    );
    // The single-backend tools are served as defined: no `env` injected.
    assert_eq!(
        tools[0]["inputSchema"]["properties"],
        json!({"q": {"type": "string"}})
    );

    let prod = gw.on_body(&post(), &call("obs__query", json!({"env": "Prod"})), &dev);
    assert!(matches!(prod, Outcome::Denied { .. }), "{prod:?}");
    assert!(reply_text(&prod).contains("Access denied"));
    let staging = forwarded(gw.on_body(
        &post(),
        &call("obs__query", json!({"env": "Staging"})),
        &dev,
    ));
    assert_eq!(staging.env, "obs.Staging");

    // `oncall` may use obs anywhere and github not at all: github's tools look unknown.
    let oncall = roles(&["oncall"]);
    let out = gw.on_body(&post(), &call("github__search", json!({})), &oncall);
    assert!(
        reply_text(&out).contains("Unknown tool: github__search"),
        "{out:?}"
    );
    assert_eq!(
        forwarded(gw.on_body(
            &post(),
            &call("obs__query", json!({"env": "Prod"})),
            &oncall
        ))
        .env,
        "obs.Prod"
    );
}

#[test]
fn a_manifest_whose_implicit_env_tool_lists_two_envs_is_refused() {
    let gw = gateway(false);
    let mut config = gw.config().clone();
    let tool = config
        .manifest
        .tools
        .iter_mut()
        .find(|t| t.implicit_env)
        .unwrap();
    let extra = tool.envs[0].clone();
    tool.envs.push(extra);
    assert!(Gateway::new(config).unwrap_err().contains("takes no `env`"));
}

#[test]
fn pinning_blocks_a_drifted_tool_by_its_served_name_with_or_without_env() {
    use crate::pin::{Change, Drift, PinMode, PinReport};
    let mut config = gateway(false).config().clone();
    config.manifest.pinning = Some(PinReport {
        mode: PinMode::Block,
        drift: vec![
            Drift {
                env: "github".into(),
                tool: "search_code".into(),
                change: Change::Changed,
                served: Some("github__search".into()),
                label: None,
            },
            Drift {
                env: "obs.Prod".into(),
                tool: "query".into(),
                change: Change::Changed,
                served: Some("obs__query".into()),
                label: Some("Prod".into()),
            },
        ],
    });
    let gw = Gateway::new(config).unwrap();
    let out = gw.on_body(
        &post(),
        &call("github__search", json!({"q": "x"})),
        &Caller::Unrestricted,
    );
    assert!(matches!(out, Outcome::Denied { .. }), "{out:?}");
    assert!(
        reply_text(&out).contains("blocked by tool pinning"),
        "{out:?}"
    );
    let out = gw.on_body(
        &post(),
        &call("obs__query", json!({"env": "Prod"})),
        &Caller::Unrestricted,
    );
    assert!(
        reply_text(&out).contains("blocked by tool pinning"),
        "{out:?}"
    );
    // Staging did not drift.
    let f = forwarded(gw.on_body(
        &post(),
        &call("obs__query", json!({"env": "Staging"})),
        &Caller::Unrestricted,
    ));
    assert_eq!(f.env, "obs.Staging");
    // The deploy tool did not drift either.
    forwarded(gw.on_body(
        &post(),
        &call("github__deploy", json!({})),
        &Caller::Unrestricted,
    ));
}
