//! Every Envoy config the project ships or generates passes `envoy --mode validate`.

// Helpers of an integration test may fail the test on the spot, like the tests themselves
// (clippy.toml allows this inside #[test] functions only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tests::{Backend, Config, envoy_validate, gateway, mesh, prereq};

fn envoy_validate(file: &Path) -> anyhow::Result<(bool, String)> {
    envoy_validate::run(file)
}

fn validate(file: &Path) -> anyhow::Result<()> {
    envoy_validate::check(file).map(drop)
}

fn inlined_bootstrap(out: &Path) -> anyhow::Result<Value> {
    envoy_validate::inlined_bootstrap(out)
}

fn config_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            config_files(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            out.push(path);
        }
    }
}

/// An Envoy bootstrap, as opposed to a Kubernetes manifest (Istio, Envoy Gateway) or a
/// resource file that a bootstrap loads.
fn is_bootstrap(doc: &serde_norway::Value) -> bool {
    ["static_resources", "dynamic_resources", "admin"]
        .iter()
        .any(|k| doc.get(k).is_some())
}

#[test]
fn the_generated_envoy_config_validates() -> anyhow::Result<()> {
    let prod = Backend::demo("Prod").start()?;
    let dev = Backend::demo("Dev").start()?;
    let config = Config::new()
        .env("Prod", &prod)
        .env("Dev", &dev)
        .env_header("Dev", "X-Env-Token", "dev-secret");

    let found = gateway::discover(&config)?;

    validate(&found.out.join("envoy.yaml"))?;
    let inlined = found.out.join("validate-inlined.yaml");
    std::fs::write(&inlined, inlined_bootstrap(&found.out)?.to_string())?;
    let (ok, log) = envoy_validate(&inlined)?;
    assert!(
        ok,
        "the generated listener, clusters or filter config do not validate:\n{log}"
    );
    assert!(log.contains("loading 1 listener(s)"), "{log}");
    // One cluster per env, and the admin cluster /metrics is served through.
    assert!(log.contains("loading 3 cluster(s)"), "{log}");
    let cds = std::fs::read_to_string(found.out.join("cds.yaml"))?;
    for name in ["env_Prod", "env_Dev", discovery::envoy::ADMIN_CLUSTER] {
        assert!(
            cds.contains(&format!("\"name\": \"{name}\"")),
            "{name}: {cds}"
        );
    }

    // The check itself can fail: a config Envoy rejects does not pass.
    let mut broken = inlined_bootstrap(&found.out)?;
    broken["static_resources"]["clusters"][0]["no_such_field"] = json!(true);
    let broken_path = found.out.join("validate-broken.yaml");
    std::fs::write(&broken_path, broken.to_string())?;
    assert!(
        !envoy_validate(&broken_path)?.0,
        "Envoy accepted an unknown field"
    );
    Ok(())
}

/// A meshmux config (seed 000's format) rather than an Envoy or Kubernetes document.
fn is_meshmux_config(doc: &serde_norway::Value) -> bool {
    doc.get("environments").is_some()
}

#[test]
fn every_shipped_envoy_config_validates_and_every_example_config_loads() -> anyhow::Result<()> {
    let mut files = Vec::new();
    config_files(&prereq::root().join("envoy"), &mut files);
    files.sort();

    let (mut bootstraps, mut configs) = (0, 0);
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        // JSON is YAML, so one parser reads both (and every document of a multi-doc file).
        for doc in serde_norway::Deserializer::from_str(&text) {
            let doc: serde_norway::Value = serde::Deserialize::deserialize(doc)
                .map_err(|e| anyhow::anyhow!("{}: not YAML or JSON: {e}", file.display()))?;
            if is_bootstrap(&doc) {
                validate(file)?;
                bootstraps += 1;
            } else if is_meshmux_config(&doc) {
                let name = file.display().to_string();
                let format = policy::config::Format::from_name(&name);
                // Every `$VAR` gets a placeholder: the example must load with any values
                // (this one is also a valid Fernet key, for `auth.redis.encryption_key`).
                let placeholder = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
                policy::config::Config::parse(&text, format, &name, &|_| Some(placeholder.into()))
                    .map_err(|e| anyhow::anyhow!("the shipped example does not load: {e}"))?;
                configs += 1;
            }
        }
    }
    eprintln!(
        "{} shipped files: {bootstraps} Envoy bootstraps validated, {configs} meshmux configs loaded",
        files.len()
    );
    Ok(())
}

/// The filter is named `name` in `bootstrap`'s chain and its plugin config is `config`.
fn with_plugin_config(bootstrap: &Value, config: &str) -> Value {
    let mut b = bootstrap.clone();
    let filters = b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["http_filters"]
        .as_array_mut()
        .unwrap();
    filters[1]["typed_config"]["config"]["configuration"]["value"] = json!(config);
    b
}

#[test]
fn the_envoy_config_inside_the_mesh_manifests_validates() -> anyhow::Result<()> {
    let wasm = prereq::filter()?;
    let dir = tests::logs::unique_path("mesh-validate", "")?;
    std::fs::create_dir_all(&dir)?;

    // Istio: the ECDS extension config, the env clusters and routes, behind jwt_authn with
    // Istio's payload key; Istio's own cluster for authsvc stands in as a static one.
    let istio = mesh::istio()?;
    let config: policy::manifest::FilterConfig = serde_json::from_str(&istio.plugin_config()?)?;
    let revocations = config.auth.as_ref().unwrap().revocations.cluster.clone();
    let bootstrap = mesh::validation_bootstrap(&istio, &wasm, "payload", &[&revocations]);
    let log = envoy_validate::check_value(&bootstrap, &dir.join("istio.yaml"))?;
    assert!(log.contains("loading 4 cluster(s)"), "{log}");
    assert!(
        log.contains("configured with manifest"),
        "the filter took the config:\n{log}"
    );

    // Envoy Gateway: the wasm filter as Envoy Gateway builds it plus the patched fields, the
    // patched clusters (envs and authsvc) and routes (which enable the filter per route).
    let eg = mesh::envoy_gateway()?;
    let config: policy::manifest::FilterConfig = serde_json::from_str(&eg.plugin_config()?)?;
    let issuer = config.auth.as_ref().unwrap().claims_path[1].clone();
    let bootstrap = mesh::validation_bootstrap(&eg, &wasm, &issuer, &[]);
    let log = envoy_validate::check_value(&bootstrap, &dir.join("envoy-gateway.yaml"))?;
    assert!(log.contains("loading 4 cluster(s)"), "{log}");
    assert!(
        log.contains("configured with manifest"),
        "the filter took the config:\n{log}"
    );

    // The check can fail: a plugin config the filter refuses does not validate.
    let refused = with_plugin_config(&bootstrap, r#"{"manifest": {"format": 99}}"#);
    let path = dir.join("refused.yaml");
    std::fs::write(&path, refused.to_string())?;
    assert!(
        !envoy_validate::run(&path)?.0,
        "Envoy accepted a config the filter refuses"
    );
    Ok(())
}
