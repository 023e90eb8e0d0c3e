//! The Istio and Envoy Gateway manifests: required fields, the wasm flag and failure policy,
//! the plugin config the filter would get, and env clusters and routes coherent with it.
//! (Their Envoy config also runs through `envoy --mode validate`: envoy_configs.rs.)

use discovery::envoy::{BUFFER_HEADROOM, FILTER_STATE_KEY, JWT_FILTER, WASM_TYPE_URL};
use policy::manifest::FilterConfig;
use serde_json::{Value, json};
use tests::mesh::{self, MeshEnvoy, find, patches};

fn filter_config(json: &str, what: &str) -> FilterConfig {
    serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("{what}: the plugin config is not a FilterConfig: {e}"))
}

/// Every env of the plugin config's manifest has the cluster and the route `meshmux
/// discover` would generate for it, and nothing routes elsewhere.
fn check_env_plumbing(config: &FilterConfig, mesh: &MeshEnvoy, other_clusters: &[&str]) {
    let mut cluster_names: Vec<&str> = mesh
        .clusters
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    cluster_names.sort_unstable();
    let mut expected: Vec<&str> = config
        .manifest
        .envs
        .iter()
        .map(|e| e.cluster.as_str())
        .collect();
    expected.extend(other_clusters);
    expected.sort_unstable();
    assert_eq!(cluster_names, expected, "one cluster per env");
    assert_eq!(
        mesh.routes.len(),
        config.manifest.envs.len(),
        "one route per env"
    );
    for env in &config.manifest.envs {
        let cluster = mesh
            .clusters
            .iter()
            .find(|c| c["name"] == env.cluster)
            .unwrap();
        let address = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            ["socket_address"];
        assert_eq!(
            format!(
                "{}:{}",
                address["address"].as_str().unwrap(),
                address["port_value"]
            ),
            env.authority,
            "{}: the cluster reaches the manifest's backend",
            env.name
        );
        let route = mesh
            .routes
            .iter()
            .find(|r| r["name"] == env.cluster)
            .unwrap();
        assert_eq!(route["match"]["path"], config.mcp_path);
        assert_eq!(
            route["match"]["filter_state"],
            json!([{"key": FILTER_STATE_KEY, "string_match": {"exact": env.name}}]),
            "{}: selected by the filter state the filter sets",
            env.name
        );
        assert_eq!(route["route"]["cluster"], env.cluster);
        assert_eq!(route["route"]["host_rewrite_literal"], env.authority);
        assert_eq!(route["route"]["prefix_rewrite"], env.path);
        let removed = route["request_headers_to_remove"].as_array().unwrap();
        assert!(
            removed.contains(&json!("authorization")),
            "the caller's token never goes upstream"
        );
        let added: Vec<(String, String)> = route["request_headers_to_add"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                let h = &h["header"];
                (
                    h["key"].as_str().unwrap().into(),
                    h["value"].as_str().unwrap().into(),
                )
            })
            .collect();
        let side_calls: Vec<(String, String)> = config.backends[&env.name]
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(
            added, side_calls,
            "{}: the same credentials as side calls",
            env.name
        );
    }
}

fn check_plugin(mesh: &MeshEnvoy, what: &str) -> FilterConfig {
    let plugin = mesh.plugin();
    assert_eq!(
        plugin["allow_on_headers_stop_iteration"], true,
        "{what}: the wasm flag"
    );
    assert_eq!(plugin["failure_policy"], "FAIL_RELOAD", "{what}");
    assert_eq!(plugin["root_id"], "meshmux", "{what}");
    assert_eq!(mesh.wasm_filter["typed_config"]["@type"], WASM_TYPE_URL);
    filter_config(&mesh.plugin_config().unwrap(), what)
}

#[test]
fn every_mesh_manifest_has_its_required_fields() {
    let known = [
        ("EnvoyFilter", "networking.istio.io/"),
        ("Gateway", "networking.istio.io/"),
        ("VirtualService", "networking.istio.io/"),
        ("RequestAuthentication", "security.istio.io/"),
        ("WasmPlugin", "extensions.istio.io/"),
        ("EnvoyExtensionPolicy", "gateway.envoyproxy.io/"),
        ("EnvoyPatchPolicy", "gateway.envoyproxy.io/"),
        ("SecurityPolicy", "gateway.envoyproxy.io/"),
        ("HTTPRouteFilter", "gateway.envoyproxy.io/"),
        ("HTTPRoute", "gateway.networking.k8s.io/"),
    ];
    let mut count = 0;
    for file in mesh::ALL {
        for doc in mesh::docs(file).unwrap() {
            let kind = doc["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: a document without kind"));
            let (_, group) = known
                .iter()
                .find(|(k, _)| *k == kind)
                .unwrap_or_else(|| panic!("{file}: unexpected kind {kind}"));
            let api = doc["apiVersion"].as_str().unwrap_or_default();
            assert!(
                api.starts_with(group),
                "{file}: {kind} has apiVersion {api}"
            );
            for field in ["name", "namespace"] {
                assert!(
                    doc["metadata"][field].is_string(),
                    "{file}: {kind} has no metadata.{field}"
                );
            }
            assert!(doc["spec"].is_object(), "{file}: {kind} has no spec");
            count += 1;
        }
    }
    assert!(count >= 10, "{count} documents");
}

#[test]
fn no_manifest_fails_open() {
    fn walk(v: &Value, file: &str) {
        match v {
            Value::String(s) => assert_ne!(s, "FAIL_OPEN", "{file}"),
            Value::Object(o) => {
                for (k, v) in o {
                    if k == "failOpen" || k == "fail_open" {
                        assert_eq!(v, &json!(false), "{file}: {k}");
                    }
                    walk(v, file);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, file)),
            _ => {}
        }
    }
    for file in mesh::ALL {
        mesh::docs(file).unwrap().iter().for_each(|d| walk(d, file));
    }
    // The walk can fail.
    let open = std::panic::catch_unwind(|| walk(&json!({"x": ["FAIL_OPEN"]}), "test"));
    assert!(open.is_err());
}

#[test]
fn the_istio_envoyfilter_adds_the_filter_after_jwt_authn_with_the_flag() {
    let istio = mesh::istio().unwrap();
    let config = check_plugin(&istio, mesh::ISTIO_ECDS);
    let auth = config.auth.as_ref().expect("the example has auth");
    assert_eq!(
        auth.claims_path,
        [JWT_FILTER, "payload"],
        "Istio's jwt_authn key"
    );

    let docs = mesh::docs(mesh::ISTIO_ECDS).unwrap();
    let filter = find(&docs, "EnvoyFilter", Some("meshmux-filter")).unwrap();
    let [insert] = patches(filter, "HTTP_FILTER")[..] else {
        panic!("one HTTP_FILTER patch")
    };
    assert_eq!(insert["patch"]["operation"], "INSERT_BEFORE");
    assert_eq!(
        insert["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"],
        "envoy.filters.http.router",
        "before the router, hence after Istio's jwt_authn"
    );
    let value = &insert["patch"]["value"];
    assert_eq!(
        value["name"], istio.wasm_filter["name"],
        "references the ECDS config"
    );
    assert_eq!(
        value["config_discovery"]["type_urls"],
        json!([WASM_TYPE_URL])
    );
    let [listener] = patches(filter, "LISTENER")[..] else {
        panic!("one LISTENER patch")
    };
    let limit = listener["patch"]["value"]["per_connection_buffer_limit_bytes"]
        .as_u64()
        .unwrap();
    assert!(limit >= config.max_body_bytes + BUFFER_HEADROOM);

    // Revocations come from authsvc through Istio's own cluster for it: the JWKS host.
    let gateway = mesh::docs(mesh::ISTIO_GATEWAY).unwrap();
    let authn = find(&gateway, "RequestAuthentication", None).unwrap();
    let rule = &authn["spec"]["jwtRules"][0];
    let jwks = url::Url::parse(rule["jwksUri"].as_str().unwrap()).unwrap();
    assert_eq!(
        auth.revocations.cluster,
        format!(
            "outbound|{}||{}",
            jwks.port().unwrap(),
            jwks.host_str().unwrap()
        )
    );
    let issuer = rule["issuer"].as_str().unwrap();
    assert!(
        auth.resource_metadata
            .as_deref()
            .unwrap()
            .starts_with(issuer)
    );
    assert_eq!(
        rule["audiences"],
        json!([format!("{issuer}{}", config.mcp_path)])
    );
    check_env_plumbing(&config, &istio, &[]);

    // Unrouted requests get the direct response, on the same path.
    let vs = find(&gateway, "VirtualService", None).unwrap();
    assert_eq!(
        vs["spec"]["http"][0]["match"][0]["uri"]["exact"],
        config.mcp_path
    );
    assert_eq!(vs["spec"]["http"][0]["directResponse"]["status"], 500);
}

#[test]
fn the_istio_wasmplugin_runs_at_authz_and_fails_closed_with_the_same_config() {
    let docs = mesh::docs(mesh::ISTIO_WASMPLUGIN).unwrap();
    let plugin = find(&docs, "WasmPlugin", None).unwrap();
    let spec = &plugin["spec"];
    assert_eq!(spec["phase"], "AUTHZ", "after Istio's jwt_authn");
    assert_eq!(spec["failStrategy"], "FAIL_CLOSE");
    assert_eq!(spec["pluginName"], "meshmux", "the filter's root_id");
    let config = spec["pluginConfig"].to_string();
    let parsed = filter_config(&config, mesh::ISTIO_WASMPLUGIN);
    assert_eq!(parsed.auth.unwrap().claims_path, [JWT_FILTER, "payload"]);
    let ecds = mesh::istio().unwrap().plugin_config().unwrap();
    assert_eq!(
        spec["pluginConfig"],
        serde_json::from_str::<Value>(&ecds).unwrap(),
        "the WasmPlugin and the EnvoyFilter carry the same plugin config"
    );
    let ecds_docs = mesh::docs(mesh::ISTIO_ECDS).unwrap();
    let filter = find(&ecds_docs, "EnvoyFilter", Some("meshmux-filter")).unwrap();
    assert_eq!(
        spec["selector"]["matchLabels"], filter["spec"]["workloadSelector"]["labels"],
        "the same gateway"
    );
}

#[test]
fn the_envoy_gateway_patch_sets_the_flag_on_the_policys_own_filter() {
    let eg = mesh::envoy_gateway().unwrap();
    // The flag only lands if the patch names the filter Envoy Gateway generates for this
    // EnvoyExtensionPolicy (mesh::envoy_gateway applies only those patches).
    let config = check_plugin(&eg, mesh::EG_PATCH);
    assert_eq!(eg.plugin()["fail_open"], false);

    let ext = mesh::docs(mesh::EG_EXTENSION).unwrap();
    let policy = find(&ext, "EnvoyExtensionPolicy", None).unwrap();
    let security = find(&ext, "SecurityPolicy", None).unwrap();
    let route = find(&ext, "HTTPRoute", None).unwrap();
    let route_name = &route["metadata"]["name"];
    assert_eq!(policy["spec"]["targetRefs"][0]["name"], *route_name);
    assert_eq!(security["spec"]["targetRefs"][0]["name"], *route_name);
    assert_eq!(
        route["spec"]["rules"][0]["matches"][0]["path"]["value"],
        config.mcp_path
    );
    let code = &policy["spec"]["wasm"][0]["code"];
    let kind = code["type"].as_str().unwrap();
    assert!(["HTTP", "Image"].contains(&kind));
    assert!(
        code[kind.to_ascii_lowercase()]["url"].is_string(),
        "code.{kind} has a url"
    );

    // Envoy Gateway's jwt_authn keys the payload by the provider's issuer.
    let provider = &security["spec"]["jwt"]["providers"][0];
    let issuer = provider["issuer"].as_str().unwrap();
    let auth = config.auth.as_ref().unwrap();
    assert_eq!(auth.claims_path, [JWT_FILTER, issuer]);
    assert_eq!(
        provider["audiences"],
        json!([format!("{issuer}{}", config.mcp_path)])
    );

    // The patches target the Gateway the route is attached to, by Envoy Gateway's names.
    let patch_docs = mesh::docs(mesh::EG_PATCH).unwrap();
    let patch = find(&patch_docs, "EnvoyPatchPolicy", None).unwrap();
    let gateway = patch["spec"]["targetRef"]["name"].as_str().unwrap();
    assert_eq!(route["spec"]["parentRefs"][0]["name"], gateway);
    let listener = format!(
        "{}/{gateway}/http",
        patch["metadata"]["namespace"].as_str().unwrap()
    );
    for op in patch["spec"]["jsonPatches"].as_array().unwrap() {
        let t = op["type"].as_str().unwrap();
        if t.ends_with("Listener") || t.ends_with("RouteConfiguration") {
            assert_eq!(op["name"], listener.as_str());
        }
    }
    let filter_name = eg.wasm_filter["name"].as_str().unwrap();
    for r in &eg.routes {
        assert!(
            r["typed_per_filter_config"][filter_name].is_object(),
            "env route {} enables the wasm filter",
            r["name"]
        );
    }
    check_env_plumbing(&config, &eg, &[auth.revocations.cluster.as_str()]);
}
