//! The daemon behind a mount, found through /proc.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::wait::eventually;

/// Waits (up to 5 s) until no process serves `mnt` any more: a daemon
/// whose mount was unmounted from outside still runs for a moment.
pub fn wait_daemon_gone(mnt: &Path) {
    let want = mnt.as_os_str().as_bytes().to_vec();
    eventually(5.0, || {
        !std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == want.as_slice()))
        })
    })
    .expect("the old daemon exited");
}
