use super::*;
use clap::Parser as _;

fn parse(args: &[&str]) -> Result<BridgeArgs, clap::Error> {
    #[derive(Debug, clap::Parser)]
    struct Top {
        #[command(flatten)]
        bridge: BridgeArgs,
    }
    Top::try_parse_from(std::iter::once("bridge").chain(args.iter().copied())).map(|t| t.bridge)
}

#[test]
fn a_stdio_command_with_its_env() {
    let args = parse(&[
        "--listen",
        "127.0.0.1:0",
        "--env",
        "A=1",
        "--env",
        "B=x=y",
        "--",
        "/usr/bin/node",
        "server.js",
        "stdio",
    ])
    .unwrap();
    let (name, backend) = args.backend().unwrap();
    assert_eq!(name, "node");
    let Backend::Stdio { command, args, env } = backend else {
        panic!("not stdio")
    };
    assert_eq!(command, "/usr/bin/node");
    assert_eq!(args, ["server.js", "stdio"]);
    assert_eq!(env, [("A".into(), "1".into()), ("B".into(), "x=y".into())]);
}

#[test]
fn an_sse_url_with_headers() {
    let args = parse(&[
        "--listen",
        "127.0.0.1:0",
        "--sse-url",
        "http://127.0.0.1:3001/sse",
        "--header",
        "Authorization: Bearer t",
    ])
    .unwrap();
    let (name, backend) = args.backend().unwrap();
    assert_eq!(name, "127.0.0.1");
    let Backend::Sse { url, headers } = backend else {
        panic!("not sse")
    };
    assert_eq!(url.as_str(), "http://127.0.0.1:3001/sse");
    assert_eq!(headers["authorization"], "Bearer t");
}

#[test]
fn bad_flags_are_refused_with_a_reason() {
    // Neither a command nor --sse-url.
    let e = parse(&["--listen", "127.0.0.1:0"])
        .unwrap()
        .backend()
        .unwrap_err();
    assert!(e.to_string().contains("after `--`"), "{e}");
    // Both.
    assert!(
        parse(&[
            "--listen",
            "127.0.0.1:0",
            "--sse-url",
            "http://h/sse",
            "--",
            "x"
        ])
        .is_err()
    );
    // Headers without --sse-url.
    let e = parse(&["--listen", "127.0.0.1:0", "--header", "A: b", "--", "x"])
        .unwrap()
        .backend()
        .unwrap_err();
    assert!(e.to_string().contains("--header is for --sse-url"), "{e}");
    let e = parse(&["--listen", "127.0.0.1:0", "--sse-url", "ftp://h/sse"])
        .unwrap()
        .backend()
        .unwrap_err();
    assert!(e.to_string().contains("not an http"), "{e}");
    let e = parse(&["--listen", "127.0.0.1:0", "--path", "mcp", "--", "x"])
        .unwrap()
        .backend()
        .unwrap_err();
    assert!(e.to_string().contains("must start with /"), "{e}");
    let e = parse(&[
        "--listen",
        "127.0.0.1:0",
        "--env",
        "MESHMUX_SURELY_UNSET_VARIABLE",
        "--",
        "x",
    ])
    .unwrap()
    .backend()
    .unwrap_err();
    assert!(e.to_string().contains("no variable"), "{e}");
}

#[test]
fn the_port_file_is_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("b.port");
    write_port_file(&f, 4242).unwrap();
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "4242\n");
    assert!(!dir.path().join("b.tmp").exists());
}
