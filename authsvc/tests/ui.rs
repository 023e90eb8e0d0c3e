#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use authsvc::store::Db;
use axum::Router;
use axum::http::StatusCode;
use common::*;
use serde_json::json;

async fn ui_login(b: &mut Browser, r: &Router, user: &str) -> Answer {
    let a = b.get(r, "/ui/login").await;
    let state = a.param("state").unwrap();
    let a = b
        .post_form(r, "/auth/dev/login", &[("state", &state), ("user", user)])
        .await;
    assert!(a.location().contains("/ui/callback"));
    let a = b.get(r, &a.location()).await;
    assert_eq!(a.location(), "/ui/tokens");
    b.get(r, "/ui/tokens").await
}

fn token_on(page: &str) -> String {
    let start = page.find(r#"<code class="token">"#).unwrap() + r#"<code class="token">"#.len();
    page[start..].split('<').next().unwrap().to_owned()
}

#[tokio::test]
async fn minting_rules_revocation_and_listing() {
    let r = router();
    let mut alice = Browser::default();
    assert_eq!(alice.get(&r, "/ui/tokens").await.location(), "/ui/login");
    let page = ui_login(&mut alice, &r, "alice").await;
    assert!(
        alice.cookies.contains_key("meshmux_ui"),
        "plain-http loopback cookie name"
    );
    assert!(page.body.contains("Mint a bot token"));
    let csrf = page.hidden("csrf");
    let mint = |b: &mut Browser, csrf: &str, roles: &[&str], days: &str| {
        let mut form = vec![
            ("csrf".to_owned(), csrf.to_owned()),
            ("name".into(), "ci deploy".into()),
            ("days".into(), days.into()),
        ];
        form.extend(roles.iter().map(|r| ("role".to_owned(), (*r).to_owned())));
        let (r, mut b2) = (r.clone(), b.clone());
        async move {
            let pairs: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            b2.post_form(&r, "/ui/tokens", &pairs).await
        }
    };
    for (roles, days, status, says) in [
        (
            vec!["viewer"],
            "30",
            StatusCode::BAD_REQUEST,
            "You do not hold the role",
        ),
        (
            vec!["ops", "nope"],
            "30",
            StatusCode::BAD_REQUEST,
            "not a configured role",
        ),
        (vec!["ops"], "91", StatusCode::BAD_REQUEST, "1 to 90 days"),
        (vec![], "30", StatusCode::BAD_REQUEST, "at least one role"),
    ] {
        let a = mint(&mut alice, &csrf, &roles, days).await;
        assert_eq!(a.status, status, "{roles:?} {days}");
        assert!(a.body.contains(says), "{says}: {}", a.body);
    }
    let a = mint(&mut alice, "forged", &["ops"], "30").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    let a = mint(&mut alice, &csrf, &["ops"], "90").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let token = token_on(&a.body);
    let c = claims_of(&token);
    assert_eq!(
        (c["kind"].as_str(), c["name"].as_str(), c["aud"].as_str()),
        (Some("bot"), Some("ci deploy"), Some(AUD))
    );
    assert_eq!(c["roles"], json!(["ops"]));
    assert_eq!(
        c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(),
        90 * 86400
    );
    // Shown once: the list does not carry it.
    let list = alice.get(&r, "/ui/tokens").await;
    assert!(list.body.contains("ci deploy") && !list.body.contains(&token));

    // Bob holds no minting role.
    let mut bob = Browser::default();
    let page = ui_login(&mut bob, &r, "bob").await;
    assert!(page.body.contains("do not allow minting"));
    let a = mint(&mut bob, &page.hidden("csrf"), &["ops"], "30").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(
        !a.body.contains("ci deploy"),
        "bob does not see alice's tokens"
    );
    // Nor can he revoke hers.
    let jti = c["jti"].as_str().unwrap();
    let a = bob
        .post_form(
            &r,
            "/ui/tokens/revoke",
            &[("csrf", &page.hidden("csrf")), ("jti", jti)],
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(
        alice.get(&r, "/internal/revocations").await.json(),
        json!({"revoked": []})
    );

    let a = alice
        .post_form(&r, "/ui/tokens/revoke", &[("csrf", &csrf), ("jti", jti)])
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("revoked"));
    assert_eq!(
        alice.get(&r, "/internal/revocations").await.json(),
        json!({"revoked": [jti]})
    );

    let a = alice.post_form(&r, "/ui/logout", &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(alice.get(&r, "/ui/tokens").await.location(), "/ui/login");
    let metrics = alice.get(&r, "/metrics").await.body;
    assert!(
        metrics.contains("authsvc_tokens_minted_total{kind=\"bot\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("authsvc_tokens_revoked_total"));
    assert!(metrics.contains("authsvc_request_duration_seconds_bucket{route=\"/ui/tokens\""));
}

#[tokio::test]
async fn https_sessions_use_a_host_prefixed_secure_cookie() {
    let r = router_with(settings_for("https://127.0.0.1:10443"), Db::memory());
    let mut b = Browser::default();
    let a = b.get(&r, "/ui/login").await;
    let state = a.param("state").unwrap();
    let a = b
        .post_form(
            &r,
            "/auth/dev/login",
            &[("state", &state), ("user", "alice")],
        )
        .await;
    let a = b.get(&r, &a.location()).await;
    let cookie = a.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-meshmux_ui="), "{cookie}");
    for part in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(part), "{part} in {cookie}");
    }
}

#[tokio::test]
async fn cli_minted_tokens_are_recorded_only_when_signed_by_our_key() {
    let app = app_with(settings(), Db::memory());
    let r = authsvc::router(app.clone());
    let req = authsvc::mint::MintRequest {
        name: "ci".into(),
        roles: vec!["ops".into()],
        days: 3,
    };
    assert!(authsvc::mint::check(&app.settings, None, &req).is_ok());
    let who = authsvc::tokens::Identity {
        sub: "bot:ci".into(),
        name: "ci".into(),
        roles: vec!["ops".into()],
        upstream_refresh: None,
        email: None,
        listed_roles: Vec::new(),
    };
    let claims = authsvc::tokens::Claims::new(
        &app.settings,
        &who,
        authsvc::tokens::Kind::Bot,
        std::time::Duration::from_secs(3 * 86400),
    );
    let token = claims.sign(&app.keys).unwrap();
    let mut b = Browser::default();
    // Recording needs an assertion signed with the key (`internal::sign`), for that body.
    let record = |token: &str| {
        let body = json!({"token": token}).to_string();
        let auth = authsvc::internal::sign(&app.settings, &app.keys, body.as_bytes()).unwrap();
        axum::http::Request::post("/internal/minted")
            .header("content-type", "application/json")
            .header("authorization", auth)
            .body(axum::body::Body::from(body))
            .unwrap()
    };
    assert_eq!(
        b.post_json(&r, "/internal/minted", &json!({"token": token}))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(b.send(&r, record(&token)).await.status, StatusCode::OK);
    let other = authsvc::keys::KeyRing {
        current: authsvc::keys::SigningKey::generate().unwrap(),
        previous: None,
    };
    let forged = claims.sign(&other).unwrap();
    assert_eq!(
        b.send(&r, record(&forged)).await.status,
        StatusCode::BAD_REQUEST
    );
    // Alice (a minter) sees and can revoke the CLI token.
    let page = ui_login(&mut b, &r, "alice").await;
    assert!(page.body.contains("command line"));
    let a = b
        .post_form(
            &r,
            "/ui/tokens/revoke",
            &[("csrf", &page.hidden("csrf")), ("jti", &claims.jti)],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        b.get(&r, "/internal/revocations").await.json()["revoked"],
        json!([claims.jti])
    );
    // Recording it again does not bring it back: the record stays revoked.
    assert_eq!(b.send(&r, record(&token)).await.status, StatusCode::OK);
    let page = b.get(&r, "/ui/tokens").await;
    assert!(page.body.contains("state-revoked"), "{}", page.body);
}
