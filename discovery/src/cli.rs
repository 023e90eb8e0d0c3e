//! The command line: argument parsing (clap) and one function per subcommand. Exit codes:
//! 0 clean, 1 merge errors, 2 a backend unreachable or invalid, 3 anything else (bad usage,
//! an unreadable config, a file that could not be written), 4 tools drifted from their pins
//! under `gateway.pinning: block`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use policy::pin::PinMode;

use crate::demo::{DemoOptions, Drift};
use crate::discover::{self, Discovery};
use crate::fsutil::Written;
use crate::report::{self, exit};
use crate::{envoy, locate, up};

/// MCP multiplexing and access control inside Envoy.
///
/// meshmux merges the tools of the same MCP server in several environments (Prod, Staging,
/// Dev...) into one catalog with an `env` argument, and generates the Envoy config whose wasm
/// filter serves that catalog and routes each call to the right environment.
///
/// Exit codes: 0 clean, 1 merge errors, 2 a backend unreachable or invalid, 3 other errors,
/// 4 tools drifted from their pins under `gateway.pinning: block`.
#[derive(Debug, Parser)]
#[command(name = "meshmux", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Connect to every environment, merge their tools, and report errors and warnings
    /// (for CI: exit 0 clean, 1 merge errors, 2 a backend unreachable).
    Check(CheckArgs),
    /// Discover and merge, then write manifest.json and the Envoy config (envoy.yaml,
    /// lds.yaml, rds.yaml, cds.yaml, ecds.yaml) into a directory, each only when it changed; with
    /// --watch, again every interval, printing what changed.
    Discover(DiscoverArgs),
    /// Print the merged tool catalog: every tool, its environments and its parameters.
    List(ListArgs),
    /// Discover every environment's tools and pin their definitions: write each tool's
    /// definition and SHA-256, per environment, into the pin file (`gateway.pin_file`,
    /// default `<config stem>.pins.json` next to the config). With `gateway.pinning: warn` or
    /// `block`, a tool that later differs from its pin is reported or blocked until you
    /// review it (`meshmux check`) and run this again. An environment that cannot be reached
    /// keeps its previous pins.
    Pin(PinArgs),
    /// Run the local stack: demo backends (or the backends of --config), the generated
    /// config, and Envoy with the meshmux filter. Ctrl-C stops everything it started.
    Up(up::UpArgs),
    /// Serve one stdio MCP server (`-- COMMAND ARGS`) or legacy HTTP+SSE MCP server
    /// (--sse-url) over MCP Streamable HTTP on a local port: one backend per HTTP session,
    /// every message relayed both ways. `meshmux up` runs one per stdio/SSE server.
    Bridge(crate::bridge::BridgeArgs),
    /// Serve one demo MCP backend (ops tools that differ per environment).
    DemoBackend(DemoArgs),
}

#[derive(Debug, Clone, Args)]
pub struct Source {
    /// Config file (seed-000 / mcp-env-mux format, JSON or YAML; `$VAR`s come from the
    /// environment).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Seconds each backend gets to answer initialize and tools/list.
    #[arg(long, value_name = "SECONDS", default_value_t = 15)]
    pub timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub source: Source,
    /// `json` prints one document: envs with status and tool counts, errors, warnings.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    #[command(flatten)]
    pub state: StateArg,
}

#[derive(Debug, Args)]
pub struct PinArgs {
    #[command(flatten)]
    pub source: Source,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub source: Source,
    #[command(flatten)]
    pub state: StateArg,
}

/// A discovery state to read (never written by `check` or `list`).
#[derive(Debug, Clone, Args)]
pub struct StateArg {
    /// The `discovery-state.json` that `discover --out DIR` keeps in DIR: a down env with a
    /// last good tool list is then reported stale with those tools, as `discover` serves it.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    #[command(flatten)]
    pub source: Source,
    /// Directory to write into (created if missing; Envoy watches it for updates).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub envoy: EnvoyArgs,
    /// Keep running: discover again every INTERVAL (`500ms`, `30s`, `2m`, `1h`, or plain
    /// seconds), rewrite only what changed, and print the changes (tools added, removed and
    /// changed per env, envs down or recovered, role changes). A backend that fails keeps
    /// its last good tools (kept in DIR/discovery-state.json, across restarts too). SIGTERM
    /// or Ctrl-C stops it (exit 0).
    #[arg(long, value_name = "INTERVAL", value_parser = crate::watch::parse_interval)]
    pub watch: Option<Duration>,
}

/// Where the generated Envoy listens and which filter it loads.
#[derive(Debug, Clone, Args)]
pub struct EnvoyArgs {
    /// The meshmux filter (default: the project's `cargo xtask build-wasm` output, or with
    /// `--filter-kind native` its `cargo xtask build-native` output).
    #[arg(long, value_name = "WASM|SO")]
    pub filter: Option<PathBuf>,
    /// Which filter Envoy loads: `wasm` (the default; meshes) or `native` (an Envoy 1.40
    /// dynamic module, `libmeshmux_native.so`; start Envoy with
    /// ENVOY_DYNAMIC_MODULES_SEARCH_PATH set to its directory; no auth yet).
    #[arg(long, value_enum, default_value_t = envoy::FilterKind::Wasm)]
    pub filter_kind: envoy::FilterKind,
    /// Port of the MCP listener.
    #[arg(long, default_value_t = 10000)]
    pub port: u16,
    /// Port of Envoy's admin interface (always on 127.0.0.1).
    #[arg(long, default_value_t = 9901)]
    pub admin_port: u16,
    /// Address of the MCP listener. With `auth.dev` (the password-less sign-in) only a
    /// loopback address is accepted.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Let `auth.dev` run behind a non-loopback `--bind` because the listener is inside a
    /// container whose port is published on the host's loopback only (compose.yaml does
    /// this). Anyone who reaches the listener can sign in as any dev user.
    #[arg(long)]
    pub dev_sign_in_published_on_loopback: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Environment name; Prod adds rollback_deployment, Dev adds query_metrics.debug.
    #[arg(long)]
    pub env: String,
    /// Port to serve MCP on (at /mcp).
    #[arg(long)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Serve without sessions (no Mcp-Session-Id).
    #[arg(long)]
    pub stateless: bool,
    /// Answer with application/json instead of SSE where possible (with --stateless).
    #[arg(long)]
    pub json_response: bool,
    /// Append one JSON line per tools/call: {"env","tool","arguments","headers"}.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Differ from the other envs on purpose, for `check` to catch.
    #[arg(long, value_enum)]
    pub drift: Option<Drift>,
    /// Change the tools while running: a JSON file read on every tools/list and tools/call,
    /// `{"add": [tool definitions], "remove": ["name"], "descriptions": {"name": "text"}}`.
    /// Missing: the built-in tools; invalid: tools/list fails (a broken backend).
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Answer 401 unless the request carries `Authorization: Bearer <token>` with a token
    /// listed in FILE (one per line, re-read on every request).
    #[arg(long, value_name = "FILE", conflicts_with = "introspection_url")]
    pub require_bearer_file: Option<PathBuf>,
    /// Answer 401 unless this RFC 7662 introspection endpoint calls the bearer token active
    /// (with --introspection-client).
    #[arg(long, value_name = "URL", requires = "introspection_client")]
    pub introspection_url: Option<String>,
    /// The client the demo introspects as, `ID:SECRET` (client_secret_basic).
    #[arg(long, value_name = "ID:SECRET", requires = "introspection_url")]
    pub introspection_client: Option<String>,
}

/// The binary's entry point.
pub fn main() -> ExitCode {
    ExitCode::from(main_with(std::env::args_os()))
}

/// Parses `args` (the program name first), runs the command and returns the exit code.
pub fn main_with<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors.
            return if e.use_stderr() {
                exit::USAGE
            } else {
                exit::CLEAN
            };
        }
    };
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("meshmux: error: starting the async runtime: {e}");
            return exit::USAGE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("meshmux: error: {e:#}");
            exit::USAGE
        }
    }
}

fn init_tracing() {
    use std::io::IsTerminal as _;
    // What matters is printed (rmcp's errors become our messages); logs are for RUST_LOG.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rmcp=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs one parsed command; `Ok` carries the exit code.
pub async fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Check(args) => check(args).await,
        Command::Discover(args) => discover_cmd(args).await,
        Command::List(args) => list(args).await,
        Command::Pin(args) => pin_cmd(args).await,
        Command::Up(args) => up::run(args).await,
        Command::Bridge(args) => crate::bridge::run(args).await,
        Command::DemoBackend(args) => {
            let opts = DemoOptions {
                env: args.env,
                stateless: args.stateless,
                json_response: args.json_response,
                record: args.record,
                drift: args.drift,
                catalog: args.catalog,
                gate: demo_gate(
                    args.require_bearer_file,
                    args.introspection_url,
                    args.introspection_client,
                )?,
            };
            crate::demo::run(opts, &args.bind, args.port).await?;
            Ok(exit::CLEAN)
        }
    }
}

fn demo_gate(
    file: Option<PathBuf>,
    url: Option<String>,
    client: Option<String>,
) -> Result<Option<crate::demo::gate::Gate>> {
    use crate::demo::gate::Gate;
    Ok(match (file, url, client) {
        (Some(file), _, _) => Some(Gate::File(file)),
        (None, Some(url), Some(client)) => {
            let (id, secret) = client
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("--introspection-client must be ID:SECRET"))?;
            Some(Gate::Introspection {
                url,
                client_id: id.to_owned(),
                client_secret: secret.to_owned(),
            })
        }
        _ => None,
    })
}

async fn load_and_discover(source: &Source, state: &StateArg) -> Result<Discovery> {
    let mut config = discover::load_config(&source.config)?;
    let timeout = Duration::from_secs(source.timeout);
    // stdio and SSE servers without `listen`: bridged for this one discovery.
    let logs = std::env::temp_dir().join(format!("meshmux-bridges-{}", std::process::id()));
    let (bridges, _) = crate::bridge::start_all(&mut config, &logs, true).await?;
    let found = match &state.state {
        None => discover::discover(config, timeout).await,
        Some(path) => {
            let mut state = read_state(path)?;
            discover::discover_with(config, timeout, Some(&mut state)).await
        }
    };
    for b in bridges {
        b.shutdown().await;
    }
    found
}

/// The state file `--state` names; unlike `discover`'s own, it must exist and parse.
fn read_state(path: &std::path::Path) -> Result<crate::state::State> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the discovery state {}", path.display()))?;
    let state: crate::state::State = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a discovery state (written by `meshmux discover --out DIR` as DIR/{})",
            path.display(),
            crate::state::STATE_FILE
        )
    })?;
    Ok(state)
}

async fn check(args: CheckArgs) -> Result<u8> {
    let d = load_and_discover(&args.source, &args.state).await?;
    let name = args.source.config.display().to_string();
    match args.format {
        OutputFormat::Text => print!(
            "{}",
            report::check_text(&name, &d.manifest, &d.results, d.pins.as_ref())
        ),
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report::check_json(
                &name,
                &d.manifest,
                &d.results,
                d.pins.as_ref()
            ))?
        ),
    }
    Ok(report::exit_code(&d.manifest))
}

async fn pin_cmd(args: PinArgs) -> Result<u8> {
    let mut config = discover::load_config(&args.source.config)?;
    let path = crate::pin::configured_path(&config)?;
    let old = match crate::pin::read_if_present(&path) {
        Ok(old) => old,
        Err(e) => {
            println!("warning: replacing an unusable pin file: {e:#}");
            None
        }
    };
    // What the backends list now, whatever the current pins say.
    config.gateway.pinning = PinMode::Off;
    let d = discover::discover(config, Duration::from_secs(args.source.timeout)).await?;
    let (file, kept) = crate::pin::repin(old.as_ref(), &d.results, &crate::state::now());
    let changes = crate::pin::repin_lines(old.as_ref(), &file);
    let written = crate::pin::write(&path, &file)?;
    print!(
        "{}",
        written_summary(&[discover::Outcome { path, written }])
    );
    for line in &changes {
        println!("  {line}");
    }
    for env in &kept {
        println!("kept: {env} could not be listed; its previous pins stay");
    }
    for r in d.results.iter().filter(|r| r.outcome.is_err()) {
        if !kept.contains(&r.name) {
            println!("not pinned: {} could not be listed", r.name);
        }
    }
    let tools: usize = file.envs.values().map(|t| t.len()).sum();
    println!(
        "{} tools pinned in {} envs; {}",
        tools,
        file.envs.len(),
        if changes.is_empty() {
            "no change".to_owned()
        } else {
            format!("{} changed", changes.len())
        }
    );
    Ok(report::exit_code(&d.manifest))
}

async fn list(args: ListArgs) -> Result<u8> {
    let d = load_and_discover(&args.source, &args.state).await?;
    print!("{}", report::list_text(&d.manifest));
    Ok(report::exit_code(&d.manifest))
}

async fn discover_cmd(args: DiscoverArgs) -> Result<u8> {
    let cwd = std::env::current_dir()?;
    // Find the filter before contacting any backend: a missing artifact is a usage error.
    let filter_path = locate::filter(args.envoy.filter.as_deref(), args.envoy.filter_kind, &cwd)?;
    let timeout = Duration::from_secs(args.source.timeout);
    if let Some(interval) = args.watch {
        let out_dir = discover::prepare_out_dir(&args.out)?;
        return crate::watch::run(crate::watch::WatchOptions {
            config: args.source.config.clone(),
            timeout,
            interval,
            envoy: envoy_options(&args.envoy, out_dir, filter_path),
            bridges: Default::default(),
        })
        .await;
    }
    let config = discover::load_config(&args.source.config)?;
    let out_dir = discover::prepare_out_dir(&args.out)?;
    let (mut state, warning) = crate::state::State::load(&out_dir);
    if let Some(w) = warning {
        println!("warning: {w}");
    }
    let d = discover::discover_with(config, timeout, Some(&mut state)).await?;
    let opts = envoy_options(&args.envoy, out_dir, filter_path);
    let outcomes = discover::write(&d, &opts)?;
    state.save(&opts.out_dir)?;
    print!("{}", written_summary(&outcomes));
    print!("{}", discovery_notes(&d));
    if opts.filter_kind == envoy::FilterKind::Native {
        println!(
            "start Envoy with {}={} (it loads lib{}.so from there)",
            envoy::SEARCH_PATH_VAR,
            envoy::module_dir(&opts.filter_path).display(),
            envoy::module_name(&opts.filter_path)
        );
    }
    Ok(report::exit_code(&d.manifest))
}

pub fn envoy_options(args: &EnvoyArgs, out_dir: PathBuf, filter_path: PathBuf) -> envoy::Options {
    envoy::Options {
        out_dir,
        filter_path,
        filter_kind: args.filter_kind,
        bind: args.bind.clone(),
        port: args.port,
        admin_port: args.admin_port,
        host_defaults: Default::default(),
        dev_sign_in_published_on_loopback: args.dev_sign_in_published_on_loopback,
        ops_allow_from: None,
    }
}

/// One line per file: written, or left alone because nothing changed.
pub fn written_summary(outcomes: &[discover::Outcome]) -> String {
    outcomes
        .iter()
        .map(|o| {
            let what = match o.written {
                Written::Created => "wrote    ",
                Written::Replaced => "updated  ",
                Written::Unchanged => "unchanged",
            };
            format!("{what} {}\n", o.path.display())
        })
        .collect()
}

/// Errors, warnings, unreachable envs and the verdict after a discovery.
pub fn discovery_notes(d: &Discovery) -> String {
    let mut out = String::new();
    for env in &d.manifest.envs {
        if let Some(reason) = &env.unreachable {
            out.push_str(&format!(
                "unreachable: {} (serving none of its tools): {reason}\n",
                env.name
            ));
        }
        if let Some(stale) = &env.stale {
            out.push_str(&format!(
                "stale: {} (down since {}, serving its tools as listed at {}): {}\n",
                env.name, stale.since, stale.listed_at, stale.reason
            ));
        }
    }
    for e in &d.manifest.errors {
        out.push_str(&format!("error: {e}\n"));
    }
    for w in &d.manifest.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    if let Some(p) = &d.manifest.pinning {
        for drift in &p.drift {
            out.push_str(&format!(
                "{}: {}\n",
                drift.env,
                crate::pin::drift_line(p.mode, drift)
            ));
        }
    }
    out.push_str(&format!(
        "{} tools merged; {}\n",
        d.manifest.tools.len(),
        report::verdict(&d.manifest)
    ));
    out
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
