//! Mount points a dead daemon left, and unmounting.
//!
//! - A serving daemon records, per FUSE connection, its pid and mount point
//!   in a runtime directory (`/run/tagcachefs`, or the user's runtime
//!   directory). A connection whose recorded process is gone, or is a
//!   zombie whose threads are stuck in the kernel (the notifier blocked in
//!   an invalidation when everything was killed), is served by nobody.
//! - `tagcachefs STORE MNT` on such a mount point aborts its connection
//!   (through fusectl, mounted if need be), which fails every request on it
//!   and frees every client blocked there, detaches the dead mount and
//!   mounts anew. A mount point served by a live daemon is refused.
//! - Only a `fuse.tagcachefs` mount is ever aborted, and only when no live
//!   daemon of ours serves it. Nothing here makes a call on the mount
//!   itself: on a connection nobody serves it would block.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::os::{self, FuseMount};

/// Where the serving records are.
fn runtime_dir() -> PathBuf {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return PathBuf::from("/run/tagcachefs");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("tagcachefs"),
        _ => PathBuf::from(format!("/tmp/tagcachefs-{uid}")),
    }
}

fn record_path(conn: u64) -> PathBuf {
    runtime_dir().join(format!("conn-{conn}"))
}

/// This process serves connection `conn`, mounted at `mount_point`.
pub(super) fn record_serving(conn: u64, mount_point: &Path) {
    use std::os::unix::fs::DirBuilderExt;
    let dir = runtime_dir();
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir);
    let pid = std::process::id() as i32;
    let started = start_time(pid).unwrap_or(0);
    let text = format!("{pid}\n{started}\n{}\n", mount_point.display());
    if let Err(e) = std::fs::write(record_path(conn), text) {
        log::warn!(
            "recording the daemon of connection {conn} in {}: {e}",
            dir.display()
        );
    }
}

/// Connection `conn` is served no more (a clean unmount).
pub(super) fn forget_serving(conn: u64) {
    let _ = std::fs::remove_file(record_path(conn));
}

/// When process `pid` started (clock ticks after boot): with the pid, it
/// names one process, also once pids wrap around.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    // Field 22 of stat; `rest` starts at field 3.
    rest.split(' ').nth(19)?.parse().ok()
}

/// Whether process `pid` is a tagcachefs daemon still running: not gone,
/// not a zombie (a killed daemon whose stuck threads keep it from being
/// reaped), not dying (its main thread exiting, or SIGKILL pending: its
/// threads stuck in the kernel cannot take it), its program ours.
fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return false;
    };
    // `rest` starts at field 3, the state; field 9 is the flags: a main
    // thread exiting (PF_EXITING) took its SIGKILL (no longer pending
    // then), though a thread stuck in the kernel may keep the process from
    // becoming a zombie. A daemon's main thread exits only with it.
    const PF_EXITING: u64 = 0x4;
    let mut fields = rest.split(' ');
    let state = fields.next().unwrap_or_default();
    let flags: u64 = fields.nth(5).and_then(|f| f.parse().ok()).unwrap_or(0);
    if matches!(state, "Z" | "X") || flags & PF_EXITING != 0 {
        return false;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let killed = status.lines().any(|l| {
        let pending = l
            .strip_prefix("ShdPnd:")
            .or_else(|| l.strip_prefix("SigPnd:"));
        pending
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (libc::SIGKILL - 1)) != 0)
    });
    if killed {
        return false;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    argv0.ends_with(b"tagcachefs") || argv0.ends_with(b"mount.fuse.tagcachefs")
}

/// The live daemon serving `m`, if any: the recorded one, or (for a mount
/// with no record) a tagcachefs process whose command line names it.
fn server_of(m: &FuseMount) -> Option<i32> {
    if let Ok(text) = std::fs::read_to_string(record_path(m.conn)) {
        let mut lines = text.lines();
        let pid = lines.next().and_then(|l| l.parse().ok())?;
        let started: u64 = lines.next().and_then(|l| l.parse().ok())?;
        // A pid used again since belongs to another process.
        return (alive(pid) && start_time(pid) == Some(started)).then_some(pid);
    }
    let want = m.mount_point.as_os_str().as_bytes();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let cwd = std::fs::read_link(e.path().join("cwd")).ok()?;
        // Compared as written (no call on any path: one may be a hung mount).
        let names_it = cmdline.split(|&b| b == 0).skip(1).any(|a| {
            let p = lexical(&cwd.join(std::ffi::OsStr::from_bytes(a)));
            p.as_os_str().as_bytes() == want
        });
        (names_it && alive(pid)).then_some(pid)
    })
}

/// `path` with `.` and `..` resolved as written, touching nothing.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The FUSE mount at `mount_point` that is seen there (the last mounted).
fn topmost_mount(mount_point: &Path) -> Option<FuseMount> {
    os::fuse_mounts()
        .into_iter()
        .rev()
        .find(|m| m.mount_point == mount_point)
}

/// What `tagcachefs STORE MNT` does first: a tagcachefs mount at `path`
/// that nobody serves is aborted and detached (`Ok(true)`); one a live
/// daemon serves is an error; anything else is left alone.
pub(super) fn take_over(path: &Path) -> Result<bool, String> {
    let want = os::absolute(path);
    let Some(m) = topmost_mount(&want) else {
        return Ok(false);
    };
    if m.fstype != "fuse.tagcachefs" {
        return Ok(false);
    }
    if let Some(pid) = server_of(&m) {
        return Err(format!(
            "{}: already mounted, served by tagcachefs process {pid} (tagcachefs unmount {} first)",
            want.display(),
            want.display()
        ));
    }
    log::warn!(
        "{}: its daemon is gone; aborting FUSE connection {} and mounting anew",
        want.display(),
        m.conn
    );
    release_dead(&m)?;
    Ok(true)
}

/// Frees a mount nobody serves: aborts its connection (every request on it
/// fails, every client blocked there returns), then detaches it.
fn release_dead(m: &FuseMount) -> Result<(), String> {
    os::abort_connection(&m.conn.to_string());
    forget_serving(m.conn);
    os::detach(&m.mount_point).map_err(|e| format!("{}: detaching: {e}", m.mount_point.display()))
}

/// `tagcachefs unmount MNT [--force]`: unmounts cleanly if a live daemon
/// serves it (lazily when busy, with `force`); a mount nobody serves is
/// aborted first, so that no client stays blocked.
pub fn unmount(path: &Path, force: bool) -> Result<(), String> {
    let want = os::absolute(path);
    let Some(m) = topmost_mount(&want) else {
        return Err(format!("{}: not a FUSE mount point", want.display()));
    };
    if m.fstype != "fuse.tagcachefs" {
        return Err(format!(
            "{}: a {} mount, not tagcachefs",
            want.display(),
            m.fstype
        ));
    }
    if server_of(&m).is_none() {
        return release_dead(&m);
    }
    match os::unmount_once(&want) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) && force => {
            os::detach(&want).map_err(|e| format!("{}: detaching: {e}", want.display()))
        }
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Err(format!(
            "{}: busy (files open on it); --force detaches it now, its daemon serving the open files until they close",
            want.display()
        )),
        Err(e) => Err(format!("{}: {e}", want.display())),
    }
}
