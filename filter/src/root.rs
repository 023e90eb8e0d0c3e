//! The root context: turns each plugin configuration into a [`Gateway`] shared by the HTTP
//! contexts of this worker. A configuration that does not parse or validate is refused
//! (`on_configure` returns false), so Envoy keeps serving with the previous one.

use std::rc::Rc;

use log::{info, warn};
use policy::{FilterConfig, Gateway};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use crate::host;
use crate::http::Stream;

#[derive(Default)]
pub struct Root {
    gateway: Option<Rc<Gateway>>,
}

impl Context for Root {}

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
                self.gateway = Some(Rc::new(gateway));
                true
            }
            Err(e) => {
                warn!("plugin configuration refused: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream::new(self.gateway.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Parses and validates a plugin configuration (the JSON of [`FilterConfig`]).
pub fn configure(bytes: &[u8]) -> Result<Gateway, String> {
    if bytes.is_empty() {
        return Err("it is empty; the filter needs the JSON that `meshmux discover` writes".into());
    }
    let config: FilterConfig = serde_json::from_slice(bytes)
        .map_err(|e| format!("it is not a valid FilterConfig: {e}"))?;
    Gateway::new(config)
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
