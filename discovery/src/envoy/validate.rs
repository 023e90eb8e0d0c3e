//! `envoy --mode validate` checks a bootstrap but does not read the files its
//! `dynamic_resources` name. This builds one bootstrap with the generated listener, its
//! routes and the clusters inline, so the whole generated config is checked; with `inline_filter`, the
//! wasm filter's config is inlined as well, so Envoy also loads the filter and runs its
//! `on_configure` on the generated plugin config.

use serde_json::{Map, Value};

use super::{BOOTSTRAP_FILE, CDS_FILE, ECDS_FILE, FILTER_NAME, File, LDS_FILE, RDS_FILE};

fn parsed(files: &[File], name: &str) -> Result<Value, String> {
    let file = files
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| format!("{name} was not generated"))?;
    serde_json::from_str(&file.contents).map_err(|e| format!("{name}: {e}"))
}

/// The `resources` of an xDS file, without their `@type` (static resources have none).
fn resources(files: &[File], name: &str) -> Result<Vec<Value>, String> {
    let mut doc = parsed(files, name)?;
    let items = doc
        .get_mut("resources")
        .and_then(Value::as_array_mut)
        .map(std::mem::take)
        .ok_or_else(|| format!("{name} has no resources"))?;
    Ok(items
        .into_iter()
        .map(|mut r| {
            if let Some(obj) = r.as_object_mut() {
                obj.remove("@type");
            }
            r
        })
        .collect())
}

/// A static bootstrap equivalent to the generated files.
pub fn validation_bootstrap(files: &[File], inline_filter: bool) -> Result<String, String> {
    let mut bootstrap = parsed(files, BOOTSTRAP_FILE)?;
    let mut listeners = resources(files, LDS_FILE)?;
    let clusters = resources(files, CDS_FILE)?;
    let routes = resources(files, RDS_FILE)?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{RDS_FILE} has no route configuration"))?;
    for listener in &mut listeners {
        inline_routes(listener, &routes);
    }
    if inline_filter {
        let ecds = resources(files, ECDS_FILE)?;
        let typed_config = ecds
            .first()
            .and_then(|r| r.get("typed_config"))
            .cloned()
            .ok_or_else(|| format!("{ECDS_FILE} has no typed_config"))?;
        for listener in &mut listeners {
            for filter in http_filters(listener) {
                if filter.get("name").and_then(Value::as_str) == Some(FILTER_NAME) {
                    let mut inline = Map::new();
                    inline.insert("name".into(), FILTER_NAME.into());
                    inline.insert("typed_config".into(), typed_config.clone());
                    *filter = Value::Object(inline);
                }
            }
        }
    }
    let obj = bootstrap
        .as_object_mut()
        .ok_or_else(|| format!("{BOOTSTRAP_FILE} is not an object"))?;
    obj.remove("dynamic_resources");
    obj.insert(
        "static_resources".into(),
        serde_json::json!({ "listeners": listeners, "clusters": clusters }),
    );
    serde_json::to_string_pretty(&bootstrap).map_err(|e| e.to_string())
}

/// Replaces each connection manager's `rds` source with the route table it names.
fn inline_routes(listener: &mut Value, routes: &Value) {
    for hcm in connection_managers(listener) {
        if let Some(hcm) = hcm.as_object_mut()
            && hcm.remove("rds").is_some()
        {
            hcm.insert("route_config".into(), routes.clone());
        }
    }
}

/// The `typed_config` of every network filter in the listener's chains.
fn connection_managers(listener: &mut Value) -> impl Iterator<Item = &mut Value> {
    listener
        .get_mut("filter_chains")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(|chain| chain.get_mut("filters").and_then(Value::as_array_mut))
        .flatten()
        .filter_map(|f| f.get_mut("typed_config"))
}

fn http_filters(listener: &mut Value) -> impl Iterator<Item = &mut Value> {
    connection_managers(listener)
        .filter_map(|hcm| hcm.get_mut("http_filters").and_then(Value::as_array_mut))
        .flatten()
}
