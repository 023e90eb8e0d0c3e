//! One filter configuration (one `on_http_filter_config_new`): the [`Gateway`] its streams
//! share and its metric ids. A configuration that does not parse or validate is refused
//! (Envoy keeps the previous one), and so is one with `auth`: the 1.40 ABI reads dynamic
//! metadata one level deep (namespace → key), while jwt_authn puts the verified claims one
//! level deeper (`jwt_payload` → `roles`), so the native filter could not tell callers apart
//! and fails closed instead (ARCHITECTURE.md, "What the ABI lacks").

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use policy::Gateway;

use crate::abi::{self, CalloutAnswer, Config};
use crate::metrics::Ids;

/// What the streams of one configuration share (outlives the config: streams hold an `Arc`).
pub struct Shared {
    pub gateway: Gateway,
    pub metrics: Option<Ids>,
}

pub struct Root {
    pub shared: Arc<Shared>,
}

// Envoy calls the hooks of one configuration from every worker thread, and the pointers it
// passes hide that from the compiler: check here that what they reach may be shared.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Root>();
    shareable::<Shared>();
};

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Parses and validates a plugin configuration (the same JSON the wasm filter gets).
pub fn configure(bytes: &[u8]) -> Result<Gateway, String> {
    let gateway = Gateway::from_plugin_json(bytes)?;
    if gateway.config().auth.is_some() {
        return Err(NO_AUTH.into());
    }
    Ok(gateway)
}

/// Why a configuration with `auth` is refused.
pub const NO_AUTH: &str = "it has `auth`, which the native filter does not support yet: \
    Envoy 1.40's dynamic-module ABI cannot read jwt_authn's nested claims (roles, sub, jti); \
    use the wasm filter (`--filter-kind wasm`) with auth";

impl Root {
    /// `None` (logged) refuses the configuration: Envoy keeps the previous one.
    pub fn new(config: Config, _name: &[u8], bytes: &[u8]) -> Option<Root> {
        let gateway = match configure(bytes) {
            Ok(g) => g,
            Err(e) => {
                abi::log_warn(&format!("meshmux: plugin configuration refused: {e}"));
                return None;
            }
        };
        let m = &gateway.config().manifest;
        abi::log_info(&format!(
            "meshmux (native) configured with manifest {} ({} envs, {} tools)",
            m.hash,
            m.envs.len(),
            m.tools.len(),
        ));
        crate::metrics::pin_drift(&gateway, config);
        let metrics = gateway
            .config()
            .metrics
            .enabled
            .then(|| Ids::define(|kind, name, labels| config.define(kind, name, labels)));
        Some(Root {
            shared: Arc::new(Shared { gateway, metrics }),
        })
    }

    /// A main-thread event: none are scheduled yet (revocation polling needs auth).
    pub fn on_scheduled(&self, _config: Config, _event: u64) {}

    /// A configuration-level side call answered: none are made yet.
    pub fn on_callout_answer(&self, _callout: u64, _answer: &CalloutAnswer) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configurations_are_explained() {
        let err = |b: &[u8]| configure(b).err().unwrap_or_default();
        assert!(err(b"").contains("empty"));
        assert!(err(b"{").contains("not a valid FilterConfig"));
        let unknown_format = br#"{"manifest":{"format":99,"server":{"name":"m","version":"1"},"envs":[],"tools":[]}}"#;
        assert!(err(unknown_format).contains("format 99"));
    }

    #[test]
    fn minimal_configuration() {
        let ok = br#"{"manifest":{"format":1,"server":{"name":"m","version":"1"},"envs":[],"tools":[]}}"#;
        assert!(configure(ok).is_ok());
    }
}
