//! Backend credentials the gateway holds (`credentials` per env), on real processes: a demo
//! backend that demands a bearer token, a `command` helper whose token the test rotates while
//! a client keeps calling through Envoy, a backend that refuses a cached token, and a
//! client-credentials token from a real OAuth authorization server (npm `oidc-provider`) that
//! the backend checks by RFC 7662 introspection at that server.

// Helpers of an integration test may fail the test on the spot, like the tests themselves
// (clippy.toml allows this inside #[test] functions only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::{Value, json};
use tests::oidc_idp::OidcIdp;
use tests::reload::{busy_across_a_switch, call_ok, eventually};
use tests::watch::Site;
use tests::{Backend, Gateway, logs};

/// Writes `text` to `path` atomically (a reader never sees half a token list).
fn replace(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming onto {}", path.display()))
}

/// A credential helper the test controls: prints the token in `token`, counts its runs in
/// `runs` and says something on stderr (which must be logged, the token never).
struct Helper {
    dir: PathBuf,
}

impl Helper {
    fn new(first_token: &str) -> Result<Helper> {
        let dir = logs::unique_path("helper", "")?;
        std::fs::create_dir_all(&dir)?;
        let helper = Helper { dir };
        helper.set_token(first_token)?;
        let script = format!(
            "#!/bin/sh\necho run >> '{runs}'\necho 'helper: minting a token' >&2\ncat '{token}'\n",
            runs = helper.dir.join("runs").display(),
            token = helper.dir.join("token").display(),
        );
        let path = helper.script();
        std::fs::write(&path, script)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(helper)
    }

    fn script(&self) -> PathBuf {
        self.dir.join("helper.sh")
    }

    fn set_token(&self, token: &str) -> Result<()> {
        replace(&self.dir.join("token"), &format!("{token}\n"))
    }

    fn runs(&self) -> usize {
        std::fs::read_to_string(self.dir.join("runs"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    fn credentials(&self, ttl_seconds: u64) -> Value {
        json!({"type": "command", "command": [self.script()], "ttl_seconds": ttl_seconds})
    }
}

/// The bearer tokens the demo backend accepts (`--require-bearer-file`).
struct Accepted(PathBuf);

impl Accepted {
    fn new(tokens: &[&str]) -> Result<Accepted> {
        let accepted = Accepted(logs::unique_path("accepted", ".txt")?);
        accepted.set(tokens)?;
        Ok(accepted)
    }

    fn set(&self, tokens: &[&str]) -> Result<()> {
        replace(&self.0, &(tokens.join("\n") + "\n"))
    }
}

/// The `authorization` header of the last call the backend recorded.
fn last_authorization(backend: &Backend) -> Result<Option<String>> {
    Ok(backend
        .records()?
        .last()
        .and_then(|r| r.header("authorization"))
        .map(str::to_owned))
}

/// The HTTP status the backend itself answers an `initialize` with, sent with `token` as a
/// bearer token (or none): the backends here really check.
fn direct_status(backend: &Backend, token: Option<&str>) -> Result<u16> {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let mut request = tests::http::Request::post(tests::http::client()?, &backend.url(), body);
    if let Some(token) = token {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    Ok(request.send()?.status)
}

/// No generated file holds `secret` except the owner-only ones, and the manifest never does.
fn assert_secret_kept(site: &Site, secret: &str) -> Result<()> {
    for entry in std::fs::read_dir(&site.found.out)? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.contains(secret) {
            let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} holds a credential", path.display());
        }
    }
    let manifest = std::fs::read_to_string(site.found.out.join("manifest.json"))?;
    assert!(
        !manifest.contains(secret),
        "the manifest holds a credential"
    );
    Ok(())
}

#[test]
fn a_command_credential_rotates_through_envoy_without_a_failed_call() -> Result<()> {
    let accepted = Accepted::new(&["cred-token-one"])?;
    let prod = Backend::demo("Prod")
        .record()
        .require_bearer_file(&accepted.0)
        .start()?;
    assert_eq!(direct_status(&prod, None)?, 401);
    assert_eq!(direct_status(&prod, Some("cred-token-two"))?, 401);
    assert_eq!(direct_status(&prod, Some("cred-token-one"))?, 200);
    let helper = Helper::new("cred-token-one")?;
    // Re-run every second: each watch cycle asks the helper again.
    let config = Gateway::builder()
        .env("Prod", &prod)
        .env_credentials("Prod", helper.credentials(1));
    let site = Site::new(&config)?;
    let mut watch = site.watch("1s")?;
    let gw = site.gateway(false)?;
    call_ok(&gw, "Prod").map_err(anyhow::Error::msg)?;
    assert_eq!(
        last_authorization(&prod)?.as_deref(),
        Some("Bearer cred-token-one")
    );

    // The backend starts accepting the next token, the helper hands it out, and the client
    // calling all along never sees a failure.
    busy_across_a_switch(
        &gw,
        &["Prod"],
        || {
            accepted.set(&["cred-token-one", "cred-token-two"])?;
            helper.set_token("cred-token-two")
        },
        || Ok(last_authorization(&prod)?.as_deref() == Some("Bearer cred-token-two")),
    )?;
    // The old token is retired at the backend: every call still goes through.
    accepted.set(&["cred-token-two"])?;
    let before = prod.records()?.len();
    for _ in 0..10 {
        call_ok(&gw, "Prod").map_err(anyhow::Error::msg)?;
    }
    let records = prod.wait_for_records(before + 10)?;
    for r in &records[before..] {
        assert_eq!(r.header("authorization"), Some("Bearer cred-token-two"));
    }

    let out = watch.wait_for("the header change", Duration::from_secs(10), |o| {
        o.contains("Prod: headers changed (now: Authorization)")
    })?;
    assert!(!out.contains("cred-token"), "a token was printed:\n{out}");
    let log = watch.log();
    assert!(
        log.contains("helper: minting a token"),
        "stderr not logged:\n{log}"
    );
    assert!(!log.contains("cred-token"), "a token was logged:\n{log}");
    assert_secret_kept(&site, "cred-token-two")?;
    assert!(helper.runs() >= 3, "the helper ran {} times", helper.runs());
    assert!(watch.terminate()?.success());
    Ok(())
}

#[test]
fn a_backend_that_refuses_the_cached_token_gets_a_new_one_at_once() -> Result<()> {
    let accepted = Accepted::new(&["cached-one"])?;
    let prod = Backend::demo("Prod")
        .record()
        .require_bearer_file(&accepted.0)
        .start()?;
    let helper = Helper::new("cached-one")?;
    // An hour's TTL: only the refusal can make the watch run the helper again.
    let site = Site::new(
        &Gateway::builder()
            .env("Prod", &prod)
            .env_credentials("Prod", helper.credentials(3600)),
    )?;
    let mut watch = site.watch("1s")?;
    let gw = site.gateway(false)?;
    call_ok(&gw, "Prod").map_err(anyhow::Error::msg)?;
    watch.wait_unchanged_cycles(2, Duration::from_secs(20))?;
    assert_eq!(helper.runs(), 1, "the token is cached between cycles");

    // The backend revokes it early; the helper already has a new one.
    helper.set_token("cached-two")?;
    accepted.set(&["cached-two"])?;
    let out = watch.wait_for("the new token", Duration::from_secs(20), |o| {
        o.contains("Prod: headers changed (now: Authorization)")
    })?;
    assert!(!out.contains("unreachable"), "{out}");
    assert_eq!(helper.runs(), 2);
    eventually(
        "the new token at the backend",
        Duration::from_secs(20),
        || {
            call_ok(&gw, "Prod").map_err(anyhow::Error::msg)?;
            Ok(last_authorization(&prod)?.as_deref() == Some("Bearer cached-two"))
        },
    )?;
    assert!(watch.terminate()?.success());
    Ok(())
}

#[test]
fn a_failing_helper_or_a_wrong_client_secret_is_a_clear_error_naming_the_env() -> Result<()> {
    let accepted = Accepted::new(&["x"])?;
    let prod = Backend::demo("Prod")
        .require_bearer_file(&accepted.0)
        .start()?;
    let staging = Backend::demo("Staging").start()?;
    let idp = OidcIdp::start_with(
        "http://127.0.0.1:1",
        json!({}),
        json!({"machines": [{"client_id": "gw", "client_secret": "right-secret"}]}),
    )?;
    let config = Gateway::builder()
        .env("Prod", &prod)
        .env_credentials(
            "Prod",
            json!({"type": "command", "command": ["sh", "-c", "echo oops-secret; echo no access >&2; exit 3"]}),
        )
        .env("Staging", &staging)
        .env_credentials(
            "Staging",
            json!({"type": "oauth_client_credentials", "token_url": idp.token_url(),
                   "client_id": "gw", "client_secret": "wrong-secret"}),
        );
    let run = config.check_text()?;
    let out = run.output();
    assert_ne!(run.code, Some(0), "{out}");
    assert!(
        out.contains("credentials: the credential helper \"sh\" failed (exit status: 3)"),
        "{out}"
    );
    assert!(
        out.contains("refused the client credentials: invalid_client"),
        "{out}"
    );
    assert!(
        out.contains("no access"),
        "the helper's stderr is logged:\n{out}"
    );
    for secret in ["oops-secret", "wrong-secret"] {
        assert!(!out.contains(secret), "{secret} printed:\n{out}");
    }

    // And a credential next to the same header in `headers` is refused before anything runs.
    let clash = Gateway::builder()
        .env("Staging", &staging)
        .env_header("Staging", "authorization", "Bearer x")
        .env_credentials("Staging", json!({"type": "bearer", "token": "y"}));
    let run = clash.check_text()?;
    assert!(
        run.output().contains(
            "environments.Staging.credentials: sets `Authorization`, which `headers` also sets"
        ),
        "{}",
        run.output()
    );
    Ok(())
}

#[test]
fn an_oauth_client_credentials_token_is_renewed_before_it_expires_without_a_failed_call()
-> Result<()> {
    // Tokens live 20 s at the provider; the gateway renews them half-way.
    let idp = OidcIdp::start_with(
        "http://127.0.0.1:1",
        json!({}),
        json!({
            "machines": [
                {"client_id": "meshmux-gw", "client_secret": "gw-client-secret",
                 "scope": "logs:read deploy:read"},
                {"client_id": "prod-backend", "client_secret": "backend-client-secret"},
            ],
            "machine_token_ttl": 20,
        }),
    )?;
    let prod = Backend::demo("Prod")
        .record()
        .introspection(
            &idp.introspection_url(),
            "prod-backend:backend-client-secret",
        )
        .start()?;
    assert_eq!(direct_status(&prod, None)?, 401);
    assert_eq!(direct_status(&prod, Some("made-up-token"))?, 401);
    let site = Site::new(&Gateway::builder().env("Prod", &prod).env_credentials(
        "Prod",
        json!({"type": "oauth_client_credentials", "token_url": idp.token_url(),
               "client_id": "meshmux-gw", "client_secret": "gw-client-secret",
               "scopes": ["logs:read", "deploy:read"]}),
    ))?;
    let mut watch = site.watch("1s")?;
    let gw = site.gateway(false)?;
    call_ok(&gw, "Prod").map_err(anyhow::Error::msg)?;
    let first = last_authorization(&prod)?.unwrap_or_default();
    assert!(first.starts_with("Bearer "), "{first}");

    // Calls across the renewal: a second token reaches the backend, and none fails.
    busy_across_a_switch(
        &gw,
        &["Prod"],
        || Ok(()),
        || {
            let tokens: BTreeSet<String> = prod
                .records()?
                .iter()
                .filter_map(|r| r.header("authorization").map(str::to_owned))
                .collect();
            Ok(tokens.len() >= 2)
        },
    )?;
    let out = watch.wait_for("the renewal", Duration::from_secs(5), |o| {
        o.contains("Prod: headers changed (now: Authorization)")
    })?;
    let token = first.trim_start_matches("Bearer ");
    assert!(!out.contains(token), "a token was printed:\n{out}");
    assert!(!watch.log().contains(token), "a token was logged");
    assert!(!watch.log().contains("gw-client-secret"));
    assert_secret_kept(&site, token)?;
    // The first token is still valid at the provider (renewed early), and checked for real.
    assert_eq!(direct_status(&prod, Some(token))?, 200);
    let idp_log = std::fs::read_to_string(idp.log())?;
    assert!(
        idp_log.matches("grant.success for meshmux-gw").count() >= 2,
        "{idp_log}"
    );
    assert!(watch.terminate()?.success());
    Ok(())
}

#[test]
fn meshmux_up_resolves_a_command_credential() -> Result<()> {
    use tests::http::{Request, client};

    let accepted = Accepted::new(&["up-token"])?;
    let prod = Backend::demo("Prod")
        .require_bearer_file(&accepted.0)
        .start()?;
    let helper = Helper::new("up-token")?;
    let dir = logs::unique_path("up", "")?;
    let config_path = Gateway::builder()
        .env("Prod", &prod)
        .env_credentials("Prod", helper.credentials(300))
        .write(&dir)?;
    let (mut up, port) = tests::up::start(&config_path, &dir, &[])?;
    let stdout = dir.join("up.stdout");
    let http = client()?;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let call = tests::http::tools_call(
        1,
        "list_deployments",
        &json!({"env": "Prod", "service": "api"}),
    );
    up.wait_until(
        "a call through up's gateway",
        Duration::from_secs(60),
        || {
            let result = Request::post(http.clone(), &url, call.clone())
                .send()?
                .result()?;
            Ok(tests::result_text(&result).starts_with("[Prod] list_deployments"))
        },
    )?;
    let printed = std::fs::read_to_string(&stdout)?;
    assert!(!printed.contains("unreachable"), "{printed}");
    assert!(!printed.contains("up-token"), "{printed}");
    assert_eq!(helper.runs(), 1);
    up.stop();
    Ok(())
}

#[test]
fn mcp_servers_take_a_credential_per_server_with_per_environment_overrides() -> Result<()> {
    let accepted = Accepted::new(&["server-default-token", "prod-helper-token"])?;
    let prod = Backend::demo("Prod")
        .record()
        .require_bearer_file(&accepted.0)
        .start()?;
    let staging = Backend::demo("Staging")
        .record()
        .require_bearer_file(&accepted.0)
        .start()?;
    let solo = Backend::demo("Solo")
        .record()
        .require_bearer_file(&accepted.0)
        .start()?;
    let helper = Helper::new("prod-helper-token")?;
    let gw = Gateway::builder()
        .server(
            "ops",
            json!({
                "credentials": {"type": "bearer", "token": "server-default-token"},
                "environments": {
                    "Prod": {"description": "Production", "url": prod.url(),
                             "credentials": helper.credentials(300)},
                    "Staging": {"description": "Staging", "url": staging.url()}
                }
            }),
        )
        .server(
            "solo",
            json!({"url": solo.url(),
                   "credentials": {"type": "header", "name": "Authorization",
                                   "value": "Bearer server-default-token"}}),
        )
        .start()?;
    for (env, backend, token) in [
        ("Prod", &prod, "prod-helper-token"),
        ("Staging", &staging, "server-default-token"),
    ] {
        let result = gw.call_tool(
            "ops__list_deployments",
            json!({"env": env, "service": "api"}),
        )?;
        assert!(
            tests::result_text(&result).starts_with(&format!("[{env}] list_deployments")),
            "{result:#}"
        );
        assert_eq!(
            last_authorization(backend)?,
            Some(format!("Bearer {token}")),
            "{env}"
        );
    }
    let result = gw.call_tool("solo__list_deployments", json!({"service": "api"}))?;
    assert!(
        tests::result_text(&result).starts_with("[Solo] list_deployments"),
        "{result:#}"
    );
    assert_eq!(
        last_authorization(&solo)?.as_deref(),
        Some("Bearer server-default-token")
    );
    Ok(())
}
