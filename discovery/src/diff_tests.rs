use std::collections::BTreeMap;

use policy::config::Format;
use policy::manifest::Stale;
use serde_json::json;

use super::*;
use crate::catalog::{Discovered, build_manifest, mark_stale};

fn config(roles: &str) -> Config {
    let text = format!(
        r#"{{"environments": {{
        "Prod": {{"description": "Production", "url": "http://127.0.0.1:1/mcp"}},
        "Staging": {{"description": "Staging", "url": "http://127.0.0.1:2/mcp"}}}},
        "auth": {{"base_url": "https://gw.test", "signing_key_file": "k.pem",
                  "authsvc_url": "http://127.0.0.1:9/", "dev": {{"users": {{}}}},
                  "roles": {roles}}}}}"#
    );
    Config::parse(&text, Format::Json, "ops.json", &|_| None).unwrap()
}

const ROLES: &str = r#"{"reader": {"allowed_envs": {"*": ["*"]}}}"#;

fn listed(tools: Vec<serde_json::Value>) -> Result<Discovered, String> {
    Ok(Discovered {
        protocol_version: "2025-11-25".into(),
        server_info: None,
        tools,
        requires: Default::default(),
        offered: Default::default(),
    })
}

fn tool(name: &str, description: &str) -> serde_json::Value {
    json!({"name": name, "description": description,
           "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}}})
}

fn discovery(
    config: Config,
    prod: Result<Discovered, String>,
    staging: Result<Discovered, String>,
    stale: &[&str],
) -> Discovery {
    let results = vec![
        EnvResult {
            name: "Prod".into(),
            outcome: prod,
        },
        EnvResult {
            name: "Staging".into(),
            outcome: staging,
        },
    ];
    let marks: BTreeMap<String, Stale> = stale
        .iter()
        .map(|e| {
            (
                (*e).to_owned(),
                Stale {
                    reason: "connection refused".into(),
                    since: "t1".into(),
                    listed_at: "t0".into(),
                },
            )
        })
        .collect();
    let manifest = mark_stale(build_manifest(&config, &results).unwrap(), &marks);
    Discovery {
        config,
        results,
        manifest,
        pins: None,
    }
}

fn base() -> Discovery {
    discovery(
        config(ROLES),
        listed(vec![
            tool("search", "Search."),
            tool("rollback", "Roll back."),
        ]),
        listed(vec![tool("search", "Search.")]),
        &[],
    )
}

#[test]
fn nothing_changed_is_no_lines() {
    assert_eq!(diff(&base(), &base()), Vec::<String>::new());
}

#[test]
fn tools_added_removed_and_changed_per_env() {
    let mut changed_schema = tool("search", "Search.");
    changed_schema["inputSchema"]["properties"]["limit"] = json!({"type": "integer"});
    let new = discovery(
        config(ROLES),
        listed(vec![
            tool("search", "Search."),
            tool("rollback", "Roll a service back."),
            tool("restart", "Restart."),
        ]),
        listed(vec![changed_schema]),
        &[],
    );
    let lines = diff(&base(), &new);
    assert_eq!(
        lines,
        vec![
            "Prod: + tool restart",
            "Prod: ~ tool rollback: description \"Roll back.\" -> \"Roll a service back.\"",
            "Staging: ~ tool search: inputSchema (+limit)",
            "+ warning: search: parameter `limit` only available on: Staging; it is optional \
             and stripped from calls to Prod",
        ]
    );
    let gone = discovery(
        config(ROLES),
        listed(vec![tool("search", "Search.")]),
        listed(vec![tool("search", "Search.")]),
        &[],
    );
    assert_eq!(diff(&base(), &gone), vec!["Prod: - tool rollback"]);
}

#[test]
fn down_stale_unreachable_and_recovered() {
    let stale = discovery(
        config(ROLES),
        listed(vec![
            tool("search", "Search."),
            tool("rollback", "Roll back."),
        ]),
        listed(vec![tool("search", "Search.")]),
        &["Staging"],
    );
    let lines = diff(&base(), &stale);
    assert_eq!(
        lines,
        vec!["Staging: down, serving its last good tools (listed t0): connection refused"]
    );
    assert_eq!(diff(&stale, &base()), vec!["Staging: recovered"]);

    let unreachable = discovery(
        config(ROLES),
        listed(vec![
            tool("search", "Search."),
            tool("rollback", "Roll back."),
        ]),
        Err("connection refused".into()),
        &[],
    );
    let lines = diff(&base(), &unreachable);
    assert_eq!(
        lines,
        vec![
            "Staging: unreachable, serving no tools: connection refused",
            "Staging: - tool search",
        ]
    );
}

#[test]
fn merge_errors_that_appear_and_go_away() {
    let drifted = discovery(
        config(ROLES),
        listed(vec![
            tool("search", "Search."),
            tool("rollback", "Roll back."),
        ]),
        listed(vec![tool("search", "Search everything.")]),
        &[],
    );
    let lines = diff(&base(), &drifted);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("+ merge error: search:")),
        "{lines:#?}"
    );
    let back = diff(&drifted, &base());
    assert!(
        back.iter()
            .any(|l| l.starts_with("- merge error resolved: search:")),
        "{back:#?}"
    );
}

#[test]
fn role_changes_name_the_role_and_its_envs() {
    let narrowed = discovery(
        config(
            r#"{"reader": {"allowed_envs": {"Staging": ["*"]}},
                "ops": {"allowed_envs": {"Prod": ["search"]}}}"#,
        ),
        listed(vec![
            tool("search", "Search."),
            tool("rollback", "Roll back."),
        ]),
        listed(vec![tool("search", "Search.")]),
        &[],
    );
    assert_eq!(
        diff(&base(), &narrowed),
        vec![
            "roles: + ops {Prod: [search]}",
            "roles: ~ reader {*: [*]} -> {Staging: [*]}",
        ]
    );
}

#[test]
fn long_descriptions_are_cut() {
    let long = "x".repeat(200);
    let line = changes(&tool("a", "short"), &tool("a", &long));
    assert!(line.len() < 120, "{line}");
    assert!(line.ends_with("…\""), "{line}");
}

#[test]
fn a_changed_capability_need_is_a_change_line() {
    let config = || config(ROLES);
    let needing = |caps: &[&str]| {
        let mut d = listed(vec![tool("ask", "Ask.")]).unwrap();
        if !caps.is_empty() {
            d.requires
                .insert("ask".into(), caps.iter().map(|c| (*c).to_owned()).collect());
        }
        Ok(d)
    };
    let before = discovery(config(), needing(&[]), needing(&[]), &[]);
    let after = discovery(config(), needing(&["elicitation"]), needing(&[]), &[]);

    assert_eq!(
        diff(&before, &after),
        ["Prod: ~ tool ask: now listed only for clients with elicitation"]
    );
    assert_eq!(
        diff(&after, &before),
        ["Prod: ~ tool ask: now listed for every client"]
    );
    assert!(diff(&after, &after).is_empty());
}
