//! RFC 9728 protected-resource metadata, RFC 8414 / OIDC discovery metadata, and the JWKS.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::app::App;

pub async fn protected_resource(State(app): State<App>) -> Json<Value> {
    Json(json!({
        "resource": app.settings.audience,
        "authorization_servers": [app.settings.issuer],
        "scopes_supported": [super::SCOPE],
        "bearer_methods_supported": ["header"],
        "resource_name": "meshmux",
    }))
}

pub async fn authorization_server(State(app): State<App>) -> Json<Value> {
    Json(json!({
        "issuer": app.settings.issuer,
        "authorization_endpoint": app.url("/auth/login"),
        "token_endpoint": app.url("/auth/token"),
        "registration_endpoint": app.url("/register"),
        "jwks_uri": app.url("/.well-known/jwks.json"),
        "scopes_supported": [super::SCOPE],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        "client_id_metadata_document_supported": true,
        "authorization_response_iss_parameter_supported": true,
        // OIDC discovery requires these two; authsvc issues no ID tokens.
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

pub async fn jwks(State(app): State<App>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(app.keys.jwks()),
    )
}
