//! Tags and expiry: `user.tags`, `user.expire`, and the mtime (the expiry)
//! set through `touch` and `utimensat`.
//!
//! - Set on a descriptor being written (or on the path of a name its
//!   process is writing), they go to that writer and commit with it.
//! - Set on a committed entry: a new tag set commits a new version (a
//!   retag); an expiry is set in place on the version.
//! - Read back, `user.expire` is the seconds left (0 = never) and
//!   `user.tags` the comma-separated tags of the version the node is.
//! - Modes, owners and other attribute names are fixed: EPERM, EOPNOTSUPP.

use std::time::SystemTime;

use super::Mount;
use super::attr::Entry;
use super::change::Change;
use super::counters::bump;
use super::error::{FsError, FsResult};
use super::handles::Handle;
use super::nodes::Kind;
use crate::store::{Time, layout};

pub const XATTR_TAGS: &[u8] = b"user.tags";
pub const XATTR_EXPIRE: &[u8] = b"user.expire";

/// A time set through `utimensat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    Now,
    At(SystemTime),
}

/// The parts of a SETATTR we act on.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub mtime: Option<SetTime>,
    pub fh: Option<u64>,
}

impl Mount<'_> {
    /// `setattr`: a truncate of a writer's draft, or an expiry (mtime); the
    /// attributes to reply with, and what changed.
    pub fn setattr(&self, pid: u32, id: u64, a: SetAttr) -> FsResult<(Entry, Option<Change>)> {
        let change = self.set_attributes(pid, id, a)?;
        Ok((self.getattr(id)?, change))
    }

    fn set_attributes(&self, pid: u32, id: u64, a: SetAttr) -> FsResult<Option<Change>> {
        let SetAttr {
            mode,
            uid,
            gid,
            size,
            mtime,
            fh,
        } = a;
        let fs = self.fs;
        let node = self.entry_node(id).map_err(|e| match e {
            FsError::IsDir if size.is_none() => FsError::NotPermitted("directories are fixed"),
            e => e,
        })?;
        if mode.is_some_and(|m| m & 0o7777 != 0o644)
            || uid.is_some_and(|u| u != fs.uid)
            || gid.is_some_and(|g| g != fs.gid)
        {
            return Err(FsError::NotPermitted("modes and owners are fixed"));
        }
        if size.is_none() && mtime.is_none() {
            return Ok(None);
        }
        if node.stale_view {
            return Err(FsError::ReadOnly);
        }
        self.writable()?;
        let pending = node.pending;
        let writer = match fh.and_then(|fh| self.handle(fh)) {
            Some(h) if matches!(&*h.lock().unwrap(), Handle::Writer(_)) => Some(h),
            _ => self.writer_of(id, (!pending).then_some(pid)),
        };
        let expiry_of = |t: SetTime, ttl: u64| match t {
            SetTime::Now => Time::after_ttl(ttl),
            SetTime::At(t) => {
                let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
                Time {
                    sec: (d.as_secs() as i64).min(layout::NEVER),
                    nsec: d.subsec_nanos() as i64,
                }
            }
        };
        if let Some(h) = writer {
            let mut h = h.lock().unwrap();
            let Handle::Writer(w) = &mut *h else {
                return Err(FsError::BadHandle);
            };
            if let Some(size) = size {
                w.truncate(self.store(), size)?;
            }
            if let Some(t) = mtime {
                let ttl = w.ttl(fs.opts.default_ttl);
                w.set_expiry(expiry_of(t, ttl));
            }
            return Ok(None);
        }
        if size.is_some() {
            return Err(FsError::NotPermitted(
                "truncate through a descriptor opened for writing",
            ));
        }
        let Some(t) = mtime else { return Ok(None) };
        let target = self.target(&node)?.ok_or(FsError::NotFound)?;
        let ttl = target.meta.ttl();
        let meta = self
            .store()
            .set_expiry(&target.file, expiry_of(t, ttl), None)?;
        self.refresh_node(id, &meta);
        Ok(Some(Change::entry(&node.name, meta.tags().to_vec())))
    }

    /// `getxattr` of `user.tags` or `user.expire`.
    pub fn getxattr(&self, pid: u32, id: u64, name: &[u8]) -> FsResult<Vec<u8>> {
        let node = match self.kind(id)? {
            Kind::Entry(node) => node,
            _ => return Err(FsError::NoAttr),
        };
        if name != XATTR_TAGS && name != XATTR_EXPIRE {
            return Err(FsError::NoAttr);
        }
        let pid = (!node.pending).then_some(pid);
        if let Some(h) = self.writer_of(id, pid).filter(|_| !self.is_fast())
            && let Handle::Writer(w) = &*h.lock().unwrap()
        {
            return Ok(if name == XATTR_TAGS {
                layout::join_tags(w.tags())
            } else {
                w.ttl(self.fs.opts.default_ttl).to_string().into_bytes()
            });
        }
        // The values of the version this node is (what a descriptor opened
        // on it reads), also when a commit has replaced it since.
        if name == XATTR_TAGS {
            return Ok(layout::join_tags(&node.tags));
        }
        let expiry = match self.open_node(id, &node)? {
            Some(v) => v.meta.expiry,
            None => node.expiry,
        };
        Ok(if expiry.is_never() {
            b"0".to_vec()
        } else {
            (expiry.secs_from_now().ceil() as u64)
                .to_string()
                .into_bytes()
        })
    }

    /// `listxattr`: entries have `user.expire` and `user.tags`.
    pub fn listxattr(&self, id: u64) -> FsResult<&'static [u8]> {
        Ok(match self.kind(id)? {
            Kind::Entry(_) => b"user.expire\0user.tags\0",
            _ => b"",
        })
    }

    /// `setxattr` (`value` given) or `removexattr` (`None`).
    pub fn setxattr(
        &self,
        pid: u32,
        id: u64,
        name: &[u8],
        value: Option<&[u8]>,
    ) -> FsResult<Option<Change>> {
        let node = match self.kind(id)? {
            Kind::Entry(node) => node,
            _ => return Err(FsError::UnsupportedAttr),
        };
        enum Set {
            Tags(Vec<Vec<u8>>),
            Ttl(u64),
        }
        let set = match name {
            XATTR_TAGS => Set::Tags(layout::parse_tags(value.unwrap_or_default())?),
            XATTR_EXPIRE => Set::Ttl(match value {
                None => 0,
                Some(v) => parse_ttl(v)?,
            }),
            _ => return Err(FsError::UnsupportedAttr),
        };
        if node.stale_view {
            return Err(FsError::ReadOnly);
        }
        self.writable()?;
        let pid = (!node.pending).then_some(pid);
        if let Some(h) = self.writer_of(id, pid) {
            if let Handle::Writer(w) = &mut *h.lock().unwrap() {
                match set {
                    Set::Tags(tags) => w.set_tags(tags),
                    Set::Ttl(ttl) => w.set_ttl(ttl),
                }
            }
            return Ok(None);
        }
        if node.pending {
            return Err(FsError::NotFound);
        }
        let target = self.target(&node)?.ok_or(FsError::NotFound)?;
        let meta = target.meta.clone();
        match set {
            Set::Ttl(ttl) => {
                let meta =
                    self.store()
                        .set_expiry(&target.file, Time::after_ttl(ttl), Some(ttl))?;
                self.refresh_node(id, &meta);
                Ok(Some(Change::entry(&node.name, meta.tags().to_vec())))
            }
            Set::Tags(tags) => {
                let published = self.store().retag_published(&node.name, &tags)?;
                bump(&self.fs.counters.commits);
                if let Some(old) = published.replaced {
                    self.fs.pin_for_readers(old);
                }
                let mut change =
                    Change::entry(&node.name, meta.tags().iter().cloned().chain(tags.clone()));
                change.tags = published.created;
                Ok(Some(change))
            }
        }
    }
}

/// A `user.expire` value: whole seconds, at most 2^32.
pub(super) fn parse_ttl(value: &[u8]) -> FsResult<u64> {
    let text = std::str::from_utf8(value)
        .map_err(|_| FsError::Invalid("user.expire is a number of seconds"))?;
    let ttl: u64 = text
        .trim()
        .parse()
        .map_err(|_| FsError::Invalid("user.expire is a number of seconds"))?;
    if ttl > layout::NEVER as u64 {
        return Err(FsError::Invalid("user.expire is at most 2^32 seconds"));
    }
    Ok(ttl)
}
