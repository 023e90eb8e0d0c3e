//! `meshmux-bench`: one run, one fast backend, and in front of it nothing, plain Envoy,
//! Envoy + meshmux and mcp-env-mux (seed 000, from PyPI); tools/call and tools/list at 16 and
//! 64 connections; then tools/list sizes in tokens for 2, 3 and 5 envs. Writes RESULTS.md.
//! Run it through `cargo xtask bench`, which builds and installs what it needs.

mod backend;
mod envoy;
mod exposure;
mod instructions;
mod net;
mod peer;
mod report;
mod server;
mod tokens;
mod wrk;

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use serde_json::json;

use crate::net::{free_port, http, json_payload};
use crate::server::Server;
use crate::wrk::Load;

pub struct Args {
    envoy: PathBuf,
    filter: PathBuf,
    meshmux: PathBuf,
    /// `<venv>/bin/mcp-env-mux`.
    peer: PathBuf,
    out: PathBuf,
    work: PathBuf,
    seconds: u32,
    /// `--only tokens`: just the tools/list size table, printed (no load runs, no RESULTS.md).
    only_tokens: bool,
    /// `--only instructions`: Envoy's instructions per forwarded call under callgrind, printed
    /// and written next to RESULTS.md as INSTRUCTIONS.md (no load runs).
    only_instructions: bool,
    /// `--baseline FILTER.wasm` (repeatable): other filter builds counted beside this one.
    baselines: Vec<PathBuf>,
    /// Measured requests per target for `--only instructions`.
    requests: u32,
    /// `--native-filter libmeshmux_native.so`: also measure Envoy + the native filter.
    native_filter: Option<PathBuf>,
}

const USAGE: &str = "use --envoy --filter --meshmux --peer [--native-filter SO] [--out] [--work] \
     [--seconds] [--only tokens|instructions [--baseline FILTER.wasm]... [--requests N]]";

fn parse_args() -> Result<Args> {
    let mut args = std::env::args().skip(1);
    let (mut envoy, mut filter, mut meshmux, mut peer) = (None, None, None, None);
    let (mut only_tokens, mut only_instructions) = (false, false);
    let (mut baselines, mut requests) = (Vec::new(), 1000);
    let mut native_filter = None;
    let (mut out, mut work, mut seconds) = (
        PathBuf::from("bench/RESULTS.md"),
        PathBuf::from("target/bench"),
        10,
    );
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--envoy" => envoy = Some(PathBuf::from(value()?)),
            "--filter" => filter = Some(PathBuf::from(value()?)),
            "--meshmux" => meshmux = Some(PathBuf::from(value()?)),
            "--peer" => peer = Some(PathBuf::from(value()?)),
            "--out" => out = PathBuf::from(value()?),
            "--work" => work = PathBuf::from(value()?),
            "--seconds" => seconds = value()?.parse().context("--seconds")?,
            "--only" => match value()?.as_str() {
                "tokens" => only_tokens = true,
                "instructions" => only_instructions = true,
                other => {
                    bail!("--only {other}: the parts that run alone are `tokens`, `instructions`")
                }
            },
            "--baseline" => baselines.push(PathBuf::from(value()?)),
            "--requests" => requests = value()?.parse().context("--requests")?,
            "--native-filter" => native_filter = Some(PathBuf::from(value()?)),
            other => bail!("unknown flag {other}; {USAGE}"),
        }
    }
    Ok(Args {
        envoy: envoy.with_context(|| format!("--envoy is required; {USAGE}"))?,
        filter: filter.with_context(|| format!("--filter is required; {USAGE}"))?,
        meshmux: meshmux.with_context(|| format!("--meshmux is required; {USAGE}"))?,
        peer: peer.with_context(|| format!("--peer is required; {USAGE}"))?,
        out,
        work,
        seconds,
        only_tokens,
        only_instructions,
        baselines,
        requests,
        native_filter,
    })
}

/// What stands between the client and the backend.
pub const DIRECT: &str = "none (direct)";
pub const PLAIN: &str = "plain Envoy";
pub const MESHMUX: &str = "Envoy + meshmux";
pub const SERVERS: &str = "Envoy + meshmux, 5 servers";
pub const MESHMUX_NATIVE: &str = "Envoy + meshmux (native)";
pub const PEER: &str = "mcp-env-mux";

pub struct Row {
    pub target: &'static str,
    pub method: &'static str,
    pub connections: u32,
    pub load: Load,
    /// CPU of the proxy process; none when there is no proxy.
    pub cpu_us_per_request: Option<f64>,
}

pub const CONNECTIONS: [u32; 2] = [16, 64];

fn main() -> Result<()> {
    // `meshmux-bench backend PORT`: only the fast backend, for profiling by hand.
    if std::env::args().nth(1).as_deref() == Some("backend") {
        let port: u16 = std::env::args().nth(2).context("backend PORT")?.parse()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        return runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            axum::serve(listener, backend::router()).await?;
            Ok(())
        });
    }
    let args = parse_args()?;
    std::fs::create_dir_all(&args.work)
        .with_context(|| format!("creating {}", args.work.display()))?;
    if args.only_tokens {
        let (sizes, exposure) = tokens::table(&args)?;
        print!("{}", report::tokens_section(&sizes));
        print!("{}", exposure::section(&exposure));
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let backend_port = free_port()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind(("127.0.0.1", backend_port)))?;
    runtime.spawn(async move { axum::serve(listener, backend::router()).await });
    let backend_url = format!("http://127.0.0.1:{backend_port}/mcp");

    let call_body = |env: Option<&str>| call_body_named("search_logs", env);
    let list_body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    let plain_bodies = [
        ("tools/call", call_body(None)),
        ("tools/list", list_body.clone()),
    ];
    let env_bodies = [
        ("tools/call", call_body(Some("Bench"))),
        ("tools/list", list_body),
    ];

    if args.only_instructions {
        let counts =
            instructions::table(&args, backend_port, &env_bodies[0].1, &plain_bodies[0].1)?;
        let text = instructions::section(&args, &counts);
        let out = args.out.with_file_name("INSTRUCTIONS.md");
        std::fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;
        print!("{text}");
        return Ok(());
    }

    let started = report::Machine::now(&args)?;
    let mut rows = Vec::new();
    let mut rss = Vec::new();

    // (a) nothing: the client talks to the backend.
    measure(&args, None, DIRECT, backend_port, &plain_bodies, &mut rows)?;

    // (b) plain Envoy.
    let (port, admin) = (free_port()?, free_port()?);
    let plain_cfg = args.work.join("plain.json");
    std::fs::write(
        &plain_cfg,
        envoy::plain_bootstrap(port, admin, backend_port),
    )?;
    let mut plain = envoy::start(
        &args.envoy,
        &plain_cfg,
        &args.work.join("plain-envoy.log"),
        admin,
    )?;
    measure(
        &args,
        Some(&mut plain),
        PLAIN,
        port,
        &plain_bodies,
        &mut rows,
    )?;
    rss.push((PLAIN, plain.peak_rss_mib()?));
    drop(plain);

    // One env, "Bench", as both multiplexers are configured: seed 000's format.
    let env = [("Bench", "Benchmark backend", backend_url.clone())];

    // (c) Envoy + meshmux, configured by `meshmux discover` exactly as a user would.
    let (mut meshmux, port) = start_meshmux(&args, "meshmux", &peer::config(&env))?;
    measure(
        &args,
        Some(&mut meshmux),
        MESHMUX,
        port,
        &env_bodies,
        &mut rows,
    )?;
    rss.push((MESHMUX, meshmux.peak_rss_mib()?));
    drop(meshmux);

    // (c') Envoy + the native filter (a dynamic module), the same config otherwise.
    if let Some(native) = &args.native_filter {
        let (port, admin) = (free_port()?, free_port()?);
        let out_dir = args.work.join("meshmux-native-out");
        // The config (c) wrote.
        let config = args.work.join("meshmux-config.json");
        envoy::discover(
            &args.meshmux,
            native,
            &config,
            &out_dir,
            (port, admin),
            false,
        )?;
        let mut server = envoy::start_with_modules(
            &args.envoy,
            &out_dir.join("envoy.yaml"),
            &args.work.join("meshmux-native-envoy.log"),
            admin,
            envoy::modules_dir(native),
        )?;
        measure(
            &args,
            Some(&mut server),
            MESHMUX_NATIVE,
            port,
            &env_bodies,
            &mut rows,
        )?;
        rss.push((MESHMUX_NATIVE, server.peak_rss_mib()?));
        drop(server);
    }

    // (c'') The same, fronting 5 servers (3 of them in 3 envs: 11 backends, all this backend):
    // a call to one namespaced tool in one env, the list of every server's tools.
    let (mut servers, port) =
        start_meshmux(&args, "meshmux-servers", &servers_config(&backend_url))?;
    let server_bodies = [
        (
            "tools/call",
            call_body_named("obs3__search_logs", Some("Staging")),
        ),
        (
            "tools/list",
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string(),
        ),
    ];
    measure(
        &args,
        Some(&mut servers),
        SERVERS,
        port,
        &server_bodies,
        &mut rows,
    )?;
    rss.push((SERVERS, servers.peak_rss_mib()?));
    drop(servers);

    // (d) mcp-env-mux 0.3.7 from PyPI.
    let port = free_port()?;
    let config = args.work.join("mcp-env-mux-config.json");
    std::fs::write(&config, peer::config(&env))?;
    let mut mux = peer::start(
        &args.peer,
        &config,
        &args.work.join("mcp-env-mux.log"),
        port,
    )?;
    measure(&args, Some(&mut mux), PEER, port, &env_bodies, &mut rows)?;
    rss.push((PEER, mux.peak_rss_mib()?));
    drop(mux);

    eprintln!("tools/list sizes for 2, 3 and 5 envs …");
    let (sizes, exposure) = tokens::table(&args)?;

    let finished = report::Machine::now(&args)?;
    let mut text = report::render(&args, &started, &finished, &rows, &rss, &sizes);
    text.push_str(&exposure::section(&exposure));
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, &text).with_context(|| format!("writing {}", args.out.display()))?;
    print!("{text}");
    Ok(())
}

/// Envoy + meshmux for `config` (JSON), set up by `meshmux discover` exactly as a user would;
/// files and logs under `<work>/<name>-*`. Returns Envoy and its MCP port.
fn start_meshmux(args: &Args, name: &str, config: &str) -> Result<(Server, u16)> {
    let (port, admin) = (free_port()?, free_port()?);
    let config_path = args.work.join(format!("{name}-config.json"));
    let out_dir = args.work.join(format!("{name}-out"));
    std::fs::write(&config_path, config)?;
    envoy::discover(
        &args.meshmux,
        &args.filter,
        &config_path,
        &out_dir,
        (port, admin),
        false,
    )?;
    let envoy = envoy::start(
        &args.envoy,
        &out_dir.join("envoy.yaml"),
        &args.work.join(format!("{name}-envoy.log")),
        admin,
    )?;
    Ok((envoy, port))
}

/// A tools/call of `name` with 1 KB of arguments (and `env` when given).
fn call_body_named(name: &str, env: Option<&str>) -> String {
    let mut arguments = json!({"query": "x".repeat(1024)});
    if let (Some(env), Some(obj)) = (env, arguments.as_object_mut()) {
        obj.insert("env".into(), json!(env));
    }
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
    .to_string()
}

/// An `mcpServers` config of 5 servers, `obs1`..`obs3` in Prod, Staging and Dev and `svc4`,
/// `svc5` with one backend, every backend at `url`.
fn servers_config(url: &str) -> String {
    let mut servers = serde_json::Map::new();
    for i in 1..=3 {
        let envs: serde_json::Map<String, serde_json::Value> = ["Prod", "Staging", "Dev"]
            .iter()
            .map(|e| {
                (
                    (*e).to_owned(),
                    json!({"description": format!("{e} environment"), "url": url}),
                )
            })
            .collect();
        servers.insert(format!("obs{i}"), json!({"environments": envs}));
    }
    for i in 4..=5 {
        servers.insert(format!("svc{i}"), json!({"url": url}));
    }
    json!({"mcpServers": servers}).to_string()
}

/// Fails unless `body` gets a correct answer: 200, a JSON-RPC result, not a tool error.
fn check(target: &str, method: &str, port: u16, body: &str) -> Result<()> {
    let (status, answer) = http(port, "POST", "/mcp", body)?;
    let payload = json_payload(&answer);
    let ok = status == 200
        && payload.as_ref().is_ok_and(|p| {
            p.get("result").is_some()
                && p.pointer("/result/isError").and_then(|e| e.as_bool()) != Some(true)
        });
    if !ok {
        bail!("{target} answered {method} with {status}: {answer:.500}");
    }
    Ok(())
}

/// Checks each body gets a real answer, warms up, measures at every connection count, and
/// checks the answer again afterwards (wrk itself only sees status codes).
fn measure(
    args: &Args,
    mut proxy: Option<&mut Server>,
    target: &'static str,
    port: u16,
    bodies: &[(&'static str, String)],
    rows: &mut Vec<Row>,
) -> Result<()> {
    let url = format!("http://127.0.0.1:{port}/mcp");
    for (method, body) in bodies {
        check(target, method, port, body)?;
        wrk::run(&args.work, &url, body, 16, 2)?; // warm-up
        for connections in CONNECTIONS {
            let before = proxy.as_deref().map(Server::cpu_seconds).transpose()?;
            let load = wrk::run(&args.work, &url, body, connections, args.seconds)?;
            let after = proxy.as_deref().map(Server::cpu_seconds).transpose()?;
            if let Some(p) = proxy.as_deref_mut() {
                p.alive()?;
            }
            if load.non_2xx > 0 || load.requests == 0 {
                bail!(
                    "{target} {method} at {connections} connections: {} non-2xx answers of {}",
                    load.non_2xx,
                    load.requests
                );
            }
            check(target, method, port, body)?;
            let cpu_us_per_request = before
                .zip(after)
                .map(|(b, a)| (a - b) * 1e6 / load.requests as f64);
            eprintln!(
                "{target:16} {method:10} c={connections:<3} {:>9.0} rps  p50 {:.3} ms  p99 {:.3} ms  {} µs CPU/req  {} socket errors",
                load.rps(),
                load.p50_ms,
                load.p99_ms,
                cpu_us_per_request.map_or("-".into(), |c| format!("{c:.1}")),
                load.socket_errors
            );
            rows.push(Row {
                target,
                method,
                connections,
                load,
                cpu_us_per_request,
            });
        }
    }
    Ok(())
}
