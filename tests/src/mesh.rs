//! The mesh manifests under `envoy/istio/` and `envoy/envoy-gateway/`, read as the Envoy
//! config they carry: the wasm filter (its `PluginConfig` and plugin config), the env clusters
//! and the env routes. The static checks (tests/tests/packaging.rs) and `envoy --mode
//! validate` (tests/tests/envoy_configs.rs) both read them through here.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::{Value, json};

use crate::prereq;

pub const ISTIO_ECDS: &str = "envoy/istio/envoyfilter-ecds.yaml";
pub const ISTIO_WASMPLUGIN: &str = "envoy/istio/wasmplugin.yaml";
pub const ISTIO_GATEWAY: &str = "envoy/istio/gateway.yaml";
pub const EG_EXTENSION: &str = "envoy/envoy-gateway/extension-policy.yaml";
pub const EG_PATCH: &str = "envoy/envoy-gateway/patch-policy.yaml";

/// Every manifest file, relative to the repository root.
pub const ALL: [&str; 5] = [
    ISTIO_ECDS,
    ISTIO_WASMPLUGIN,
    ISTIO_GATEWAY,
    EG_EXTENSION,
    EG_PATCH,
];

static NULL: Value = Value::Null;

/// The value at JSON pointer `pointer` in `v`, or null: reads never fail, so a missing field
/// shows up as a failed comparison naming it.
pub fn at<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer).unwrap_or(&NULL)
}

pub fn path(relative: &str) -> PathBuf {
    prereq::root().join(relative)
}

/// Every YAML document of `relative` (merge keys applied), as JSON values.
pub fn docs(relative: &str) -> Result<Vec<Value>> {
    let file = path(relative);
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    yaml_docs(&text).with_context(|| format!("{relative} is not valid YAML"))
}

/// The documents of a YAML text, merge keys (`<<:`) applied, as JSON values.
pub fn yaml_docs(text: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let mut value: serde_norway::Value = serde::Deserialize::deserialize(doc)?;
        value.apply_merge()?;
        if !value.is_null() {
            out.push(serde_json::to_value(&value)?);
        }
    }
    Ok(out)
}

/// The one document of `kind` (named `name`, if given) in `docs`.
pub fn find<'a>(docs: &'a [Value], kind: &str, name: Option<&str>) -> Result<&'a Value> {
    let mut found = docs.iter().filter(|d| {
        at(d, "/kind") == kind && name.is_none_or(|n| at(d, "/metadata/name").as_str() == Some(n))
    });
    let doc = found
        .next()
        .ok_or_else(|| anyhow!("no {kind} {}", name.unwrap_or_default()))?;
    if found.next().is_some() {
        bail!("more than one {kind} {}", name.unwrap_or_default());
    }
    Ok(doc)
}

/// The `value`s of an EnvoyFilter's patches that apply to `apply_to`.
pub fn patches<'a>(filter: &'a Value, apply_to: &str) -> Vec<&'a Value> {
    at(filter, "/spec/configPatches")
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| at(p, "/applyTo") == apply_to)
        .collect()
}

/// The Envoy config inside one mesh's manifests.
#[derive(Debug, Clone)]
pub struct MeshEnvoy {
    /// The wasm HTTP filter as it ends up in the chain (name + `typed_config`).
    pub wasm_filter: Value,
    pub clusters: Vec<Value>,
    pub routes: Vec<Value>,
}

impl MeshEnvoy {
    /// The `PluginConfig` of the wasm filter.
    pub fn plugin(&self) -> &Value {
        at(&self.wasm_filter, "/typed_config/config")
    }

    /// The plugin config (the filter's `FilterConfig` JSON) the manifests carry.
    pub fn plugin_config(&self) -> Result<String> {
        at(self.plugin(), "/configuration/value")
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("the wasm filter has no configuration.value string"))
    }
}

/// Istio: the ECDS extension config, the CLUSTER patches and the HTTP_ROUTE patches of
/// `envoyfilter-ecds.yaml`.
pub fn istio() -> Result<MeshEnvoy> {
    let docs = docs(ISTIO_ECDS)?;
    let filter = find(&docs, "EnvoyFilter", Some("meshmux-filter"))?;
    let envs = find(&docs, "EnvoyFilter", Some("meshmux-envs"))?;
    let ecds = patches(filter, "EXTENSION_CONFIG");
    let [ecds] = ecds.as_slice() else {
        bail!("{ISTIO_ECDS}: expected one EXTENSION_CONFIG patch");
    };
    let value = at(ecds, "/patch/value");
    Ok(MeshEnvoy {
        wasm_filter: json!({"name": at(value, "/name"), "typed_config": at(value, "/typed_config")}),
        clusters: patches(envs, "CLUSTER")
            .into_iter()
            .map(|p| at(p, "/patch/value").clone())
            .collect(),
        routes: patches(envs, "HTTP_ROUTE")
            .into_iter()
            .map(|p| at(p, "/patch/value").clone())
            .collect(),
    })
}

/// Envoy Gateway's name for the wasm filter of `EnvoyExtensionPolicy` `namespace/name`.
pub fn eg_filter_name(namespace: &str, name: &str, index: usize) -> String {
    format!("envoy.filters.http.wasm/envoyextensionpolicy/{namespace}/{name}/wasm/{index}")
}

/// Envoy Gateway: the wasm filter as Envoy Gateway builds it from the EnvoyExtensionPolicy
/// (its `wasm[0]`), with the patch policy's additions to it applied, and the clusters and
/// routes the patch policy adds.
pub fn envoy_gateway() -> Result<MeshEnvoy> {
    let ext_docs = docs(EG_EXTENSION)?;
    let policy = find(&ext_docs, "EnvoyExtensionPolicy", None)?;
    let wasm = at(policy, "/spec/wasm/0");
    let name = eg_filter_name(
        at(policy, "/metadata/namespace")
            .as_str()
            .unwrap_or_default(),
        at(policy, "/metadata/name").as_str().unwrap_or_default(),
        0,
    );
    // What Envoy Gateway's translator writes (internal/xds/translator/wasm.go): the config
    // as a StringValue holding its JSON, V8, and fail_open from failOpen.
    let mut plugin = json!({
        "name": at(wasm, "/name"),
        "root_id": at(wasm, "/rootID"),
        "configuration": {
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": serde_json::to_string(at(wasm, "/config"))?
        },
        "fail_open": at(wasm, "/failOpen").as_bool().unwrap_or(false),
        "vm_config": {"vm_id": name, "runtime": "envoy.wasm.runtime.v8",
                      "code": {"local": {"filename": "meshmux_filter.wasm"}}}
    });
    let patch_docs = docs(EG_PATCH)?;
    let patch = find(&patch_docs, "EnvoyPatchPolicy", None)?;
    let ops: Vec<&Value> = at(patch, "/spec/jsonPatches")
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let (mut clusters, mut routes) = (Vec::new(), Vec::new());
    for op in ops {
        let operation = at(op, "/operation");
        let on_filter = at(operation, "/jsonPath")
            .as_str()
            .is_some_and(|p| p.contains(&format!("'{name}'")));
        match at(op, "/type").as_str().unwrap_or_default() {
            t if t.ends_with("Listener") && on_filter => {
                let field = at(operation, "/path")
                    .as_str()
                    .and_then(|p| p.strip_prefix('/'))
                    .ok_or_else(|| anyhow!("patch on the wasm filter without a /path"))?;
                plugin
                    .as_object_mut()
                    .ok_or_else(|| anyhow!("the plugin config is not an object"))?
                    .insert(field.to_owned(), at(operation, "/value").clone());
            }
            t if t.ends_with("Cluster") => clusters.push(at(operation, "/value").clone()),
            t if t.ends_with("RouteConfiguration") => routes.push(at(operation, "/value").clone()),
            _ => {}
        }
    }
    Ok(MeshEnvoy {
        wasm_filter: json!({
            "name": name,
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": plugin
            }
        }),
        clusters,
        routes,
    })
}

/// The stand-in cluster jwt_authn fetches keys from in [`validation_bootstrap`].
pub const JWKS_CLUSTER: &str = "jwks";

/// A static bootstrap around a mesh's Envoy config, for `envoy --mode validate`: one listener
/// whose chain is `jwt_authn` (payload under `payload_key`), the wasm filter (loading
/// `wasm`), the router; the env routes, then a catch-all; the clusters plus `extra_clusters`
/// (stand-ins for what the mesh itself provides) and the JWKS
/// stand-in.
pub fn validation_bootstrap(
    mesh: &MeshEnvoy,
    wasm: &Path,
    payload_key: &str,
    extra_clusters: &[&str],
) -> Value {
    let mut filter = mesh.wasm_filter.clone();
    if let Some(code) = filter.pointer_mut("/typed_config/config/vm_config/code") {
        *code = json!({"local": {"filename": wasm.display().to_string()}});
    }
    let mut clusters = mesh.clusters.clone();
    for name in extra_clusters.iter().chain(&[JWKS_CLUSTER]) {
        clusters.push(json!({
            "name": name, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint":
                {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9}}}}]}]}
        }));
    }
    let mut routes = mesh.routes.clone();
    routes.push(json!({"match": {"prefix": "/"}, "direct_response": {"status": 500}}));
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": "mesh",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "mesh",
                        "route_config": {"virtual_hosts": [{"name": "mesh", "domains": ["*"], "routes": routes}]},
                        "http_filters": [
                            {"name": "envoy.filters.http.jwt_authn", "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                                "providers": {"mesh": {
                                    "issuer": "https://mcp.example.com",
                                    "remote_jwks": {"http_uri": {
                                        "uri": "http://jwks.example/jwks.json",
                                        "cluster": JWKS_CLUSTER, "timeout": "1s"}},
                                    "payload_in_metadata": payload_key
                                }}
                            }},
                            filter,
                            {"name": "envoy.filters.http.router", "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
                        ]
                    }
                }]}]
            }],
            "clusters": clusters
        }
    })
}
