//! Loading the user's config, discovering every env, and writing the results: the manifest
//! and the Envoy files, each atomically and only when it changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use policy::config::{Config, Format};
use policy::manifest::Manifest;
use policy::pin::{PinFile, PinMode};
use policy::servers;

use crate::catalog::{self, EnvResult};
use crate::fsutil::{Written, write_if_changed};
use crate::state::State;
use crate::{envoy, pin};

pub const MANIFEST_FILE: &str = "manifest.json";

/// Reads and validates a config file; `$VAR`s come from this process's environment.
pub fn load_config(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config {}", path.display()))?;
    let name = path.display().to_string();
    let lookup = |var: &str| std::env::var(var).ok();
    // The error's message already names its cause: no source chain to repeat.
    let mut config = Config::parse(&text, Format::from_name(&name), &name, &lookup)
        .map_err(|e| anyhow!(e.to_string()))?;
    // The users file too (`auth.users_file`); its roles go into the filter's.
    if let Some(users) = config.users_path(path) {
        let text = std::fs::read_to_string(&users)
            .with_context(|| format!("reading auth.users_file {}", users.display()))?;
        config
            .attach_users(&text, &users.display().to_string())
            .map_err(|e| anyhow!(e.to_string()))?;
    }
    // The pin file is relative to the config file, wherever meshmux runs from.
    config.gateway.pin_file = Some(
        pin::resolve(path, config.gateway.pin_file.as_deref())
            .display()
            .to_string(),
    );
    Ok(config)
}

/// A config with what its backends said, merged.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub config: Config,
    /// What each env served: its fresh list, or (stale) its last good one, or the error.
    pub results: Vec<EnvResult>,
    /// Sealed; unreachable envs recorded with their reason and no tools, stale ones with
    /// their reason and their last good tools.
    pub manifest: Manifest,
    /// The pin file this discovery was compared with (`gateway.pinning` not `off`); `results`
    /// stay as listed, the manifest serves what the pins allow.
    pub pins: Option<PinFile>,
}

/// Lists every env's tools (concurrently, each within `timeout`) and merges them.
pub async fn discover(config: Config, timeout: Duration) -> Result<Discovery> {
    discover_with(config, timeout, None).await
}

/// Refuses a config whose URLs Envoy could not route to, before anything is contacted.
pub fn validate(config: &Config) -> Result<()> {
    catalog::targets(config).map_err(|e| anyhow!(e))?;
    catalog::auth_target(config).map_err(|e| anyhow!(e))?;
    Ok(())
}

/// Like [`discover`]; with a `state`, an env that fails but has a last good tool list keeps
/// serving it (marked stale in the manifest), and the state learns this discovery's lists.
pub async fn discover_with(
    config: Config,
    timeout: Duration,
    state: Option<&mut State>,
) -> Result<Discovery> {
    validate(&config)?;
    let mut config = config;
    let raw = discover_with_credentials(&mut config, timeout).await;
    let (results, stale) = match state {
        Some(state) => state.apply(&config, raw, &crate::state::now()),
        None => (raw, BTreeMap::new()),
    };
    let mode = config.gateway.pinning;
    let (manifest, pins) = if mode == PinMode::Off {
        let manifest = catalog::build_manifest(&config, &results).map_err(|e| anyhow!(e))?;
        (manifest, None)
    } else {
        // Read on every discovery, so a re-pin reaches a running watch on its next cycle.
        let pins = pin::read(&pin::configured_path(&config)?).with_context(|| {
            format!(
                "gateway.pinning is `{}`, which needs a pin file",
                mode.as_str()
            )
        })?;
        let (served, mut report) = pin::apply(mode, &pins, &results);
        // The gateway refuses calls by the names callers use.
        for d in &mut report.drift {
            if let Some((server, env)) = servers::server_of(&config.servers, &d.env) {
                let name = server.served_from_upstream(&d.tool);
                d.served = (name != d.tool).then_some(name);
                d.label = (env.label != env.backend).then(|| env.label.clone());
            }
        }
        let mut manifest = catalog::build_manifest(&config, &served).map_err(|e| anyhow!(e))?;
        manifest.pinning = Some(report);
        (manifest.seal(), Some(pins))
    };
    let manifest = if stale.is_empty() {
        manifest
    } else {
        catalog::mark_stale(manifest, &stale)
    };
    Ok(Discovery {
        config,
        results,
        manifest,
        pins,
    })
}

/// Resolves the backends' credentials into their headers and lists every backend. A backend
/// that refuses a fetched credential gets a new one fetched and is listed once more; a
/// backend whose credential could not be fetched says so in its error.
async fn discover_with_credentials(config: &mut Config, timeout: Duration) -> Vec<EnvResult> {
    let failed = crate::credentials::apply(config).await;
    let flagged = crate::backend::discover_all_flagged(config, timeout).await;
    let mut results = Vec::with_capacity(flagged.len());
    for (mut result, refused) in flagged {
        if refused && !failed.contains_key(&result.name) {
            match crate::credentials::renew_refused(config, &result.name).await {
                Ok(true) => {
                    tracing::info!(backend = %result.name, "credentials refused; fetched new ones");
                    if let Some((_, env)) = config
                        .environments
                        .0
                        .iter()
                        .find(|(n, _)| *n == result.name)
                    {
                        let (url, headers) = (env.url.clone(), env.headers.clone());
                        result = crate::backend::discover_env(result.name, &url, &headers, timeout)
                            .await
                            .0;
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    result.outcome = Err(format!(
                        "the backend refused its credentials, and fetching new ones failed: {e}"
                    ));
                }
            }
        }
        match (&mut result.outcome, failed.get(&result.name)) {
            (Err(e), Some(failure)) => *e = format!("credentials: {}; {e}", failure.why),
            // Listed without its credential: the backend may serve anonymous callers
            // something else than the gateway's; report it rather than merge it.
            (Ok(_), Some(failure)) if !failure.kept_last => {
                result.outcome = Err(format!("credentials: {}", failure.why));
            }
            _ => {}
        }
        results.push(result);
    }
    results
}

/// One file `write` looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub path: PathBuf,
    pub written: Written,
}

/// Writes the Envoy files and `manifest.json` into `opts.out_dir` (which must exist),
/// clusters first and the bootstrap last, so a running Envoy never sees a route to a
/// cluster it does not have yet.
pub fn write(discovery: &Discovery, opts: &envoy::Options) -> Result<Vec<Outcome>> {
    let targets = catalog::targets(&discovery.config).map_err(|e| anyhow!(e))?;
    let mut filter = catalog::filter_config(&discovery.config, discovery.manifest.clone());
    filter.host_policy = discovery
        .config
        .gateway
        .host_policy(opts.host_defaults.clone());
    let auth = catalog::auth_target(&discovery.config).map_err(|e| anyhow!(e))?;
    let mut opts = opts.clone();
    opts.ops_allow_from = discovery.config.gateway.ops_allow_from();
    let mut files =
        envoy::generate(&targets, auth.as_ref(), &filter, &opts).map_err(|e| anyhow!(e))?;
    let mut manifest =
        serde_json::to_string_pretty(&discovery.manifest).context("serializing the manifest")?;
    manifest.push('\n');
    let at = files.len().saturating_sub(1);
    files.insert(
        at,
        envoy::File {
            name: MANIFEST_FILE,
            contents: manifest,
            mode: 0o644,
        },
    );
    files
        .iter()
        .map(|f| {
            let path = opts.out_dir.join(f.name);
            let written = write_if_changed(&path, f.contents.as_bytes(), f.mode)?;
            Ok(Outcome { path, written })
        })
        .collect()
}

/// Makes `dir` exist and returns it absolute (Envoy resolves the generated paths itself).
pub fn prepare_out_dir(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    dir.canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))
}

#[cfg(test)]
mod users_file_tests {
    use super::*;

    #[test]
    fn the_users_file_is_read_next_to_the_config_and_its_errors_name_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        std::fs::write(
            &config,
            r#"{"mcpServers": {"fs": {"url": "http://127.0.0.1:1/mcp"}},
                "auth": {"dev": {"users": {}}, "base_url": "http://127.0.0.1:2",
                         "signing_key_file": "k.pem", "users_file": "users.json"}}"#,
        )
        .unwrap();
        let users = dir.path().join("users.json");
        let err = load_config(&config).unwrap_err().to_string();
        assert!(
            err.contains(&format!("reading auth.users_file {}", users.display())),
            "{err}"
        );

        std::fs::write(&users, r#"{"a@x": {"allowed_tools": ["fs:*"]}}"#).unwrap();
        let loaded = load_config(&config).unwrap();
        let roles: Vec<String> = loaded
            .auth
            .and_then(|a| a.users)
            .map(|u| u.roles().map(|(r, _)| r).collect())
            .unwrap_or_default();
        assert_eq!(roles, ["user:a@x"]);

        std::fs::write(&users, r#"{"a@x": {"allowed_tools": ["time:*"]}}"#).unwrap();
        let err = load_config(&config).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}: user \"a@x\": allowed_tools \"time:*\": names server `time`",
                users.display()
            )),
            "{err}"
        );
    }
}
