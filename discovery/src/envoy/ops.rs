//! The operational side of the generated config: stats tags that turn the filter's stat names
//! into Prometheus labels, the gateway's `/healthz`, `/readyz` and metrics routes, the cluster
//! that reaches Envoy's own admin for the metrics route, and the env clusters' health checks.

use policy::config::AddressRange;
use policy::health::{LIVE_PATH, READY_PATH};
use policy::manifest::FilterConfig;
use policy::metrics;
use serde_json::{Value, json};

use crate::catalog::EnvTarget;

/// The cluster the metrics route uses to reach Envoy's admin listener.
pub const ADMIN_CLUSTER: &str = "meshmux_admin";
/// The one admin path the metrics route reaches (every other admin path stays off the
/// gateway listener).
pub const PROMETHEUS_PATH: &str = "/stats/prometheus";

/// Envoy's answer on the readiness path when the filter did not answer it (the filter answers
/// every `GET /readyz` itself, from the configuration it loaded).
pub const NOT_READY_BODY: &str =
    r#"{"status":"starting","reason":"the meshmux filter did not answer"}"#;

/// `stats_config` for the bootstrap: the label regexes and the histograms' buckets.
pub(super) fn stats_config() -> Value {
    let tags: Vec<Value> = metrics::stats_tags()
        .iter()
        .map(|(name, regex)| json!({ "tag_name": name, "regex": regex }))
        .collect();
    json!({
        "stats_tags": tags,
        "histogram_bucket_settings": [
            {
                "match": { "prefix": format!("wasmcustom.{}", metrics::DURATION) },
                "buckets": metrics::DURATION_BUCKETS_MS
            },
            {
                "match": { "prefix": format!("wasmcustom.{}", metrics::RESPONSE_SIZE) },
                "buckets": metrics::SIZE_BUCKETS_BYTES
            }
        ]
    })
}

/// The routes in front of everything else: liveness answered by Envoy, readiness (answered
/// by the filter; this route only speaks when it did not), and, with metrics on, the
/// Prometheus text from Envoy's admin. None of them needs a token.
pub(super) fn routes(filter: &FilterConfig, allow_from: Option<&[AddressRange]>) -> Vec<Value> {
    let json_response = |name: &str, path: &str, status: u16, body: &str| {
        json!({
            "name": name,
            "match": { "path": path },
            "direct_response": { "status": status, "body": { "inline_string": body } },
            "response_headers_to_add": [
                { "header": { "key": "content-type", "value": "application/json" },
                  "append_action": "OVERWRITE_IF_EXISTS_OR_ADD" }
            ]
        })
    };
    let mut ready = json_response("meshmux_readyz", READY_PATH, 503, NOT_READY_BODY);
    restrict(&mut ready, allow_from);
    let mut routes = vec![
        json_response("meshmux_healthz", LIVE_PATH, 200, "{\"status\":\"ok\"}\n"),
        ready,
    ];
    if filter.metrics.enabled {
        let mut metrics = json!({
            "name": "meshmux_metrics",
            "match": {
                "path": filter.metrics.path,
                "headers": [{ "name": ":method", "string_match": { "exact": "GET" } }]
            },
            "route": {
                "cluster": ADMIN_CLUSTER,
                // With a `path` match this replaces the whole path: the admin sees only
                // /stats/prometheus (a query such as `?usedonly` is kept).
                "prefix_rewrite": PROMETHEUS_PATH,
                "timeout": "10s"
            }
        });
        restrict(&mut metrics, allow_from);
        routes.push(metrics);
    }
    routes
}

const RBAC_FILTER: &str = "envoy.filters.http.rbac";

/// The RBAC filter, enforcing nothing by itself (no `rules`): the ops routes carry the rules.
pub(super) fn rbac_filter() -> Value {
    json!({
        "name": RBAC_FILTER,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
        }
    })
}

/// Lets only `allow_from` (the TCP peer's address; the listener is the edge) reach `route`;
/// anyone else gets Envoy's 403.
fn restrict(route: &mut Value, allow_from: Option<&[AddressRange]>) {
    let (Some(ranges), Some(obj)) = (allow_from, route.as_object_mut()) else {
        return;
    };
    let principals: Vec<Value> = ranges
        .iter()
        .map(|r| {
            json!({ "direct_remote_ip": {
                "address_prefix": r.address.to_string(),
                "prefix_len": r.prefix_len
            } })
        })
        .collect();
    obj.insert(
        "typed_per_filter_config".into(),
        json!({ RBAC_FILTER: {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute",
            "rbac": { "rules": {
                "action": "ALLOW",
                "policies": { "ops_allow_from": {
                    "permissions": [{ "any": true }],
                    "principals": principals
                } }
            } }
        } }),
    );
}

/// The paths jwt_authn must let through without a token (its rules are matched in order, and
/// a rule without `requires` requires nothing).
pub(super) fn open_paths(filter: &FilterConfig) -> Vec<String> {
    let mut paths = vec![LIVE_PATH.to_owned(), READY_PATH.to_owned()];
    if filter.metrics.enabled {
        paths.push(filter.metrics.path.clone());
    }
    paths
}

/// Envoy's admin listener as a cluster (only with metrics on).
pub(super) fn admin_cluster(admin_port: u16) -> Value {
    json!({
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "name": ADMIN_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": ADMIN_CLUSTER,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                "socket_address": { "address": "127.0.0.1", "port_value": admin_port }
            } } }] }]
        }
    })
}

/// How often an env's backend is checked, and how long a check may take.
const CHECK_INTERVAL: &str = "3s";
const CHECK_TIMEOUT: &str = "2s";

/// HTTP statuses that mean "a proxy in front of the backend could not reach it" (bad gateway,
/// service unavailable, gateway timeout): the only answers that count the backend as down.
const DEAD_STATUSES: std::ops::RangeInclusive<u16> = 502..=504;

/// An active health check for an env's cluster. MCP servers have no health endpoint, so the
/// check is a `HEAD` on the MCP path with the env's configured headers (its credentials), and
/// any HTTP answer but 502, 503 and 504 counts as up: a live server answers 405, 400, 401,
/// 200 … and plain servers (Python's `http.server`) answer 501 to a method they do not
/// define, while 502–504 are what a load balancer or ingress in front of a dead backend says.
/// No answer (refused, reset, timeout) is down. `HEAD` never opens the SSE stream a `GET` may.
/// Two failures in a row mark the backend down, one success brings it back; checks keep
/// running when the env gets no traffic.
pub(super) fn health_check(target: &EnvTarget) -> Value {
    let headers = super::listener::headers_to_add(target);
    json!({
        "timeout": CHECK_TIMEOUT,
        "interval": CHECK_INTERVAL,
        "no_traffic_interval": CHECK_INTERVAL,
        "unhealthy_threshold": 2,
        "healthy_threshold": 1,
        "http_health_check": {
            "host": target.url.authority,
            "path": target.url.path,
            "method": "HEAD",
            "expected_statuses": expected_statuses(),
            "request_headers_to_add": headers
        }
    })
}

/// `[100, 600)` without [`DEAD_STATUSES`], as Envoy's half-open ranges.
fn expected_statuses() -> Value {
    json!([
        { "start": 100, "end": DEAD_STATUSES.start() },
        { "start": DEAD_STATUSES.end() + 1, "end": 600 }
    ])
}
