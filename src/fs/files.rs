//! Opening, reading and writing entries, and when a write commits.
//!
//! - A read open on the full mount is passed through to the version's
//!   file when the kernel allows it (`opens`: while no writer has the
//!   node open; the version's content from byte 0): the kernel reads that
//!   file itself, which holds exactly the version's bytes and size.
//!   Otherwise it is direct I/O, with the version's file open in its
//!   handle: a writer's direct writes on the same node raise the kernel's
//!   idea of its size, and page-cache reads within that size would return
//!   zeros past the version's end; direct reads return exactly the
//!   version's bytes, also after a commit replaced it.
//! - A write open of a node that passthrough readers have open is answered
//!   ESTALE (the kernel would refuse it) and the node retired, so the
//!   kernel's lookup again brings the writer to a new node. Whatever a
//!   write open is answered ESTALE for, the lookup before the kernel's
//!   retry finds a node without passthrough readers (`opens`).
//! - An open reaching a version that is in the store no more answers
//!   ESTALE, which makes the kernel look the name up again.
//! - A write open gets a private draft (`writer`): nobody else sees its
//!   bytes or its size until it commits, at a close after new writes or at
//!   the release (the commit points are `Writer`'s).
//! - A commit returns the `Change` to invalidate before close() returns,
//!   and pins the version it replaced for the fast view's nodes of it.

use crate::store::Content;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Mount;
use super::attr::Attr;
use super::change::Change;
use super::counters::bump;
use super::error::{FsError, FsResult};
use super::handles::Handle;
use super::nodes::{EntryNode, Kind};
use super::writer::Writer;
use crate::store::{Version, layout};

/// An open file: its handle (0: none, reads go to the node) and how the
/// kernel must treat it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub fh: u64,
    pub direct_io: bool,
    pub keep_cache: bool,
    pub noflush: bool,
    /// Reads go to the version's file (`Mount::backing_file`) in the
    /// kernel; if the kernel cannot be given it, `passthrough_refused`.
    pub passthrough: bool,
}

impl Opened {
    fn direct(fh: u64) -> Opened {
        Opened {
            fh,
            direct_io: true,
            keep_cache: false,
            noflush: false,
            passthrough: false,
        }
    }
}

fn gone(node: &EntryNode) -> FsError {
    FsError::Stale(layout::lossy(&node.name))
}

impl Mount<'_> {
    /// Commits a writer and says what the kernel must forget: the names of
    /// the new version and of the one it replaced (whatever tags that one
    /// had: the writer's old ones, or a concurrent commit's).
    fn commit(&self, w: &mut Writer) -> FsResult<Change> {
        let fs = self.fs;
        let before: Vec<Vec<u8>> = w.tags().to_vec();
        // Until the version this commit replaces is pinned below, a read of
        // a node of it finds it nowhere: such reads wait for this.
        let _publishing = fs.publishing.hold(&w.name);
        let published = match w.commit(self.store(), fs.opts.default_ttl) {
            Ok(p) => p,
            Err(e) => {
                bump(&fs.counters.commit_errors);
                let e = FsError::from(e);
                fs.counters.count_commit_error(e.errno());
                return Err(e);
            }
        };
        bump(&fs.counters.commits);
        let version = &published.version;
        self.state()
            .nodes
            .lock()
            .unwrap()
            .settle(w.node, &version.meta);
        let mut replaced_tags = Vec::new();
        if let Some(old) = published.replaced {
            replaced_tags = old.meta.tags().to_vec();
            fs.pin_for_readers(old);
        }
        let after = version.meta.tags().iter().cloned();
        let mut change = Change::entry(
            &w.name,
            before.into_iter().chain(replaced_tags).chain(after),
        );
        change.tags = published.created;
        Ok(change)
    }

    /// `open`: a read open of an entry (or `.stats`), or a write open with a
    /// private draft. `flags` are open(2)'s.
    pub fn open(&self, pid: u32, id: u64, flags: i32) -> FsResult<Opened> {
        let fs = self.fs;
        let read_only = flags & libc::O_ACCMODE == libc::O_RDONLY;
        let node = match self.kind(id)? {
            Kind::Stats if !read_only => return Err(FsError::ReadOnly),
            Kind::Stats => {
                let fh = self.new_handle(Handle::Stats(fs.stats_json().into_bytes()));
                return Ok(Opened::direct(fh));
            }
            Kind::Entry(node) => node,
            _ => return Err(FsError::IsDir),
        };
        if read_only {
            if node.pending {
                // Its reads go to its writer's draft.
                return Ok(Opened::direct(0));
            }
            let Some(v) = self.open_node(id, &node)? else {
                return Err(if node.stale_view || self.target(&node)?.is_some() {
                    gone(&node)
                } else {
                    bump(&fs.counters.misses);
                    FsError::NotFound
                });
            };
            if node.stale_view {
                bump(&fs.counters.stale_reads);
                return Ok(Opened {
                    fh: self.new_handle(Handle::Reader(v.content())),
                    direct_io: false,
                    keep_cache: true,
                    noflush: true,
                    passthrough: false,
                });
            }
            // A version replaced by a commit this open raced with is still
            // served (whole: versions never change); an invalidated one is
            // gone.
            if v.meta.is_live() || self.target(&node)?.is_some() {
                bump(&fs.counters.hits);
                self.store().note_use(&v.file, &v.meta);
                let content = v.content();
                // The kernel reads the file from byte 0: not for a version
                // whose content starts further in.
                let whole = content.head == 0;
                let fh = self.new_handle(Handle::Reader(content));
                let passthrough = self.passthrough()
                    && whole
                    && node.passthrough
                    && self.state().opens.lock().unwrap().passthrough(id, fh);
                if passthrough {
                    bump(&fs.counters.passthrough_opens);
                }
                return Ok(Opened {
                    fh,
                    direct_io: !passthrough,
                    keep_cache: false,
                    noflush: true,
                    passthrough,
                });
            }
            bump(&fs.counters.misses);
            return Err(FsError::NotFound);
        }
        if node.stale_view {
            return Err(FsError::ReadOnly);
        }
        let opened = self.open_writer(pid, id, &node, flags);
        if opened.as_ref().is_err_and(|e| e.errno() == libc::ESTALE) {
            // The kernel looks the name up again and retries the open
            // once: that lookup must find a node no passthrough reader
            // has open, or the retry would meet them.
            self.state().opens.lock().unwrap().send_back(&node.name);
        }
        opened
    }

    fn open_writer(&self, pid: u32, id: u64, node: &EntryNode, flags: i32) -> FsResult<Opened> {
        self.writable()?;
        // The tag directories the current version is linked in are held
        // from now on: a commit keeping its tags links into those very
        // directories, so an rmdir in between is never undone.
        let current = match self.store().open_live(&node.name)? {
            Some(v) => self.store().hold_tag_dirs(&v)?.map(|held| (v, held)),
            None => None,
        };
        let append = flags & libc::O_APPEND != 0;
        let w = Writer::open(id, &node.name, pid, append, current);
        let mut opens = self.state().opens.lock().unwrap();
        if !opens.writer(id) {
            // Passthrough readers have this node open, and the kernel
            // refuses other opens of it: the writer gets a node without
            // passthrough once the kernel has looked the name up again.
            drop(opens);
            self.state().nodes.lock().unwrap().retire(id);
            return Err(gone(node));
        }
        drop(opens);
        Ok(Opened::direct(self.new_handle(Handle::Writer(Box::new(w)))))
    }

    /// `with(fd)` of the version file of read handle `fh`, to give it to
    /// the kernel to read (passthrough); `None` for another handle.
    pub fn with_version_file<T>(
        &self,
        fh: u64,
        with: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> T,
    ) -> Option<T> {
        use std::os::fd::AsFd;
        let h = self.handle(fh)?;
        match &*h.lock().unwrap() {
            Handle::Reader(content) => Some(with(content.file.as_fd())),
            _ => None,
        }
    }

    /// The kernel could not be given read handle `fh`'s file: it stays a
    /// direct read.
    pub fn passthrough_refused(&self, fh: u64) {
        self.state().opens.lock().unwrap().reader_closed(fh);
    }

    /// `create`: a new name in `keys/` (or below `put/`), invisible to
    /// others until its commit. `O_EXCL` takes the entry's single-flight
    /// lock.
    pub fn create(&self, pid: u32, parent: u64, name: &[u8], flags: i32) -> FsResult<(Attr, u64)> {
        let params = match self.kind(parent)? {
            Kind::Keys => None,
            Kind::Put(p) => Some(p),
            Kind::Stale => return Err(FsError::ReadOnly),
            _ => {
                return Err(FsError::NotPermitted(
                    "files are created in keys/ and put/ only",
                ));
            }
        };
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
        // Below put/, exactly a write open of keys/NAME: it continues the
        // entry's live version (tags, TTL, and content unless truncated).
        let current = match &params {
            Some(_) => match store.open_live(name)? {
                Some(v) => store.hold_tag_dirs(&v)?.map(|held| (v, held)),
                None => None,
            },
            None => None,
        };
        let draft = match &current {
            Some((v, _)) if flags & libc::O_TRUNC == 0 => store.draft_from(v)?,
            _ => store.new_draft()?,
        };
        // The node is the version this draft becomes.
        let mut meta = store.draft_meta(&draft)?;
        meta.ver = draft.ver();
        let mut nodes = self.state().nodes.lock().unwrap();
        let id = nodes.entry(&meta, name, false, true);
        let attr = self
            .fs
            .entry_attr(id, &nodes.entry_of(id).expect("just made"));
        drop(nodes);
        // A new node: nobody else has it open.
        self.state().opens.lock().unwrap().writer(id);
        let append = flags & libc::O_APPEND != 0;
        let w = match params {
            None => Writer::created(id, name, pid, append, draft, lock),
            Some(p) => {
                let mut w =
                    Writer::created_over(id, name, pid, append, draft, meta.size, lock, current);
                w.preset(p.tags.clone(), p.expire);
                w
            }
        };
        let fh = self.new_handle(Handle::Writer(Box::new(w)));
        Ok((attr, fh))
    }

    /// `read`: from a handle's file, draft or snapshot; without a handle
    /// (the fast view), from the node's version, found by its identity.
    pub fn read(&self, id: u64, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        if let Some(h) = (fh != 0).then(|| self.handle(fh)).flatten() {
            return match &mut *h.lock().unwrap() {
                Handle::Reader(content) => read_content(content, offset, size),
                Handle::Writer(w) => Ok(w.read(self.store(), offset, size)?),
                Handle::Stats(data) => {
                    let start = (offset as usize).min(data.len());
                    let end = (start + size as usize).min(data.len());
                    Ok(data[start..end].to_vec())
                }
                Handle::Dir(_) => Err(FsError::IsDir),
            };
        }
        let node = self.entry_node(id)?;
        if node.pending {
            let h = self.writer_of(id, None).ok_or(FsError::NotFound)?;
            return match &mut *h.lock().unwrap() {
                Handle::Writer(w) => Ok(w.read(self.store(), offset, size)?),
                _ => Err(FsError::BadHandle),
            };
        }
        let pool = &self.state().reads;
        let file = match pool.get(id) {
            Some(file) => file,
            None => {
                let v = self.open_node(id, &node)?.ok_or_else(|| gone(&node))?;
                let content = Arc::new(v.content());
                pool.put(id, content.clone());
                content
            }
        };
        read_content(&file, offset, size)
    }

    /// `write`: into the handle's private draft.
    pub fn write(&self, fh: u64, offset: u64, data: &[u8], owner: Option<u64>) -> FsResult<u32> {
        let mut answer = None;
        self.write_answering(fh, offset, data, owner, |r| answer = Some(r));
        answer.expect("answered")
    }

    /// `write`, answered through `answer` as soon as it may be: a big
    /// write once its room is taken, before its bytes are in the draft
    /// (`writer`), so the kernel copies the next request meanwhile.
    /// Returns when the bytes are written either way.
    pub fn write_answering(
        &self,
        fh: u64,
        offset: u64,
        data: &[u8],
        owner: Option<u64>,
        answer: impl FnOnce(FsResult<u32>),
    ) {
        let Some(h) = self.handle(fh) else {
            return answer(Err(FsError::BadHandle));
        };
        let mut guard = h.lock().unwrap();
        let Handle::Writer(w) = &mut *guard else {
            return answer(Err(FsError::BadHandle));
        };
        let later = match w.write(self.store(), offset, data, owner, true) {
            Ok(later) => later,
            Err(e) => return answer(Err(e.into())),
        };
        drop(guard);
        self.fs
            .counters
            .bytes_written
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        answer(Ok(data.len() as u32));
        if let Some(later) = later {
            later.finish(data);
        }
    }

    /// `flush` (each close of a descriptor): commits when the writer says
    /// this close does; its error is close()'s.
    pub fn flush(&self, fh: u64, owner: u64, pid: u32) -> FsResult<Option<Change>> {
        let Some(h) = self.handle(fh) else {
            return Ok(None);
        };
        let mut h = h.lock().unwrap();
        let Handle::Writer(w) = &mut *h else {
            return Ok(None);
        };
        if !w.commits_at_flush(owner, pid) {
            return Ok(None);
        }
        self.commit(w).map(Some)
    }

    /// `release` (the last close): commits what is left. Nobody waits for
    /// its answer, so an error here can only be logged and counted.
    pub fn release(&self, fh: u64) -> FsResult<Option<Change>> {
        let Some(h) = self.take_handle(fh) else {
            return Ok(None);
        };
        let mut h = h.lock().unwrap();
        match &mut *h {
            Handle::Writer(w) => {
                let committed = if w.commits_at_release() {
                    self.commit(w).map(Some)
                } else {
                    Ok(None)
                };
                self.state().opens.lock().unwrap().writer_closed(w.node);
                committed
            }
            Handle::Reader(_) => {
                self.state().opens.lock().unwrap().reader_closed(fh);
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// `fsync`: in durable mode, on a writing descriptor, its draft is
    /// flushed to disk (its commit, at close, syncs the rest); on a reading
    /// one, nothing to do (every committed version is on disk already).
    /// In the default mode nothing is synced: a cache may lose what the
    /// last seconds wrote at a power loss, and never serves a torn version.
    pub fn fsync(&self, fh: u64) -> FsResult<()> {
        let Some(h) = self.handle(fh) else {
            return Ok(());
        };
        match &mut *h.lock().unwrap() {
            Handle::Writer(w) => Ok(w.sync(self.store())?),
            _ => Ok(()),
        }
    }
}

fn read_content(content: &Content, offset: u64, size: u32) -> FsResult<Vec<u8>> {
    content.read_at(offset, size).map_err(|source| {
        FsError::Store(crate::store::Error::Io {
            path: "reading a version".into(),
            source,
        })
    })
}

impl super::Fs {
    /// A version a commit just replaced: each mount's node of it, if the
    /// kernel holds one, keeps it open, so that an open racing the commit
    /// and descriptors opened before keep reading it once it is gone from
    /// the store.
    pub(super) fn pin_for_readers(&self, old: Version) {
        // An invalidated version stays gone: an open of its node must not
        // find it again because a commit replaced it later.
        if !old.meta.is_live() {
            return;
        }
        for mount in &self.mounts {
            let mut nodes = mount.nodes.lock().unwrap();
            // Retired nodes too: readers still open the version through
            // them.
            for id in nodes.all_of(old.meta.ino, old.meta.ver) {
                if let Ok(file) = old.file.try_clone() {
                    nodes.pin(id, file);
                }
            }
        }
    }
}

/// The names whose commit is between the rename that replaces a version
/// and the pinning of that version for the kernel's nodes of it: a read of
/// such a node in that moment waits for the pin instead of finding its
/// version gone (a READ cannot be retried by the kernel).
#[derive(Debug, Default)]
pub(super) struct Publishing {
    names: std::sync::Mutex<std::collections::HashMap<Box<[u8]>, u32>>,
    done: std::sync::Condvar,
    /// Commits that have ended (pinned what they replaced).
    finished: std::sync::atomic::AtomicU64,
}

/// A commit of `name` being published; ends when dropped.
pub(super) struct Held<'a> {
    of: &'a Publishing,
    name: Box<[u8]>,
}

impl Publishing {
    pub(super) fn hold(&self, name: &[u8]) -> Held<'_> {
        *self.names.lock().unwrap().entry(name.into()).or_default() += 1;
        Held {
            of: self,
            name: name.into(),
        }
    }

    /// How many commits have ended: a lookup that sees the same number
    /// before opening a version and after registering its node raced none.
    pub(super) fn finished(&self) -> u64 {
        self.finished.load(Ordering::SeqCst)
    }

    /// Waits (at most a second) until no commit of `name` is being
    /// published; whether there was one.
    pub(super) fn wait(&self, name: &[u8]) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        let mut names = self.names.lock().unwrap();
        if !names.contains_key(name) {
            return false;
        }
        while names.contains_key(name) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            names = self.done.wait_timeout(names, left).unwrap().0;
        }
        true
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut names = self.of.names.lock().unwrap();
        if let Some(n) = names.get_mut(&self.name) {
            *n -= 1;
            if *n == 0 {
                names.remove(&self.name);
            }
        }
        drop(names);
        self.of.finished.fetch_add(1, Ordering::SeqCst);
        self.of.done.notify_all();
    }
}
