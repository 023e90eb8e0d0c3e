use policy::config::{Config, Format};
use serde_json::json;

use super::*;
use crate::catalog::{Discovered, build_manifest};

fn config() -> Config {
    let text = r#"{"environments": {
        "Prod": {"description": "Production", "url": "http://127.0.0.1:1/mcp"},
        "Staging": {"description": "Staging", "url": "http://127.0.0.1:2/mcp"},
        "Dev": {"description": "Development", "url": "http://127.0.0.1:3/mcp"}}}"#;
    Config::parse(text, Format::Json, "ops.json", &|_| None).unwrap()
}

fn tools(env: &str, drift: Option<crate::demo::Drift>) -> Result<Discovered, String> {
    Ok(Discovered {
        protocol_version: "2025-11-25".into(),
        server_info: Some(json!({"name": format!("demo-{env}"), "version": "1.0"})),
        tools: crate::demo::tools::definitions(env, drift),
        requires: Default::default(),
        offered: Default::default(),
    })
}

fn result(name: &str, outcome: Result<Discovered, String>) -> EnvResult {
    EnvResult {
        name: name.into(),
        outcome,
    }
}

/// (manifest, results) for: everything fine / a merge error / a merge error and a down env.
fn scenario(drift: bool, down: bool) -> (policy::manifest::Manifest, Vec<EnvResult>) {
    let results = vec![
        result("Prod", tools("Prod", None)),
        result(
            "Staging",
            tools("Staging", drift.then_some(crate::demo::Drift::Type)),
        ),
        result(
            "Dev",
            if down {
                Err("initialize failed: connection refused".into())
            } else {
                tools("Dev", None)
            },
        ),
    ];
    (build_manifest(&config(), &results).unwrap(), results)
}

#[test]
fn exit_codes() {
    let check = |drift, down, expected| {
        let (m, _) = scenario(drift, down);
        assert_eq!(exit_code(&m), expected, "drift {drift}, down {down}");
    };
    // Warnings alone (a Dev-only parameter) are clean.
    check(false, false, exit::CLEAN);
    check(true, false, exit::MERGE_ERRORS);
    check(false, true, exit::BACKEND_FAILED);
    // Both: the unreachable backend wins.
    check(true, true, exit::BACKEND_FAILED);
}

#[test]
fn check_text_names_tools_envs_and_reasons() {
    let (m, results) = scenario(true, true);
    insta::assert_snapshot!(check_text("ops.json", &m, &results, None));
}

#[test]
fn check_json_is_one_document() {
    let (m, results) = scenario(false, true);
    let doc = check_json("ops.json", &m, &results, None);
    assert_eq!(doc["exit_code"], 2);
    assert_eq!(doc["envs"][0]["status"], "ok");
    assert_eq!(doc["envs"][0]["tools"], 6);
    assert_eq!(doc["envs"][2]["status"], "unreachable");
    assert_eq!(
        doc["envs"][2]["error"],
        "initialize failed: connection refused"
    );
    assert_eq!(doc["tools"], 6);
    assert!(doc["errors"].as_array().unwrap().is_empty());
    assert_eq!(doc["warnings"].as_array().unwrap().len(), 0);
}

#[test]
fn list_marks_partial_params_and_envs() {
    let (m, _) = scenario(false, false);
    let text = list_text(&m);
    assert!(text.contains("rollback_deployment  [env: Prod]"), "{text}");
    assert!(text.contains("- debug (boolean, only on Dev)"), "{text}");
    insta::assert_snapshot!(text);
}

/// Everything fine, except Dev is served from its last good tools.
fn stale_scenario() -> (policy::manifest::Manifest, Vec<EnvResult>) {
    let (m, results) = scenario(false, false);
    let stale = std::collections::BTreeMap::from([(
        "Dev".to_owned(),
        policy::manifest::Stale {
            reason: "initialize failed: connection refused".into(),
            since: "2026-11-22T07:00:00Z".into(),
            listed_at: "2026-11-22T06:00:00Z".into(),
        },
    )]);
    (crate::catalog::mark_stale(m, &stale), results)
}

#[test]
fn a_stale_env_is_reported_with_its_tools_reason_and_times() {
    let (m, results) = stale_scenario();
    assert_eq!(exit_code(&m), exit::BACKEND_FAILED);
    assert!(
        verdict(&m).contains("1 environment down (serving last good tools)"),
        "{}",
        verdict(&m)
    );
    let text = check_text("ops.json", &m, &results, None);
    assert!(
        text.contains(
            "DOWN Dev      http://127.0.0.1:3/mcp  5 tools served as listed at 2026-11-22T06:00:00Z"
        ),
        "{text}"
    );
    assert!(
        text.contains("down since 2026-11-22T07:00:00Z: initialize failed: connection refused"),
        "{text}"
    );
    let doc = check_json("ops.json", &m, &results, None);
    assert_eq!(doc["envs"][2]["status"], "stale");
    assert_eq!(doc["envs"][2]["tools"], 5);
    assert_eq!(doc["envs"][2]["down_since"], "2026-11-22T07:00:00Z");
    assert_eq!(doc["envs"][2]["listed_at"], "2026-11-22T06:00:00Z");
    let list = list_text(&m);
    assert!(
        list.contains("Down: Dev since 2026-11-22T07:00:00Z (its tools as listed at 2026-11-22T06:00:00Z are still served)"),
        "{list}"
    );
}

#[test]
fn list_names_the_capabilities_a_tool_was_listed_for() {
    let mut prod = tools("Prod", None).unwrap();
    prod.requires
        .insert("search_logs".into(), vec!["elicitation".into()]);
    let results = vec![
        result("Prod", Ok(prod)),
        result("Staging", tools("Staging", None)),
    ];
    let m = build_manifest(&config(), &results).unwrap();

    let text = list_text(&m);

    assert!(
        text.contains("  on Prod: listed only for clients with elicitation\n"),
        "{text}"
    );
    assert_eq!(text.matches("listed only for").count(), 1, "{text}");
}

#[test]
fn list_shows_prompts_and_resources_after_the_tools() {
    let (mut m, _) = scenario(false, false);
    m.prompts.push(policy::manifest::PromptEntry {
        prompt: serde_json::from_value(json!({"name": "triage", "description": "Triage it\nmore"}))
            .unwrap(),
        envs: ["Prod", "Staging"]
            .iter()
            .map(|e| policy::manifest::OfferEnv {
                env: (*e).into(),
                backend: None,
            })
            .collect(),
        upstream: None,
    });
    m.resources.push(policy::manifest::ResourceEntry {
        resource: serde_json::from_value(json!({"uri": "meshmux://Prod/file:///a", "name": "a"}))
            .unwrap(),
        backend: "Prod".into(),
        upstream: Some("file:///a".into()),
    });
    let text = list_text(&m);
    assert!(
        text.contains("\nPrompts:\n  triage  [env: Prod | Staging]  Triage it\n"),
        "{text}"
    );
    assert!(
        text.contains("\nResources:\n  meshmux://Prod/file:///a\n"),
        "{text}"
    );
    assert!(!text.contains("Resource templates"), "{text}");
}
