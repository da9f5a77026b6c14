//! Walking a directory of the store in a stable order, from a position:
//! what a listing of the mount streams from.
//!
//! The order is by bucket (`data/AA/BB`, or a tag directory's `SS`: two
//! bytes each), then by a 46-bit hash of the file name. A position (a
//! *cookie*) is `(bucket + 1) << 46 | hash`: the walk resumes after it, so
//! every name present for a whole walk is passed exactly once, whatever is
//! added or removed meanwhile, and position 0 is the start. Two names of
//! one bucket with the same hash cannot be told apart by a position: the
//! walk then fails (EIO) rather than pass one twice or not at all.
//!
//! A walk keeps at most one bucket's names (`Cursor`), never a whole
//! directory of the mount.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::error::{Context, Result};
use super::{Store, is_absent, layout, sys};

const HASH_BITS: u32 = 46;

/// One name a walk passes: the directory it is in, its file name there,
/// the store's inode number for it, and the position after it.
#[derive(Debug, Clone, Copy)]
pub struct Walked<'a> {
    pub dir: BorrowedFd<'a>,
    pub file: &'a [u8],
    pub ino: u64,
    pub cookie: u64,
}

/// What a walk keeps between the calls that continue it: the bucket lists
/// last read and the names of the bucket it is in.
#[derive(Debug, Default)]
pub struct Cursor {
    /// `data/`'s `AA` directories, sorted.
    top: Option<Vec<u8>>,
    /// The `BB` directories of `AA`, sorted.
    mid: Option<(u8, Vec<u8>)>,
    /// The sorted names of one bucket and its directory.
    bucket: Option<Bucket>,
    /// Where directories are read into.
    buf: Vec<u8>,
}

#[derive(Debug)]
struct Bucket {
    id: u16,
    dir: OwnedFd,
    names: Vec<(u64, Vec<u8>, u64)>,
}

fn hash(name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h >> (64 - HASH_BITS)
}

fn cookie(bucket: u16, hash: u64) -> u64 {
    (bucket as u64 + 1) << HASH_BITS | hash
}

/// The bucket and hash a walk resumes after (`None`: from the start).
fn resume(from: u64) -> Option<(u16, u64)> {
    (from != 0).then(|| {
        (
            ((from >> HASH_BITS) - 1) as u16,
            from & ((1 << HASH_BITS) - 1),
        )
    })
}

fn hex_byte(name: &[u8]) -> Option<u8> {
    let s = std::str::from_utf8(name).ok()?;
    (s.len() == 2)
        .then(|| u8::from_str_radix(s, 16).ok())
        .flatten()
}

fn two_bytes(name: &[u8]) -> Option<u16> {
    (name.len() == 2).then(|| u16::from_be_bytes([name[0], name[1]]))
}

impl Cursor {
    /// The names of bucket `id` in `dir`, sorted by hash; kept while the
    /// walk stays in it.
    fn bucket(
        &mut self,
        id: u16,
        open: impl FnOnce() -> std::io::Result<OwnedFd>,
        keep: impl Fn(&[u8]) -> bool,
        shown: impl Fn() -> String,
    ) -> Result<Option<&Bucket>> {
        if self.bucket.as_ref().is_none_or(|b| b.id != id) {
            self.bucket = None;
            let dir = match open() {
                Ok(d) => d,
                Err(e) if is_absent(&e) => return Ok(None),
                Err(e) => return Err(e).at(shown),
            };
            // A directory removed once empty (cleanup's `SS` directories)
            // reads as ENOENT: it holds nothing any more.
            let listed = match sys::list_fresh_dir(dir.as_fd(), &mut self.buf) {
                Err(e) if is_absent(&e) => return Ok(None),
                other => other.at(&shown)?,
            };
            let mut names: Vec<(u64, Vec<u8>, u64)> = listed
                .into_iter()
                .filter(|(name, _)| keep(name))
                .map(|(name, ino)| (hash(&name), name, ino))
                .collect();
            names.sort_unstable();
            if let Some(w) = names.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} and {} have one listing position",
                        layout::lossy(&w[0].1),
                        layout::lossy(&w[1].1)
                    ),
                ))
                .at(shown);
            }
            self.bucket = Some(Bucket { id, dir, names });
        }
        Ok(self.bucket.as_ref())
    }
}

/// Passes the names of one bucket after `after` (a hash) to `f`; `true`
/// when `f` said stop.
fn pass(
    bucket: &Bucket,
    after: Option<u64>,
    f: &mut dyn FnMut(Walked) -> Result<bool>,
) -> Result<bool> {
    let start = after.map_or(0, |h| bucket.names.partition_point(|(x, ..)| *x <= h));
    for (h, name, ino) in &bucket.names[start..] {
        let walked = Walked {
            dir: bucket.dir.as_fd(),
            file: name,
            ino: *ino,
            cookie: cookie(bucket.id, *h),
        };
        if f(walked)? {
            return Ok(true);
        }
    }
    Ok(false)
}

impl Store {
    /// Walks the `data/AA/BB/` buckets from position `from`, passing each
    /// file name starting with `prefix` (`key:`, `tag:`) to `f` until it
    /// says stop.
    pub fn walk_data(
        &self,
        cursor: &mut Cursor,
        prefix: &[u8],
        from: u64,
        f: &mut dyn FnMut(Walked) -> Result<bool>,
    ) -> Result<()> {
        let resume = resume(from);
        if cursor.top.is_none() || from == 0 {
            let mut top: Vec<u8> = sys::read_dir(self.data.as_fd())
                .at(|| self.show(""))?
                .iter()
                .filter_map(|n| hex_byte(n))
                .collect();
            top.sort_unstable();
            cursor.top = Some(top);
            cursor.mid = None;
            cursor.bucket = None;
        }
        let top = cursor.top.clone().unwrap_or_default();
        let start_aa = resume.map_or(0, |(b, _)| (b >> 8) as u8);
        for aa in top.into_iter().filter(|&aa| aa >= start_aa) {
            let aa_rel = format!("{aa:02x}");
            if cursor.mid.as_ref().is_none_or(|(a, _)| *a != aa) {
                let mut mid: Vec<u8> = match sys::open_dir(self.data.as_fd(), &aa_rel) {
                    Ok(d) => sys::read_dir(d.as_fd())
                        .at(|| self.show(&aa_rel))?
                        .iter()
                        .filter_map(|n| hex_byte(n))
                        .collect(),
                    Err(e) if is_absent(&e) => Vec::new(),
                    Err(e) => return Err(e).at(|| self.show(&aa_rel)),
                };
                mid.sort_unstable();
                cursor.mid = Some((aa, mid));
            }
            let mid = cursor
                .mid
                .as_ref()
                .map(|(_, m)| m.clone())
                .unwrap_or_default();
            for bb in mid {
                let id = u16::from_be_bytes([aa, bb]);
                let after = match resume {
                    Some((b, _)) if id < b => continue,
                    Some((b, h)) if id == b => Some(h),
                    _ => None,
                };
                let rel = format!("{aa:02x}/{bb:02x}");
                let bucket = cursor.bucket(
                    id,
                    || sys::open_dir(self.data.as_fd(), &rel),
                    |name| name.starts_with(prefix),
                    || self.show(&rel),
                )?;
                if let Some(bucket) = bucket
                    && pass(bucket, after, f)?
                {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Walks the links in tag `tag`'s directory from position `from`,
    /// passing each to `f` until it says stop; `false` when there is no
    /// such tag.
    pub fn walk_tag(
        &self,
        tag: &[u8],
        cursor: &mut Cursor,
        from: u64,
        f: &mut dyn FnMut(Walked) -> Result<bool>,
    ) -> Result<bool> {
        layout::check_tag(tag)?;
        let rel = self.ns.tag_path(tag).path();
        let tag_dir = match sys::open_dir(self.data.as_fd(), &rel) {
            Ok(d) => d,
            Err(e) if is_absent(&e) => return Ok(false),
            Err(e) => return Err(e).at(|| self.show(&rel)),
        };
        let resume = resume(from);
        let mut ss: Vec<(u16, Vec<u8>)> = sys::read_dir(tag_dir.as_fd())
            .at(|| self.show(&rel))?
            .into_iter()
            .filter_map(|n| two_bytes(&n).map(|id| (id, n)))
            .collect();
        ss.sort_unstable();
        for (id, name) in ss {
            let after = match resume {
                Some((b, _)) if id < b => continue,
                Some((b, h)) if id == b => Some(h),
                _ => None,
            };
            let Some(name) = sys::as_str(&name) else {
                continue;
            };
            let shown = || self.show(&format!("{rel}/{name}"));
            let bucket = cursor.bucket(
                id,
                || sys::open_dir(tag_dir.as_fd(), name),
                |link| layout::parse_tag_link(link).is_some(),
                shown,
            )?;
            if let Some(bucket) = bucket
                && pass(bucket, after, f)?
            {
                return Ok(true);
            }
        }
        Ok(true)
    }

    /// What is at `file` in `dir` (a bucket or an `SS` directory a walk
    /// passed), if it is still there and a regular file: two system calls,
    /// nothing opened.
    pub fn meta_in(&self, dir: BorrowedFd, file: &[u8]) -> Result<Option<super::Meta>> {
        let Some(name) = sys::as_str(file) else {
            return Ok(None);
        };
        let (st, btime) = match sys::statx_at(dir, name) {
            Ok(st) => st,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(e).at(|| name.to_string()),
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Ok(None);
        }
        let record = match sys::getxattr_at(dir, name, super::RECORD) {
            Ok(r) => r.and_then(|v| super::Record::decode(&v)),
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(e).at(|| name.to_string()),
        };
        let meta = super::Meta::with_record(&st, record, btime);
        Ok(Some(self.shape(meta, super::format::Source::At(dir, name))))
    }

    /// The version at `file` in `dir` (a bucket or an `SS` directory a walk
    /// passed), if it is still there and a regular file.
    pub fn version_in(&self, dir: BorrowedFd, file: &[u8]) -> Result<Option<super::Version>> {
        let Some(name) = sys::as_str(file) else {
            return Ok(None);
        };
        let file = match sys::open_file(dir, name) {
            Ok(f) => f,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(e).at(|| name.to_string()),
        };
        let meta = self.meta_of(file.as_fd(), || name.to_string())?;
        Ok(meta.regular.then_some(super::Version { file, meta }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_order_by_bucket_then_hash_and_resume_after_themselves() {
        let c = cookie(0x1234, 77);
        assert_eq!(resume(c), Some((0x1234, 77)));
        assert!(cookie(0x1234, (1 << HASH_BITS) - 1) < cookie(0x1235, 0));
        assert_eq!(resume(0), None);
        assert!(cookie(u16::MAX, (1 << HASH_BITS) - 1) < 1 << 63);
        assert!(hash(b"key:61") < 1 << HASH_BITS);
    }
}
