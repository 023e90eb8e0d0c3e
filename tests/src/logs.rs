//! One directory of logs per test, `target/e2e-logs/<test>/`, emptied when the test first uses
//! it, and one file per process in it.

use std::collections::HashSet;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use anyhow::{Context as _, Result};

use crate::prereq::root;

/// The running test's name (libtest names each test's thread after it).
pub fn test_name() -> String {
    let name = std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("unnamed-test")
        .to_owned();
    name.replace("::", ".")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `target/e2e-logs/<test>/`, wiped the first time this test asks for it.
pub fn test_dir() -> Result<PathBuf> {
    static FRESH: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let name = test_name();
    let dir = root().join("target/e2e-logs").join(&name);
    let mut fresh = FRESH
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| anyhow::anyhow!("log registry poisoned"))?;
    if fresh.insert(name) && dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// A path in this test's directory named `stem` + `ext`, made unique with `-2`, `-3`, … .
pub fn unique_path(stem: &str, ext: &str) -> Result<PathBuf> {
    let dir = test_dir()?;
    let mut n = 1;
    loop {
        let name = if n == 1 {
            format!("{stem}{ext}")
        } else {
            format!("{stem}-{n}{ext}")
        };
        let path = dir.join(name);
        if !path.exists() {
            return Ok(path);
        }
        n += 1;
    }
}

/// A fresh log file for a process called `stem`.
pub fn log_file(stem: &str) -> Result<(PathBuf, File)> {
    let path = unique_path(stem, ".log")?;
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    Ok((path, file))
}

/// The last `lines` lines of a log, for error messages.
pub fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all.get(start..).unwrap_or_default().join("\n")
}
