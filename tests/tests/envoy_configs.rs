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

use tests::process::Proc;
use tests::{Backend, Config, gateway, prereq};

fn validate(file: &Path) -> anyhow::Result<()> {
    let mut cmd = Command::new(prereq::envoy()?);
    cmd.args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(file)
        .current_dir(file.parent().unwrap());
    let mut envoy = Proc::spawn("envoy-validate", &mut cmd)?;
    let status = envoy.wait_exit(Duration::from_secs(60))?;
    let log = std::fs::read_to_string(envoy.log())?;
    assert!(
        status.success(),
        "{} does not validate:\n{log}",
        file.display()
    );
    Ok(())
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
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
    for resources in ["lds.yaml", "cds.yaml", "ecds.yaml"] {
        let text = std::fs::read_to_string(found.out.join(resources))?;
        let doc: serde_norway::Value = serde_norway::from_str(&text)?;
        assert!(
            doc.get("resources").is_some(),
            "{resources} has no resources:\n{text}"
        );
    }
    Ok(())
}

#[test]
fn every_shipped_envoy_yaml_validates() -> anyhow::Result<()> {
    let mut files = Vec::new();
    yaml_files(&prereq::root().join("envoy"), &mut files);
    files.sort();

    for file in &files {
        let text = std::fs::read_to_string(file)?;
        for doc in serde_norway::Deserializer::from_str(&text) {
            let doc = serde::Deserialize::deserialize(doc)
                .map_err(|e| anyhow::anyhow!("{}: not YAML: {e}", file.display()))?;
            if is_bootstrap(&doc) {
                validate(file)?;
            }
        }
    }
    eprintln!("checked {} shipped YAML files", files.len());
    Ok(())
}
