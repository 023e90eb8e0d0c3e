//! The root context: turns each plugin configuration into a [`Gateway`] shared by the HTTP
//! contexts of this worker. A configuration that does not parse or validate is refused
//! (`on_configure` returns false), so Envoy keeps serving with the previous one. With auth,
//! it also ticks to keep authsvc's revocation list fresh (`revocation.rs`).

use std::rc::Rc;
use std::time::Duration;

use log::{info, warn};
use policy::Gateway;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use crate::host::{self, CallAnswer};
use crate::http::Stream;
use crate::revocation;

#[derive(Default)]
pub struct Root {
    gateway: Option<Rc<Gateway>>,
    /// The revocation-list fetch this root context waits for.
    fetching: Option<u32>,
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        if self.fetching != Some(token) {
            return;
        }
        self.fetching = None;
        let answer = CallAnswer::read(body_size);
        if let Some(auth) = self.gateway.as_ref().and_then(|g| g.config().auth.as_ref()) {
            revocation::answered(&auth.revocations, &answer);
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let bytes = host::body(BufferType::PluginConfiguration, plugin_configuration_size);
        match configure(&bytes) {
            Ok(gateway) => {
                let m = &gateway.config().manifest;
                info!(
                    "configured with manifest {} ({} envs, {} tools, auth {})",
                    m.hash,
                    m.envs.len(),
                    m.tools.len(),
                    if gateway.config().auth.is_some() {
                        "on"
                    } else {
                        "off"
                    }
                );
                let tick = gateway
                    .config()
                    .auth
                    .as_ref()
                    .map_or(0, |a| revocation::tick_period_ms(&a.revocations));
                // 0 stops the ticks a previous configuration with auth started.
                if let Err(s) = hostcalls::set_tick_period(Duration::from_millis(tick)) {
                    warn!("setting the tick period: {s:?}");
                }
                crate::metrics::pin_drift(&gateway);
                self.gateway = Some(Rc::new(gateway));
                // Fetch the revocation list now rather than a tick from now: the MCP path
                // answers 503 until this Envoy has one.
                self.on_tick();
                true
            }
            Err(e) => {
                warn!("plugin configuration refused: {e}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if self.fetching.is_some() {
            // The previous fetch has not answered yet (its timeout ends it).
            return;
        }
        if let Some(auth) = self.gateway.as_ref().and_then(|g| g.config().auth.as_ref()) {
            self.fetching = revocation::tick(&auth.revocations);
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream::new(self.gateway.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Parses and validates a plugin configuration (the JSON of `FilterConfig`).
pub fn configure(bytes: &[u8]) -> Result<Gateway, String> {
    Gateway::from_plugin_json(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configurations_are_explained() {
        let err = |b: &[u8]| configure(b).err().unwrap_or_default();
        assert!(err(b"").contains("empty"));
        assert!(err(b"{").contains("not a valid FilterConfig"));
        assert!(err(br#"{"manifest":{},"bogus":1}"#).contains("not a valid FilterConfig"));
        let unknown_format = br#"{"manifest":{"format":99,"server":{"name":"m","version":"1"},"envs":[],"tools":[]}}"#;
        assert!(err(unknown_format).contains("format 99"));
    }

    #[test]
    fn minimal_configuration() {
        let ok = br#"{"manifest":{"format":1,"server":{"name":"m","version":"1"},"envs":[],"tools":[]}}"#;
        let gw = configure(ok).map_err(|e| e.to_string());
        assert!(gw.is_ok(), "{gw:?}");
    }
}
