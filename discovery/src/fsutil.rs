//! Writing generated files the way Envoy's watched directories need them: a temporary file in
//! the same directory renamed over the old one (atomic), and only when the content changed,
//! so an unchanged discovery never makes Envoy reload.

use std::fs;
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::{Context as _, Result, anyhow};

/// What [`write_if_changed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Replaced,
    Unchanged,
}

/// Writes `contents` to `path` with permission bits `mode`, atomically, unless the file
/// already holds exactly these bytes (then only its mode is corrected).
pub fn write_if_changed(path: &Path, contents: &[u8], mode: u32) -> Result<Written> {
    let existing = match fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if existing.as_deref() == Some(contents) {
        let meta = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        if meta.permissions().mode() & 0o777 != mode {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .with_context(|| format!("setting the mode of {}", path.display()))?;
        }
        return Ok(Written::Unchanged);
    }
    let dir = path
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", path.display()))?;
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} has no file name", path.display()))?;
    // A dot-name in the same directory: the rename stays on one file system.
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = write_new(&tmp, contents, mode).and_then(|()| {
        fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    Ok(if existing.is_some() {
        Written::Replaced
    } else {
        Written::Created
    })
}

fn write_new(tmp: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let _ = fs::remove_file(tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    // The umask may have narrowed the mode; make it exact (never wider than asked).
    file.set_permissions(fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", tmp.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn writes_only_when_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lds.yaml");
        assert_eq!(
            write_if_changed(&path, b"one", 0o644).unwrap(),
            Written::Created
        );
        let inode = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&path).unwrap());
        assert_eq!(
            write_if_changed(&path, b"one", 0o644).unwrap(),
            Written::Unchanged
        );
        // Unchanged means untouched: same inode, so no watch event.
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&fs::metadata(&path).unwrap()),
            inode
        );
        assert_eq!(
            write_if_changed(&path, b"two", 0o644).unwrap(),
            Written::Replaced
        );
        assert_eq!(fs::read(&path).unwrap(), b"two");
        // Replaced by rename: a new inode, which is what Envoy's directory watch sees.
        assert_ne!(
            std::os::unix::fs::MetadataExt::ino(&fs::metadata(&path).unwrap()),
            inode
        );
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("lds.yaml")]);
    }

    #[test]
    fn secret_files_get_their_mode_even_when_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ecds.yaml");
        write_if_changed(&path, b"secret", 0o600).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            write_if_changed(&path, b"secret", 0o600).unwrap(),
            Written::Unchanged
        );
        assert_eq!(mode_of(&path), 0o600);
    }

    #[test]
    fn missing_directory_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope/manifest.json");
        let err = write_if_changed(&path, b"x", 0o644).unwrap_err();
        assert!(format!("{err:#}").contains("manifest.json"), "{err:#}");
    }
}
