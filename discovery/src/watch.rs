//! `meshmux discover --watch INTERVAL`: discovery in a loop. Each cycle re-reads the config
//! (roles and backends reload the same way), re-lists every backend concurrently (each within
//! the timeout), merges, and rewrites the Envoy files and the manifest — atomically and only
//! when they changed, in the order a running Envoy needs — then prints what changed. A cycle
//! that changes nothing writes nothing and prints nothing (it is logged at `info`).
//!
//! A config that stops parsing (or names a URL Envoy cannot route to) is reported once and
//! the last good one is kept; a backend that errors keeps its last good tools (see `state`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use policy::config::Config;

use crate::discover::{self, Discovery};
use crate::fsutil::Written;
use crate::report::exit;
use crate::state::State;
use crate::{diff, envoy};

/// Parses a watch interval: `500ms`, `30s`, `2m`, `1h`, or a plain number of seconds.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let usage = || {
        format!(
            "{text:?} is not an interval; use a number with a unit, like 500ms, 30s, 2m or 1h \
             (a plain number is seconds)"
        )
    };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| usage())?;
    let millis_per = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(usage()),
    };
    if n == 0 {
        return Err(format!(
            "{text:?}: the interval must be more than 0 (leave --watch out for one pass)"
        ));
    }
    let millis = n.checked_mul(millis_per).ok_or_else(usage)?;
    Ok(Duration::from_millis(millis))
}

/// What the watch needs to run.
pub struct WatchOptions {
    pub config: PathBuf,
    pub timeout: Duration,
    pub interval: Duration,
    pub envoy: envoy::Options,
    /// Backend → URL of the bridge `meshmux up` started for it (stdio and SSE servers).
    pub bridges: std::collections::BTreeMap<String, String>,
}

/// The config file as the watch reads it: loaded, its bridges' URLs filled in, validated.
fn load(opts: &WatchOptions) -> Result<Config> {
    let mut config = discover::load_config(&opts.config)?;
    config.assign_bridge_urls(&opts.bridges);
    discover::validate(&config)?;
    Ok(config)
}

/// The loop's memory between cycles.
pub struct Watcher {
    opts: WatchOptions,
    state: State,
    /// The last config that loaded and validated.
    config: Config,
    /// The last discovery written.
    last: Option<Discovery>,
    /// The config error last reported, so it is reported once.
    config_error: Option<String>,
    cycles: u64,
}

/// Runs the watch until SIGTERM or Ctrl-C (then exit 0). The first pass happens at once; a
/// config that does not load at the start is an error (exit 3), later it is only reported.
pub async fn run(opts: WatchOptions) -> Result<u8> {
    let config = load(&opts)?;
    let (state, warning) = State::load(&opts.envoy.out_dir);
    if let Some(w) = warning {
        println!("warning: {w}");
    }
    let mut watcher = Watcher::new(opts, state, config, None);
    println!(
        "meshmux discover: watching {} every {:?} (Ctrl-C or SIGTERM stops)",
        watcher.opts.config.display(),
        watcher.opts.interval
    );
    let shutdown = crate::up::shutdown_signal();
    tokio::pin!(shutdown);
    let mut ticker = tokio::time::interval(watcher.opts.interval);
    // A cycle longer than the interval delays the next one instead of bunching them up.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticker.tick() => {}
        }
        tokio::select! {
            () = &mut shutdown => break,
            text = watcher.cycle() => print!("{text}"),
        }
    }
    println!("meshmux discover: stopped");
    Ok(exit::CLEAN)
}

/// Cycles every interval, the first one interval from now, printing what changed; never
/// returns (for `meshmux up --watch`, which stops it with the rest of the stack).
pub async fn keep_watching(mut watcher: Watcher) {
    let interval = watcher.opts.interval;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        print!("{}", watcher.cycle().await);
    }
}

impl Watcher {
    /// A watcher whose config loaded (and validated); `last` is the discovery already
    /// written, if any (the next cycle then prints only what changed since).
    pub fn new(opts: WatchOptions, state: State, config: Config, last: Option<Discovery>) -> Self {
        Watcher {
            opts,
            state,
            config,
            last,
            config_error: None,
            cycles: 0,
        }
    }

    /// One cycle; returns what to print (empty when nothing changed).
    pub async fn cycle(&mut self) -> String {
        self.cycles += 1;
        let started = Instant::now();
        let mut out = String::new();
        let now = crate::state::now();
        match load(&self.opts) {
            Ok(config) => {
                if self.config_error.take().is_some() {
                    out.push_str(&format!(
                        "{now} config {} loads again\n",
                        self.opts.config.display()
                    ));
                }
                self.config = config;
            }
            Err(e) => {
                let message = format!("{e:#}");
                if self.config_error.as_deref() != Some(message.as_str()) {
                    out.push_str(&format!(
                        "{now} config error (keeping the last good config and files): {message}\n"
                    ));
                    self.config_error = Some(message);
                }
            }
        }
        let discovered = discover::discover_with(
            self.config.clone(),
            self.opts.timeout,
            Some(&mut self.state),
        )
        .await;
        let d = match discovered {
            Ok(d) => d,
            Err(e) => {
                out.push_str(&format!("{now} discovery failed: {e:#}\n"));
                return out;
            }
        };
        let written = match discover::write(&d, &self.opts.envoy) {
            Ok(w) => w,
            Err(e) => {
                out.push_str(&format!(
                    "{now} error writing the files (the previous ones stay): {e:#}\n"
                ));
                return out;
            }
        };
        if let Err(e) = self.state.save(&self.opts.envoy.out_dir) {
            out.push_str(&format!(
                "{now} warning: saving the discovery state: {e:#}\n"
            ));
        }
        let changed: Vec<_> = written
            .iter()
            .filter(|o| o.written != Written::Unchanged)
            .collect();
        match &self.last {
            None => {
                out.push_str(&crate::cli::written_summary(&written));
                out.push_str(&crate::cli::discovery_notes(&d));
            }
            Some(last) => {
                let lines = diff::diff(last, &d);
                if !lines.is_empty() || !changed.is_empty() {
                    out.push_str(&format!("{now} changes:\n"));
                    for line in &lines {
                        out.push_str(&format!("  {line}\n"));
                    }
                    for o in &changed {
                        out.push_str(&format!("  updated {}\n", o.path.display()));
                    }
                    out.push_str(&format!(
                        "  {} tools merged; {}\n",
                        d.manifest.tools.len(),
                        crate::report::verdict(&d.manifest)
                    ));
                }
            }
        }
        tracing::info!(
            cycle = self.cycles,
            files_written = changed.len(),
            took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "discovery cycle {}",
            if changed.is_empty() {
                "unchanged"
            } else {
                "wrote files"
            }
        );
        self.last = Some(d);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_with_and_without_units() {
        let ok = [
            ("500ms", 500),
            ("30s", 30_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("45", 45_000),
            (" 5s ", 5_000),
        ];
        for (text, millis) in ok {
            assert_eq!(
                parse_interval(text),
                Ok(Duration::from_millis(millis)),
                "{text}"
            );
        }
    }

    #[test]
    fn zero_and_garbage_are_refused_with_the_fix() {
        for zero in ["0", "0s", "0ms"] {
            let e = parse_interval(zero).unwrap_err();
            assert!(e.contains("more than 0"), "{zero}: {e}");
        }
        for bad in [
            "",
            "s",
            "fast",
            "1.5s",
            "10x",
            "-1s",
            "5 minutes",
            "99999999999999999h",
        ] {
            let e = parse_interval(bad).unwrap_err();
            assert!(e.contains("like 500ms, 30s, 2m or 1h"), "{bad}: {e}");
        }
    }
}
