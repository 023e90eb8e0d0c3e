//! The MCP authorization flow end to end, with real parts only: the official TypeScript SDK's
//! OAuth client discovers authsvc through the gateway's 401, registers, and sends the user's
//! browser (headless Chromium) to authsvc, which sends it on to a real OpenID provider
//! (`oidc-provider`, standing in for Entra ID or Auth0). The user signs in there, approves
//! authsvc's consent page, the SDK exchanges the code, and calls tools through Envoy with the
//! token: each user sees and calls only what the roles in the IdP's ID token allow.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::{Value, json};
use tests::fixtures::{Idp, RealAuth};
use tests::{browser, is_error, result_text};

fn users() -> Value {
    json!({
        "alice": {"name": "Alice Example", "roles": ["staging-reader"]},
        "bob": {"name": "Bob Example", "roles": ["admin"]},
    })
}

fn call(name: &str, env: &str) -> Value {
    json!({"name": name, "arguments": {"env": env, "query": "timeout"}})
}

fn env_enums(tools: &Value) -> Vec<(String, Vec<String>)> {
    tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let envs = t["inputSchema"]["properties"]["env"]["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("no env enum: {t:#}"))
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            (t["name"].as_str().unwrap().to_owned(), envs)
        })
        .collect()
}

fn result(run: &Value, i: usize) -> &Value {
    run["results"][i]
        .get("result")
        .unwrap_or_else(|| panic!("call {i} failed: {:#}", run["results"][i]))
}

#[test]
fn the_sdk_oauth_client_signs_in_at_a_real_idp_and_each_user_gets_their_roles() -> anyhow::Result<()>
{
    let stack = RealAuth::start(Idp::Oidc(users()))?;
    let mcp = stack.gw.url();

    // Alice (staging-reader): Staging only, everywhere in the catalog.
    let alice = browser::oauth_client(
        &mcp,
        "alice",
        &[call("search_logs", "Staging"), call("search_logs", "Prod")],
    )?;
    let claims = &alice["tokens"]["claims"];
    assert_eq!(claims["iss"], stack.base_url, "{claims:#}");
    assert_eq!(claims["aud"], mcp, "{claims:#}");
    assert_eq!(claims["sub"], "alice", "{claims:#}");
    assert_eq!(claims["roles"], json!(["staging-reader"]), "{claims:#}");
    assert_eq!(claims["kind"], "user", "{claims:#}");
    assert_eq!(alice["iss"], stack.base_url);
    assert!(alice["tokens"]["has_refresh_token"].as_bool().unwrap());
    // The browser went gateway → IdP login → IdP consent → authsvc callback → consent → client.
    let visited: Vec<&str> = alice["visited"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(visited.first(), Some(&"/auth/login"), "{visited:?}");
    assert!(visited.contains(&"/auth/callback"), "{visited:?}");
    assert_eq!(visited.last(), Some(&"/oauth/callback"), "{visited:?}");
    let alice_tools = env_enums(&alice["tools"]);
    assert!(!alice_tools.is_empty());
    for (name, envs) in &alice_tools {
        assert_eq!(envs, &["Staging"], "{name}");
    }
    let ok = result(&alice, 0);
    assert!(!is_error(ok), "{ok:#}");
    assert!(result_text(ok).starts_with("[Staging]"), "{ok:#}");
    let denied = result(&alice, 1);
    assert!(is_error(denied), "{denied:#}");
    assert!(result_text(denied).contains("Prod"), "{denied:#}");
    assert_eq!(stack.calls_received()?, (0, 1, 0));

    // Bob (admin): every env, and his Prod call goes through.
    let bob = browser::oauth_client(&mcp, "bob", &[call("search_logs", "Prod")])?;
    assert_eq!(bob["tokens"]["claims"]["roles"], json!(["admin"]));
    assert_eq!(bob["tokens"]["claims"]["name"], "Bob Example");
    assert_ne!(bob["client_id"], alice["client_id"], "each run registers");
    let bob_tools = env_enums(&bob["tools"]);
    assert!(bob_tools.len() > alice_tools.len(), "{bob_tools:?}");
    let search = bob_tools.iter().find(|(n, _)| n == "search_logs").unwrap();
    assert_eq!(search.1, ["Prod", "Staging", "Dev"]);
    let prod = result(&bob, 0);
    assert!(result_text(prod).starts_with("[Prod]"), "{prod:#}");
    assert_eq!(stack.calls_received()?, (1, 1, 0));
    Ok(())
}
