//! Counters the filter exports as Envoy stats (`wasmcustom.meshmux.*`; Prometheus shows them
//! without the `wasmcustom` prefix). Ids are per VM, so each worker defines them lazily.

use std::cell::RefCell;
use std::collections::HashMap;

use log::warn;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

thread_local! {
    static IDS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
}

/// Adds one to the counter `name`, defining it on first use.
pub fn count(name: &str) {
    let id = IDS.with(|ids| {
        let mut ids = ids.borrow_mut();
        if let Some(id) = ids.get(name) {
            return Some(*id);
        }
        // Envoy answers Ok for any counter name; the SDK would panic on anything else.
        let id = hostcalls::define_metric(MetricType::Counter, name).ok()?;
        ids.insert(name.to_owned(), id);
        Some(id)
    });
    if let Some(id) = id
        && let Err(s) = hostcalls::increment_metric(id, 1)
    {
        warn!("counting {name}: {s:?}");
    }
}

/// A `tools/call` the caller's roles do not allow: counted in total and per tool and env.
pub fn denied(tool: &str, env: &str) {
    count("meshmux.denied");
    count(&format!("meshmux.denied.tool.{tool}.env.{env}"));
}
