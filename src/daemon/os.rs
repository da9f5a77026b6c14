//! What the daemon asks of the operating system: FUSE connection numbers
//! and aborting them through fusectl, the open-file limit, unmounting, and
//! detaching from the terminal.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;

/// The FUSE connection number of the mount at `path`, from mountinfo (a
/// stat of our own mount would ask this daemon, which is not serving yet).
pub(super) fn connection_of(path: &std::path::Path) -> Option<u64> {
    let path = std::fs::canonicalize(path).ok()?;
    let want = path.to_str()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let unescape = |s: &str| {
        s.replace("\\040", " ")
            .replace("\\011", "\t")
            .replace("\\012", "\n")
            .replace("\\134", "\\")
    };
    info.lines()
        .rev()
        .find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let fstype = f
                .iter()
                .position(|x| *x == "-")
                .and_then(|i| f.get(i + 1))?;
            (fstype.starts_with("fuse") && unescape(f.get(4)?) == want).then(|| f[2].to_string())
        })
        .and_then(|dev| {
            let (major, minor) = dev.split_once(':')?;
            Some((major.parse::<u64>().ok()? << 20) | minor.parse::<u64>().ok()?)
        })
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
