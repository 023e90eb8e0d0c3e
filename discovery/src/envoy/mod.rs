//! The Envoy config meshmux generates: a bootstrap (`envoy.yaml`) whose listener
//! (`lds.yaml`), routes (`rds.yaml`) and clusters (`cds.yaml`) come from files in a watched
//! directory, and the wasm filter's config (`ecds.yaml`) through ECDS, so a new manifest
//! reaches every worker on a rename.
//!
//! Everything is written as JSON, which Envoy reads in `.yaml` files too. Pure: no IO.

mod auth;
mod cluster;
mod listener;
mod ops;
mod validate;

use std::path::{Path, PathBuf};

use policy::manifest::FilterConfig;
use policy::origin::HostPolicy;
use serde_json::{Value, json};

use crate::catalog::{AuthTarget, EnvTarget};

pub use auth::{JWT_FILTER, PAYLOAD_KEY, challenge};
pub use listener::{UNROUTED_BODY, escape_header_value};
pub use ops::{ADMIN_CLUSTER, NOT_READY_BODY, PROMETHEUS_PATH};
pub use validate::validation_bootstrap;

/// The http filter's name, which is also the ECDS resource's name.
pub const FILTER_NAME: &str = "meshmux";
/// The filter sets `meshmux_env`; Envoy stores wasm properties under `wasm.`.
pub const FILTER_STATE_KEY: &str = "wasm.meshmux_env";
pub const WASM_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
pub const NATIVE_TYPE_URL: &str =
    "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter";
/// The environment variable Envoy reads to find `lib<name>.so` of a dynamic module.
pub const SEARCH_PATH_VAR: &str = "ENVOY_DYNAMIC_MODULES_SEARCH_PATH";
/// The native filter writes its metrics under the wasm filter's namespace, so both export
/// the same Prometheus series (and the same `stats_config` applies).
const NATIVE_METRICS_NAMESPACE: &str = "wasmcustom";

/// Which build of the filter Envoy loads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FilterKind {
    /// `meshmux_filter.wasm` through `envoy.filters.http.wasm` (works in every mesh).
    #[default]
    Wasm,
    /// `libmeshmux_native.so` through `envoy.filters.http.dynamic_modules` (Envoy 1.40 only;
    /// no auth yet).
    Native,
}

impl FilterKind {
    pub fn type_url(self) -> &'static str {
        match self {
            FilterKind::Wasm => WASM_TYPE_URL,
            FilterKind::Native => NATIVE_TYPE_URL,
        }
    }
}

/// The module name Envoy looks up for `path` (`/x/libmeshmux_native.so` → `meshmux_native`).
pub fn module_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    stem.strip_prefix("lib").unwrap_or(&stem).to_owned()
}

/// The directory to put in [`SEARCH_PATH_VAR`] for the native filter at `path`.
pub fn module_dir(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}
/// Trusted roots for https backends (Debian's `ca-certificates`).
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Room for headers and framing above the largest body the filter accepts.
pub const BUFFER_HEADROOM: u64 = 64 * 1024;

pub const BOOTSTRAP_FILE: &str = "envoy.yaml";
pub const LDS_FILE: &str = "lds.yaml";
pub const RDS_FILE: &str = "rds.yaml";
pub const CDS_FILE: &str = "cds.yaml";
pub const ECDS_FILE: &str = "ecds.yaml";

/// Where Envoy listens and where the generated files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Absolute: Envoy resolves these paths itself.
    pub out_dir: PathBuf,
    /// Absolute path of `meshmux_filter.wasm` (or of `libmeshmux_native.so`).
    pub filter_path: PathBuf,
    pub filter_kind: FilterKind,
    pub bind: String,
    pub port: u16,
    pub admin_port: u16,
    /// The Host/Origin policy for what the config's `gateway.allowed_hosts` and
    /// `gateway.allowed_origins` leave out: any Host for `discover`, loopback for `up`.
    pub host_defaults: HostPolicy,
    /// `--dev-sign-in-published-on-loopback`: the listener's address is not loopback, but
    /// only the host's loopback reaches it (a container port published on 127.0.0.1).
    pub dev_sign_in_published_on_loopback: bool,
    /// `gateway.ops_allow_from`: the only sources that may read `/readyz` and the metrics
    /// path (Envoy's RBAC on those routes); `None`: anyone.
    pub ops_allow_from: Option<Vec<policy::config::AddressRange>>,
}

/// Whether `bind` is a loopback address (`127.0.0.0/8`, `::1`, `localhost`).
pub fn is_loopback_bind(bind: &str) -> bool {
    let bare = bind.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The dev sign-in lets anyone who reaches it sign in as any user, so it is refused behind
/// a listener other machines can reach.
pub fn check_dev_sign_in(dev_sign_in: bool, opts: &Options) -> Result<(), String> {
    if dev_sign_in && !is_loopback_bind(&opts.bind) && !opts.dev_sign_in_published_on_loopback {
        return Err(format!(
            "refusing to serve the dev sign-in (auth.dev) on --bind {}: anyone who reaches \
             that address could sign in as any dev user and mint tokens. Bind a loopback \
             address (127.0.0.1, ::1), or use a real identity provider (auth.oidc or \
             auth.azure). Inside a container whose port is published on the host's loopback \
             only, pass --dev-sign-in-published-on-loopback.",
            opts.bind
        ));
    }
    Ok(())
}

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub name: &'static str,
    pub contents: String,
    /// `0o600` for files holding the envs' credentials.
    pub mode: u32,
}

/// The Envoy files, in the order they must be replaced on a live update: clusters before
/// the routes that name them, routes before the listener that names them and the filter
/// config that selects them.
/// With `auth`, the listener also verifies tokens (`jwt_authn`) and routes authsvc's paths.
pub fn generate(
    targets: &[EnvTarget],
    auth: Option<&AuthTarget>,
    filter: &FilterConfig,
    opts: &Options,
) -> Result<Vec<File>, String> {
    check_dev_sign_in(auth.is_some_and(|a| a.dev_sign_in), opts)?;
    if opts.filter_kind == FilterKind::Native && (auth.is_some() || filter.auth.is_some()) {
        return Err(NATIVE_NO_AUTH.to_owned());
    }
    let path = |name: &str| opts.out_dir.join(name).display().to_string();
    let filter_json =
        serde_json::to_string(filter).map_err(|e| format!("serializing the filter config: {e}"))?;
    let mut clusters = cluster::clusters(targets);
    clusters.extend(auth.map(auth::cluster));
    if filter.metrics.enabled {
        clusters.push(ops::admin_cluster(opts.admin_port));
    }
    Ok(vec![
        // Health checks send the envs' headers (credentials): owner-only.
        file(CDS_FILE, &resources(clusters), 0o600),
        // Routes carry the envs' headers (credentials): owner-only.
        file(
            RDS_FILE,
            &resources(vec![listener::route_config(targets, auth, filter, opts)]),
            0o600,
        ),
        // No credentials since the routes moved to RDS; owner-only all the same, like the
        // other files only Envoy reads.
        file(
            LDS_FILE,
            &resources(vec![listener::listener(
                auth,
                filter,
                opts,
                &path(ECDS_FILE),
                &path(RDS_FILE),
            )]),
            0o600,
        ),
        file(
            ECDS_FILE,
            &resources(vec![match opts.filter_kind {
                FilterKind::Wasm => ecds(&filter_json, &opts.filter_path),
                FilterKind::Native => ecds_native(&filter_json, &opts.filter_path),
            }]),
            0o600,
        ),
        file(BOOTSTRAP_FILE, &bootstrap(opts), 0o644),
    ])
}

fn file(name: &'static str, value: &Value, mode: u32) -> File {
    let mut contents = serde_json::to_string_pretty(value).unwrap_or_default();
    contents.push('\n');
    File {
        name,
        contents,
        mode,
    }
}

fn resources(items: Vec<Value>) -> Value {
    json!({ "resources": items })
}

/// A file-based config source that Envoy re-reads when the file is renamed into `dir`.
fn watched(path: &str, dir: &Path) -> Value {
    json!({
        "resource_api_version": "V3",
        "path_config_source": {
            "path": path,
            "watched_directory": { "path": dir.display().to_string() }
        }
    })
}

fn bootstrap(opts: &Options) -> Value {
    let path = |name: &str| opts.out_dir.join(name).display().to_string();
    json!({
        "node": { "id": "meshmux", "cluster": "meshmux" },
        "admin": {
            "address": { "socket_address": { "address": "127.0.0.1", "port_value": opts.admin_port } }
        },
        "dynamic_resources": {
            "lds_config": watched(&path(LDS_FILE), &opts.out_dir),
            "cds_config": watched(&path(CDS_FILE), &opts.out_dir)
        },
        // Always present: the bootstrap is not reloaded, and without the filter's stats the
        // tags match nothing.
        "stats_config": ops::stats_config()
    })
}

/// The wasm filter's `TypedExtensionConfig`. `allow_on_headers_stop_iteration` lets the
/// filter hold the headers while it reads the body (without it requests hang), and
/// `FAIL_RELOAD` restarts a failed VM instead of skipping the filter (FAIL_OPEN would skip
/// the policy).
fn ecds(filter_json: &str, wasm: &Path) -> Value {
    json!({
        "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
        "name": FILTER_NAME,
        "typed_config": {
            "@type": WASM_TYPE_URL,
            "config": {
                "name": FILTER_NAME,
                "root_id": FILTER_NAME,
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": filter_json
                },
                "allow_on_headers_stop_iteration": true,
                "failure_policy": "FAIL_RELOAD",
                "reload_config": { "backoff": { "base_interval": "0.1s", "max_interval": "1s" } },
                "vm_config": {
                    "vm_id": FILTER_NAME,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": { "local": { "filename": wasm.display().to_string() } }
                }
            }
        }
    })
}

/// Why `--filter-kind native` refuses a config with `auth`.
pub const NATIVE_NO_AUTH: &str = "the native filter (--filter-kind native) does not support \
    `auth` yet: Envoy 1.40's dynamic-module ABI cannot read the verified token's claims \
    (jwt_authn nests them one level deeper than the ABI reads), so it could not tell callers \
    apart. Use the wasm filter (the default) with auth.";

/// The native filter's `TypedExtensionConfig`: the module by name (Envoy finds
/// `lib<name>.so` in `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`), the same plugin JSON as the wasm
/// filter. `do_not_close` keeps the module loaded across config updates (its process-wide
/// shared data, the backend sessions, must survive them).
fn ecds_native(filter_json: &str, module: &Path) -> Value {
    json!({
        "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
        "name": FILTER_NAME,
        "typed_config": {
            "@type": NATIVE_TYPE_URL,
            "dynamic_module_config": {
                "name": module_name(module),
                "do_not_close": true,
                "metrics_namespace": NATIVE_METRICS_NAMESPACE
            },
            "filter_name": FILTER_NAME,
            "filter_config": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": filter_json
            }
        }
    })
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
