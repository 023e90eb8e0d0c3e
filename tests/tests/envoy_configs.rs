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
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use tests::process::Proc;
use tests::{Backend, Config, gateway, prereq};

/// Runs `envoy --mode validate` on `file`; whether it passed, and its log.
fn envoy_validate(file: &Path) -> anyhow::Result<(bool, String)> {
    let mut cmd = Command::new(prereq::envoy()?);
    cmd.args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(file)
        .current_dir(file.parent().unwrap());
    let mut envoy = Proc::spawn("envoy-validate", &mut cmd)?;
    let status = envoy.wait_exit(Duration::from_secs(60))?;
    Ok((status.success(), std::fs::read_to_string(envoy.log())?))
}

fn validate(file: &Path) -> anyhow::Result<()> {
    let (ok, log) = envoy_validate(file)?;
    assert!(ok, "{} does not validate:\n{log}", file.display());
    Ok(())
}

/// The `resources` of a generated xDS file, without their `@type` (which a resource in
/// `static_resources` must not carry).
fn resources(file: &Path) -> anyhow::Result<Vec<Value>> {
    let doc: Value = serde_norway::from_str(&std::fs::read_to_string(file)?)?;
    let mut list = doc["resources"].as_array().cloned().unwrap_or_default();
    assert!(!list.is_empty(), "{} has no resources", file.display());
    for r in &mut list {
        r.as_object_mut().unwrap().remove("@type");
    }
    Ok(list)
}

/// Replaces every ECDS reference (`config_discovery`) in `value` by the extension config
/// `ecds` names, so the filter's plugin config is validated too.
fn inline_ecds(value: &mut Value, ecds: &[Value]) {
    match value {
        Value::Object(obj) => {
            if obj.contains_key("config_discovery") {
                let name = obj["name"].clone();
                let config = ecds
                    .iter()
                    .find(|e| e["name"] == name)
                    .unwrap_or_else(|| panic!("ecds.yaml has no extension config {name}"));
                obj.remove("config_discovery");
                obj.insert("typed_config".into(), config["typed_config"].clone());
            }
            obj.values_mut().for_each(|v| inline_ecds(v, ecds));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| inline_ecds(v, ecds)),
        _ => {}
    }
}

/// The generated bootstrap with its LDS, CDS and ECDS files inlined as static resources:
/// `--mode validate` does not open files a bootstrap only subscribes to.
fn inlined_bootstrap(out: &Path) -> anyhow::Result<Value> {
    let mut bootstrap: Value =
        serde_norway::from_str(&std::fs::read_to_string(out.join("envoy.yaml"))?)?;
    let ecds = resources(&out.join("ecds.yaml"))?;
    let mut listeners = Value::Array(resources(&out.join("lds.yaml"))?);
    inline_ecds(&mut listeners, &ecds);
    let obj = bootstrap.as_object_mut().unwrap();
    obj.remove("dynamic_resources");
    obj.insert(
        "static_resources".into(),
        json!({"listeners": listeners, "clusters": resources(&out.join("cds.yaml"))?}),
    );
    Ok(bootstrap)
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
    assert!(log.contains("loading 2 cluster(s)"), "{log}");

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
                // Every `$VAR` gets a placeholder: the example must load with any values.
                policy::config::Config::parse(&text, format, &name, &|_| Some("x".into()))
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
