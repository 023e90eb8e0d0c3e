//! DNS-rebinding protection on the MCP endpoint (`policy::origin`): with `discover`'s
//! defaults any Host is accepted, and a browser `Origin` only from a page on this machine. A
//! refusal is a 403 whose JSON-RPC error has no id and names the value and the config key.

// Helpers of an integration test may fail the test on the spot, like the tests themselves
// (clippy.toml allows this inside #[test] functions only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use tests::{Backend, Gateway};

const LIST: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#;

#[test]
fn a_rebinding_page_is_refused_and_clients_without_origin_are_not() -> anyhow::Result<()> {
    let prod = Backend::demo("Prod").start()?;
    let gw = Gateway::builder().env("Prod", &prod).start()?;

    let rebound = gw
        .post(LIST)
        .header("host", "evil.example.com")
        .header("origin", "http://evil.example.com")
        .send()?;
    assert_eq!(rebound.status, 403, "{}", rebound.text());
    let body = rebound.json()?;
    assert!(body.get("id").is_none(), "{body}");
    assert_eq!(body["error"]["code"], -32000, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`http://evil.example.com`")
            && message.contains("gateway.allowed_origins"),
        "{message}"
    );
    // Refused before anything else: a GET with that Origin is 403 too, not 405.
    let get = gw
        .request("GET")?
        .header("origin", "http://evil.example.com")
        .send()?;
    assert_eq!(get.status, 403, "{}", get.text());

    // Non-browser clients send no Origin: any Host is fine by default.
    let cli = gw.post(LIST).header("host", "mcp.example.com").send()?;
    assert_eq!(cli.status, 200, "{}", cli.text());
    assert!(cli.result()?["tools"].is_array());
    // A page on this machine (the MCP Inspector's) is accepted.
    let inspector = gw
        .post(LIST)
        .header("origin", "http://localhost:6274")
        .send()?;
    assert_eq!(inspector.status, 200, "{}", inspector.text());
    Ok(())
}
