//! `/auth/login` (the authorization endpoint) and `/auth/callback` (the upstream IdP's
//! answer). Client and redirect URI are checked before anything redirects; PKCE S256 is
//! required; consent is asked per user per client before a code is issued.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::error::{Error, Result};
use crate::idp::{self, CallbackQuery, Purpose};
use crate::store::ns;
use crate::tokens::{Identity, digest, random_id};

pub const CODE_TTL: Duration = Duration::from_secs(60);

/// A validated authorization request, carried through the upstream login and consent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub client_name: Option<String>,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub state: Option<String>,
    pub scope: String,
}

/// What an authorization code stands for (single use, 60 s).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeGrant {
    pub request: AuthRequest,
    pub identity: Identity,
}

#[derive(Debug, Deserialize)]
pub struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    state: Option<String>,
    resource: Option<String>,
}

pub async fn authorize(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<AuthorizeQuery>,
) -> Result<Response> {
    let page = |m: String| Error::page(StatusCode::BAD_REQUEST, m);
    let client_id = q
        .client_id
        .clone()
        .ok_or_else(|| page("The request names no client_id.".into()))?;
    let client = super::clients::resolve(&app, &client_id)
        .await?
        .map_err(page)?;
    let redirect_uri = match (&q.redirect_uri, client.redirect_uris.as_slice()) {
        (Some(uri), registered) if registered.contains(uri) => uri.clone(),
        (Some(uri), _) => {
            return Err(page(format!(
                "The redirect URI {uri:?} is not registered for this client."
            )));
        }
        (None, [only]) => only.clone(),
        (None, _) => return Err(page("The request names no redirect_uri.".into())),
    };
    // RFC 9700 §4.11.2: the redirect URI is registered, but anyone may register one (or
    // publish a metadata document), so it is not trusted until the user has signed in and
    // consented to this client. Until then errors are pages, never redirects: otherwise
    // /auth/login would be an open redirector to any registered URI.
    let refuse = |code: &str, description: &str| {
        crate::metrics::global().error("invalid_request");
        untrusted_error_page(code, description, &redirect_uri)
    };
    if q.response_type.as_deref() != Some("code") {
        return Ok(refuse(
            "unsupported_response_type",
            "response_type must be code",
        ));
    }
    let Some(challenge) = q.code_challenge.clone().filter(|c| !c.is_empty()) else {
        return Ok(refuse(
            "invalid_request",
            "PKCE is required: send code_challenge with code_challenge_method=S256",
        ));
    };
    if q.code_challenge_method.as_deref() != Some("S256") {
        return Ok(refuse(
            "invalid_request",
            "code_challenge_method must be S256",
        ));
    }
    if challenge.len() > 128 || q.state.as_ref().is_some_and(|s| s.len() > 2048) {
        return Ok(refuse(
            "invalid_request",
            "code_challenge or state is too long",
        ));
    }
    if let Some(resource) = &q.resource
        && resource.trim_end_matches('/') != app.settings.audience
    {
        return Ok(refuse(
            "invalid_target",
            "this server only issues tokens for its MCP resource",
        ));
    }
    let request = AuthRequest {
        client_id,
        client_name: client.client_name,
        redirect_uri: redirect_uri.clone(),
        code_challenge: challenge,
        state: q.state.clone(),
        scope: super::SCOPE.into(),
    };
    idp::begin(&app, &headers, Purpose::Authorize(request)).await
}

/// An authorization error for a client the user has not consented to: a page that says
/// what is wrong and where the client wanted to go, without going there.
fn untrusted_error_page(code: &str, description: &str, redirect_uri: &str) -> Response {
    Error::page(
        StatusCode::BAD_REQUEST,
        format!(
            "The application's sign-in request is invalid ({code}: {description}). You are not \
             sent back to {redirect_uri} because you have not approved that application yet; \
             close this page and tell its developer."
        ),
    )
    .into_response()
}

pub async fn callback(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Result<Response> {
    let (identity, purpose) = idp::finish(&app, &headers, q, "/auth/callback").await?;
    let Purpose::Authorize(request) = purpose else {
        return Err(Error::page(
            StatusCode::BAD_REQUEST,
            "This login was not an authorization request.",
        ));
    };
    if app
        .db
        .get::<bool>(ns::CONSENT, &consent_key(&identity.sub, &request.client_id))
        .await?
        .is_some()
    {
        return issue_code(&app, request, identity).await;
    }
    super::consent::show(&app, request, identity).await
}

pub fn consent_key(sub: &str, client_id: &str) -> String {
    format!("{}:{}", digest(sub), digest(client_id))
}

/// Stores a single-use code and sends the browser back to the client.
pub async fn issue_code(app: &App, request: AuthRequest, identity: Identity) -> Result<Response> {
    let code = random_id(32);
    let mut to = url::Url::parse(&request.redirect_uri).map_err(Error::internal)?;
    {
        let mut q = to.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(state) = &request.state {
            q.append_pair("state", state);
        }
        q.append_pair("iss", &app.settings.issuer);
    }
    app.db
        .put(
            ns::CODE,
            &digest(&code),
            &CodeGrant { request, identity },
            Some(CODE_TTL),
        )
        .await?;
    Ok(Redirect::to(to.as_str()).into_response())
}

pub fn error_redirect(
    app: &App,
    redirect_uri: &str,
    state: Option<&str>,
    code: &str,
    description: &str,
) -> Response {
    let Ok(mut to) = url::Url::parse(redirect_uri) else {
        return Error::page(StatusCode::BAD_REQUEST, description).into_response();
    };
    {
        let mut q = to.query_pairs_mut();
        q.append_pair("error", code)
            .append_pair("error_description", description);
        if let Some(state) = state {
            q.append_pair("state", state);
        }
        q.append_pair("iss", &app.settings.issuer);
    }
    crate::metrics::global().error(if code == "access_denied" {
        "access_denied"
    } else {
        "invalid_request"
    });
    Redirect::to(to.as_str()).into_response()
}
