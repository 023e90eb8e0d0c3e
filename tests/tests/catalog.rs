//! The merged catalog: every tool once, with an `env` argument whose choices are the envs
//! that have the tool.

// Helpers of an integration test may fail the test on the spot, like the tests themselves
// (clippy.toml allows this inside #[test] functions only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::Value;
use tests::OpsEnvs;

fn tool<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no tool {name} in {list:#}"))
}

fn env_enum(list: &Value, name: &str) -> Vec<String> {
    tool(list, name)["inputSchema"]["properties"]["env"]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} has no env enum"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_merged_tools_list_has_every_tool_once_with_an_env_argument() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    let list = ops.gw.list_tools()?;

    let names: Vec<&str> = list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "search_logs",
            "get_service_status",
            "list_deployments",
            "rollback_deployment",
            "query_metrics",
            "stream_progress"
        ]
    );
    for name in &names {
        let required = tool(&list, name)["inputSchema"]["required"]
            .as_array()
            .unwrap();
        assert!(
            required.contains(&"env".into()),
            "{name}: env is not required"
        );
    }
    insta::assert_json_snapshot!("merged_tools_list", list);
    Ok(())
}

#[test]
fn a_tool_only_prod_has_offers_only_prod() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    let list = ops.gw.list_tools()?;

    assert_eq!(env_enum(&list, "rollback_deployment"), ["Prod"]);
    assert_eq!(env_enum(&list, "search_logs"), ["Prod", "Staging", "Dev"]);
    Ok(())
}

#[test]
fn a_param_only_dev_has_is_listed_as_optional() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    let list = ops.gw.list_tools()?;

    let metrics = tool(&list, "query_metrics");
    assert!(metrics["inputSchema"]["properties"]["debug"].is_object());
    let required = metrics["inputSchema"]["required"].as_array().unwrap();
    assert!(!required.contains(&"debug".into()), "{metrics:#}");
    Ok(())
}

#[test]
fn the_lossless_merge_keeps_titles_annotations_and_output_schemas() -> anyhow::Result<()> {
    let ops = OpsEnvs::start()?;

    let list = ops.gw.list_tools()?;

    let status = tool(&list, "get_service_status");
    assert_eq!(status["title"], "Service status");
    assert_eq!(status["annotations"]["readOnlyHint"], true);
    assert_eq!(status["outputSchema"]["required"][0], "env");
    Ok(())
}

#[test]
fn env_descriptions_in_the_instructions_are_stated_once() -> anyhow::Result<()> {
    let ops = OpsEnvs::start_with(|config| config.env_descriptions("instructions"))?;

    let list = ops.gw.list_tools()?;
    let init = ops
        .gw
        .post_json(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#)?
        .rpc()?;

    let tools = list["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 6, "{list:#}");
    for t in tools {
        let env = &t["inputSchema"]["properties"]["env"];
        let description = env["description"].as_str().unwrap();
        assert!(
            description.starts_with("Environment to run in (see the server instructions)."),
            "{t:#}"
        );
        assert!(!description.contains("Prod environment"), "{t:#}");
    }
    assert_eq!(env_enum(&list, "rollback_deployment"), ["Prod"]);
    assert_eq!(
        init["result"]["instructions"],
        "Environments (the `env` argument of every tool):\n- Prod: Prod environment\n- Staging: Staging environment\n- Dev: Dev environment",
        "{init:#}"
    );
    Ok(())
}
