//! The FUSE adapter: each kernel request is decoded, passed to the file
//! system (`crate::fs`), and its answer replied, with nothing decided here
//! but what the kernel protocol itself requires:
//! - the fast view answers OPEN and FLUSH with ENOSYS, which switches them
//!   off for that mount for good, so a hit there sends no request at all;
//! - which directories a request holds locked, and so when its
//!   invalidations may run (`notify`);
//! - keeping the kernel's node count within `--max-nodes` (`shed`).
//!
//! Every failure goes through `Kernel::fail`: logged with the operation,
//! counted when it is a fault, and mapped through the one errno table.

mod backing;
mod notify;
mod shed;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, Notifier, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::fs::{
    Attr, DirEntry, DirectoryReplier, Entry, FileKind, Fs, FsError, Lookup, Opened, SetAttr,
    SetTime,
};
use crate::store::layout;
use notify::Notify;

/// The kernel side of one daemon: its file system, the notifiers of its
/// sessions, and the shedding state they share.
pub struct Kernel {
    fs: Arc<Fs>,
    notify: Arc<Notify>,
    shedding: AtomicBool,
}

impl Kernel {
    pub fn new(fs: Arc<Fs>) -> Arc<Kernel> {
        let notify = Notify::new(fs.mount_count());
        Arc::new(Kernel {
            fs,
            notify,
            shedding: AtomicBool::new(false),
        })
    }

    pub fn fs(&self) -> &Arc<Fs> {
        &self.fs
    }

    /// The `fuser::Filesystem` of mount `idx`.
    pub fn filesystem(self: &Arc<Self>, idx: usize) -> FuseFs {
        FuseFs {
            kernel: self.clone(),
            idx,
            backing: backing::Backing::default(),
        }
    }

    /// The notifier of mount `idx`'s session, once it exists.
    pub fn set_notifier(&self, idx: usize, notifier: Notifier) {
        self.notify.set_notifier(idx, notifier);
    }

    /// Logs a failed request and gives its errno.
    fn fail(&self, op: &'static str, e: &FsError) -> Errno {
        if e.is_fault() {
            log::error!("{op}: {e}");
            self.fs.count_error(op);
        } else {
            log::debug!("{op}: {e}");
        }
        Errno::from_i32(e.errno())
    }
}

/// The `fuser::Filesystem` of one mount.
pub struct FuseFs {
    kernel: Arc<Kernel>,
    idx: usize,
    /// The backing files of passthrough read opens.
    backing: backing::Backing,
}

impl std::fmt::Debug for FuseFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FuseFs").field("mount", &self.idx).finish()
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.id),
        size: a.size,
        blocks: a.blocks,
        atime: a.time,
        mtime: a.time,
        ctime: a.time,
        crtime: a.time,
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn file_type(k: FileKind) -> FileType {
    match k {
        FileKind::Directory => FileType::Directory,
        FileKind::RegularFile => FileType::RegularFile,
    }
}

fn fopen_flags(o: &Opened) -> FopenFlags {
    let mut f = FopenFlags::empty();
    if o.direct_io {
        f |= FopenFlags::FOPEN_DIRECT_IO;
    }
    if o.keep_cache {
        f |= FopenFlags::FOPEN_KEEP_CACHE;
    }
    if o.noflush {
        f |= FopenFlags::FOPEN_NOFLUSH;
    }
    f
}

fn set_time(t: TimeOrNow) -> SetTime {
    match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(t) => SetTime::At(t),
    }
}

fn reply_entry(e: &Entry, reply: ReplyEntry) {
    reply.entry(&e.ttl, &file_attr(&e.attr), Generation(0));
}

fn reply_xattr(value: &[u8], size: u32, reply: ReplyXattr) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if (size as usize) < value.len() {
        reply.error(Errno::from_i32(FsError::Range.errno()));
    } else {
        reply.data(value);
    }
}

struct PlainDir<'a>(&'a mut ReplyDirectory);

impl DirectoryReplier for PlainDir<'_> {
    fn add(&mut self, e: DirEntry<'_>) -> bool {
        self.0.add(
            INodeNo(e.id),
            e.offset,
            file_type(e.kind),
            OsStr::from_bytes(e.name),
        )
    }
}

struct PlusDir<'a>(&'a mut ReplyDirectoryPlus);

impl DirectoryReplier for PlusDir<'_> {
    fn add(&mut self, e: DirEntry<'_>) -> bool {
        self.0.add(
            INodeNo(e.id),
            e.offset,
            OsStr::from_bytes(e.name),
            &e.ttl,
            &file_attr(&e.attr),
            Generation(0),
        )
    }
}

impl FuseFs {
    fn mount(&self) -> crate::fs::Mount<'_> {
        self.kernel.fs.mount(self.idx)
    }

    fn fail(&self, op: &'static str, e: &FsError) -> Errno {
        self.kernel.fail(op, e)
    }

    fn finish_locked(
        &self,
        change: &crate::fs::Change,
        locked: &[u64],
        reply: impl FnOnce() + Send + 'static,
    ) {
        self.kernel
            .notify
            .finish_locked(&self.kernel.fs, change, locked, reply);
    }

    fn finish(&self, change: &crate::fs::Change, reply: impl FnOnce() + Send + 'static) {
        self.kernel.notify.finish(&self.kernel.fs, change, reply);
    }
}

impl Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        for cap in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
        ] {
            if let Err(missing) = config.add_capabilities(cap) {
                log::warn!("kernel lacks {missing:?}");
            }
        }
        // Read opens of the full mount are passed through to the version's
        // file where the kernel can (the fast view sends no OPEN at all).
        // Depth 1: the store's file system is not itself stacked on a
        // passthrough FUSE mount.
        if !self.mount().is_fast()
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(1).is_ok()
        {
            self.mount().set_passthrough(true);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.mount().lookup(parent.0, name.as_bytes()) {
            Ok(Lookup::Found(e)) => {
                reply_entry(&e, reply);
                self.kernel.shed_nodes();
            }
            Ok(Lookup::Negative(ttl)) => {
                // Node id 0 with a timeout: the kernel caches the miss.
                let mut attr = file_attr(&self.kernel.fs.negative_attr());
                attr.ino = INodeNo(0);
                reply.entry(&ttl, &attr, Generation(0));
            }
            Ok(Lookup::Uncached) => reply.error(Errno::from_i32(FsError::NotFound.errno())),
            Err(e) => reply.error(self.fail("lookup", &e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.mount().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.mount().getattr(ino.0) {
            Ok(e) => reply.attr(&e.ttl, &file_attr(&e.attr)),
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
            mtime: mtime.map(set_time),
            fh: fh.map(|f| f.0),
        };
        match self.mount().setattr(req.pid(), ino.0, a) {
            Ok((e, change)) => {
                let respond = move || reply.attr(&e.ttl, &file_attr(&e.attr));
                match change {
                    Some(change) => self.finish_locked(&change, &[], respond),
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
        if let Err(e) = self.mount().mknod(parent.0) {
            reply.error(self.fail("mknod", &e));
        }
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
        match self.mount().mkdir(parent.0, name.as_bytes()) {
            Ok((attr, change)) => {
                let timeout = self.kernel.fs.options().cache_timeout;
                self.finish_locked(&change, &[parent.0], move || {
                    reply.entry(&timeout, &file_attr(&attr), Generation(0))
                })
            }
            Err(e) => reply.error(self.fail("mkdir", &e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.mount().unlink(parent.0, name.as_bytes()) {
            Ok(change) => self.finish_locked(&change, &[parent.0], || reply.ok()),
            Err(e) => reply.error(self.fail("unlink", &e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mount = self.mount();
        match mount.rmdir(parent.0, name.as_bytes()) {
            Ok(change) => {
                // The kernel holds tags/ and the removed directory.
                let victim = mount.tag_node(name.as_bytes());
                let locked = [parent.0, victim.unwrap_or(parent.0)];
                self.finish_locked(&change, &locked, || reply.ok())
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
        if let Err(e) = self.mount().symlink() {
            reply.error(self.fail("symlink", &e));
        }
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
        let renamed = self.mount().rename(
            parent.0,
            name.as_bytes(),
            newparent.0,
            newname.as_bytes(),
            flags.bits(),
        );
        match renamed {
            Ok(change) => self.finish_locked(&change, &[parent.0, newparent.0], || reply.ok()),
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
        match self.mount().link(ino.0, newparent.0, newname.as_bytes()) {
            Ok((Lookup::Found(e), change)) => {
                self.finish_locked(&change, &[newparent.0], move || reply_entry(&e, reply));
                self.kernel.shed_nodes();
            }
            Ok(_) => reply.error(self.fail("link", &FsError::NotFound)),
            Err(e) => reply.error(self.fail("link", &e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mount = self.mount();
        if mount.is_fast() {
            // Switches OPEN (and RELEASE) off for the whole fast view.
            return reply.error(Errno::ENOSYS);
        }
        match mount.open(req.pid(), ino.0, flags.0) {
            Ok(o) if o.passthrough => {
                match self.backing.open(ino.0, o.fh, || {
                    mount
                        .with_version_file(o.fh, |fd| reply.open_backing(fd))
                        .unwrap_or_else(|| Err(std::io::Error::from_raw_os_error(libc::EBADF)))
                }) {
                    Ok(id) => {
                        reply.opened_passthrough(FileHandle(o.fh), FopenFlags::FOPEN_NOFLUSH, &id)
                    }
                    Err(e) => {
                        // Registering needs CAP_SYS_ADMIN: without it, never
                        // again on this mount.
                        if e.raw_os_error() == Some(libc::EPERM) {
                            mount.set_passthrough(false);
                            log::info!("reads are not passed through on this mount: {e}");
                        } else {
                            log::warn!("passing a read through: {e}");
                        }
                        mount.passthrough_refused(o.fh);
                        let o = Opened {
                            direct_io: true,
                            passthrough: false,
                            ..o
                        };
                        reply.opened(FileHandle(o.fh), fopen_flags(&o));
                    }
                }
            }
            Ok(o) => reply.opened(FileHandle(o.fh), fopen_flags(&o)),
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
        match self.mount().read(ino.0, fh.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(self.fail("read", &e)),
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
        // A big write is answered before its bytes are written: the
        // kernel copies the next request to the other session thread
        // meanwhile.
        self.mount()
            .write_answering(fh.0, offset, data, lock_owner.map(|o| o.0), |r| match r {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(self.fail("write", &e)),
            });
    }

    fn flush(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let mount = self.mount();
        if mount.is_fast() {
            // Switches FLUSH off for the whole fast view.
            return reply.error(Errno::ENOSYS);
        }
        match mount.flush(fh.0, lock_owner.0, req.pid()) {
            Ok(Some(change)) => self.finish(&change, move || reply.ok()),
            Ok(None) => reply.ok(),
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
        self.backing.release(fh.0);
        match self.mount().release(fh.0) {
            Ok(Some(change)) => self.finish(&change, move || reply.ok()),
            Ok(None) => reply.ok(),
            Err(e) => {
                // Nobody waits for this answer: it is logged whatever it is.
                log::error!("commit at release: {e}");
                if e.is_fault() {
                    self.kernel.fs.count_error("release");
                }
                reply.ok();
            }
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.mount().fsync(fh.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.fail("fsync", &e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.mount().opendir(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
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
        match self
            .mount()
            .readdir(fh.0, offset, false, &mut PlainDir(&mut reply))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.fail("readdir", &e)),
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
        match self
            .mount()
            .readdir(fh.0, offset, true, &mut PlusDir(&mut reply))
        {
            Ok(()) => {
                reply.ok();
                self.kernel.shed_nodes();
            }
            Err(e) => reply.error(self.fail("readdirplus", &e)),
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
        self.mount().releasedir(fh.0);
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
        match self.mount().statfs() {
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
            Err(e) => reply.error(self.fail("statfs", &e)),
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
        match self
            .mount()
            .setxattr(req.pid(), ino.0, name.as_bytes(), Some(value))
        {
            Ok(Some(change)) => self.finish_locked(&change, &[], move || reply.ok()),
            Ok(None) => reply.ok(),
            Err(e) => reply.error(self.fail("setxattr", &e)),
        }
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.mount().getxattr(req.pid(), ino.0, name.as_bytes()) {
            Ok(value) => reply_xattr(&value, size, reply),
            Err(e) => reply.error(self.fail("getxattr", &e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.mount().listxattr(ino.0) {
            Ok(names) => reply_xattr(names, size, reply),
            Err(e) => reply.error(self.fail("listxattr", &e)),
        }
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self
            .mount()
            .setxattr(req.pid(), ino.0, name.as_bytes(), None)
        {
            Ok(Some(change)) => self.finish_locked(&change, &[], move || reply.ok()),
            Ok(None) => reply.ok(),
            Err(e) => reply.error(self.fail("removexattr", &e)),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        match self.mount().access(ino.0, mask.contains(AccessFlags::W_OK)) {
            Ok(()) => reply.ok(),
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
        match self
            .mount()
            .create(req.pid(), parent.0, name.as_bytes(), flags)
        {
            // Zero timeouts: the name stays invisible to others until commit.
            Ok((attr, fh)) => reply.created(
                &Duration::ZERO,
                &file_attr(&attr),
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
        // Not a terminal (Python's isatty() asks on every open).
        reply.error(Errno::from_i32(libc::ENOTTY));
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
