//! Where the envs are described (`gateway.env_descriptions`) and the era-dependent
//! `x-mcp-header` hint on `env`.

use serde_json::{Value, json};

use super::*;
use crate::merge::ENV_POINTER;

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
const INIT: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#;
const DISCOVER: &str = r#"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;

fn head_2026(method: &'static str) -> RequestHead<'static> {
    RequestHead {
        protocol_version: Some("2026-07-28"),
        mcp_method: Some(method),
        ..post()
    }
}

fn json_of(reply: (u16, String)) -> Value {
    assert_eq!(reply.0, 200, "{}", reply.1);
    serde_json::from_str(&reply.1).unwrap()
}

/// The `env` property of each listed tool, by tool name.
fn env_props(list: &Value) -> Vec<(String, Value)> {
    list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["inputSchema"]["properties"]["env"].clone(),
            )
        })
        .collect()
}

#[test]
fn header_hint_is_served_to_the_2026_era_only() {
    for described in [EnvDescriptions::PerTool, EnvDescriptions::Instructions] {
        for caller in [ANY, roles(&["prod-logs"]), roles(&["admin"])] {
            let legacy = json_of(run_in(described, &post(), LIST, &caller));
            let current = json_of(run_in(described, &head_2026("tools/list"), LIST, &caller));
            let (legacy, current) = (env_props(&legacy), env_props(&current));
            assert!(!legacy.is_empty());
            assert_eq!(legacy.len(), current.len());
            for ((name, old), (_, new)) in legacy.iter().zip(&current) {
                assert_eq!(old.get("x-mcp-header"), None, "{described:?} {name}: {old}");
                assert_eq!(
                    new["x-mcp-header"],
                    json!("Env"),
                    "{described:?} {name}: {new}"
                );
                let mut without = new.clone();
                without.as_object_mut().unwrap().remove("x-mcp-header");
                assert_eq!(&without, old, "only the hint differs");
            }
        }
    }
    // The 2026 header checks still hold with the hint moved to serving time.
    let call = RequestHead {
        mcp_name: Some("search_logs"),
        mcp_param_env: Some("Dev"),
        ..head_2026("tools/call")
    };
    check_head(
        &call,
        &super::call("search_logs", json!({"query": "q", "env": "Prod"})),
        &ANY,
        400,
        "Mcp-Param-Env",
    );
}

#[test]
fn instructions_mode_points_env_to_the_instructions_and_keeps_notes() {
    let list = json_of(run_in(EnvDescriptions::Instructions, &post(), LIST, &ANY));
    let envs = env_props(&list);
    let names: Vec<&str> = envs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["search_logs", "rollback", "query"]);
    for (name, env) in &envs {
        assert_eq!(env["type"], json!("string"), "{name}");
        assert!(
            env["description"]
                .as_str()
                .unwrap()
                .starts_with(ENV_POINTER),
            "{name}: {env}"
        );
        assert!(!env.to_string().contains("Production"), "{name}: {env}");
    }
    assert_eq!(envs[0].1["enum"], json!(["Prod", "Staging", "Dev"]));
    assert_eq!(envs[1].1["enum"], json!(["Prod"]));
    // `explain` exists in Dev only: that note is per tool and stays.
    assert_eq!(
        envs[2].1["description"],
        json!(format!(
            "{ENV_POINTER}\nParameter notes:\n- `explain` is only supported on Dev."
        ))
    );

    // Narrowed per caller: the enum is the caller's, the description still points away.
    let narrowed = json_of(run_in(
        EnvDescriptions::Instructions,
        &post(),
        LIST,
        &roles(&["staging-reader"]),
    ));
    let envs = env_props(&narrowed);
    assert_eq!(envs.len(), 2);
    for (name, env) in &envs {
        assert_eq!(env["enum"], json!(["Staging"]), "{name}");
        assert_eq!(env["description"], json!(ENV_POINTER), "{name}");
    }
}

fn instructions(described: EnvDescriptions, caller: &Caller) -> (Value, Value) {
    let init = json_of(run_in(described, &post(), INIT, caller));
    let discover = json_of(run_in(
        described,
        &head_2026("server/discover"),
        DISCOVER,
        caller,
    ));
    (
        init["result"]["instructions"].clone(),
        discover["result"]["instructions"].clone(),
    )
}

#[test]
fn instructions_list_each_env_the_caller_may_use_once() {
    let all = "hi\n\nEnvironments (the `env` argument of every tool):\n- Prod: Prod env\n- Staging: Staging env\n- Dev: Dev env";
    assert_eq!(
        instructions(EnvDescriptions::Instructions, &ANY),
        (json!(all), json!(all))
    );
    assert_eq!(
        instructions(EnvDescriptions::Instructions, &roles(&["admin"])),
        (json!(all), json!(all))
    );
    let staging = "hi\n\nEnvironments (the `env` argument of every tool):\n- Staging: Staging env";
    assert_eq!(
        instructions(EnvDescriptions::Instructions, &roles(&["staging-reader"])),
        (json!(staging), json!(staging))
    );
    // A caller who may use nothing gets only the configured text.
    assert_eq!(
        instructions(EnvDescriptions::Instructions, &roles(&[])),
        (json!("hi"), json!("hi"))
    );
    // per_tool leaves the instructions as configured.
    assert_eq!(
        instructions(EnvDescriptions::PerTool, &ANY),
        (json!("hi"), json!("hi"))
    );
}
