//! `tools/call` under `gateway.pinning`: what a drifted tool's calls get.

use serde_json::{Value, json};

use super::tests::gateway;
use super::*;
use crate::pin::{Change, Drift, PinMode, PinReport};

/// The test gateway (Prod: search_logs, rollback; Staging and Dev: search_logs, query) with
/// Prod's search_logs changed and a `deploy` new in Staging since the pins.
fn pinned(mode: PinMode, auth: bool) -> Gateway {
    let mut config = gateway(auth).config.clone();
    config.manifest.pinning = Some(PinReport {
        mode,
        drift: vec![
            Drift {
                env: "Prod".into(),
                tool: "search_logs".into(),
                change: Change::Changed,
                served: None,
                label: None,
            },
            Drift {
                env: "Staging".into(),
                tool: "deploy".into(),
                change: Change::New,
                served: None,
                label: None,
            },
        ],
    });
    Gateway::new(config).unwrap()
}

fn call(g: &Gateway, caller: &Caller, tool: &str, env: &str) -> String {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": tool, "arguments": {"env": env, "query": "x"}}});
    let head = RequestHead {
        method: "POST",
        path: "/mcp",
        content_type: Some("application/json"),
        ..Default::default()
    };
    match g.on_body(&head, body.to_string().as_bytes(), caller) {
        Outcome::Denied { reply, tool, env } => {
            let v: Value = serde_json::from_slice(&reply.body).unwrap();
            assert_eq!(v["result"]["isError"], json!(true), "{v}");
            format!("DENIED {tool}@{env}: {}", v["result"]["content"][0]["text"])
        }
        Outcome::Forward(f) => format!("FORWARD {}", f.cluster),
        Outcome::Reply(r) => format!("REPLY {}", r.body_text()),
        other => format!("{other:?}"),
    }
}

fn roles(r: &[&str]) -> Caller {
    Caller::Roles(r.iter().map(|s| s.to_string()).collect())
}

#[test]
fn block_refuses_a_changed_tool_in_its_env_only() {
    let g = pinned(PinMode::Block, false);
    let got = call(&g, &Caller::Unrestricted, "search_logs", "Prod");
    assert!(
        got.starts_with("DENIED search_logs@Prod: \"Tool `search_logs` in env `Prod` is blocked by tool pinning: its definition changed since it was pinned"),
        "{got}"
    );
    assert!(
        got.contains("(`meshmux check`) and re-pin (`meshmux pin`)"),
        "{got}"
    );
    // The same tool elsewhere, and other tools in Prod, are unaffected.
    assert_eq!(
        call(&g, &Caller::Unrestricted, "search_logs", "Staging"),
        "FORWARD env_Staging"
    );
    assert_eq!(
        call(&g, &Caller::Unrestricted, "rollback", "Prod"),
        "FORWARD env_Prod"
    );
}

#[test]
fn block_refuses_a_new_tool_by_name() {
    let g = pinned(PinMode::Block, false);
    let got = call(&g, &Caller::Unrestricted, "deploy", "Staging");
    assert!(
        got.starts_with("DENIED deploy@Staging: \"Tool `deploy` in env `Staging` is blocked by tool pinning: it is new since the tools were pinned"),
        "{got}"
    );
    // Not new in Prod: simply unknown there.
    let got = call(&g, &Caller::Unrestricted, "deploy", "Prod");
    assert!(got.contains("Unknown tool: deploy"), "{got}");
    // A new env for a known tool gets the pin refusal, not "unknown env".
    let mut config = g.config.clone();
    if let Some(p) = config.manifest.pinning.as_mut() {
        p.drift.push(Drift {
            env: "Dev".into(),
            tool: "rollback".into(),
            change: Change::New,
            served: None,
            label: None,
        });
    }
    let g = Gateway::new(config).unwrap();
    let got = call(&g, &Caller::Unrestricted, "rollback", "Dev");
    assert!(got.starts_with("DENIED rollback@Dev"), "{got}");
}

#[test]
fn roles_are_checked_before_pins() {
    let g = pinned(PinMode::Block, true);
    // May not call it there anyway: the usual denial, nothing about pins.
    let got = call(&g, &roles(&["staging-reader"]), "search_logs", "Prod");
    assert!(got.contains("Access denied"), "{got}");
    assert!(!got.contains("pinning"), "{got}");
    let got = call(&g, &roles(&["prod-logs"]), "search_logs", "Prod");
    assert!(got.contains("blocked by tool pinning"), "{got}");
    // A caller who may not see the new tool learns nothing about it.
    let got = call(&g, &roles(&["prod-logs"]), "deploy", "Staging");
    assert!(got.contains("Unknown tool: deploy"), "{got}");
}

#[test]
fn warn_forwards_drifted_tools() {
    let g = pinned(PinMode::Warn, false);
    assert_eq!(
        call(&g, &Caller::Unrestricted, "search_logs", "Prod"),
        "FORWARD env_Prod"
    );
}
