//! `/auth/login` (the authorization endpoint) and `/auth/callback` (the upstream IdP's
//! answer). Client and redirect URI are checked before anything redirects; PKCE S256 is
//! required; consent is asked per user per client before a code is issued.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
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
    // From here on, errors go back to the client's (now trusted) redirect URI.
    let back = |code: &str, description: &str| {
        error_redirect(&app, &redirect_uri, q.state.as_deref(), code, description)
    };
    if q.response_type.as_deref() != Some("code") {
        return Ok(back(
            "unsupported_response_type",
            "response_type must be code",
        ));
    }
    let Some(challenge) = q.code_challenge.clone().filter(|c| !c.is_empty()) else {
        return Ok(back(
            "invalid_request",
            "PKCE is required: send code_challenge with code_challenge_method=S256",
        ));
    };
    if q.code_challenge_method.as_deref() != Some("S256") {
        return Ok(back(
            "invalid_request",
            "code_challenge_method must be S256",
        ));
    }
    if let Some(resource) = &q.resource
        && resource.trim_end_matches('/') != app.settings.audience
    {
        return Ok(back(
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
    idp::begin(&app, Purpose::Authorize(request)).await
}

pub async fn callback(State(app): State<App>, Query(q): Query<CallbackQuery>) -> Result<Response> {
    let (identity, purpose) = idp::finish(&app, q, "/auth/callback").await?;
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
