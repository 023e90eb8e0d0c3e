//! The shared state and the router (every route of the HTTP surface is listed here).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::config::Settings;
use crate::idp::Idp;
use crate::keys::KeyRing;
use crate::store::Db;

pub struct Inner {
    pub settings: Settings,
    pub keys: KeyRing,
    pub db: Db,
    pub idp: Idp,
    pub http: reqwest::Client,
    pub client_metadata: crate::oauth::clients::MetadataCache,
    /// Dynamic registrations per source address.
    pub registrations: crate::limit::RateLimit,
    /// `auth.users_file`: who may sign in.
    pub users: Option<crate::users::Whitelist>,
}

#[derive(Clone)]
pub struct App(pub Arc<Inner>);

impl std::ops::Deref for App {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl App {
    pub fn new(settings: Settings, keys: KeyRing, db: Db) -> anyhow::Result<App> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        let idp = Idp::new(&settings);
        let registrations = crate::limit::RateLimit::new(
            settings.registrations_per_hour,
            std::time::Duration::from_secs(3600),
        );
        let users = settings.users.as_ref().map(crate::users::Whitelist::new);
        Ok(App(Arc::new(Inner {
            registrations,
            users,
            settings,
            keys,
            db,
            idp,
            http,
            client_metadata: Default::default(),
        })))
    }

    /// The store the settings ask for: Redis when `auth.redis.enabled`, else memory.
    pub fn store_for(settings: &Settings) -> anyhow::Result<Db> {
        Ok(match &settings.redis {
            Some(r) => Db(Arc::new(crate::store::redis::RedisStore::new(
                &r.url,
                &r.encryption_key,
            )?)),
            None => Db::memory(),
        })
    }

    /// `identity` as the users file admits it (unchanged without one); `Err` says why not.
    pub fn admit(
        &self,
        identity: crate::tokens::Identity,
    ) -> Result<crate::tokens::Identity, String> {
        match &self.users {
            Some(list) => list.admit(&self.settings, identity),
            None => Ok(identity),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.issuer)
    }
}

pub fn router(app: App) -> Router {
    use crate::{health, idp, oauth, ui};
    Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            get(oauth::metadata::protected_resource),
        )
        .route(
            "/.well-known/oauth-protected-resource/{*rest}",
            get(oauth::metadata::protected_resource),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::metadata::authorization_server),
        )
        .route(
            "/.well-known/openid-configuration",
            get(oauth::metadata::authorization_server),
        )
        .route("/.well-known/jwks.json", get(oauth::metadata::jwks))
        .route("/register", post(oauth::register::register))
        .route("/auth/login", get(oauth::authorize::authorize))
        .route("/auth/callback", get(oauth::authorize::callback))
        .route("/auth/consent", post(oauth::consent::answer))
        .route("/auth/token", post(oauth::token::token))
        .route(
            "/auth/dev/login",
            get(idp::dev::page).post(idp::dev::submit),
        )
        .route("/ui", get(ui::home))
        .route("/ui/login", get(ui::login))
        .route("/ui/callback", get(ui::callback))
        .route("/ui/tokens", get(ui::tokens::list).post(ui::tokens::mint))
        .route("/ui/tokens/revoke", post(ui::tokens::revoke))
        .route("/ui/logout", post(ui::logout).get(ui::logout))
        .route("/internal/revocations", get(health::revocations))
        .route("/internal/minted", post(crate::mint::record_from_cli))
        .route("/internal/revoke", post(crate::internal::revoke))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

/// Latency per route, and headers every answer carries.
async fn observe(State(_app): State<App>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let mut response = next.run(request).await;
    crate::metrics::global().observe(&route, started.elapsed());
    let headers = response.headers_mut();
    headers.insert(
        "x-content-type-options",
        axum::http::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        "referrer-policy",
        axum::http::HeaderValue::from_static("no-referrer"),
    );
    response
}
