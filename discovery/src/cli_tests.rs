use clap::CommandFactory as _;

use super::*;

#[test]
fn the_cli_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["check", "discover", "list", "up", "demo-backend"] {
        assert_eq!(main_with(["meshmux", sub, "--help"]), exit::CLEAN, "{sub}");
    }
    assert_eq!(main_with(["meshmux", "--help"]), exit::CLEAN);
    assert_eq!(main_with(["meshmux", "--version"]), exit::CLEAN);
}

#[test]
fn usage_and_config_errors_exit_3_not_2() {
    // clap's own code for bad usage would be 2, which means "backend unreachable" here.
    assert_eq!(main_with(["meshmux", "check"]), exit::USAGE);
    assert_eq!(main_with(["meshmux", "frobnicate"]), exit::USAGE);
    assert_eq!(
        main_with(["meshmux", "check", "--config", "/nonexistent/meshmux.json"]),
        exit::USAGE
    );
    assert_eq!(
        main_with(["meshmux", "check", "--config", "x", "--format", "xml"]),
        exit::USAGE
    );
}

#[test]
fn an_unreachable_backend_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 on loopback: refused at once, no timeout to wait for.
    let path = dir.path().join("c.json");
    std::fs::write(
        &path,
        r#"{"environments": {"Prod": {"description": "P", "url": "http://127.0.0.1:1/mcp"}}}"#,
    )
    .unwrap();
    let config = path.to_str().unwrap();
    assert_eq!(
        main_with(["meshmux", "check", "--config", config, "--format", "json"]),
        exit::BACKEND_FAILED
    );
    assert_eq!(
        main_with(["meshmux", "list", "--config", config]),
        exit::BACKEND_FAILED
    );
}

#[test]
fn discover_flags_parse_with_their_defaults() {
    let cli = Cli::try_parse_from(["meshmux", "discover", "-c", "c.json", "--out", "out"]).unwrap();
    let Command::Discover(args) = cli.command else {
        panic!("not discover")
    };
    assert_eq!(args.envoy.port, 10000);
    assert_eq!(args.envoy.admin_port, 9901);
    assert_eq!(args.envoy.bind, "127.0.0.1");
    assert_eq!(args.source.timeout, 15);
    assert!(args.envoy.filter.is_none());
}

#[test]
fn bad_watch_intervals_and_state_files_are_usage_errors() {
    for interval in ["0", "0ms", "soon", "-5s"] {
        assert_eq!(
            main_with([
                "meshmux", "discover", "--config", "c.json", "--out", "out", "--watch", interval
            ]),
            exit::USAGE,
            "{interval}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.json");
    std::fs::write(
        &config,
        r#"{"environments": {"A": {"description": "a", "url": "http://127.0.0.1:1/mcp"}}}"#,
    )
    .unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(&state, "{}").unwrap();
    for state in [state, dir.path().join("missing.json")] {
        let args = ["meshmux", "check", "--config"];
        let code = main_with(args.iter().map(std::ffi::OsString::from).chain([
            config.clone().into(),
            "--state".into(),
            state.into(),
        ]));
        assert_eq!(code, exit::USAGE);
    }
}
