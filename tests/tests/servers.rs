//! Many servers behind one endpoint (`mcpServers`), on real processes: server-everything (the
//! official TypeScript server) as a server with one backend, the rmcp demo backend as a server
//! in two envs, and a Python SDK server without a prefix; namespaced tools, renames, roles
//! over servers, collisions, and the official clients calling namespaced tools.

use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};
use tests::auth::{FakeAuthsvc, Issuer};
use tests::backend::Backend;
use tests::py_backend::PyJsonBackend;
use tests::rmcp_client::RmcpClient;
use tests::sdk_everything::{self, Sdk, Target};
use tests::{Gateway, is_error, result_text};

fn names(list: &Value) -> Vec<String> {
    list["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["tools"]
        .as_array()
        .and_then(|tools| tools.iter().find(|t| t["name"] == name))
        .unwrap_or(&Value::Null)
}

/// `ops`: the demo backend in Prod and Staging, its `search_logs` renamed `logs`.
fn ops_server(prod: &Backend, staging: &Backend) -> Value {
    json!({
        "tools": {"search_logs": {"name": "logs", "description": "Search a service's logs."}},
        "environments": {
            "Prod": {"description": "Production", "url": prod.url()},
            "Staging": {"description": "Staging", "url": staging.url()}
        }
    })
}

#[test]
fn three_servers_answer_on_one_endpoint_with_namespaced_tools() -> Result<()> {
    let everything = Backend::everything("everything").start()?;
    let prod = Backend::demo("Prod").record().start()?;
    let staging = Backend::demo("Staging").record().start()?;
    let py = PyJsonBackend::start()?;
    let gw = Gateway::builder()
        .server("everything", json!({"url": everything.url()}))
        .server("ops", ops_server(&prod, &staging))
        .server("py", json!({"url": py.url(), "prefix": "never"}))
        .start()?;

    let list = gw.list_tools()?;
    let names = names(&list);
    assert!(names.contains(&"everything__echo".to_owned()), "{names:?}");
    assert!(names.contains(&"ops__logs".to_owned()), "{names:?}");
    assert!(
        names.contains(&"ops__get_service_status".to_owned()),
        "{names:?}"
    );
    assert!(names.contains(&"slow_echo".to_owned()), "{names:?}");
    for gone in ["echo", "search_logs", "ops__search_logs", "logs"] {
        assert!(
            !names.contains(&gone.to_owned()),
            "{gone} listed: {names:?}"
        );
    }
    // One backend: served as defined, no `env`.
    let echo = find(&list, "everything__echo");
    assert_eq!(
        echo["inputSchema"]["properties"]["env"],
        Value::Null,
        "{echo}"
    );
    // Two envs: merged behind `env`, with the config's description.
    let logs = find(&list, "ops__logs");
    assert_eq!(
        logs["inputSchema"]["properties"]["env"]["enum"],
        json!(["Prod", "Staging"])
    );
    assert_eq!(logs["description"], json!("Search a service's logs."));

    let result = gw.call_tool("everything__echo", json!({"message": "hi there"}))?;
    assert!(result_text(&result).contains("hi there"), "{result:#}");
    let result = gw.call_tool("ops__logs", json!({"env": "Staging", "query": "boom"}))?;
    assert!(!is_error(&result), "{result:#}");
    assert!(result_text(&result).starts_with("[Staging]"), "{result:#}");
    let records = staging.wait_for_records(1)?;
    assert_eq!(
        records[0].tool, "search_logs",
        "called by its name at the backend"
    );
    assert_eq!(
        records[0].arguments.get("env"),
        None,
        "`env` is the gateway's: {records:?}"
    );
    assert!(prod.records()?.is_empty());
    let result = gw.call_tool("slow_echo", json!({"message": "plain"}))?;
    assert!(result_text(&result).contains("Echo: plain"), "{result:#}");

    // A server's env label is what callers name; its backend name is not.
    let result = gw.call_tool("ops__logs", json!({"env": "ops.Prod", "query": "x"}))?;
    assert!(is_error(&result), "{result:#}");
    assert!(
        result_text(&result).contains("Valid envs: Prod, Staging"),
        "{result:#}"
    );
    assert!(prod.records()?.is_empty());
    Ok(())
}

#[test]
fn roles_name_servers_by_their_tool_prefix_and_env() -> Result<()> {
    let issuer = Issuer::new(tests::auth::BASE_URL)?;
    let authsvc = FakeAuthsvc::start(&issuer)?;
    let everything = Backend::everything("everything").start()?;
    let prod = Backend::demo("Prod").record().start()?;
    let staging = Backend::demo("Staging").record().start()?;
    let gw = Gateway::builder()
        .server("everything", json!({"url": everything.url()}))
        .server("ops", ops_server(&prod, &staging))
        .auth(
            &authsvc.url(),
            json!({
                "dev": {"everything": ["everything__echo"], "Staging": ["ops__*"]},
                "admin": {"*": ["*"]}
            }),
        )
        .start()?;
    let dev = issuer.token("dana", &["dev"])?;
    let list = gw.list_tools_with(&dev)?.result()?;
    assert_eq!(
        names(&list),
        [
            "everything__echo",
            "ops__logs",
            "ops__get_service_status",
            "ops__list_deployments",
            "ops__query_metrics",
            "ops__stream_progress"
        ],
        "{list:#}"
    );
    assert_eq!(
        find(&list, "ops__logs")["inputSchema"]["properties"]["env"]["enum"],
        json!(["Staging"])
    );

    let denied = gw
        .call_with(&dev, "ops__logs", json!({"env": "Prod", "query": "x"}))?
        .result()?;
    assert!(result_text(&denied).contains("Access denied"), "{denied:#}");
    let hidden = gw
        .call_with(&dev, "everything__get-sum", json!({"a": 1, "b": 2}))?
        .rpc()?;
    assert!(
        hidden
            .to_string()
            .contains("Unknown tool: everything__get-sum"),
        "{hidden}"
    );
    let echo = gw
        .call_with(&dev, "everything__echo", json!({"message": "ok"}))?
        .result()?;
    assert!(result_text(&echo).contains("ok"), "{echo:#}");
    let ok = gw
        .call_with(&dev, "ops__logs", json!({"env": "Staging", "query": "x"}))?
        .result()?;
    assert!(!is_error(&ok), "{ok:#}");
    assert!(prod.records()?.is_empty(), "a denied call reached Prod");
    assert_eq!(staging.records()?.len(), 1);

    let admin = issuer.token("ada", &["admin"])?;
    let all = gw.list_tools_with(&admin)?.result()?;
    assert!(names(&all).contains(&"everything__get-sum".to_owned()));
    Ok(())
}

#[test]
fn two_servers_serving_one_name_is_an_error_naming_both() -> Result<()> {
    let prod = Backend::demo("Prod").start()?;
    let other = Backend::demo("Other").start()?;
    let run = Gateway::builder()
        .server("a", json!({"url": prod.url(), "prefix": "never"}))
        .server("b", json!({"url": other.url(), "prefix": "never"}))
        .check_text()?;
    assert_ne!(run.code, Some(0), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("search_logs: served by more than one server (`a` and `b`)"),
        "{}",
        run.stdout
    );
    Ok(())
}

#[test]
fn the_official_clients_and_rmcp_call_namespaced_tools_in_both_eras() -> Result<()> {
    let single = Backend::everything("everything").start()?;
    let alpha = Backend::everything("Alpha").start()?;
    let beta = Backend::everything("Beta").start()?;
    let gw = Gateway::builder()
        .server("everything", json!({"url": single.url()}))
        .server(
            "ev",
            json!({"environments": {
                "Alpha": {"description": "first", "url": alpha.url()},
                "Beta": {"description": "second", "url": beta.url()}
            }}),
        )
        .start()?;
    let timeout = Duration::from_secs(20);
    let single_target = Target::Server {
        prefix: "everything",
        env: None,
        reports: "everything",
    };
    let env_target = Target::Server {
        prefix: "ev",
        env: Some("Beta"),
        reports: "Beta",
    };
    let mut problems = Vec::new();
    for (sdk, target) in [
        (Sdk::Python("legacy"), single_target),
        (Sdk::Python("2026-07-28"), env_target),
        (Sdk::TsV1, env_target),
        (Sdk::TsV2("auto"), single_target),
    ] {
        let summary = sdk_everything::run_as(sdk, &gw.url(), target, timeout)?;
        println!("{}", summary.table());
        for p in summary.problems() {
            problems.push(format!("{sdk:?} {target:?}: {p}"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");

    let rmcp = RmcpClient::connect(&gw.url())?;
    let tools = rmcp.list_all_tools()?;
    let listed: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(listed.contains(&"everything__get-env"), "{listed:?}");
    assert!(listed.contains(&"ev__get-env"), "{listed:?}");
    let result = rmcp.call_tool("everything__get-env", json!({}))?;
    assert!(
        result_text(&result).contains(r#""MESHMUX_TEST_ENV": "everything""#),
        "{result:#}"
    );
    let result = rmcp.call_tool("ev__get-env", json!({"env": "Alpha"}))?;
    assert!(
        result_text(&result).contains(r#""MESHMUX_TEST_ENV": "Alpha""#),
        "{result:#}"
    );
    Ok(())
}
