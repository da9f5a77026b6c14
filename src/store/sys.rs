//! Thin, fd-relative system calls. Every path here is resolved with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` or acts on a final
//! component only (`*at` calls with no-follow flags), so a symlink planted in
//! the store is never followed and nothing resolves outside it.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

pub fn cstr(s: &str) -> CString {
    CString::new(s).expect("store paths hold no NUL")
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;

/// Opens `path` below `dir` without following any symlink on the way.
pub fn open_beneath(dir: BorrowedFd, path: &str, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let path = cstr(path);
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC | libc::O_NOFOLLOW) as u64,
        mode: mode as u64,
        resolve: RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    let mut moved_out = 0;
    loop {
        // SAFETY: `how` is a valid open_how of the size passed.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel just gave us this descriptor.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => {}
            // What was found got moved out of `dir` before the open ended (a
            // cleanup reaping an entry, a tag directory being removed), and
            // RESOLVE_BENEATH calls that an escape: look again, to find it
            // gone (or put back).
            Some(libc::EXDEV) if moved_out < 8 => moved_out += 1,
            _ => return Err(err),
        }
    }
}

pub fn open_dir(dir: BorrowedFd, path: &str) -> io::Result<OwnedFd> {
    open_beneath(dir, path, libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

/// Opens a file of the store for reading. O_NOATIME: the expiry is the
/// mtime, in the future, so under relatime every read would dirty the
/// inode; the last use (atime) is set by the daemon, at most once a minute
/// per entry. Without the right to (not the owner, no CAP_FOWNER), plain.
pub fn open_file(dir: BorrowedFd, path: &str) -> io::Result<File> {
    let flags = libc::O_RDONLY | libc::O_NONBLOCK;
    match open_beneath(dir, path, flags | libc::O_NOATIME, 0) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            open_beneath(dir, path, flags, 0).map(File::from)
        }
        other => other.map(File::from),
    }
}

/// Creates each missing directory of `path` below `dir` and opens the last.
pub fn mkdir_all(dir: BorrowedFd, path: &str) -> io::Result<OwnedFd> {
    mkdir_all_new(dir, path).map(|(fd, _)| fd)
}

/// `mkdir_all`, saying whether it made the last directory.
pub fn mkdir_all_new(dir: BorrowedFd, path: &str) -> io::Result<(OwnedFd, bool)> {
    match open_dir(dir, path) {
        // ESTALE: removed by another client of a network file system.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESTALE)) => {}
        other => return other.map(|fd| (fd, false)),
    }
    let mut current = dir.try_clone_to_owned()?;
    let mut made = false;
    for part in path.split('/') {
        made = match mkdirat(current.as_fd(), part) {
            Ok(()) => true,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => false,
            Err(e) => return Err(e),
        };
        current = open_dir(current.as_fd(), part)?;
    }
    Ok((current, made))
}

pub fn mkdirat(dir: BorrowedFd, name: &str) -> io::Result<()> {
    let name = cstr(name);
    // SAFETY: valid descriptor and C string.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755) }).map(drop)
}

pub fn unlinkat(dir: BorrowedFd, name: &str, is_dir: bool) -> io::Result<()> {
    let name = cstr(name);
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid descriptor and C string.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

pub fn renameat(
    from_dir: BorrowedFd,
    from: &str,
    to_dir: BorrowedFd,
    to: &str,
    flags: u32,
) -> io::Result<()> {
    let (from, to) = (cstr(from), cstr(to));
    // SAFETY: valid descriptors and C strings.
    cvt(unsafe {
        libc::renameat2(
            from_dir.as_raw_fd(),
            from.as_ptr(),
            to_dir.as_raw_fd(),
            to.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// Hard-links the file open as `file` to `name` in `dir`.
pub fn link_fd(file: BorrowedFd, dir: BorrowedFd, name: &str) -> io::Result<()> {
    let name = cstr(name);
    // SAFETY: valid descriptors and C strings; AT_EMPTY_PATH links `file` itself.
    cvt(unsafe {
        libc::linkat(
            file.as_raw_fd(),
            c"".as_ptr(),
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    })
    .map(drop)
}

pub fn fstat(fd: BorrowedFd) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is written by the kernel on success.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    Ok(unsafe { st.assume_init() })
}

/// `fstat`, and the birth time (in nanoseconds, never 0) where the file
/// system records one.
pub fn fstat_btime(fd: BorrowedFd) -> io::Result<(libc::stat, Option<u64>)> {
    let mut stx = MaybeUninit::<libc::statx>::uninit();
    // SAFETY: `stx` is written by the kernel on success.
    let r = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_BASIC_STATS | libc::STATX_BTIME,
            stx.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Ok((fstat(fd)?, None));
    }
    // SAFETY: written by the kernel.
    let stx = unsafe { stx.assume_init() };
    Ok(from_statx(&stx))
}

fn from_statx(stx: &libc::statx) -> (libc::stat, Option<u64>) {
    // SAFETY: a plain C struct; every field we read is set below.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    st.st_dev = libc::makedev(stx.stx_dev_major, stx.stx_dev_minor);
    st.st_ino = stx.stx_ino;
    st.st_mode = stx.stx_mode as libc::mode_t;
    st.st_nlink = stx.stx_nlink as libc::nlink_t;
    st.st_uid = stx.stx_uid;
    st.st_gid = stx.stx_gid;
    st.st_size = stx.stx_size as libc::off_t;
    st.st_blksize = stx.stx_blksize as libc::blksize_t;
    st.st_blocks = stx.stx_blocks as libc::blkcnt_t;
    st.st_atime = stx.stx_atime.tv_sec;
    st.st_atime_nsec = stx.stx_atime.tv_nsec as i64;
    st.st_mtime = stx.stx_mtime.tv_sec;
    st.st_mtime_nsec = stx.stx_mtime.tv_nsec as i64;
    st.st_ctime = stx.stx_ctime.tv_sec;
    st.st_ctime_nsec = stx.stx_ctime.tv_nsec as i64;
    let btime = (stx.stx_mask & libc::STATX_BTIME != 0)
        .then(|| stx.stx_btime.tv_sec as u64 * 1_000_000_000 + stx.stx_btime.tv_nsec as u64)
        .filter(|&b| b != 0);
    (st, btime)
}

/// `statx` of a final component in `dir` (never following a symlink), as
/// a `stat` and a birth time, like `fstat_btime`.
pub fn statx_at(dir: BorrowedFd, name: &str) -> io::Result<(libc::stat, Option<u64>)> {
    let c = cstr(name);
    let mut stx = MaybeUninit::<libc::statx>::uninit();
    // SAFETY: `stx` is written by the kernel on success.
    cvt(unsafe {
        libc::statx(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_BASIC_STATS | libc::STATX_BTIME,
            stx.as_mut_ptr(),
        )
    })?;
    // SAFETY: written by the kernel.
    let stx = unsafe { stx.assume_init() };
    Ok(from_statx(&stx))
}

/// `getxattrat(2)` (Linux 6.13) of a final component in `dir`, never
/// following a symlink; `Ok(None)` when it has no such attribute. Older
/// kernels: open it (O_NOFOLLOW) and `fgetxattr`.
pub fn getxattr_at(dir: BorrowedFd, name: &str, attr: &CStr) -> io::Result<Option<Vec<u8>>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static MISSING: AtomicBool = AtomicBool::new(false);
    const SYS_GETXATTRAT: libc::c_long = 464;
    #[repr(C)]
    struct XattrArgs {
        value: u64,
        size: u32,
        flags: u32,
    }
    if !MISSING.load(Ordering::Relaxed) {
        let c = cstr(name);
        let mut buf = vec![0u8; 512];
        loop {
            let mut args = XattrArgs {
                value: buf.as_mut_ptr() as u64,
                size: buf.len() as u32,
                flags: 0,
            };
            // SAFETY: valid strings, args and buffer of the size given.
            let n = unsafe {
                libc::syscall(
                    SYS_GETXATTRAT,
                    dir.as_raw_fd(),
                    c.as_ptr(),
                    libc::AT_SYMLINK_NOFOLLOW,
                    attr.as_ptr(),
                    &mut args as *mut XattrArgs,
                    std::mem::size_of::<XattrArgs>(),
                )
            };
            if n >= 0 {
                buf.truncate(n as usize);
                return Ok(Some(buf));
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::ENODATA) => return Ok(None),
                Some(libc::ERANGE) => buf.resize(buf.len() * 4, 0),
                Some(libc::ENOSYS) => {
                    MISSING.store(true, Ordering::Relaxed);
                    break;
                }
                _ => return Err(err),
            }
        }
    }
    let file = open_file(dir, name)?;
    fgetxattr(file.as_fd(), attr)
}

/// `lstat` of a final component in `dir`.
pub fn lstatat(dir: BorrowedFd, name: &str) -> io::Result<libc::stat> {
    let name = cstr(name);
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is written by the kernel on success.
    cvt(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(unsafe { st.assume_init() })
}

/// Sets a file's mtime (the entry's expiry); atime is left alone.
pub fn set_mtime(fd: BorrowedFd, sec: i64, nsec: i64) -> io::Result<()> {
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        },
    ];
    // SAFETY: two valid timespecs.
    cvt(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) }).map(drop)
}

pub fn fgetxattr(fd: BorrowedFd, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 512];
    loop {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe {
            libc::fgetxattr(
                fd.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(Some(buf));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ENODATA) => return Ok(None),
            Some(libc::ERANGE) => buf.resize(buf.len() * 4, 0),
            _ => return Err(err),
        }
    }
}

pub fn fremovexattr(fd: BorrowedFd, name: &CStr) -> io::Result<()> {
    // SAFETY: a valid descriptor and C string.
    cvt(unsafe { libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()) }).map(drop)
}

pub fn fsetxattr(fd: BorrowedFd, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: value is valid for its length.
    cvt(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map(drop)
}

/// `fsync(2)`: the file (or directory) and its metadata on disk.
pub fn fsync(fd: BorrowedFd) -> io::Result<()> {
    // SAFETY: plain syscall on a valid descriptor.
    cvt(unsafe { libc::fsync(fd.as_raw_fd()) }).map(drop)
}

/// `fdatasync(2)`: the file's data on disk (on a network file system: on
/// the servers).
pub fn fdatasync(fd: BorrowedFd) -> io::Result<()> {
    // SAFETY: plain syscall on a valid descriptor.
    cvt(unsafe { libc::fdatasync(fd.as_raw_fd()) }).map(drop)
}

/// Drops the file's clean pages from this host's page cache, so that the
/// next read asks the file system.
pub fn drop_cache(fd: BorrowedFd) -> io::Result<()> {
    // SAFETY: plain syscall on a valid descriptor.
    match unsafe { libc::posix_fadvise(fd.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) } {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Whether `fd` is on a file system other hosts may share: a FUSE one
/// (GlusterFS's client among them), NFS, CephFS, SMB.
pub fn is_network_fs(fd: BorrowedFd) -> bool {
    const FUSE: i64 = 0x6573_5546;
    const NFS: i64 = 0x6969;
    const CEPH: i64 = 0x00c3_6400;
    const SMB2: i64 = 0xfe53_4d42;
    const CIFS: i64 = 0xff53_4d42;
    let mut st = MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `st` is written by the kernel on success.
    if unsafe { libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: written on success.
    #[allow(clippy::unnecessary_cast)] // f_type's width depends on the architecture
    let kind = unsafe { st.assume_init() }.f_type as i64;
    matches!(kind, FUSE | NFS | CEPH | SMB2 | CIFS)
}

/// A blocking `flock`, released when dropped.
#[derive(Debug)]
pub struct Flock<'a> {
    fd: BorrowedFd<'a>,
}

impl<'a> Flock<'a> {
    pub fn exclusive(fd: BorrowedFd<'a>) -> io::Result<Flock<'a>> {
        Flock::take(fd, libc::LOCK_EX)
    }

    pub fn shared(fd: BorrowedFd<'a>) -> io::Result<Flock<'a>> {
        Flock::take(fd, libc::LOCK_SH)
    }

    fn take(fd: BorrowedFd<'a>, op: libc::c_int) -> io::Result<Flock<'a>> {
        loop {
            // SAFETY: plain syscall on a valid descriptor.
            match cvt(unsafe { libc::flock(fd.as_raw_fd(), op) }) {
                Ok(_) => return Ok(Flock { fd }),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for Flock<'_> {
    fn drop(&mut self) {
        // SAFETY: plain syscall on a valid descriptor.
        unsafe { libc::flock(self.fd.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Sets a file's atime to now (the entry's last use), its mtime (the
/// expiry) left alone.
pub fn touch_atime(fd: BorrowedFd) -> io::Result<()> {
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
    ];
    // SAFETY: two valid timespecs.
    cvt(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) }).map(drop)
}

/// `statvfs` of the file system `fd` is on.
pub fn fstatvfs(fd: BorrowedFd) -> io::Result<libc::statvfs> {
    let mut st = MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `st` is written by the kernel on success.
    cvt(unsafe { libc::fstatvfs(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: written on success.
    Ok(unsafe { st.assume_init() })
}

/// Non-blocking `flock`; `Ok(false)` when someone else holds it.
pub fn try_flock(fd: BorrowedFd, exclusive: bool) -> io::Result<bool> {
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    } | libc::LOCK_NB;
    // SAFETY: plain syscall on a valid descriptor.
    match cvt(unsafe { libc::flock(fd.as_raw_fd(), op) }) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Makes `dst` a copy of `src`: a reflink where the file system has them,
/// else an in-kernel copy.
pub fn copy_file(src: &File, dst: &File) -> io::Result<()> {
    // SAFETY: FICLONE takes the source descriptor as its argument.
    if unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) } == 0 {
        return Ok(());
    }
    let len = fstat(src.as_fd())?.st_size as u64;
    copy_range(src, 0, dst, 0, len)
}

/// Copies `src` from `from` to its end into `dst` at `to`, in the kernel.
pub fn copy_range(src: &File, from: u64, dst: &File, to: u64, len: u64) -> io::Result<()> {
    let end = from + len;
    let mut off_in = from as i64;
    let mut off_out = to as i64;
    while (off_in as u64) < end {
        // SAFETY: offsets are valid pointers to i64.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                dst.as_raw_fd(),
                &mut off_out,
                (end - off_in as u64) as usize,
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            break;
        }
    }
    Ok(())
}

/// `pread(2)`: up to `buf.len()` bytes at `offset`.
pub fn pread(fd: BorrowedFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for its length.
        let n = unsafe {
            libc::pread(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                offset as i64,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The names in directory `dir` (without `.` and `..`).
pub fn read_dir(dir: BorrowedFd) -> io::Result<Vec<Vec<u8>>> {
    Ok(read_dir_inos(dir)?
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

/// The names in directory `dir`, none when it was removed meanwhile
/// (ENOENT here; ESTALE on GlusterFS when another client removed it).
pub fn read_dir_or_gone(dir: BorrowedFd) -> io::Result<Vec<Vec<u8>>> {
    match read_dir(dir) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESTALE)) => Ok(Vec::new()),
        other => other,
    }
}

/// The names in directory `dir` (without `.` and `..`) with their inode
/// numbers, read from `dir`'s own position (a directory the caller just
/// opened). A directory that cannot be read to its end is an error.
pub fn list_fresh_dir(dir: BorrowedFd, buf: &mut Vec<u8>) -> io::Result<Vec<(Vec<u8>, u64)>> {
    let mut names = Vec::new();
    if buf.len() < 8192 {
        buf.resize(8192, 0);
    }
    loop {
        // SAFETY: buf is valid for its length.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            return Ok(names);
        }
        let mut at = 0usize;
        while at + 19 <= n as usize {
            // struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name.
            let ino = u64::from_ne_bytes(buf[at..at + 8].try_into().expect("8 bytes"));
            let reclen = u16::from_ne_bytes(buf[at + 16..at + 18].try_into().expect("2 bytes"));
            let name = &buf[at + 19..at + reclen as usize];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if name != b"." && name != b".." {
                names.push((name.to_vec(), ino));
            }
            at += reclen as usize;
        }
    }
}

/// The names in directory `dir` (without `.` and `..`) with their inode
/// numbers. A directory that cannot be read to its end is an error, never
/// a short list.
pub fn read_dir_inos(dir: BorrowedFd) -> io::Result<Vec<(Vec<u8>, u64)>> {
    let fd = open_dir(dir, ".")?;
    let raw = fd.as_raw_fd();
    // SAFETY: fdopendir takes ownership of the descriptor on success.
    let dp = unsafe { libc::fdopendir(raw) };
    if dp.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(fd);
    let mut names = Vec::new();
    let result = loop {
        // SAFETY: errno is this thread's; readdir sets it only on error.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: dp is a valid DIR*; readdir's result is valid until the next call.
        let ent = unsafe { libc::readdir(dp) };
        if ent.is_null() {
            let err = io::Error::last_os_error();
            break match err.raw_os_error() {
                Some(0) | None => Ok(()),
                Some(_) => Err(err),
            };
        }
        // SAFETY: a valid dirent until the next readdir.
        let (name, ino) = unsafe {
            (
                CStr::from_ptr((*ent).d_name.as_ptr()).to_bytes(),
                (*ent).d_ino,
            )
        };
        if name != b"." && name != b".." {
            names.push((name.to_vec(), ino));
        }
    };
    // SAFETY: closes the DIR* and its descriptor.
    unsafe { libc::closedir(dp) };
    result.map(|()| names)
}

pub fn as_str(name: &[u8]) -> Option<&str> {
    std::str::from_utf8(name).ok()
}

pub fn os(name: &[u8]) -> &OsStr {
    OsStr::from_bytes(name)
}

/// The current CLOCK_REALTIME as (seconds, nanoseconds).
pub fn now() -> (i64, i64) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec, ts.tv_nsec)
}
