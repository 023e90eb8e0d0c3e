//! The Redis store for several replicas: every value Fernet-encrypted with
//! `auth.redis.encryption_key` and bound to its key (`fernet.rs`), transient entries with
//! TTLs, keys under `meshmux:authsvc:`.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Mutex;

use super::Store;
use super::fernet::Fernet;
use crate::error::{Error, Result};

const PREFIX: &str = "meshmux:authsvc:";

pub struct RedisStore {
    client: redis::Client,
    fernet: Fernet,
    conn: Mutex<Option<ConnectionManager>>,
}

fn store_err(e: impl std::fmt::Display) -> Error {
    Error::Store(format!("redis: {e}"))
}

impl RedisStore {
    /// Does not connect yet: authsvc starts with Redis down and reports it on `/readyz`.
    pub fn new(url: &str, encryption_key: &str) -> anyhow::Result<RedisStore> {
        Ok(RedisStore {
            client: redis::Client::open(url)?,
            fernet: Fernet::new(encryption_key)?,
            conn: Mutex::new(None),
        })
    }

    async fn conn(&self) -> Result<ConnectionManager> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let c = ConnectionManager::new_with_config(self.client.clone(), config)
            .await
            .map_err(store_err)?;
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        let mut c = self.conn().await?;
        cmd.query_async(&mut c).await.map_err(store_err)
    }

    /// `full_key` is the Redis key the value was read from: values are bound to it.
    fn open(&self, full_key: &str, value: Option<String>) -> Result<Option<Vec<u8>>> {
        value
            .map(|v| self.fernet.open(full_key, &v).map_err(store_err))
            .transpose()
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        let key = format!("{PREFIX}{key}");
        let sealed = self.fernet.seal(&key, value).map_err(store_err)?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(sealed);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
        }
        self.query::<()>(&cmd).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = format!("{PREFIX}{key}");
        let v = self.query(redis::cmd("GET").arg(&key)).await?;
        self.open(&key, v)
    }
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>> {
        // GETDEL is atomic: two replicas racing for one code or state get it once.
        let key = format!("{PREFIX}{key}");
        let v = self.query(redis::cmd("GETDEL").arg(&key)).await?;
        self.open(&key, v)
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.query::<()>(redis::cmd("DEL").arg(format!("{PREFIX}{key}")))
            .await
    }
    async fn scan(&self, prefix: &str) -> Result<Vec<Vec<u8>>> {
        let pattern = format!("{PREFIX}{prefix}*");
        let mut cursor: u64 = 0;
        let mut keys: Vec<String> = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = self
                .query(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(500),
                )
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            // A key may expire between SCAN and GET.
            if let Some(v) = self.open(&key, self.query(redis::cmd("GET").arg(&key)).await?)? {
                out.push(v);
            }
        }
        Ok(out)
    }
    async fn ping(&self) -> Result<()> {
        let pong: String = self.query(&redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(Error::Store(format!("redis answered PING with {pong:?}")))
        }
    }
    fn kind(&self) -> &'static str {
        "redis"
    }
}
