//! The upstream login: one OIDC code flow (PKCE + nonce) shared by the OAuth façade
//! (`/auth/callback`) and the token UI (`/ui/callback`).

pub mod azure;
pub mod dev;
pub mod oidc;

use std::time::Duration;

use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::config::{IdpSettings, Settings};
use crate::error::{Error, Result};
use crate::oauth::authorize::AuthRequest;
use crate::store::ns;
use crate::tokens::{Identity, digest, random_id, same};

pub const TRANSACTION_TTL: Duration = Duration::from_secs(600);
/// Binds a login's `state` to the browser that started it (login CSRF: without it, an
/// attacker could send a victim to the callback with the attacker's own `state` and code,
/// signing the victim in as the attacker). HttpOnly, SameSite=Lax (sent on the IdP's
/// top-level redirect back), `__Host-` on https; one per browser, shared by its logins.
pub const LOGIN_COOKIE: &str = "meshmux_login";

pub enum Idp {
    Oidc(Box<oidc::Oidc>),
    Dev(dev::Dev),
}

impl Idp {
    pub fn new(settings: &Settings) -> Idp {
        match &settings.idp {
            IdpSettings::Oidc(o) => Idp::Oidc(Box::new(oidc::Oidc::new(o.clone()))),
            IdpSettings::Dev { users } => Idp::Dev(dev::Dev {
                users: users.clone(),
            }),
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Idp::Oidc(o) => o.settings.label,
            Idp::Dev(_) => "dev",
        }
    }

    /// For `/readyz`: the IdP's metadata and keys are at hand (fetched now if not yet).
    pub async fn ready(&self, http: &reqwest::Client) -> Result<()> {
        match self {
            Idp::Oidc(o) => o.provider(http).await.map(|_| ()),
            Idp::Dev(_) => Ok(()),
        }
    }
}

/// Why a login was started, and what to do when it comes back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Purpose {
    /// An MCP client's authorization request, waiting for the user.
    Authorize(AuthRequest),
    /// A person logging into the token UI.
    Ui,
}

impl Purpose {
    pub fn callback_path(&self) -> &'static str {
        match self {
            Purpose::Authorize(_) => "/auth/callback",
            Purpose::Ui => "/ui/callback",
        }
    }
    pub fn label(&self) -> &'static str {
        match self {
            Purpose::Authorize(_) => "oauth",
            Purpose::Ui => "ui",
        }
    }
}

/// An upstream login in flight, stored under the `state` we sent upstream; single use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transaction {
    pub purpose: Purpose,
    pub nonce: String,
    pub verifier: String,
    /// Digest of the browser's `LOGIN_COOKIE` value.
    #[serde(default)]
    pub browser: String,
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// RFC 9207: the issuer of the IdP that answered.
    pub iss: Option<String>,
}

/// Stores a transaction and redirects the browser to the IdP's login, binding the
/// transaction to the browser (`LOGIN_COOKIE`, set here if the browser has none).
pub async fn begin(app: &App, headers: &HeaderMap, purpose: Purpose) -> Result<Response> {
    let state = random_id(24);
    let binding = crate::ui::session::cookie_value(headers, &app.settings, LOGIN_COOKIE)
        .filter(|v| {
            v.len() == 32
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .unwrap_or_else(|| random_id(24));
    let tx = Transaction {
        purpose,
        nonce: random_id(24),
        verifier: random_id(48),
        browser: digest(&binding),
    };
    let redirect_uri = app.url(tx.purpose.callback_path());
    let location = match &app.idp {
        Idp::Oidc(o) => {
            o.authorize_url(&app.http, &redirect_uri, &state, &tx)
                .await?
        }
        Idp::Dev(_) => format!("{}?state={state}", app.url("/auth/dev/login")),
    };
    app.db
        .put(ns::TRANSACTION, &state, &tx, Some(TRANSACTION_TTL))
        .await?;
    let mut response = Redirect::to(&location).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        crate::ui::session::set_cookie(&app.settings, LOGIN_COOKIE, &binding, TRANSACTION_TTL)?,
    );
    Ok(response)
}

/// Consumes the transaction named by `state` and exchanges the code for an identity.
/// `path` is the callback that was hit; a transaction started for the other one is refused.
pub async fn finish(
    app: &App,
    headers: &HeaderMap,
    query: CallbackQuery,
    path: &str,
) -> Result<(Identity, Purpose)> {
    let bad = |m: &str| Error::page(axum::http::StatusCode::BAD_REQUEST, m);
    let state = query
        .state
        .ok_or_else(|| bad("The login answer has no state."))?;
    let tx: Transaction = app
        .db
        .take(ns::TRANSACTION, &state)
        .await?
        .ok_or_else(|| bad("This login has expired or was already used. Start again."))?;
    if tx.purpose.callback_path() != path {
        return Err(bad("This login was started elsewhere."));
    }
    let cookie = crate::ui::session::cookie_value(headers, &app.settings, LOGIN_COOKIE);
    if !cookie.is_some_and(|c| same(&digest(&c), &tx.browser)) {
        crate::metrics::global().error("login_csrf");
        tracing::warn!("login answer refused: it did not come back to the browser that started it");
        return Err(bad(
            "This sign-in answer did not come back to the browser that started the sign-in \
             (or your browser blocks cookies). Nobody was signed in; start again from the application.",
        ));
    }
    // Before anything else in the answer (errors included) is believed: RFC 9207.
    let (expected, required) = match &app.idp {
        Idp::Oidc(o) => {
            let d = o.provider(&app.http).await?.discovery;
            (d.issuer, d.authorization_response_iss_parameter_supported)
        }
        Idp::Dev(_) => (app.settings.issuer.clone(), false),
    };
    if let Err(why) = check_response_issuer(&expected, required, query.iss.as_deref()) {
        tracing::warn!(iss = ?query.iss, %expected, "login answer refused: {why}");
        crate::metrics::global().error("issuer_mismatch");
        return Err(bad(&format!(
            "This sign-in answer is refused: {why}. It may come from another identity provider \
             than the one this login was sent to (a mix-up attack). No code was issued; start again."
        )));
    }
    if let Some(error) = query.error {
        let detail = query.error_description.unwrap_or_default();
        return Err(bad(&format!(
            "The identity provider refused the login: {error} {detail}"
        )));
    }
    let code = query
        .code
        .ok_or_else(|| bad("The login answer has no code."))?;
    let identity = match &app.idp {
        Idp::Oidc(o) => {
            o.exchange(&app.http, &app.url(path), &code, &tx, &app.settings)
                .await?
        }
        Idp::Dev(d) => d.exchange(app, &code).await?,
    };
    // `auth.users_file`: only the people it lists get in.
    // (The refusal page logs the reason, which names the email.)
    let identity = app.admit(identity).map_err(|why| {
        crate::metrics::global().error("user_not_listed");
        Error::page(axum::http::StatusCode::FORBIDDEN, why)
    })?;
    crate::metrics::global().login(app.idp.label(), tx.purpose.label());
    tracing::info!(sub = %identity.sub, roles = ?identity.roles, purpose = tx.purpose.label(), "login");
    Ok((identity, tx.purpose))
}

/// RFC 9207 mix-up protection: the `iss` of an authorization response must be the issuer
/// the login was sent to; it must be there when the IdP's metadata says it always sends it
/// (`authorization_response_iss_parameter_supported`). Simple string comparison (§2.4).
pub fn check_response_issuer(
    expected: &str,
    required: bool,
    iss: Option<&str>,
) -> std::result::Result<(), &'static str> {
    match iss {
        Some(iss) if iss == expected => Ok(()),
        Some(_) => Err("its issuer (iss) is not the identity provider's"),
        None if required => {
            Err("it carries no issuer (iss), which this identity provider always sends")
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::check_response_issuer as check;

    #[test]
    fn response_issuer_rules() {
        let idp = "https://idp.example";
        assert_eq!(check(idp, true, Some(idp)), Ok(()));
        assert_eq!(check(idp, false, Some(idp)), Ok(()));
        assert_eq!(check(idp, false, None), Ok(()));
        assert!(check(idp, true, None).is_err());
        assert!(check(idp, true, Some("https://evil.example")).is_err());
        assert!(check(idp, false, Some("https://evil.example")).is_err());
        // No normalisation: a trailing slash is another issuer.
        assert!(check(idp, true, Some("https://idp.example/")).is_err());
    }
}
