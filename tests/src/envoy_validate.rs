//! `envoy --mode validate` on configs the project ships or generates. Validate mode does not
//! open the files a bootstrap only subscribes to (LDS, CDS, ECDS), so generated configs are
//! checked as one bootstrap with those files inlined as static resources.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use serde_json::{Value, json};

use crate::prereq;
use crate::process::Proc;

/// Runs `envoy --mode validate` on `file`; whether it passed, and its log.
pub fn run(file: &Path) -> Result<(bool, String)> {
    let mut cmd = Command::new(prereq::envoy()?);
    cmd.args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(file);
    if let Some(dir) = file.parent() {
        cmd.current_dir(dir);
    }
    let mut envoy = Proc::spawn("envoy-validate", &mut cmd)?;
    let status = envoy.wait_exit(Duration::from_secs(60))?;
    let log = std::fs::read_to_string(envoy.log())
        .with_context(|| format!("reading {}", envoy.log().display()))?;
    Ok((status.success(), log))
}

/// Fails, with Envoy's log, unless `file` validates.
pub fn check(file: &Path) -> Result<String> {
    let (ok, log) = run(file)?;
    if ok {
        Ok(log)
    } else {
        Err(anyhow!("{} does not validate:\n{log}", file.display()))
    }
}

/// Writes `bootstrap` to `path` and fails unless Envoy accepts it; returns Envoy's log.
pub fn check_value(bootstrap: &Value, path: &Path) -> Result<String> {
    std::fs::write(path, serde_json::to_string_pretty(bootstrap)?)
        .with_context(|| format!("writing {}", path.display()))?;
    check(path)
}

/// The `resources` of a generated xDS file, without their `@type` (which a resource in
/// `static_resources` must not carry).
pub fn resources(file: &Path) -> Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let doc: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    let mut list = doc
        .get("resources")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if list.is_empty() {
        return Err(anyhow!("{} has no resources", file.display()));
    }
    for r in &mut list {
        if let Some(obj) = r.as_object_mut() {
            obj.remove("@type");
        }
    }
    Ok(list)
}

/// Replaces every ECDS reference (`config_discovery`) in `value` by the extension config of
/// that name in `ecds`, so the filter's plugin config is validated too (Envoy then loads the
/// filter and runs its `on_configure`).
pub fn inline_ecds(value: &mut Value, ecds: &[Value]) -> Result<()> {
    match value {
        Value::Object(obj) => {
            if obj.contains_key("config_discovery") {
                let name = obj.get("name").cloned().unwrap_or(Value::Null);
                let config = ecds
                    .iter()
                    .find(|e| e.get("name") == Some(&name))
                    .and_then(|e| e.get("typed_config"))
                    .ok_or_else(|| anyhow!("no extension config named {name}"))?;
                obj.remove("config_discovery");
                obj.insert("typed_config".into(), config.clone());
            }
            obj.values_mut().try_for_each(|v| inline_ecds(v, ecds))
        }
        Value::Array(items) => items.iter_mut().try_for_each(|v| inline_ecds(v, ecds)),
        _ => Ok(()),
    }
}

/// Replaces every RDS reference (`rds`) in `value` by the route table `routes`, so the
/// routes (in `rds.yaml`) are validated with the listener.
pub fn inline_rds(value: &mut Value, routes: &Value) {
    match value {
        Value::Object(obj) => {
            if obj.remove("rds").is_some() {
                obj.insert("route_config".into(), routes.clone());
            }
            obj.values_mut().for_each(|v| inline_rds(v, routes));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| inline_rds(v, routes)),
        _ => {}
    }
}

/// The bootstrap `meshmux discover` wrote into `out`, with its LDS, RDS, CDS and ECDS files
/// inlined as static resources.
pub fn inlined_bootstrap(out: &Path) -> Result<Value> {
    let path = out.join("envoy.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut bootstrap: Value = serde_json::from_str(&text)?;
    let ecds = resources(&out.join("ecds.yaml"))?;
    let mut listeners = Value::Array(resources(&out.join("lds.yaml"))?);
    inline_ecds(&mut listeners, &ecds)?;
    let routes = resources(&out.join("rds.yaml"))?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("rds.yaml has no route configuration"))?;
    inline_rds(&mut listeners, &routes);
    let obj = bootstrap
        .as_object_mut()
        .ok_or_else(|| anyhow!("{} is not an object", path.display()))?;
    obj.remove("dynamic_resources");
    obj.insert(
        "static_resources".into(),
        json!({"listeners": listeners, "clusters": resources(&out.join("cds.yaml"))?}),
    );
    Ok(bootstrap)
}
