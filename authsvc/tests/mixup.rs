//! RFC 9207 mix-up protection on `/auth/callback` and `/ui/callback`: a stand-in OIDC
//! provider on loopback (discovery, JWKS, token endpoint) that does or does not advertise
//! `authorization_response_iss_parameter_supported`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use authsvc::config::{IdpSettings, OidcSettings};
use authsvc::keys::SigningKey;
use authsvc::store::Db;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use common::*;
use serde_json::{Value, json};

const CLIENT: &str = "meshmux-test";

struct Idp {
    issuer: String,
    iss_supported: bool,
    key: SigningKey,
    /// The nonce of the login in flight (the token endpoint puts it in the ID token).
    nonce: Mutex<String>,
    token_calls: AtomicUsize,
    /// The roles its ID tokens carry now.
    roles: Mutex<Vec<String>>,
    /// Whether it refuses refresh tokens (the user was removed).
    refuse_refresh: std::sync::atomic::AtomicBool,
}

async fn discovery(State(idp): State<Arc<Idp>>) -> axum::Json<Value> {
    axum::Json(idp_discovery(
        &idp.issuer,
        json!({"authorization_response_iss_parameter_supported": idp.iss_supported}),
    ))
}

async fn jwks(State(idp): State<Arc<Idp>>) -> axum::Json<Value> {
    axum::Json(json!({"keys": [idp.key.jwk()]}))
}

async fn token(
    State(idp): State<Arc<Idp>>,
    axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    idp.token_calls.fetch_add(1, Ordering::SeqCst);
    let refreshing = form.get("grant_type").map(String::as_str) == Some("refresh_token");
    if refreshing
        && (idp.refuse_refresh.load(Ordering::SeqCst)
            || !form
                .get("refresh_token")
                .is_some_and(|t| t.starts_with("upstream-rt-")))
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = json!({
        "iss": idp.issuer,
        "aud": CLIENT,
        "sub": "carol",
        "name": "Carol",
        "roles": *idp.roles.lock().unwrap(),
        "iat": now,
        "exp": now + 300,
    });
    if !refreshing {
        claims["nonce"] = json!(*idp.nonce.lock().unwrap());
    }
    let id_token = authsvc::jws::sign(&idp.key, &claims).unwrap();
    let n = idp.token_calls.load(Ordering::SeqCst);
    axum::Json(
        json!({"access_token": "upstream", "token_type": "Bearer", "id_token": id_token,
                      "refresh_token": format!("upstream-rt-{n}")}),
    )
    .into_response()
}

/// Starts the stand-in IdP; returns it and an authsvc router that logs in through it.
async fn start(iss_supported: bool) -> (Arc<Idp>, Router) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let idp = Arc::new(Idp {
        issuer: issuer.clone(),
        iss_supported,
        key: SigningKey::from_pem(pem().as_bytes()).unwrap(),
        nonce: Mutex::new(String::new()),
        token_calls: AtomicUsize::new(0),
        roles: Mutex::new(vec!["ops".into()]),
        refuse_refresh: Default::default(),
    });
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", post(token))
        .with_state(idp.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut s = settings();
    s.idp = IdpSettings::Oidc(OidcSettings {
        label: "oidc",
        issuer,
        client_id: CLIENT.into(),
        client_secret: None,
        scopes: vec!["openid".into()],
        roles_claim: "roles".into(),
        group_roles: Default::default(),
    });
    (idp, router_with(s, Db::memory()))
}

/// Starts an MCP client's authorization and returns the `state` sent upstream (the
/// stand-in IdP is told the nonce, as if the user had signed in there).
async fn login(b: &mut Browser, r: &Router, idp: &Idp, client_id: &str) -> String {
    let a = b.get(r, &authorize_url(client_id)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert!(a.location().starts_with(&idp.issuer), "{}", a.location());
    *idp.nonce.lock().unwrap() = a.param("nonce").unwrap();
    a.param("state").unwrap()
}

fn callback(state: &str, iss: Option<&str>) -> String {
    let mut u = url::Url::parse(&format!("{BASE}/auth/callback")).unwrap();
    u.query_pairs_mut()
        .append_pair("code", "upstream-code")
        .append_pair("state", state);
    if let Some(iss) = iss {
        u.query_pairs_mut().append_pair("iss", iss);
    }
    u.to_string()
}

/// Refused as a page: 400, the reason, no redirect anywhere, and no upstream exchange.
fn assert_refused(a: &Answer, idp: &Idp, calls_before: usize) {
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(a.body.contains("mix-up"), "{}", a.body);
    assert!(a.headers.get("location").is_none());
    assert_eq!(idp.token_calls.load(Ordering::SeqCst), calls_before);
}

#[tokio::test]
async fn advertised_iss_is_required_and_must_match() {
    let (idp, r) = start(true).await;
    let mut b = Browser::default();
    let client_id = register(&mut b, &r).await;

    // Another IdP's issuer: refused before the code is exchanged.
    let state = login(&mut b, &r, &idp, &client_id).await;
    let a = b
        .get(&r, &callback(&state, Some("https://attacker.example")))
        .await;
    assert_refused(&a, &idp, 0);
    // The transaction is spent: the genuine answer cannot be replayed after a refusal.
    let a = b.get(&r, &callback(&state, Some(&idp.issuer))).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);

    // Advertised but missing: refused too.
    let state = login(&mut b, &r, &idp, &client_id).await;
    let a = b.get(&r, &callback(&state, None)).await;
    assert_refused(&a, &idp, 0);

    // Also on error answers: a forged `error` from another issuer is not believed.
    let state = login(&mut b, &r, &idp, &client_id).await;
    let a = b
        .get(
            &r,
            &format!("/auth/callback?state={state}&error=access_denied&iss=https%3A%2F%2Fattacker.example"),
        )
        .await;
    assert_refused(&a, &idp, 0);

    // The right issuer: exchanged, and the consent page is shown.
    let state = login(&mut b, &r, &idp, &client_id).await;
    let a = b.get(&r, &callback(&state, Some(&idp.issuer))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("csrf"), "{}", a.body);
    assert_eq!(idp.token_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unadvertised_iss_may_be_absent_but_not_wrong() {
    let (idp, r) = start(false).await;
    let mut b = Browser::default();
    let client_id = register(&mut b, &r).await;

    let state = login(&mut b, &r, &idp, &client_id).await;
    let a = b
        .get(&r, &callback(&state, Some("https://attacker.example")))
        .await;
    assert_refused(&a, &idp, 0);

    let state = login(&mut b, &r, &idp, &client_id).await;
    let a = b.get(&r, &callback(&state, None)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(idp.token_calls.load(Ordering::SeqCst), 1);

    let state = login(&mut b, &r, &idp, &client_id).await;
    let a = b.get(&r, &callback(&state, Some(&idp.issuer))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(idp.token_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn dev_idp_callback_without_iss_still_works_and_a_foreign_iss_is_refused() {
    let r = router();
    let mut b = Browser::default();
    let client_id = register(&mut b, &r).await;
    // The dev IdP sends no iss and does not advertise it: the whole flow works.
    let a = login_steps(&mut b, std::slice::from_ref(&r), &client_id, "alice").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    let a = b.get(&r, &authorize_url(&client_id)).await;
    let state = a.param("state").unwrap();
    let a = b
        .post_form(
            &r,
            "/auth/dev/login",
            &[("state", &state), ("user", "alice")],
        )
        .await;
    let to = format!("{}&iss=https%3A%2F%2Fattacker.example", a.location());
    let a = b.get(&r, &to).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(a.body.contains("mix-up"), "{}", a.body);
}

/// A refresh asks the IdP again with the refresh token it gave at sign-in: roles changed
/// there reach the next token, and a refusal there (the user removed) ends the family.
#[tokio::test]
async fn a_refresh_asks_the_idp_again() {
    let (idp, r) = start(true).await;
    let mut b = Browser::default();
    let client_id = register(&mut b, &r).await;
    let state = login(&mut b, &r, &idp, &client_id).await;
    let a = b.get(&r, &callback(&state, Some(&idp.issuer))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let (id, csrf) = (a.hidden("id"), a.hidden("csrf"));
    let a = b
        .post_form(
            &r,
            "/auth/consent",
            &[("id", &id), ("csrf", &csrf), ("decision", "approve")],
        )
        .await;
    let code = a.param("code").unwrap();
    let a = b
        .post_form(
            &r,
            "/auth/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CLIENT_CB),
                ("client_id", &client_id),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        claims_of(a.json()["access_token"].as_str().unwrap())["roles"],
        json!(["ops"])
    );
    let rt = a.json()["refresh_token"].as_str().unwrap().to_owned();
    assert!(
        !a.body.contains("upstream-rt"),
        "the IdP's refresh token stays inside"
    );

    // The IdP now says viewer: the refreshed token says so too.
    *idp.roles.lock().unwrap() = vec!["viewer".into()];
    let calls = idp.token_calls.load(Ordering::SeqCst);
    let a = refresh(&r, &rt, &client_id).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(idp.token_calls.load(Ordering::SeqCst), calls + 1);
    assert_eq!(
        claims_of(a.json()["access_token"].as_str().unwrap())["roles"],
        json!(["viewer"])
    );
    let rt = a.json()["refresh_token"].as_str().unwrap().to_owned();

    // The user is removed at the IdP: the next refresh is refused.
    idp.refuse_refresh.store(true, Ordering::SeqCst);
    let a = refresh(&r, &rt, &client_id).await;
    assert_eq!(
        (a.status, a.json()["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{}",
        a.body
    );
    assert!(a.body.contains("identity provider"), "{}", a.body);
}
