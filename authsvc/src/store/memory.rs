//! The in-memory store: one process only (a second replica would not see its state).
//!
//! Every operation touches only its own key (and a prefix scan only its prefix): entries
//! live in an ordered map, and expiry is an index ordered by deadline, so each operation
//! first drops just the entries whose deadline has passed (amortised O(log n) each),
//! never a pass over the whole map under the lock.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::Store;
use crate::error::{Error, Result};

#[derive(Default)]
struct Entries {
    values: BTreeMap<String, (Vec<u8>, Option<Instant>)>,
    /// (deadline, key) for every entry with a TTL.
    deadlines: BTreeSet<(Instant, String)>,
}

impl Entries {
    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.deadlines.first()
            && *at <= now
        {
            if let Some((_, key)) = self.deadlines.pop_first() {
                self.values.remove(&key);
            }
        }
    }

    fn remove(&mut self, key: &str) -> Option<Vec<u8>> {
        let (value, until) = self.values.remove(key)?;
        if let Some(at) = until {
            self.deadlines.remove(&(at, key.to_owned()));
        }
        Some(value)
    }

    fn insert(&mut self, key: &str, value: Vec<u8>, until: Option<Instant>) {
        self.remove(key);
        if let Some(at) = until {
            self.deadlines.insert((at, key.to_owned()));
        }
        self.values.insert(key.to_owned(), (value, until));
    }
}

#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<Entries>,
}

impl MemoryStore {
    fn with<T>(&self, f: impl FnOnce(&mut Entries) -> T) -> Result<T> {
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| Error::Store("memory store lock poisoned".into()))?;
        entries.expire(Instant::now());
        Ok(f(&mut entries))
    }

    /// Entries held, expired ones not yet dropped included (for tests).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.values.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        let until = ttl.map(|t| Instant::now() + t);
        self.with(|e| e.insert(key, value.to_vec(), until))
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.with(|e| e.values.get(key).map(|(v, _)| v.clone()))
    }
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.with(|e| e.remove(key))
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.with(|e| {
            e.remove(key);
        })
    }
    async fn scan(&self, prefix: &str) -> Result<Vec<Vec<u8>>> {
        self.with(|e| {
            e.values
                .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(prefix))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn ttl_overwrite_take_and_prefix_scan() {
        let s = MemoryStore::default();
        s.put("a:1", b"x", Some(Duration::from_millis(30)))
            .await
            .unwrap();
        s.put("a:2", b"y", None).await.unwrap();
        s.put("b:1", b"z", None).await.unwrap();
        // Overwriting with no TTL forgets the old deadline.
        s.put("a:1", b"x2", None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(s.get("a:1").await.unwrap(), Some(b"x2".to_vec()));
        let mut a = s.scan("a:").await.unwrap();
        a.sort();
        assert_eq!(a, vec![b"x2".to_vec(), b"y".to_vec()]);
        assert_eq!(s.take("a:2").await.unwrap(), Some(b"y".to_vec()));
        assert_eq!(s.take("a:2").await.unwrap(), None);
        s.put("c:1", b"q", Some(Duration::from_millis(10)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(s.get("c:1").await.unwrap(), None);
    }

    /// Expired entries go without anyone reading them (so a flood of short-lived entries
    /// does not pile up), and the deadline index stays the size of the map.
    #[tokio::test]
    async fn expired_entries_are_dropped_by_any_operation() {
        let s = MemoryStore::default();
        for i in 0..1000 {
            s.put(&format!("tx:{i}"), b"v", Some(Duration::from_millis(100)))
                .await
                .unwrap();
        }
        assert!(!s.is_empty());
        tokio::time::sleep(Duration::from_millis(150)).await;
        s.get("unrelated").await.unwrap();
        assert_eq!(s.len(), 0);
        assert!(s.entries.lock().unwrap().deadlines.is_empty());
    }

    /// Issue 9: each operation used to scan every entry under the lock, so n operations on
    /// n live entries cost n² (seconds here); now each costs O(log n).
    #[tokio::test]
    async fn operations_do_not_scan_the_whole_store() {
        let s = MemoryStore::default();
        let started = Instant::now();
        for i in 0..30_000 {
            s.put(
                &format!("client:{i}"),
                b"v",
                Some(Duration::from_secs(3600)),
            )
            .await
            .unwrap();
        }
        for i in 0..30_000 {
            assert!(s.get(&format!("client:{i}")).await.unwrap().is_some());
        }
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "60k operations took {took:?}"
        );
    }
}
