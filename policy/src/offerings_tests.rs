use serde_json::{Value, json};

use super::*;
use crate::servers::ServerEnv;

pub(crate) fn server(name: &str, prefix: Option<&str>, envs: &[(&str, &str)]) -> ServerSpec {
    ServerSpec {
        name: name.into(),
        prefix: prefix.map(str::to_owned),
        env_arg: envs.len() > 1,
        tools: Default::default(),
        envs: envs
            .iter()
            .map(|(label, backend)| ServerEnv {
                label: (*label).into(),
                backend: (*backend).into(),
            })
            .collect(),
    }
}

pub(crate) fn prompt(name: &str, args: &[&str]) -> Value {
    let arguments: Vec<Value> = args
        .iter()
        .map(|a| json!({"name": a, "required": false}))
        .collect();
    json!({"name": name, "description": format!("{name} prompt"), "arguments": arguments})
}

fn found<'a>(
    backend: &'a str,
    prompts: &'a [Value],
    resources: &'a [Value],
    templates: &'a [Value],
) -> BackendOfferings<'a> {
    BackendOfferings {
        backend,
        prompts,
        resources,
        templates,
    }
}

#[test]
fn uris_name_their_backend_and_come_back_whole() {
    let wrapped = wrap_uri("obs.Prod", "file:///logs/today?x=1#top");
    assert_eq!(wrapped, "meshmux://obs.Prod/file:///logs/today?x=1#top");
    assert_eq!(
        unwrap_uri(&wrapped),
        Some(("obs.Prod", "file:///logs/today?x=1#top"))
    );
    for not_ours in [
        "file:///a",
        "meshmux://obs.Prod",
        "meshmux:///file:///a",
        "meshmux://obs.Prod/",
        "MESHMUX://obs.Prod/x",
    ] {
        assert_eq!(unwrap_uri(not_ours), None, "{not_ours}");
    }
}

#[test]
fn prompts_of_several_envs_merge_behind_env_and_servers_are_namespaced() {
    let servers = [
        server("github", Some("github"), &[("github", "github")]),
        server(
            "obs",
            Some("obs"),
            &[("Prod", "obs.Prod"), ("Staging", "obs.Staging")],
        ),
    ];
    let gh = [prompt("review", &["pr"])];
    let prod = [prompt("summarize", &["service"])];
    let staging = [prompt("summarize", &["service", "window"])];
    let out = assemble(
        &servers,
        &[
            found("github", &gh, &[], &[]),
            found("obs.Prod", &prod, &[], &[]),
            found("obs.Staging", &staging, &[], &[]),
        ],
        true,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let names: Vec<&str> = out.prompts.iter().map(PromptEntry::name).collect();
    assert_eq!(names, ["github__review", "obs__summarize"]);
    let review = &out.prompts[0];
    assert!(!review.takes_env());
    assert_eq!(review.upstream_name(), "review");
    assert_eq!(
        review.prompt["arguments"],
        json!([{"name": "pr", "required": false}])
    );
    let summarize = &out.prompts[1];
    assert!(summarize.takes_env());
    assert_eq!(summarize.upstream.as_deref(), Some("summarize"));
    let args: Vec<&str> = summarize.prompt["arguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    // Every env's arguments, then the env to choose.
    assert_eq!(args, ["service", "window", "env"]);
    assert_eq!(
        summarize.prompt["arguments"][2]["description"],
        json!("Environment to get this prompt from. One of: Prod, Staging")
    );
    assert_eq!(summarize.prompt["arguments"][2]["required"], json!(true));
    let backends: Vec<&str> = summarize.envs.iter().map(OfferEnv::backend).collect();
    assert_eq!(backends, ["obs.Prod", "obs.Staging"]);
    // The envs differ (one more argument): said, not hidden.
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert!(out.warnings[0].message.contains("server `obs`"));
}

#[test]
fn a_prompt_two_servers_serve_under_one_name_is_an_error_naming_both() {
    let servers = [
        server("a", None, &[("a", "a")]),
        server("b", None, &[("b", "b")]),
    ];
    let p = [prompt("greet", &[]), prompt("only_a", &[])];
    let q = [prompt("greet", &[])];
    let out = assemble(
        &servers,
        &[found("a", &p, &[], &[]), found("b", &q, &[], &[])],
        true,
    );
    let names: Vec<&str> = out.prompts.iter().map(PromptEntry::name).collect();
    assert_eq!(names, ["only_a"]);
    assert_eq!(out.errors.len(), 1);
    assert_eq!(out.errors[0].tool, "greet");
    assert!(
        out.errors[0].message.contains("`a` and `b`"),
        "{:?}",
        out.errors
    );
}

#[test]
fn a_prompt_with_its_own_env_argument_cannot_be_merged() {
    let servers = [server(
        "obs",
        Some("obs"),
        &[("Prod", "obs.Prod"), ("Staging", "obs.Staging")],
    )];
    let p = [prompt("deploy", &["env"])];
    let out = assemble(
        &servers,
        &[
            found("obs.Prod", &p, &[], &[]),
            found("obs.Staging", &p, &[], &[]),
        ],
        true,
    );
    assert!(out.prompts.is_empty());
    assert!(
        out.errors[0]
            .message
            .contains("already has an argument `env`")
    );
    // In one env it is served as it is.
    let out = assemble(&servers, &[found("obs.Prod", &p, &[], &[])], true);
    assert_eq!(out.prompts.len(), 1);
    assert!(!out.prompts[0].takes_env());
}

#[test]
fn resources_are_wrapped_per_backend_only_when_there_are_several() {
    let servers = [server(
        "obs",
        Some("obs"),
        &[("Prod", "obs.Prod"), ("Staging", "obs.Staging")],
    )];
    let res = [json!({"uri": "file:///readme", "name": "readme"})];
    let tpl = [json!({"uriTemplate": "logs://{service}", "name": "logs"})];
    let out = assemble(
        &servers,
        &[
            found("obs.Prod", &[], &res, &tpl),
            found("obs.Staging", &[], &res, &[]),
        ],
        true,
    );
    let uris: Vec<&str> = out.resources.iter().map(ResourceEntry::uri).collect();
    assert_eq!(
        uris,
        [
            "meshmux://obs.Prod/file:///readme",
            "meshmux://obs.Staging/file:///readme"
        ]
    );
    assert_eq!(out.resources[0].upstream_uri(), "file:///readme");
    assert_eq!(out.resources[0].resource["name"], json!("readme"));
    assert_eq!(
        out.templates[0].uri(),
        "meshmux://obs.Prod/logs://{service}"
    );
    assert_eq!(out.templates[0].upstream_uri(), "logs://{service}");
    // One backend: served exactly as it names them.
    let single = [server("docs", None, &[("docs", "docs")])];
    let out = assemble(&single, &[found("docs", &[], &res, &tpl)], false);
    assert_eq!(out.resources[0].uri(), "file:///readme");
    assert_eq!(out.resources[0].upstream, None);
    assert_eq!(out.templates[0].uri(), "logs://{service}");
}
