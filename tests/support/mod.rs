//! System-call helpers shared by the `mount_*` tests: raw opens with exact
//! flags, xattrs, timestamps, a listing of the store's `data/` tree to prove
//! a refused operation changed nothing, and a forked second process.
#![allow(dead_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn cpath(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// open(2) with exactly these flags (mode 0644 for O_CREAT).
pub fn open(path: &Path, flags: libc::c_int) -> io::Result<File> {
    let p = cpath(path);
    // SAFETY: a valid C string; the descriptor is owned by the File.
    let fd = check(unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC, 0o644) })?;
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// close(2) of a descriptor, returning its error: a commit error shows here.
pub fn close(f: File) -> io::Result<()> {
    let fd = std::os::fd::IntoRawFd::into_raw_fd(f);
    // SAFETY: we own `fd` and close it once.
    check(unsafe { libc::close(fd) }).map(|_| ())
}

/// dup(2): a second descriptor of the same open file.
pub fn dup(f: &File) -> File {
    // SAFETY: a valid descriptor.
    let fd = check(unsafe { libc::dup(f.as_raw_fd()) }).expect("dup");
    // SAFETY: a fresh descriptor we own.
    unsafe { File::from_raw_fd(fd) }
}

pub fn write_fd(f: &File, data: &[u8]) -> io::Result<usize> {
    // SAFETY: a valid descriptor and buffer.
    let n = unsafe { libc::write(f.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

pub fn pread_all(f: &File) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = f.read_at(&mut buf, out.len() as u64).expect("pread");
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

pub fn get_xattr_fd(f: &File, name: &str) -> io::Result<Vec<u8>> {
    let name = CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid descriptor, C string and buffer.
    let n = unsafe {
        libc::fgetxattr(
            f.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

pub fn remove_xattr(path: &Path, name: &str) -> io::Result<()> {
    let p = cpath(path);
    let name = CString::new(name).unwrap();
    // SAFETY: valid C strings.
    check(unsafe { libc::removexattr(p.as_ptr(), name.as_ptr()) }).map(|_| ())
}

/// The names listxattr(2) gives, in order.
pub fn list_xattr(path: &Path) -> io::Result<Vec<String>> {
    let p = cpath(path);
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C string and buffer.
    let n = unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect())
}

/// `user.expire` as a number.
pub fn expire_of(path: &Path) -> u64 {
    let v = super::common::get_xattr(path, "user.expire")
        .unwrap_or_else(|e| panic!("getxattr user.expire {}: {e}", path.display()));
    String::from_utf8(v).unwrap().parse().unwrap()
}

/// `user.tags` as a string.
pub fn tags_of(path: &Path) -> String {
    let v = super::common::get_xattr(path, "user.tags")
        .unwrap_or_else(|e| panic!("getxattr user.tags {}: {e}", path.display()));
    String::from_utf8(v).unwrap()
}

/// `touch -d @sec path`: sets atime and mtime to `sec`.
pub fn set_mtime(path: &Path, sec: i64) -> io::Result<()> {
    let p = cpath(path);
    let t = libc::timespec {
        tv_sec: sec,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: valid C string and two timespecs.
    check(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), 0) }).map(|_| ())
}

/// `touch path`: both times set to now.
pub fn touch_now(path: &Path) -> io::Result<()> {
    let p = cpath(path);
    // SAFETY: valid C string; NULL times means now.
    check(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), std::ptr::null(), 0) }).map(|_| ())
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn mtime_of(path: &Path) -> i64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .mtime()
}

/// Polls `f` for up to `secs` seconds (for things the kernel does after
/// close() returned: RELEASE is asynchronous).
pub fn eventually(secs: f64, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(f(), "not within {secs} s: {what}");
}

/// One file or directory under the store's `data/`, as `ls -liR` would
/// show it: enough to tell that nothing was linked, renamed or re-timed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoreItem {
    pub path: String,
    pub ino: u64,
    pub nlink: u64,
    pub size: u64,
    pub mtime: (i64, i64),
    pub xattr: Vec<u8>,
}

/// Everything under `store/data`, sorted.
pub fn store_listing(store: &Path) -> Vec<StoreItem> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<StoreItem>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let record = if md.is_file() {
                super::common::get_xattr(&p, "user.tagcache").unwrap_or_default()
            } else {
                Vec::new()
            };
            out.push(StoreItem {
                path: p.strip_prefix(root).unwrap().display().to_string(),
                ino: md.ino(),
                nlink: md.nlink(),
                size: if md.is_dir() { 0 } else { md.size() },
                mtime: if md.is_dir() {
                    (0, 0)
                } else {
                    (md.mtime(), md.mtime_nsec())
                },
                xattr: record,
            });
            if md.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let root = store.join("data");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

/// Runs `child` in a forked process (async-signal-safe work only: raw
/// system calls on data prepared before the fork) and returns what it
/// passed to `_exit`.
pub fn in_child(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `child` (raw system calls) and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        let code = child();
        // SAFETY: leaving the child without running any Rust teardown.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid, "waitpid: {}", io::Error::last_os_error());
    assert!(libc::WIFEXITED(status), "child died: status {status}");
    libc::WEXITSTATUS(status)
}

/// errno of the last failed call, for use in a forked child.
pub fn child_errno() -> i32 {
    // SAFETY: reading the thread's errno.
    unsafe { *libc::__errno_location() }
}

/// open(O_CREAT|O_EXCL|O_WRONLY) from a second process: 0 if it opened
/// (and closed again without writing), else the errno.
pub fn excl_open_in_child(path: &Path) -> i32 {
    let p = cpath(path);
    in_child(|| {
        // SAFETY: raw system calls on a C string made before the fork.
        let fd = unsafe {
            libc::open(
                p.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
                0o644,
            )
        };
        if fd < 0 {
            return child_errno();
        }
        // SAFETY: our descriptor.
        unsafe { libc::close(fd) };
        0
    })
}

/// `STORE/data/AA/BB/key:<hex(name)>`, computed as SPEC §1 says.
pub fn key_file(store: &Path, name: &[u8]) -> std::path::PathBuf {
    use md5::{Digest, Md5};
    let file = format!("key:{}", hex::encode(name));
    let digest = hex::encode(Md5::digest(file.as_bytes()));
    store
        .join("data")
        .join(&digest[0..2])
        .join(&digest[2..4])
        .join(file)
}

/// A small tmpfs (a store that can run out of space or inodes), unmounted
/// on drop.
pub struct Tmpfs {
    pub dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn new(options: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("running mount");
        assert!(status.success(), "mounting a tmpfs failed");
        Tmpfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        super::common::unmount(self.dir.path());
    }
}

/// Runs `work` on another thread and fails the test if it has not finished
/// within `secs` (a deadlocked mount): the mount's FUSE connection is then
/// aborted through fusectl, so that the stuck calls return and the test
/// process can end.
pub fn within<T: Send + 'static>(
    secs: u64,
    mnt: &Path,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(_) => {
            abort_connection(mnt);
            panic!("not done within {secs} s: the mount is deadlocked");
        }
    }
}

fn abort_connection(mnt: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = mnt.display().to_string();
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() > 4 && f[4] == want {
            let minor = f[2].split(':').nth(1).unwrap_or("");
            let conns = Path::new("/sys/fs/fuse/connections");
            if std::fs::read_dir(conns)
                .map(|mut d| d.next().is_none())
                .unwrap_or(true)
            {
                let _ = std::process::Command::new("mount")
                    .args(["-t", "fusectl", "none"])
                    .arg(conns)
                    .status();
            }
            let _ = std::fs::write(conns.join(minor).join("abort"), "1");
        }
    }
}

/// Waits (up to 5 s) until no process serves `mnt` any more: a daemon
/// whose mount was unmounted from outside still runs for a moment.
pub fn wait_daemon_gone(mnt: &Path) {
    let want = mnt.as_os_str().as_bytes().to_vec();
    eventually(5.0, "the old daemon exited", || {
        !std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == want.as_slice()))
        })
    });
}
