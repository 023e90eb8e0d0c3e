//! The listener: one HCM whose filter chain is `jwt_authn` (with auth), the meshmux wasm
//! filter (through ECDS), then the router. Its routes come through RDS (`rds.yaml`):
//! authsvc's public routes (with auth), one route per env selected by the filter state the
//! filter sets, and a last route that refuses anything the filter did not route.
//!
//! Routes live in RDS, not inline in the listener, for live reload: a changed route table
//! applies to every open connection, while a changed listener only serves new ones and
//! leaves kept-alive connections on the old routes for the whole drain time — so a client
//! could not reach an env added at runtime over a connection it already had.

use policy::manifest::FilterConfig;
use serde_json::{Value, json};

use super::{BUFFER_HEADROOM, FILTER_NAME, FILTER_STATE_KEY, Options, auth, ops, watched};
use crate::catalog::{AuthTarget, EnvTarget};

/// What a request gets when it reaches the router without an env chosen by the filter.
pub const UNROUTED_BODY: &str = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"meshmux filter did not route this request"}}"#;

/// Headers a client may send that must never reach a backend: the filter removes the
/// client's credentials, and the route removes them again before adding the env's own.
const CLIENT_CREDENTIALS: [&str; 2] = ["authorization", "proxy-authorization"];

/// The route table `rds.yaml` serves, named [`ROUTE_CONFIG`].
pub(super) fn route_config(
    targets: &[EnvTarget],
    auth_target: Option<&AuthTarget>,
    filter: &FilterConfig,
    opts: &Options,
) -> Value {
    // Health and metrics first, then authsvc's paths: none of them is under the MCP path,
    // but the order states it.
    let mut routes = ops::routes(filter, opts.ops_allow_from.as_deref());
    if auth_target.is_some() {
        routes.extend(auth::routes());
    }
    routes.extend(targets.iter().map(|t| env_route(t, &filter.mcp_path)));
    routes.push(json!({
        "name": "meshmux_unrouted",
        "match": { "prefix": filter.mcp_path },
        "direct_response": { "status": 500, "body": { "inline_string": UNROUTED_BODY } },
        "response_headers_to_add": [
            { "header": { "key": "content-type", "value": "application/json" },
              "append_action": "OVERWRITE_IF_EXISTS_OR_ADD" }
        ]
    }));
    json!({
        "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        "name": ROUTE_CONFIG,
        // Routes name clusters that arrive through CDS; a route whose cluster is not
        // there yet answers 503 rather than making Envoy refuse the whole table.
        "validate_clusters": false,
        "virtual_hosts": [{ "name": "meshmux", "domains": ["*"], "routes": routes }]
    })
}

/// `internal_address_config` trusting no peer: one /32 no TCP peer can have (checked on
/// Envoy 1.40: an empty config trusts loopback and the private ranges).
pub fn edge_internal_addresses() -> Value {
    json!({ "cidr_ranges": [{ "address_prefix": "255.255.255.255", "prefix_len": 32 }] })
}

/// The name of the route table the listener asks RDS for.
pub const ROUTE_CONFIG: &str = "meshmux";

pub(super) fn listener(
    auth_target: Option<&AuthTarget>,
    filter: &FilterConfig,
    opts: &Options,
    ecds_path: &str,
    rds_path: &str,
) -> Value {
    // RBAC first, so that it refuses a probe from outside `gateway.ops_allow_from` before
    // the meshmux filter answers `/readyz`. Its rules are per route (the ops routes).
    let mut http_filters: Vec<Value> = opts
        .ops_allow_from
        .as_ref()
        .map(|_| ops::rbac_filter())
        .into_iter()
        .collect();
    http_filters.extend(
        auth_target.map(|a| auth::jwt_filter(a, &filter.mcp_path, &ops::open_paths(filter))),
    );
    http_filters.push(json!({
        "name": FILTER_NAME,
        "config_discovery": {
            "config_source": watched(ecds_path, &opts.out_dir),
            "type_urls": [opts.filter_kind.type_url()]
        }
    }));
    http_filters.push(json!({
        "name": "envoy.filters.http.router",
        // No `x-envoy-expected-rq-timeout-ms` and the like toward backends and authsvc.
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
            "suppress_envoy_headers": true
        }
    }));
    let mut hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "meshmux",
        "codec_type": "AUTO",
        "normalize_path": true,
        "merge_slashes": true,
        // Envoy is the edge: the caller is the peer address, never a client's
        // `x-forwarded-for`. And no peer is internal (the one range matches no TCP peer; an
        // empty `internal_address_config` would trust loopback and private ranges), so Envoy
        // strips `x-envoy-*` control headers (`x-envoy-retry-on`,
        // `x-envoy-upstream-rq-timeout-ms`, …) from every request instead of honouring them.
        "use_remote_address": true,
        "internal_address_config": edge_internal_addresses(),
        // `mcp.example.com.` is `mcp.example.com` for routing and the Host check.
        "strip_trailing_host_dot": true,
        "access_log": [{
            "name": "envoy.access_loggers.stdout",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
            }
        }],
        "rds": {
            "config_source": watched(rds_path, &opts.out_dir),
            "route_config_name": ROUTE_CONFIG
        },
        "http_filters": http_filters
    });
    if let (Some(a), Some(obj)) = (auth_target, hcm.as_object_mut()) {
        obj.insert(
            "local_reply_config".into(),
            auth::local_reply_config(a, &filter.mcp_path),
        );
    }
    json!({
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": "meshmux",
        "address": { "socket_address": { "address": opts.bind, "port_value": opts.port } },
        // The filter buffers whole request bodies: the buffer must hold the largest one.
        "per_connection_buffer_limit_bytes": filter.max_body_bytes.saturating_add(BUFFER_HEADROOM),
        "filter_chains": [{
            "filters": [{ "name": "envoy.filters.network.http_connection_manager", "typed_config": hcm }]
        }]
    })
}

fn env_route(target: &EnvTarget, mcp_path: &str) -> Value {
    let headers = headers_to_add(target);
    json!({
        "name": target.cluster,
        "match": {
            "path": mcp_path,
            "filter_state": [{ "key": FILTER_STATE_KEY, "string_match": { "exact": target.name } }]
        },
        "route": {
            "cluster": target.cluster,
            "host_rewrite_literal": target.url.authority,
            // With a `path` match, `prefix_rewrite` replaces the whole path (the query stays).
            "prefix_rewrite": target.url.path,
            "timeout": format!("{}s", target.timeout_seconds)
        },
        "request_headers_to_remove": CLIENT_CREDENTIALS,
        "request_headers_to_add": headers
    })
}

/// The env's configured headers (its credentials) as Envoy `request_headers_to_add`
/// entries, replacing any the request has.
pub(super) fn headers_to_add(target: &EnvTarget) -> Vec<Value> {
    target
        .headers
        .iter()
        .map(|(k, v)| {
            json!({
                "header": { "key": k, "value": escape_header_value(v) },
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"
            })
        })
        .collect()
}

/// Envoy reads `%…%` in header values as command operators; a literal `%` is `%%`.
pub fn escape_header_value(value: &str) -> String {
    value.replace('%', "%%")
}
