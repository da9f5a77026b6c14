//! System calls as the tests make them: exact open flags, raw descriptors,
//! xattrs by name. Every wrapper returns `Result<_, Errno>`, so a test
//! compares with `Err(Errno::ENOENT)` and a failure prints the errno's
//! name; `errno` and `outcome` put std's `io::Error` results the same way.

use std::ffi::CString;
use std::fmt::Debug;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub use nix::errno::Errno;

/// A failed call's error as an errno: the wrappers' own `Errno`, or std's
/// `io::Error` (one that carries no OS error is a bug in the test).
pub trait ToErrno {
    fn to_errno(&self) -> Errno;
}

impl ToErrno for Errno {
    fn to_errno(&self) -> Errno {
        *self
    }
}

impl ToErrno for std::io::Error {
    fn to_errno(&self) -> Errno {
        let raw = self.raw_os_error();
        Errno::from_raw(raw.unwrap_or_else(|| panic!("not an OS error: {self}")))
    }
}

impl<E: ToErrno> ToErrno for &E {
    fn to_errno(&self) -> Errno {
        (*self).to_errno()
    }
}

/// What a call came to, its value dropped: success or an errno.
pub type Outcome = Result<(), Errno>;

/// The errno of a call that must fail.
pub fn errno<T: Debug, E: ToErrno>(r: Result<T, E>) -> Errno {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.to_errno(),
    }
}

/// A call's outcome: `Ok(())` or the errno.
pub fn outcome<T, E: ToErrno>(r: Result<T, E>) -> Outcome {
    r.map(drop).map_err(|e| e.to_errno())
}

/// An outcome as a number another process can print or exit with: 0 for
/// success, else the errno.
pub fn code_of<T>(r: &Result<T, Errno>) -> i32 {
    r.as_ref().err().map_or(0, |e| *e as i32)
}

/// The outcome such a number stands for.
pub fn from_code(code: i32) -> Outcome {
    match code {
        0 => Ok(()),
        e => Err(Errno::from_raw(e)),
    }
}

pub fn cpath(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

fn cname(name: impl AsRef<[u8]>) -> CString {
    CString::new(name.as_ref()).unwrap()
}

/// open(2) with exactly these flags (mode 0644 for O_CREAT), close-on-exec.
pub fn open(path: &Path, flags: libc::c_int) -> Result<File, Errno> {
    let p = cpath(path);
    // SAFETY: a valid C string.
    let fd = Errno::result(unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC, 0o644) })?;
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// close(2) of a descriptor, returning its error: a commit error shows here.
pub fn close(f: File) -> Result<(), Errno> {
    let fd = f.into_raw_fd();
    // SAFETY: we own `fd` and close it once.
    Errno::result(unsafe { libc::close(fd) }).map(drop)
}

/// dup(2): a second descriptor of the same open file.
pub fn dup(f: &File) -> File {
    // SAFETY: a valid descriptor.
    let fd = Errno::result(unsafe { libc::dup(f.as_raw_fd()) }).expect("dup");
    // SAFETY: a fresh descriptor we own.
    unsafe { File::from_raw_fd(fd) }
}

/// One write(2): the bytes it took.
pub fn write_fd(f: &File, data: &[u8]) -> Result<usize, Errno> {
    // SAFETY: a valid descriptor and buffer.
    let n = Errno::result(unsafe { libc::write(f.as_raw_fd(), data.as_ptr().cast(), data.len()) })?;
    Ok(n as usize)
}

/// Writes all of `data` in write(2)s of at most `chunk` bytes.
pub fn write_chunks(f: &File, data: &[u8], chunk: usize) -> Result<(), Errno> {
    let mut done = 0;
    while done < data.len() {
        let end = (done + chunk.max(1)).min(data.len());
        match write_fd(f, &data[done..end]) {
            Ok(n) => done += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads to the end in read(2)s of `chunk` bytes.
pub fn read_chunks(f: &File, chunk: usize) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk.max(1)];
    loop {
        // SAFETY: a valid descriptor and buffer.
        let n = unsafe { libc::read(f.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match Errno::result(n) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n as usize]),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// The whole file at `path` (std::fs::read).
pub fn read(path: &Path) -> Result<Vec<u8>, Errno> {
    std::fs::read(path).map_err(|e| e.to_errno())
}

/// The whole file from byte 0, whatever the descriptor's offset.
pub fn pread_all(f: &File) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let n = f
            .read_at(&mut buf, out.len() as u64)
            .map_err(|e| e.to_errno())?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

pub fn set_xattr(path: &Path, name: impl AsRef<[u8]>, value: &[u8]) -> Result<(), Errno> {
    let (p, name) = (cpath(path), cname(name));
    // SAFETY: valid C strings and buffer.
    let r = unsafe {
        libc::setxattr(
            p.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(r).map(drop)
}

pub fn set_xattr_fd(f: &File, name: impl AsRef<[u8]>, value: &[u8]) -> Result<(), Errno> {
    let name = cname(name);
    // SAFETY: valid descriptor, C string and buffer.
    let r = unsafe {
        libc::fsetxattr(
            f.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(r).map(drop)
}

/// The value of xattr `name` (up to 64 KiB, the kernel's limit).
pub fn get_xattr(path: &Path, name: impl AsRef<[u8]>) -> Result<Vec<u8>, Errno> {
    let (p, name) = (cpath(path), cname(name));
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: valid C strings and buffer.
    let n = unsafe {
        libc::getxattr(
            p.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    buf.truncate(Errno::result(n)? as usize);
    Ok(buf)
}

pub fn get_xattr_fd(f: &File, name: impl AsRef<[u8]>) -> Result<Vec<u8>, Errno> {
    let name = cname(name);
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: valid descriptor, C string and buffer.
    let n = unsafe {
        libc::fgetxattr(
            f.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    buf.truncate(Errno::result(n)? as usize);
    Ok(buf)
}

pub fn remove_xattr(path: &Path, name: impl AsRef<[u8]>) -> Result<(), Errno> {
    let (p, name) = (cpath(path), cname(name));
    // SAFETY: valid C strings.
    Errno::result(unsafe { libc::removexattr(p.as_ptr(), name.as_ptr()) }).map(drop)
}

/// The names listxattr(2) gives, in order.
pub fn list_xattr(path: &Path) -> Result<Vec<String>, Errno> {
    let p = cpath(path);
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C string and buffer.
    let n = unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    buf.truncate(Errno::result(n)? as usize);
    Ok(buf
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect())
}

/// `touch -d @sec path`: sets atime and mtime to `sec`.
pub fn set_mtime(path: &Path, sec: i64) -> Result<(), Errno> {
    let p = cpath(path);
    let t = libc::timespec {
        tv_sec: sec,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: valid C string and two timespecs.
    Errno::result(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), 0) })
        .map(drop)
}

/// `touch path`: both times set to now.
pub fn touch_now(path: &Path) -> Result<(), Errno> {
    let p = cpath(path);
    // SAFETY: valid C string; NULL times means now.
    Errno::result(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), std::ptr::null(), 0) })
        .map(drop)
}

pub fn mkdir(path: &Path) -> Result<(), Errno> {
    let p = cpath(path);
    // SAFETY: a valid C string.
    Errno::result(unsafe { libc::mkdir(p.as_ptr(), 0o755) }).map(drop)
}

pub fn rmdir(path: &Path) -> Result<(), Errno> {
    let p = cpath(path);
    // SAFETY: a valid C string.
    Errno::result(unsafe { libc::rmdir(p.as_ptr()) }).map(drop)
}

pub fn unlink(path: &Path) -> Result<(), Errno> {
    let p = cpath(path);
    // SAFETY: a valid C string.
    Errno::result(unsafe { libc::unlink(p.as_ptr()) }).map(drop)
}

/// The names in a directory, as raw bytes and sorted.
pub fn list_dir(dir: &Path) -> Result<Vec<Vec<u8>>, Errno> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| e.to_errno())? {
        let e = e.map_err(|e| e.to_errno())?;
        names.push(e.file_name().as_bytes().to_vec());
    }
    names.sort();
    Ok(names)
}

pub fn mknod(path: &Path, mode: libc::mode_t, dev: libc::dev_t) -> Result<(), Errno> {
    let p = cpath(path);
    // SAFETY: a valid C string.
    Errno::result(unsafe { libc::mknod(p.as_ptr(), mode, dev) }).map(drop)
}

/// truncate(2) of a path.
pub fn truncate(path: &Path, len: i64) -> Result<(), Errno> {
    let p = cpath(path);
    // SAFETY: a valid C string.
    Errno::result(unsafe { libc::truncate(p.as_ptr(), len) }).map(drop)
}

pub fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), Errno> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| e.to_errno())
}

/// `mv -T --exchange a b`: renameat2(RENAME_EXCHANGE).
pub fn rename_exchange(a: &Path, b: &Path) -> Result<(), Errno> {
    let (a, b) = (cpath(a), cpath(b));
    // SAFETY: valid C strings.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    Errno::result(r).map(drop)
}

/// `renameat2(a, b, RENAME_NOREPLACE)`: `mv -n`.
pub fn rename_noreplace(a: &Path, b: &Path) -> Result<(), Errno> {
    let (a, b) = (cpath(a), cpath(b));
    // SAFETY: valid C strings.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    Errno::result(r).map(drop)
}

/// Maps the first page of `f` with `prot` and `flags`; the file's bytes
/// in it, copied out before it is unmapped.
pub fn mmap(f: &File, prot: i32, flags: i32) -> Result<Vec<u8>, Errno> {
    // SAFETY: mapping a descriptor we own; unmapped below.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), 4096, prot, flags, f.as_raw_fd(), 0) };
    if p == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    let len = f.metadata().map_err(|e| e.to_errno())?.len() as usize;
    // SAFETY: the mapping is at least `len` bytes of the file.
    let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, len.min(4096)) }.to_vec();
    // SAFETY: the mapping made above.
    unsafe { libc::munmap(p, 4096) };
    Ok(bytes)
}
