//! The benchmark's peer: mcp-env-mux (seed 000, the tool users would otherwise pick) from
//! PyPI, in its own venv so its dependencies never meet Envoy's `.venv`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Result, bail};

use crate::tools::{apt_install, has_package, root, run};

/// The release the benchmark compares against.
pub const MCP_ENV_MUX_VERSION: &str = "0.3.7";

/// `.venv-peers/bin/mcp-env-mux`, installed on demand (and again if another version is there).
pub fn mcp_env_mux() -> Result<PathBuf> {
    let venv = root().join(".venv-peers");
    let bin = venv.join("bin/mcp-env-mux");
    let python = venv.join("bin/python");
    if bin.exists() && has_package(&python, "mcp-env-mux", MCP_ENV_MUX_VERSION) {
        return Ok(bin);
    }
    eprintln!(
        "xtask: installing mcp-env-mux {MCP_ENV_MUX_VERSION} from PyPI into {}",
        venv.display()
    );
    if !venv.join("bin/pip").exists() {
        let made = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        if !made {
            apt_install(&["python3-venv"])?;
            run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        }
    }
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "-q",
        &format!("mcp-env-mux=={MCP_ENV_MUX_VERSION}"),
    ]))?;
    if !bin.exists() || !has_package(&python, "mcp-env-mux", MCP_ENV_MUX_VERSION) {
        bail!(
            "{} is not mcp-env-mux {MCP_ENV_MUX_VERSION} after pip install",
            bin.display()
        );
    }
    Ok(bin)
}
