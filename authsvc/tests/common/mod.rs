//! Shared helpers: settings from a real config text, routers, a tiny cookie-keeping
//! browser driven through `oneshot`, and the dev-IdP OAuth flow step by step.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use authsvc::App;
use authsvc::config::Settings;
use authsvc::keys::{KeyRing, SigningKey};
use authsvc::store::Db;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub const BASE: &str = "http://127.0.0.1:10000";
pub const AUD: &str = "http://127.0.0.1:10000/mcp";
pub const CLIENT_CB: &str = "http://127.0.0.1:5555/cb";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-long-enough";

pub fn config_text(base_url: &str) -> String {
    format!(
        r#"{{
  "environments": {{"Prod": {{"description": "p", "url": "http://127.0.0.1:1/mcp"}}}},
  "auth": {{
    "dev": {{"users": {{"alice": ["admin", "ops"], "bob": ["ops"]}}}},
    "base_url": "{base_url}/",
    "signing_key_file": "/nonexistent/unused.pem",
    "roles": {{
      "admin": {{"allowed_envs": {{"*": ["*"]}}}},
      "ops": {{"allowed_envs": {{"Prod": ["read_*"]}}}},
      "viewer": {{"allowed_envs": {{"Dev": ["*"]}}}}
    }},
    "token_minting_roles": ["admin"],
    "token_max_expiry_days": 90
  }}
}}"#
    )
}

pub fn settings_for(base_url: &str) -> Settings {
    let config = policy::config::Config::parse(
        &config_text(base_url),
        policy::config::Format::Json,
        "test.json",
        &|_| None,
    )
    .unwrap();
    Settings::from_config(&config).unwrap()
}

pub fn settings() -> Settings {
    settings_for(BASE)
}

/// One RSA key for the whole test binary (as replicas sharing one key file).
pub fn pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| SigningKey::generate().unwrap().to_pem().unwrap())
}

pub fn keyring() -> KeyRing {
    KeyRing {
        current: SigningKey::from_pem(pem().as_bytes()).unwrap(),
        previous: None,
    }
}

pub fn app_with(settings: Settings, db: Db) -> App {
    App::new(settings, keyring(), db).unwrap()
}

pub fn router_with(settings: Settings, db: Db) -> Router {
    authsvc::router(app_with(settings, db))
}

pub fn router() -> Router {
    router_with(settings(), Db::memory())
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    pub fn location(&self) -> String {
        self.headers
            .get(header::LOCATION)
            .unwrap_or_else(|| panic!("no location ({}): {}", self.status, self.body))
            .to_str()
            .unwrap()
            .to_owned()
    }
    /// A query parameter of the `Location` header.
    pub fn param(&self, name: &str) -> Option<String> {
        query_param(&self.location(), name)
    }
    /// The value of a hidden form input.
    pub fn hidden(&self, name: &str) -> String {
        let marker = format!(r#"name="{name}" value=""#);
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no input {name} in {}", self.body))
            + marker.len();
        self.body[start..].split('"').next().unwrap().to_owned()
    }
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(url)
        .or_else(|_| url::Url::parse(&format!("{BASE}{url}")))
        .unwrap();
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub fn path_of(url: &str) -> String {
    let u = url::Url::parse(url)
        .or_else(|_| url::Url::parse(&format!("{BASE}{url}")))
        .unwrap();
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    }
}

/// Keeps cookies like a browser (by name; enough for one host).
#[derive(Default, Clone)]
pub struct Browser {
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    pub async fn send(&mut self, router: &Router, mut req: Request<Body>) -> Answer {
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req.headers_mut()
                .insert(header::COOKIE, jar.join("; ").parse().unwrap());
        }
        let response = router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        for c in headers.get_all(header::SET_COOKIE) {
            let c = c.to_str().unwrap();
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let body = String::from_utf8(
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        Answer {
            status,
            headers,
            body,
        }
    }
    pub async fn get(&mut self, router: &Router, uri: &str) -> Answer {
        self.send(
            router,
            Request::get(path_of(uri)).body(Body::empty()).unwrap(),
        )
        .await
    }
    pub async fn post_form(&mut self, router: &Router, uri: &str, form: &[(&str, &str)]) -> Answer {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let req = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        self.send(router, req).await
    }
    pub async fn post_json(&mut self, router: &Router, uri: &str, json: &Value) -> Answer {
        let req = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json.to_string()))
            .unwrap();
        self.send(router, req).await
    }
}

pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ))
}

pub async fn register(b: &mut Browser, r: &Router) -> String {
    let a = b.post_json(r, "/register", &serde_json::json!({"redirect_uris": [CLIENT_CB], "token_endpoint_auth_method": "none", "client_name": "Test Client"})).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    a.json()["client_id"].as_str().unwrap().to_owned()
}

pub fn authorize_url(client_id: &str) -> String {
    url::Url::parse_with_params(
        &format!("{BASE}/auth/login"),
        &[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", CLIENT_CB),
            ("code_challenge", &challenge(VERIFIER)),
            ("code_challenge_method", "S256"),
            ("state", "client-state"),
            ("resource", AUD),
            ("scope", "mcp:tools"),
        ],
    )
    .unwrap()
    .to_string()
}

/// Authorize → dev login as `user` → callback. Returns the callback's answer (a consent
/// page, or a redirect to the client when consent is remembered). `rs[i % len]` serves step i.
pub async fn login_steps(b: &mut Browser, rs: &[Router], client_id: &str, user: &str) -> Answer {
    let a = b.get(&rs[0], &authorize_url(client_id)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let state = a.param("state").unwrap();
    let a = b
        .post_form(
            &rs[1 % rs.len()],
            "/auth/dev/login",
            &[("state", &state), ("user", user)],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "dev login: {}", a.body);
    b.get(&rs[2 % rs.len()], &a.location()).await
}

/// The whole flow up to the token response.
pub async fn full_flow(b: &mut Browser, rs: &[Router], user: &str) -> Answer {
    full_flow_with_client(b, rs, user).await.0
}

/// The whole flow; also returns the registered client id.
pub async fn full_flow_with_client(b: &mut Browser, rs: &[Router], user: &str) -> (Answer, String) {
    let client_id = register(b, &rs[0]).await;
    let a = login_steps(b, rs, &client_id, user).await;
    assert_eq!(a.status, StatusCode::OK, "consent page: {}", a.body);
    let (id, csrf) = (a.hidden("id"), a.hidden("csrf"));
    let a = b
        .post_form(
            &rs[3 % rs.len()],
            "/auth/consent",
            &[("id", &id), ("csrf", &csrf), ("decision", "approve")],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.param("state").as_deref(), Some("client-state"));
    let code = a.param("code").unwrap();
    let a = b
        .post_form(
            &rs[4 % rs.len()],
            "/auth/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CLIENT_CB),
                ("client_id", &client_id),
                ("code_verifier", VERIFIER),
                ("resource", AUD),
            ],
        )
        .await;
    (a, client_id)
}

pub fn claims_of(token: &str) -> Value {
    authsvc::jws::verify(token, &keyring().jwks()).unwrap()
}

/// A refresh_token grant at `/auth/token`.
pub async fn refresh(r: &Router, refresh_token: &str, client_id: &str) -> Answer {
    Browser::default()
        .post_form(
            r,
            "/auth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", client_id),
            ],
        )
        .await
}

/// Rotate A → B → C, present B again: refused, and C (rotated from it) is refused too,
/// while another family (a second login) is untouched. `rs[i % len]` serves step i.
pub async fn reuse_revokes_the_family(rs: &[Router]) {
    let invalid_grant = |a: &Answer| {
        assert_eq!(
            (a.status, a.json()["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant")),
            "{}",
            a.body
        );
    };
    let mut b = Browser::default();
    let (a, client) = full_flow_with_client(&mut b, rs, "bob").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let rt_a = a.json()["refresh_token"].as_str().unwrap().to_owned();
    let (a, other_client) = full_flow_with_client(&mut Browser::default(), rs, "alice").await;
    let other_family = a.json()["refresh_token"].as_str().unwrap().to_owned();

    let a = refresh(&rs[0], &rt_a, &client).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let rt_b = a.json()["refresh_token"].as_str().unwrap().to_owned();
    let a = refresh(&rs[1 % rs.len()], &rt_b, &client).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let rt_c = a.json()["refresh_token"].as_str().unwrap().to_owned();

    // B was rotated already: its reuse is refused and revokes the family…
    let a = refresh(&rs[2 % rs.len()], &rt_b, &client).await;
    invalid_grant(&a);
    assert!(a.body.contains("already used"), "{}", a.body);
    // …so C, the live token rotated from it, is refused too, and so is A again.
    invalid_grant(&refresh(&rs[3 % rs.len()], &rt_c, &client).await);
    invalid_grant(&refresh(&rs[4 % rs.len()], &rt_a, &client).await);

    // Another login's family still rotates.
    let a = refresh(&rs[0], &other_family, &other_client).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

/// A stand-in IdP's discovery document: its endpoints under `issuer`, then `extra`'s fields.
pub fn idp_discovery(issuer: &str, extra: Value) -> Value {
    let mut doc = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
    });
    if let (Some(doc), Value::Object(extra)) = (doc.as_object_mut(), extra) {
        doc.extend(extra);
    }
    doc
}
