//! Issue 9 (security hardening), authsvc's part, through the router: no redirect before
//! consent, bounded and rate-limited registration that expires unused, login state bound to
//! the browser, refresh families that end, revocable user tokens, authenticated internal
//! endpoints.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::time::Duration;

use authsvc::oauth::token::RefreshGrant;
use authsvc::store::{Db, ns};
use authsvc::tokens::digest;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use serde_json::json;

const EVIL_CB: &str = "https://evil.example/landing";

fn invalid_grant(a: &Answer) {
    assert_eq!(
        (a.status, a.json()["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{}",
        a.body
    );
}

/// RFC 9700 §4.11.2: anyone can register a client whose redirect URI is theirs; before the
/// user signed in and approved it, an error is a page, never a redirect there.
#[tokio::test]
async fn authorize_errors_before_consent_are_pages_not_redirects() {
    let r = router();
    let mut b = Browser::default();
    let a = b
        .post_json(
            &r,
            "/register",
            &json!({"redirect_uris": [EVIL_CB], "token_endpoint_auth_method": "none"}),
        )
        .await;
    let client_id = a.json()["client_id"].as_str().unwrap().to_owned();
    let url = |pairs: &[(&str, &str)]| {
        let mut all = vec![("client_id", client_id.as_str()), ("redirect_uri", EVIL_CB)];
        all.extend_from_slice(pairs);
        url::Url::parse_with_params(&format!("{BASE}/auth/login"), &all)
            .unwrap()
            .to_string()
    };
    let ch = challenge(VERIFIER);
    for (case, query) in [
        ("no response_type", url(&[])),
        ("response_type token", url(&[("response_type", "token")])),
        ("no PKCE", url(&[("response_type", "code")])),
        (
            "plain PKCE",
            url(&[
                ("response_type", "code"),
                ("code_challenge", &ch),
                ("code_challenge_method", "plain"),
            ]),
        ),
        (
            "another resource",
            url(&[
                ("response_type", "code"),
                ("code_challenge", &ch),
                ("code_challenge_method", "S256"),
                ("resource", "https://elsewhere.example/mcp"),
            ]),
        ),
    ] {
        let a = b.get(&r, &query).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{case}: {}", a.body);
        assert!(a.headers.get(header::LOCATION).is_none(), "{case}");
        assert!(
            a.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{case}"
        );
        assert!(a.body.contains("not approved"), "{case}: {}", a.body);
    }
    // A valid request still goes to the IdP (the dev page), not to the client.
    let a = b
        .get(
            &r,
            &url(&[
                ("response_type", "code"),
                ("code_challenge", &ch),
                ("code_challenge_method", "S256"),
            ]),
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(a.location().contains("/auth/dev/login"), "{}", a.location());
}

#[tokio::test]
async fn registration_fields_and_body_are_bounded() {
    let r = router();
    let mut b = Browser::default();
    let huge = "A".repeat(1_900_000);
    let a = b
        .post_json(
            &r,
            "/register",
            &json!({"redirect_uris": [CLIENT_CB], "client_name": huge}),
        )
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.body);
    assert_eq!(a.json()["error"], "invalid_client_metadata");
    let many: Vec<String> = (0..11)
        .map(|i| format!("http://127.0.0.1:{}/cb", 5000 + i))
        .collect();
    let long_uri = format!("https://app.example/{}", "x".repeat(2000));
    for body in [
        json!({"redirect_uris": [CLIENT_CB], "client_name": "n".repeat(201)}),
        json!({"redirect_uris": [CLIENT_CB], "client_name": "line\nbreak"}),
        json!({"redirect_uris": many}),
        json!({"redirect_uris": [long_uri]}),
    ] {
        let a = b.post_json(&r, "/register", &body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
        assert_eq!(a.json()["error"], "invalid_client_metadata", "{}", a.body);
    }
    // At the limits: accepted.
    let a = b
        .post_json(
            &r,
            "/register",
            &json!({"redirect_uris": many[..10], "client_name": "ü".repeat(200)}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
}

fn register_from(source: &str) -> Request<Body> {
    Request::post("/register")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-forwarded-for", source)
        .body(Body::from(
            json!({"redirect_uris": [CLIENT_CB]}).to_string(),
        ))
        .unwrap()
}

#[tokio::test]
async fn registration_is_rate_limited_per_source_address() {
    let mut s = settings();
    s.registrations_per_hour = 3;
    let r = router_with(s, Db::memory());
    let mut b = Browser::default();
    for _ in 0..3 {
        let a = b.send(&r, register_from("198.51.100.7")).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    }
    let a = b.send(&r, register_from("198.51.100.7")).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
    assert!(a.headers.contains_key(header::RETRY_AFTER));
    assert!(a.body.contains("at most 3 per hour"), "{}", a.body);
    // Another address is not affected.
    let a = b.send(&r, register_from("198.51.100.8")).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
}

/// A registration nobody uses expires; one whose tokens are refreshed is renewed.
#[tokio::test]
async fn registrations_expire_unless_used() {
    let mut s = settings();
    s.registration_ttl = Duration::from_millis(1500);
    let r = router_with(s, Db::memory());
    let mut b = Browser::default();
    let (a, used) = full_flow_with_client(&mut b, std::slice::from_ref(&r), "bob").await;
    let mut refresh_token = a.json()["refresh_token"].as_str().unwrap().to_owned();
    let unused = register(&mut b, &r).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let a = refresh(&r, &refresh_token, &used).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        refresh_token = a.json()["refresh_token"].as_str().unwrap().to_owned();
    }
    let a = b.get(&r, &authorize_url(&unused)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(a.body.contains("Unknown client"), "{}", a.body);
    let a = b.get(&r, &authorize_url(&used)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
}

/// Login CSRF: the answer to a sign-in started in one browser is refused in another.
#[tokio::test]
async fn login_state_is_bound_to_the_browser_that_started_it() {
    let r = router();
    let mut attacker = Browser::default();
    let client_id = register(&mut attacker, &r).await;
    let a = attacker.get(&r, &authorize_url(&client_id)).await;
    let state = a.param("state").unwrap();
    let a = attacker
        .post_form(
            &r,
            "/auth/dev/login",
            &[("state", &state), ("user", "alice")],
        )
        .await;
    let callback = a.location();
    // The attacker sends the victim to their callback URL: refused, nobody signed in.
    let mut victim = Browser::default();
    let a = victim.get(&r, &callback).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(
        a.body.contains("did not come back to the browser"),
        "{}",
        a.body
    );
    assert!(!a.body.contains("csrf"), "no consent page: {}", a.body);
    // A victim with a login cookie of their own is refused too.
    let mut victim = Browser::default();
    victim.get(&r, &authorize_url(&client_id)).await;
    let a = attacker.get(&r, &authorize_url(&client_id)).await;
    let state = a.param("state").unwrap();
    let a = attacker
        .post_form(
            &r,
            "/auth/dev/login",
            &[("state", &state), ("user", "alice")],
        )
        .await;
    assert_eq!(
        victim.get(&r, &a.location()).await.status,
        StatusCode::BAD_REQUEST
    );
    // The browser that started a sign-in completes it (two in parallel share the cookie).
    let mut b = Browser::default();
    let first = b
        .get(&r, &authorize_url(&client_id))
        .await
        .param("state")
        .unwrap();
    let a = login_steps(&mut b, std::slice::from_ref(&r), &client_id, "bob").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = b
        .post_form(&r, "/auth/dev/login", &[("state", &first), ("user", "bob")])
        .await;
    assert_eq!(b.get(&r, &a.location()).await.status, StatusCode::OK);
}

async fn grant_of(db: &Db, refresh_token: &str) -> RefreshGrant {
    db.get(ns::REFRESH, &digest(refresh_token))
        .await
        .unwrap()
        .unwrap()
}

/// A family ends its lifetime after the sign-in, however often it was refreshed; its start
/// is carried through every rotation.
#[tokio::test]
async fn refresh_families_end_after_their_lifetime() {
    let db = Db::memory();
    let r = router_with(settings(), db.clone());
    let (a, client) =
        full_flow_with_client(&mut Browser::default(), std::slice::from_ref(&r), "bob").await;
    let rt = a.json()["refresh_token"].as_str().unwrap().to_owned();
    let started = grant_of(&db, &rt).await.family_started;
    assert!(started > 0);
    let a = refresh(&r, &rt, &client).await;
    let rt = a.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(grant_of(&db, &rt).await.family_started, started);
    // Age the family past the default 30 days: the next refresh is refused.
    let mut grant = grant_of(&db, &rt).await;
    grant.family_started = started - 30 * 86400;
    db.put(ns::REFRESH, &digest(&rt), &grant, None)
        .await
        .unwrap();
    let a = refresh(&r, &rt, &client).await;
    invalid_grant(&a);
    assert!(a.body.contains("sign in again"), "{}", a.body);
    // A configured shorter lifetime caps the refresh token's own TTL.
    let mut s = settings();
    s.refresh_family_lifetime = Duration::from_secs(1);
    let r = router_with(s, Db::memory());
    let (a, client) =
        full_flow_with_client(&mut Browser::default(), std::slice::from_ref(&r), "bob").await;
    let rt = a.json()["refresh_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    invalid_grant(&refresh(&r, &rt, &client).await);
}

/// With the dev IdP, a refresh re-reads the user's roles: a user removed from the config
/// loses the family, a role removed is gone from the next token.
#[tokio::test]
async fn refresh_re_evaluates_dev_roles() {
    let db = Db::memory();
    let before = router_with(settings(), db.clone());
    let mut narrowed = settings();
    if let authsvc::config::IdpSettings::Dev { users } = &mut narrowed.idp {
        users.remove("bob");
        users.insert("alice".into(), vec!["ops".into()]);
    }
    let after = router_with(narrowed, db);
    let (a, bob_client) = full_flow_with_client(
        &mut Browser::default(),
        std::slice::from_ref(&before),
        "bob",
    )
    .await;
    let bob_rt = a.json()["refresh_token"].as_str().unwrap().to_owned();
    let (a, alice_client) = full_flow_with_client(
        &mut Browser::default(),
        std::slice::from_ref(&before),
        "alice",
    )
    .await;
    assert_eq!(
        claims_of(a.json()["access_token"].as_str().unwrap())["roles"],
        json!(["admin", "ops"])
    );
    let alice_rt = a.json()["refresh_token"].as_str().unwrap().to_owned();
    invalid_grant(&refresh(&after, &bob_rt, &bob_client).await);
    let a = refresh(&after, &alice_rt, &alice_client).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        claims_of(a.json()["access_token"].as_str().unwrap())["roles"],
        json!(["ops"])
    );
}

async fn revoked_list(r: &axum::Router) -> Vec<String> {
    let a = Browser::default().get(r, "/internal/revocations").await;
    serde_json::from_value(a.json()["revoked"].clone()).unwrap()
}

fn signed_post(path: &str, body: &serde_json::Value, auth: Option<String>) -> Request<Body> {
    let mut req = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(auth) = auth {
        req = req.header(header::AUTHORIZATION, auth);
    }
    req.body(Body::from(body.to_string())).unwrap()
}

/// User access tokens are revocable like bot tokens: by jti, or every token of a subject
/// (its refresh families end too), through the list the filter polls.
#[tokio::test]
async fn user_tokens_are_revocable_by_jti_and_by_subject() {
    let s = settings();
    let r = router_with(s.clone(), Db::memory());
    let keys = keyring();
    let revoke = |body: serde_json::Value| {
        let bytes = body.to_string();
        let auth = authsvc::internal::sign(&s, &keys, bytes.as_bytes()).unwrap();
        signed_post("/internal/revoke", &body, Some(auth))
    };
    let mut b = Browser::default();
    let (a, client) = full_flow_with_client(&mut b, std::slice::from_ref(&r), "bob").await;
    let first = claims_of(a.json()["access_token"].as_str().unwrap());
    let bob_rt = a.json()["refresh_token"].as_str().unwrap().to_owned();
    let (a, _) =
        full_flow_with_client(&mut Browser::default(), std::slice::from_ref(&r), "bob").await;
    let second = claims_of(a.json()["access_token"].as_str().unwrap());
    let (a, alice_client) =
        full_flow_with_client(&mut Browser::default(), std::slice::from_ref(&r), "alice").await;
    let alice = claims_of(a.json()["access_token"].as_str().unwrap());
    let alice_rt = a.json()["refresh_token"].as_str().unwrap().to_owned();

    // By jti: that token only.
    let a = b.send(&r, revoke(json!({"jti": first["jti"]}))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(revoked_list(&r).await, vec![first["jti"].as_str().unwrap()]);

    // By subject: every live token of bob, and his refresh tokens; alice untouched.
    let a = b.send(&r, revoke(json!({"subject": "dev:bob"}))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["refresh_families_ended"], true);
    let listed = revoked_list(&r).await;
    for jti in [&first["jti"], &second["jti"]] {
        assert!(
            listed.contains(&jti.as_str().unwrap().to_owned()),
            "{listed:?}"
        );
    }
    assert!(!listed.contains(&alice["jti"].as_str().unwrap().to_owned()));
    invalid_grant(&refresh(&r, &bob_rt, &client).await);
    assert_eq!(
        refresh(&r, &alice_rt, &alice_client).await.status,
        StatusCode::OK
    );
    // Bob signs in again afterwards (a later second): that new family works.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (a, client) =
        full_flow_with_client(&mut Browser::default(), std::slice::from_ref(&r), "bob").await;
    let rt = a.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(refresh(&r, &rt, &client).await.status, StatusCode::OK);
}

/// `/internal/minted` and `/internal/revoke` need an assertion signed with the signing key
/// for exactly that body; an access token signed by the same key is not one.
#[tokio::test]
async fn internal_endpoints_need_a_signed_assertion() {
    let s = settings();
    let r = router_with(s.clone(), Db::memory());
    let keys = keyring();
    let mut b = Browser::default();
    let (a, _) = full_flow_with_client(&mut b, std::slice::from_ref(&r), "alice").await;
    let access = a.json()["access_token"].as_str().unwrap().to_owned();
    let bot = authsvc::tokens::Claims::new(
        &s,
        &authsvc::tokens::Identity {
            sub: "bot:ci".into(),
            name: "ci".into(),
            roles: vec!["ops".into()],
            upstream_refresh: None,
            email: None,
            listed_roles: Vec::new(),
        },
        authsvc::tokens::Kind::Bot,
        Duration::from_secs(3600),
    );
    let minted = json!({"token": bot.sign(&keys).unwrap()});
    let other = json!({"jti": "someone-elses"});
    let other_sig = authsvc::internal::sign(&s, &keys, other.to_string().as_bytes()).unwrap();
    for (case, auth) in [
        ("no assertion", None),
        ("a user access token", Some(format!("Bearer {access}"))),
        ("an assertion for another body", Some(other_sig)),
        ("garbage", Some("Bearer a.b.c".to_owned())),
    ] {
        for path in ["/internal/minted", "/internal/revoke"] {
            let body = if path == "/internal/minted" {
                &minted
            } else {
                &other
            };
            let auth = if case == "an assertion for another body" && path == "/internal/revoke" {
                None
            } else {
                auth.clone()
            };
            let a = b.send(&r, signed_post(path, body, auth)).await;
            assert_eq!(
                a.status,
                StatusCode::UNAUTHORIZED,
                "{case} {path}: {}",
                a.body
            );
        }
    }
    assert!(revoked_list(&r).await.is_empty());
    let auth = authsvc::internal::sign(&s, &keys, minted.to_string().as_bytes()).unwrap();
    let a = b
        .send(&r, signed_post("/internal/minted", &minted, Some(auth)))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["recorded"], bot.jti);
}
