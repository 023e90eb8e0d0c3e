//! The demo backend's optional bearer-token check, for the backend-credentials tests: every
//! request must carry `Authorization: Bearer <token>` with a token that is listed in a file
//! (re-read on every request, so a test can rotate it) or that an OAuth authorization
//! server's RFC 7662 introspection endpoint calls active. Anything else gets 401.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

/// How the demo checks bearer tokens.
#[derive(Debug, Clone)]
pub enum Gate {
    /// Accepts the tokens listed in the file, one per line.
    File(PathBuf),
    /// Asks `url` (RFC 7662) as the client `client_id`/`client_secret`.
    Introspection {
        url: String,
        client_id: String,
        client_secret: String,
    },
}

impl Gate {
    async fn accepts(&self, http: &reqwest::Client, token: &str) -> Result<bool, String> {
        match self {
            Gate::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("reading {}: {e}", path.display()))?;
                Ok(text.lines().any(|line| line.trim() == token))
            }
            Gate::Introspection {
                url,
                client_id,
                client_secret,
            } => {
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("token", token)
                    .append_pair("token_type_hint", "access_token")
                    .finish();
                let answer = http
                    .post(url)
                    .basic_auth(client_id, Some(client_secret))
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| format!("introspection at {url}: {e}"))?;
                if !answer.status().is_success() {
                    return Err(format!("introspection at {url}: HTTP {}", answer.status()));
                }
                let json: serde_json::Value = answer
                    .json()
                    .await
                    .map_err(|e| format!("introspection at {url}: {e}"))?;
                Ok(json.get("active") == Some(&serde_json::Value::Bool(true)))
            }
        }
    }
}

/// The axum middleware: 401 with `WWW-Authenticate: Bearer` unless the gate accepts the
/// request's bearer token.
pub async fn check(gate: Arc<(Gate, reqwest::Client)>, request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let accepted = match token {
        Some(token) => match gate.0.accepts(&gate.1, token).await {
            Ok(ok) => ok,
            Err(e) => {
                tracing::warn!("demo bearer check: {e}");
                false
            }
        },
        None => false,
    };
    if accepted {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "this demo backend wants a valid bearer token\n",
        )
            .into_response()
    }
}
