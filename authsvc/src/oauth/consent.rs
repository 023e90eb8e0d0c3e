//! The consent page (per user, per client, before a code is issued): it names the client,
//! the redirect URI and the scope; it is CSRF-protected (a single-use pending record plus a
//! double-submit cookie) and cannot be framed.

use std::time::Duration;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::authorize::{AuthRequest, consent_key, error_redirect, issue_code};
use crate::app::App;
use crate::error::{Error, Result};
use crate::store::ns;
use crate::tokens::{Identity, random_id, same};
use crate::ui::page::{esc, layout};
use crate::ui::session::{cookie_value, set_cookie};

const PENDING_TTL: Duration = Duration::from_secs(600);
const REMEMBER: Duration = Duration::from_secs(365 * 86400);
const COOKIE: &str = "meshmux_consent";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub request: AuthRequest,
    pub identity: Identity,
    pub csrf: String,
}

pub async fn show(app: &App, request: AuthRequest, identity: Identity) -> Result<Response> {
    let id = random_id(24);
    let csrf = random_id(24);
    let client = request
        .client_name
        .clone()
        .unwrap_or_else(|| request.client_id.clone());
    let host = url::Url::parse(&request.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| request.redirect_uri.clone());
    let roles: String = identity
        .roles
        .iter()
        .map(|r| format!(r#"<span class="tag">{}</span>"#, esc(r)))
        .collect();
    let body = format!(
        r#"<div class="card"><h1>Allow {client} to use meshmux as you?</h1>
<p class="lead"><strong>{client}</strong> asks to call MCP tools through <strong>{resource}</strong> on behalf of <strong>{user}</strong>, with your roles: {roles}</p>
<table><tr><th>Client ID</th><td><code>{client_id}</code></td></tr><tr><th>Sends you back to</th><td><code>{redirect}</code> (host <strong>{host}</strong>)</td></tr><tr><th>Scope</th><td><span class="tag">{scope}</span></td></tr></table>
<p class="muted">Only allow clients you started yourself. Your answer is remembered for this client.</p>
<form method="post" action="/auth/consent"><input type="hidden" name="id" value="{id}"><input type="hidden" name="csrf" value="{csrf}">
<div class="actions"><button name="decision" value="approve">Allow</button><button class="secondary" name="decision" value="deny">Deny</button></div></form></div>"#,
        client = esc(&client),
        resource = esc(&app.settings.audience),
        user = esc(&identity.name),
        client_id = esc(&request.client_id),
        redirect = esc(&request.redirect_uri),
        host = esc(&host),
        scope = esc(&request.scope),
    );
    let redirect_uri = request.redirect_uri.clone();
    app.db
        .put(
            ns::CONSENT_PENDING,
            &id,
            &Pending {
                request,
                identity,
                csrf: csrf.clone(),
            },
            Some(PENDING_TTL),
        )
        .await?;
    let mut page = layout("Allow access", None, &body);
    crate::ui::page::allow_form_redirect_to(&mut page, &redirect_uri);
    page.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&app.settings, COOKIE, &csrf, PENDING_TTL)?,
    );
    Ok(page)
}

#[derive(Deserialize)]
pub struct Answer {
    id: String,
    csrf: String,
    decision: String,
}

pub async fn answer(
    State(app): State<App>,
    headers: HeaderMap,
    Form(a): Form<Answer>,
) -> Result<Response> {
    let forbidden = || {
        Error::page(
            StatusCode::FORBIDDEN,
            "This consent form is invalid or expired. Start the sign-in again.",
        )
    };
    let pending: Pending = app
        .db
        .take(ns::CONSENT_PENDING, &a.id)
        .await?
        .ok_or_else(forbidden)?;
    let cookie = cookie_value(&headers, &app.settings, COOKIE).unwrap_or_default();
    if !same(&a.csrf, &pending.csrf) || !same(&cookie, &pending.csrf) {
        return Err(forbidden());
    }
    let clear = set_cookie(&app.settings, COOKIE, "", Duration::ZERO)?;
    let mut response = if a.decision == "approve" {
        let key = consent_key(&pending.identity.sub, &pending.request.client_id);
        app.db.put(ns::CONSENT, &key, &true, Some(REMEMBER)).await?;
        tracing::info!(sub = %pending.identity.sub, client_id = %pending.request.client_id, "consent given");
        issue_code(&app, pending.request, pending.identity).await?
    } else {
        let r = &pending.request;
        error_redirect(
            &app,
            &r.redirect_uri,
            r.state.as_deref(),
            "access_denied",
            "the user denied access",
        )
    };
    response.headers_mut().append(header::SET_COOKIE, clear);
    Ok(response.into_response())
}
