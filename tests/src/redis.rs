//! A real `redis-server` (Debian's, installed by `cargo xtask setup`) on a free loopback port,
//! without persistence, requiring a password as a deployment's should; stopped on drop. For
//! authsvc's Redis store.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};

use crate::process::Proc;
use crate::{READY_TIMEOUT, ports};

/// A valid Fernet key for `auth.redis.encryption_key` (test only).
pub const FERNET_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

pub struct Redis {
    _proc: Proc,
    port: u16,
    password: String,
}

impl Redis {
    pub fn start() -> Result<Redis> {
        let binary = Path::new("/usr/bin/redis-server");
        if !binary.exists() {
            bail!("redis-server is missing: apt-get install redis-server (cargo xtask setup does)");
        }
        let port = ports::free_port()?;
        // Characters a URL must encode, so the config's password reaches Redis intact.
        let password = format!("p@ss/{port}:w#rd");
        let mut cmd = Command::new(binary);
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--requirepass", &password]);
        let mut proc = Proc::spawn("redis", &mut cmd)?;
        proc.wait_until("redis-server's PING", READY_TIMEOUT, || {
            Ok(command(port, &password, &["PING"]).is_ok_and(|r| r == "+PONG"))
        })?;
        Ok(Redis {
            _proc: proc,
            port,
            password,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `auth.redis` block that points authsvc here.
    pub fn auth_block(&self) -> serde_json::Value {
        serde_json::json!({
            "enabled": true, "host": "127.0.0.1", "port": self.port,
            "encryption_key": FERNET_KEY, "password": self.password,
        })
    }

    /// One command, after `AUTH`; its first reply line (`+PONG`, `:123`, `$-1`, …).
    pub fn command(&self, args: &[&str]) -> Result<String> {
        command(self.port, &self.password, args)
    }

    /// One command without `AUTH` first; its first reply line.
    pub fn command_unauthenticated(&self, args: &[&str]) -> Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
        exchange(&mut s, args)
    }
}

fn command(port: u16, password: &str, args: &[&str]) -> Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
    let auth = exchange(&mut s, &["AUTH", password])?;
    if auth != "+OK" {
        bail!("redis AUTH: {auth}");
    }
    exchange(&mut s, args)
}

/// Sends one command; its first reply line.
fn exchange(s: &mut TcpStream, args: &[&str]) -> Result<String> {
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(out.as_bytes())?;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while s.read(&mut byte)? == 1 {
        if byte == [b'\n'] {
            break;
        }
        buf.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&buf).trim_end().to_owned())
}
