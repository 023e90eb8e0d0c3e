//! RFC 7591 dynamic client registration. Redirect URIs are matched exactly later. Bounded:
//! the body (`MAX_BODY`), the fields (`clients::check_metadata`), how long a registration
//! lives unused (`Settings::registration_ttl`, renewed by every token grant) and how many one
//! source address may make (`Settings::registrations_per_hour`).

use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::clients::{ClientInfo, check_metadata, valid_redirect_uri};
use crate::app::App;
use crate::error::{Error, Result};
use crate::tokens::{digest, now, random_id};

#[derive(Deserialize)]
pub struct Registration {
    #[serde(default)]
    redirect_uris: Vec<String>,
    client_name: Option<String>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
}

/// The largest registration request read (a real one is a few hundred bytes).
pub const MAX_BODY: usize = 16 * 1024;
/// How much of a longer body is read on and dropped (nothing kept) before answering 413, so
/// that the client, done sending, reads the answer instead of a reset connection.
const DRAIN: usize = 4 * 1024 * 1024;

/// The body if it is at most `MAX_BODY` bytes; `None` if longer.
async fn read_body(mut body: axum::body::Body) -> Result<Option<Vec<u8>>> {
    use http_body_util::BodyExt;
    let (mut kept, mut seen) = (Vec::new(), 0usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            invalid(
                "invalid_client_metadata",
                format!("reading the request failed: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            seen = seen.saturating_add(data.len());
            if seen > DRAIN {
                return Ok(None);
            }
            if seen <= MAX_BODY {
                kept.extend_from_slice(&data);
            }
        }
    }
    Ok((seen <= MAX_BODY).then_some(kept))
}

fn invalid(code: &'static str, d: impl Into<String>) -> Error {
    Error::oauth(StatusCode::BAD_REQUEST, code, d)
}

pub async fn register(State(app): State<App>, request: Request) -> Result<Response> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if let Some(source) = crate::limit::source(peer, request.headers())
        && let Err(retry_after) = app.registrations.check(source, Instant::now())
    {
        tracing::warn!(%source, "registration rate limit reached");
        let mut response = Error::oauth(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            format!(
                "too many registrations from this address (at most {} per hour); retry in {retry_after} s",
                app.settings.registrations_per_hour
            ),
        )
        .into_response();
        if let Ok(v) = retry_after.to_string().parse() {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(response);
    }
    let body = read_body(request.into_body()).await?.ok_or_else(|| {
        Error::oauth(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_client_metadata",
            format!("a registration request is at most {MAX_BODY} bytes"),
        )
    })?;
    let reg: Registration = serde_json::from_slice(&body).map_err(|e| {
        invalid(
            "invalid_client_metadata",
            format!("not a registration request: {e}"),
        )
    })?;
    if reg.redirect_uris.is_empty() {
        return Err(invalid("invalid_redirect_uri", "redirect_uris is required"));
    }
    check_metadata(reg.client_name.as_deref(), &reg.redirect_uris)
        .map_err(|why| invalid("invalid_client_metadata", why))?;
    if let Some(bad) = reg.redirect_uris.iter().find(|u| !valid_redirect_uri(u)) {
        return Err(invalid(
            "invalid_redirect_uri",
            format!("{bad:?} is not allowed (https, loopback http, or an app scheme; no fragment)"),
        ));
    }
    let method = reg
        .token_endpoint_auth_method
        .unwrap_or_else(|| "client_secret_basic".into());
    if !["none", "client_secret_post", "client_secret_basic"].contains(&method.as_str()) {
        return Err(invalid(
            "invalid_client_metadata",
            format!("token_endpoint_auth_method {method:?} is not supported"),
        ));
    }
    let grants = reg
        .grant_types
        .unwrap_or_else(|| vec!["authorization_code".into(), "refresh_token".into()]);
    if let Some(g) = grants
        .iter()
        .find(|g| *g != "authorization_code" && *g != "refresh_token")
    {
        return Err(invalid(
            "invalid_client_metadata",
            format!("grant type {g:?} is not supported"),
        ));
    }
    if reg.response_types.iter().flatten().any(|r| r != "code") {
        return Err(invalid(
            "invalid_client_metadata",
            "only response type \"code\" is supported",
        ));
    }
    let client_id = random_id(16);
    let secret = (method != "none").then(|| random_id(32));
    let client = ClientInfo {
        client_id: client_id.clone(),
        client_name: reg.client_name.clone(),
        redirect_uris: reg.redirect_uris.clone(),
        secret_digest: secret.as_deref().map(digest),
    };
    super::clients::save(&app, &client).await?;
    tracing::info!(%client_id, name = ?reg.client_name, "client registered");
    let mut answer = json!({
        "client_id": client_id,
        "client_id_issued_at": now(),
        "redirect_uris": reg.redirect_uris,
        "token_endpoint_auth_method": method,
        "grant_types": grants,
        "response_types": ["code"],
    });
    if let Some(obj) = answer.as_object_mut() {
        if let Some(name) = reg.client_name {
            obj.insert("client_name".into(), json!(name));
        }
        if let Some(secret) = secret {
            obj.insert("client_secret".into(), json!(secret));
            obj.insert("client_secret_expires_at".into(), json!(0));
        }
    }
    Ok((
        StatusCode::CREATED,
        [("cache-control", "no-store")],
        Json(answer),
    )
        .into_response())
}
