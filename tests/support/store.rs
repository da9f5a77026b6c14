//! The store on disk, looked at directly: where an entry's file is (SPEC
//! §1, computed here independently of the crate), a listing of `data/`
//! precise enough to prove that a refused operation changed nothing,
//! what is left in `tmp/`, and what the store's files occupy.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::sys::get_xattr;

/// `STORE/data/AA/BB/key:<hex(name)>`, computed as SPEC §1 says.
pub fn key_file(store: &Path, name: &[u8]) -> PathBuf {
    use md5::{Digest, Md5};
    let file = format!("key:{}", hex::encode(name));
    let digest = hex::encode(Md5::digest(file.as_bytes()));
    store
        .join("data")
        .join(&digest[0..2])
        .join(&digest[2..4])
        .join(file)
}

/// One file or directory under the store's `data/`, as `ls -liR` would
/// show it: enough to tell that nothing was linked, renamed or re-timed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoreItem {
    pub path: String,
    pub ino: u64,
    pub nlink: u64,
    pub size: u64,
    pub mtime: (i64, i64),
    pub xattr: Vec<u8>,
}

/// Everything under `store/data`, sorted.
pub fn store_listing(store: &Path) -> Vec<StoreItem> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<StoreItem>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let record = if md.is_file() {
                get_xattr(&p, "user.tagcache").unwrap_or_default()
            } else {
                Vec::new()
            };
            out.push(StoreItem {
                path: p.strip_prefix(root).unwrap().display().to_string(),
                ino: md.ino(),
                nlink: md.nlink(),
                size: if md.is_dir() { 0 } else { md.size() },
                mtime: if md.is_dir() {
                    (0, 0)
                } else {
                    (md.mtime(), md.mtime_nsec())
                },
                xattr: record,
            });
            if md.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let root = store.join("data");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

/// Names in the store's `tmp/` starting with `prefix`, sorted.
pub fn tmp_files(store: &Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.join("tmp"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// What the store's files occupy: the blocks of every regular file under
/// data/ and tmp/, each inode once (what `stats` reports).
pub fn store_size(store: &Path) -> u64 {
    fn walk(dir: &Path, seen: &mut std::collections::HashSet<u64>, total: &mut u64) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let Ok(md) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if md.is_dir() {
                walk(&e.path(), seen, total);
            } else if md.is_file() && seen.insert(md.ino()) {
                *total += md.blocks() * 512;
            }
        }
    }
    let (mut seen, mut total) = (std::collections::HashSet::new(), 0);
    walk(&store.join("data"), &mut seen, &mut total);
    walk(&store.join("tmp"), &mut seen, &mut total);
    total
}
