//! `meshmux-bench`: one run, one fast backend, two gateways in front of it (plain Envoy and
//! Envoy + meshmux), tools/call and tools/list at 16 and 64 connections; writes RESULTS.md.
//! Run it through `cargo xtask bench`, which builds and installs what it needs.

mod backend;
mod envoy;
mod wrk;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde_json::json;

use crate::envoy::{Envoy, free_port, http};
use crate::wrk::Load;

struct Args {
    envoy: PathBuf,
    filter: PathBuf,
    meshmux: PathBuf,
    out: PathBuf,
    work: PathBuf,
    seconds: u32,
}

fn parse_args() -> Result<Args> {
    let mut args = std::env::args().skip(1);
    let (mut envoy, mut filter, mut meshmux, mut out, mut work, mut seconds) = (
        None,
        None,
        None,
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
            "--out" => out = PathBuf::from(value()?),
            "--work" => work = PathBuf::from(value()?),
            "--seconds" => seconds = value()?.parse().context("--seconds")?,
            other => bail!(
                "unknown flag {other}; use --envoy --filter --meshmux [--out] [--work] [--seconds]"
            ),
        }
    }
    Ok(Args {
        envoy: envoy.context("--envoy is required")?,
        filter: filter.context("--filter is required")?,
        meshmux: meshmux.context("--meshmux is required")?,
        out,
        work,
        seconds,
    })
}

struct Row {
    gateway: &'static str,
    method: &'static str,
    connections: u32,
    load: Load,
    cpu_us_per_request: f64,
}

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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let backend_port = free_port()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind(("127.0.0.1", backend_port)))?;
    runtime.spawn(async move { axum::serve(listener, backend::router()).await });

    let call_body = |env: Option<&str>| {
        let mut arguments = json!({"query": "x".repeat(1024)});
        if let (Some(env), Some(obj)) = (env, arguments.as_object_mut()) {
            obj.insert("env".into(), json!(env));
        }
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "search_logs", "arguments": arguments}})
        .to_string()
    };
    let list_body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();

    let mut rows = Vec::new();
    let mut rss = Vec::new();

    // (a) plain Envoy.
    let (port, admin) = (free_port()?, free_port()?);
    let plain_cfg = args.work.join("plain.json");
    std::fs::write(
        &plain_cfg,
        envoy::plain_bootstrap(port, admin, backend_port),
    )?;
    let plain = Envoy::start(
        &args.envoy,
        &plain_cfg,
        &args.work.join("plain-envoy.log"),
        admin,
    )?;
    let bodies = [
        ("tools/call", call_body(None)),
        ("tools/list", list_body.clone()),
    ];
    measure(&args, &plain, "plain Envoy", port, &bodies, &mut rows)?;
    rss.push(("plain Envoy", plain.peak_rss_mib()?));
    drop(plain);

    // (b) Envoy + meshmux, configured by `meshmux discover` exactly as a user would.
    let (port, admin) = (free_port()?, free_port()?);
    let config = args.work.join("meshmux-config.json");
    let out_dir = args.work.join("meshmux-out");
    std::fs::write(
        &config,
        json!({"environments": {"Bench": {"description": "Benchmark backend",
              "url": format!("http://127.0.0.1:{backend_port}/mcp")}}})
        .to_string(),
    )?;
    let status = Command::new(&args.meshmux)
        .arg("discover")
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&out_dir)
        .arg("--filter")
        .arg(&args.filter)
        .args([
            "--port",
            &port.to_string(),
            "--admin-port",
            &admin.to_string(),
        ])
        .status()
        .context("running meshmux discover")?;
    if !status.success() {
        bail!("meshmux discover failed with {status}");
    }
    let meshmux = Envoy::start(
        &args.envoy,
        &out_dir.join("envoy.yaml"),
        &args.work.join("meshmux-envoy.log"),
        admin,
    )?;
    let bodies = [
        ("tools/call", call_body(Some("Bench"))),
        ("tools/list", list_body),
    ];
    measure(&args, &meshmux, "Envoy + meshmux", port, &bodies, &mut rows)?;
    rss.push(("Envoy + meshmux", meshmux.peak_rss_mib()?));
    drop(meshmux);

    let report = render(&rows, &rss, args.seconds);
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, &report)
        .with_context(|| format!("writing {}", args.out.display()))?;
    print!("{report}");
    Ok(())
}

/// Checks each body gets a real answer, warms up, then measures at 16 and 64 connections.
fn measure(
    args: &Args,
    envoy: &Envoy,
    gateway: &'static str,
    port: u16,
    bodies: &[(&'static str, String)],
    rows: &mut Vec<Row>,
) -> Result<()> {
    let url = format!("http://127.0.0.1:{port}/mcp");
    for (method, body) in bodies {
        let (status, answer) = http(port, "POST", "/mcp", body)?;
        if status != 200 || !answer.contains("\"result\"") || answer.contains("isError\":true") {
            bail!("{gateway} answered {method} with {status}: {answer}");
        }
        wrk::run(&args.work, &url, body, 16, 2)?; // warm-up
        for connections in [16, 64] {
            let before = envoy.cpu_seconds()?;
            let load = wrk::run(&args.work, &url, body, connections, args.seconds)?;
            let cpu = envoy.cpu_seconds()? - before;
            if load.non_2xx > 0 || load.requests == 0 {
                bail!(
                    "{gateway} {method}: {} non-2xx answers of {}",
                    load.non_2xx,
                    load.requests
                );
            }
            let cpu_us_per_request = cpu * 1e6 / load.requests as f64;
            eprintln!(
                "{gateway:16} {method:10} c={connections:<3} {:>9.0} rps  p50 {:.3} ms  p99 {:.3} ms  {:.1} µs CPU/req",
                load.rps(),
                load.p50_ms,
                load.p99_ms,
                cpu_us_per_request
            );
            rows.push(Row {
                gateway,
                method,
                connections,
                load,
                cpu_us_per_request,
            });
        }
    }
    Ok(())
}

fn render(rows: &[Row], rss: &[(&str, f64)], seconds: u32) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmark results\n");
    let _ = writeln!(
        s,
        "Written by `cargo xtask bench`. One run on one machine: the same fast in-memory MCP backend\n\
         (JSON answers, stateless) behind plain Envoy and behind Envoy + meshmux (`meshmux discover`'s\n\
         generated config, one env). Envoy runs with `--concurrency 1`; load from wrk (1 thread,\n\
         {seconds} s per cell, after a 2 s warm-up) on the same 2-core machine, so compare ratios, not\n\
         absolute numbers. tools/call carries 1 KB of arguments; meshmux answers tools/list itself.\n"
    );
    let _ = writeln!(
        s,
        "| gateway | method | connections | requests/s | p50 ms | p99 ms | Envoy CPU µs/request | socket errors |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.0} | {:.3} | {:.3} | {:.1} | {} |",
            r.gateway,
            r.method,
            r.connections,
            r.load.rps(),
            r.load.p50_ms,
            r.load.p99_ms,
            r.cpu_us_per_request,
            r.load.socket_errors
        );
    }
    let _ = writeln!(s, "\n## meshmux relative to plain Envoy\n");
    let _ = writeln!(
        s,
        "| method | connections | RPS ratio | p50 delta ms | CPU/request ratio |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    for m in rows.iter().filter(|r| r.gateway == "Envoy + meshmux") {
        if let Some(p) = rows.iter().find(|r| {
            r.gateway == "plain Envoy" && r.method == m.method && r.connections == m.connections
        }) {
            let _ = writeln!(
                s,
                "| {} | {} | {:.2}× | {:+.3} | {:.2}× |",
                m.method,
                m.connections,
                m.load.rps() / p.load.rps().max(1e-9),
                m.load.p50_ms - p.load.p50_ms,
                m.cpu_us_per_request / p.cpu_us_per_request.max(1e-9)
            );
        }
    }
    let _ = writeln!(s, "\n## Peak RSS\n");
    for (gateway, mib) in rss {
        let _ = writeln!(s, "- {gateway}: {mib:.1} MiB");
    }
    s
}
