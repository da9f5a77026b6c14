//! A write descriptor's private version and when it commits.
//!
//! The bytes go to a draft in the store's `tmp/` (never into memory, never
//! into the committed version). A draft that continues an entry starts as a
//! copy of its committed content, made lazily so that an `O_TRUNC` open
//! (which arrives as OPEN then SETATTR size=0) copies nothing.
//!
//! A big write (`LATER_FROM` bytes or more) is answered before its bytes
//! reach the draft (`Later`): the kernel then copies the writer's next
//! request while this one is written, instead of one after the other. Its
//! room is taken first (`fallocate`, so a full disk is still that write's
//! ENOSPC), at most one is on its way at a time, and everything else this
//! writer does (a write, a read, a truncate, a commit) waits for it first
//! (`settle`); if it failed after all, the writer has lost bytes as if
//! that write had failed.
//!
//! Commit points (notes/fuse-write-path.md): a FLUSH commits when there were
//! writes or xattr changes since the last commit, unless it comes from
//! another lock owner than the writes (a forked child closing its copy); a
//! RELEASE commits whatever is left, including a handle that was only
//! truncated or created; an `O_EXCL` holder that changed nothing commits
//! nothing.

use std::fs::File;
use std::sync::{Arc, Condvar, Mutex};

use crate::store::{Commit, Draft, EntryLock, Published, Result, Store, TagDir, Time, Version};

/// Writes this big or bigger are answered before their bytes are written.
pub const LATER_FROM: usize = 64 * 1024;

/// The write of a writer on its way to its draft, answered already.
#[derive(Debug, Default)]
struct InFlight {
    state: Mutex<Flight>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct Flight {
    busy: bool,
    /// What the last write on its way failed with, until the writer learns.
    failed: Option<i32>,
}

impl InFlight {
    /// Waits until no write is on its way; what one failed with, if any.
    fn settle(&self) -> Option<i32> {
        let mut f = self.state.lock().unwrap();
        while f.busy {
            f = self.done.wait(f).unwrap();
        }
        f.failed.take()
    }
}

/// A write answered before its bytes are in the draft: `finish` writes
/// them (outside the handle's lock).
#[derive(Debug)]
pub struct Later {
    file: File,
    at: u64,
    flight: Arc<InFlight>,
    /// What the write came to (dropped unwritten: EIO).
    result: std::result::Result<(), i32>,
}

impl Later {
    /// Writes `data` where it was planned; a failure is the writer's next
    /// operation's.
    pub fn finish(mut self, data: &[u8]) {
        use std::os::unix::fs::FileExt;
        self.result = crate::failpoint::hit("writer.later")
            .and_then(|()| self.file.write_all_at(data, self.at))
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO));
    }
}

impl Drop for Later {
    fn drop(&mut self) {
        let mut f = self.flight.state.lock().unwrap();
        f.busy = false;
        if let Err(errno) = self.result {
            f.failed.get_or_insert(errno);
        }
        drop(f);
        self.flight.done.notify_all();
    }
}

#[derive(Debug)]
pub struct Writer {
    /// The node the kernel sends this descriptor's requests on.
    pub node: u64,
    pub name: Vec<u8>,
    /// The process that opened it: an open-time truncate carries no handle.
    pub pid: u32,
    draft: Option<Draft>,
    /// Committed content a new draft starts from (`None`: empty).
    base: Option<Version>,
    /// The version this descriptor last committed, by identity (`ino`,
    /// `ver`): a later write continues it, reopened then. Not kept open, so
    /// that evicting it frees its blocks at once.
    committed: Option<(u64, u64)>,
    size: u64,
    append: bool,
    /// Set on this descriptor; `None` keeps what the entry had.
    tags: Option<Vec<Vec<u8>>>,
    ttl: Option<u64>,
    expiry: Option<Time>,
    inherited_tags: Vec<Vec<u8>>,
    inherited_ttl: Option<u64>,
    /// The directories the inherited tags' links go into.
    held: Vec<TagDir>,
    dirty: bool,
    write_owner: Option<u64>,
    commit_at_release: bool,
    lock: Option<EntryLock>,
    /// A write that failed (ENOSPC, EIO…): the version lost bytes, so every
    /// later commit of this descriptor fails with that error instead of
    /// publishing what is left.
    lost: Option<i32>,
    /// The big write on its way, if any.
    flight: Arc<InFlight>,
}

impl Writer {
    /// A writer continuing `current`: the live version, if any, with the
    /// tag directories it is linked in (`Store::hold_tag_dirs`).
    pub fn open(
        node: u64,
        name: &[u8],
        pid: u32,
        append: bool,
        current: Option<(Version, Vec<TagDir>)>,
    ) -> Writer {
        let (base, size, tags, ttl, held) = match current {
            Some((v, held)) => {
                let tags = v.meta.tags().to_vec();
                let ttl = v.meta.record.as_ref().map(|r| r.ttl);
                let size = v.meta.size;
                (Some(v), size, tags, ttl, held)
            }
            None => (None, 0, Vec::new(), None, Vec::new()),
        };
        Writer {
            node,
            name: name.to_vec(),
            pid,
            draft: None,
            base,
            committed: None,
            size,
            append,
            tags: None,
            ttl: None,
            expiry: None,
            inherited_tags: tags,
            inherited_ttl: ttl,
            held,
            dirty: false,
            write_owner: None,
            commit_at_release: false,
            lock: None,
            lost: None,
            flight: Arc::default(),
        }
    }

    /// A writer of a name created by CREATE: its draft exists from the start
    /// (its inode is the node's). A plain create commits at release even if
    /// nothing is written; an `O_EXCL` one (holding `lock`) does not.
    pub fn created(
        node: u64,
        name: &[u8],
        pid: u32,
        append: bool,
        draft: Draft,
        lock: Option<EntryLock>,
    ) -> Writer {
        let mut w = Writer::open(node, name, pid, append, None);
        w.draft = Some(draft);
        w.commit_at_release = lock.is_none();
        w.lock = lock;
        w
    }

    /// A writer of a name created below `put/`: like `created`, but it
    /// continues `current` (the entry's live version: its tags, TTL and
    /// held tag directories), as a write open of `keys/NAME` does; `draft`
    /// already holds the content it starts from (`size` bytes).
    #[allow(clippy::too_many_arguments)]
    pub fn created_over(
        node: u64,
        name: &[u8],
        pid: u32,
        append: bool,
        draft: Draft,
        size: u64,
        lock: Option<EntryLock>,
        current: Option<(Version, Vec<TagDir>)>,
    ) -> Writer {
        let mut w = Writer::open(node, name, pid, append, current);
        w.base = None;
        w.size = size;
        w.draft = Some(draft);
        w.commit_at_release = lock.is_none();
        w.lock = lock;
        w
    }

    /// Tags and TTL given before any data (`put/` parameters): like xattrs
    /// set on the descriptor, but not a change of their own, so a close
    /// before the first write (bash's `>`) commits nothing early.
    pub fn preset(&mut self, tags: Option<Vec<Vec<u8>>>, ttl: Option<u64>) {
        if tags.is_some() {
            self.tags = tags;
        }
        if ttl.is_some() {
            self.ttl = ttl;
            self.expiry = None;
        }
    }

    fn draft(&mut self, store: &Store) -> Result<&Draft> {
        if self.draft.is_none() {
            if let Some((ino, ver)) = self.committed.take() {
                let tags = self.inherited_tags.clone();
                let v = store.find_version(&self.name, &tags, ino, ver)?;
                // Evicted or invalidated since: there is nothing to continue.
                let v = v.ok_or_else(|| {
                    crate::store::Error::Invalidated(String::from_utf8_lossy(&self.name).into())
                })?;
                self.base = Some(v);
            }
            let draft = match &self.base {
                Some(base) => store.draft_from(base)?,
                None => store.new_draft()?,
            };
            self.draft = Some(draft);
        }
        Ok(self.draft.as_ref().expect("just made"))
    }

    /// Waits for the write on its way; if it failed, this writer has lost
    /// bytes from now on.
    fn settle(&mut self) {
        if let Some(errno) = self.flight.settle() {
            self.lose(errno);
        }
    }

    /// A write failed: give the space back now; the close reports the loss.
    fn lose(&mut self, errno: i32) {
        self.lost.get_or_insert(errno);
        self.draft = None;
        self.dirty = true;
    }

    /// Writes `data` at `offset` (at the end when appending), or with
    /// `later` and a big enough write, takes its room and leaves the bytes
    /// to the `Later` it returns.
    pub fn write(
        &mut self,
        store: &Store,
        offset: u64,
        data: &[u8],
        owner: Option<u64>,
        later: bool,
    ) -> Result<Option<Later>> {
        self.settle();
        if let Some(errno) = self.lost {
            return Err(lost_err(errno));
        }
        let at = if self.append { self.size } else { offset };
        let end = (at + data.len() as u64).max(self.size);
        let defer = later && data.len() >= LATER_FROM;
        let later = self.draft(store).map(drop).and_then(|()| {
            let d = self.draft.as_mut().expect("made above");
            // Room first (a bounded store evicts for it), then the bytes.
            store.reserve(d, end)?;
            if defer && let Some(l) = plan_later(d, at, data.len(), &self.flight)? {
                return Ok(Some(l));
            }
            d.write_at(data, at)
                .map_err(|e| io_err(e, "writing a draft"))?;
            Ok(None)
        });
        let later = match later {
            Ok(later) => later,
            Err(e) => {
                self.lose(e.os_error().unwrap_or(libc::EIO));
                return Err(e);
            }
        };
        self.size = self.size.max(at + data.len() as u64);
        self.dirty = true;
        if owner.is_some() {
            self.write_owner = owner;
        }
        Ok(later)
    }

    pub fn read(&mut self, store: &Store, offset: u64, size: u32) -> Result<Vec<u8>> {
        self.settle();
        let continues = self.base.is_some() || self.committed.is_some();
        let draft = match &self.draft {
            Some(d) => d,
            None if continues => self.draft(store)?,
            None => return Ok(Vec::new()),
        };
        draft
            .read_at(offset, size)
            .map_err(|e| io_err(e, "reading a draft"))
    }

    /// Truncates (or extends) the version being written. Alone it is a
    /// change committed at release, not at the next flush (bash's `>`
    /// flushes after the open-time truncate, before writing).
    pub fn truncate(&mut self, store: &Store, size: u64) -> Result<()> {
        self.settle();
        if size == 0 && self.draft.is_none() {
            self.base = None;
            self.committed = None;
        } else {
            self.draft(store)?
                .set_len(size)
                .map_err(|e| io_err(e, "truncating a draft"))?;
        }
        self.size = size;
        self.commit_at_release = true;
        Ok(())
    }

    /// `fsync` of the writing descriptor: in durable mode, what was written
    /// so far is on disk (still in the private draft: the close commits).
    pub fn sync(&mut self, store: &Store) -> Result<()> {
        self.settle();
        match &self.draft {
            Some(d) => store.sync_file(d.file()),
            None => Ok(()),
        }
    }

    pub fn set_tags(&mut self, tags: Vec<Vec<u8>>) {
        self.tags = Some(tags);
        self.dirty = true;
    }

    pub fn set_ttl(&mut self, ttl: u64) {
        self.ttl = Some(ttl);
        self.expiry = None;
        self.dirty = true;
    }

    pub fn set_expiry(&mut self, expiry: Time) {
        self.expiry = Some(expiry);
        self.dirty = true;
    }

    pub fn tags(&self) -> &[Vec<u8>] {
        self.tags.as_deref().unwrap_or(&self.inherited_tags)
    }

    pub fn ttl(&self, default_ttl: u64) -> u64 {
        self.ttl.or(self.inherited_ttl).unwrap_or(default_ttl)
    }

    /// Whether a FLUSH from lock owner `owner`, process `pid`, commits:
    /// after writes, only the writes' owner's; after xattr or time changes
    /// alone, only the opener's (a forked `setfattr /proc/PID/fd/N` closing
    /// its copy of the descriptor is not the writer saying it is done).
    pub fn commits_at_flush(&self, owner: u64, pid: u32) -> bool {
        self.dirty
            && match self.write_owner {
                Some(o) => o == owner,
                None => pid == self.pid,
            }
    }

    pub fn commits_at_release(&self) -> bool {
        self.dirty || self.commit_at_release
    }

    /// Commits the version written so far. The descriptor stays usable: a
    /// later write starts a new draft from what was just committed.
    pub fn commit(&mut self, store: &Store, default_ttl: u64) -> Result<Published> {
        // A write still on its way would land in the committed version.
        self.settle();
        if let Some(errno) = self.lost {
            self.dirty = false;
            self.commit_at_release = false;
            self.lock = None;
            return Err(lost_err(errno));
        }
        self.draft(store)?;
        crate::failpoint::check("writer.commit")?;
        let draft = self.draft.take().expect("made above");
        let ttl = self.ttl(default_ttl);
        let tags = self.tags().to_vec();
        // Tags kept from the entry link into the directories their version
        // was in (or, lacking those, must still exist): if one was removed
        // meanwhile, the content being replaced was invalidated under us.
        let (carried, held) = if self.tags.is_none() {
            (tags.clone(), &self.held[..])
        } else {
            (Vec::new(), &[][..])
        };
        let result = store.publish(
            draft,
            &Commit {
                name: &self.name,
                tags: &tags,
                expiry: self.expiry.unwrap_or_else(|| Time::after_ttl(ttl)),
                ttl,
                carried: &carried,
                replaces: None,
                held,
            },
        );
        self.dirty = false;
        self.commit_at_release = false;
        self.write_owner = None;
        self.lock = None;
        let mut published = result?;
        // From here on the version is committed: nothing may fail any more.
        self.held = std::mem::take(&mut published.held);
        self.base = None;
        self.committed = Some((published.version.meta.ino, published.version.meta.ver));
        self.size = published.version.meta.size;
        self.inherited_tags = tags;
        self.inherited_ttl = Some(ttl);
        self.tags = None;
        self.expiry = None;
        Ok(published)
    }
}

/// Takes the room of `len` bytes at `at` in draft `d` (so that a full disk
/// is this write's ENOSPC) and marks a write on its way; `None` where the
/// file system cannot take room ahead (the write is then made at once).
fn plan_later(d: &Draft, at: u64, len: usize, flight: &Arc<InFlight>) -> Result<Option<Later>> {
    use std::os::fd::AsRawFd;
    let file = d.file();
    let pos = d.head() + at;
    // SAFETY: fallocate on a descriptor the draft owns, for a range of it.
    let r = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_KEEP_SIZE,
            pos as libc::off_t,
            len as libc::off_t,
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::EINVAL) => Ok(None),
            _ => Err(io_err(e, "taking room in a draft")),
        };
    }
    let file = file
        .try_clone()
        .map_err(|e| io_err(e, "a draft's descriptor"))?;
    let mut f = flight.state.lock().unwrap();
    debug_assert!(!f.busy, "settled before");
    f.busy = true;
    drop(f);
    Ok(Some(Later {
        file,
        at: pos,
        flight: flight.clone(),
        result: Err(libc::EIO),
    }))
}

fn lost_err(errno: i32) -> crate::store::Error {
    io_err(
        std::io::Error::from_raw_os_error(errno),
        "an earlier write to this version failed",
    )
}

fn io_err(source: std::io::Error, what: &str) -> crate::store::Error {
    crate::store::Error::Io {
        path: what.to_string(),
        source,
    }
}
