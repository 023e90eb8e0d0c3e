//! The in-memory store: one process only (a second replica would not see its state).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::Store;
use crate::error::{Error, Result};

type Entries = HashMap<String, (Vec<u8>, Option<Instant>)>;

#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<Entries>,
}

impl MemoryStore {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, (Vec<u8>, Option<Instant>)>) -> T,
    ) -> Result<T> {
        let mut map = self
            .entries
            .lock()
            .map_err(|_| Error::Store("memory store lock poisoned".into()))?;
        let now = Instant::now();
        map.retain(|_, (_, until)| until.is_none_or(|t| t > now));
        Ok(f(&mut map))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        let until = ttl.map(|t| Instant::now() + t);
        self.with(|m| {
            m.insert(key.to_owned(), (value.to_vec(), until));
        })
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.with(|m| m.get(key).map(|(v, _)| v.clone()))
    }
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.with(|m| m.remove(key).map(|(v, _)| v))
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.with(|m| {
            m.remove(key);
        })
    }
    async fn scan(&self, prefix: &str) -> Result<Vec<Vec<u8>>> {
        self.with(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(_, (v, _))| v.clone())
                .collect()
        })
    }
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
    fn kind(&self) -> &'static str {
        "memory"
    }
}
