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
use maud::html;

use crate::ui::page::layout;
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
    let body = html! {
        div.card {
            h1 { "Allow " (client) " to use meshmux as you?" }
            p.lead {
                strong { (client) } " asks to call MCP tools through "
                strong { (app.settings.audience) } " on behalf of " strong { (identity.name) }
                ", with your roles: "
                @for r in &identity.roles { span.tag { (r) } }
            }
            table {
                tr { th { "Client ID" } td { code { (request.client_id) } } }
                tr {
                    th { "Sends you back to" }
                    td { code { (request.redirect_uri) } " (host " strong { (host) } ")" }
                }
                tr { th { "Scope" } td { span.tag { (request.scope) } } }
            }
            p.muted { "Only allow clients you started yourself. Your answer is remembered for this client." }
            form method="post" action="/auth/consent" {
                input type="hidden" name="id" value=(id);
                input type="hidden" name="csrf" value=(csrf);
                div.actions {
                    button name="decision" value="approve" { "Allow" }
                    button.secondary name="decision" value="deny" { "Deny" }
                }
            }
        }
    };
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
    let mut page = layout("Allow access", None, body);
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
