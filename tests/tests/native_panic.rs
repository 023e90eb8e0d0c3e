//! A panic inside the native filter must not take Envoy down: the ABI boundary catches it,
//! that request fails closed (500, nothing forwarded), and every other request is served.
//! Runs the `panic-probe` build of the module (a request header makes it panic).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::json;
use tests::{Backend, Gateway, prereq, result_text};

const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_logs","arguments":{"env":"Prod","query":"x"}}}"#;

#[test]
fn a_panic_fails_that_request_closed_and_envoy_keeps_serving() -> anyhow::Result<()> {
    let prod = Backend::demo("Prod").record().start()?;
    let gw = Gateway::builder()
        .env("Prod", &prod)
        .native_filter(prereq::native_probe_filter()?)
        .start()?;

    for _ in 0..3 {
        let resp = gw.post(CALL).header("x-meshmux-panic-probe", "1").send()?;
        assert_eq!(resp.status, 500, "{}", resp.text());
        assert!(
            prod.records()?.is_empty(),
            "a request whose filter panicked was forwarded"
        );
    }

    let result = gw.call_tool("search_logs", json!({"env": "Prod", "query": "x"}))?;
    assert!(!result_text(&result).is_empty(), "{result}");
    assert_eq!(prod.records()?.len(), 1);
    let log = std::fs::read_to_string(gw.log())?;
    assert!(
        log.contains("a panic in request headers was caught"),
        "{log}"
    );
    Ok(())
}
