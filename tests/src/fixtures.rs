//! Setups many tests share, so each test reads as what it checks.

use anyhow::Result;

use crate::auth::{FakeAuthsvc, Issuer};
use crate::{Backend, Config, Gateway};

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
        Self::start_with(|config| config)
    }

    /// Like [`OpsEnvs::start`], with the config adjusted by `adjust` before the gateway starts.
    pub fn start_with(adjust: impl FnOnce(Config) -> Config) -> Result<Self> {
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
        let gw = adjust(config).start()?;
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

/// The roles the auth tests use: `admin` may do everything, `staging-reader` anything in
/// Staging only.
pub fn test_roles() -> serde_json::Value {
    serde_json::json!({
        "admin": {"*": ["*"]},
        "staging-reader": {"Staging": ["*"]}
    })
}

/// [`OpsEnvs`] behind authorization: tokens from `issuer`, JWKS and revocation list from a
/// stand-in authsvc, roles from [`test_roles`].
pub struct AuthOps {
    // The gateway stops before authsvc and the backends.
    pub ops: OpsEnvs,
    pub authsvc: FakeAuthsvc,
    pub issuer: Issuer,
}

impl AuthOps {
    pub fn start() -> Result<Self> {
        let issuer = Issuer::new(crate::auth::BASE_URL)?;
        let authsvc = FakeAuthsvc::start(&issuer)?;
        let url = authsvc.url();
        let ops = OpsEnvs::start_with(|c| c.auth(&url, test_roles()))?;
        Ok(AuthOps {
            ops,
            authsvc,
            issuer,
        })
    }

    pub fn gw(&self) -> &Gateway {
        &self.ops.gw
    }
}
