//! Listing a squashfs image through backhand's reader.

use super::{FileInfo, FsError};
use backhand::{FilesystemReader, InnerNode};
use std::io::Read;

/// Calls `visit` for every entry below the root, with the contents of files that `want` asks
/// for.
pub fn list(
    img: &[u8],
    want: impl Fn(&str) -> bool,
    mut visit: impl FnMut(FileInfo, Option<Vec<u8>>),
) -> Result<(), FsError> {
    let e = |x: backhand::BackhandError| FsError::Squashfs(x.to_string());
    let fs = FilesystemReader::from_reader(std::io::Cursor::new(img)).map_err(e)?;
    for node in fs.files() {
        let path = node
            .fullpath
            .to_string_lossy()
            .trim_start_matches('/')
            .to_owned();
        if path.is_empty() {
            continue;
        }
        let h = &node.header;
        let (kind, size, target, rdev, content) = match &node.inner {
            InnerNode::File(f) => {
                let content = if want(&path) {
                    let mut v = Vec::with_capacity(f.file_len());
                    fs.file(f)
                        .reader()
                        .read_to_end(&mut v)
                        .map_err(|x| FsError::Squashfs(format!("/{path}: {x}")))?;
                    Some(v)
                } else {
                    None
                };
                ("file", f.file_len() as u64, None, None, content)
            }
            InnerNode::Symlink(l) => {
                let t = l.link.to_string_lossy().into_owned();
                ("symlink", t.len() as u64, Some(t), None, None)
            }
            InnerNode::Dir(_) => ("dir", 0, None, None, None),
            InnerNode::CharacterDevice(d) => ("char-device", 0, None, Some(d.device_number), None),
            InnerNode::BlockDevice(d) => ("block-device", 0, None, Some(d.device_number), None),
            InnerNode::NamedPipe => ("fifo", 0, None, None, None),
            InnerNode::Socket => ("socket", 0, None, None, None),
        };
        visit(
            FileInfo {
                path,
                kind: kind.to_owned(),
                mode: u32::from(h.permissions & 0o7777),
                uid: h.uid,
                gid: h.gid,
                size,
                mtime: h.mtime.into(),
                target,
                rdev,
                compressed: false,
            },
            content,
        );
    }
    Ok(())
}
