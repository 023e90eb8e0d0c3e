//! `/ui/tokens`: the list of bot tokens you minted, the mint form, and revocation.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use maud::{Markup, html};

use super::page::layout;
use super::session::{self, Session};
use crate::app::App;
use crate::error::{Error, Result};
use crate::mint::{self, MintRequest, MintedRecord};
use crate::store::ns;
use crate::tokens::{now, same};
pub use policy::civil::date;

enum Notice {
    Minted(String, MintedRecord),
    Refused(String),
    Revoked(String),
}

pub async fn list(State(app): State<App>, headers: HeaderMap) -> Result<Response> {
    let Some((_, s)) = session::current(&app, &headers).await? else {
        return Ok(Redirect::to("/ui/login").into_response());
    };
    render(&app, &s, None, StatusCode::OK).await
}

fn form_fields(body: &Bytes) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

/// The session, if the form's CSRF token matches it.
async fn authorized(
    app: &App,
    headers: &HeaderMap,
    fields: &[(String, String)],
) -> Result<Session> {
    let (_, s) = session::current(app, headers).await?.ok_or_else(|| {
        Error::page(
            StatusCode::UNAUTHORIZED,
            "Your session has ended. Sign in again.",
        )
    })?;
    if !same(field(fields, "csrf"), &s.csrf) {
        return Err(Error::page(
            StatusCode::FORBIDDEN,
            "This form has expired. Reload the page and try again.",
        ));
    }
    Ok(s)
}

pub async fn mint(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Result<Response> {
    let fields = form_fields(&body);
    let s = authorized(&app, &headers, &fields).await?;
    let request = MintRequest {
        name: field(&fields, "name").to_owned(),
        roles: fields
            .iter()
            .filter(|(k, _)| k == "role")
            .map(|(_, v)| v.clone())
            .collect(),
        days: field(&fields, "days").trim().parse().unwrap_or(0),
    };
    if let Err(reason) = mint::check(&app.settings, Some(&s.identity), &request) {
        let status = if can_mint(&app, &s) {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::FORBIDDEN
        };
        return render(&app, &s, Some(Notice::Refused(reason)), status).await;
    }
    let (token, record) = mint::mint(
        &app.settings,
        &app.keys,
        &app.db,
        &request,
        (&s.identity.sub, &s.identity.name),
    )
    .await?;
    render(
        &app,
        &s,
        Some(Notice::Minted(token, record)),
        StatusCode::OK,
    )
    .await
}

pub async fn revoke(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Result<Response> {
    let fields = form_fields(&body);
    let s = authorized(&app, &headers, &fields).await?;
    let record: Option<MintedRecord> = app.db.get(ns::MINTED, field(&fields, "jti")).await?;
    let Some(record) = record.filter(|r| visible(&app, &s, r)) else {
        return render(
            &app,
            &s,
            Some(Notice::Refused("No such token of yours.".into())),
            StatusCode::NOT_FOUND,
        )
        .await;
    };
    let name = record.name.clone();
    mint::revoke(&app.db, record).await?;
    render(&app, &s, Some(Notice::Revoked(name)), StatusCode::OK).await
}

fn can_mint(app: &App, s: &Session) -> bool {
    s.identity
        .roles
        .iter()
        .any(|r| app.settings.minting_roles.contains(r))
}

/// Yours, and (for minters) the ones minted from the command line.
fn visible(app: &App, s: &Session, r: &MintedRecord) -> bool {
    r.minted_by == s.identity.sub || (r.minted_by == "cli" && can_mint(app, s))
}

async fn render(
    app: &App,
    s: &Session,
    notice: Option<Notice>,
    status: StatusCode,
) -> Result<Response> {
    let mut records: Vec<MintedRecord> = app.db.scan(ns::MINTED).await?;
    records.retain(|r| visible(app, s, r));
    records.sort_by_key(|r| std::cmp::Reverse(r.created));
    let csrf = s.csrf.as_str();
    let mintable: Vec<&String> = s
        .identity
        .roles
        .iter()
        .filter(|r| app.settings.roles.contains(*r))
        .collect();
    let max = app.settings.max_expiry_days;
    let body = html! {
        @match &notice {
            Some(Notice::Minted(token, r)) => div.success {
                strong { "Token “" (r.name) "” created." }
                " Copy it now: it is shown only once."
                code.token { (token) }
                p.muted {
                    "Use it as " code { "Authorization: Bearer …" } " against "
                    (app.settings.audience) ". Expires " (date(r.expires)) "."
                }
            },
            Some(Notice::Refused(m)) => div.error { (m) },
            Some(Notice::Revoked(name)) => div.success {
                "Token “" (name) "” revoked. Gateways refuse it within 30 seconds."
            },
            None => {},
        }
        @if can_mint(app, s) {
            div.card {
                h2 { "Mint a bot token" }
                p.lead { "For CI jobs and agents. It carries only roles you hold." }
                form method="post" action="/ui/tokens" {
                    input type="hidden" name="csrf" value=(csrf);
                    div.row {
                        div {
                            label for="name" { "Name" }
                            input type="text" id="name" name="name" placeholder="ci-deploy" required maxlength="64";
                        }
                        div style="flex:0 0 160px" {
                            label for="days" { "Lifetime (days)" }
                            input type="number" id="days" name="days" min="1" max=(max) value=(max.min(30));
                        }
                    }
                    label { "Roles" }
                    div.roles {
                        @for r in &mintable {
                            label { input type="checkbox" name="role" value=(r); " " (r) }
                        }
                    }
                    div.actions { button { "Mint token" } }
                }
            }
        } @else {
            div.card {
                h2 { "Bot tokens" }
                p.lead { "Your roles do not allow minting tokens. Ask an administrator for a minting role." }
            }
        }
        div.card {
            h2 { "Your tokens" }
            @if records.is_empty() {
                p.muted { "No tokens yet." }
            } @else {
                table {
                    tr { th { "Name" } th { "Roles" } th { "Created" } th { "Expires" } th { "By" } th { "State" } th {} }
                    @for r in &records { (row(r, csrf)) }
                }
            }
        }
    };
    let mut response = layout("Bot tokens", Some((&s.identity.name, &s.csrf)), body);
    *response.status_mut() = status;
    Ok(response)
}

fn row(r: &MintedRecord, csrf: &str) -> Markup {
    let active = r.revoked_at.is_none() && r.expires > now();
    html! {
        tr {
            td { strong { (r.name) } }
            td { @for x in &r.roles { span.tag { (x) } } }
            td { (date(r.created)) }
            td { (date(r.expires)) }
            td { (r.minted_by_name) }
            td {
                @if r.revoked_at.is_some() {
                    span.state-revoked { "revoked" }
                } @else if !active {
                    span.state-expired { "expired" }
                } @else {
                    "active"
                }
            }
            td {
                @if active {
                    form method="post" action="/ui/tokens/revoke" {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="jti" value=(r.jti);
                        button.danger.small { "Revoke" }
                    }
                }
            }
        }
    }
}
