use serde_json::{Value, json};

use super::*;

fn tool(name: &str, description: &str, params: &[&str]) -> Value {
    let props: serde_json::Map<String, Value> = params
        .iter()
        .map(|p| ((*p).to_owned(), json!({"type": "string"})))
        .collect();
    json!({"name": name, "description": description,
           "inputSchema": {"type": "object", "properties": props}})
}

fn single(name: &str) -> ServerSpec {
    ServerSpec {
        name: name.into(),
        prefix: Some(name.into()),
        env_arg: false,
        tools: BTreeMap::new(),
        envs: vec![ServerEnv {
            label: name.into(),
            backend: name.into(),
        }],
    }
}

fn with_envs(name: &str, envs: &[&str]) -> ServerSpec {
    ServerSpec {
        name: name.into(),
        prefix: Some(name.into()),
        env_arg: true,
        tools: BTreeMap::new(),
        envs: envs
            .iter()
            .map(|e| ServerEnv {
                label: (*e).into(),
                backend: format!("{name}.{e}"),
            })
            .collect(),
    }
}

fn names(out: &MergeOutput) -> Vec<&str> {
    out.tools.iter().map(|t| t.name()).collect()
}

#[test]
fn a_single_backend_server_is_namespaced_and_served_as_defined_without_env() {
    // Its own `env` parameter is the backend's, not a conflict.
    let tools = [tool("search", "Search.", &["q", "env"])];
    let found = [BackendTools {
        backend: "github",
        description: "GitHub",
        tools: &tools,
    }];
    let out = assemble(&[single("github")], &found, EnvDescriptions::PerTool);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let [entry] = out.tools.as_slice() else {
        panic!("{:?}", out.tools)
    };
    assert_eq!(entry.name(), "github__search");
    assert_eq!(entry.upstream_name(), "search");
    assert!(entry.implicit_env);
    assert_eq!(entry.envs.len(), 1);
    assert_eq!(entry.envs[0].env, "github");
    assert_eq!(entry.envs[0].backend(), "github");
    let mut expected = tools[0].clone();
    expected["name"] = json!("github__search");
    assert_eq!(Value::Object(entry.tool.clone()), expected);
}

#[test]
fn a_servers_envs_merge_behind_env_with_their_labels_and_route_to_their_backends() {
    let prod = [tool("query", "Query logs.", &["q"])];
    let staging = [tool("query", "Query logs.", &["q", "limit"])];
    let found = [
        BackendTools {
            backend: "obs.Prod",
            description: "Production",
            tools: &prod,
        },
        BackendTools {
            backend: "obs.Staging",
            description: "Staging",
            tools: &staging,
        },
    ];
    let out = assemble(
        &[with_envs("obs", &["Prod", "Staging"])],
        &found,
        EnvDescriptions::PerTool,
    );
    let [entry] = out.tools.as_slice() else {
        panic!("{:?}", out)
    };
    assert_eq!(entry.name(), "obs__query");
    assert!(!entry.implicit_env);
    let labels: Vec<(&str, &str)> = entry
        .envs
        .iter()
        .map(|e| (e.env.as_str(), e.backend()))
        .collect();
    assert_eq!(labels, [("Prod", "obs.Prod"), ("Staging", "obs.Staging")]);
    assert_eq!(
        entry.tool["inputSchema"]["properties"]["env"]["enum"],
        json!(["Prod", "Staging"])
    );
    // The warning names the served tool and its server.
    assert!(
        out.warnings
            .iter()
            .any(|w| w.tool == "obs__query"
                && w.message.starts_with("server `obs`: parameter `limit`")),
        "{:?}",
        out.warnings
    );
}

#[test]
fn renames_and_descriptions_come_from_the_config_and_calls_keep_the_backends_name() {
    let mut spec = with_envs("obs", &["Prod", "Staging"]);
    spec.prefix = None;
    spec.tools.insert(
        "query".into(),
        ToolOverride {
            name: Some("search_logs".into()),
            // Settles the envs' differing descriptions.
            description: Some("Search the logs.".into()),
        },
    );
    let prod = [tool("query", "Query logs (v2).", &["q"])];
    let staging = [tool("query", "Query logs.", &["q"])];
    let found = [
        BackendTools {
            backend: "obs.Prod",
            description: "p",
            tools: &prod,
        },
        BackendTools {
            backend: "obs.Staging",
            description: "s",
            tools: &staging,
        },
    ];
    let out = assemble(&[spec], &found, EnvDescriptions::PerTool);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let [entry] = out.tools.as_slice() else {
        panic!("{:?}", out)
    };
    assert_eq!(entry.name(), "search_logs");
    assert_eq!(entry.upstream.as_deref(), Some("query"));
    assert_eq!(entry.tool["description"], json!("Search the logs."));
}

#[test]
fn a_name_two_servers_serve_is_an_error_naming_both_and_neither_is_served() {
    let mut a = single("jira");
    a.prefix = None;
    let mut b = single("linear");
    b.prefix = None;
    let jira = [tool("create_issue", "Jira.", &[]), tool("jql", "JQL.", &[])];
    let linear = [tool("create_issue", "Linear.", &[])];
    let found = [
        BackendTools {
            backend: "jira",
            description: "",
            tools: &jira,
        },
        BackendTools {
            backend: "linear",
            description: "",
            tools: &linear,
        },
    ];
    let out = assemble(&[a, b], &found, EnvDescriptions::PerTool);
    assert_eq!(names(&out), ["jql"]);
    let [error] = out.errors.as_slice() else {
        panic!("{:?}", out.errors)
    };
    assert_eq!(error.tool, "create_issue");
    assert!(
        error.message.contains("`jira` and `linear`"),
        "{}",
        error.message
    );
}

#[test]
fn the_seed_000_server_is_the_plain_merge() {
    let spec = ServerSpec {
        name: String::new(),
        prefix: None,
        env_arg: true,
        tools: BTreeMap::new(),
        envs: ["Prod", "Staging"]
            .iter()
            .map(|e| ServerEnv {
                label: (*e).into(),
                backend: (*e).into(),
            })
            .collect(),
    };
    let prod = [tool("get_user", "Get a user.", &["id"])];
    let staging = [
        tool("get_user", "Get a user.", &["id"]),
        tool("x", "X.", &["env"]),
    ];
    let found = [
        BackendTools {
            backend: "Prod",
            description: "p",
            tools: &prod,
        },
        BackendTools {
            backend: "Staging",
            description: "s",
            tools: &staging,
        },
    ];
    let out = assemble(
        std::slice::from_ref(&spec),
        &found,
        EnvDescriptions::PerTool,
    );
    let plain = crate::merge::merge(&[
        EnvTools {
            env: "Prod",
            description: "p",
            tools: &prod,
        },
        EnvTools {
            env: "Staging",
            description: "s",
            tools: &staging,
        },
    ]);
    assert_eq!(out, plain);
    assert!(out.tools.iter().all(|t| t.upstream.is_none()));
}

#[test]
fn a_prefix_that_makes_an_invalid_name_is_reported() {
    let mut spec = single("svc");
    spec.prefix = Some("x".repeat(127));
    let tools = [tool("t", "T.", &[])];
    let found = [BackendTools {
        backend: "svc",
        description: "",
        tools: &tools,
    }];
    let out = assemble(&[spec], &found, EnvDescriptions::PerTool);
    assert!(out.tools.is_empty());
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
}

#[test]
fn tool_names() {
    for ok in ["a", "github__create_issue", "a.b-c_d", &"x".repeat(128)] {
        assert!(valid_tool_name(ok), "{ok}");
    }
    for bad in ["", "a b", "a/b", "ü", &"x".repeat(129)] {
        assert!(!valid_tool_name(bad), "{bad}");
    }
}
