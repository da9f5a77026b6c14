//! The FUSE adapter: kernel request → store call → reply.
//!
//! One daemon serves up to two sessions over one store: the full mount
//! (session 0: keys/, tags/, stale/, .stats, reads and writes) and, if asked
//! for, the fast view (session 1: keys/ and tags/, read-only, OPEN and FLUSH
//! answered ENOSYS so that a hit costs the daemon no request at all).
//!
//! Invariants:
//! - node ids never name two versions (see `nodes`);
//! - entry and attribute timeouts never exceed `--cache-timeout` nor the time
//!   left before the entry expires, so expiry needs no event;
//! - every change the daemon makes invalidates the names the kernel may hold
//!   for it on every session before the change's system call returns, except
//!   on the full mount for names in directories the request holds locked,
//!   and when a request holding kernel locks would wait more than
//!   `LOCKED_WAIT` (see `Core::finish_locked`): there OPEN re-checks
//!   liveness, and calls reaching a replaced version get ESTALE, which makes
//!   the kernel look the path up again;
//! - `notify_inval_entry` is never sent for a directory the current request
//!   holds locked, never from a session thread of the full mount for the
//!   full mount, and a request holding kernel locks never waits for it
//!   without a bound.

mod error;
pub mod nodes;
mod writer;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, Notifier, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

pub use error::{FsError, FsResult};
use nodes::{EntryNode, EntryState, KEYS, Kind, Nodes, STALE, STATS, TAGS};
use writer::Writer;

use crate::store::{Meta, Store, Time, Version, layout};

const XATTR_TAGS: &[u8] = b"user.tags";
/// The longest a request holding kernel locks waits for its invalidations
/// (see `Core::finish_locked`).
const LOCKED_WAIT: Duration = Duration::from_millis(50);
const XATTR_EXPIRE: &[u8] = b"user.expire";

/// How the mount behaves, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// TTL of an entry written without `user.expire` (0 = never expires).
    pub default_ttl: u64,
    /// The longest the kernel may cache a name or attributes.
    pub cache_timeout: Duration,
    /// The full mount refuses every change (`-o ro`).
    pub read_only: bool,
    /// The most entry nodes (each holding an open file) the daemon's mounts
    /// together let the kernel hold; past it the oldest names are
    /// invalidated so that the kernel forgets them.
    pub max_nodes: usize,
}

/// What `.stats` shows. The fast view's hits never reach the daemon.
#[derive(Debug, Default)]
pub struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub commits: AtomicU64,
    pub commit_errors: AtomicU64,
    pub invalidations: AtomicU64,
    pub stale_reads: AtomicU64,
    pub errors: AtomicU64,
    pub bytes_written: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

#[derive(Debug)]
enum Handle {
    Writer(Box<Writer>),
    Stats(Vec<u8>),
    Dir(Vec<(Vec<u8>, Item)>),
}

/// One name in a directory listing, resolved when it is handed out.
#[derive(Debug, Clone)]
enum Item {
    Fixed(u64),
    Tag,
    Entry,
    Tagged(Arc<[u8]>),
    Stale,
}

#[derive(Debug, Default)]
struct Session {
    fast: bool,
    nodes: Mutex<Nodes>,
    handles: Mutex<HashMap<u64, Arc<Mutex<Handle>>>>,
    notifier: OnceLock<Notifier>,
}

/// Names the kernel may have cached that a change made wrong.
#[derive(Debug, Default)]
struct Change {
    /// An entry's name and every tag it carried before or after.
    entries: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
    /// `tags/<t>` names that appeared or vanished.
    tags: Vec<Vec<u8>>,
}

impl Change {
    fn entry(name: &[u8], tags: impl IntoIterator<Item = Vec<u8>>) -> Change {
        let mut tags: Vec<Vec<u8>> = tags.into_iter().collect();
        tags.sort();
        tags.dedup();
        Change {
            entries: vec![(name.to_vec(), tags)],
            tags: Vec::new(),
        }
    }
}

type Job = (Vec<(usize, u64, Vec<u8>)>, Option<Box<dyn FnOnce() + Send>>);

/// State shared by the sessions of one daemon.
pub struct Core {
    store: Store,
    opts: Options,
    uid: u32,
    gid: u32,
    started: SystemTime,
    pub counters: Counters,
    sessions: Vec<Session>,
    next_fh: AtomicU64,
    jobs: Mutex<mpsc::Sender<Job>>,
    /// A round of invalidations to shed nodes is on its way.
    shedding: AtomicBool,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("store", &self.store.path())
            .finish()
    }
}

impl Core {
    /// A daemon over `store`; `fast_view` adds session 1.
    pub fn new(store: Store, opts: Options, fast_view: bool) -> Arc<Core> {
        let (tx, rx) = mpsc::channel::<Job>();
        let mut sessions = vec![Session::default()];
        if fast_view {
            sessions.push(Session {
                fast: true,
                ..Session::default()
            });
        }
        let core = Arc::new(Core {
            store,
            opts,
            // SAFETY: getuid/getgid cannot fail.
            uid: unsafe { libc::getuid() },
            gid: unsafe { libc::getgid() },
            started: SystemTime::now(),
            counters: Counters::default(),
            sessions,
            next_fh: AtomicU64::new(1),
            jobs: Mutex::new(tx),
            shedding: AtomicBool::new(false),
        });
        // The notifier thread: invalidations that must not run on a session
        // thread of the full mount, and the replies that wait for them.
        let weak = Arc::downgrade(&core);
        std::thread::Builder::new()
            .name("notifier".into())
            .spawn(move || {
                for (invals, reply) in rx {
                    if let Some(core) = weak.upgrade() {
                        core.send_invals(&invals);
                    }
                    if let Some(reply) = reply {
                        reply();
                    }
                }
            })
            .expect("spawning the notifier thread");
        core
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The `Filesystem` of session `idx` (0: full mount, 1: fast view).
    pub fn filesystem(self: &Arc<Self>, idx: usize) -> TagCacheFs {
        TagCacheFs {
            core: self.clone(),
            idx,
        }
    }

    pub fn set_notifier(&self, idx: usize, notifier: Notifier) {
        let _ = self.sessions[idx].notifier.set(notifier);
    }

    /// `.stats` as JSON.
    pub fn stats_json(&self) -> String {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (hits, misses) = (get(&c.hits), get(&c.misses));
        let ratio = if hits + misses > 0 {
            hits as f64 / (hits + misses) as f64
        } else {
            0.0
        };
        let nodes: usize = self
            .sessions
            .iter()
            .map(|s| s.nodes.lock().unwrap().len())
            .sum();
        let value = serde_json::json!({
            "store": self.store.path(),
            "hits": hits,
            "misses": misses,
            "hit_ratio": ratio,
            "commits": get(&c.commits),
            "commit_errors": get(&c.commit_errors),
            "invalidations": get(&c.invalidations),
            "stale_reads": get(&c.stale_reads),
            "errors": get(&c.errors),
            "bytes_written": get(&c.bytes_written),
            "kernel_nodes": nodes,
        });
        format!("{value:#}\n")
    }

    fn invals_for(&self, change: &Change, idx: usize) -> Vec<(usize, u64, Vec<u8>)> {
        let session = &self.sessions[idx];
        let nodes = session.nodes.lock().unwrap();
        let mut out = Vec::new();
        for (name, tags) in &change.entries {
            out.push((idx, KEYS, name.clone()));
            if !session.fast {
                out.push((idx, STALE, name.clone()));
            }
            for tag in tags {
                if let Some(id) = nodes.tag_id(tag) {
                    out.push((idx, id, name.clone()));
                }
            }
        }
        for tag in &change.tags {
            out.push((idx, TAGS, tag.clone()));
        }
        out
    }

    fn send_invals(&self, invals: &[(usize, u64, Vec<u8>)]) {
        for (idx, parent, name) in invals {
            if let Some(n) = self.sessions[*idx].notifier.get()
                && let Err(e) = n.inval_entry(INodeNo(*parent), OsStr::from_bytes(name))
            {
                log::debug!("invalidating {}: {e}", layout::lossy(name));
            }
        }
    }

    fn queue(&self, invals: Vec<(usize, u64, Vec<u8>)>, reply: Option<Box<dyn FnOnce() + Send>>) {
        let job = (invals, reply);
        if let Err(mpsc::SendError((invals, reply))) = self.jobs.lock().unwrap().send(job) {
            self.send_invals(&invals);
            if let Some(reply) = reply {
                reply();
            }
        }
    }

    /// For a request that holds no lock at all (FLUSH, RELEASE): invalidate
    /// on every session, then reply (both from the notifier thread).
    fn finish(&self, change: &Change, reply: impl FnOnce() + Send + 'static) {
        let invals = (0..self.sessions.len())
            .flat_map(|i| self.invals_for(change, i))
            .collect();
        self.queue(invals, Some(Box::new(reply)));
    }

    /// For a request that holds kernel locks while it waits for its reply:
    /// the directories in `locked` (its parents) and the inode it works on.
    ///
    /// The fast view is invalidated now (no request of ours holds its
    /// locks). On the full mount, names in `locked` directories can only be
    /// invalidated after the reply. The others are invalidated before it,
    /// from a thread of their own, so that the next call sees the change
    /// (a stat right after `ln` shows the new link count) — but only for
    /// `LOCKED_WAIT`: an invalidation needs its directory's lock, whose
    /// holder may be waiting for the inode this request holds (`rm keys/x`
    /// during `ln keys/x tags/t/x`, `touch keys/x` or `setfattr keys/x`);
    /// then the reply goes first, which ends the wait. Waiting without that
    /// bound, or on the notifier thread behind other jobs, deadlocks.
    fn finish_locked(
        self: &Arc<Self>,
        change: &Change,
        locked: &[u64],
        reply: impl FnOnce() + Send + 'static,
    ) {
        for idx in 1..self.sessions.len() {
            self.send_invals(&self.invals_for(change, idx));
        }
        let (late, early): (Vec<_>, Vec<_>) = self
            .invals_for(change, 0)
            .into_iter()
            .partition(|(_, parent, _)| locked.contains(parent));
        if early.is_empty() {
            reply();
            self.queue(late, None);
            return;
        }
        let core = self.clone();
        let spawned = std::thread::Builder::new()
            .name("inval-wait".into())
            .spawn(move || {
                let (done_tx, done_rx) = mpsc::channel();
                let invalidator = core.clone();
                let spawned = std::thread::Builder::new()
                    .name("inval".into())
                    .spawn(move || {
                        invalidator.send_invals(&early);
                        let _ = done_tx.send(());
                    });
                if spawned.is_ok() {
                    let _ = done_rx.recv_timeout(LOCKED_WAIT);
                }
                reply();
                core.queue(late, None);
            });
        if let Err(e) = spawned {
            // The reply went down with the closure: fuser answers EIO.
            log::error!("no thread to invalidate from: {e}");
        }
    }

    /// Keeps the entry nodes of all sessions (and so the daemon's open
    /// files) within `max_nodes`: past it, the oldest names of the session
    /// holding the most go to the notifier to be invalidated, the kernel
    /// forgets their nodes, and once that round is out the count is
    /// checked again.
    fn shed_nodes(self: &Arc<Self>) {
        let max = self.opts.max_nodes;
        let counts: Vec<usize> = self
            .sessions
            .iter()
            .map(|s| s.nodes.lock().unwrap().entry_count())
            .collect();
        let total: usize = counts.iter().sum();
        if total <= max || self.shedding.swap(true, Ordering::SeqCst) {
            return;
        }
        let (idx, &most) = counts
            .iter()
            .enumerate()
            .max_by_key(|(_, c)| **c)
            .expect("at least one session");
        let victims = self.sessions[idx]
            .nodes
            .lock()
            .unwrap()
            .oldest_entries((total - max * 9 / 10).min(most));
        let mut change = Change::default();
        for node in victims {
            let state = node.state();
            if !state.pending {
                change
                    .entries
                    .push((state.name, state.meta.tags().to_vec()));
            }
        }
        if change.entries.is_empty() {
            self.shedding.store(false, Ordering::SeqCst);
            return;
        }
        log::debug!("asking the kernel to forget {} names", change.entries.len());
        let invals = self.invals_for(&change, idx);
        let core = self.clone();
        // Counted again off the notifier thread, whose queue also holds
        // replies that must not wait.
        let again = move || {
            let _ = std::thread::Builder::new()
                .name("shed".into())
                .spawn(move || {
                    // Give the kernel's forgets a moment, and longer when open
                    // files keep the kernel from forgetting.
                    std::thread::sleep(Duration::from_millis(5));
                    let now: usize = core
                        .sessions
                        .iter()
                        .map(|s| s.nodes.lock().unwrap().entry_count())
                        .sum();
                    if now >= total {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    core.shedding.store(false, Ordering::SeqCst);
                    core.shed_nodes();
                });
        };
        self.queue(invals, Some(Box::new(again)));
    }

    fn ttl(&self, meta: &Meta) -> Duration {
        let left = meta.expiry.secs_from_now();
        self.opts
            .cache_timeout
            .min(Duration::from_secs_f64(left.min(1e9)))
    }

    fn entry_attr(&self, id: u64, state: &EntryState, stale_view: bool) -> FileAttr {
        let m = &state.meta;
        let expiry = m.expiry.to_system();
        FileAttr {
            ino: INodeNo(id),
            size: m.size,
            blocks: m.blocks,
            atime: expiry,
            mtime: expiry,
            ctime: expiry,
            crtime: expiry,
            kind: FileType::RegularFile,
            perm: if stale_view { 0o444 } else { 0o644 },
            nlink: m.nlink as u32,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn dir_attr(&self, id: u64) -> FileAttr {
        FileAttr {
            ino: INodeNo(id),
            size: 0,
            blocks: 0,
            atime: self.started,
            mtime: self.started,
            ctime: self.started,
            crtime: self.started,
            kind: FileType::Directory,
            perm: if id == STALE { 0o555 } else { 0o755 },
            nlink: 2,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn stats_attr(&self) -> FileAttr {
        FileAttr {
            kind: FileType::RegularFile,
            perm: 0o444,
            nlink: 1,
            ..self.dir_attr(STATS)
        }
    }
}

/// The `fuser::Filesystem` of one session.
#[derive(Debug)]
pub struct TagCacheFs {
    core: Arc<Core>,
    idx: usize,
}

/// The parts of a SETATTR we act on.
struct SetAttr {
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    mtime: Option<TimeOrNow>,
    fh: Option<FileHandle>,
}

/// What a lookup resolved to.
enum Found {
    Node(u64, FileAttr, Duration),
    Negative,
    /// Absent now, and it may appear with no event the kernel would hear of.
    Uncached,
}

impl TagCacheFs {
    fn session(&self) -> &Session {
        &self.core.sessions[self.idx]
    }

    fn fast(&self) -> bool {
        self.session().fast
    }

    fn store(&self) -> &Store {
        &self.core.store
    }

    fn kind(&self, id: INodeNo) -> FsResult<Kind> {
        let kind = self
            .session()
            .nodes
            .lock()
            .unwrap()
            .get(id.0)
            .ok_or(FsError::NotFound)?;
        match kind {
            Kind::Stale | Kind::Stats if self.fast() => Err(FsError::NotFound),
            kind => Ok(kind),
        }
    }

    fn entry_node(&self, id: INodeNo) -> FsResult<Arc<EntryNode>> {
        match self.kind(id)? {
            Kind::Entry(node) => Ok(node),
            _ => Err(FsError::IsDir),
        }
    }

    fn writable(&self) -> FsResult<()> {
        if self.fast() || self.core.opts.read_only {
            return Err(FsError::ReadOnly);
        }
        Ok(())
    }

    fn fail(&self, op: &str, e: &FsError) -> fuser::Errno {
        if e.is_fault() {
            log::error!("{op}: {e}");
            bump(&self.core.counters.errors);
        } else {
            log::debug!("{op}: {e}");
        }
        e.errno()
    }

    fn new_handle(&self, h: Handle) -> u64 {
        let fh = self.core.next_fh.fetch_add(1, Ordering::Relaxed);
        self.session()
            .handles
            .lock()
            .unwrap()
            .insert(fh, Arc::new(Mutex::new(h)));
        fh
    }

    fn handle(&self, fh: u64) -> Option<Arc<Mutex<Handle>>> {
        self.session().handles.lock().unwrap().get(&fh).cloned()
    }

    /// The writer of node `id` opened by process `pid`, if any: requests
    /// that carry no handle (open-time truncate, xattrs) go to it.
    /// With several, the one opened last: an open-time truncate follows its
    /// OPEN at once, and an xattr call cannot say which descriptor it came
    /// through.
    fn writer_of(&self, id: u64, pid: Option<u32>) -> Option<Arc<Mutex<Handle>>> {
        let handles = self.session().handles.lock().unwrap();
        handles
            .iter()
            .filter(|(_, h)| {
                matches!(&*h.lock().unwrap(), Handle::Writer(w)
                    if w.node == id && pid.is_none_or(|p| p == w.pid))
            })
            .max_by_key(|(fh, _)| **fh)
            .map(|(_, h)| h.clone())
    }

    /// Registers `version` as a node (one more kernel reference).
    fn node_for(&self, version: Version, name: &[u8], stale_view: bool) -> Found {
        let mut nodes = self.session().nodes.lock().unwrap();
        let (id, node) = nodes.entry(version, name, stale_view, false);
        drop(nodes);
        self.core.shed_nodes();
        let state = node.state.lock().unwrap();
        let ttl = if stale_view {
            self.core.opts.cache_timeout
        } else {
            self.core.ttl(&state.meta)
        };
        Found::Node(id, self.core.entry_attr(id, &state, stale_view), ttl)
    }

    /// The committed version an operation reaching `node` acts on: the
    /// node's own while it is live; the name's current live version when a
    /// commit replaced the node's (the kernel still had the old name cached:
    /// a path call racing the commit, or a descriptor opened before it);
    /// `None` when the entry is gone.
    fn target(&self, node: &EntryNode) -> FsResult<Option<Version>> {
        let meta = self.store().refresh(&node.file)?;
        node.state.lock().unwrap().meta = meta.clone();
        if meta.is_live() {
            let file = node.file.try_clone().map_err(|e| crate::store::Error::Io {
                path: format!("entry {}", layout::lossy(&node.name())),
                source: e,
            })?;
            return Ok(Some(Version { file, meta }));
        }
        Ok(self.store().open_live(&node.name())?)
    }

    fn resolve(&self, parent: &Kind, name: &[u8]) -> FsResult<Found> {
        let store = self.store();
        match parent {
            Kind::Root => {
                let id = match name {
                    b"keys" => KEYS,
                    b"tags" => TAGS,
                    b"stale" if !self.fast() => STALE,
                    b".stats" if !self.fast() => STATS,
                    _ => return Ok(Found::Negative),
                };
                let attr = if id == STATS {
                    self.core.stats_attr()
                } else {
                    self.core.dir_attr(id)
                };
                let ttl = if id == STATS {
                    Duration::ZERO
                } else {
                    self.core.opts.cache_timeout
                };
                Ok(Found::Node(id, attr, ttl))
            }
            Kind::Keys | Kind::Tag(_) => {
                let version = store.open_live(name)?;
                let version = match (parent, version) {
                    (Kind::Tag(t), Some(v)) if !v.meta.tags().iter().any(|x| **x == **t) => None,
                    (_, v) => v,
                };
                match version {
                    Some(v) => Ok(self.node_for(v, name, false)),
                    None => {
                        bump(&self.core.counters.misses);
                        Ok(Found::Negative)
                    }
                }
            }
            Kind::Tags => {
                if !store.tag_exists(name)? {
                    return Ok(Found::Negative);
                }
                let id = self.session().nodes.lock().unwrap().tag(name);
                Ok(Found::Node(
                    id,
                    self.core.dir_attr(id),
                    self.core.opts.cache_timeout,
                ))
            }
            // A name appears in stale/ when its entry expires, or when an
            // rmdir invalidates it without the daemon learning its name: a
            // miss here is not cached.
            Kind::Stale => match store.open_version(name)?.filter(|v| !v.meta.is_live()) {
                Some(v) => Ok(self.node_for(v, name, true)),
                None => Ok(Found::Uncached),
            },
            Kind::Stats | Kind::Entry(_) => Err(FsError::Invalid("not a directory")),
        }
    }

    fn reply_found(&self, found: Found, reply: ReplyEntry) {
        match found {
            Found::Node(_, attr, ttl) => reply.entry(&ttl, &attr, Generation(0)),
            Found::Negative => {
                let mut attr = self.core.dir_attr(0);
                attr.ino = INodeNo(0);
                reply.entry(&self.core.opts.cache_timeout, &attr, Generation(0));
            }
            Found::Uncached => reply.error(FsError::NotFound.errno()),
        }
    }

    fn getattr_inner(&self, id: INodeNo) -> FsResult<(FileAttr, Duration)> {
        let timeout = self.core.opts.cache_timeout;
        Ok(match self.kind(id)? {
            Kind::Root | Kind::Keys | Kind::Tags | Kind::Stale | Kind::Tag(_) => {
                (self.core.dir_attr(id.0), timeout)
            }
            Kind::Stats => (self.core.stats_attr(), Duration::ZERO),
            Kind::Entry(node) => {
                let mut state = node.state.lock().unwrap();
                // One fstat; a draft still being written keeps what it
                // was created with until its commit.
                if !state.pending || state.meta.record.is_some() {
                    let _ = self.store().restat(&node.file, &mut state.meta);
                }
                let ttl = if state.pending {
                    Duration::ZERO
                } else {
                    self.core.ttl(&state.meta)
                };
                (self.core.entry_attr(id.0, &state, node.stale_view), ttl)
            }
        })
    }

    /// Commits a writer and says what the kernel must forget.
    fn commit(&self, w: &mut Writer) -> FsResult<Change> {
        let before: Vec<Vec<u8>> = w.tags().to_vec();
        let result = w.commit(self.store(), self.core.opts.default_ttl);
        let version = match result {
            Ok(v) => v,
            Err(e) => {
                bump(&self.core.counters.commit_errors);
                return Err(e.into());
            }
        };
        bump(&self.core.counters.commits);
        if let Some(Kind::Entry(node)) = self.session().nodes.lock().unwrap().get(w.node)
            && node.ino == version.meta.ino
        {
            let mut state = node.state.lock().unwrap();
            state.pending = false;
            state.meta = version.meta.clone();
        }
        let after = version.meta.tags().to_vec();
        let mut change = Change::entry(&w.name, before.into_iter().chain(after.iter().cloned()));
        change.tags = after;
        Ok(change)
    }

    fn open_inner(
        &self,
        req: &Request,
        id: INodeNo,
        flags: OpenFlags,
    ) -> FsResult<(u64, FopenFlags)> {
        let node = match self.kind(id)? {
            Kind::Stats if flags.acc_mode() != OpenAccMode::O_RDONLY => {
                return Err(FsError::ReadOnly);
            }
            Kind::Stats => {
                let fh = self.new_handle(Handle::Stats(self.core.stats_json().into_bytes()));
                return Ok((fh, FopenFlags::FOPEN_DIRECT_IO));
            }
            Kind::Entry(node) => node,
            _ => return Err(FsError::IsDir),
        };
        if flags.acc_mode() == OpenAccMode::O_RDONLY {
            // The hit path: no copy of the node's state, one fstat.
            let (pending, live) = {
                let mut state = node.state.lock().unwrap();
                let live = !state.pending && !node.stale_view && {
                    self.store().restat(&node.file, &mut state.meta)?;
                    state.meta.is_live()
                };
                (state.pending, live)
            };
            if pending {
                return Ok((0, FopenFlags::FOPEN_DIRECT_IO));
            }
            if node.stale_view {
                bump(&self.core.counters.stale_reads);
                return Ok((0, FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_NOFLUSH));
            }
            // A version replaced by a commit this open raced with is still
            // served (whole: versions never change); an invalidated one is
            // gone. Direct I/O: a writer's direct writes on this node raise
            // the kernel's idea of its size, and page-cache reads within
            // that size would return zeros past the version's end; direct
            // reads return exactly the version's bytes.
            if live || self.target(&node)?.is_some() {
                bump(&self.core.counters.hits);
                return Ok((0, FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_NOFLUSH));
            }
            bump(&self.core.counters.misses);
            return Err(FsError::NotFound);
        }
        if node.stale_view {
            return Err(FsError::ReadOnly);
        }
        self.writable()?;
        let state = node.state();
        // The tag directories the current version is linked in are held
        // from now on: a commit keeping its tags links into those very
        // directories, so an rmdir in between is never undone.
        let current = match self.store().open_live(&state.name)? {
            Some(v) => self.store().hold_tag_dirs(&v)?.map(|held| (v, held)),
            None => None,
        };
        let append = flags.0 & libc::O_APPEND != 0;
        let w = Writer::open(id.0, &state.name, req.pid(), append, current);
        Ok((
            self.new_handle(Handle::Writer(Box::new(w))),
            FopenFlags::FOPEN_DIRECT_IO,
        ))
    }

    fn create_inner(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &[u8],
        flags: i32,
    ) -> FsResult<(FileAttr, u64)> {
        match self.kind(parent)? {
            Kind::Keys => {}
            Kind::Stale => return Err(FsError::ReadOnly),
            _ => return Err(FsError::NotPermitted("files are created in keys/ only")),
        }
        self.writable()?;
        layout::check_name(name)?;
        let store = self.store();
        let lock = if flags & libc::O_EXCL != 0 {
            if store.open_live(name)?.is_some() {
                return Err(FsError::Exists);
            }
            Some(store.try_lock(name)?.ok_or(FsError::Exists)?)
        } else {
            None
        };
        let draft = store.new_draft()?;
        let file = draft
            .file()
            .try_clone()
            .map_err(|e| crate::store::Error::Io {
                path: "a new draft".into(),
                source: e,
            })?;
        let meta = store.refresh(&file)?;
        let (id, node) =
            self.session()
                .nodes
                .lock()
                .unwrap()
                .entry(Version { file, meta }, name, false, true);
        let append = flags & libc::O_APPEND != 0;
        let w = Writer::created(id, name, req.pid(), append, draft, lock);
        let fh = self.new_handle(Handle::Writer(Box::new(w)));
        Ok((self.core.entry_attr(id, &node.state(), false), fh))
    }

    fn setattr_inner(&self, req: &Request, id: INodeNo, a: SetAttr) -> FsResult<Option<Change>> {
        let SetAttr {
            mode,
            uid,
            gid,
            size,
            mtime,
            fh,
        } = a;
        let node = self.entry_node(id).map_err(|e| match e {
            FsError::IsDir if size.is_none() => FsError::NotPermitted("directories are fixed"),
            e => e,
        })?;
        if mode.is_some_and(|m| m & 0o7777 != 0o644)
            || uid.is_some_and(|u| u != self.core.uid)
            || gid.is_some_and(|g| g != self.core.gid)
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
        let pending = node.pending();
        let writer = match fh.and_then(|fh| self.handle(fh.0)) {
            Some(h) if matches!(&*h.lock().unwrap(), Handle::Writer(_)) => Some(h),
            _ => self.writer_of(id.0, (!pending).then(|| req.pid())),
        };
        let expiry_of = |t: TimeOrNow, ttl: u64| match t {
            TimeOrNow::Now => Time::after_ttl(ttl),
            TimeOrNow::SpecificTime(t) => {
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
                let ttl = w.ttl(self.core.opts.default_ttl);
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
        let state = node.state();
        let target = self.target(&node)?.ok_or(FsError::NotFound)?;
        let ttl = target.meta.ttl();
        let meta = self
            .store()
            .set_expiry(&target.file, expiry_of(t, ttl), None)?;
        if meta.ino == node.ino {
            node.state.lock().unwrap().meta = meta.clone();
        }
        Ok(Some(Change::entry(&state.name, meta.tags().to_vec())))
    }

    fn xattr_get(&self, req: &Request, id: INodeNo, name: &[u8]) -> FsResult<Vec<u8>> {
        let node = match self.kind(id)? {
            Kind::Entry(node) => node,
            _ => return Err(FsError::NoAttr),
        };
        if name != XATTR_TAGS && name != XATTR_EXPIRE {
            return Err(FsError::NoAttr);
        }
        let pid = (!node.pending()).then(|| req.pid());
        if let Some(h) = self.writer_of(id.0, pid).filter(|_| !self.fast())
            && let Handle::Writer(w) = &*h.lock().unwrap()
        {
            return Ok(if name == XATTR_TAGS {
                layout::join_tags(w.tags())
            } else {
                w.ttl(self.core.opts.default_ttl).to_string().into_bytes()
            });
        }
        // The values of the version this node is (what a descriptor opened
        // on it reads), also when a commit has replaced it since.
        let meta = self.store().refresh(&node.file)?;
        Ok(if name == XATTR_TAGS {
            layout::join_tags(meta.tags())
        } else if meta.expiry.is_never() {
            b"0".to_vec()
        } else {
            (meta.expiry.secs_from_now().ceil() as u64)
                .to_string()
                .into_bytes()
        })
    }

    fn xattr_set(
        &self,
        req: &Request,
        id: INodeNo,
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
        let state = node.state();
        let pid = (!state.pending).then(|| req.pid());
        if let Some(h) = self.writer_of(id.0, pid) {
            if let Handle::Writer(w) = &mut *h.lock().unwrap() {
                match set {
                    Set::Tags(tags) => w.set_tags(tags),
                    Set::Ttl(ttl) => w.set_ttl(ttl),
                }
            }
            return Ok(None);
        }
        if state.pending {
            return Err(FsError::NotFound);
        }
        let target = self.target(&node)?.ok_or(FsError::NotFound)?;
        let meta = target.meta.clone();
        match set {
            Set::Ttl(ttl) => {
                let meta =
                    self.store()
                        .set_expiry(&target.file, Time::after_ttl(ttl), Some(ttl))?;
                if meta.ino == node.ino {
                    node.state.lock().unwrap().meta = meta.clone();
                }
                Ok(Some(Change::entry(&state.name, meta.tags().to_vec())))
            }
            Set::Tags(tags) => {
                let v = self.store().retag(&state.name, &tags)?;
                bump(&self.core.counters.commits);
                let mut change =
                    Change::entry(&state.name, meta.tags().iter().cloned().chain(tags.clone()));
                change.tags = v.meta.tags().to_vec();
                Ok(Some(change))
            }
        }
    }

    fn unlink_inner(&self, parent: INodeNo, name: &[u8]) -> FsResult<Change> {
        let parent = self.kind(parent)?;
        match &parent {
            Kind::Keys | Kind::Tag(_) => self.writable()?,
            Kind::Stale => return Err(FsError::ReadOnly),
            Kind::Root | Kind::Tags => return Err(FsError::NotPermitted("fixed layout")),
            _ => return Err(FsError::NotFound),
        }
        let version = self.store().open_live(name)?.ok_or(FsError::NotFound)?;
        if let Kind::Tag(t) = &parent
            && !version.meta.tags().iter().any(|x| **x == **t)
        {
            return Err(FsError::NotFound);
        }
        if !self.store().invalidate_entry(name)? {
            return Err(FsError::NotFound);
        }
        bump(&self.core.counters.invalidations);
        Ok(Change::entry(name, version.meta.tags().to_vec()))
    }

    fn rmdir_inner(&self, parent: INodeNo, name: &[u8]) -> FsResult<Change> {
        match self.kind(parent)? {
            Kind::Tags => self.writable()?,
            Kind::Keys | Kind::Tag(_) | Kind::Stale => {
                return Err(FsError::Invalid("not a directory"));
            }
            _ => return Err(FsError::NotPermitted("fixed layout")),
        }
        if !self.store().invalidate_tag(name)? {
            return Err(FsError::NotFound);
        }
        bump(&self.core.counters.invalidations);
        // Only names of nodes the kernel holds can be cached positively.
        let mut change = Change {
            tags: vec![name.to_vec()],
            ..Change::default()
        };
        for session in &self.core.sessions {
            for node in session.nodes.lock().unwrap().entries_tagged(name) {
                let state = node.state();
                change
                    .entries
                    .push((state.name, state.meta.tags().to_vec()));
            }
        }
        Ok(change)
    }

    fn mkdir_inner(&self, parent: INodeNo, name: &[u8]) -> FsResult<(FileAttr, Change)> {
        match self.kind(parent)? {
            Kind::Tags => self.writable()?,
            Kind::Stale => return Err(FsError::ReadOnly),
            _ => return Err(FsError::NotPermitted("directories are made in tags/ only")),
        }
        if !self.store().create_tag(name)? {
            return Err(FsError::Exists);
        }
        let id = self.session().nodes.lock().unwrap().tag(name);
        let change = Change {
            tags: vec![name.to_vec()],
            ..Change::default()
        };
        Ok((self.core.dir_attr(id), change))
    }

    fn link_inner(
        &self,
        id: INodeNo,
        newparent: INodeNo,
        newname: &[u8],
    ) -> FsResult<(Found, Change)> {
        let node = self.entry_node(id)?;
        let tag = match self.kind(newparent)? {
            Kind::Tag(t) => t,
            Kind::Stale => return Err(FsError::ReadOnly),
            _ => {
                return Err(FsError::NotPermitted(
                    "an entry is linked into tags/<tag>/ only",
                ));
            }
        };
        self.writable()?;
        if node.stale_view {
            return Err(FsError::ReadOnly);
        }
        let name = node.name();
        if name != newname {
            return Err(FsError::Invalid("the link must keep the entry's name"));
        }
        let current = self.store().open_live(&name)?.ok_or(FsError::NotFound)?;
        let old_tags = current.meta.tags().to_vec();
        if old_tags.iter().any(|t| **t == *tag) {
            return Err(FsError::Exists);
        }
        if !self.store().tag_exists(&tag)? {
            return Err(FsError::NotFound);
        }
        let mut tags = old_tags.clone();
        tags.push(tag.to_vec());
        tags.sort();
        let v = self.store().retag(&name, &tags)?;
        bump(&self.core.counters.commits);
        let change = Change::entry(&name, tags);
        Ok((self.node_for(v, &name, false), change))
    }

    fn rename_inner(
        &self,
        parent: INodeNo,
        name: &[u8],
        newparent: INodeNo,
        newname: &[u8],
        flags: RenameFlags,
    ) -> FsResult<Change> {
        let (from, to) = (self.kind(parent)?, self.kind(newparent)?);
        match (&from, &to) {
            (Kind::Stale, _) | (_, Kind::Stale) => return Err(FsError::ReadOnly),
            (Kind::Keys, Kind::Keys) => {}
            (Kind::Tag(a), Kind::Tag(b)) if a == b => {}
            (Kind::Keys | Kind::Tag(_), Kind::Keys | Kind::Tag(_)) => {
                return Err(FsError::CrossDir);
            }
            _ => {
                return Err(FsError::NotPermitted(
                    "tags and fixed directories are not renamed",
                ));
            }
        }
        self.writable()?;
        if flags.bits() & libc::RENAME_EXCHANGE != 0 {
            return Err(FsError::Invalid("RENAME_EXCHANGE"));
        }
        let store = self.store();
        let current = store.open_live(name)?.ok_or(FsError::NotFound)?;
        if let Kind::Tag(t) = &from
            && !current.meta.tags().iter().any(|x| **x == **t)
        {
            return Err(FsError::NotFound);
        }
        let replaced = store.open_live(newname)?;
        if flags.bits() & libc::RENAME_NOREPLACE != 0 && replaced.is_some() {
            return Err(FsError::Exists);
        }
        if name == newname {
            return Ok(Change::default());
        }
        let v = store.rename(name, newname)?;
        for session in &self.core.sessions {
            for node in session.nodes.lock().unwrap().entries_of_ino(v.meta.ino) {
                let mut state = node.state.lock().unwrap();
                state.name = newname.to_vec();
                state.meta = v.meta.clone();
            }
        }
        let mut change = Change::entry(name, v.meta.tags().to_vec());
        let replaced_tags = replaced.map(|r| r.meta.tags().to_vec()).unwrap_or_default();
        change.entries.push((
            newname.to_vec(),
            [v.meta.tags().to_vec(), replaced_tags].concat(),
        ));
        Ok(change)
    }

    fn list(&self, id: INodeNo) -> FsResult<Vec<(Vec<u8>, Item)>> {
        let store = self.store();
        Ok(match self.kind(id)? {
            Kind::Root => {
                let mut items = vec![
                    (b"keys".to_vec(), Item::Fixed(KEYS)),
                    (b"tags".to_vec(), Item::Fixed(TAGS)),
                ];
                if !self.fast() {
                    items.push((b"stale".to_vec(), Item::Fixed(STALE)));
                    items.push((b".stats".to_vec(), Item::Fixed(STATS)));
                }
                items
            }
            Kind::Keys => store
                .key_names()?
                .into_iter()
                .map(|n| (n, Item::Entry))
                .collect(),
            Kind::Stale => store
                .key_names()?
                .into_iter()
                .map(|n| (n, Item::Stale))
                .collect(),
            Kind::Tags => store
                .tag_names()?
                .into_iter()
                .map(|n| (n, Item::Tag))
                .collect(),
            Kind::Tag(t) => {
                let mut names = Vec::new();
                store.for_each_tagged(&t, |v| {
                    if let Some(r) = v.meta.record {
                        names.push((r.name, Item::Tagged(t.clone())));
                    }
                })?;
                names
            }
            Kind::Stats | Kind::Entry(_) => return Err(FsError::Invalid("not a directory")),
        })
    }

    /// Resolves one listed name as a lookup would (one kernel reference).
    fn resolve_item(&self, name: &[u8], item: &Item) -> FsResult<Found> {
        match item {
            Item::Fixed(id) => self.resolve(&Kind::Root, name).map(|f| match f {
                Found::Node(..) => f,
                Found::Negative | Found::Uncached => {
                    Found::Node(*id, self.core.dir_attr(*id), self.core.opts.cache_timeout)
                }
            }),
            Item::Tag => self.resolve(&Kind::Tags, name),
            Item::Entry => self.resolve(&Kind::Keys, name),
            Item::Tagged(t) => self.resolve(&Kind::Tag(t.clone()), name),
            Item::Stale => self.resolve(&Kind::Stale, name),
        }
    }

    /// Resolves the names of directory handle `fh` from `offset` on, as
    /// lookups would (one kernel reference each), and passes each with the
    /// offset of the next to `add` until it says the reply is full. Names
    /// gone since the listing was made are skipped.
    fn each_listed(
        &self,
        fh: FileHandle,
        offset: u64,
        mut add: impl FnMut(u64, &[u8], Found) -> bool,
    ) -> FsResult<()> {
        let h = self.handle(fh.0).ok_or(FsError::BadHandle)?;
        let h = h.lock().unwrap();
        let Handle::Dir(items) = &*h else {
            return Err(FsError::BadHandle);
        };
        for (i, (name, item)) in items.iter().enumerate().skip(offset as usize) {
            let Ok(found) = self.resolve_item(name, item) else {
                continue;
            };
            if add(i as u64 + 1, name, found) {
                break;
            }
        }
        Ok(())
    }

    fn forget_found(&self, found: &Found) {
        if let Found::Node(id, ..) = found {
            self.session().nodes.lock().unwrap().forget(*id, 1);
        }
    }
}

fn parse_ttl(value: &[u8]) -> FsResult<u64> {
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

fn reply_xattr(value: &[u8], size: u32, reply: ReplyXattr) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if (size as usize) < value.len() {
        reply.error(FsError::Range.errno());
    } else {
        reply.data(value);
    }
}

impl Filesystem for TagCacheFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        for cap in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_PARALLEL_DIROPS,
        ] {
            if let Err(missing) = config.add_capabilities(cap) {
                log::warn!("kernel lacks {missing:?}");
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self
            .kind(parent)
            .and_then(|p| self.resolve(&p, name.as_bytes()))
        {
            Ok(found) => self.reply_found(found, reply),
            Err(e) => reply.error(self.fail("lookup", &e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.session().nodes.lock().unwrap().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.getattr_inner(ino) {
            Ok((attr, ttl)) => reply.attr(&ttl, &attr),
            Err(e) => reply.error(self.fail("getattr", &e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let a = SetAttr {
            mode,
            uid,
            gid,
            size,
            mtime,
            fh,
        };
        match self.setattr_inner(req, ino, a) {
            Ok(change) => {
                let attr = self.getattr_inner(ino);
                let fail = attr.as_ref().err().map(|e| self.fail("setattr", e));
                let respond = move || match (attr, fail) {
                    (Ok((attr, ttl)), _) => reply.attr(&ttl, &attr),
                    (Err(_), Some(errno)) => reply.error(errno),
                    (Err(_), None) => unreachable!(),
                };
                match change {
                    Some(change) => self.core.finish_locked(&change, &[], respond),
                    None => respond(),
                }
            }
            Err(e) => reply.error(self.fail("setattr", &e)),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let e = match self.kind(parent) {
            Ok(Kind::Stale) => FsError::ReadOnly,
            _ if self.fast() => FsError::ReadOnly,
            _ => FsError::NotPermitted("only regular files, through open(O_CREAT)"),
        };
        reply.error(self.fail("mknod", &e));
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        match self.mkdir_inner(parent, name.as_bytes()) {
            Ok((attr, change)) => {
                let timeout = self.core.opts.cache_timeout;
                self.core.finish_locked(&change, &[parent.0], move || {
                    reply.entry(&timeout, &attr, Generation(0))
                })
            }
            Err(e) => reply.error(self.fail("mkdir", &e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.unlink_inner(parent, name.as_bytes()) {
            Ok(change) => self.core.finish_locked(&change, &[parent.0], || reply.ok()),
            Err(e) => reply.error(self.fail("unlink", &e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.rmdir_inner(parent, name.as_bytes()) {
            Ok(change) => {
                // The kernel holds tags/ and the removed directory.
                let victim = self.session().nodes.lock().unwrap().tag_id(name.as_bytes());
                let locked = [parent.0, victim.unwrap_or(parent.0)];
                self.core.finish_locked(&change, &locked, || reply.ok())
            }
            Err(e) => reply.error(self.fail("rmdir", &e)),
        }
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let e = if self.fast() {
            FsError::ReadOnly
        } else {
            FsError::NotPermitted("no symlinks")
        };
        reply.error(self.fail("symlink", &e));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        match self.rename_inner(
            parent,
            name.as_bytes(),
            newparent,
            newname.as_bytes(),
            flags,
        ) {
            Ok(change) => self
                .core
                .finish_locked(&change, &[parent.0, newparent.0], || reply.ok()),
            Err(e) => reply.error(self.fail("rename", &e)),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        match self.link_inner(ino, newparent, newname.as_bytes()) {
            Ok((Found::Node(_, attr, ttl), change)) => {
                self.core.finish_locked(&change, &[newparent.0], move || {
                    reply.entry(&ttl, &attr, Generation(0))
                })
            }
            Ok(_) => reply.error(self.fail("link", &FsError::NotFound)),
            Err(e) => reply.error(self.fail("link", &e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if self.fast() {
            // Switches OPEN (and RELEASE) off for the whole fast view.
            return reply.error(fuser::Errno::ENOSYS);
        }
        match self.open_inner(req, ino, flags) {
            Ok((fh, flags)) => reply.opened(FileHandle(fh), flags),
            Err(e) => reply.error(self.fail("open", &e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // Readers and the fast view carry no handle: no table lookup then.
        if let Some(h) = (fh.0 != 0).then(|| self.handle(fh.0)).flatten() {
            return match &mut *h.lock().unwrap() {
                Handle::Writer(w) => match w.read(self.store(), offset, size) {
                    Ok(data) => reply.data(&data),
                    Err(e) => reply.error(self.fail("read", &e.into())),
                },
                Handle::Stats(data) => {
                    let start = (offset as usize).min(data.len());
                    let end = (start + size as usize).min(data.len());
                    reply.data(&data[start..end])
                }
                Handle::Dir(_) => reply.error(FsError::IsDir.errno()),
            };
        }
        let node = match self.entry_node(ino) {
            Ok(node) => node,
            Err(e) => return reply.error(self.fail("read", &e)),
        };
        match crate::store::read_at(&node.file, offset, size) {
            Ok(data) => reply.data(&data),
            Err(source) => {
                let e = FsError::Store(crate::store::Error::Io {
                    path: format!("reading {}", layout::lossy(&node.name())),
                    source,
                });
                reply.error(self.fail("read", &e));
            }
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _wf: WriteFlags,
        _flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let Some(h) = self.handle(fh.0) else {
            return reply.error(FsError::BadHandle.errno());
        };
        let mut h = h.lock().unwrap();
        let Handle::Writer(w) = &mut *h else {
            return reply.error(FsError::BadHandle.errno());
        };
        match w.write(self.store(), offset, data, lock_owner.map(|o| o.0)) {
            Ok(n) => {
                self.core
                    .counters
                    .bytes_written
                    .fetch_add(n as u64, Ordering::Relaxed);
                reply.written(n as u32)
            }
            Err(e) => reply.error(self.fail("write", &e.into())),
        }
    }

    fn flush(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        if self.fast() {
            return reply.error(fuser::Errno::ENOSYS);
        }
        let Some(h) = self.handle(fh.0) else {
            return reply.ok();
        };
        let mut h = h.lock().unwrap();
        let Handle::Writer(w) = &mut *h else {
            return reply.ok();
        };
        if !w.commits_at_flush(lock_owner.0, req.pid()) {
            return reply.ok();
        }
        match self.commit(w) {
            Ok(change) => self.core.finish(&change, move || reply.ok()),
            Err(e) => reply.error(self.fail("commit at close", &e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let Some(h) = self.session().handles.lock().unwrap().remove(&fh.0) else {
            return reply.ok();
        };
        let mut h = h.lock().unwrap();
        if let Handle::Writer(w) = &mut *h
            && w.commits_at_release()
        {
            match self.commit(w) {
                Ok(change) => return self.core.finish(&change, move || reply.ok()),
                Err(e) => {
                    self.fail("commit at release", &e);
                    log::error!(
                        "commit of {} at release failed: {e}",
                        layout::lossy(&w.name)
                    );
                }
            }
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.list(ino) {
            Ok(items) => reply.opened(
                FileHandle(self.new_handle(Handle::Dir(items))),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(self.fail("opendir", &e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listed = self.each_listed(fh, offset, |next, name, found| {
            // Plain READDIR hands out no node: undo the lookup's count.
            self.forget_found(&found);
            let Found::Node(id, attr, _) = found else {
                return false;
            };
            reply.add(INodeNo(id), next, attr.kind, OsStr::from_bytes(name))
        });
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e.errno()),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let listed = self.each_listed(fh, offset, |next, name, found| {
            let Found::Node(id, attr, ttl) = found else {
                return false;
            };
            let full = reply.add(
                INodeNo(id),
                next,
                OsStr::from_bytes(name),
                &ttl,
                &attr,
                Generation(0),
            );
            if full {
                // Not handed to the kernel after all.
                self.forget_found(&found);
            }
            full
        });
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e.errno()),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.session().handles.lock().unwrap().remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.store().statfs() {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                layout::MAX_NAME as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(self.fail("statfs", &e.into())),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        match self.xattr_set(req, ino, name.as_bytes(), Some(value)) {
            Ok(Some(change)) => self.core.finish_locked(&change, &[], move || reply.ok()),
            Ok(None) => reply.ok(),
            Err(e) => reply.error(self.fail("setxattr", &e)),
        }
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.xattr_get(req, ino, name.as_bytes()) {
            Ok(value) => reply_xattr(&value, size, reply),
            Err(e) => reply.error(self.fail("getxattr", &e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.kind(ino) {
            Ok(Kind::Entry(_)) => reply_xattr(b"user.expire\0user.tags\0", size, reply),
            Ok(_) => reply_xattr(b"", size, reply),
            Err(e) => reply.error(self.fail("listxattr", &e)),
        }
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.xattr_set(req, ino, name.as_bytes(), None) {
            Ok(Some(change)) => self.core.finish_locked(&change, &[], move || reply.ok()),
            Ok(None) => reply.ok(),
            Err(e) => reply.error(self.fail("removexattr", &e)),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let writes = mask.contains(AccessFlags::W_OK);
        match self.kind(ino) {
            Ok(Kind::Stale | Kind::Stats) if writes => reply.error(FsError::ReadOnly.errno()),
            Ok(Kind::Entry(node)) if writes && node.stale_view => {
                reply.error(FsError::ReadOnly.errno())
            }
            Ok(_) if writes && (self.fast() || self.core.opts.read_only) => {
                reply.error(FsError::ReadOnly.errno())
            }
            Ok(_) => reply.ok(),
            Err(e) => reply.error(self.fail("access", &e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match self.create_inner(req, parent, name.as_bytes(), flags) {
            // Zero timeouts: the name stays invisible to others until commit.
            Ok((attr, fh)) => reply.created(
                &Duration::ZERO,
                &attr,
                Generation(0),
                FileHandle(fh),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(self.fail("create", &e)),
        }
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        reply.error(fuser::Errno::from_i32(libc::ENOTTY));
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        let e = FsError::Unsupported("fallocate: versions are written by write()");
        reply.error(self.fail("fallocate", &e));
    }
}
