//! The Envoy side of authorization, generated only when the config has an `auth` block:
//! authsvc's cluster and public routes, `jwt_authn` in front of the meshmux filter, and the
//! MCP challenge on every 401 Envoy answers itself.

use policy::revocation::AUTHSVC_CLUSTER;
use serde_json::{Value, json};

use super::cluster;
use crate::catalog::AuthTarget;

pub const JWT_FILTER: &str = "envoy.filters.http.jwt_authn";
/// The provider name in jwt_authn's config.
pub const PROVIDER: &str = "authsvc";
/// Where jwt_authn puts the verified payload (under `JWT_FILTER` in the dynamic metadata);
/// the filter's `claims_path` names the same place.
pub const PAYLOAD_KEY: &str = "jwt_payload";
/// How long Envoy keeps authsvc's keys: a new signing key is accepted within this long.
pub const JWKS_CACHE: &str = "30s";

pub(super) fn cluster(auth: &AuthTarget) -> Value {
    cluster::cluster(AUTHSVC_CLUSTER, &auth.authsvc)
}

/// authsvc's public paths. `/internal/*` is deliberately absent: the revocation list is for
/// the filter's side calls only, which go to the cluster directly.
pub(super) fn routes() -> Vec<Value> {
    let to_authsvc = |name: &str, matcher: Value| {
        json!({
            "name": name,
            "match": matcher,
            "route": { "cluster": AUTHSVC_CLUSTER, "timeout": "30s" }
        })
    };
    vec![
        // Protected-resource and AS metadata, OIDC discovery, the JWKS.
        to_authsvc(
            "authsvc_well_known",
            json!({ "path_separated_prefix": "/.well-known" }),
        ),
        to_authsvc("authsvc_auth", json!({ "path_separated_prefix": "/auth" })),
        to_authsvc("authsvc_register", json!({ "path": "/register" })),
        to_authsvc("authsvc_ui", json!({ "path_separated_prefix": "/ui" })),
    ]
}

/// `jwt_authn`, placed before the meshmux filter: every request under the MCP path needs a
/// token authsvc signed for this gateway. The payload goes to the dynamic metadata (which a
/// client cannot set, unlike headers) and the token itself is not forwarded. `open_paths`
/// (health, metrics) are matched first and need no token, even if the MCP path prefixes them.
pub(super) fn jwt_filter(auth: &AuthTarget, mcp_path: &str, open_paths: &[String]) -> Value {
    let mut rules: Vec<Value> = open_paths
        .iter()
        .map(|p| json!({ "match": { "path": p } }))
        .collect();
    rules.push(json!({
        "match": { "prefix": mcp_path },
        "requires": { "provider_name": PROVIDER }
    }));
    json!({
        "name": JWT_FILTER,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {
                PROVIDER: {
                    "issuer": auth.issuer,
                    "audiences": [auth.audience],
                    "remote_jwks": {
                        "http_uri": {
                            "uri": auth.jwks_uri,
                            "cluster": AUTHSVC_CLUSTER,
                            "timeout": "2s"
                        },
                        "cache_duration": JWKS_CACHE,
                        // Fetched at start and refreshed in the background; a failed fetch
                        // is retried after `failed_refetch_duration` (1 s by default).
                        "async_fetch": {}
                    },
                    // Only `Authorization: Bearer`: without `from_headers` jwt_authn also
                    // takes a token from an `access_token` query parameter, which the MCP
                    // spec forbids (tokens in URLs end up in logs and histories).
                    "from_headers": [{ "name": "authorization", "value_prefix": "Bearer " }],
                    "payload_in_metadata": PAYLOAD_KEY,
                    "forward": false
                }
            },
            "rules": rules
        }
    })
}

/// Adds the MCP authorization challenge to the 401s Envoy answers itself (jwt_authn's
/// "Jwt is missing", "Jwt is expired", …), replacing jwt_authn's own `Bearer realm=…`.
/// jwt_authn answers a token for another audience with 403; the MCP spec wants 401 for every
/// invalid token (a client then re-authorizes for this resource), so on the MCP path a local
/// 403 becomes a 401 too (nothing else there answers 403 locally).
pub(super) fn local_reply_config(auth: &AuthTarget, mcp_path: &str) -> Value {
    let status = |code: u32, key: &str| {
        json!({ "status_code_filter": { "comparison": {
            "op": "EQ",
            "value": { "default_value": code, "runtime_key": key }
        } } })
    };
    let challenge = json!([{
        "header": {
            "key": "www-authenticate",
            "value": super::escape_header_value(&challenge(auth))
        },
        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"
    }]);
    json!({
        "mappers": [
            {
                "filter": { "and_filter": { "filters": [
                    status(403, "meshmux.wrong_audience_status"),
                    { "header_filter": { "header": {
                        "name": ":path",
                        "string_match": { "prefix": mcp_path }
                    } } }
                ] } },
                "status_code": 401,
                "headers_to_add": challenge
            },
            {
                "filter": status(401, "meshmux.unauthorized_status"),
                "headers_to_add": challenge
            }
        ]
    })
}

/// `Bearer resource_metadata="…"`: where an MCP client starts its authorization flow.
pub fn challenge(auth: &AuthTarget) -> String {
    format!("Bearer resource_metadata=\"{}\"", auth.resource_metadata)
}
