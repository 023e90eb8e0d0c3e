//! The Redis store against a real `redis-server`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use authsvc::config::RedisSettings;
use authsvc::store::Db;
use axum::http::StatusCode;
use common::*;

const FERNET_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

/// A redis-server on a free loopback port, killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(dir: &Path, port: Option<u16>) -> Redis {
        let binary = "/usr/bin/redis-server";
        assert!(
            Path::new(binary).exists(),
            "redis-server is missing: apt-get install redis-server"
        );
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        // AOF in a temp dir so a restart keeps the data (the "nothing minted is lost" check).
        let child = Command::new(binary)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        let redis = Redis { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !redis.pings() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        redis
    }
    fn pings(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }
    fn settings(&self) -> RedisSettings {
        RedisSettings {
            url: format!("redis://127.0.0.1:{}/", self.port),
            encryption_key: FERNET_KEY.into(),
        }
    }
    fn stop(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_db(r: &Redis) -> Db {
    let mut s = settings();
    s.redis = Some(r.settings());
    authsvc::App::store_for(&s).unwrap()
}

async fn raw(port: u16, args: &[&str]) -> redis::Value {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(&mut c).await.unwrap()
}

#[tokio::test]
async fn two_replicas_sharing_redis_complete_one_flow_with_alternating_steps() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), None);
    let replicas = [
        router_with(settings(), redis_db(&redis)),
        router_with(settings(), redis_db(&redis)),
    ];
    let mut b = Browser::default();
    let a = full_flow(&mut b, &replicas, "alice").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        claims_of(a.json()["access_token"].as_str().unwrap())["sub"],
        "dev:alice"
    );

    // Stored values are Fernet tokens, never JSON in clear; transient keys carry TTLs.
    let keys = raw(redis.port, &["KEYS", "meshmux:authsvc:*"]).await;
    let redis::Value::Array(keys) = keys else {
        panic!("{keys:?}")
    };
    assert!(!keys.is_empty());
    for k in keys {
        let redis::Value::BulkString(k) = k else {
            panic!()
        };
        let k = String::from_utf8(k).unwrap();
        let redis::Value::BulkString(v) = raw(redis.port, &["GET", &k]).await else {
            panic!()
        };
        assert!(v.starts_with(b"gAAAAA"), "{k} is not Fernet-encrypted");
        let ttl = raw(redis.port, &["PTTL", &k]).await;
        if k.contains(":rt:")
            || k.contains(":consent-pending:")
            || k.contains(":code:")
            || k.contains(":tx:")
        {
            assert!(
                matches!(ttl, redis::Value::Int(t) if t > 0),
                "{k} has no TTL: {ttl:?}"
            );
        }
    }
}

#[tokio::test]
async fn refresh_token_reuse_revokes_the_family_across_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), None);
    let replicas = [
        router_with(settings(), redis_db(&redis)),
        router_with(settings(), redis_db(&redis)),
    ];
    reuse_revokes_the_family(&replicas).await;

    // The reuse bookkeeping is encrypted like everything else and expires.
    let mut seen = (0, 0);
    let redis::Value::Array(keys) = raw(redis.port, &["KEYS", "meshmux:authsvc:rt-*"]).await else {
        panic!()
    };
    for k in keys {
        let redis::Value::BulkString(k) = k else {
            panic!()
        };
        let k = String::from_utf8(k).unwrap();
        if k.contains(":rt-used:") {
            seen.0 += 1;
        } else if k.contains(":rt-family-revoked:") {
            seen.1 += 1;
        }
        let redis::Value::BulkString(v) = raw(redis.port, &["GET", &k]).await else {
            panic!()
        };
        assert!(v.starts_with(b"gAAAAA"), "{k} is not Fernet-encrypted");
        let ttl = raw(redis.port, &["PTTL", &k]).await;
        assert!(
            matches!(ttl, redis::Value::Int(t) if t > 0),
            "{k} has no TTL: {ttl:?}"
        );
    }
    // A, B and C (refused after the revocation) of bob's family, alice's first token.
    assert_eq!(seen, (4, 1), "rt-used / rt-family-revoked keys");
}

#[tokio::test]
async fn separate_memory_stores_cannot_share_a_flow() {
    let replicas = [
        router_with(settings(), Db::memory()),
        router_with(settings(), Db::memory()),
    ];
    let mut b = Browser::default();
    let client_id = register(&mut b, &replicas[0]).await;
    // Step 2 lands on the replica that never saw the client: refused.
    let a = b.get(&replicas[1], &authorize_url(&client_id)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // Even with the client known to both, the login state is not.
    let a = b.get(&replicas[0], &authorize_url(&client_id)).await;
    let state = a.param("state").unwrap();
    let a = b
        .post_form(
            &replicas[1],
            "/auth/dev/login",
            &[("state", &state), ("user", "alice")],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn readyz_follows_redis_and_nothing_minted_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), None);
    let app = app_with(settings(), redis_db(&redis));
    let r = authsvc::router(app.clone());
    let mut b = Browser::default();
    assert_eq!(b.get(&r, "/readyz").await.status, StatusCode::OK);
    let req = authsvc::mint::MintRequest {
        name: "ci".into(),
        roles: vec!["ops".into()],
        days: 5,
    };
    let (_, record) = authsvc::mint::mint(
        &app.settings,
        &app.keys,
        &app.db,
        &req,
        ("cli", "command line"),
    )
    .await
    .unwrap();
    authsvc::mint::revoke(&app.db, record.clone())
        .await
        .unwrap();

    let port = redis.stop();
    let a = b.get(&r, "/readyz").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    assert!(
        a.json()["checks"]["store"]
            .as_str()
            .unwrap()
            .starts_with("unavailable")
    );
    // Requests that need the store answer a clear 503, without internals.
    let a = b.get(&r, "/internal/revocations").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        a.json()["error_description"],
        "the state store is unavailable"
    );

    let _redis = Redis::start(dir.path(), Some(port));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let a = b.get(&r, "/readyz").await;
        if a.status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {}", a.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let minted: Vec<authsvc::mint::MintedRecord> =
        app.db.scan(authsvc::store::ns::MINTED).await.unwrap();
    assert_eq!(minted.len(), 1);
    assert_eq!(minted[0].jti, record.jti);
    assert_eq!(
        b.get(&r, "/internal/revocations").await.json()["revoked"],
        serde_json::json!([record.jti])
    );
}

/// Signs `user` in to the token UI (dev IdP) and returns the page.
async fn ui_login(b: &mut Browser, r: &axum::Router, user: &str) -> Answer {
    let a = b.get(r, "/ui/login").await;
    let state = a.param("state").unwrap();
    let a = b
        .post_form(r, "/auth/dev/login", &[("state", &state), ("user", user)])
        .await;
    let a = b.get(r, &a.location()).await;
    assert_eq!(a.location(), "/ui/tokens");
    b.get(r, "/ui/tokens").await
}

fn session_key(b: &Browser) -> String {
    let id = &b.cookies["meshmux_ui"];
    format!("meshmux:authsvc:session:{}", authsvc::tokens::digest(id))
}

async fn get_raw(port: u16, key: &str) -> String {
    match raw(port, &["GET", key]).await {
        redis::Value::BulkString(v) => String::from_utf8(v).unwrap(),
        other => panic!("{key}: {other:?}"),
    }
}

/// Issue 9, finding 7: every value is bound to its key, so an admin's session copied under
/// your own session key does not make you the admin.
#[tokio::test]
async fn a_session_copied_under_another_key_grants_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), None);
    let r = router_with(settings(), redis_db(&redis));
    let (mut alice, mut bob) = (Browser::default(), Browser::default());
    assert!(
        ui_login(&mut alice, &r, "alice")
            .await
            .body
            .contains("Mint a bot token")
    );
    let page = ui_login(&mut bob, &r, "bob").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("Mint a bot token"), "bob is no admin");

    let admins = get_raw(redis.port, &session_key(&alice)).await;
    let _: redis::Value = raw(redis.port, &["SET", &session_key(&bob), &admins]).await;
    let a = bob.get(&r, "/ui/tokens").await;
    assert_ne!(a.status, StatusCode::OK, "{}", a.body);
    assert!(!a.body.contains("Mint a bot token"), "{}", a.body);
    assert!(!a.body.contains("alice"), "{}", a.body);
    // The admin's own session is untouched.
    let a = alice.get(&r, "/ui/tokens").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("Mint a bot token"));
}

/// The project's Python (`.venv-py-mcp`, made by `cargo xtask setup`), with `cryptography`.
fn python() -> std::path::PathBuf {
    let path = std::env::var_os("MESHMUX_TEST_PYTHON")
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-py-mcp/bin/python")
        });
    assert!(
        path.exists(),
        "{} is missing: run cargo xtask setup (Python with cryptography)",
        path.display()
    );
    path
}

/// Runs `script` with Python's `cryptography.fernet.Fernet(FERNET_KEY)` as `f`.
fn py_fernet(script: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(format!(
            "import sys\nfrom cryptography.fernet import Fernet\nf = Fernet({FERNET_KEY:?})\n{script}"
        ))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Values stay readable by Python's `cryptography.fernet` (seed 000's library) and the other
/// way round: the same format, the key inside the plaintext before a NUL.
#[tokio::test]
async fn python_fernet_and_authsvc_read_each_other_s_values() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), None);
    let db = redis_db(&redis);

    // authsvc writes, Python reads.
    db.put(
        authsvc::store::ns::CLIENT,
        "from-rust",
        &serde_json::json!({"name": "é ✓"}),
        None,
    )
    .await
    .unwrap();
    let token = get_raw(redis.port, "meshmux:authsvc:client:from-rust").await;
    let read = py_fernet(
        "k, _, v = f.decrypt(sys.argv[1].encode()).partition(b'\\0')\n\
         sys.stdout.write(k.decode() + '|' + v.decode())",
        &[&token],
    );
    assert_eq!(read, r#"meshmux:authsvc:client:from-rust|{"name":"é ✓"}"#);

    // Python writes, authsvc reads.
    let token = py_fernet(
        "sys.stdout.write(f.encrypt(sys.argv[1].encode() + b'\\0' + sys.argv[2].encode()).decode())",
        &["meshmux:authsvc:client:from-python", r#"{"name":"py"}"#],
    );
    let _: redis::Value = raw(
        redis.port,
        &["SET", "meshmux:authsvc:client:from-python", &token],
    )
    .await;
    let v: serde_json::Value = db
        .get(authsvc::store::ns::CLIENT, "from-python")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v, serde_json::json!({"name": "py"}));

    // Python's value without the key inside, or sealed for another key, is refused.
    let unbound = py_fernet(
        "sys.stdout.write(f.encrypt(sys.argv[1].encode()).decode())",
        &[r#"{"name":"py"}"#],
    );
    let for_another = py_fernet(
        "sys.stdout.write(f.encrypt(sys.argv[1].encode() + b'\\0' + sys.argv[2].encode()).decode())",
        &["meshmux:authsvc:client:other", r#"{"name":"py"}"#],
    );
    for token in [unbound, for_another] {
        let _: redis::Value =
            raw(redis.port, &["SET", "meshmux:authsvc:client:copy", &token]).await;
        assert!(
            db.get::<serde_json::Value>(authsvc::store::ns::CLIENT, "copy")
                .await
                .is_err(),
            "{token}"
        );
    }
}
