//! The development IdP: a loopback-only page where you pick a user (from `auth.dev.users`)
//! and which of their roles to carry. It warns on every page and at start. A test drives it
//! with one form POST: `state`, `user`, and `role` (repeatable; none = all the user's roles).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::Transaction;
use crate::app::App;
use crate::error::{Error, Result};
use crate::store::ns;
use crate::tokens::{Identity, random_id};
use maud::html;

use crate::ui::page::layout;

pub const WARNING: &str = "DEV IDENTITY PROVIDER: anyone who can reach this page can sign in as any configured user. Use it on loopback for local trials only, never in production.";

pub struct Dev {
    pub users: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
pub struct PageQuery {
    state: String,
}

pub async fn page(State(app): State<App>, Query(q): Query<PageQuery>) -> Result<Response> {
    let Some(dev) = dev_of(&app) else {
        return Err(Error::page(
            StatusCode::NOT_FOUND,
            "The dev identity provider is not enabled.",
        ));
    };
    let body = html! {
        div.banner { strong { "⚠ " (WARNING) } }
        h1 { "Sign in (development)" }
        p.lead { "Pick a user and the roles to carry." }
        @for (user, roles) in &dev.users {
            div.card {
                form method="post" action="/auth/dev/login" {
                    input type="hidden" name="state" value=(q.state);
                    input type="hidden" name="user" value=(user);
                    h2 { (user) }
                    div.roles {
                        @for r in roles {
                            label { input type="checkbox" name="role" value=(r) checked; " " (r) }
                        }
                    }
                    div.actions { button { "Sign in as " (user) } }
                }
            }
        }
        @if dev.users.is_empty() {
            div.card {
                p.lead { "No users are configured under " code { "auth.dev.users" } "." }
            }
        }
    };
    Ok(layout("Dev sign-in", None, body))
}

pub async fn submit(State(app): State<App>, body: Bytes) -> Result<Response> {
    let Some(dev) = dev_of(&app) else {
        return Err(Error::page(
            StatusCode::NOT_FOUND,
            "The dev identity provider is not enabled.",
        ));
    };
    let (mut state, mut user, mut roles) = (String::new(), String::new(), Vec::new());
    for (k, v) in url::form_urlencoded::parse(&body) {
        match k.as_ref() {
            "state" => state = v.into_owned(),
            "user" => user = v.into_owned(),
            "role" => roles.push(v.into_owned()),
            _ => {}
        }
    }
    let bad = |m: &str| Error::page(StatusCode::BAD_REQUEST, m);
    let tx: Transaction = app
        .db
        .get(ns::TRANSACTION, &state)
        .await?
        .ok_or_else(|| bad("This login has expired or was already used. Start again."))?;
    let allowed = dev.users.get(&user).ok_or_else(|| bad("Unknown user."))?;
    if let Some(extra) = roles.iter().find(|r| !allowed.contains(r)) {
        return Err(bad(&format!("{user} does not hold the role {extra}.")));
    }
    if roles.is_empty() {
        roles = allowed.clone();
    }
    tracing::warn!(%user, ?roles, "dev identity provider: signed in without any credential");
    let identity = Identity {
        sub: format!("dev:{user}"),
        // A dev user's name stands for the email an IdP would vouch for.
        email: Some(user.clone()),
        name: user,
        roles,
        upstream_refresh: None,
        listed_roles: Vec::new(),
    };
    let code = random_id(24);
    app.db
        .put(
            ns::DEV_CODE,
            &crate::tokens::digest(&code),
            &identity,
            Some(Duration::from_secs(60)),
        )
        .await?;
    let mut to = url::Url::parse(&app.url(tx.purpose.callback_path())).map_err(Error::internal)?;
    to.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &state);
    Ok(Redirect::to(to.as_str()).into_response())
}

fn dev_of(app: &App) -> Option<&Dev> {
    match &app.idp {
        super::Idp::Dev(d) => Some(d),
        super::Idp::Oidc(_) => None,
    }
}

impl Dev {
    pub async fn exchange(&self, app: &App, code: &str) -> Result<Identity> {
        app.db
            .take(ns::DEV_CODE, &crate::tokens::digest(code))
            .await?
            .ok_or_else(|| {
                Error::page(
                    StatusCode::BAD_REQUEST,
                    "This sign-in code has expired or was already used.",
                )
            })
    }
}
