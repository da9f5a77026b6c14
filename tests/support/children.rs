//! Other processes a test starts: a forked child for a few raw system
//! calls from a second process.

use std::path::Path;

use super::sys::{Errno, cpath};

/// Runs `child` in a forked process (async-signal-safe work only: raw
/// system calls on data prepared before the fork) and returns what it
/// passed to `_exit`.
pub fn in_child(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `child` (raw system calls) and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", Errno::last());
    if pid == 0 {
        let code = child();
        // SAFETY: leaving the child without running any Rust teardown.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid, "waitpid: {}", Errno::last());
    assert!(libc::WIFEXITED(status), "child died: status {status}");
    libc::WEXITSTATUS(status)
}

/// open(O_CREAT|O_EXCL|O_WRONLY) from a second process, closed again
/// without writing if it opened.
pub fn excl_open_in_child(path: &Path) -> Result<(), Errno> {
    let p = cpath(path);
    let code = in_child(|| {
        // SAFETY: raw system calls on a C string made before the fork.
        let fd = unsafe {
            libc::open(
                p.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
                0o644,
            )
        };
        if fd < 0 {
            return Errno::last_raw();
        }
        // SAFETY: our descriptor.
        unsafe { libc::close(fd) };
        0
    });
    match code {
        0 => Ok(()),
        e => Err(Errno::from_raw(e)),
    }
}
