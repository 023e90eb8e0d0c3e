//! The administrative endpoints the command line calls on a running authsvc when there is
//! no Redis to write to (`POST /internal/minted`, `POST /internal/revoke`). Each request is
//! authenticated by a short-lived assertion signed with the signing key (only whoever holds
//! the key file may call them): `Authorization: Bearer <JWS>` whose claims are
//! `{"iss": <issuer>, "aud": <issuer>/internal, "kind": "internal", "iat", "exp",
//! "body": <SHA-256 of the request body>}`, valid for `MAX_AGE`. An access token (`kind`
//! user or bot, `aud` the MCP resource) is never one; the body digest binds the assertion
//! to the one request it was made for.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::App;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::keys::KeyRing;
use crate::tokens::{digest_bytes, now, random_id};

/// How long an assertion is accepted after it was made (and the most `exp - iat` may be).
pub const MAX_AGE: u64 = 60;

#[derive(Debug, Serialize, Deserialize)]
struct Assertion {
    iss: String,
    aud: String,
    kind: String,
    iat: u64,
    exp: u64,
    jti: String,
    body: String,
}

fn audience(settings: &Settings) -> String {
    format!("{}/internal", settings.issuer)
}

/// The `Authorization` value for a request with `body`.
pub fn sign(settings: &Settings, keys: &KeyRing, body: &[u8]) -> anyhow::Result<String> {
    let iat = now();
    let assertion = Assertion {
        iss: settings.issuer.clone(),
        aud: audience(settings),
        kind: "internal".into(),
        iat,
        exp: iat + MAX_AGE,
        jti: random_id(16),
        body: digest_bytes(body),
    };
    let jws = crate::jws::sign(&keys.current, &serde_json::to_value(assertion)?)?;
    Ok(format!("Bearer {jws}"))
}

/// Refuses a request without a valid assertion for exactly this body.
pub fn authenticate(app: &App, headers: &HeaderMap, body: &[u8]) -> Result<()> {
    let refused = || {
        tracing::warn!("internal request refused: no valid assertion signed with the signing key");
        Error::oauth(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "internal endpoints need an assertion signed with authsvc's signing key",
        )
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(refused)?;
    let a: Assertion = crate::jws::verify(token.trim(), &app.keys.jwks())
        .ok()
        .and_then(|claims| serde_json::from_value(claims).ok())
        .ok_or_else(refused)?;
    let t = now();
    let fresh = a.exp > t && a.iat <= t + 5 && a.exp.saturating_sub(a.iat) <= MAX_AGE;
    if a.kind != "internal"
        || a.iss != app.settings.issuer
        || a.aud != audience(&app.settings)
        || !fresh
        || !crate::tokens::same(&a.body, &digest_bytes(body))
    {
        return Err(refused());
    }
    Ok(())
}

/// `POST /internal/revoke {"jti": ".."}` or `{"subject": ".."}`.
pub async fn revoke(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>> {
    authenticate(&app, &headers, &body)?;
    let target: crate::revoke::Target = serde_json::from_slice(&body)
        .map_err(|_| Error::invalid_request(r#"send {"jti": "<jti>"} or {"subject": "<sub>"}"#))?;
    let outcome = crate::revoke::revoke(&app.db, &app.settings, &target).await?;
    Ok(Json(json!(outcome)))
}

/// Sends `body` to `<authsvc_url><path>` with an assertion; the answer's JSON.
pub async fn call(
    settings: &Settings,
    keys: &KeyRing,
    authsvc_url: &str,
    path: &str,
    body: &Value,
) -> anyhow::Result<Value> {
    let bytes = serde_json::to_vec(body)?;
    let url = format!("{}{path}", authsvc_url.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, sign(settings, keys, &bytes)?)
        .body(bytes)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}; start authsvc first, or enable auth.redis"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("{url} answered {status}: {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}
