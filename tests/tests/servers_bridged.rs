//! stdio and legacy SSE servers in an `mcpServers` file, behind real Envoy: `meshmux up`
//! starts a supervised `meshmux bridge` for each (server-everything over stdio and in its
//! legacy `sse` mode), next to a Streamable HTTP server; real clients call their namespaced
//! tools, server requests (sampling, elicitation) included. And `meshmux discover` reaching a
//! bridge that runs as a sidecar (`listen`).

use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};
use tests::backend::Backend;
use tests::http::{Request, client};
use tests::process::Proc;
use tests::sdk_everything::{self, Sdk, Target};
use tests::{Gateway, logs, ports, prereq, result_text};

fn everything_js() -> Result<String> {
    Ok(
        prereq::node_module_file("@modelcontextprotocol/server-everything/dist/index.js")?
            .display()
            .to_string(),
    )
}

fn names(list: &Value) -> Vec<String> {
    list["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

fn call(url: &str, name: &str, arguments: Value) -> Result<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": name, "arguments": arguments}})
    .to_string();
    Request::post(client()?, url, body).send()?.result()
}

#[test]
fn meshmux_up_bridges_stdio_and_sse_servers_next_to_an_http_one() -> Result<()> {
    let sse_port = ports::free_port()?;
    let mut sse = Command::new(prereq::node()?);
    sse.arg(everything_js()?)
        .arg("sse")
        .env("PORT", sse_port.to_string())
        .env("MESHMUX_TEST_ENV", "sse");
    let mut sse = Proc::spawn("everything-sse", &mut sse)?;
    sse.wait_until("server-everything sse", Duration::from_secs(20), || {
        Ok(ports::is_listening(sse_port))
    })?;
    let prod = Backend::demo("Prod").start()?;

    let dir = logs::unique_path("up-bridged", "")?;
    let config_path = Gateway::builder()
        .server(
            "local",
            json!({"command": prereq::node()?.display().to_string(),
                   "args": [everything_js()?, "stdio"],
                   "env": {"MESHMUX_TEST_ENV": "stdio"}}),
        )
        .server(
            "legacy",
            json!({"url": format!("http://127.0.0.1:{sse_port}/sse"), "transport": "sse"}),
        )
        .server("demo", json!({"url": prod.url()}))
        .write(&dir)?;
    let (mut up, port) = tests::up::start(&config_path, &dir, &[])?;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let list = || -> Result<Value> {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        Request::post(client()?, &url, body).send()?.result()
    };
    up.wait_until(
        "up's gateway to list tools",
        Duration::from_secs(90),
        || Ok(list().is_ok()),
    )?;
    let listed = names(&list()?);
    for expected in [
        "local__echo",
        "legacy__echo",
        "demo__search_logs",
        "local__trigger-sampling-request",
    ] {
        assert!(
            listed.contains(&expected.to_owned()),
            "{expected}: {listed:?}"
        );
    }

    let stdio_env = call(&url, "local__get-env", json!({}))?;
    assert!(
        result_text(&stdio_env).contains(r#""MESHMUX_TEST_ENV": "stdio""#),
        "{stdio_env:#}"
    );
    let sse_env = call(&url, "legacy__get-env", json!({}))?;
    assert!(
        result_text(&sse_env).contains(r#""MESHMUX_TEST_ENV": "sse""#),
        "{sse_env:#}"
    );
    let logs_result = call(&url, "demo__search_logs", json!({"query": "x"}))?;
    assert!(
        result_text(&logs_result).starts_with("[Prod]"),
        "{logs_result:#}"
    );

    // Real clients, every server-everything tool behind the stdio bridge, in both eras.
    let target = Target::Server {
        prefix: "local",
        env: None,
        reports: "stdio",
    };
    let mut problems = Vec::new();
    for sdk in [Sdk::Python("legacy"), Sdk::TsV2("auto")] {
        let summary = sdk_everything::run_as(sdk, &url, target, Duration::from_secs(20))?;
        println!("{}", summary.table());
        problems.extend(
            summary
                .problems()
                .into_iter()
                .map(|p| format!("{sdk:?}: {p}")),
        );
    }
    assert!(problems.is_empty(), "{problems:#?}");
    Ok(())
}

#[test]
fn discover_reaches_a_bridge_running_as_a_sidecar_and_needs_its_address() -> Result<()> {
    // Without `listen`, `discover` cannot reach a stdio server and says what to do.
    let run = Gateway::builder()
        .server("local", json!({"command": "node", "args": ["server.js"]}))
        .server("demo", json!({"url": "http://127.0.0.1:9/mcp"}))
        .env_url("Unused", "http://127.0.0.1:9/mcp");
    let err = match tests::gateway::discover(&run) {
        Ok(_) => panic!("discover accepted a stdio server without listen"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains(
            "mcpServers.local: this server runs behind `meshmux bridge`; give it `listen`"
        ),
        "{err}"
    );

    // The sidecar: a bridge started on its own, at the address the config names.
    let bridge_port = ports::free_port()?;
    let mut cmd = Command::new(prereq::meshmux()?);
    cmd.args([
        "bridge",
        "--listen",
        &format!("127.0.0.1:{bridge_port}"),
        "--name",
        "local",
    ])
    .args(["--env", "MESHMUX_TEST_ENV=sidecar"])
    .arg("--")
    .arg(prereq::node()?)
    .arg(everything_js()?)
    .arg("stdio");
    let mut bridge = Proc::spawn("bridge-sidecar", &mut cmd)?.graceful();
    bridge.wait_until("the sidecar bridge", Duration::from_secs(20), || {
        Ok(ports::is_listening(bridge_port))
    })?;
    let gw = Gateway::builder()
        .server(
            "local",
            json!({"command": "node", "args": ["unused-here"], "listen": format!("127.0.0.1:{bridge_port}")}),
        )
        .start()?;
    let result = gw.call_tool("local__get-env", json!({}))?;
    assert!(
        result_text(&result).contains(r#""MESHMUX_TEST_ENV": "sidecar""#),
        "{result:#}"
    );
    Ok(())
}
