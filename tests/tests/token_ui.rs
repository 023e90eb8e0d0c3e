//! authsvc's token UI in headless Chromium, as a person uses it: sign in (authsvc's dev IdP,
//! the one `meshmux up` runs), mint a bot token (a role the user lacks and an over-long
//! lifetime are refused by the server), use the token against `/mcp` through Envoy, revoke it
//! in the UI, and see the gateway refuse it within the bound. Screenshots of every page are
//! kept under target/e2e-logs/<test>/screenshots-*/.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::browser::TokenUi;
use tests::fixtures::{Idp, RealAuth};
use tests::{is_error, result_text};

fn search(env: &str) -> Value {
    json!({"env": env, "query": "timeout"})
}

#[test]
fn a_token_minted_in_the_ui_works_until_it_is_revoked_there() -> anyhow::Result<()> {
    let stack = RealAuth::start(Idp::Dev(json!({
        "carol": ["minter", "staging-reader"],
    })))?;
    let gw = &stack.gw;

    let ui = TokenUi::new(&stack.base_url, "carol")?;
    let minted = ui.mint(
        "ci-agent",
        &["staging-reader"],
        "admin",
        RealAuth::MAX_DAYS + 1,
    )?;
    let refusals = minted["refusals"].as_array().unwrap();
    assert_eq!(refusals.len(), 2, "{minted:#}");
    assert_eq!(refusals[0]["status"], 400, "{minted:#}");
    let message = refusals[0]["message"].as_str().unwrap();
    assert!(message.contains("\"admin\""), "{message}");
    assert_eq!(refusals[1]["status"], 400, "{minted:#}");
    let message = refusals[1]["message"].as_str().unwrap();
    assert!(message.contains("1 to 30 days"), "{message}");
    // Only the good one was recorded.
    let listed: Vec<&str> = minted["listed"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(
        listed[0].starts_with("ci-agent\tstaging-reader"),
        "{listed:?}"
    );

    // The token works through Envoy, with exactly its role.
    let token = minted["token"].as_str().unwrap();
    let list = gw.list_tools_with(token)?;
    assert_eq!(list.status, 200, "{}", list.text());
    for tool in list.result()?["tools"].as_array().unwrap() {
        assert_eq!(
            tool["inputSchema"]["properties"]["env"]["enum"],
            json!(["Staging"]),
            "{tool:#}"
        );
    }
    let ok = gw
        .call_with(token, "search_logs", search("Staging"))?
        .result()?;
    assert!(result_text(&ok).starts_with("[Staging]"), "{ok:#}");
    let denied = gw
        .call_with(token, "search_logs", search("Prod"))?
        .result()?;
    assert!(is_error(&denied), "{denied:#}");
    assert_eq!(stack.calls_received()?, (0, 1, 0));

    // Revoked in the UI: the gateway refuses it within the bound (the filter refreshes the
    // list every 5 s), with the MCP challenge, and nothing more reaches a backend.
    let revoked = ui.revoke("ci-agent")?;
    assert_eq!(revoked["state"], "revoked", "{revoked:#}");
    assert!(
        revoked["notice"].as_str().unwrap().contains("revoked"),
        "{revoked:#}"
    );
    let started = Instant::now();
    let refused = loop {
        let resp = gw.call_with(token, "search_logs", search("Staging"))?;
        if resp.status == 401 {
            break resp;
        }
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still accepted 30 s after revocation"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("revoked token refused after {:?}", started.elapsed());
    let challenge = refused.header("www-authenticate").unwrap();
    assert!(
        challenge.contains(&format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            stack.base_url
        )),
        "{challenge}"
    );
    let (_, staging_calls, _) = stack.calls_received()?;
    let accepted_after = gw.call_with(token, "search_logs", search("Staging"))?;
    assert_eq!(accepted_after.status, 401);
    assert_eq!(stack.calls_received()?, (0, staging_calls, 0));

    // Screenshots of each page are kept.
    let dir = tests::logs::test_dir()?;
    let shots: Vec<_> = ["screenshots-ui-carol-mint", "screenshots-ui-carol-revoke"]
        .iter()
        .flat_map(|d| std::fs::read_dir(dir.join(d)).unwrap())
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
        .collect();
    assert!(shots.len() >= 6, "{} screenshots", shots.len());
    Ok(())
}
