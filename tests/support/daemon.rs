//! The daemon behind a mount, found through /proc: its pid, its threads'
//! kernel stacks for a hang report, a SIGKILL that waits for every thread,
//! aborting its FUSE connections, and panics in its log.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::mount::unmount;
use super::wait::eventually;

/// Pids of the live daemons whose command line names `path`: the store or
/// the mount point, as it was given (each test's temp dir makes both
/// unique). The command-line tools are not daemons.
pub fn daemon_pids(path: &Path) -> Vec<i32> {
    let want = path.as_os_str().as_bytes();
    let mut pids = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let is_ours = args.first().is_some_and(|a0| a0.ends_with(b"tagcachefs"));
        let tool = args
            .get(1)
            .is_some_and(|a| *a == b"cleanup" || *a == b"stats");
        if is_ours && !tool && args.iter().skip(1).any(|a| *a == want) && !is_zombie(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// The one daemon serving `path` (its store or mount point).
pub fn daemon_pid(path: &Path) -> i32 {
    let pids = daemon_pids(path);
    assert_eq!(
        pids.len(),
        1,
        "expected one daemon for {}, found {pids:?}",
        path.display()
    );
    pids[0]
}

/// Threads of `pid` that are neither zombie nor dead. A process whose
/// leader is a zombie may still have a thread stuck in the kernel, and it
/// keeps the process's descriptors (/dev/fuse among them) open.
pub fn live_tasks(pid: i32) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("stat")).is_ok_and(|stat| {
                stat.rsplit_once(") ")
                    .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
            })
        })
        .map(|t| t.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Gone, or a zombie with no thread left.
pub fn is_zombie(pid: i32) -> bool {
    live_tasks(pid).is_empty()
}

/// SIGKILLs `pid` and waits up to 5 s for every thread of it to end; the
/// kernel stacks of those that did not.
pub fn kill9(pid: i32) -> Result<(), String> {
    // SAFETY: plain syscall.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    for _ in 0..500 {
        if is_zombie(pid) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(format!(
        "5 s after SIGKILL, process {pid} still has threads {:?}:\n{}",
        live_tasks(pid),
        stacks_of(pid)
    ))
}

/// Waits (up to 5 s) until no daemon serves `mnt` any more: a daemon
/// whose mount was unmounted from outside still runs for a moment.
pub fn wait_daemon_gone(mnt: &Path) {
    eventually(5.0, || daemon_pids(mnt).is_empty()).expect("the old daemon exited");
}

/// Aborts the FUSE connections of the mounts of `path` (a store: all its
/// mounts; or one mount point) through the fusectl file system, mounted
/// for the purpose if it is not: whatever waits on them returns ENOTCONN,
/// and a daemon stuck in the kernel can end. Returns how many were
/// aborted.
pub fn abort_connections(path: &Path) -> usize {
    let want = path.display().to_string();
    let minors: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mut r = right.split(' ');
            let (fstype, source) = (r.next()?, r.next()?);
            let mut l = left.split(' ');
            let dev = l.nth(2)?;
            let point = l.nth(1)?;
            (fstype.starts_with("fuse") && (source == want || point == want))
                .then(|| dev.split_once(':').map(|(_, minor)| minor.to_string()))
                .flatten()
        })
        .collect();
    let ctl = Path::new("/sys/fs/fuse/connections");
    let mounted_here = !minors.is_empty()
        && !ctl.join(&minors[0]).exists()
        && Command::new("mount")
            .args(["-t", "fusectl", "none"])
            .arg(ctl)
            .status()
            .is_ok_and(|s| s.success());
    let aborted = minors
        .iter()
        .filter(|m| std::fs::write(ctl.join(m).join("abort"), "1").is_ok())
        .count();
    if mounted_here {
        unmount(ctl);
    }
    aborted
}

/// Lines of the daemon log that show a panic.
pub fn panics_in(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("panicked") || l.contains("RUST_BACKTRACE"))
        .map(str::to_string)
        .collect()
}

/// The kernel stacks of every thread of `pid`, for a hang report.
pub fn stacks_of(pid: i32) -> String {
    let mut out = String::new();
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return format!("(no /proc/{pid})\n");
    };
    for t in rd.flatten() {
        let p = t.path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        let wchan = std::fs::read_to_string(p.join("wchan")).unwrap_or_default();
        let stack = std::fs::read_to_string(p.join("stack")).unwrap_or_default();
        out.push_str(&format!(
            "  task {} {} wchan={wchan}\n{stack}",
            t.file_name().to_string_lossy(),
            comm.trim()
        ));
    }
    out
}
