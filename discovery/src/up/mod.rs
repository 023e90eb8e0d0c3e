//! `meshmux up`: the local stack. Without `--config` it starts the demo (Prod, Staging and Dev
//! demo backends in this process, on free loopback ports, with a config written for them, and
//! authsvc with the dev IdP so the sign-in, token minting and per-role access can be tried;
//! `--no-auth` leaves auth out). With `--config FILE` it fronts that file's backends, and when
//! the file has an `auth` block it starts authsvc the same way, listening at `auth.authsvc_url`
//! (a loopback address; elsewhere authsvc is expected to run already). Then it discovers,
//! writes the Envoy config into the work dir, starts Envoy, waits until the MCP endpoint
//! answers, and stops everything it started on Ctrl-C or SIGTERM.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use tokio::process::{Child, Command};

use crate::cli::{EnvoyArgs, discovery_notes, envoy_options, written_summary};
use crate::demo::DemoBackend;
use crate::discover;
use crate::locate;
use crate::report::exit;

mod banner;
mod demo_stack;
mod ready;

use banner::{AuthBanner, print_ready};
use demo_stack::start_demo;
pub use demo_stack::{DEMO_ENVS, DEMO_USERS, DemoAuth, demo_config};
use ready::{tail, wait_ready};

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Front these backends instead of the embedded demo.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Envoy binary (default: $ENVOY_BIN, `envoy` on PATH, then the project's .venv/bin/envoy).
    #[arg(long, value_name = "PATH")]
    pub envoy: Option<PathBuf>,
    /// authsvc, for the demo or a config with an `auth` block (default: $MESHMUX_AUTHSVC_BIN,
    /// `meshmux-authsvc` on PATH, then the project's target/release/meshmux-authsvc).
    #[arg(long, value_name = "PATH")]
    pub authsvc: Option<PathBuf>,
    /// Run the demo without authorization (no authsvc, no tokens). With --config: do not
    /// start authsvc even when the file has an `auth` block (you run it yourself).
    #[arg(long)]
    pub no_auth: bool,
    /// Generated config, the demo config and envoy.log go here.
    #[arg(long, value_name = "DIR", default_value = ".meshmux")]
    pub work_dir: PathBuf,
    #[command(flatten)]
    pub listen: EnvoyArgs,
    /// Keep discovering every INTERVAL (`30s`, `2m`, …) while the stack runs: a change to
    /// the config file or a backend's tools reaches Envoy live, and the changes are printed
    /// (as `meshmux discover --watch` does).
    #[arg(long, value_name = "INTERVAL", value_parser = crate::watch::parse_interval)]
    pub watch: Option<std::time::Duration>,
    /// Load the native filter (an Envoy 1.40 dynamic module) instead of the wasm one: the
    /// same as `--filter-kind native`. No auth yet: use it with --no-auth or a config
    /// without `auth`.
    #[arg(long)]
    pub native: bool,
}

/// What `up --config` does about authsvc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthsvcPlan {
    /// No `auth` block, or `--no-auth`: nothing to start.
    None,
    /// Start authsvc on `listen`; Envoy reaches it at `url` (`auth.authsvc_url`).
    Start { listen: SocketAddr, url: String },
    /// `auth.authsvc_url` is not a loopback http address: authsvc runs elsewhere.
    External(String),
}

/// Whether `up` starts authsvc for a user's config: when it has an `auth` block (and
/// `--no-auth` was not given), on the loopback address of `auth.authsvc_url`.
pub fn authsvc_plan(auth: Option<&policy::config::AuthConfig>, no_auth: bool) -> AuthsvcPlan {
    let Some(auth) = auth.filter(|_| !no_auth) else {
        return AuthsvcPlan::None;
    };
    let url = auth.authsvc_url.trim_end_matches('/').to_owned();
    let Ok(parsed) = url::Url::parse(&url) else {
        return AuthsvcPlan::External(url);
    };
    let ip = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
        _ => return AuthsvcPlan::External(url),
    };
    let local = parsed.scheme() == "http" && ip.is_loopback() && parsed.path() == "/";
    match parsed.port_or_known_default() {
        Some(port) if local => AuthsvcPlan::Start {
            listen: SocketAddr::new(ip, port),
            url,
        },
        _ => AuthsvcPlan::External(url),
    }
}

/// Resolves when the process gets Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

/// Everything `up` started, stopped in reverse.
struct Stack {
    demos: Vec<DemoBackend>,
    /// The bridges of stdio and SSE servers.
    bridges: Vec<crate::bridge::Supervisor>,
    authsvc: Option<Child>,
    envoy: Option<Child>,
    admin: String,
}

impl Stack {
    async fn stop(mut self) {
        if let Some(mut child) = self.envoy.take() {
            // Envoy's graceful exit, then a kill if it does not go.
            let _ = http_client()
                .post(format!("{}/quitquitquit", self.admin))
                .send()
                .await;
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        if let Some(mut child) = self.authsvc.take() {
            let _ = child.kill().await;
        }
        for d in self.demos.drain(..) {
            d.stop().await;
        }
        for b in self.bridges.drain(..) {
            b.shutdown().await;
        }
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_default()
}

/// Fails early, naming the flag, when a port Envoy needs is taken.
async fn ensure_free(bind: &str, port: u16, flag: &str) -> Result<()> {
    tokio::net::TcpListener::bind((bind, port))
        .await
        .map(drop)
        .map_err(|e| anyhow!("cannot listen on {bind}:{port} ({e}); choose another with {flag}"))
}

pub async fn run(mut args: UpArgs) -> Result<u8> {
    if args.native {
        args.listen.filter_kind = crate::envoy::FilterKind::Native;
    }
    let cwd = std::env::current_dir()?;
    let envoy_bin = locate::envoy(
        args.envoy.as_deref(),
        std::env::var_os("ENVOY_BIN").as_deref(),
        std::env::var_os("PATH").as_deref(),
        &cwd,
    )?;
    let filter = locate::filter(args.listen.filter.as_deref(), args.listen.filter_kind, &cwd)?;
    let plan = match &args.config {
        Some(path) => authsvc_plan(discover::load_config(path)?.auth.as_ref(), args.no_auth),
        None => AuthsvcPlan::None,
    };
    let needs_authsvc = match &args.config {
        None => !args.no_auth,
        Some(_) => matches!(plan, AuthsvcPlan::Start { .. }),
    };
    // Refused before anything starts (`discover` refuses it too, when it writes the config).
    let dev_sign_in = match &args.config {
        None => !args.no_auth,
        Some(path) => {
            !args.no_auth
                && discover::load_config(path)?
                    .auth
                    .is_some_and(|a| a.dev.is_some())
        }
    };
    let opts = envoy_options(&args.listen, cwd.clone(), filter.clone());
    crate::envoy::check_dev_sign_in(dev_sign_in, &opts).map_err(|e| anyhow!(e))?;
    let authsvc_bin = if needs_authsvc {
        Some(locate::authsvc(
            args.authsvc.as_deref(),
            std::env::var_os("MESHMUX_AUTHSVC_BIN").as_deref(),
            std::env::var_os("PATH").as_deref(),
            &cwd,
        )?)
    } else {
        None
    };
    ensure_free(&args.listen.bind, args.listen.port, "--port").await?;
    ensure_free("127.0.0.1", args.listen.admin_port, "--admin-port").await?;
    match &plan {
        AuthsvcPlan::Start { listen, .. } => {
            ensure_free(&listen.ip().to_string(), listen.port(), "auth.authsvc_url").await?;
        }
        AuthsvcPlan::External(url) => println!(
            "auth.authsvc_url {url} is not a loopback http address: not starting authsvc (run it there)"
        ),
        AuthsvcPlan::None => {}
    }
    let work = discover::prepare_out_dir(&args.work_dir)?;
    let admin = format!("http://127.0.0.1:{}", args.listen.admin_port);
    let mut stack = Stack {
        demos: Vec::new(),
        bridges: Vec::new(),
        authsvc: None,
        envoy: None,
        admin: admin.clone(),
    };
    let started = tokio::select! {
        r = start(&args, &envoy_bin, &filter, authsvc_bin.as_deref(), &plan, &work, &mut stack) => r,
        () = shutdown_signal() => Err(anyhow!("interrupted")),
    };
    let code = match started {
        Ok((mcp_url, auth, watcher)) => {
            print_ready(&mcp_url, &admin, &work, auth.as_ref());
            let envoy = stack.envoy.as_mut();
            let authsvc = stack.authsvc.as_mut();
            let watching = async move {
                match watcher {
                    Some(w) => crate::watch::keep_watching(w).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = watching => exit::CLEAN,
                () = shutdown_signal() => {
                    println!("\nstopping…");
                    exit::CLEAN
                }
                status = async move {
                    match envoy {
                        Some(child) => child.wait().await.ok(),
                        None => std::future::pending().await,
                    }
                } => {
                    eprintln!(
                        "meshmux: Envoy exited ({}); see {}",
                        status.map_or("unknown status".into(), |s| s.to_string()),
                        work.join("envoy.log").display()
                    );
                    exit::USAGE
                }
                status = async move {
                    match authsvc {
                        Some(child) => child.wait().await.ok(),
                        None => std::future::pending().await,
                    }
                } => {
                    eprintln!(
                        "meshmux: authsvc exited ({}); see {}",
                        status.map_or("unknown status".into(), |s| s.to_string()),
                        work.join("authsvc.log").display()
                    );
                    exit::USAGE
                }
            }
        }
        Err(e) => {
            stack.stop().await;
            return Err(e);
        }
    };
    stack.stop().await;
    Ok(code)
}

async fn start(
    args: &UpArgs,
    envoy_bin: &Path,
    filter: &Path,
    authsvc_bin: Option<&Path>,
    plan: &AuthsvcPlan,
    work: &Path,
    stack: &mut Stack,
) -> Result<(String, Option<AuthBanner>, Option<crate::watch::Watcher>)> {
    let host = match args.listen.bind.as_str() {
        "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
        other => other,
    };
    let mut banner = None;
    let config_path = match &args.config {
        Some(path) => {
            if let (Some(bin), AuthsvcPlan::Start { listen, url }) = (authsvc_bin, plan) {
                let config = discover::load_config(path)?;
                let auth = config
                    .auth
                    .as_ref()
                    .ok_or_else(|| anyhow!("{} lost its auth block", path.display()))?;
                start_authsvc(bin, path, *listen, url, work, stack).await?;
                banner = Some(AuthBanner::new(auth, url, bin, path));
            }
            path.clone()
        }
        None => {
            let auth = match authsvc_bin {
                Some(_) => Some(DemoAuth {
                    base_url: format!("http://{host}:{}", args.listen.port),
                    authsvc_url: format!("http://127.0.0.1:{}", free_port().await?),
                    signing_key_file: work.join("authsvc-signing-key.pem"),
                }),
                None => None,
            };
            let path = start_demo(work, stack, auth.as_ref()).await?;
            if let (Some(bin), Some(auth)) = (authsvc_bin, auth) {
                let listen: SocketAddr = auth
                    .authsvc_url
                    .trim_start_matches("http://")
                    .parse()
                    .with_context(|| format!("authsvc address {}", auth.authsvc_url))?;
                start_authsvc(bin, &path, listen, &auth.authsvc_url, work, stack).await?;
                let config = discover::load_config(&path)?;
                let written = config
                    .auth
                    .as_ref()
                    .ok_or_else(|| anyhow!("the demo config has no auth block"))?;
                banner = Some(AuthBanner::new(written, &auth.authsvc_url, bin, &path));
            }
            path
        }
    };
    let mut config = discover::load_config(&config_path)?;
    // stdio and SSE servers: a supervised `meshmux bridge` each, on the configured `listen`
    // or a free loopback port; their backends are reached there.
    let (started, bridges) = crate::bridge::start_all(&mut config, work, false).await?;
    for sup in started {
        println!(
            "bridge {:14} {}  (log {})",
            sup.name(),
            sup.url(),
            sup.log().display()
        );
        stack.bridges.push(sup);
    }
    let auth_on = config.auth.is_some();
    let mcp_path = config.gateway.mcp_path.clone();
    // The same memory as `discover`: a backend down at a restart keeps its last good tools.
    let (mut state, warning) = crate::state::State::load(work);
    if let Some(w) = warning {
        println!("warning: {w}");
    }
    let d = discover::discover_with(
        config.clone(),
        crate::backend::DEFAULT_TIMEOUT,
        Some(&mut state),
    )
    .await?;
    let mut opts = envoy_options(&args.listen, work.to_path_buf(), filter.to_path_buf());
    // A local trial: without `gateway.allowed_hosts`, only this machine's names are a Host
    // (and the address the banner prints, when `--bind` named another one).
    opts.host_defaults = policy::origin::HostPolicy::loopback(args.listen.port);
    let printed = format!("{host}:{}", args.listen.port);
    if !opts.host_defaults.allowed_hosts.contains(&printed) {
        opts.host_defaults.allowed_hosts.push(printed);
    }
    let outcomes = discover::write(&d, &opts)?;
    state.save(work)?;
    print!("{}", written_summary(&outcomes));
    print!("{}", discovery_notes(&d));
    let watcher = args.watch.map(|interval| {
        crate::watch::Watcher::new(
            crate::watch::WatchOptions {
                config: config_path.clone(),
                timeout: crate::backend::DEFAULT_TIMEOUT,
                interval,
                envoy: opts.clone(),
                bridges,
            },
            state,
            config,
            Some(d),
        )
    });

    let log_path = work.join("envoy.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let mut envoy = Command::new(envoy_bin);
    if opts.filter_kind == crate::envoy::FilterKind::Native {
        // Envoy finds `lib<name>.so` of a dynamic module only through this variable.
        envoy.env(
            crate::envoy::SEARCH_PATH_VAR,
            crate::envoy::module_dir(&opts.filter_path),
        );
    }
    let child = envoy
        .arg("-c")
        .arg(work.join(crate::envoy::BOOTSTRAP_FILE))
        .args(["--concurrency", "2", "--disable-hot-restart"])
        .args(["--log-level", "info"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", envoy_bin.display()))?;
    stack.envoy = Some(child);

    let mcp_url = format!("http://{host}:{}{mcp_path}", args.listen.port);
    wait_ready(stack, &mcp_url, &log_path, auth_on).await?;
    Ok((mcp_url, banner, watcher))
}

async fn free_port() -> Result<u16> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    Ok(listener.local_addr()?.port())
}

/// Starts `meshmux-authsvc serve` on `listen` (log in the work dir) and waits for
/// `authsvc_url`'s `/readyz`.
async fn start_authsvc(
    bin: &Path,
    config: &Path,
    listen: SocketAddr,
    authsvc_url: &str,
    work: &Path,
    stack: &mut Stack,
) -> Result<()> {
    let log_path = work.join("authsvc.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let child = Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg(listen.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    stack.authsvc = Some(child);
    let client = http_client();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(child) = stack.authsvc.as_mut()
            && let Some(status) = child.try_wait()?
        {
            bail!(
                "authsvc exited during start-up ({status}); the end of {}:\n{}",
                log_path.display(),
                tail(&log_path, 30)
            );
        }
        if let Ok(r) = client.get(format!("{authsvc_url}/readyz")).send().await
            && r.status().is_success()
        {
            println!("authsvc               {authsvc_url}");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "authsvc did not become ready within 30 s; the end of {}:\n{}",
        log_path.display(),
        tail(&log_path, 30)
    )
}

#[cfg(test)]
mod tests;
