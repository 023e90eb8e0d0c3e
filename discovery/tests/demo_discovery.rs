//! Discovery against real demo backends on loopback (in this process): the rmcp client, the
//! merge, the written files, and the demo's `--record` lines that the end-to-end tests read.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use std::collections::BTreeMap;
use std::time::Duration;

use discovery::demo::{self, DemoBackend, DemoOptions, Drift};
use discovery::discover::{self, MANIFEST_FILE};
use discovery::fsutil::Written;
use discovery::report::{self, exit};
use policy::config::{Config, Format};
use serde_json::{Value, json};

async fn backend(opts: DemoOptions) -> DemoBackend {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    demo::start(opts, listener).unwrap()
}

fn opts(env: &str) -> DemoOptions {
    DemoOptions {
        env: env.into(),
        ..DemoOptions::default()
    }
}

fn config(envs: &[(&str, String)]) -> Config {
    let environments: serde_json::Map<String, Value> = envs
        .iter()
        .map(|(name, url)| {
            (
                (*name).to_owned(),
                json!({"description": format!("{name} env"), "url": url,
                       "headers": {"X-Demo-Env": name}}),
            )
        })
        .collect();
    let text = json!({ "environments": environments }).to_string();
    Config::parse(&text, Format::Json, "test", &|_| None).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovers_stateful_and_stateless_backends_and_writes_once() {
    let prod = backend(opts("Prod")).await;
    let staging = backend(DemoOptions {
        stateless: true,
        json_response: true,
        ..opts("Staging")
    })
    .await;
    let dev = backend(opts("Dev")).await;
    let config = config(&[
        ("Prod", prod.url()),
        ("Staging", staging.url()),
        ("Dev", dev.url()),
    ]);
    let d = discover::discover(config, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        report::exit_code(&d.manifest),
        exit::CLEAN,
        "{:#?}",
        d.manifest
    );
    let counts: Vec<Option<usize>> = d.results.iter().map(|r| r.tool_count()).collect();
    assert_eq!(counts, [Some(6), Some(5), Some(5)]);
    assert_eq!(d.manifest.tools.len(), 6);
    assert_eq!(
        d.manifest.envs[0].server_info.as_ref().unwrap()["name"],
        "meshmux-demo-prod"
    );
    // Annotations, title and outputSchema survive discovery and the merge.
    let status = d
        .manifest
        .tools
        .iter()
        .find(|t| t.name() == "get_service_status")
        .unwrap();
    assert_eq!(status.tool["title"], "Service status");
    assert_eq!(status.tool["annotations"]["readOnlyHint"], true);
    assert!(status.tool["outputSchema"].is_object());

    let dir = tempfile::tempdir().unwrap();
    let filter = dir.path().join("meshmux_filter.wasm");
    std::fs::write(&filter, b"\0asm").unwrap();
    let out = dir.path().join("out");
    let opts = discovery::envoy::Options {
        out_dir: discover::prepare_out_dir(&out).unwrap(),
        filter_path: filter,
        filter_kind: Default::default(),
        bind: "127.0.0.1".into(),
        port: 10000,
        admin_port: 9901,
        host_defaults: Default::default(),
        dev_sign_in_published_on_loopback: false,
        ops_allow_from: None,
    };
    let first = discover::write(&d, &opts).unwrap();
    assert!(first.iter().all(|o| o.written == Written::Created));
    let names: Vec<String> = first
        .iter()
        .map(|o| o.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "cds.yaml",
            "rds.yaml",
            "lds.yaml",
            "ecds.yaml",
            MANIFEST_FILE,
            "envoy.yaml"
        ]
    );
    // A second discovery of unchanged backends rewrites nothing.
    let again = discover::discover(d.config.clone(), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(again.manifest.hash, d.manifest.hash);
    let second = discover::write(&again, &opts).unwrap();
    assert!(second.iter().all(|o| o.written == Written::Unchanged));
    let manifest: policy::Manifest =
        serde_json::from_slice(&std::fs::read(out.join(MANIFEST_FILE)).unwrap()).unwrap();
    assert_eq!(manifest, d.manifest);

    for b in [prod, staging, dev] {
        b.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_and_a_dead_backend_are_reported() {
    let prod = backend(opts("Prod")).await;
    let staging = backend(DemoOptions {
        drift: Some(Drift::Description),
        ..opts("Staging")
    })
    .await;
    let config = config(&[
        ("Prod", prod.url()),
        ("Staging", staging.url()),
        ("Dev", "http://127.0.0.1:1/mcp".into()),
    ]);
    let d = discover::discover(config, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(report::exit_code(&d.manifest), exit::BACKEND_FAILED);
    let dev = &d.manifest.envs[2];
    assert!(
        dev.unreachable
            .as_deref()
            .unwrap()
            .contains("Connection refused"),
        "{dev:?}"
    );
    let errors: Vec<&str> = d.manifest.errors.iter().map(|e| e.tool.as_str()).collect();
    assert_eq!(errors, ["search_logs"]);
    assert!(d.manifest.errors[0].message.contains("description differs"));
    assert!(d.manifest.tools.iter().all(|t| t.name() != "search_logs"));
    prod.stop().await;
    staging.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_lines_name_env_tool_arguments_and_headers() {
    use rmcp::ServiceExt as _;
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("calls.jsonl");
    let dev = backend(DemoOptions {
        record: Some(record.clone()),
        ..opts("Dev")
    })
    .await;
    let headers = discovery::backend::header_map(&BTreeMap::from([(
        "X-Demo-Env".to_owned(),
        "Dev".to_owned(),
    )]))
    .unwrap();
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(dev.url()).custom_headers(headers),
    );
    let client = ().serve(transport).await.unwrap();
    let args = json!({"metric": "latency", "window": "5m", "debug": true});
    let result = client
        .call_tool(
            CallToolRequestParams::new("query_metrics")
                .with_arguments(args.as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    let text = serde_json::to_value(&result.content).unwrap()[0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.starts_with("[Dev] query_metrics called with"),
        "{text}"
    );
    assert!(text.contains("query plan"), "{text}");
    client.cancel().await.unwrap();
    dev.stop().await;

    let lines = std::fs::read_to_string(&record).unwrap();
    let line: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(line["env"], "Dev");
    assert_eq!(line["tool"], "query_metrics");
    assert_eq!(line["arguments"], args);
    assert_eq!(line["headers"]["x-demo-env"], "Dev");
    assert!(line["headers"]["mcp-session-id"].is_string());
}
