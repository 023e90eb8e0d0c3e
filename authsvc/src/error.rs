//! The one error type of authsvc. OAuth endpoints answer RFC 6749-style JSON; 5xx never
//! echo internals (the cause is logged once, here).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An OAuth error answered as `{"error", "error_description"}` with this status.
    #[error("{code}: {description}")]
    OAuth {
        status: StatusCode,
        code: &'static str,
        description: String,
    },
    /// A browser-facing refusal, answered as a small HTML page.
    #[error("{status}: {message}")]
    Page { status: StatusCode, message: String },
    /// The store (Redis) is unreachable or failed.
    #[error("store: {0}")]
    Store(String),
    /// The upstream identity provider failed or answered something unusable.
    #[error("identity provider: {0}")]
    Upstream(String),
    /// Anything else that is our fault.
    #[error("internal: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::oauth(StatusCode::BAD_REQUEST, "invalid_request", description)
    }
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::oauth(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }
    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::oauth(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }
    pub fn oauth(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self::OAuth {
            status,
            code,
            description: description.into(),
        }
    }
    pub fn page(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Page {
            status,
            message: message.into(),
        }
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }

    /// A short label for the errors metric.
    pub fn label(&self) -> &'static str {
        match self {
            Self::OAuth { code, .. } => code,
            Self::Page { .. } => "page",
            Self::Store(_) => "store",
            Self::Upstream(_) => "upstream",
            Self::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        crate::metrics::global().error(self.label());
        let mut response = match self {
            Error::OAuth {
                status,
                code,
                description,
            } => {
                tracing::info!(code, %description, "oauth error");
                (
                    status,
                    Json(json!({"error": code, "error_description": description})),
                )
                    .into_response()
            }
            Error::Page { status, message } => {
                tracing::info!(%status, %message, "refused");
                (
                    status,
                    crate::ui::page::message_page("Not allowed", &message),
                )
                    .into_response()
            }
            Error::Store(cause) => {
                tracing::error!(%cause, "store unavailable");
                server_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the state store is unavailable",
                )
            }
            Error::Upstream(cause) => {
                tracing::error!(%cause, "identity provider failure");
                server_error(StatusCode::BAD_GATEWAY, "the identity provider failed")
            }
            Error::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                server_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        };
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

fn server_error(status: StatusCode, description: &str) -> Response {
    (
        status,
        Json(json!({"error": "server_error", "error_description": description})),
    )
        .into_response()
}
