//! Authorization at the gateway, on real Envoy: jwt_authn verifies tokens signed like
//! authsvc's (a stand-in serves the JWKS and the revocation list), the filter applies each
//! caller's roles. Every refusal is checked at the backends too: nothing reaches them.

// Helpers of an integration test may fail the test on the spot, like the tests themselves
// (clippy.toml allows this inside #[test] functions only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tests::auth::Issuer;
use tests::fixtures::AuthOps;
use tests::{Response, http, is_error, result_text};

const RESOURCE_METADATA: &str =
    "resource_metadata=\"https://mcp.gateway.test/.well-known/oauth-protected-resource/mcp\"";

/// A 401 with the MCP challenge that sends clients to the protected-resource metadata.
fn assert_challenged(what: &str, resp: &Response) {
    assert_eq!(resp.status, 401, "{what}: {}", resp.text());
    let challenge = resp
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("{what}: 401 without WWW-Authenticate: {:?}", resp.headers));
    assert!(challenge.starts_with("Bearer "), "{what}: {challenge}");
    assert!(challenge.contains(RESOURCE_METADATA), "{what}: {challenge}");
}

fn search(env: &str) -> Value {
    json!({"env": env, "query": "timeout"})
}

fn tool_names(list: &Value) -> Vec<String> {
    list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

fn env_enum(tool: &Value) -> Vec<String> {
    tool["inputSchema"]["properties"]["env"]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("no env enum: {tool:#}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn bad_or_missing_tokens_get_401_with_the_mcp_challenge_and_reach_no_backend() -> anyhow::Result<()>
{
    let auth = AuthOps::start()?;
    let (gw, issuer) = (auth.gw(), &auth.issuer);
    let admin = ["admin"];

    let mut expired = issuer.claims("eve", &admin);
    expired["iat"] = json!(expired["iat"].as_u64().unwrap() - 7200);
    expired["exp"] = json!(expired["iat"].as_u64().unwrap() + 600);
    let mut wrong_aud = issuer.claims("eve", &admin);
    wrong_aud["aud"] = json!("https://other.example.com/mcp");
    let other_issuer = Issuer::new("https://idp.elsewhere.test")?;
    let mut foreign = other_issuer.claims("eve", &admin);
    foreign["aud"] = json!(issuer.audience());
    let cases: Vec<(&str, String)> = vec![
        ("expired", issuer.sign(&expired)?),
        ("wrong aud", issuer.sign(&wrong_aud)?),
        ("other issuer", other_issuer.sign(&foreign)?),
        (
            "bad signature",
            issuer.sign_as_impostor(&issuer.claims("eve", &admin))?,
        ),
        ("alg none", Issuer::unsigned(&issuer.claims("eve", &admin))),
        ("not a JWT", "not-a-jwt".to_owned()),
    ];

    // No token at all: the challenge an MCP client starts its authorization flow from.
    let missing = gw.call("search_logs", search("Staging"))?;
    assert_challenged("missing token", &missing);
    let missing_list = gw.post_json(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)?;
    assert_challenged("missing token, tools/list", &missing_list);

    for (what, token) in &cases {
        assert_challenged(
            what,
            &gw.call_with(token, "search_logs", search("Staging"))?,
        );
        assert_challenged(what, &gw.list_tools_with(token)?);
    }

    // Claims sent as headers, with no token: jwt_authn refuses before anyone reads them.
    let payload = URL_SAFE_NO_PAD.encode(json!({"sub": "eve", "roles": ["admin"]}).to_string());
    let spoofed = gw
        .post(http::tools_call(9, "search_logs", &search("Prod")))
        .header("x-jwt-payload", &payload)
        .header("x-jwt-sub", "eve")
        .header("roles", "admin")
        .send()?;
    assert_challenged("spoofed claim headers", &spoofed);

    assert_eq!(
        auth.ops.calls_received()?,
        0,
        "a refused request reached a backend"
    );

    // The same call with a good token goes through: the refusals above were the tokens'.
    let ok = gw.call_with(
        &issuer.token("bob", &admin)?,
        "search_logs",
        search("Staging"),
    )?;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(!is_error(&ok.result()?), "{}", ok.text());
    let records = auth.ops.staging.wait_for_records(1)?;
    assert_eq!(records[0].header("authorization"), None, "the token leaked");
    assert_eq!(records[0].header("x-jwt-payload"), None);
    Ok(())
}

#[test]
fn each_caller_sees_and_calls_only_what_its_roles_allow() -> anyhow::Result<()> {
    let auth = AuthOps::start()?;
    let (gw, issuer) = (auth.gw(), &auth.issuer);
    let alice = issuer.token("alice", &["staging-reader"])?;
    let bob = issuer.token("bob", &["admin"])?;
    let nobody = issuer.token("nobody", &[])?;
    let stranger = issuer.token("stranger", &["no-such-role"])?;

    // B, admin: every tool, every env.
    let all = gw.list_tools_with(&bob)?.result()?;
    let names = tool_names(&all);
    assert!(names.len() >= 5, "{names:?}");
    let search_logs = all["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "search_logs")
        .unwrap();
    assert_eq!(env_enum(search_logs), ["Prod", "Staging", "Dev"]);

    // A, staging-reader: the tools Staging has, each with `env` narrowed to Staging.
    let list = gw.list_tools_with(&alice)?.result()?;
    assert!(!tool_names(&list).is_empty());
    for tool in list["tools"].as_array().unwrap() {
        assert_eq!(env_enum(tool), ["Staging"], "{tool:#}");
        let description = tool["inputSchema"]["properties"]["env"]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(
            !description.contains("Prod") && !description.contains("Dev"),
            "{description}"
        );
    }
    let result = gw
        .call_with(&alice, "search_logs", search("Staging"))?
        .result()?;
    assert!(!is_error(&result), "{result:#}");
    assert!(result_text(&result).starts_with("[Staging]"), "{result:#}");
    auth.ops.staging.wait_for_records(1)?;

    // A calling Prod: a tool error naming the tool and the env, never forwarded.
    let denied = gw.call_with(&alice, "search_logs", search("Prod"))?;
    assert_eq!(denied.status, 200, "{}", denied.text());
    let denied = denied.result()?;
    assert!(is_error(&denied), "{denied:#}");
    let text = result_text(&denied);
    assert!(
        text.contains("`search_logs`") && text.contains("`Prod`"),
        "{text}"
    );
    assert!(text.contains("Staging"), "names the envs A may use: {text}");

    // The denial is counted per tool and env in the Prometheus text (tests/tests/metrics.rs
    // checks every metric; this checks the label set a denial gets).
    let prometheus = http::client()?
        .get(format!("{}/stats/prometheus", gw.admin_url()))
        .send()?
        .text()?;
    let samples = tests::prometheus::Samples::parse(&prometheus)?;
    let denied = samples.by(
        "meshmux_tool_request_errors_total",
        &["env", "tool", "error_type"],
    );
    assert_eq!(
        denied.get(&vec!["Prod".into(), "search_logs".into(), "denied".into()]),
        Some(&1.0),
        "{prometheus}"
    );

    // No roles, or only unknown ones: nothing listed, nothing callable.
    for (who, token) in [("no roles", &nobody), ("unknown role", &stranger)] {
        let list = gw.list_tools_with(token)?.result()?;
        assert_eq!(tool_names(&list), Vec::<String>::new(), "{who}");
        let refused = gw.call_with(token, "search_logs", search("Staging"))?;
        assert_eq!(refused.status, 200, "{who}: {}", refused.text());
        let (code, message) = refused.error()?;
        assert_eq!(code, -32602, "{who}: {message}");
    }

    assert_eq!(
        auth.ops.prod.records()?.len(),
        0,
        "a denied call reached Prod"
    );
    assert_eq!(auth.ops.dev.records()?.len(), 0);
    assert_eq!(
        auth.ops.staging.records()?.len(),
        1,
        "only A's Staging call"
    );

    // B reaches Prod.
    let result = gw
        .call_with(&bob, "search_logs", search("Prod"))?
        .result()?;
    assert!(result_text(&result).starts_with("[Prod]"), "{result:#}");
    auth.ops.prod.wait_for_records(1)?;
    Ok(())
}

#[test]
fn a_revoked_token_is_refused_within_the_bound_and_authsvc_trouble_blocks_nothing()
-> anyhow::Result<()> {
    let auth = AuthOps::start()?;
    let started = Instant::now();
    let (gw, issuer) = (auth.gw(), &auth.issuer);
    let mut claims = issuer.claims("ci-bot", &["admin"]);
    claims["kind"] = json!("bot");
    claims["exp"] = json!(claims["iat"].as_u64().unwrap() + 30 * 86_400);
    let jti = claims["jti"].as_str().unwrap().to_owned();
    let bot = issuer.sign(&claims)?;
    let other = issuer.token("bob", &["admin"])?;

    // authsvc's public paths reach it through the gateway; its internal one does not.
    let client = http::client()?;
    let jwks = client
        .get(format!(
            "http://127.0.0.1:{}/.well-known/jwks.json",
            gw.port()
        ))
        .send()?;
    assert_eq!(jwks.status(), 200);
    assert_eq!(jwks.json::<Value>()?["keys"][0]["kid"], tests::auth::KID);
    let internal = client
        .get(format!(
            "http://127.0.0.1:{}/internal/revocations",
            gw.port()
        ))
        .send()?;
    assert_eq!(internal.status(), 404, "the revocation list is not public");

    // authsvc's list failing keeps nothing from working.
    auth.authsvc.fail_revocations(true);
    let before = auth.authsvc.requests_of("/internal/revocations");
    let deadline = Instant::now() + Duration::from_secs(20);
    while auth.authsvc.requests_of("/internal/revocations") < before + 2 {
        assert!(
            Instant::now() < deadline,
            "the filter never fetched the list"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let result = gw
        .call_with(&bot, "search_logs", search("Staging"))?
        .result()?;
    assert!(!is_error(&result), "{result:#}");
    auth.authsvc.fail_revocations(false);

    auth.authsvc.revoke(&jti);
    let revoked_at = Instant::now();
    let refused = loop {
        let resp = gw.call_with(&bot, "search_logs", search("Staging"))?;
        if resp.status == 401 {
            break resp;
        }
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert!(
            revoked_at.elapsed() < Duration::from_secs(30),
            "a revoked token still works after 30 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let took = revoked_at.elapsed();
    eprintln!("revoked token refused after {took:?}");
    assert_challenged("revoked", &refused);
    assert!(refused.text().contains("revoked"), "{}", refused.text());
    let calls = auth.ops.calls_received()?;

    // Refused from now on, tools/list included; other tokens are unaffected.
    assert_challenged("revoked, tools/list", &gw.list_tools_with(&bot)?);
    assert_challenged(
        "revoked, again",
        &gw.call_with(&bot, "search_logs", search("Prod"))?,
    );
    assert_eq!(
        auth.ops.calls_received()?,
        calls,
        "a revoked call was forwarded"
    );
    let result = gw
        .call_with(&other, "search_logs", search("Staging"))?
        .result()?;
    assert!(!is_error(&result), "{result:#}");

    // One fetch per period for the whole Envoy, not one per worker and tick.
    let fetches = auth.authsvc.requests_of("/internal/revocations");
    let periods = started.elapsed().as_secs() as usize / 5;
    assert!(
        fetches <= periods + 3,
        "{fetches} fetches in {:?}",
        started.elapsed()
    );
    Ok(())
}

/// The real authsvc behind the same gateway: its metadata is routed through Envoy, its keys
/// verify its tokens, and a bot token it mints gets exactly its roles.
#[test]
fn tokens_minted_by_the_real_authsvc_work_through_the_gateway() -> anyhow::Result<()> {
    use tests::authsvc::Authsvc;
    use tests::{Backend, Gateway};

    let prod = Backend::demo("Prod").record().start()?;
    let staging = Backend::demo("Staging").record().start()?;
    let gw_port = tests::ports::free_port()?;
    let authsvc_port = Authsvc::reserve_port()?;
    let base_url = format!("http://127.0.0.1:{gw_port}");
    let dir = tests::logs::unique_path("authsvc-config", "")?;
    std::fs::create_dir_all(&dir)?;
    let key = dir.join("signing.pem");
    std::fs::copy(tests::auth::signing_key_path(), &key)?;
    let config = Gateway::builder()
        .env("Prod", &prod)
        .env("Staging", &staging)
        .port(gw_port)
        .auth_at(
            &base_url,
            &format!("http://127.0.0.1:{authsvc_port}"),
            tests::fixtures::test_roles(),
        )
        .signing_key_file(&key);
    let authsvc = Authsvc::start(&config.write(&dir)?, authsvc_port)?;
    let gw = config.start()?;

    // Anonymous: the challenge points at authsvc's metadata, served through the gateway.
    let anonymous = gw.call("search_logs", search("Staging"))?;
    assert_eq!(anonymous.status, 401);
    let challenge = anonymous.header("www-authenticate").unwrap().to_owned();
    let metadata_url = format!("{base_url}/.well-known/oauth-protected-resource/mcp");
    assert!(challenge.contains(&metadata_url), "{challenge}");
    let metadata: Value = http::client()?.get(&metadata_url).send()?.json()?;
    assert_eq!(
        metadata["resource"],
        format!("{base_url}/mcp"),
        "{metadata:#}"
    );

    let bot = authsvc.mint("ci", &["staging-reader"], 1)?;
    let list = gw.list_tools_with(&bot)?;
    assert_eq!(
        list.status,
        200,
        "{} (authsvc log {})",
        list.text(),
        authsvc.log().display()
    );
    for tool in list.result()?["tools"].as_array().unwrap() {
        assert_eq!(env_enum(tool), ["Staging"], "{tool:#}");
    }
    let result = gw
        .call_with(&bot, "search_logs", search("Staging"))?
        .result()?;
    assert!(result_text(&result).starts_with("[Staging]"), "{result:#}");
    let denied = gw
        .call_with(&bot, "search_logs", search("Prod"))?
        .result()?;
    assert!(is_error(&denied), "{denied:#}");
    assert_eq!(prod.records()?.len(), 0);
    assert_eq!(staging.records()?.len(), 1);
    drop(gw);
    drop(authsvc);
    Ok(())
}

/// A bot token good for 30 days, its `jti`.
fn bot_token(issuer: &Issuer) -> anyhow::Result<(String, String)> {
    let mut claims = issuer.claims("ci-bot", &["admin"]);
    claims["kind"] = json!("bot");
    claims["exp"] = json!(claims["iat"].as_u64().unwrap() + 30 * 86_400);
    let jti = claims["jti"].as_str().unwrap().to_owned();
    Ok((issuer.sign(&claims)?, jti))
}

/// Issue 9, finding 5: a new Envoy has no revocation list. Until it has fetched one it
/// serves nothing on the MCP path (503, and `/readyz` says not ready), so a revoked token
/// never works again after a restart.
#[test]
fn a_revoked_token_is_refused_right_after_an_envoy_start() -> anyhow::Result<()> {
    use tests::{Backend, Gateway};
    let issuer = Issuer::new(tests::auth::BASE_URL)?;
    let authsvc = tests::auth::FakeAuthsvc::start(&issuer)?;
    let (bot, jti) = bot_token(&issuer)?;
    let other = issuer.token("bob", &["admin"])?;
    authsvc.revoke(&jti);
    // authsvc cannot give the list yet.
    authsvc.fail_revocations(true);
    let staging = Backend::demo("Staging").record().start()?;
    let config = Gateway::builder()
        .env("Staging", &staging)
        .auth(&authsvc.url(), tests::fixtures::test_roles());
    let gw = Gateway::start_unready(tests::gateway::discover(&config)?, true)?;

    for token in [&bot, &other] {
        let resp = gw.call_with(token, "search_logs", search("Staging"))?;
        assert_eq!(
            resp.status,
            503,
            "served without a revocation list: {}",
            resp.text()
        );
        assert!(resp.text().contains("revocation list"), "{}", resp.text());
    }
    let ready = http::client()?
        .get(format!("http://127.0.0.1:{}/readyz", gw.port()))
        .send()?;
    assert_eq!(ready.status(), 503, "ready without a revocation list");
    assert_eq!(staging.records()?.len(), 0, "a call was forwarded");

    authsvc.fail_revocations(false);
    let deadline = Instant::now() + Duration::from_secs(15);
    let refused = loop {
        let resp = gw.call_with(&bot, "search_logs", search("Staging"))?;
        if resp.status != 503 {
            break resp;
        }
        assert!(Instant::now() < deadline, "still 503: {}", resp.text());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_challenged("revoked after a start", &refused);
    let result = gw
        .call_with(&other, "search_logs", search("Staging"))?
        .result()?;
    assert!(!is_error(&result), "{result:#}");
    assert_eq!(staging.records()?.len(), 1, "only the valid call arrives");
    Ok(())
}

/// Issue 9, finding 5: `auth.revocation_max_age_seconds` fails closed: while authsvc does
/// not answer and the list grows older than that, every MCP request gets a 503 saying why;
/// when authsvc answers again, calls work again.
#[test]
fn a_stale_revocation_list_fails_closed_when_configured() -> anyhow::Result<()> {
    use tests::{Backend, Gateway};
    let issuer = Issuer::new(tests::auth::BASE_URL)?;
    let authsvc = tests::auth::FakeAuthsvc::start(&issuer)?;
    let token = issuer.token("bob", &["admin"])?;
    let staging = Backend::demo("Staging").record().start()?;
    let gw = Gateway::builder()
        .env("Staging", &staging)
        .auth(&authsvc.url(), tests::fixtures::test_roles())
        .revocation_max_age(2)
        .start()?;
    let result = gw
        .call_with(&token, "search_logs", search("Staging"))?
        .result()?;
    assert!(!is_error(&result), "{result:#}");

    authsvc.fail_revocations(true);
    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let resp = gw.call_with(&token, "search_logs", search("Staging"))?;
        if resp.status == 503 {
            break resp;
        }
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert!(Instant::now() < deadline, "never failed closed");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(refused.text().contains("s old"), "{}", refused.text());
    let forwarded = staging.records()?.len();
    let again = gw.call_with(&token, "search_logs", search("Staging"))?;
    assert_eq!(again.status, 503, "{}", again.text());
    assert_eq!(
        staging.records()?.len(),
        forwarded,
        "forwarded while closed"
    );

    authsvc.fail_revocations(false);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = gw.call_with(&token, "search_logs", search("Staging"))?;
        if resp.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never reopened: {}", resp.text());
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}
