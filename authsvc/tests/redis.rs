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
