//! What the daemon asks of the operating system: FUSE connection numbers
//! and aborting them through fusectl, the open-file limit, unmounting, and
//! detaching from the terminal.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;

/// One line of /proc/self/mountinfo, for a FUSE mount.
#[derive(Debug, Clone)]
pub(super) struct FuseMount {
    /// The connection number (the device's minor: /sys/fs/fuse/connections/N).
    pub conn: u64,
    pub mount_point: std::path::PathBuf,
    /// `fuse.tagcachefs` for ours.
    pub fstype: String,
}

/// The FUSE mounts of this mount namespace, in mount order. Read from
/// mountinfo: nothing here touches a mount (a call on a mount whose daemon
/// is dead or hung would block).
pub(super) fn fuse_mounts() -> Vec<FuseMount> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let unescape = |s: &str| {
        s.replace("\\040", " ")
            .replace("\\011", "\t")
            .replace("\\012", "\n")
            .replace("\\134", "\\")
    };
    info.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split(' ').next()?;
            if !fstype.starts_with("fuse") || fstype == "fusectl" {
                return None;
            }
            let f: Vec<&str> = left.split(' ').collect();
            let (major, minor) = f.get(2)?.split_once(':')?;
            Some(FuseMount {
                conn: (major.parse::<u64>().ok()? << 20) | minor.parse::<u64>().ok()?,
                mount_point: unescape(f.get(4)?).into(),
                fstype: fstype.to_string(),
            })
        })
        .collect()
}

/// `path` made absolute without resolving its last component (which may
/// be a mount nobody answers for).
pub(super) fn absolute(path: &std::path::Path) -> std::path::PathBuf {
    let name = path.file_name();
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    let parent = parent.unwrap_or(std::path::Path::new("."));
    match (std::fs::canonicalize(parent), name) {
        (Ok(p), Some(name)) => p.join(name),
        _ => path.to_path_buf(),
    }
}

/// The FUSE connection number of the mount at `path`.
pub(super) fn connection_of(path: &std::path::Path) -> Option<u64> {
    let want = absolute(path);
    fuse_mounts()
        .into_iter()
        .rev()
        .find(|m| m.mount_point == want)
        .map(|m| m.conn)
}

pub(super) fn abort_connection(conn: &str) {
    let dir = std::path::Path::new("/sys/fs/fuse/connections");
    let abort = dir.join(conn).join("abort");
    if !abort.exists() {
        // fusectl is usually mounted by systemd; mount it if it is not.
        let (src, target, fstype) = (c"fusectl", c"/sys/fs/fuse/connections", c"fusectl");
        // SAFETY: valid C strings; a failure is harmless here.
        unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
    }
    let _ = std::fs::write(&abort, "1");
}

/// Raises the soft open-file limit to the hard one: every open read or
/// write descriptor of a client holds a file of the daemon.
pub(super) fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit to fill and set.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Unmounts one of our mounts: the system call as root, fusermount3
/// otherwise; lazily if it is busy (open files keep being served until
/// closed).
pub(super) fn unmount(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("paths hold no NUL");
    // SAFETY: a valid C string.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return;
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EBUSY) {
        // SAFETY: a valid C string.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
            return;
        }
    }
    let status = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(path)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        log::error!("unmounting {}: {err}", path.display());
    }
}

/// Unmounts `path` once: the system call as root, `fusermount3 -u`
/// otherwise.
pub(super) fn unmount_once(path: &std::path::Path) -> std::io::Result<()> {
    umount_with(path, 0, &["-u"])
}

/// Detaches `path` now (MNT_DETACH, or `fusermount3 -u -z`): open files
/// keep their mount until closed.
pub(super) fn detach(path: &std::path::Path) -> std::io::Result<()> {
    umount_with(path, libc::MNT_DETACH, &["-u", "-z"])
}

fn umount_with(path: &std::path::Path, flags: i32, fusermount: &[&str]) -> std::io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("paths hold no NUL");
    // SAFETY: a valid C string.
    if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EPERM) {
        return Err(err);
    }
    let status = std::process::Command::new("fusermount3")
        .args(fusermount)
        .arg(path)
        .status()?;
    if status.success() { Ok(()) } else { Err(err) }
}

/// Points stdin/stdout at /dev/null and stderr at the log file (or
/// /dev/null), so that a caller capturing our output is not kept waiting.
pub(super) fn detach_stdio(log_file: Option<&std::path::Path>) {
    let null = File::options().read(true).write(true).open("/dev/null");
    let log = log_file.and_then(|p| File::options().create(true).append(true).open(p).ok());
    if let Ok(null) = null {
        let err = log.as_ref().unwrap_or(&null);
        // SAFETY: dup2 onto the standard descriptors.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
            libc::dup2(err.as_raw_fd(), 2);
        }
    }
}
