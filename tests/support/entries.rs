//! Entries as a user of the mount writes and sees them: a put with tags
//! and a TTL, listings, and what `getfattr` and `stat` show.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::sys::{get_xattr, list_dir, set_xattr_fd};

/// Writes `content` to `path` with tags and a TTL set on the writing
/// descriptor before close, as clients do.
pub fn put(path: &Path, content: &[u8], tags: &str, ttl: u64) {
    let mut f =
        std::fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    set_xattr_fd(&f, "user.tags", tags.as_bytes()).unwrap();
    set_xattr_fd(&f, "user.expire", ttl.to_string().as_bytes()).unwrap();
    f.write_all(content).unwrap();
    drop(f);
}

/// The names in `dir` as text, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = list_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    v.sort();
    v
}

/// `user.expire` as a number.
pub fn expire_of(path: &Path) -> u64 {
    let v = get_xattr(path, "user.expire")
        .unwrap_or_else(|e| panic!("getxattr user.expire {}: {e}", path.display()));
    String::from_utf8(v).unwrap().parse().unwrap()
}

/// `user.tags` as a string.
pub fn tags_of(path: &Path) -> String {
    let v = get_xattr(path, "user.tags")
        .unwrap_or_else(|e| panic!("getxattr user.tags {}: {e}", path.display()));
    String::from_utf8(v).unwrap()
}

pub fn mtime_of(path: &Path) -> i64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .mtime()
}
