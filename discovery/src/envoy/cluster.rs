//! One cluster per env (`env_<name>`), and `authsvc` when auth is on: HTTP/1.1 upstream,
//! TLS with SNI and certificate checks against the system roots for https URLs. Env clusters
//! are health-checked (`ops::health_check`) with a panic threshold of 0: otherwise, with its
//! only host unhealthy, Envoy's panic mode would route to it anyway, and a dead env would not
//! fail fast with "no healthy upstream", which the filter turns into the reason callers read.

use serde_json::{Value, json};

use super::CA_BUNDLE;
use crate::catalog::{BackendUrl, EnvTarget};

pub(super) fn clusters(targets: &[EnvTarget]) -> Vec<Value> {
    targets
        .iter()
        .map(|t| {
            let mut c = cluster(&t.cluster, &t.url);
            if let Some(obj) = c.as_object_mut() {
                obj.insert("health_checks".into(), json!([super::ops::health_check(t)]));
                obj.insert(
                    "common_lb_config".into(),
                    json!({ "healthy_panic_threshold": { "value": 0 } }),
                );
            }
            c
        })
        .collect()
}

/// A cluster of one endpoint at `url`'s host and port.
pub(super) fn cluster(name: &str, url: &BackendUrl) -> Value {
    let mut cluster = json!({
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "name": name,
        // An IP literal needs no resolver; a name is re-resolved as DNS changes.
        "type": if url.ip { "STATIC" } else { "LOGICAL_DNS" },
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                "socket_address": { "address": url.host, "port_value": url.port }
            } } }] }]
        },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http_protocol_options": {} }
            }
        }
    });
    if let Some(obj) = cluster.as_object_mut() {
        if !url.ip {
            obj.insert("dns_lookup_family".into(), json!("V4_PREFERRED"));
        }
        if url.tls {
            obj.insert("transport_socket".into(), tls(&url.host, url.ip));
        }
    }
    cluster
}

/// Envoy checks the chain against `trusted_ca` but checks the name only when told to, so
/// the certificate must also match the backend's host name (or IP address).
fn tls(host: &str, ip: bool) -> Value {
    let mut context = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": {
            "alpn_protocols": ["http/1.1"],
            "validation_context": {
                "trusted_ca": { "filename": CA_BUNDLE },
                "match_typed_subject_alt_names": [{
                    "san_type": if ip { "IP_ADDRESS" } else { "DNS" },
                    "matcher": { "exact": host }
                }]
            }
        }
    });
    // SNI carries host names only (RFC 6066).
    if !ip && let Some(obj) = context.as_object_mut() {
        obj.insert("sni".into(), json!(host));
    }
    json!({ "name": "envoy.transport_sockets.tls", "typed_config": context })
}
