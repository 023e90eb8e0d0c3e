use serde_json::{Value, json};

use super::*;

fn env<'a>(name: &'a str, description: &'a str, tools: &'a [Value]) -> EnvTools<'a> {
    EnvTools {
        env: name,
        description,
        tools,
    }
}

fn tool(name: &str, description: &str, props: Value, required: &[&str]) -> Value {
    json!({"name": name, "description": description,
           "inputSchema": {"type": "object", "properties": props, "required": required}})
}

fn messages(d: &[crate::manifest::Diagnostic]) -> Vec<String> {
    d.iter().map(ToString::to_string).collect()
}

#[test]
fn identical_tools_merge_into_one_with_env() {
    let t = [tool(
        "search_logs",
        "Search logs",
        json!({"query": {"type": "string"}}),
        &["query"],
    )];
    let out = merge(&[
        env("Prod", "Production", &t),
        env("Staging", "Staging env", &t),
    ]);
    assert_eq!(messages(&out.errors), Vec::<String>::new());
    assert_eq!(out.tools.len(), 1);
    insta::assert_json_snapshot!(out.tools[0].tool, @r#"
    {
      "name": "search_logs",
      "description": "Search logs",
      "inputSchema": {
        "type": "object",
        "properties": {
          "query": {
            "type": "string"
          },
          "env": {
            "type": "string",
            "enum": [
              "Prod",
              "Staging"
            ],
            "description": "Environment to run this tool in. One of:\n- Prod: Production\n- Staging: Staging env",
            "x-mcp-header": "Env"
          }
        },
        "required": [
          "query",
          "env"
        ]
      }
    }
    "#);
}

#[test]
fn description_mismatch_is_an_error_naming_tool_and_envs() {
    let a = [tool("t", "one", json!({}), &[])];
    let b = [tool("t", "two", json!({}), &[])];
    let out = merge(&[env("Prod", "", &a), env("Dev", "", &b)]);
    assert!(out.tools.is_empty());
    assert_eq!(
        messages(&out.errors),
        [r#"t: description differs between environments: Prod: "one"; Dev: "two""#]
    );
}

#[test]
fn type_mismatch_is_an_error() {
    let a = [tool("t", "d", json!({"limit": {"type": "integer"}}), &[])];
    let b = [tool("t", "d", json!({"limit": {"type": "string"}}), &[])];
    let out = merge(&[env("Prod", "", &a), env("Dev", "", &b)]);
    assert!(out.tools.is_empty());
    assert_eq!(
        messages(&out.errors),
        [r#"t: parameter `limit` has different types: Prod: "integer"; Dev: "string""#]
    );
}

#[test]
fn subset_tools_get_a_subset_enum() {
    let shared = tool("shared", "s", json!({}), &[]);
    let prod_only = tool("rollback", "Roll back", json!({}), &[]);
    let prod = [shared.clone(), prod_only];
    let dev = [shared];
    let out = merge(&[env("Prod", "P", &prod), env("Dev", "D", &dev)]);
    let rollback = out
        .tools
        .iter()
        .find(|t| t.name() == "rollback")
        .map(|t| t.tool.clone())
        .unwrap_or_default();
    assert_eq!(
        rollback["inputSchema"]["properties"]["env"]["enum"],
        json!(["Prod"])
    );
    let shared = out
        .tools
        .iter()
        .find(|t| t.name() == "shared")
        .map(|t| t.tool.clone())
        .unwrap_or_default();
    assert_eq!(
        shared["inputSchema"]["properties"]["env"]["enum"],
        json!(["Prod", "Dev"])
    );
}

#[test]
fn params_in_some_envs_become_optional_with_a_warning() {
    let a = [tool(
        "q",
        "d",
        json!({"query": {"type": "string"}, "verbose": {"type": "boolean"}}),
        &["query", "verbose"],
    )];
    let b = [tool(
        "q",
        "d",
        json!({"query": {"type": "string"}}),
        &["query"],
    )];
    let out = merge(&[env("Dev", "Dev", &a), env("Prod", "Prod", &b)]);
    assert_eq!(
        messages(&out.warnings),
        [
            "q: parameter `verbose` only available on: Dev; it is optional and stripped from calls to Prod"
        ]
    );
    let t = &out.tools[0];
    assert_eq!(t.tool["inputSchema"]["required"], json!(["query", "env"]));
    assert_eq!(t.envs[1].params, ["query"]);
    let env_desc = t.tool["inputSchema"]["properties"]["env"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        env_desc.contains("`verbose` is only supported on Dev."),
        "{env_desc}"
    );
}

#[test]
fn required_in_some_envs_only_becomes_optional() {
    let a = [tool("q", "d", json!({"x": {"type": "string"}}), &["x"])];
    let b = [tool("q", "d", json!({"x": {"type": "string"}}), &[])];
    let out = merge(&[env("A", "", &a), env("B", "", &b)]);
    assert_eq!(out.tools[0].tool["inputSchema"]["required"], json!(["env"]));
    assert_eq!(
        messages(&out.warnings),
        ["q: parameter `x` is required on A only; it is optional in the merged tool"]
    );
}

#[test]
fn merge_is_lossless() {
    let full = json!({
        "name": "get_user", "title": "Get user", "description": "d",
        "inputSchema": {"type": "object", "$schema": "https://json-schema.org/draft/2020-12/schema",
                        "properties": {"id": {"type": "string", "minLength": 1, "pattern": "^u"}},
                        "required": ["id"], "additionalProperties": false, "$defs": {"x": {}}},
        "outputSchema": {"type": "object", "properties": {"name": {"type": "string"}}},
        "annotations": {"readOnlyHint": true, "title": "Get"},
        "icons": [{"src": "https://x/i.png"}],
        "_meta": {"com.example/owner": "team-a"}
    });
    let t = [full.clone()];
    let out = merge(&[env("A", "", &t), env("B", "", &t)]);
    let merged = Value::Object(out.tools[0].tool.clone());
    for key in ["title", "outputSchema", "annotations", "icons", "_meta"] {
        assert_eq!(merged[key], full[key], "{key}");
    }
    for key in ["$schema", "additionalProperties", "$defs"] {
        assert_eq!(
            merged["inputSchema"][key], full["inputSchema"][key],
            "{key}"
        );
    }
    assert_eq!(
        merged["inputSchema"]["properties"]["id"],
        full["inputSchema"]["properties"]["id"]
    );
}

#[test]
fn differing_annotations_warn_and_serve_the_first() {
    let mut a = tool("t", "d", json!({}), &[]);
    a["annotations"] = json!({"readOnlyHint": true});
    let mut b = a.clone();
    b["annotations"] = json!({"readOnlyHint": false});
    let (a, b) = ([a], [b]);
    let out = merge(&[env("A", "", &a), env("B", "", &b)]);
    assert_eq!(
        messages(&out.warnings),
        ["t: `annotations` differs between environments; serving A's"]
    );
    assert_eq!(
        out.tools[0].tool["annotations"],
        json!({"readOnlyHint": true})
    );
}

#[test]
fn an_existing_env_parameter_is_an_error() {
    let t = [tool("deploy", "d", json!({"env": {"type": "string"}}), &[])];
    let out = merge(&[env("A", "", &t)]);
    assert!(out.tools.is_empty());
    let errors = messages(&out.errors);
    assert!(
        errors[0].starts_with("deploy: already has a parameter named `env`"),
        "{errors:?}"
    );
}

#[test]
fn malformed_tools_are_reported() {
    let t = [
        json!("nope"),
        json!({"description": "no name"}),
        json!({"name": "x", "description": "d"}),
    ];
    let out = merge(&[env("A", "", &t)]);
    assert_eq!(
        messages(&out.errors),
        [
            "?: A returned a tool that is not an object",
            "?: A returned a tool without a name",
            "x: A: inputSchema is missing or not an object"
        ]
    );
}

#[test]
fn instructions_mode_keeps_enum_and_notes_but_not_env_descriptions() {
    let a = [tool(
        "query",
        "Query",
        json!({"sql": {"type": "string"}}),
        &["sql"],
    )];
    let b = [tool(
        "query",
        "Query",
        json!({"sql": {"type": "string"}, "explain": {"type": "boolean"}}),
        &["sql"],
    )];
    let envs = [env("Prod", "Production", &a), env("Dev", "Development", &b)];
    let per_tool = merge(&envs);
    let once = merge_with(&envs, EnvDescriptions::Instructions);
    assert_eq!(per_tool.warnings, once.warnings);
    assert_eq!(per_tool.tools[0].envs, once.tools[0].envs);
    let env_of = |out: &MergeOutput| out.tools[0].tool["inputSchema"]["properties"]["env"].clone();
    assert_eq!(
        env_of(&per_tool)["description"],
        json!(
            "Environment to run this tool in. One of:\n- Prod: Production\n- Dev: Development\nParameter notes:\n- `explain` is only supported on Dev."
        )
    );
    assert_eq!(
        env_of(&once),
        json!({
            "type": "string",
            "enum": ["Prod", "Dev"],
            "description": format!("{ENV_POINTER}\nParameter notes:\n- `explain` is only supported on Dev."),
            "x-mcp-header": "Env"
        })
    );
}
