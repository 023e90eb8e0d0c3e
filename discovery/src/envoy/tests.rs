use std::path::PathBuf;
use std::process::Command;

use policy::config::{Config, Format};
use serde_json::{Value, json};

use super::*;
use crate::catalog::{self, Discovered, EnvResult};

/// Two envs: Prod over https with a credential that holds a `%`, a custom timeout and a
/// path with a query; Staging over plain http on an IP address with the defaults.
const CONFIG: &str = r#"{
  "environments": {
    "Prod": {
      "description": "Production",
      "url": "https://mcp.example.com/v1/mcp?tenant=acme",
      "headers": {"Authorization": "Bearer $PROD_TOKEN", "X-Tenant": "acme"},
      "timeout_seconds": 30
    },
    "Staging": {
      "description": "Staging",
      "url": "http://10.0.0.7:8080/mcp"
    }
  },
  "gateway": {"max_body_bytes": 2097152}
}"#;

/// The same envs behind authorization: tokens from authsvc, two roles.
const AUTH: &str = r#"{
  "dev": {"users": {"alice": ["staging-reader"], "bob": ["admin"]}},
  "base_url": "https://gw.example.com",
  "signing_key_file": "/var/lib/meshmux/signing.pem",
  "roles": {
    "admin": {"allowed_envs": {"*": ["*"]}},
    "staging-reader": {"allowed_envs": {"Staging": ["search_*"]}}
  },
  "authsvc_url": "http://127.0.0.1:8090"
}"#;

fn config() -> Config {
    parse(CONFIG)
}

fn auth_config() -> Config {
    let mut doc: Value = serde_json::from_str(CONFIG).unwrap();
    doc["auth"] = serde_json::from_str(AUTH).unwrap();
    parse(&doc.to_string())
}

fn parse(text: &str) -> Config {
    let lookup = |name: &str| (name == "PROD_TOKEN").then(|| "pr0d%token".to_owned());
    Config::parse(text, Format::Json, "test.json", &lookup).unwrap()
}

fn results() -> Vec<EnvResult> {
    let logs = json!({"name": "search_logs", "description": "Search logs.",
        "inputSchema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}});
    let found = |tools: Vec<Value>| {
        Ok(Discovered {
            protocol_version: "2025-11-25".into(),
            server_info: None,
            tools,
            requires: Default::default(),
            offered: Default::default(),
        })
    };
    vec![
        EnvResult {
            name: "Prod".into(),
            outcome: found(vec![logs.clone()]),
        },
        EnvResult {
            name: "Staging".into(),
            outcome: found(vec![logs]),
        },
    ]
}

fn generated_for(config: &Config, out_dir: PathBuf, filter_path: PathBuf) -> Vec<File> {
    generated_kind(config, out_dir, filter_path, FilterKind::Wasm).unwrap()
}

fn generated_kind(
    config: &Config,
    out_dir: PathBuf,
    filter_path: PathBuf,
    filter_kind: FilterKind,
) -> Result<Vec<File>, String> {
    let manifest = catalog::build_manifest(config, &results()).unwrap();
    let filter = catalog::filter_config(config, manifest);
    let targets = catalog::targets(config).unwrap();
    let auth = catalog::auth_target(config).unwrap();
    let opts = Options {
        out_dir,
        filter_path,
        filter_kind,
        bind: "127.0.0.1".into(),
        port: 10000,
        admin_port: 9901,
        host_defaults: Default::default(),
        dev_sign_in_published_on_loopback: false,
        ops_allow_from: None,
    };
    generate(&targets, auth.as_ref(), &filter, &opts)
}

fn files() -> Vec<File> {
    files_for(&config())
}

fn files_for(config: &Config) -> Vec<File> {
    generated_for(
        config,
        PathBuf::from("/etc/meshmux"),
        PathBuf::from("/opt/meshmux/meshmux_filter.wasm"),
    )
}

fn json_of(name: &str) -> Value {
    json_in(&files(), name)
}

fn json_in(files: &[File], name: &str) -> Value {
    let file = files.iter().find(|f| f.name == name).unwrap();
    serde_json::from_str(&file.contents).unwrap()
}

#[test]
fn files_come_in_update_order_with_secret_modes() {
    let names: Vec<(&str, u32)> = files().iter().map(|f| (f.name, f.mode)).collect();
    assert_eq!(
        names,
        [
            ("cds.yaml", 0o600),
            ("rds.yaml", 0o600),
            ("lds.yaml", 0o600),
            ("ecds.yaml", 0o600),
            ("envoy.yaml", 0o644)
        ]
    );
}

#[test]
fn snapshots() {
    for file in files() {
        insta::assert_snapshot!(file.name, file.contents);
    }
}

#[test]
fn auth_snapshots() {
    for file in files_for(&auth_config()) {
        insta::assert_snapshot!(format!("auth_{}", file.name), file.contents);
    }
}

#[test]
fn without_auth_there_is_no_jwt_authn_and_no_authsvc() {
    let text: String = files().iter().map(|f| f.contents.as_str()).collect();
    for absent in [
        "jwt_authn",
        "authsvc",
        "local_reply_config",
        "www-authenticate",
    ] {
        assert!(!text.contains(absent), "{absent} in a config without auth");
    }
}

#[test]
fn auth_puts_jwt_authn_before_the_filter_and_routes_authsvc() {
    let files = files_for(&auth_config());
    let lds = json_in(&files, LDS_FILE);
    let hcm = &lds["resources"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let names: Vec<&str> = hcm["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [JWT_FILTER, FILTER_NAME, "envoy.filters.http.router"]
    );
    let jwt = &hcm["http_filters"][0]["typed_config"];
    let provider = &jwt["providers"]["authsvc"];
    assert_eq!(provider["issuer"], "https://gw.example.com");
    assert_eq!(provider["audiences"], json!(["https://gw.example.com/mcp"]));
    assert_eq!(provider["payload_in_metadata"], PAYLOAD_KEY);
    assert_eq!(provider["forward"], false);
    let jwks = &provider["remote_jwks"];
    assert_eq!(
        jwks["http_uri"]["uri"],
        "http://127.0.0.1:8090/.well-known/jwks.json"
    );
    assert_eq!(jwks["http_uri"]["cluster"], "authsvc");
    assert_eq!(jwks["cache_duration"], "30s");
    assert!(jwks["async_fetch"].is_object());
    // Health and metrics need no token, whatever the MCP path is; they come first.
    assert_eq!(
        jwt["rules"],
        json!([
            {"match": {"path": "/healthz"}},
            {"match": {"path": "/readyz"}},
            {"match": {"path": "/metrics"}},
            {"match": {"prefix": "/mcp"}, "requires": {"provider_name": "authsvc"}}
        ])
    );
    let mappers = &hcm["local_reply_config"]["mappers"];
    // jwt_authn's 403 for another audience becomes a 401 on the MCP path.
    let wrong_aud = &mappers[0];
    assert_eq!(
        wrong_aud["filter"]["and_filter"]["filters"][0]["status_code_filter"]["comparison"]["value"]
            ["default_value"],
        403
    );
    assert_eq!(
        wrong_aud["filter"]["and_filter"]["filters"][1]["header_filter"]["header"]["string_match"]
            ["prefix"],
        "/mcp"
    );
    assert_eq!(wrong_aud["status_code"], 401);
    let mapper = &mappers[1];
    assert_eq!(
        mapper["filter"]["status_code_filter"]["comparison"]["value"]["default_value"],
        401
    );
    assert_eq!(mapper["headers_to_add"], wrong_aud["headers_to_add"]);
    let header = &mapper["headers_to_add"][0];
    assert_eq!(header["header"]["key"], "www-authenticate");
    assert_eq!(
        header["header"]["value"],
        r#"Bearer resource_metadata="https://gw.example.com/.well-known/oauth-protected-resource/mcp""#
    );
    assert_eq!(header["append_action"], "OVERWRITE_IF_EXISTS_OR_ADD");

    let rds = json_in(&files, RDS_FILE);
    let routes = rds["resources"][0]["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap();
    let to_authsvc: Vec<&Value> = routes
        .iter()
        .skip_while(|r| r["name"].as_str().unwrap().starts_with("meshmux_"))
        .take_while(|r| r["route"]["cluster"] == "authsvc")
        .map(|r| &r["match"])
        .collect();
    assert_eq!(
        to_authsvc,
        [
            &json!({"path_separated_prefix": "/.well-known"}),
            &json!({"path_separated_prefix": "/auth"}),
            &json!({"path": "/register"}),
            &json!({"path_separated_prefix": "/ui"}),
        ]
    );
    assert_eq!(
        routes.len(),
        3 + 4 + 3,
        "health and metrics, authsvc's routes, then the MCP routes"
    );
    assert!(
        !lds.to_string().contains("/internal"),
        "never routed publicly"
    );

    let cds = json_in(&files, CDS_FILE);
    let authsvc = &cds["resources"][2];
    assert_eq!(authsvc["name"], "authsvc");
    assert_eq!(authsvc["type"], "STATIC");

    let ecds = json_in(&files, ECDS_FILE);
    let plugin: policy::FilterConfig = serde_json::from_str(
        ecds["resources"][0]["typed_config"]["config"]["configuration"]["value"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let auth = plugin.auth.as_ref().unwrap();
    assert_eq!(
        auth.claims_path,
        ["envoy.filters.http.jwt_authn", PAYLOAD_KEY]
    );
    assert_eq!(auth.roles.len(), 2);
    assert_eq!(
        auth.resource_metadata.as_deref(),
        Some("https://gw.example.com/.well-known/oauth-protected-resource/mcp")
    );
    assert_eq!(auth.revocations.cluster, "authsvc");
    assert_eq!(auth.revocations.path, "/internal/revocations");
    policy::Gateway::new(plugin).unwrap();
}

#[test]
fn https_cluster_checks_the_certificate_and_sends_sni() {
    let cds = json_of(CDS_FILE);
    let prod = &cds["resources"][0];
    assert_eq!(prod["name"], "env_Prod");
    assert_eq!(prod["type"], "LOGICAL_DNS");
    let addr = &prod["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"];
    assert_eq!(addr["socket_address"]["address"], "mcp.example.com");
    assert_eq!(addr["socket_address"]["port_value"], 443);
    let tls = &prod["transport_socket"]["typed_config"];
    assert_eq!(tls["sni"], "mcp.example.com");
    let validation = &tls["common_tls_context"]["validation_context"];
    assert_eq!(validation["trusted_ca"]["filename"], CA_BUNDLE);
    assert_eq!(
        validation["match_typed_subject_alt_names"][0]["matcher"]["exact"],
        "mcp.example.com"
    );
    let staging = &cds["resources"][1];
    assert_eq!(staging["type"], "STATIC");
    assert!(staging.get("transport_socket").is_none());
}

#[test]
fn routes_select_by_filter_state_and_rewrite_host_path_headers() {
    let lds = json_of(LDS_FILE);
    let listener = &lds["resources"][0];
    assert_eq!(
        listener["per_connection_buffer_limit_bytes"],
        2_097_152 + BUFFER_HEADROOM
    );
    let hcm = &listener["filter_chains"][0]["filters"][0]["typed_config"];
    let filters = hcm["http_filters"].as_array().unwrap();
    assert_eq!(filters[0]["name"], FILTER_NAME);
    assert_eq!(
        filters[0]["config_discovery"]["type_urls"][0],
        WASM_TYPE_URL
    );
    assert_eq!(filters[1]["name"], "envoy.filters.http.router");
    // The routes come through RDS, which applies to open connections too.
    assert_eq!(hcm["rds"]["route_config_name"], "meshmux");
    assert!(hcm.get("route_config").is_none());
    let rds = json_of(RDS_FILE);
    let routes = rds["resources"][0]["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap();
    assert_eq!(routes.len(), 6);
    let ops: Vec<_> = routes[..3].iter().map(|r| r["name"].clone()).collect();
    assert_eq!(
        ops,
        [
            json!("meshmux_healthz"),
            json!("meshmux_readyz"),
            json!("meshmux_metrics")
        ]
    );
    let routes = &routes[3..];
    let prod = &routes[0];
    assert_eq!(prod["match"]["path"], "/mcp");
    assert_eq!(prod["match"]["filter_state"][0]["key"], FILTER_STATE_KEY);
    assert_eq!(
        prod["match"]["filter_state"][0]["string_match"]["exact"],
        "Prod"
    );
    assert_eq!(prod["route"]["cluster"], "env_Prod");
    assert_eq!(prod["route"]["host_rewrite_literal"], "mcp.example.com");
    assert_eq!(prod["route"]["prefix_rewrite"], "/v1/mcp?tenant=acme");
    assert_eq!(prod["route"]["timeout"], "30s");
    assert_eq!(prod["request_headers_to_remove"][0], "authorization");
    let added = &prod["request_headers_to_add"];
    assert_eq!(added[0]["header"]["key"], "Authorization");
    // `%` is Envoy's formatter syntax: a literal one is doubled.
    assert_eq!(added[0]["header"]["value"], "Bearer pr0d%%token");
    assert_eq!(added[0]["append_action"], "OVERWRITE_IF_EXISTS_OR_ADD");
    let staging = &routes[1];
    assert_eq!(staging["route"]["host_rewrite_literal"], "10.0.0.7:8080");
    assert_eq!(staging["route"]["timeout"], "60s");
    // The last route refuses whatever the filter did not route.
    let last = &routes[2];
    assert_eq!(last["match"]["prefix"], "/mcp");
    assert_eq!(last["direct_response"]["status"], 500);
    assert!(last.get("route").is_none());
}

#[test]
fn ecds_holds_the_filter_config_and_the_mandatory_flags() {
    let ecds = json_of(ECDS_FILE);
    let resource = &ecds["resources"][0];
    assert_eq!(resource["name"], FILTER_NAME);
    let config = &resource["typed_config"]["config"];
    assert_eq!(config["allow_on_headers_stop_iteration"], true);
    assert_eq!(config["failure_policy"], "FAIL_RELOAD");
    assert_eq!(config["root_id"], "meshmux");
    assert_eq!(
        config["vm_config"]["code"]["local"]["filename"],
        "/opt/meshmux/meshmux_filter.wasm"
    );
    let plugin: policy::FilterConfig =
        serde_json::from_str(config["configuration"]["value"].as_str().unwrap()).unwrap();
    assert_eq!(plugin.max_body_bytes, 2_097_152);
    assert_eq!(
        plugin.backends["Prod"].headers["Authorization"], "Bearer pr0d%token",
        "the filter sends headers itself: no Envoy escaping"
    );
    assert_eq!(plugin.manifest.tools.len(), 1);
    // The plugin config is one the filter accepts.
    policy::Gateway::new(plugin).unwrap();
}

#[test]
fn the_native_filter_gets_the_same_plugin_config_by_module_name() {
    let so = PathBuf::from("/opt/meshmux/libmeshmux_native.so");
    let native = generated_kind(&config(), "/etc/meshmux".into(), so, FilterKind::Native).unwrap();
    let wasm = files();
    let ecds = json_in(&native, ECDS_FILE);
    let typed = &ecds["resources"][0]["typed_config"];
    assert_eq!(typed["@type"], NATIVE_TYPE_URL);
    assert_eq!(typed["dynamic_module_config"]["name"], "meshmux_native");
    assert_eq!(typed["dynamic_module_config"]["do_not_close"], true);
    assert_eq!(typed["filter_name"], FILTER_NAME);
    let wasm_ecds = json_in(&wasm, ECDS_FILE);
    assert_eq!(
        typed["filter_config"]["value"],
        wasm_ecds["resources"][0]["typed_config"]["config"]["configuration"]["value"],
        "both filters get the same plugin JSON"
    );
    // The listener accepts the native type through ECDS; everything else is the same.
    let lds = json_in(&native, LDS_FILE).to_string();
    assert!(lds.contains(NATIVE_TYPE_URL) && !lds.contains(WASM_TYPE_URL));
    assert_eq!(json_in(&native, RDS_FILE), json_in(&wasm, RDS_FILE));
    assert_eq!(json_in(&native, CDS_FILE), json_in(&wasm, CDS_FILE));
    assert_eq!(
        module_dir(Path::new("/opt/m/libmeshmux_native.so")),
        PathBuf::from("/opt/m")
    );
}

#[test]
fn the_native_filter_refuses_auth() {
    let err = generated_kind(
        &auth_config(),
        "/etc/meshmux".into(),
        "/opt/libmeshmux_native.so".into(),
        FilterKind::Native,
    )
    .unwrap_err();
    assert!(err.contains("does not support `auth`"), "{err}");
}

#[test]
fn bootstrap_watches_the_output_directory() {
    let boot = json_of(BOOTSTRAP_FILE);
    let lds = &boot["dynamic_resources"]["lds_config"]["path_config_source"];
    assert_eq!(lds["path"], "/etc/meshmux/lds.yaml");
    assert_eq!(lds["watched_directory"]["path"], "/etc/meshmux");
    assert_eq!(
        boot["admin"]["address"]["socket_address"]["address"],
        "127.0.0.1"
    );
}

fn prerequisite(var: &str, how: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => panic!(
            "{var} is not set. This test runs the generated config through a real Envoy; \
             `cargo xtask test` sets it, or run it by hand with {var}={how}"
        ),
    }
}

fn validate(envoy: &std::path::Path, path: &std::path::Path) {
    validate_with(envoy, path, None);
}

/// `envoy --mode validate`, with the dynamic-module search path for the native filter.
fn validate_with(envoy: &std::path::Path, path: &std::path::Path, modules: Option<&Path>) {
    let mut cmd = Command::new(envoy);
    if let Some(dir) = modules {
        cmd.env(SEARCH_PATH_VAR, dir);
    }
    let out = cmd
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "envoy --mode validate -c {} failed:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs Envoy 1.40 in validate mode on the bootstrap as written, on the listener and
/// clusters inlined (validate mode does not read dynamic_resources' files), and with the
/// filter inlined too, which makes Envoy load the wasm and configure it with our plugin
/// config.
#[test]
fn envoy_accepts_the_generated_config() {
    let envoy = prerequisite(
        "MESHMUX_TEST_ENVOY",
        "$PWD/.venv/bin/envoy (`cargo xtask setup`)",
    );
    let filter = prerequisite(
        "MESHMUX_TEST_FILTER",
        "$PWD/target/wasm/wasm32-unknown-unknown/release/meshmux_filter.wasm (`cargo xtask build-wasm`)",
    );
    for config in [config(), auth_config()] {
        let dir = tempfile::tempdir().unwrap();
        let files = generated_for(&config, dir.path().to_path_buf(), filter.clone());
        for f in &files {
            std::fs::write(dir.path().join(f.name), &f.contents).unwrap();
        }
        validate(&envoy, &dir.path().join(BOOTSTRAP_FILE));
        for (name, inline) in [("static.yaml", false), ("inline.yaml", true)] {
            let path = dir.path().join(name);
            std::fs::write(&path, validation_bootstrap(&files, inline).unwrap()).unwrap();
            validate(&envoy, &path);
        }
    }
}

/// The same for the native filter (`DynamicModuleFilter` through ECDS and inlined). Validate
/// mode checks the config against Envoy's schema but does not load the module: the e2e suite
/// with `MESHMUX_TEST_FILTER_KIND=native` runs it.
#[test]
fn envoy_accepts_the_generated_native_config() {
    let envoy = prerequisite(
        "MESHMUX_TEST_ENVOY",
        "$PWD/.venv/bin/envoy (`cargo xtask setup`)",
    );
    let module = prerequisite(
        "MESHMUX_TEST_NATIVE_FILTER",
        "$PWD/target/native/libmeshmux_native.so (`cargo xtask build-native`)",
    );
    let dir = tempfile::tempdir().unwrap();
    let files = generated_kind(
        &config(),
        dir.path().to_path_buf(),
        module.clone(),
        FilterKind::Native,
    )
    .unwrap();
    for f in &files {
        std::fs::write(dir.path().join(f.name), &f.contents).unwrap();
    }
    let modules = module_dir(&module);
    validate_with(&envoy, &dir.path().join(BOOTSTRAP_FILE), Some(&modules));
    let path = dir.path().join("inline.yaml");
    std::fs::write(&path, validation_bootstrap(&files, true).unwrap()).unwrap();
    validate_with(&envoy, &path, Some(&modules));
}

#[test]
fn health_and_metrics_routes() {
    let files = files();
    let rds = json_in(&files, RDS_FILE);
    let routes = &rds["resources"][0]["virtual_hosts"][0]["routes"];
    assert_eq!(routes[0]["match"]["path"], "/healthz");
    assert_eq!(routes[0]["direct_response"]["status"], 200);
    // The filter answers /readyz; Envoy's route only speaks when the filter did not.
    assert_eq!(routes[1]["match"]["path"], "/readyz");
    assert_eq!(routes[1]["direct_response"]["status"], 503);
    let metrics = &routes[2];
    assert_eq!(metrics["match"]["path"], "/metrics");
    assert_eq!(
        metrics["match"]["headers"],
        json!([{"name": ":method", "string_match": {"exact": "GET"}}])
    );
    assert_eq!(metrics["route"]["cluster"], ADMIN_CLUSTER);
    assert_eq!(metrics["route"]["prefix_rewrite"], PROMETHEUS_PATH);
    let cds = json_in(&files, CDS_FILE);
    let admin = cds["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == ADMIN_CLUSTER)
        .unwrap();
    assert_eq!(
        admin["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"],
        json!({"address": "127.0.0.1", "port_value": 9901})
    );

    // `metrics.enabled: false`: no route, no admin cluster; a custom path is honoured.
    let mut doc: Value = serde_json::from_str(CONFIG).unwrap();
    doc["metrics"] = json!({"enabled": false});
    let off = files_for(&parse(&doc.to_string()));
    let text: String = [LDS_FILE, RDS_FILE, CDS_FILE]
        .iter()
        .map(|f| json_in(&off, f).to_string())
        .collect();
    assert!(!text.contains(ADMIN_CLUSTER) && !text.contains(PROMETHEUS_PATH));
    let plugin = &json_in(&off, ECDS_FILE)["resources"][0]["typed_config"]["config"]["configuration"]
        ["value"];
    let plugin: policy::FilterConfig = serde_json::from_str(plugin.as_str().unwrap()).unwrap();
    assert!(!plugin.metrics.enabled);
    doc["metrics"] = json!({"path": "/internal/prom", "user_level_metrics": true});
    let custom = files_for(&parse(&doc.to_string()));
    let rds = json_in(&custom, RDS_FILE).to_string();
    assert!(rds.contains(r#""path":"/internal/prom""#), "{rds}");
}

#[test]
fn env_clusters_are_health_checked_without_panic_mode() {
    let cds = json_of(CDS_FILE);
    let prod = &cds["resources"][0];
    assert_eq!(prod["name"], "env_Prod");
    assert_eq!(
        prod["common_lb_config"],
        json!({"healthy_panic_threshold": {"value": 0}})
    );
    let check = &prod["health_checks"][0];
    assert_eq!(check["no_traffic_interval"], check["interval"]);
    let http = &check["http_health_check"];
    assert_eq!(http["method"], "HEAD");
    assert_eq!(http["host"], "mcp.example.com");
    assert_eq!(http["path"], "/v1/mcp?tenant=acme");
    assert_eq!(
        http["expected_statuses"],
        json!([{"start": 100, "end": 502}, {"start": 505, "end": 600}])
    );
    // The env's credentials go with the checks, escaped for Envoy's formatter.
    let headers = &http["request_headers_to_add"];
    assert_eq!(headers[0]["header"]["key"], "Authorization");
    assert_eq!(headers[0]["header"]["value"], "Bearer pr0d%%token");
    assert_eq!(headers[1]["header"]["key"], "X-Tenant");
}

#[test]
fn bootstrap_tags_the_filters_stats() {
    let boot = json_of(BOOTSTRAP_FILE);
    let tags = boot["stats_config"]["stats_tags"].as_array().unwrap();
    let names: Vec<&str> = tags
        .iter()
        .map(|t| t["tag_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["env", "error_type", "tool", "principal"]);
    let buckets = &boot["stats_config"]["histogram_bucket_settings"];
    assert_eq!(
        buckets[0]["match"]["prefix"],
        "wasmcustom.meshmux_tool_request_duration_ms"
    );
    assert_eq!(
        buckets[1]["match"]["prefix"],
        "wasmcustom.meshmux_tool_response_size_bytes"
    );
}

#[test]
fn the_dev_sign_in_is_refused_behind_a_listener_other_machines_reach() {
    let dev = catalog::auth_target(&auth_config())
        .unwrap()
        .unwrap()
        .dev_sign_in;
    assert!(dev);
    let opts = |bind: &str, published: bool| Options {
        out_dir: "/out".into(),
        filter_path: "/f.wasm".into(),
        filter_kind: FilterKind::Wasm,
        bind: bind.into(),
        port: 10000,
        admin_port: 9901,
        host_defaults: Default::default(),
        dev_sign_in_published_on_loopback: published,
        ops_allow_from: None,
    };
    for bind in ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"] {
        assert_eq!(check_dev_sign_in(dev, &opts(bind, false)), Ok(()), "{bind}");
    }
    for bind in ["0.0.0.0", "::", "192.0.2.10", "gateway.example"] {
        let err = check_dev_sign_in(dev, &opts(bind, false)).unwrap_err();
        assert!(err.contains("auth.dev") && err.contains(bind), "{err}");
        assert_eq!(check_dev_sign_in(dev, &opts(bind, true)), Ok(()));
        // A real IdP may be served anywhere.
        assert_eq!(check_dev_sign_in(false, &opts(bind, false)), Ok(()));
    }
}

#[test]
fn the_listener_is_the_edge_and_trusts_no_client_address() {
    let lds = files().into_iter().find(|f| f.name == LDS_FILE).unwrap();
    let doc: Value = serde_json::from_str(&lds.contents).unwrap();
    let hcm = &doc["resources"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(hcm["use_remote_address"], json!(true));
    assert_eq!(hcm["strip_trailing_host_dot"], json!(true));
    assert_eq!(
        hcm["internal_address_config"]["cidr_ranges"],
        json!([{ "address_prefix": "255.255.255.255", "prefix_len": 32 }])
    );
    let router = hcm["http_filters"].as_array().unwrap().last().unwrap();
    assert_eq!(
        router["typed_config"]["suppress_envoy_headers"],
        json!(true)
    );
}
