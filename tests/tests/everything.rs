//! `@modelcontextprotocol/server-everything` twice, as two envs: a stateful reference server
//! that refuses a `tools/call` without its `Mcp-Session-Id`, so these calls only work if the
//! gateway opens and keeps a backend session per env.

// Helpers of an integration test may fail the test on the spot, like the tests themselves
// (clippy.toml allows this inside #[test] functions only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::json;
use tests::fixtures::everything_twice;
use tests::{RmcpClient, TsClient, is_error, result_text};

#[test]
fn server_everything_twice_is_listed_once_with_an_env_enum() -> anyhow::Result<()> {
    let (gw, _alpha, _beta) = everything_twice()?;

    let list = gw.list_tools()?;

    let tools = list["tools"].as_array().unwrap();
    let echoes: Vec<_> = tools.iter().filter(|t| t["name"] == "echo").collect();
    assert_eq!(echoes.len(), 1, "{list:#}");
    assert_eq!(
        echoes[0]["inputSchema"]["properties"]["env"]["enum"],
        json!(["Alpha", "Beta"])
    );
    let mut names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    let count = names.len();
    names.dedup();
    assert_eq!(names.len(), count, "a tool is listed twice: {names:?}");
    for t in tools {
        let envs = &t["inputSchema"]["properties"]["env"]["enum"];
        assert_eq!(envs, &json!(["Alpha", "Beta"]), "{}", t["name"]);
    }
    Ok(())
}

#[test]
fn server_everything_calls_reach_each_instance_through_backend_sessions() -> anyhow::Result<()> {
    let (gw, _alpha, _beta) = everything_twice()?;

    for env in ["Alpha", "Beta", "Alpha"] {
        let result = gw.call_tool("get-env", json!({"env": env}))?;

        assert!(!is_error(&result), "{env}: {result:#}");
        let text = result_text(&result);
        assert!(
            text.contains(&format!("\"MESHMUX_TEST_ENV\": \"{env}\"")),
            "{env} was not the one that answered: {text}"
        );
    }
    let echo = gw.call_tool("echo", json!({"env": "Beta", "message": "hello"}))?;
    assert_eq!(result_text(&echo), "Echo: hello", "{echo:#}");
    Ok(())
}

#[test]
fn server_everything_works_for_the_rmcp_and_typescript_clients() -> anyhow::Result<()> {
    let (gw, _alpha, _beta) = everything_twice()?;

    let rmcp = RmcpClient::connect(&gw.url())?;
    let sum = rmcp.call_tool("get-sum", json!({"env": "Alpha", "a": 2, "b": 40}))?;
    let ts = TsClient::new(&gw.url())
        .call("echo", json!({"env": "Beta", "message": "from ts"}))
        .run()?;

    assert!(result_text(&sum).contains("42"), "{sum:#}");
    assert_eq!(
        result_text(&ts["results"][0]["result"]),
        "Echo: from ts",
        "{ts:#}"
    );
    Ok(())
}

#[test]
fn a_restarted_server_everything_is_reinitialized() -> anyhow::Result<()> {
    let (gw, mut alpha, _beta) = everything_twice()?;
    let call = || gw.call_tool("echo", json!({"env": "Alpha", "message": "again"}));
    assert_eq!(result_text(&call()?), "Echo: again");

    // server-everything answers an unknown session id with 400 "No valid session ID", not
    // the 404 the spec asks for; the gateway must still notice the session is gone.
    alpha.restart()?;
    let after = call()?;

    assert!(!is_error(&after), "{after:#}");
    assert_eq!(result_text(&after), "Echo: again");
    Ok(())
}
