//! The benchmark's floor: a FUSE file system that does nothing but answer.
//!
//! It answers the kernel the way tagcachefs does — same open flags, same
//! timeouts, same capabilities, same thread setup — with every file held in
//! memory, so that `tagcachefs / floorfs` measures what the daemon's own work
//! costs and `floorfs / native` what FUSE itself costs on this machine.
//!
//! - `MNT/keys/<name>`: files (populated with `--populate`, the same names and
//!   contents as `examples/populate.rs`, or written through the mount);
//! - read opens: FOPEN_KEEP_CACHE | FOPEN_NOFLUSH; write opens and creates:
//!   FOPEN_DIRECT_IO into a private buffer, committed into memory at the
//!   first FLUSH after a write (or at RELEASE), `user.*` xattrs set on the
//!   writing descriptor kept with the version; a commit moves the buffer
//!   into the version (no copy), and a write open starts from the committed
//!   bytes without copying them until it writes (as a draft is copied
//!   lazily);
//! - `rm keys/<name>` drops the name and its bytes at once (a descriptor
//!   still open on it reads it as empty), so that a benchmark writing large
//!   entries can free them;
//! - entry and attribute timeouts `--cache-timeout`; misses are cached as
//!   negative entries for as long; a created name gets zero timeouts until
//!   it is committed; READDIRPLUS requested;
//! - `--fast`: read-only, OPEN and FLUSH answered ENOSYS (the floor of the
//!   fast view: the kernel then sends no OPEN, FLUSH or RELEASE at all);
//! - `--direct-reads`: read opens answered FOPEN_DIRECT_IO | FOPEN_NOFLUSH
//!   instead (no page cache: every read is a READ request), for comparing
//!   with a daemon that reads direct on its full mount.
//!
//! It skips what correctness would need beyond that: no invalidation of the
//! kernel's names after an overwrite, no expiry, no persistence.
//!
//! ```text
//! floorfs MOUNTPOINT [--fast | --direct-reads] [--cache-timeout S]
//!         [--populate PREFIX:START:COUNT:SIZE]...
//! ```
//! It prints `ready` once mounted and serves until unmounted (`umount`),
//! SIGTERM or SIGINT.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use clap::Parser;
use fuser::{
    AccessFlags, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, MountOption, OpenAccMode, OpenFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl,
    ReplyOpen, ReplyWrite, ReplyXattr, Request, Session, SessionACL, TimeOrNow, WriteFlags,
};
use nix::sys::signal::{SigSet, Signal};

const ROOT: u64 = 1;
const KEYS: u64 = 2;
const FIRST_DYNAMIC: u64 = 16;

#[derive(Parser)]
#[command(about = "A do-nothing in-memory FUSE file system: the benchmark's floor")]
struct Args {
    mountpoint: PathBuf,
    /// Read-only; OPEN and FLUSH answered ENOSYS (the fast view's floor).
    #[arg(long)]
    fast: bool,
    /// Read opens answered FOPEN_DIRECT_IO | FOPEN_NOFLUSH (no page cache).
    #[arg(long, conflicts_with = "fast")]
    direct_reads: bool,
    /// Entry, attribute and negative-entry timeout, in seconds.
    #[arg(long, default_value_t = 1.0)]
    cache_timeout: f64,
    /// Files to hold from the start: PREFIX:START:COUNT:SIZE.
    #[arg(long)]
    populate: Vec<String>,
}

/// The content of entry number `i` (as `examples/populate.rs`).
fn content(i: u64, size: usize) -> Vec<u8> {
    (0..size)
        .map(|j| ((i.wrapping_mul(31) + j as u64) % 251) as u8)
        .collect()
}

/// A version's bytes. A dropped version's buffer goes back to `SPARE`
/// for the next writer.
#[derive(Debug)]
struct Bytes(Vec<u8>);

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Bytes {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        if buf.capacity() < SPARE_MIN {
            return;
        }
        let mut spare = SPARE.lock().unwrap();
        let held: usize = spare.iter().map(Vec::capacity).sum();
        if held + buf.capacity() <= SPARE_MAX {
            buf.clear();
            spare.push(buf);
        }
    }
}

/// Buffers of dropped versions, reused by later writers, as the page cache
/// reuses freed pages: fresh anonymous memory costs a page fault per page,
/// which on a virtual machine can cost more than the FUSE transport itself,
/// and a floor paying it would be slower than the file systems it bounds.
static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
const SPARE_MIN: usize = 1 << 20;
const SPARE_MAX: usize = 2 << 30;

/// An empty buffer for a writer, with room for at least `len` bytes: the
/// largest spare one (a writer's first write does not say how much
/// follows).
fn spare_buffer(len: usize) -> Vec<u8> {
    let mut spare = SPARE.lock().unwrap();
    let pick = spare
        .iter()
        .enumerate()
        .max_by_key(|(_, b)| b.capacity())
        .map(|(i, _)| i);
    let mut buf = pick.map(|i| spare.swap_remove(i)).unwrap_or_default();
    drop(spare);
    buf.reserve(len);
    buf
}

#[derive(Debug)]
struct Node {
    data: Arc<Bytes>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    lookups: u64,
    /// Created and not committed yet: only its writer sees it.
    pending: bool,
    /// The version `keys/<name>` names now (others live until forgotten).
    current: bool,
}

#[derive(Debug, Default)]
struct State {
    nodes: HashMap<u64, Node>,
    names: HashMap<Vec<u8>, u64>,
    next: u64,
}

impl State {
    fn insert(&mut self, node: Node) -> u64 {
        let id = self.next;
        self.next += 1;
        self.nodes.insert(id, node);
        id
    }
}

#[derive(Debug)]
struct Writer {
    node: u64,
    name: Vec<u8>,
    pid: u32,
    /// The bytes written; empty while `base` holds the content.
    buf: Vec<u8>,
    /// Committed bytes this writer continues, not copied until it writes.
    base: Option<Arc<Bytes>>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    dirty: bool,
    owner: Option<u64>,
}

impl Writer {
    fn content(&self) -> &[u8] {
        self.base.as_deref().map_or(&self.buf[..], |b| &b[..])
    }

    /// The buffer to write into, copied from `base` first if needed.
    fn buf_mut(&mut self) -> &mut Vec<u8> {
        if let Some(base) = self.base.take() {
            self.buf = spare_buffer(base.len());
            self.buf.extend_from_slice(&base);
        }
        &mut self.buf
    }
}

#[derive(Debug)]
enum Handle {
    Writer(Writer),
    Dir(Vec<(Vec<u8>, u64)>),
}

struct Floor {
    fast: bool,
    direct_reads: bool,
    timeout: Duration,
    uid: u32,
    gid: u32,
    started: SystemTime,
    state: Mutex<State>,
    handles: Mutex<HashMap<u64, Arc<Mutex<Handle>>>>,
    next_fh: AtomicU64,
}

fn set_xattr(list: &mut Vec<(Vec<u8>, Vec<u8>)>, name: &[u8], value: &[u8]) {
    match list.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = value.to_vec(),
        None => list.push((name.to_vec(), value.to_vec())),
    }
}

fn reply_xattr(value: &[u8], size: u32, reply: ReplyXattr) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if (size as usize) < value.len() {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(value);
    }
}

impl Floor {
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
            perm: 0o755,
            nlink: 2,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn file_attr(&self, id: u64, node: &Node) -> FileAttr {
        let size = node.data.len() as u64;
        FileAttr {
            ino: INodeNo(id),
            size,
            blocks: size.div_ceil(512),
            kind: FileType::RegularFile,
            perm: 0o644,
            nlink: 1,
            ..self.dir_attr(id)
        }
    }

    fn attr_of(&self, id: u64) -> Option<FileAttr> {
        match id {
            ROOT | KEYS => Some(self.dir_attr(id)),
            _ => self
                .state
                .lock()
                .unwrap()
                .nodes
                .get(&id)
                .map(|n| self.file_attr(id, n)),
        }
    }

    fn new_handle(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles
            .lock()
            .unwrap()
            .insert(fh, Arc::new(Mutex::new(h)));
        fh
    }

    fn handle(&self, fh: u64) -> Option<Arc<Mutex<Handle>>> {
        self.handles.lock().unwrap().get(&fh).cloned()
    }

    /// The writer of node `id` opened by `pid`: requests without a handle
    /// (open-time truncate, xattrs on the descriptor) go to it.
    fn writer_of(&self, id: u64, pid: u32) -> Option<Arc<Mutex<Handle>>> {
        self.handles
            .lock()
            .unwrap()
            .values()
            .find(|h| matches!(&*h.lock().unwrap(), Handle::Writer(w) if w.node == id && w.pid == pid))
            .cloned()
    }

    fn negative(&self, reply: ReplyEntry) {
        let mut attr = self.dir_attr(0);
        attr.ino = INodeNo(0);
        reply.entry(&self.timeout, &attr, Generation(0));
    }

    /// Publishes a writer's buffer as the current version of its name.
    fn commit(&self, w: &mut Writer) {
        let data = match &w.base {
            Some(base) => base.clone(),
            None => Arc::new(Bytes(std::mem::take(&mut w.buf))),
        };
        w.base = Some(data.clone());
        let mut st = self.state.lock().unwrap();
        if let Some(&old) = st.names.get(&w.name)
            && let Some(n) = st.nodes.get_mut(&old)
        {
            n.current = false;
        }
        let id = match st.nodes.get_mut(&w.node) {
            // A created node becomes the version (as a draft renamed into
            // place keeps its inode).
            Some(n) if n.pending => {
                n.pending = false;
                n.current = true;
                n.data = data;
                n.xattrs = w.xattrs.clone();
                w.node
            }
            _ => st.insert(Node {
                data,
                xattrs: w.xattrs.clone(),
                lookups: 0,
                pending: false,
                current: true,
            }),
        };
        st.names.insert(w.name.clone(), id);
        w.dirty = false;
    }
}

impl Filesystem for Floor {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        for cap in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_PARALLEL_DIROPS,
        ] {
            let _ = config.add_capabilities(cap);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match parent.0 {
            ROOT if name.as_bytes() == b"keys" => {
                reply.entry(&self.timeout, &self.dir_attr(KEYS), Generation(0))
            }
            ROOT => self.negative(reply),
            KEYS => {
                let mut st = self.state.lock().unwrap();
                let Some(&id) = st.names.get(name.as_bytes()) else {
                    drop(st);
                    return self.negative(reply);
                };
                let node = st.nodes.get_mut(&id).expect("names point at nodes");
                node.lookups += 1;
                let attr = self.file_attr(id, node);
                drop(st);
                reply.entry(&self.timeout, &attr, Generation(0));
            }
            _ => reply.error(Errno::ENOTDIR),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        if ino.0 < FIRST_DYNAMIC {
            return;
        }
        let mut st = self.state.lock().unwrap();
        if let Some(n) = st.nodes.get_mut(&ino.0) {
            n.lookups = n.lookups.saturating_sub(nlookup);
            if n.lookups == 0 && !n.current && !n.pending {
                st.nodes.remove(&ino.0);
            }
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if self.fast {
            return reply.error(Errno::EROFS);
        }
        if parent.0 != KEYS {
            return reply.error(Errno::EPERM);
        }
        let mut st = self.state.lock().unwrap();
        let Some(id) = st.names.remove(name.as_bytes()) else {
            return reply.error(Errno::ENOENT);
        };
        if let Some(n) = st.nodes.get_mut(&id) {
            n.current = false;
            // Its bytes go now, not when the kernel forgets the node: a
            // descriptor still open on it reads it as empty.
            n.data = Arc::new(Bytes(Vec::new()));
            if n.lookups == 0 && !n.pending {
                st.nodes.remove(&id);
            }
        }
        reply.ok();
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr_of(ino.0) {
            Some(attr) => reply.attr(&self.timeout, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        if self.fast {
            return reply.error(Errno::EROFS);
        }
        if let Some(size) = size {
            let h = fh
                .and_then(|fh| self.handle(fh.0))
                .or_else(|| self.writer_of(ino.0, req.pid()));
            if let Some(h) = h
                && let Handle::Writer(w) = &mut *h.lock().unwrap()
            {
                w.buf_mut().resize(size as usize, 0);
                w.dirty = true;
            }
        }
        // Readers keep seeing the committed attributes.
        match self.attr_of(ino.0) {
            Some(attr) => reply.attr(&self.timeout, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if self.fast {
            return reply.error(Errno::ENOSYS);
        }
        if flags.acc_mode() == OpenAccMode::O_RDONLY {
            let cache = if self.direct_reads {
                FopenFlags::FOPEN_DIRECT_IO
            } else {
                FopenFlags::FOPEN_KEEP_CACHE
            };
            return reply.opened(FileHandle(0), cache | FopenFlags::FOPEN_NOFLUSH);
        }
        let st = self.state.lock().unwrap();
        let Some(node) = st.nodes.get(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let name = st
            .names
            .iter()
            .find(|(_, id)| **id == ino.0)
            .map(|(n, _)| n.clone());
        let base = Some(node.data.clone());
        let xattrs = node.xattrs.clone();
        drop(st);
        let Some(name) = name else {
            return reply.error(Errno::ENOENT);
        };
        let fh = self.new_handle(Handle::Writer(Writer {
            node: ino.0,
            name,
            pid: req.pid(),
            buf: Vec::new(),
            base,
            xattrs,
            dirty: false,
            owner: None,
        }));
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        if self.fast {
            return reply.error(Errno::EROFS);
        }
        if parent.0 != KEYS {
            return reply.error(Errno::EPERM);
        }
        let node = Node {
            data: Arc::new(Bytes(Vec::new())),
            xattrs: Vec::new(),
            lookups: 1,
            pending: true,
            current: false,
        };
        let attr;
        let id;
        {
            let mut st = self.state.lock().unwrap();
            id = st.insert(node);
            attr = self.file_attr(id, &st.nodes[&id]);
        }
        let fh = self.new_handle(Handle::Writer(Writer {
            node: id,
            name: name.as_bytes().to_vec(),
            pid: req.pid(),
            buf: Vec::new(),
            base: None,
            xattrs: Vec::new(),
            dirty: true,
            owner: None,
        }));
        // Zero timeouts: the name stays invisible to others until commit.
        reply.created(
            &Duration::ZERO,
            &attr,
            Generation(0),
            FileHandle(fh),
            FopenFlags::FOPEN_DIRECT_IO,
        );
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
        let slice = |data: &[u8]| {
            let start = (offset as usize).min(data.len());
            let end = (start + size as usize).min(data.len());
            data[start..end].to_vec()
        };
        if fh.0 != 0
            && let Some(h) = self.handle(fh.0)
            && let Handle::Writer(w) = &*h.lock().unwrap()
        {
            return reply.data(&slice(w.content()));
        }
        let data = match self.state.lock().unwrap().nodes.get(&ino.0) {
            Some(n) => n.data.clone(),
            None => return reply.error(Errno::ENOENT),
        };
        reply.data(&slice(&data));
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
            return reply.error(Errno::EBADF);
        };
        let mut h = h.lock().unwrap();
        let Handle::Writer(w) = &mut *h else {
            return reply.error(Errno::EBADF);
        };
        let (offset, end) = (offset as usize, offset as usize + data.len());
        let buf = w.buf_mut();
        if buf.capacity() == 0 {
            *buf = spare_buffer(end);
        }
        if offset == buf.len() {
            // Sequential: no zero-filling first.
            buf.extend_from_slice(data);
        } else {
            if buf.len() < end {
                buf.resize(end, 0);
            }
            buf[offset..end].copy_from_slice(data);
        }
        w.dirty = true;
        w.owner = lock_owner.map(|o| o.0);
        reply.written(data.len() as u32);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        if self.fast {
            return reply.error(Errno::ENOSYS);
        }
        if let Some(h) = self.handle(fh.0)
            && let Handle::Writer(w) = &mut *h.lock().unwrap()
            && w.dirty
            && w.owner.is_none_or(|o| o == lock_owner.0)
            && (w.owner.is_some() || !w.content().is_empty())
        {
            self.commit(w);
        }
        reply.ok();
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
        if let Some(h) = self.handles.lock().unwrap().remove(&fh.0)
            && let Handle::Writer(w) = &mut *h.lock().unwrap()
        {
            if w.dirty {
                self.commit(w);
            }
            let mut st = self.state.lock().unwrap();
            if let Some(n) = st.nodes.get_mut(&w.node)
                && n.pending
            {
                n.pending = false;
                if n.lookups == 0 {
                    st.nodes.remove(&w.node);
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
        let items = match ino.0 {
            ROOT => vec![(b"keys".to_vec(), KEYS)],
            KEYS => {
                let st = self.state.lock().unwrap();
                st.names.iter().map(|(n, id)| (n.clone(), *id)).collect()
            }
            _ => return reply.error(Errno::ENOTDIR),
        };
        reply.opened(
            FileHandle(self.new_handle(Handle::Dir(items))),
            FopenFlags::empty(),
        );
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(h) = self.handle(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let h = h.lock().unwrap();
        let Handle::Dir(items) = &*h else {
            return reply.error(Errno::EBADF);
        };
        for (i, (name, id)) in items.iter().enumerate().skip(offset as usize) {
            let kind = if *id == KEYS {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            if reply.add(INodeNo(*id), i as u64 + 1, kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let Some(h) = self.handle(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let h = h.lock().unwrap();
        let Handle::Dir(items) = &*h else {
            return reply.error(Errno::EBADF);
        };
        for (i, (name, id)) in items.iter().enumerate().skip(offset as usize) {
            let attr = if *id == KEYS {
                self.dir_attr(KEYS)
            } else {
                let st = self.state.lock().unwrap();
                match st.nodes.get(id) {
                    Some(n) => self.file_attr(*id, n),
                    None => continue,
                }
            };
            if reply.add(
                INodeNo(*id),
                i as u64 + 1,
                OsStr::from_bytes(name),
                &self.timeout,
                &attr,
                Generation(0),
            ) {
                break;
            }
            // The kernel counts every entry it was handed as a lookup.
            if let Some(n) = self.state.lock().unwrap().nodes.get_mut(id) {
                n.lookups += 1;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.handles.lock().unwrap().remove(&fh.0);
        reply.ok();
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
        if self.fast {
            return reply.error(Errno::EROFS);
        }
        if let Some(h) = self.writer_of(ino.0, req.pid())
            && let Handle::Writer(w) = &mut *h.lock().unwrap()
        {
            set_xattr(&mut w.xattrs, name.as_bytes(), value);
            w.dirty = true;
            return reply.ok();
        }
        match self.state.lock().unwrap().nodes.get_mut(&ino.0) {
            Some(n) => set_xattr(&mut n.xattrs, name.as_bytes(), value),
            None => return reply.error(Errno::EPERM),
        }
        reply.ok();
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let find = |list: &[(Vec<u8>, Vec<u8>)]| {
            list.iter()
                .find(|(n, _)| n == name.as_bytes())
                .map(|(_, v)| v.clone())
        };
        let value = match self.writer_of(ino.0, req.pid()) {
            Some(h) => match &*h.lock().unwrap() {
                Handle::Writer(w) => find(&w.xattrs),
                Handle::Dir(_) => None,
            },
            None => self
                .state
                .lock()
                .unwrap()
                .nodes
                .get(&ino.0)
                .and_then(|n| find(&n.xattrs)),
        };
        match value {
            Some(v) => reply_xattr(&v, size, reply),
            None => reply.error(Errno::ENODATA),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let mut out = Vec::new();
        if let Some(n) = self.state.lock().unwrap().nodes.get(&ino.0) {
            for (name, _) in &n.xattrs {
                out.extend_from_slice(name);
                out.push(0);
            }
        }
        reply_xattr(&out, size, reply);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        reply.ok();
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
        reply.error(Errno::from_i32(libc::ENOTTY));
    }
}

fn populate(state: &mut State, spec: &str) -> Result<(), String> {
    let parts: Vec<&str> = spec.split(':').collect();
    if parts.len() != 4 {
        return Err(format!("{spec}: expected PREFIX:START:COUNT:SIZE"));
    }
    let num = |p: &str| p.parse::<u64>().map_err(|e| format!("{spec}: {p}: {e}"));
    let (start, count, size) = (num(parts[1])?, num(parts[2])?, num(parts[3])? as usize);
    // Contents repeat every 251 entries: share them.
    let mut shared: HashMap<u64, Arc<Bytes>> = HashMap::new();
    for i in start..start + count {
        let data = shared
            .entry(i % 251)
            .or_insert_with(|| Arc::new(Bytes(content(i, size))))
            .clone();
        let id = state.insert(Node {
            data,
            xattrs: Vec::new(),
            lookups: 0,
            pending: false,
            current: true,
        });
        state
            .names
            .insert(format!("{}{i:07}", parts[0]).into_bytes(), id);
    }
    Ok(())
}

fn main() {
    env_logger::init();
    let args = Args::parse();
    let mut state = State {
        next: FIRST_DYNAMIC,
        ..State::default()
    };
    for spec in &args.populate {
        if let Err(e) = populate(&mut state, spec) {
            eprintln!("floorfs: {e}");
            std::process::exit(2);
        }
    }
    let fs = Floor {
        fast: args.fast,
        direct_reads: args.direct_reads,
        timeout: Duration::from_secs_f64(args.cache_timeout),
        // SAFETY: getuid/getgid cannot fail.
        uid: unsafe { libc::getuid() },
        gid: unsafe { libc::getgid() },
        started: SystemTime::now(),
        state: Mutex::new(state),
        handles: Mutex::new(HashMap::new()),
        next_fh: AtomicU64::new(1),
    };
    let mut options = vec![
        MountOption::FSName("floorfs".into()),
        MountOption::Subtype("floorfs".into()),
        MountOption::NoAtime,
    ];
    if args.fast {
        options.push(MountOption::RO);
    }
    let mut config = Config::default();
    config.mount_options = options;
    config.acl = SessionACL::Owner;
    config.n_threads = Some(2);
    config.clone_fd = true;

    let signals = SigSet::from_iter([Signal::SIGTERM, Signal::SIGINT]);
    if let Err(e) = signals.thread_block() {
        eprintln!("floorfs: blocking signals: {e}");
        std::process::exit(1);
    }
    let mut session = match Session::new(fs, &args.mountpoint, &config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("floorfs: mounting {}: {e}", args.mountpoint.display());
            std::process::exit(1);
        }
    };
    let mut unmounter = session.unmount_callable();
    std::thread::spawn(move || {
        if signals.wait().is_ok() {
            let _ = unmounter.unmount();
        }
    });
    let mut out = std::io::stdout();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    if let Err(e) = session.run() {
        eprintln!("floorfs: {e}");
        std::process::exit(1);
    }
}
