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

/// Which identity provider the real authsvc signs people in with.
pub enum Idp {
    /// A real OpenID provider (`oidc-provider`) with these users (`{"alice": {"roles": [...]}}`).
    Oidc(serde_json::Value),
    /// authsvc's own loopback dev page with these users (`{"carol": ["role", …]}`).
    Dev(serde_json::Value),
}

/// The whole product on loopback: three recording demo backends (Prod, Staging, Dev) behind
/// Envoy + the filter, the real authsvc (`meshmux-authsvc serve`) with `auth.base_url` = the
/// gateway's URL, and its upstream IdP. Roles: [`test_roles`] plus `minter` (may mint tokens,
/// grants no tools); minted tokens live at most `MAX_DAYS` days.
pub struct RealAuth {
    // Envoy stops first, then authsvc, then the IdP and the backends.
    pub gw: Gateway,
    pub authsvc: crate::authsvc::Authsvc,
    pub idp: Option<crate::oidc_idp::OidcIdp>,
    pub prod: Backend,
    pub staging: Backend,
    pub dev: Backend,
    pub base_url: String,
}

impl RealAuth {
    pub const MAX_DAYS: u32 = 30;

    pub fn start(idp: Idp) -> Result<Self> {
        use crate::authsvc::Authsvc;
        let prod = Backend::demo("Prod").record().start()?;
        let staging = Backend::demo("Staging").record().start()?;
        let dev = Backend::demo("Dev").record().start()?;
        let gw_port = crate::ports::free_port()?;
        let authsvc_port = Authsvc::reserve_port()?;
        let base_url = format!("http://127.0.0.1:{gw_port}");
        let (oidc, idp_block) = match idp {
            Idp::Oidc(users) => {
                let oidc = crate::oidc_idp::OidcIdp::start(&base_url, users)?;
                let block = oidc.auth_block();
                (Some(oidc), block)
            }
            Idp::Dev(users) => (None, serde_json::json!({"dev": {"users": users}})),
        };
        let dir = crate::logs::unique_path("authsvc-config", "")?;
        std::fs::create_dir_all(&dir)?;
        let key = dir.join("signing.pem");
        std::fs::copy(crate::auth::signing_key_path(), &key)?;
        let mut roles = test_roles();
        if let Some(map) = roles.as_object_mut() {
            map.insert("minter".into(), serde_json::json!({}));
        }
        let config = Gateway::builder()
            .env("Prod", &prod)
            .env("Staging", &staging)
            .env("Dev", &dev)
            .port(gw_port)
            .auth_at(
                &base_url,
                &format!("http://127.0.0.1:{authsvc_port}"),
                roles,
            )
            .signing_key_file(&key)
            .idp(idp_block)
            .minting(&["minter"], Self::MAX_DAYS);
        let authsvc = Authsvc::start(&config.write(&dir)?, authsvc_port)?;
        let gw = config.start()?;
        Ok(RealAuth {
            gw,
            authsvc,
            idp: oidc,
            prod,
            staging,
            dev,
            base_url,
        })
    }

    /// How many `tools/call`s reached each backend: (Prod, Staging, Dev).
    pub fn calls_received(&self) -> Result<(usize, usize, usize)> {
        Ok((
            self.prod.records()?.len(),
            self.staging.records()?.len(),
            self.dev.records()?.len(),
        ))
    }
}

/// Two `@modelcontextprotocol/server-everything` instances (Alpha, Beta) behind one gateway.
pub fn everything_twice() -> Result<(Gateway, Backend, Backend)> {
    let alpha = Backend::everything("Alpha").start()?;
    let beta = Backend::everything("Beta").start()?;
    let gw = Gateway::builder()
        .env("Alpha", &alpha)
        .env("Beta", &beta)
        .start()?;
    Ok((gw, alpha, beta))
}
