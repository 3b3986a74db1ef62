//! File system writers: a [`Tree`](crate::tree::Tree) in, image bytes out.
//!
//! Invariant: writers are pure functions of the tree and their options; the same input gives
//! the same bytes whatever the thread count.

pub mod erofs;
pub mod squashfs;

use std::path::Path;

/// Writes an image through a temporary file in the destination directory and renames it into
/// place, so no half-written image ever stands under the final name.
pub fn atomic_write(
    dest: &Path,
    write: impl FnOnce(&mut std::fs::File) -> Result<(), WriteError>,
) -> Result<u64, WriteError> {
    let io = |e: std::io::Error| WriteError::Io {
        path: dest.display().to_string(),
        source: e,
    };
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs_err::create_dir_all(dir).map_err(io)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".elsx-")
        .suffix(".part")
        .tempfile_in(dir)
        .map_err(io)?;
    write(tmp.as_file_mut())?;
    // Images are read by systemd as root and by users inspecting them: not the temp file's 0600.
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    let size = tmp.as_file().metadata().map_err(io)?.len();
    tmp.persist(dest).map_err(|e| io(e.error))?;
    Ok(size)
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("squashfs: {0}")]
    Squashfs(String),
    #[error(transparent)]
    Package(#[from] crate::package::PackageError),
    #[error("erofs: {0}")]
    Erofs(String),
}
