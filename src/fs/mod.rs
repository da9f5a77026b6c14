//! The file system as plain Rust: what each request on a mount means, with
//! no FUSE in it (`crate::fuse` links the kernel's requests to it).
//!
//! One `Fs` serves up to two mounts over one store: the full mount (`FULL`:
//! keys/, tags/, stale/, .stats; reads and writes) and the fast view
//! (`FAST`: keys/ and tags/, read-only). Requests come in as node ids,
//! handles and bytes; answers go out as `Entry`, `Attr`, `Opened` and
//! `Change` — the names in the kernel's caches that the request made
//! wrong, which the caller invalidates before the request's system call
//! returns (`Fs::invalidations`).
//!
//! Invariants (each module states its own):
//! - node ids never name two versions (`nodes`);
//! - timeouts never outlive `--cache-timeout` nor the entry (`attr`);
//! - a reader sees one whole committed version, never a writer's bytes
//!   (`files`, `writer`);
//! - every change says what it made wrong (`change`).

mod attr;
mod change;
mod counters;
mod error;
mod files;
mod handles;
mod listing;
mod lookup;
mod namespace;
pub mod nodes;
mod opens;
mod pool;
mod put;
mod writer;
mod xattr;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub use attr::{Attr, Entry, FileKind};
pub use change::{Change, Inval};
pub use counters::Counters;
pub use error::{FsError, FsResult};
pub use files::Opened;
pub use listing::{DirEntry, DirectoryReplier};
pub use lookup::Lookup;
pub use xattr::{SetAttr, SetTime};

use nodes::{EntryNode, Kind, Nodes};

use crate::store::Store;

/// The full mount: keys/, tags/, stale/, .stats; reads and writes.
pub const FULL: usize = 0;
/// The fast view: keys/ and tags/, read-only.
pub const FAST: usize = 1;

/// The most entry nodes the kernel may hold when `--max-nodes` is not
/// given: about 200 MiB of the daemon's memory at most.
pub const DEFAULT_MAX_NODES: usize = 1 << 20;

/// How the mounts behave, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// TTL of an entry written without `user.expire` (0 = never expires).
    pub default_ttl: u64,
    /// The longest the kernel may cache a name or attributes.
    pub cache_timeout: Duration,
    /// The full mount refuses every change (`-o ro`).
    pub read_only: bool,
    /// The most entry nodes the mounts together let the kernel hold; past
    /// it the coldest names are invalidated so that the kernel forgets them.
    pub max_nodes: usize,
}

/// What one mount keeps: its node table, open handles and read pool.
#[derive(Debug, Default)]
struct MountState {
    fast: bool,
    nodes: Mutex<Nodes>,
    reads: pool::ReadPool,
    handles: Mutex<HashMap<u64, handles::Slot>>,
    /// Which nodes writers and passthrough readers have open.
    opens: Mutex<opens::Opens>,
    /// Read opens may be passed through (the kernel said it can).
    passthrough: std::sync::atomic::AtomicBool,
}

/// State shared by the mounts of one daemon.
pub struct Fs {
    store: Store,
    opts: Options,
    uid: u32,
    gid: u32,
    started: SystemTime,
    pub counters: Counters,
    mounts: Vec<MountState>,
    next_fh: AtomicU64,
    /// Torn versions already logged.
    torn_seen: Mutex<std::collections::HashSet<(u64, u64)>>,
    /// Names whose commit is being published (`files`).
    publishing: files::Publishing,
}

impl std::fmt::Debug for Fs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fs")
            .field("store", &self.store.path())
            .finish()
    }
}

impl Fs {
    /// A file system over `store`; `fast_view` adds the `FAST` mount.
    pub fn new(store: Store, opts: Options, fast_view: bool) -> Arc<Fs> {
        let mut mounts = vec![MountState::default()];
        if fast_view {
            mounts.push(MountState {
                fast: true,
                ..MountState::default()
            });
        }
        Arc::new(Fs {
            store,
            opts,
            // SAFETY: getuid/getgid cannot fail.
            uid: unsafe { libc::getuid() },
            gid: unsafe { libc::getgid() },
            started: SystemTime::now(),
            counters: Counters::default(),
            mounts,
            next_fh: AtomicU64::new(1),
            torn_seen: Mutex::default(),
            publishing: files::Publishing::default(),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// How many mounts this file system serves (1 or 2).
    pub fn mount_count(&self) -> usize {
        self.mounts.len()
    }

    /// Mount `idx` (`FULL` or `FAST`), to send requests to.
    pub fn mount(&self, idx: usize) -> Mount<'_> {
        assert!(idx < self.mounts.len(), "no mount {idx}");
        Mount { fs: self, idx }
    }
}

impl Fs {
    /// How many entry nodes the kernel holds over all mounts.
    pub fn entry_nodes(&self) -> usize {
        self.mounts
            .iter()
            .map(|m| m.nodes.lock().unwrap().entry_count())
            .sum()
    }

    /// Past `max_nodes`: the mount holding the most entry nodes and the
    /// names of its least recently used ones, enough to come a tenth under the bound;
    /// once they are invalidated the kernel forgets their nodes.
    pub fn nodes_to_shed(&self) -> Option<(usize, Change)> {
        let max = self.opts.max_nodes;
        let counts: Vec<usize> = self
            .mounts
            .iter()
            .map(|m| m.nodes.lock().unwrap().entry_count())
            .collect();
        let total: usize = counts.iter().sum();
        if total <= max {
            return None;
        }
        let (idx, &most) = counts.iter().enumerate().max_by_key(|(_, c)| **c)?;
        let victims = self.mounts[idx]
            .nodes
            .lock()
            .unwrap()
            .coldest((total - max * 9 / 10).min(most));
        let change = Change {
            entries: victims
                .into_iter()
                .map(|(name, tags)| (name.into_vec(), tags.to_vec()))
                .collect(),
            tags: Vec::new(),
        };
        (!change.is_empty()).then_some((idx, change))
    }
}

/// One mount of the file system: the requests the kernel sends for it.
#[derive(Debug, Clone, Copy)]
pub struct Mount<'a> {
    fs: &'a Fs,
    idx: usize,
}

impl<'a> Mount<'a> {
    fn state(&self) -> &'a MountState {
        &self.fs.mounts[self.idx]
    }

    /// Whether this is the fast view.
    pub fn is_fast(&self) -> bool {
        self.state().fast
    }

    /// Whether read opens of entries may be passed through to the
    /// version's file: the kernel took passthrough, and can be given
    /// backing files (`FuseFs` says).
    pub fn set_passthrough(&self, on: bool) {
        use std::sync::atomic::Ordering;
        self.state().passthrough.store(on, Ordering::Relaxed);
    }

    fn passthrough(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.state().passthrough.load(Ordering::Relaxed)
    }

    fn store(&self) -> &'a Store {
        &self.fs.store
    }

    fn kind(&self, id: u64) -> FsResult<Kind> {
        let kind = self
            .state()
            .nodes
            .lock()
            .unwrap()
            .get(id)
            .ok_or(FsError::NotFound)?;
        match kind {
            Kind::Stale | Kind::Stats if self.is_fast() => Err(FsError::NotFound),
            kind => Ok(kind),
        }
    }

    fn entry_node(&self, id: u64) -> FsResult<Box<EntryNode>> {
        match self.kind(id)? {
            Kind::Entry(node) => Ok(node),
            _ => Err(FsError::IsDir),
        }
    }

    fn writable(&self) -> FsResult<()> {
        if self.is_fast() || self.fs.opts.read_only {
            return Err(FsError::ReadOnly);
        }
        Ok(())
    }

    /// `access(2)`: writes are refused where nothing can be written.
    pub fn access(&self, id: u64, writes: bool) -> FsResult<()> {
        match self.kind(id)? {
            Kind::Stale | Kind::Stats if writes => Err(FsError::ReadOnly),
            Kind::Entry(node) if writes && node.stale_view => Err(FsError::ReadOnly),
            _ if writes => self.writable(),
            _ => Ok(()),
        }
    }

    /// `mknod(2)`: devices, fifos and sockets are never made here.
    pub fn mknod(&self, parent: u64) -> FsResult<()> {
        Err(match self.kind(parent) {
            Ok(Kind::Stale) => FsError::ReadOnly,
            _ if self.is_fast() => FsError::ReadOnly,
            _ => FsError::NotPermitted("only regular files, through open(O_CREAT)"),
        })
    }

    /// `symlink(2)`: never.
    pub fn symlink(&self) -> FsResult<()> {
        Err(if self.is_fast() {
            FsError::ReadOnly
        } else {
            FsError::NotPermitted("no symlinks")
        })
    }

    /// The tag directory node the kernel holds for `tag`, if any.
    pub fn tag_node(&self, tag: &[u8]) -> Option<u64> {
        self.state().nodes.lock().unwrap().tag_id(tag)
    }

    /// `statfs(2)`: the store's file system, so `df` on the mount tells the truth.
    pub fn statfs(&self) -> FsResult<libc::statvfs> {
        Ok(self.store().statfs()?)
    }
}
