#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;

#[tokio::test]
async fn metadata_documents() {
    let r = router();
    let mut b = Browser::default();
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let a = b.get(&r, path).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        let m = a.json();
        assert_eq!(m["resource"], AUD);
        assert_eq!(m["authorization_servers"], json!([BASE]));
        assert_eq!(m["bearer_methods_supported"], json!(["header"]));
    }
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let m = b.get(&r, path).await.json();
        assert_eq!(m["issuer"], BASE);
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(m["client_id_metadata_document_supported"], true);
        assert_eq!(m["registration_endpoint"], format!("{BASE}/register"));
        assert_eq!(m["authorization_endpoint"], format!("{BASE}/auth/login"));
        assert_eq!(m["token_endpoint"], format!("{BASE}/auth/token"));
        assert_eq!(m["jwks_uri"], format!("{BASE}/.well-known/jwks.json"));
    }
    let jwks = b.get(&r, "/.well-known/jwks.json").await.json();
    assert_eq!(jwks["keys"][0]["kid"], keyring().current.kid);
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "no private parts in the JWKS"
    );
}

#[tokio::test]
async fn registration_checks_redirect_uris() {
    let r = router();
    let mut b = Browser::default();
    for (body, status, error) in [
        (
            json!({"redirect_uris": ["https://app.example.com/cb"]}),
            StatusCode::CREATED,
            None,
        ),
        (
            json!({"redirect_uris": ["http://app.example.com/cb"]}),
            StatusCode::BAD_REQUEST,
            Some("invalid_redirect_uri"),
        ),
        (
            json!({"redirect_uris": ["https://app.example.com/cb#x"]}),
            StatusCode::BAD_REQUEST,
            Some("invalid_redirect_uri"),
        ),
        (
            json!({"client_name": "x"}),
            StatusCode::BAD_REQUEST,
            Some("invalid_redirect_uri"),
        ),
        (
            json!({"redirect_uris": [CLIENT_CB], "token_endpoint_auth_method": "private_key_jwt"}),
            StatusCode::BAD_REQUEST,
            Some("invalid_client_metadata"),
        ),
        (
            json!({"redirect_uris": [CLIENT_CB], "grant_types": ["client_credentials"]}),
            StatusCode::BAD_REQUEST,
            Some("invalid_client_metadata"),
        ),
    ] {
        let a = b.post_json(&r, "/register", &body).await;
        assert_eq!(a.status, status, "{body}: {}", a.body);
        match error {
            Some(e) => assert_eq!(a.json()["error"], e),
            None => {
                assert!(a.json()["client_id"].is_string());
                assert!(
                    a.json()["client_secret"].is_string(),
                    "default method is client_secret_basic"
                );
            }
        }
    }
}

#[tokio::test]
async fn full_flow_issues_an_audience_bound_user_token() {
    let r = router();
    let mut b = Browser::default();
    let a = full_flow(&mut b, std::slice::from_ref(&r), "alice").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.headers["cache-control"], "no-store");
    let t = a.json();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3600);
    let c = claims_of(t["access_token"].as_str().unwrap());
    assert_eq!(c["iss"], BASE);
    assert_eq!(c["aud"], AUD);
    assert_eq!(c["sub"], "dev:alice");
    assert_eq!(c["name"], "alice");
    assert_eq!(c["kind"], "user");
    assert_eq!(c["roles"], json!(["admin", "ops"]));
    assert_eq!(
        c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(),
        3600
    );
    assert!(c["jti"].is_string());
}

#[tokio::test]
async fn pkce_is_required_and_codes_are_single_use() {
    let r = router();
    let mut b = Browser::default();
    let client_id = register(&mut b, &r).await;
    // No challenge, or `plain`: refused with invalid_request, on a page (the user has not
    // approved this client yet, so it is not sent there: RFC 9700 §4.11.2).
    let base = authorize_url(&client_id);
    let no_pkce = base.replace(&format!("code_challenge={}", challenge(VERIFIER)), "");
    let plain = base.replace("code_challenge_method=S256", "code_challenge_method=plain");
    for url in [no_pkce, plain] {
        let a = b.get(&r, &url).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
        assert!(a.headers.get("location").is_none());
        assert!(a.body.contains("invalid_request"), "{}", a.body);
    }
    let code_for = |b: &mut Browser| {
        let (r, client_id) = (r.clone(), client_id.clone());
        let mut b = b.clone();
        async move {
            let a = login_steps(&mut b, std::slice::from_ref(&r), &client_id, "bob").await;
            let a = if a.status == StatusCode::OK {
                let (id, csrf) = (a.hidden("id"), a.hidden("csrf"));
                b.post_form(
                    &r,
                    "/auth/consent",
                    &[("id", &id), ("csrf", &csrf), ("decision", "approve")],
                )
                .await
            } else {
                a
            };
            a.param("code").unwrap()
        }
    };
    let exchange = |code: String, verifier: &'static str| {
        let (r, client_id) = (r.clone(), client_id.clone());
        async move {
            Browser::default()
                .post_form(
                    &r,
                    "/auth/token",
                    &[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", CLIENT_CB),
                        ("client_id", &client_id),
                        ("code_verifier", verifier),
                    ],
                )
                .await
        }
    };
    let wrong = "x".repeat(50);
    let wrong: &'static str = Box::leak(wrong.into_boxed_str());
    // Wrong verifier: refused (and the code is spent).
    let code = code_for(&mut b).await;
    let a = exchange(code.clone(), wrong).await;
    assert_eq!(
        (a.status, a.json()["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(
        exchange(code, VERIFIER).await.json()["error"],
        "invalid_grant"
    );
    // Right verifier works once; the same code again is refused.
    let code = code_for(&mut b).await;
    assert_eq!(
        exchange(code.clone(), VERIFIER).await.status,
        StatusCode::OK
    );
    let again = exchange(code, VERIFIER).await;
    assert_eq!(
        (again.status, again.json()["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn refresh_tokens_rotate() {
    let r = router();
    let mut b = Browser::default();
    let (a, client) = full_flow_with_client(&mut b, std::slice::from_ref(&r), "bob").await;
    let rt1 = a.json()["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |rt: String, client: String| {
        let r = r.clone();
        async move {
            Browser::default()
                .post_form(
                    &r,
                    "/auth/token",
                    &[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", &rt),
                        ("client_id", &client),
                    ],
                )
                .await
        }
    };
    let a = refresh(rt1.clone(), client.clone()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let rt2 = a.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2);
    assert_eq!(
        claims_of(a.json()["access_token"].as_str().unwrap())["sub"],
        "dev:bob"
    );
    // The old one is spent.
    let reuse = refresh(rt1, client.clone()).await;
    assert_eq!(
        (reuse.status, reuse.json()["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // Bound to its client: another client's attempt is refused.
    let other = register(&mut b, &r).await;
    assert_eq!(refresh(rt2, other).await.json()["error"], "invalid_grant");
    assert_eq!(
        refresh("made-up".into(), client).await.json()["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_its_family() {
    reuse_revokes_the_family(&[router()]).await;
}

#[tokio::test]
async fn consent_is_csrf_protected_single_use_and_remembered() {
    let r = router();
    let mut b = Browser::default();
    let client_id = register(&mut b, &r).await;
    let page = login_steps(&mut b, std::slice::from_ref(&r), &client_id, "alice").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Test Client") && page.body.contains(CLIENT_CB));
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    // The answer is a redirect to the client, and browsers hold the redirects after a form's
    // POST to form-action: the client's origin is allowed there, nothing else.
    let origin = url::Url::parse(CLIENT_CB)
        .unwrap()
        .origin()
        .ascii_serialization();
    assert!(
        csp.contains(&format!("form-action 'self' {origin};")),
        "{csp}"
    );
    assert_eq!(page.headers["x-frame-options"], "DENY");
    let (id, csrf) = (page.hidden("id"), page.hidden("csrf"));
    // Wrong CSRF value: refused, and the pending consent is gone.
    let a = b
        .post_form(
            &r,
            "/auth/consent",
            &[("id", &id), ("csrf", "forged"), ("decision", "approve")],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = b
        .post_form(
            &r,
            "/auth/consent",
            &[("id", &id), ("csrf", &csrf), ("decision", "approve")],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "single use");
    // Right form values but no cookie (a cross-site post): refused.
    let page = login_steps(&mut b, std::slice::from_ref(&r), &client_id, "alice").await;
    let mut stranger = Browser::default();
    let a = stranger
        .post_form(
            &r,
            "/auth/consent",
            &[
                ("id", &page.hidden("id")),
                ("csrf", &page.hidden("csrf")),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // Deny: access_denied to the client.
    let page = login_steps(&mut b, std::slice::from_ref(&r), &client_id, "alice").await;
    let a = b
        .post_form(
            &r,
            "/auth/consent",
            &[
                ("id", &page.hidden("id")),
                ("csrf", &page.hidden("csrf")),
                ("decision", "deny"),
            ],
        )
        .await;
    assert_eq!(a.param("error").as_deref(), Some("access_denied"));
    // Approve once; the next login for this user and client skips the page.
    let page = login_steps(&mut b, std::slice::from_ref(&r), &client_id, "alice").await;
    let a = b
        .post_form(
            &r,
            "/auth/consent",
            &[
                ("id", &page.hidden("id")),
                ("csrf", &page.hidden("csrf")),
                ("decision", "approve"),
            ],
        )
        .await;
    assert!(a.param("code").is_some());
    let a = login_steps(&mut b, std::slice::from_ref(&r), &client_id, "alice").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(a.param("code").is_some());
    // Another user still gets asked.
    let a = login_steps(&mut b, std::slice::from_ref(&r), &client_id, "bob").await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn authorize_refuses_before_redirecting_anywhere_untrusted() {
    let r = router();
    let mut b = Browser::default();
    let client_id = register(&mut b, &r).await;
    let unregistered = authorize_url(&client_id).replace("5555", "6666");
    let a = b.get(&r, &unregistered).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.headers.get("location").is_none());
    let a = b.get(&r, &authorize_url("no-such-client")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let wrong_resource = authorize_url(&client_id).replace("10000%2Fmcp", "10000%2Fother");
    let a = b.get(&r, &wrong_resource).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.headers.get("location").is_none());
    assert!(a.body.contains("invalid_target"), "{}", a.body);
    // A state is single use: replaying the dev login fails.
    let a = b.get(&r, &authorize_url(&client_id)).await;
    let state = a.param("state").unwrap();
    let a = b
        .post_form(
            &r,
            "/auth/dev/login",
            &[("state", &state), ("user", "alice")],
        )
        .await;
    let cb = a.location();
    assert_eq!(b.get(&r, &cb).await.status, StatusCode::OK);
    assert_eq!(b.get(&r, &cb).await.status, StatusCode::BAD_REQUEST);
    // The dev login refuses roles the user does not hold.
    let a = b.get(&r, &authorize_url(&client_id)).await;
    let state = a.param("state").unwrap();
    let a = b
        .post_form(
            &r,
            "/auth/dev/login",
            &[("state", &state), ("user", "bob"), ("role", "admin")],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn dev_idp_is_loopback_only() {
    let s = settings();
    assert!(s.check_listen("127.0.0.1:8090".parse().unwrap()).is_ok());
    assert!(s.check_listen("0.0.0.0:8090".parse().unwrap()).is_err());
    let remote = settings_for("https://gw.example.com");
    assert!(
        remote
            .check_listen("127.0.0.1:8090".parse().unwrap())
            .is_err()
    );
}
