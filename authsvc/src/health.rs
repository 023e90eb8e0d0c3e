//! `/healthz` (the process answers), `/readyz` (key loaded, IdP metadata fetched, store
//! reachable), `/metrics`, and `/internal/revocations` for the filter.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::App;
use crate::error::Result;
use crate::store::ns;

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn readyz(State(app): State<App>) -> Response {
    let store = app.db.ping().await;
    let idp = app.idp.ready(&app.http).await;
    let ready = store.is_ok() && idp.is_ok();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let describe = |r: &Result<()>, what: &str| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            tracing::warn!(error = %e, "{what} not ready");
            format!("unavailable: {}", e.label())
        }
    };
    let body = json!({
        "ready": ready,
        "checks": {
            "signing_key": format!("ok (kid {})", app.keys.current.kid),
            "identity_provider": describe(&idp, "identity provider"),
            "store": describe(&store, "store"),
        },
        "store": app.db.0.kind(),
    });
    (status, Json(body)).into_response()
}

pub async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::global().render(),
    )
        .into_response()
}

/// `{"revoked": [jti, ...]}`: revoked bot tokens that have not expired yet.
pub async fn revocations(State(app): State<App>) -> Result<Json<serde_json::Value>> {
    let mut revoked: Vec<String> = app.db.scan(ns::REVOKED).await?;
    revoked.sort();
    Ok(Json(json!({ "revoked": revoked })))
}
