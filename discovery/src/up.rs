//! `meshmux up`: the local stack. Without `--config` it starts the demo (Prod, Staging and Dev
//! demo backends in this process, on free loopback ports, with a config written for them);
//! then it discovers, writes the Envoy config into the work dir, starts Envoy, waits until
//! the MCP endpoint answers, and stops everything it started on Ctrl-C or SIGTERM.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::cli::{EnvoyArgs, discovery_notes, envoy_options, written_summary};
use crate::demo::{self, DemoBackend, DemoOptions};
use crate::discover;
use crate::fsutil::write_if_changed;
use crate::locate;
use crate::report::exit;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Front these backends instead of the embedded demo.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Envoy binary (default: $ENVOY_BIN, `envoy` on PATH, then the project's .venv/bin/envoy).
    #[arg(long, value_name = "PATH")]
    pub envoy: Option<PathBuf>,
    /// Generated config, the demo config and envoy.log go here.
    #[arg(long, value_name = "DIR", default_value = ".meshmux")]
    pub work_dir: PathBuf,
    #[command(flatten)]
    pub listen: EnvoyArgs,
}

/// The demo's envs: name, description.
pub const DEMO_ENVS: [(&str, &str); 3] = [
    ("Prod", "Production (demo)"),
    ("Staging", "Staging (demo)"),
    ("Dev", "Development (demo)"),
];

/// The config the demo stack runs with (seed-000 format): each env sends its own
/// credential and an `X-Demo-Env` header, so the backends can tell who reached them.
pub fn demo_config(backends: &[(&str, String)]) -> Value {
    let envs: serde_json::Map<String, Value> = DEMO_ENVS
        .iter()
        .filter_map(|(name, description)| {
            let url = backends.iter().find(|(n, _)| n == name)?.1.clone();
            let token = format!("Bearer demo-{}-token", name.to_ascii_lowercase());
            Some((
                (*name).to_owned(),
                json!({
                    "description": description,
                    "url": url,
                    "headers": { "Authorization": token, "X-Demo-Env": name }
                }),
            ))
        })
        .collect();
    json!({ "environments": envs })
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
        for d in self.demos.drain(..) {
            d.stop().await;
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

pub async fn run(args: UpArgs) -> Result<u8> {
    let cwd = std::env::current_dir()?;
    let envoy_bin = locate::envoy(
        args.envoy.as_deref(),
        std::env::var_os("ENVOY_BIN").as_deref(),
        std::env::var_os("PATH").as_deref(),
        &cwd,
    )?;
    let filter = locate::filter(args.listen.filter.as_deref(), &cwd)?;
    ensure_free(&args.listen.bind, args.listen.port, "--port").await?;
    ensure_free("127.0.0.1", args.listen.admin_port, "--admin-port").await?;
    let work = discover::prepare_out_dir(&args.work_dir)?;
    let admin = format!("http://127.0.0.1:{}", args.listen.admin_port);
    let mut stack = Stack {
        demos: Vec::new(),
        envoy: None,
        admin: admin.clone(),
    };
    let started = tokio::select! {
        r = start(&args, &envoy_bin, &filter, &work, &mut stack) => r,
        () = shutdown_signal() => Err(anyhow!("interrupted")),
    };
    let code = match started {
        Ok(mcp_url) => {
            print_ready(&mcp_url, &admin, &work);
            let envoy = stack.envoy.as_mut();
            tokio::select! {
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
    work: &Path,
    stack: &mut Stack,
) -> Result<String> {
    let config_path = match &args.config {
        Some(path) => path.clone(),
        None => start_demo(work, stack).await?,
    };
    let config = discover::load_config(&config_path)?;
    let mcp_path = config.gateway.mcp_path.clone();
    let d = discover::discover(config, crate::backend::DEFAULT_TIMEOUT).await?;
    let opts = envoy_options(&args.listen, work.to_path_buf(), filter.to_path_buf());
    let outcomes = discover::write(&d, &opts)?;
    print!("{}", written_summary(&outcomes));
    print!("{}", discovery_notes(&d));

    let log_path = work.join("envoy.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let child = Command::new(envoy_bin)
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

    let host = match args.listen.bind.as_str() {
        "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
        other => other,
    };
    let mcp_url = format!("http://{host}:{}{mcp_path}", args.listen.port);
    wait_ready(stack, &mcp_url, &log_path).await?;
    Ok(mcp_url)
}

/// Starts the three demo backends and writes their config; returns its path.
async fn start_demo(work: &Path, stack: &mut Stack) -> Result<PathBuf> {
    let mut urls = Vec::new();
    for (name, _) in DEMO_ENVS {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let opts = DemoOptions {
            env: name.to_owned(),
            ..DemoOptions::default()
        };
        let backend = demo::start(opts, listener)?;
        println!("demo backend {name:<8} {}", backend.url());
        urls.push((name, backend.url()));
        stack.demos.push(backend);
    }
    let path = work.join("demo-config.json");
    let text = serde_json::to_string_pretty(&demo_config(&urls))? + "\n";
    // It holds the demo's (fake) credentials: owner-only, like any real config should be.
    write_if_changed(&path, text.as_bytes(), 0o600)?;
    Ok(path)
}

/// Waits until Envoy's admin says ready and the MCP endpoint answers `ping`.
async fn wait_ready(stack: &mut Stack, mcp_url: &str, log: &Path) -> Result<()> {
    let client = http_client();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::from("not started");
    while Instant::now() < deadline {
        if let Some(child) = stack.envoy.as_mut()
            && let Some(status) = child.try_wait()?
        {
            bail!(
                "Envoy exited during start-up ({status}); the end of {}:\n{}",
                log.display(),
                tail(log, 30)
            );
        }
        last = match probe(&client, &stack.admin, mcp_url).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!(
        "Envoy did not become ready within 60 s ({last}); the end of {}:\n{}",
        log.display(),
        tail(log, 30)
    )
}

async fn probe(client: &reqwest::Client, admin: &str, mcp_url: &str) -> Result<(), String> {
    let ready = client
        .get(format!("{admin}/ready"))
        .send()
        .await
        .map_err(|e| format!("admin /ready: {e}"))?;
    if !ready.status().is_success() {
        return Err(format!("admin /ready answered {}", ready.status()));
    }
    let ping = client
        .post(mcp_url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":"meshmux-up","method":"ping"}"#)
        .send()
        .await
        .map_err(|e| format!("ping {mcp_url}: {e}"))?;
    let status = ping.status();
    let body = ping.text().await.unwrap_or_default();
    if status.is_success() && body.contains("\"result\"") {
        Ok(())
    } else {
        Err(format!("ping {mcp_url} answered {status}: {body}"))
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all.get(all.len().saturating_sub(lines)..)
        .unwrap_or_default()
        .join("\n")
}

fn print_ready(mcp_url: &str, admin: &str, work: &Path) {
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_logs","arguments":{"env":"Prod","query":"timeout"}}}"#;
    println!(
        "\nmeshmux is up.\n\
         \n  MCP endpoint  {mcp_url}\
         \n  Envoy admin   {admin}\
         \n  Envoy log     {}\
         \n  Config        {}\
         \n\nTry it:\n  curl -s {mcp_url} -H 'content-type: application/json' \
         -H 'accept: application/json, text/event-stream' \\\n    -d '{call}'\n\
         \nPress Ctrl-C to stop.",
        work.join("envoy.log").display(),
        work.display(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_is_a_valid_seed_000_config() {
        let urls = vec![
            ("Prod", "http://127.0.0.1:1/mcp".to_owned()),
            ("Staging", "http://127.0.0.1:2/mcp".to_owned()),
            ("Dev", "http://127.0.0.1:3/mcp".to_owned()),
        ];
        let text = demo_config(&urls).to_string();
        let config =
            policy::config::Config::parse(&text, policy::config::Format::Json, "demo", &|_| None)
                .unwrap();
        let names: Vec<&str> = config
            .environments
            .0
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, ["Prod", "Staging", "Dev"]);
        let (_, prod) = &config.environments.0[0];
        assert_eq!(prod.headers["X-Demo-Env"], "Prod");
        assert_eq!(prod.headers["Authorization"], "Bearer demo-prod-token");
    }
}
