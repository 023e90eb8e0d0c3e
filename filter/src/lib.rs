//! meshmux's Envoy filter: proxy-wasm glue, built to `wasm32-unknown-unknown`. It reads and
//! writes host state and maps the decisions of the `policy` core to host calls; it decides
//! nothing itself, and nothing in it may panic (a panic kills the VM for every later request).

mod host;
mod http;
mod metrics;
mod revocation;
mod root;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(root::Root::default()));
}}
