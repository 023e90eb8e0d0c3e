//! The token UI for people: sign in at the IdP, mint bot tokens, list and revoke them.

pub mod page;
pub mod session;
pub mod tokens;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::app::App;
use crate::error::{Error, Result};
use crate::idp::{self, CallbackQuery, Purpose};
use crate::store::ns;

pub async fn home() -> Redirect {
    Redirect::to("/ui/tokens")
}

pub async fn login(State(app): State<App>, headers: HeaderMap) -> Result<Response> {
    idp::begin(&app, &headers, Purpose::Ui).await
}

pub async fn callback(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Result<Response> {
    let (identity, purpose) = idp::finish(&app, &headers, q, "/ui/callback").await?;
    if !matches!(purpose, Purpose::Ui) {
        return Err(Error::page(
            axum::http::StatusCode::BAD_REQUEST,
            "This login was not for the token page.",
        ));
    }
    let cookie = session::create(&app, identity).await?;
    let mut response = Redirect::to("/ui/tokens").into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

/// Ends the session (a link or the header's button); nothing to protect by CSRF here but a
/// nuisance, so a GET works too.
pub async fn logout(State(app): State<App>, headers: HeaderMap) -> Result<Response> {
    if let Some((key, _)) = session::current(&app, &headers).await? {
        app.db.delete(ns::SESSION, &key).await?;
    }
    let clear = session::set_cookie(
        &app.settings,
        session::UI_COOKIE,
        "",
        std::time::Duration::ZERO,
    )?;
    let mut response = page::layout(
        "Signed out",
        None,
        maud::html! {
            div.card {
                h1 { "Signed out" }
                p.lead { "You are signed out of the meshmux token page." }
                div.actions { a.button href="/ui/login" { "Sign in again" } }
            }
        },
    );
    response.headers_mut().append(header::SET_COOKIE, clear);
    Ok(response)
}
