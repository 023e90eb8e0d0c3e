//! `cargo xtask …`: everything a developer or CI runs, in Rust rather than shell. It builds and
//! installs; it owns no product behaviour.

mod fuzz;
mod native;
mod peers;
mod tools;
mod wasm;

use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};

const HELP: &str = "\
cargo xtask <command>

  up [meshmux up args]   build everything and start the demo stack (or your --config)
  test                   install what the tests need, build, and run every test
  build-wasm             build the Envoy filter (target/wasm/.../meshmux_filter.wasm)
  build-native           build the native filter, an Envoy 1.40 dynamic module
                         (target/native/libmeshmux_native.so)
  setup                  install Envoy, Node 22, the npm test peers and the Python MCP SDK
                         into the project
  bench [--seconds N] [--only tokens]
                         run the benchmark (vs plain Envoy and mcp-env-mux) into bench/RESULTS.md;
                         `--only tokens` prints just the tools/list size table
  fuzz [--minutes N] [--target T]...
                         coverage-guided fuzzing of the policy core (cargo fuzz, installed on
                         demand): each target for its share of N minutes (default 10); fails
                         on a crash and prints the input's path
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match command.as_str() {
        "build-wasm" => wasm::build().map(|path| println!("{}", path.display())),
        "build-native" => native::build().map(|path| println!("{}", path.display())),
        "setup" => tools::setup_all(),
        "up" => up(&rest),
        "test" => test(),
        "bench" => bench(&rest),
        "fuzz" => fuzz::fuzz(&rest),
        "" | "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{HELP}"),
    }
}

/// The product's three artifacts, built for release.
struct Built {
    filter: std::path::PathBuf,
    meshmux: std::path::PathBuf,
    authsvc: std::path::PathBuf,
}

/// Builds the wasm filter, `meshmux` and `meshmux-authsvc`.
fn build_product() -> Result<Built> {
    let filter = wasm::build()?;
    tools::cargo(&["build", "--release", "-p", "discovery", "--bin", "meshmux"])?;
    tools::cargo(&[
        "build",
        "--release",
        "-p",
        "authsvc",
        "--bin",
        "meshmux-authsvc",
    ])?;
    let release = tools::root().join("target/release");
    Ok(Built {
        filter,
        meshmux: release.join("meshmux"),
        authsvc: release.join("meshmux-authsvc"),
    })
}

/// Builds the filter, `meshmux` and authsvc, then runs `meshmux up` with the project's Envoy
/// (the demo includes authsvc with the dev sign-in).
fn up(args: &[String]) -> Result<()> {
    let envoy = tools::envoy()?;
    let Built {
        filter,
        meshmux,
        authsvc,
    } = build_product()?;
    let mut cmd = std::process::Command::new(&meshmux);
    cmd.arg("up")
        .args(args)
        .arg("--envoy")
        .arg(&envoy)
        .arg("--filter")
        .arg(&filter)
        .arg("--authsvc")
        .arg(&authsvc);
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", meshmux.display()))?;
    if !status.success() {
        bail!("meshmux up exited with {status}");
    }
    Ok(())
}

/// Every test: unit, integration and end to end, with their real prerequisites installed.
fn test() -> Result<()> {
    tools::setup_all()?;
    // authsvc's store tests run a real Redis; the browser tests drive Debian's Chromium.
    tools::apt_install(&["redis-server", "chromium"])?;
    let Built {
        filter,
        meshmux,
        authsvc,
    } = build_product()?;
    tools::cargo(&["fmt", "--all", "--check"])?;
    tools::cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ])?;
    // The fuzz checks over the kept corpus, on stable and without libFuzzer (seconds); the
    // long runs are `cargo xtask fuzz`.
    tools::cargo(&["fmt", "--manifest-path", "fuzz/Cargo.toml", "--check"])?;
    tools::cargo(&[
        "test",
        "--manifest-path",
        "fuzz/Cargo.toml",
        "--no-default-features",
        "--target-dir",
        "target/fuzz-replay",
    ])?;
    let native = native::build()?;
    let probe = native::build_probe()?;
    let envoy = tools::envoy()?;
    let node = tools::node()?;
    let python = tools::python_mcp()?;
    let mut envs = vec![
        ("MESHMUX_TEST_ENVOY", envoy.display().to_string()),
        ("MESHMUX_TEST_FILTER", filter.display().to_string()),
        ("MESHMUX_TEST_NODE", node.display().to_string()),
        ("MESHMUX_TEST_MESHMUX", meshmux.display().to_string()),
        ("MESHMUX_TEST_PYTHON", python.display().to_string()),
        ("MESHMUX_TEST_AUTHSVC", authsvc.display().to_string()),
        (
            "MESHMUX_TEST_CHROMIUM",
            tools::chromium()?.display().to_string(),
        ),
        ("MESHMUX_TEST_NATIVE_FILTER", native.display().to_string()),
        (
            "MESHMUX_TEST_NATIVE_PROBE_FILTER",
            probe.display().to_string(),
        ),
    ];
    tools::cargo_with_env(
        &[
            "test",
            "--workspace",
            "--all-features",
            "--",
            "--test-threads=2",
        ],
        &envs,
    )?;
    // The gateway suites again against the native filter (the switch every e2e gateway
    // test honours): every suite that passes on it. Left out: the suites that need `auth`
    // (the native filter refuses it), health, hostile and servers (one test each needs auth), metrics
    // (its Prometheus names differ), the packaging, mesh and config suites (wasm by nature)
    // and reload (its role test needs auth). About three extra minutes, plus the native and
    // panic-probe builds (see ARCHITECTURE.md, "The native filter").
    envs.push(("MESHMUX_TEST_FILTER_KIND", "native".to_owned()));
    let mut args = vec!["test", "-p", "tests"];
    for suite in NATIVE_SUITES {
        args.extend(["--test", suite]);
    }
    args.extend(["--", "--test-threads=2"]);
    tools::cargo_with_env(&args, &envs)
}

/// The e2e suites `cargo xtask test` runs a second time against the native filter.
const NATIVE_SUITES: [&str; 13] = [
    "routing",
    "catalog",
    "bad_input",
    "isolation",
    "capabilities",
    "clients",
    "everything",
    "resilience",
    "streaming",
    "sdk_clients",
    "survivable",
    "origin",
    "pinning",
];

/// The benchmark (`bench/`): the same backend behind nothing, plain Envoy, Envoy + meshmux and
/// mcp-env-mux (installed from PyPI into `.venv-peers`), written to bench/RESULTS.md.
fn bench(args: &[String]) -> Result<()> {
    tools::apt_install(&["wrk"])?;
    if args.iter().any(|a| a == "instructions") {
        tools::apt_install(&["valgrind"])?;
    }
    let envoy = tools::envoy()?;
    let peer = peers::mcp_env_mux()?;
    let filter = wasm::build()?;
    let native = native::build()?;
    tools::cargo(&["build", "--release", "-p", "discovery", "--bin", "meshmux"])?;
    tools::cargo(&["build", "--release", "-p", "bench"])?;
    let root = tools::root();
    let mut cmd = std::process::Command::new(root.join("target/release/meshmux-bench"));
    cmd.current_dir(&root)
        .arg("--envoy")
        .arg(&envoy)
        .arg("--filter")
        .arg(&filter)
        .arg("--native-filter")
        .arg(&native)
        .arg("--meshmux")
        .arg(root.join("target/release/meshmux"))
        .arg("--peer")
        .arg(&peer)
        .args(args);
    tools::run(&mut cmd)
}
