//! RESULTS.md: the machine, the load table, ratios from the same run, the targets, and the
//! tools/list size table.

use std::fmt::Write as _;
use std::process::Command;

use anyhow::Result;

use crate::tokens::{Size, SizeRow};
use crate::{Args, CONNECTIONS, DIRECT, MESHMUX, MESHMUX_NATIVE, PEER, PLAIN, Row, SERVERS, peer};

/// What the numbers were measured on, read at the start and the end of the run.
pub struct Machine {
    date: String,
    cpu: String,
    cores: usize,
    memory_gib: f64,
    kernel: String,
    load: String,
    envoy: String,
    peer: String,
    commit: String,
}

fn command(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

impl Machine {
    pub fn now(args: &Args) -> Result<Machine> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_default();
        Ok(Machine {
            date: command("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            cpu: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
                .unwrap_or_else(|| "unknown CPU".into()),
            cores: cpuinfo
                .lines()
                .filter(|l| l.starts_with("processor"))
                .count(),
            memory_gib: mem_kib / 1024.0 / 1024.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            load: std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
            // `<path>  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL`: keep the release.
            envoy: command(&args.envoy.display().to_string(), &["--version"])
                .split_once("version:")
                .and_then(|(_, v)| v.trim().split('/').nth(1))
                .unwrap_or("(unknown version)")
                .to_owned(),
            peer: peer::version(&args.peer)?,
            commit: {
                let head = command("git", &["rev-parse", "--short", "HEAD"]);
                // The binaries are built from the working tree, which may be ahead of HEAD.
                let dirty = command(
                    "git",
                    &[
                        "status",
                        "--porcelain",
                        "--",
                        "filter",
                        "policy",
                        "discovery",
                    ],
                );
                if dirty.is_empty() {
                    head
                } else {
                    format!("{head} plus uncommitted changes in filter/, policy/ or discovery/")
                }
            },
        })
    }
}

fn find<'a>(rows: &'a [Row], target: &str, method: &str, connections: u32) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.target == target && r.method == method && r.connections == connections)
}

fn ratio(rows: &[Row], a: &str, b: &str, method: &str, connections: u32) -> Option<f64> {
    let a = find(rows, a, method, connections)?.load.rps();
    let b = find(rows, b, method, connections)?.load.rps();
    (b > 0.0).then(|| a / b)
}

fn verdict(met: bool) -> &'static str {
    if met { "**met**" } else { "**not met**" }
}

pub fn render(
    args: &Args,
    start: &Machine,
    end: &Machine,
    rows: &[Row],
    rss: &[(&str, f64)],
    sizes: &[SizeRow],
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmark results\n");
    let _ = writeln!(
        s,
        "Written by `cargo xtask bench` on {date} (commit {commit}).\n\n\
         One run on one machine: the same fast in-memory MCP backend (the bench's own: stateless,\n\
         JSON answers) behind nothing, plain Envoy, Envoy + meshmux (`meshmux discover`'s generated\n\
         config, one env) and mcp-env-mux {pv} (seed 000, from PyPI; a seed-000 config with the same\n\
         env, no auth, default metrics). Envoy {ev} runs with `--concurrency 1`; mcp-env-mux is one\n\
         Python process (its CLI's only mode). Load from wrk (1 thread, {secs} s per cell after a 2 s\n\
         warm-up; every target is bounded by time, not request count). Each answer is checked\n\
         before and after every cell, and any non-2xx answer fails the run. tools/call carries 1 KB\n\
         of arguments; meshmux answers tools/list itself. Client, proxy and backend share the\n\
         machine, so compare ratios, not absolute numbers.\n",
        date = end.date,
        commit = start.commit,
        pv = start.peer,
        ev = start.envoy,
        secs = args.seconds
    );
    let _ = writeln!(
        s,
        "Machine: {} ({} cores), {:.1} GiB RAM, Linux {}.\n\
         Load average (1/5/15 min): {} at the start, {} at the end.\n",
        start.cpu, start.cores, start.memory_gib, start.kernel, start.load, end.load
    );
    let _ = writeln!(
        s,
        "| in front of the backend | method | connections | requests/s | p50 ms | p99 ms | proxy CPU µs/request | proxy peak RSS MiB | socket errors |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let rss = rss
            .iter()
            .find(|(t, _)| *t == r.target)
            .map_or("–".to_owned(), |(_, m)| format!("{m:.1}"));
        let target = if r.target == PEER {
            format!("{PEER} {}", start.peer)
        } else {
            r.target.to_owned()
        };
        let _ = writeln!(
            s,
            "| {target} | {} | {} | {:.0} | {:.3} | {:.3} | {} | {rss} | {} |",
            r.method,
            r.connections,
            r.load.rps(),
            r.load.p50_ms,
            r.load.p99_ms,
            r.cpu_us_per_request
                .map_or("–".into(), |c| format!("{c:.1}")),
            r.load.socket_errors
        );
    }

    let _ = writeln!(s, "\n## Many servers (requests/s, same run)\n");
    let _ = writeln!(
        s,
        "`{SERVERS}`: an `mcpServers` config of 5 servers, 3 of them in Prod, Staging and Dev (11\n\
         backends, all the same fast backend); tools/call calls one namespaced tool in one env,\n\
         tools/list lists every server's tools (answered by meshmux).\n"
    );
    let _ = writeln!(
        s,
        "| method | connections | 5 servers / one env | 5 servers / plain Envoy |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|");
    for method in ["tools/call", "tools/list"] {
        for c in CONNECTIONS {
            let x = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.2}×"));
            let _ = writeln!(
                s,
                "| {method} | {c} | {} | {} |",
                x(ratio(rows, SERVERS, MESHMUX, method, c)),
                x(ratio(rows, SERVERS, PLAIN, method, c))
            );
        }
    }

    let _ = writeln!(s, "\n## Ratios (requests/s, same run)\n");
    let _ = writeln!(
        s,
        "| method | connections | meshmux / plain Envoy | meshmux / mcp-env-mux | plain Envoy / mcp-env-mux | plain Envoy / direct | meshmux CPU per request / plain |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    let x = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.2}×"));
    for method in ["tools/call", "tools/list"] {
        for c in CONNECTIONS {
            let cpu = find(rows, MESHMUX, method, c)
                .and_then(|m| m.cpu_us_per_request)
                .zip(find(rows, PLAIN, method, c).and_then(|p| p.cpu_us_per_request))
                .and_then(|(m, p)| (p > 0.0).then(|| m / p));
            let _ = writeln!(
                s,
                "| {method} | {c} | {} | {} | {} | {} | {} |",
                x(ratio(rows, MESHMUX, PLAIN, method, c)),
                x(ratio(rows, MESHMUX, PEER, method, c)),
                x(ratio(rows, PLAIN, PEER, method, c)),
                x(ratio(rows, PLAIN, DIRECT, method, c)),
                x(cpu)
            );
        }
    }

    if rows.iter().any(|r| r.target == MESHMUX_NATIVE) {
        let _ = writeln!(
            s,
            "\n| method | connections | native / plain Envoy | native / wasm | native CPU per request / plain |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|");
        for method in ["tools/call", "tools/list"] {
            for c in CONNECTIONS {
                let cpu = find(rows, MESHMUX_NATIVE, method, c)
                    .and_then(|m| m.cpu_us_per_request)
                    .zip(find(rows, PLAIN, method, c).and_then(|p| p.cpu_us_per_request))
                    .and_then(|(m, p)| (p > 0.0).then(|| m / p));
                let _ = writeln!(
                    s,
                    "| {method} | {c} | {} | {} | {} |",
                    x(ratio(rows, MESHMUX_NATIVE, PLAIN, method, c)),
                    x(ratio(rows, MESHMUX_NATIVE, MESHMUX, method, c)),
                    x(cpu)
                );
            }
        }
    }

    let worst = |a: &str, b: &str, method: &str| {
        CONNECTIONS
            .iter()
            .filter_map(|c| ratio(rows, a, b, method, *c))
            .fold(None, |acc: Option<f64>, r| {
                Some(acc.map_or(r, |a| a.min(r)))
            })
    };
    let _ = writeln!(s, "\n## Targets (worst connection count)\n");
    let target_line = |s: &mut String, what: &str, got: Option<f64>, want: f64| {
        let _ = writeln!(
            s,
            "- {what} ≥ {want}×: {} → {}",
            x(got),
            verdict(got.is_some_and(|g| g >= want))
        );
    };
    target_line(
        &mut s,
        "tools/call, meshmux vs plain Envoy,",
        worst(MESHMUX, PLAIN, "tools/call"),
        0.8,
    );
    target_line(
        &mut s,
        "tools/call, meshmux vs mcp-env-mux,",
        worst(MESHMUX, PEER, "tools/call"),
        40.0,
    );
    target_line(
        &mut s,
        "tools/list, meshmux vs plain Envoy,",
        worst(MESHMUX, PLAIN, "tools/list"),
        1.2,
    );
    if rows.iter().any(|r| r.target == MESHMUX_NATIVE) {
        target_line(
            &mut s,
            "tools/call, meshmux (native) vs plain Envoy,",
            worst(MESHMUX_NATIVE, PLAIN, "tools/call"),
            0.8,
        );
        target_line(
            &mut s,
            "tools/list, meshmux (native) vs plain Envoy,",
            worst(MESHMUX_NATIVE, PLAIN, "tools/list"),
            1.5,
        );
    }
    let tokens_ok = |tokens: &dyn Fn(&SizeRow) -> usize| {
        sizes.iter().filter(|r| r.caller == "all tools").all(|r| {
            let size = Size {
                tokens: tokens(r),
                ..r.meshmux
            };
            token_ratio(&size, &r.naive) <= 1.25 / r.envs as f64
        })
    };
    let _ = writeln!(
        s,
        "- tools/list tokens for N envs ≈ 1/N of naive aggregation (counted as met when at most\n  \
         1.25/N, all tools): `env_descriptions: per_tool` {}; `instructions` (list + instructions) {}",
        verdict(tokens_ok(&|r| r.meshmux.tokens)),
        verdict(tokens_ok(&|r| r.once.tokens + r.instructions_tokens))
    );

    s.push_str(&tokens_section(sizes));
    s
}

/// The "tools/list size" section (also printed alone by `meshmux-bench --only tokens`).
pub fn tokens_section(sizes: &[SizeRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n## tools/list size\n");
    let _ = writeln!(
        s,
        "The demo backends (`meshmux demo-backend`, rmcp; Prod and Dev list an extra tool or\n\
         parameter) for the first N of Prod, Staging, Dev, Qa, Perf. **meshmux**: the list Envoy +\n\
         meshmux answers (checked identical to `policy::Gateway`'s; the restricted row is\n\
         `policy::Gateway` for a caller whose role allows half the merged tools in every env), with\n\
         `gateway.env_descriptions` `per_tool` (the default: every tool's `env` parameter describes\n\
         every env) and `instructions` (each env described once, in `initialize`'s `instructions`;\n\
         **+ instr.** is the tokens of that text for this caller, which a client reads once per\n\
         session, and the ratio next to it counts list + instructions).\n\
         **naive**: every env's tools again, renamed `<env>_<tool>`, as an aggregator without a\n\
         merge lists them. **mcp-env-mux**: its own merged list (it needs Azure sign-in for roles,\n\
         so it has no restricted row). Bytes are the JSON-RPC response; tokens are tiktoken's\n\
         `o200k_base` (GPT-4o family) over those bytes. Clients before protocol 2026-07-28 (these\n\
         rows) get no `x-mcp-header` hint on `env`.\n"
    );
    let _ = writeln!(
        s,
        "| envs | caller | naive tools / bytes / tokens | meshmux per_tool tools / bytes / tokens | ÷ naive | meshmux instructions tools / bytes / tokens | + instr. | ÷ naive | 1/N | mcp-env-mux tools / bytes / tokens |"
    );
    let _ = writeln!(s, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let cell = |z: &Size| format!("{} / {} / {}", z.tools, z.bytes, z.tokens);
    for r in sizes {
        let once_total = Size {
            tokens: r.once.tokens + r.instructions_tokens,
            ..r.once
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.2} | {} | {} | {:.2} | {:.2} | {} |",
            r.envs,
            r.caller,
            cell(&r.naive),
            cell(&r.meshmux),
            token_ratio(&r.meshmux, &r.naive),
            cell(&r.once),
            r.instructions_tokens,
            token_ratio(&once_total, &r.naive),
            1.0 / r.envs as f64,
            r.peer.as_ref().map_or("–".into(), cell)
        );
    }
    s
}

fn token_ratio(a: &Size, b: &Size) -> f64 {
    if b.tokens == 0 {
        0.0
    } else {
        a.tokens as f64 / b.tokens as f64
    }
}
