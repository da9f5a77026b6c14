//! What `stat` shows, and how long the kernel may believe it.
//!
//! - An entry's mtime (and atime, ctime) is its expiry, its size the
//!   committed length, its link count tags + 1; owner the mounting user;
//!   mode 0644 (0444 in `stale/`); directories 0755 (`stale/` 0555).
//! - No timeout exceeds `--cache-timeout` nor the time left before the entry
//!   expires, so an expiry needs no event to reach the kernel.

use std::time::{Duration, SystemTime};

use super::Fs;
use super::nodes::{EntryNode, STALE, STATS};
use crate::store::Time;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Directory,
    RegularFile,
}

/// The attributes of one node, as the kernel is told them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub id: u64,
    pub size: u64,
    pub blocks: u64,
    /// atime, mtime, ctime and crtime alike (an entry's expiry).
    pub time: SystemTime,
    pub kind: FileKind,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
}

/// A name resolved to a node: its attributes and how long both may be cached.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub attr: Attr,
    pub ttl: Duration,
}

impl Fs {
    /// How long the kernel may cache the name and attributes of an entry
    /// that expires at `expiry`.
    pub(super) fn ttl(&self, expiry: Time) -> Duration {
        let left = expiry.secs_from_now();
        self.opts
            .cache_timeout
            .min(Duration::from_secs_f64(left.min(1e9)))
    }

    pub(super) fn entry_attr(&self, id: u64, node: &EntryNode) -> Attr {
        Attr {
            id,
            size: node.size,
            blocks: node.blocks,
            time: node.expiry.to_system(),
            kind: FileKind::RegularFile,
            perm: if node.stale_view { 0o444 } else { 0o644 },
            nlink: node.nlink,
            uid: self.uid,
            gid: self.gid,
        }
    }

    pub(super) fn dir_attr(&self, id: u64) -> Attr {
        Attr {
            id,
            size: 0,
            blocks: 0,
            time: self.started,
            kind: FileKind::Directory,
            perm: if id == STALE { 0o555 } else { 0o755 },
            nlink: 2,
            uid: self.uid,
            gid: self.gid,
        }
    }

    /// The attributes sent with a negative entry (node id 0).
    pub fn negative_attr(&self) -> Attr {
        self.dir_attr(0)
    }

    pub(super) fn stats_attr(&self) -> Attr {
        Attr {
            kind: FileKind::RegularFile,
            perm: 0o444,
            nlink: 1,
            ..self.dir_attr(STATS)
        }
    }
}
