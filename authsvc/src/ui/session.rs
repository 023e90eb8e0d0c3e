//! Cookies and token-UI sessions. On https the session cookie is `__Host-meshmux_ui`
//! (Secure, Path=/); on plain-http loopback, where browsers refuse `__Host-` without
//! Secure, it is `meshmux_ui`. Always HttpOnly and SameSite=Lax; the value is an opaque
//! random id whose digest keys the session in the store.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::store::ns;
use crate::tokens::{Identity, digest, random_id};

pub const UI_COOKIE: &str = "meshmux_ui";

/// The name a cookie really has: `__Host-` prefixed on https.
pub fn cookie_name(settings: &Settings, base: &str) -> String {
    if settings.is_https() {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

pub fn set_cookie(
    settings: &Settings,
    base: &str,
    value: &str,
    max_age: Duration,
) -> Result<HeaderValue> {
    let secure = if settings.is_https() { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        cookie_name(settings, base),
        max_age.as_secs()
    ))
    .map_err(Error::internal)
}

pub fn cookie_value(headers: &HeaderMap, settings: &Settings, base: &str) -> Option<String> {
    let name = cookie_name(settings, base);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub identity: Identity,
    /// Every POST form of the UI carries this.
    pub csrf: String,
}

/// Creates a session and returns the `Set-Cookie` header for it.
pub async fn create(app: &App, identity: Identity) -> Result<HeaderValue> {
    let id = random_id(32);
    let session = Session {
        identity,
        csrf: random_id(24),
    };
    app.db
        .put(
            ns::SESSION,
            &digest(&id),
            &session,
            Some(app.settings.ui_session_ttl),
        )
        .await?;
    set_cookie(&app.settings, UI_COOKIE, &id, app.settings.ui_session_ttl)
}

pub async fn current(app: &App, headers: &HeaderMap) -> Result<Option<(String, Session)>> {
    let Some(id) = cookie_value(headers, &app.settings, UI_COOKIE) else {
        return Ok(None);
    };
    let key = digest(&id);
    Ok(app
        .db
        .get::<Session>(ns::SESSION, &key)
        .await?
        .map(|s| (key, s)))
}
