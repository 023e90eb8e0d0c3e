//! Setups many tests share, so each test reads as what it checks.

use anyhow::Result;

use crate::{Backend, Gateway};

/// The header every env's backend receives from the gateway, and each env's value.
pub const TOKEN_HEADER: &str = "X-Env-Token";
pub const ENV_TOKENS: [(&str, &str); 3] = [
    ("Prod", "prod-secret"),
    ("Staging", "staging-secret"),
    ("Dev", "dev-secret"),
];

/// What a client sends as its own credential; it must never reach a backend.
pub const CLIENT_TOKEN: &str = "client-token-must-not-leak";

/// Three recording demo backends (Prod, Staging, Dev; stateful) behind one gateway, each env
/// with its own `X-Env-Token`.
pub struct OpsEnvs {
    // Envoy stops before the backends.
    pub gw: Gateway,
    pub prod: Backend,
    pub staging: Backend,
    pub dev: Backend,
}

impl OpsEnvs {
    pub fn start() -> Result<Self> {
        let prod = Backend::demo("Prod").record().start()?;
        let staging = Backend::demo("Staging").record().start()?;
        let dev = Backend::demo("Dev").record().start()?;
        let mut config = Gateway::builder()
            .env("Prod", &prod)
            .env("Staging", &staging)
            .env("Dev", &dev);
        for (env, token) in ENV_TOKENS {
            config = config.env_header(env, TOKEN_HEADER, token);
        }
        let gw = config.start()?;
        Ok(OpsEnvs {
            gw,
            prod,
            staging,
            dev,
        })
    }

    pub fn backend(&self, env: &str) -> &Backend {
        match env {
            "Prod" => &self.prod,
            "Staging" => &self.staging,
            _ => &self.dev,
        }
    }

    pub fn backends(&self) -> [&Backend; 3] {
        [&self.prod, &self.staging, &self.dev]
    }

    /// How many `tools/call`s reached any backend.
    pub fn calls_received(&self) -> Result<usize> {
        let mut n = 0;
        for b in self.backends() {
            n += b.records()?.len();
        }
        Ok(n)
    }
}
