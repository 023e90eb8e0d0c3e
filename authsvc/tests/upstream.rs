//! The upstream code exchange (`oauth2` crate) against a stand-in OIDC provider on loopback:
//! PKCE S256 end to end, and the client authentication the provider advertises
//! (`client_secret_basic` by default, `client_secret_post` when it is the only one).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::sync::{Arc, Mutex};

use authsvc::config::{IdpSettings, OidcSettings};
use authsvc::keys::SigningKey;
use authsvc::store::Db;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;
use serde_json::{Value, json};

const CLIENT: &str = "meshmux test:ü";
const SECRET: &str = "s3cr:et/+";

/// A token request as received: its Authorization header and form.
type TokenRequest = (Option<String>, Vec<(String, String)>);

struct Idp {
    issuer: String,
    methods: Vec<&'static str>,
    key: SigningKey,
    nonce: Mutex<String>,
    seen: Mutex<Option<TokenRequest>>,
}

async fn discovery(State(idp): State<Arc<Idp>>) -> axum::Json<Value> {
    axum::Json(idp_discovery(
        &idp.issuer,
        json!({"token_endpoint_auth_methods_supported": idp.methods}),
    ))
}

async fn jwks(State(idp): State<Arc<Idp>>) -> axum::Json<Value> {
    axum::Json(json!({"keys": [idp.key.jwk()]}))
}

async fn token(
    State(idp): State<Arc<Idp>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> axum::Json<Value> {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    *idp.seen.lock().unwrap() = Some((auth, form));
    let now = authsvc::tokens::now();
    let claims = json!({
        "iss": idp.issuer, "aud": CLIENT, "sub": "carol", "name": "Carol",
        "nonce": *idp.nonce.lock().unwrap(), "roles": ["ops"], "iat": now, "exp": now + 300,
    });
    let id_token = authsvc::jws::sign(&idp.key, &claims).unwrap();
    axum::Json(json!({"access_token": "upstream", "token_type": "Bearer", "id_token": id_token}))
}

/// Signs in through the stand-in IdP; returns the `code_challenge` sent upstream and what
/// the token endpoint received.
async fn sign_in(methods: Vec<&'static str>) -> (String, TokenRequest) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let idp = Arc::new(Idp {
        issuer: issuer.clone(),
        methods,
        key: SigningKey::from_pem(pem().as_bytes()).unwrap(),
        nonce: Mutex::new(String::new()),
        seen: Mutex::new(None),
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
        client_secret: Some(SECRET.into()),
        scopes: vec!["openid".into(), "profile".into()],
        roles_claim: "roles".into(),
        group_roles: Default::default(),
    });
    let r = router_with(s, Db::memory());
    let mut b = Browser::default();
    let client_id = register(&mut b, &r).await;
    let a = b.get(&r, &authorize_url(&client_id)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert!(a.location().starts_with(&idp.issuer), "{}", a.location());
    assert_eq!(a.param("code_challenge_method").unwrap(), "S256");
    assert_eq!(a.param("scope").unwrap(), "openid profile");
    assert_eq!(a.param("response_type").unwrap(), "code");
    *idp.nonce.lock().unwrap() = a.param("nonce").unwrap();
    let challenge = a.param("code_challenge").unwrap();
    let state = a.param("state").unwrap();
    let a = b
        .get(
            &r,
            &format!("{BASE}/auth/callback?code=upstream-code&state={state}"),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "the consent page: {}", a.body);
    assert!(a.body.contains("Carol"), "{}", a.body);
    (challenge, idp.seen.lock().unwrap().take().unwrap())
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn basic_auth_by_default_with_pkce() {
    let (challenge_sent, (auth, form)) = sign_in(vec![]).await;
    // RFC 6749 §2.3.1: both parts form-urlencoded before base64.
    let expected = STANDARD.encode("meshmux+test%3A%C3%BC:s3cr%3Aet%2F%2B");
    assert_eq!(auth.as_deref(), Some(format!("Basic {expected}").as_str()));
    assert_eq!(field(&form, "client_secret"), None);
    assert_eq!(field(&form, "grant_type"), Some("authorization_code"));
    assert_eq!(field(&form, "code"), Some("upstream-code"));
    assert_eq!(
        challenge(field(&form, "code_verifier").unwrap()),
        challenge_sent
    );
}

#[tokio::test]
async fn client_secret_post_when_it_is_the_only_method() {
    let (challenge_sent, (auth, form)) = sign_in(vec!["client_secret_post"]).await;
    assert_eq!(auth, None);
    assert_eq!(field(&form, "client_id"), Some(CLIENT));
    assert_eq!(field(&form, "client_secret"), Some(SECRET));
    assert_eq!(
        challenge(field(&form, "code_verifier").unwrap()),
        challenge_sent
    );
}
