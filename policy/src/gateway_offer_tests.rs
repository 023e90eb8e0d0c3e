//! Prompts, resources and completions across servers: listed per caller, and each request
//! routed to the one backend it names, with the backend's own names.

use serde_json::{Value, json};

use super::servers_tests::backend;
use super::tests::{post, roles};
use super::*;
use crate::manifest::{EnvDescriptions, FilterAuth, Manifest, ServerInfo};
use crate::offerings::tests::{prompt, server};
use crate::offerings::{BackendOfferings, assemble};

/// `github` (one backend: a prompt, a resource) and `obs` (Prod and Staging: a prompt in
/// both, a resource in each, a template in Prod).
pub(crate) fn gateway() -> Gateway {
    let servers = [
        server("github", Some("github"), &[("github", "github")]),
        server(
            "obs",
            Some("obs"),
            &[("Prod", "obs.Prod"), ("Staging", "obs.Staging")],
        ),
    ];
    let gh_prompts = [prompt("review", &["pr"])];
    let gh_res = [json!({"uri": "repo://meshmux/README.md", "name": "readme"})];
    let obs_prompts = [prompt("summarize", &["service"])];
    let obs_res = [json!({"uri": "file:///runbook.md", "name": "runbook"})];
    let obs_tpl = [json!({"uriTemplate": "logs://{service}", "name": "logs"})];
    let out = assemble(
        &servers,
        &[
            BackendOfferings {
                backend: "github",
                prompts: &gh_prompts,
                resources: &gh_res,
                templates: &[],
            },
            BackendOfferings {
                backend: "obs.Prod",
                prompts: &obs_prompts,
                resources: &obs_res,
                templates: &obs_tpl,
            },
            BackendOfferings {
                backend: "obs.Staging",
                prompts: &obs_prompts,
                resources: &obs_res,
                templates: &[],
            },
        ],
        true,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
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
        tools: vec![],
        warnings: vec![],
        errors: vec![],
        pinning: None,
        prompts: out.prompts,
        resources: out.resources,
        resource_templates: out.templates,
    }
    .seal();
    let auth = FilterAuth {
        claims_path: vec!["p".into()],
        roles: serde_json::from_value(json!({
            "admin": {"allowed_envs": {"*": ["*"]}},
            // obs in Staging only: its prompts, and its files (not its logs).
            "staging": {"allowed_envs": {"Staging": ["obs__*", "file:///*"]}},
            "github": {"allowed_envs": {"github": ["github__*"]}}
        }))
        .unwrap(),
        resource_metadata: None,
        revocations: Default::default(),
    };
    Gateway::new(FilterConfig {
        manifest,
        mcp_path: "/mcp".into(),
        max_body_bytes: 4096,
        backends: Default::default(),
        auth: Some(auth),
        metrics: Default::default(),
        host_policy: Default::default(),
    })
    .unwrap()
}

fn request(method: &str, params: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 9, "method": method, "params": params}))
        .unwrap()
}

fn answer(outcome: Outcome) -> Value {
    match outcome {
        Outcome::Reply(r) => serde_json::from_slice(&r.body).unwrap(),
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn forwarded(outcome: Outcome) -> Forward {
    match outcome {
        Outcome::Forward(f) => *f,
        other => panic!("expected a forward, got {other:?}"),
    }
}

fn run(method: &str, params: Value, who: &[&str]) -> Outcome {
    gateway().on_body(&post(), &request(method, params), &roles(who))
}

fn names(list: &Value, key: &str, field: &str) -> Vec<String> {
    list["result"][key]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[field].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn initialize_declares_what_the_catalog_offers() {
    let body = request(
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    let caps = match gateway().on_body(&post(), &body, &roles(&["admin"])) {
        Outcome::Initialized(r) => serde_json::from_slice::<Value>(&r.body).unwrap(),
        other => panic!("{other:?}"),
    }["result"]["capabilities"]
        .clone();
    assert_eq!(caps["prompts"], json!({"listChanged": false}));
    assert_eq!(
        caps["resources"],
        json!({"listChanged": false, "subscribe": false})
    );
    assert_eq!(caps["completions"], json!({}));
    assert_eq!(caps["logging"], json!({}));
}

#[test]
fn a_tools_only_catalog_declares_none_and_answers_method_not_found() {
    let gw = super::tests::gateway(false);
    for method in ["prompts/list", "resources/read", "completion/complete"] {
        let a = answer(gw.on_body(&post(), &request(method, json!({})), &Caller::Unrestricted));
        assert_eq!(a["error"]["code"], json!(-32601), "{method}");
    }
}

#[test]
fn prompts_are_listed_per_caller_with_the_envs_it_may_use() {
    let all = answer(run("prompts/list", json!({}), &["admin"]));
    assert_eq!(
        names(&all, "prompts", "name"),
        ["github__review", "obs__summarize"]
    );
    let staging = answer(run("prompts/list", json!({}), &["staging"]));
    assert_eq!(names(&staging, "prompts", "name"), ["obs__summarize"]);
    let env = &staging["result"]["prompts"][0]["arguments"][1];
    assert_eq!(env["name"], json!("env"));
    assert_eq!(
        env["description"],
        json!("Environment to get this prompt from. One of: Staging")
    );
    let none = answer(run("prompts/list", json!({}), &[]));
    assert_eq!(none["result"]["prompts"], json!([]));
}

#[test]
fn prompts_get_goes_to_the_env_chosen_with_the_backends_name() {
    let f = forwarded(run(
        "prompts/get",
        json!({"name": "obs__summarize", "arguments": {"service": "api", "env": "Staging"}}),
        &["staging"],
    ));
    assert_eq!(f.kind, ForwardKind::Request);
    assert_eq!(f.env, "obs.Staging");
    assert_eq!(f.cluster, "env_obs.Staging");
    assert_eq!(f.subject, "Server `obs` (env `Staging`)");
    assert_eq!(
        f.message["params"],
        json!({"name": "summarize", "arguments": {"service": "api"}})
    );
    // A server with one backend: no `env`.
    let f = forwarded(run(
        "prompts/get",
        json!({"name": "github__review", "arguments": {"pr": "7"}}),
        &["github"],
    ));
    assert_eq!(
        (f.env.as_str(), f.subject.as_str()),
        ("github", "Server `github`")
    );
    assert_eq!(f.message["params"]["name"], json!("review"));
}

#[test]
fn prompts_get_refusals_are_clear_and_forward_nothing() {
    let cases = [
        (
            json!({"name": "obs__summarize", "arguments": {"service": "api"}}),
            &["staging"][..],
            "Missing required argument `env` for prompt `obs__summarize`. Valid envs: Staging.",
        ),
        (
            json!({"name": "obs__summarize", "arguments": {"env": "Prod"}}),
            &["staging"][..],
            "Access denied: you may not get prompt `obs__summarize` in env `Prod`. Valid envs for you: Staging.",
        ),
        (
            json!({"name": "obs__summarize", "arguments": {"env": "Dev"}}),
            &["admin"][..],
            "Unknown env `Dev` for prompt `obs__summarize`. Valid envs: Prod, Staging.",
        ),
        // Hidden from the caller: unknown, as if it did not exist.
        (
            json!({"name": "github__review"}),
            &["staging"][..],
            "Unknown prompt: github__review",
        ),
        (
            json!({"name": 3}),
            &["admin"][..],
            "`params.name` must be a string naming the prompt",
        ),
    ];
    for (params, who, message) in cases {
        let a = answer(run("prompts/get", params.clone(), who));
        assert_eq!(a["error"]["code"], json!(-32602), "{params}");
        assert_eq!(a["error"]["message"], json!(message), "{params}");
        assert_eq!(a["id"], json!(9));
    }
}

#[test]
fn resources_are_listed_per_caller_by_uri() {
    let all = answer(run("resources/list", json!({}), &["admin"]));
    assert_eq!(
        names(&all, "resources", "uri"),
        [
            "meshmux://github/repo://meshmux/README.md",
            "meshmux://obs.Prod/file:///runbook.md",
            "meshmux://obs.Staging/file:///runbook.md"
        ]
    );
    let staging = answer(run("resources/list", json!({}), &["staging"]));
    assert_eq!(
        names(&staging, "resources", "uri"),
        ["meshmux://obs.Staging/file:///runbook.md"]
    );
    let templates = answer(run("resources/templates/list", json!({}), &["admin"]));
    assert_eq!(
        names(&templates, "resourceTemplates", "uriTemplate"),
        ["meshmux://obs.Prod/logs://{service}"]
    );
    let templates = answer(run("resources/templates/list", json!({}), &["staging"]));
    assert_eq!(templates["result"]["resourceTemplates"], json!([]));
}

#[test]
fn a_read_reaches_the_backend_its_uri_names_with_the_backends_uri() {
    let f = forwarded(run(
        "resources/read",
        json!({"uri": "meshmux://obs.Staging/file:///runbook.md"}),
        &["staging"],
    ));
    assert_eq!(f.kind, ForwardKind::Request);
    assert_eq!(f.env, "obs.Staging");
    assert_eq!(f.message["params"]["uri"], json!("file:///runbook.md"));
    // The answer's URIs are wrapped back; a legacy caller gets no caching hints.
    assert_eq!(f.result.wrap_uris.as_deref(), Some("obs.Staging"));
    assert!(!f.result.caching);
    // A URI of a template, expanded: any URI of a backend the roles allow.
    let f = forwarded(run(
        "resources/read",
        json!({"uri": "meshmux://obs.Prod/logs://api"}),
        &["admin"],
    ));
    assert_eq!(f.message["params"]["uri"], json!("logs://api"));
    let f = forwarded(run(
        "resources/subscribe",
        json!({"uri": "meshmux://github/repo://meshmux/README.md"}),
        &["admin"],
    ));
    assert_eq!(f.env, "github");
    assert_eq!(
        f.message["params"]["uri"],
        json!("repo://meshmux/README.md")
    );
    assert_eq!(f.result.wrap_uris, None);
}

#[test]
fn reads_the_roles_do_not_allow_or_of_no_backend_are_not_found() {
    for (uri, who) in [
        ("meshmux://obs.Prod/file:///runbook.md", &["staging"][..]),
        ("meshmux://obs.Staging/logs://api", &["staging"][..]),
        ("meshmux://nope/file:///x", &["admin"][..]),
        // Several backends: a URI must name one.
        ("file:///runbook.md", &["admin"][..]),
        ("meshmux://github", &["admin"][..]),
    ] {
        let a = answer(run("resources/read", json!({"uri": uri}), who));
        assert_eq!(a["error"]["code"], json!(-32002), "{uri}");
        assert_eq!(
            a["error"]["message"],
            json!(format!("Resource not found: {uri}"))
        );
    }
    let a = answer(run("resources/read", json!({}), &["admin"]));
    assert_eq!(a["error"]["code"], json!(-32602));
}

#[test]
fn the_env_argument_is_completed_by_the_gateway_and_the_rest_by_the_backend() {
    let complete = |argument: Value, context: Value, who: &[&str]| {
        run(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "obs__summarize"},
                   "argument": argument, "context": context}),
            who,
        )
    };
    let a = answer(complete(
        json!({"name": "env", "value": "P"}),
        json!({}),
        &["admin"],
    ));
    assert_eq!(
        a["result"],
        json!({"completion": {"values": ["Prod"], "total": 1, "hasMore": false}})
    );
    let a = answer(complete(
        json!({"name": "env", "value": ""}),
        json!({}),
        &["staging"],
    ));
    assert_eq!(a["result"]["completion"]["values"], json!(["Staging"]));
    // Another argument: in the env chosen so far (taken out of the context).
    let f = forwarded(complete(
        json!({"name": "service", "value": "a"}),
        json!({"arguments": {"env": "Staging"}}),
        &["admin"],
    ));
    assert_eq!(f.env, "obs.Staging");
    assert_eq!(f.message["params"]["ref"]["name"], json!("summarize"));
    assert_eq!(f.message["params"]["context"], json!({"arguments": {}}));
    // None chosen yet: the first env the caller may use.
    let f = forwarded(complete(
        json!({"name": "service", "value": "a"}),
        json!({}),
        &["staging"],
    ));
    assert_eq!(f.env, "obs.Staging");
    // A template's variable: the backend the template's URI names.
    let f = forwarded(run(
        "completion/complete",
        json!({"ref": {"type": "ref/resource", "uri": "meshmux://obs.Prod/logs://{service}"},
               "argument": {"name": "service", "value": "a"}}),
        &["admin"],
    ));
    assert_eq!(f.env, "obs.Prod");
    assert_eq!(f.message["params"]["ref"]["uri"], json!("logs://{service}"));
    let a = answer(complete(
        json!({"name": "service", "value": "a"}),
        json!({}),
        &["github"],
    ));
    assert_eq!(
        a["error"]["message"],
        json!("Unknown prompt: obs__summarize")
    );
}

#[test]
fn the_2026_era_gets_caching_hints_and_no_legacy_methods() {
    let head = RequestHead {
        protocol_version: Some("2026-07-28"),
        mcp_method: Some("resources/read"),
        ..post()
    };
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}});
    let body = request(
        "resources/read",
        json!({"uri": "meshmux://github/repo://meshmux/README.md", "_meta": meta}),
    );
    let f = forwarded(gateway().on_body(&head, &body, &roles(&["admin"])));
    assert!(f.result.caching && f.modern);
    // The era's `_meta` stays with the gateway.
    assert_eq!(
        f.message["params"],
        json!({"uri": "repo://meshmux/README.md"})
    );
    let head = RequestHead {
        mcp_method: Some("prompts/list"),
        ..head
    };
    let body = request("prompts/list", json!({"_meta": meta}));
    let a = answer(gateway().on_body(&head, &body, &roles(&["admin"])));
    assert_eq!(a["result"]["ttlMs"], json!(0));
    assert_eq!(a["result"]["cacheScope"], json!("private"));
    assert_eq!(a["result"]["resultType"], json!("complete"));
    for method in ["resources/subscribe", "logging/setLevel"] {
        let head = RequestHead {
            mcp_method: Some(method),
            ..head.clone()
        };
        let body = request(method, json!({"uri": "x", "level": "info", "_meta": meta}));
        match gateway().on_body(&head, &body, &roles(&["admin"])) {
            Outcome::Reply(r) => assert_eq!(r.status, 404, "{method}"),
            other => panic!("{method}: {other:?}"),
        }
    }
}
