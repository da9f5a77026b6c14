//! Mounting and serving: fork, mount, report readiness through a pipe, serve
//! until unmounted or signalled.
//!
//! The parent returns only once the kernel handshake of every session is
//! done (so a script can use the mount on its next line), or prints why the
//! mount failed. SIGTERM, SIGINT and SIGHUP unmount cleanly; an external
//! `umount` of either mount point ends the daemon and unmounts the other.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fuser::{BackgroundSession, Config, MountOption, Session, SessionACL};
use nix::sys::signal::{SigSet, Signal};

use crate::cli::MountConfig;
use crate::fs::{Core, Options};
use crate::store::Store;

pub fn run(config: MountConfig) -> Result<(), String> {
    let store = Store::open(&config.store).map_err(|e| e.to_string())?;
    let mut ready: Option<File> = None;
    if !config.foreground {
        let (read_end, write_end) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
        // SAFETY: no other thread exists yet; the child only continues this
        // single-threaded code.
        match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
            nix::unistd::ForkResult::Parent { .. } => {
                drop(write_end);
                return wait_ready(read_end);
            }
            nix::unistd::ForkResult::Child => {
                drop(read_end);
                let _ = nix::unistd::setsid();
                ready = Some(File::from(write_end));
            }
        }
    }
    // Before any thread exists (the guardian is a fork of this process).
    let mut guardian = spawn_guardian(&mut ready);
    let signals = SigSet::from_iter([Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP]);
    signals
        .thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;

    let result = serve(config, store, &mut ready, guardian.as_mut());
    if let Some(g) = guardian.as_mut() {
        let _ = g.write_all(b"done\n");
    }
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            if let Some(mut pipe) = ready {
                let _ = pipe.write_all(e.as_bytes());
            }
            Err(e)
        }
    }
}

/// The parent's side: wait for "ok" or an error message from the child.
fn wait_ready(read_end: OwnedFd) -> Result<(), String> {
    let mut message = String::new();
    File::from(read_end)
        .read_to_string(&mut message)
        .map_err(|e| format!("waiting for the mount: {e}"))?;
    match message.as_str() {
        "ok" => Ok(()),
        "" => Err("the serving process exited before the mount was ready".into()),
        m => Err(m.to_string()),
    }
}

fn mount_config(config: &MountConfig, read_only: bool) -> Config {
    let mut options = vec![
        MountOption::FSName(config.store.display().to_string()),
        MountOption::Subtype("tagcachefs".into()),
        MountOption::NoAtime,
    ];
    if read_only {
        options.push(MountOption::RO);
    }
    if config.allow_other {
        options.push(MountOption::DefaultPermissions);
    }
    for flag in &config.flags {
        options.push(match flag.as_str() {
            "nosuid" => MountOption::NoSuid,
            "suid" => MountOption::Suid,
            "nodev" => MountOption::NoDev,
            "dev" => MountOption::Dev,
            "noexec" => MountOption::NoExec,
            "exec" => MountOption::Exec,
            "sync" => MountOption::Sync,
            "dirsync" => MountOption::DirSync,
            _ => continue,
        });
    }
    let mut c = Config::default();
    c.mount_options = options;
    c.acl = if config.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    c.n_threads = Some(2);
    c.clone_fd = true;
    c
}

fn serve(
    config: MountConfig,
    store: Store,
    ready: &mut Option<File>,
    mut guardian: Option<&mut File>,
) -> Result<(), String> {
    let opts = Options {
        default_ttl: config.default_expire,
        cache_timeout: config.cache_timeout,
        read_only: config.read_only,
        max_nodes: config.max_nodes.unwrap_or_else(default_max_nodes),
    };
    log::info!("at most {} entry nodes", opts.max_nodes);
    let core = Core::new(store, opts, config.read_mount.is_some());
    let mut mounts = vec![(
        config.mountpoint.clone(),
        mount_config(&config, config.read_only),
    )];
    if let Some(path) = &config.read_mount {
        mounts.push((path.clone(), mount_config(&config, true)));
    }
    let mut sessions = Vec::new();
    for (idx, (path, mount_config)) in mounts.iter().enumerate() {
        // On failure, dropping the sessions made so far unmounts them.
        let session = Session::new(core.filesystem(idx), path, mount_config)
            .map_err(|e| format!("mounting {}: {e}", path.display()))?;
        core.set_notifier(idx, session.notifier());
        sessions.push(session);
        if let (Some(g), Some(conn)) = (guardian.as_mut(), connection_of(path)) {
            let _ = writeln!(g, "conn {conn}");
        }
        log::info!("mounted {} on {}", config.store.display(), path.display());
    }

    if let Some(mut pipe) = ready.take() {
        let _ = pipe.write_all(b"ok");
        drop(pipe);
        detach_stdio(config.log_file.as_deref());
    } else if let Some(path) = &config.log_file {
        detach_stdio(Some(path));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let signalled = stop.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let signals = SigSet::from_iter([Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP]);
            if let Ok(sig) = signals.wait() {
                log::info!("{sig}: unmounting");
                signalled.store(true, Ordering::SeqCst);
            }
        })
        .map_err(|e| e.to_string())?;

    let sweeper = core.clone();
    let interval = config.cleanup_interval;
    std::thread::Builder::new()
        .name("cleanup".into())
        .spawn(move || {
            // At start, what a crashed daemon left in tmp/; a full sweep
            // (which also removes empty tags, such as one just made with
            // mkdir) only after an interval.
            match sweeper.store().reclaim_tmp() {
                Ok(r) => log::info!(
                    "reclaimed {} tmp files left by earlier processes",
                    r.tmp_files
                ),
                Err(e) => log::error!("reclaiming tmp/: {e}"),
            }
            if interval == 0 {
                return;
            }
            loop {
                std::thread::sleep(Duration::from_secs(interval));
                if let Err(e) = sweeper.store().cleanup() {
                    log::error!("cleanup: {e}");
                }
            }
        })
        .map_err(|e| e.to_string())?;

    // fuser unmounts a session's mount point by path when its handle drops,
    // even after an external umount, which would take down a new mount made
    // at the same path meanwhile. So the handles are never dropped, and the
    // daemon unmounts, by itself, only mounts that are still its own.
    let running: Vec<BackgroundSession> = sessions
        .into_iter()
        .map(Session::spawn)
        .collect::<std::io::Result<_>>()
        .map_err(|e| format!("serving: {e}"))?;
    let paths: Vec<PathBuf> = mounts.into_iter().map(|(p, _)| p).collect();
    // The first session to end (unmounted from outside) or a signal takes
    // the others with it.
    while !stop.load(Ordering::SeqCst) && !running.iter().any(|s| s.guard.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for (session, path) in running.iter().zip(&paths) {
        if !session.guard.is_finished() {
            unmount(path);
        }
    }
    while !running.iter().all(|s| s.guard.is_finished()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::mem::forget(running);
    log::info!("unmounted {}", config.mountpoint.display());
    Ok(())
}

/// Forks the guardian: a process that outlives the daemon's main thread.
/// If the daemon is killed while its notifier thread waits in the kernel
/// for a directory lock that a request to this very daemon holds (an
/// invalidation racing `rm`), that thread can never end, the process
/// never exits and the mount hangs. The guardian hears of the main
/// thread's death (PR_SET_PDEATHSIG) and, unless the daemon said it was
/// done, aborts the daemon's FUSE connections, which fails the stuck
/// request and frees everything. Returns the pipe that tells the guardian
/// the connections and "done".
fn spawn_guardian(ready: &mut Option<File>) -> Option<File> {
    let (read_end, write_end) = nix::unistd::pipe().ok()?;
    let parent = nix::unistd::getpid();
    // SAFETY: called before this process starts any thread.
    match unsafe { nix::unistd::fork() }.ok()? {
        nix::unistd::ForkResult::Parent { .. } => Some(File::from(write_end)),
        nix::unistd::ForkResult::Child => {
            drop(write_end);
            drop(ready.take());
            // A program of its own name, so that nothing mistakes it for
            // the daemon; the control pipe's read end is inherited.
            let fd = read_end.as_raw_fd().to_string();
            let parent = parent.as_raw().to_string();
            let argv = [
                c"tagcachefs-guardian".to_owned(),
                c"--guardian".to_owned(),
                cstring(&fd),
                cstring(&parent),
            ];
            let _ = nix::unistd::execv(c"/proc/self/exe", &argv);
            guard(
                File::from(read_end),
                nix::unistd::Pid::from_raw(parent.parse().unwrap_or(0)),
            )
        }
    }
}

fn cstring(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).expect("numbers hold no NUL")
}

/// `tagcachefs-guardian --guardian FD PARENT`: the guardian after exec.
pub fn guardian_main(args: &[std::ffi::OsString]) -> ! {
    let number = |i: usize| args.get(i).and_then(|a| a.to_str()?.parse::<i32>().ok());
    let (Some(fd), Some(parent)) = (number(0), number(1)) else {
        std::process::exit(2)
    };
    // SAFETY: the descriptor was handed down by our parent for this use.
    let control = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    guard(control, nix::unistd::Pid::from_raw(parent))
}

fn guard(mut control: File, parent: nix::unistd::Pid) -> ! {
    detach_stdio(None);
    // SAFETY: plain prctl; SIGUSR1 is blocked and waited for below.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGUSR1) };
    let death = SigSet::from_iter([Signal::SIGUSR1]);
    let _ = death.thread_block();
    if nix::unistd::getppid() != parent {
        std::process::exit(0);
    }
    let mut said = String::new();
    let mut buf = [0u8; 256];
    loop {
        // Waits until the daemon writes, exits whole (EOF: its
        // connections went with it), or its main thread dies.
        if readable(&control, 100) {
            match control.read(&mut buf) {
                Ok(0) | Err(_) => std::process::exit(0),
                Ok(n) => said.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        if said.lines().any(|l| l == "done") {
            std::process::exit(0);
        }
        let timeout = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid signal set and timespec.
        let got = unsafe { libc::sigtimedwait(death.as_ref(), std::ptr::null_mut(), &timeout) };
        if got == libc::SIGUSR1 {
            break;
        }
    }
    // The main thread is gone. A whole exit closes the pipe at once.
    if readable(&control, 300) {
        let mut rest = String::new();
        if matches!(control.read_to_string(&mut rest), Ok(0)) || said.contains("done") {
            std::process::exit(0);
        }
        said.push_str(&rest);
        if said.lines().any(|l| l == "done") {
            std::process::exit(0);
        }
    }
    for conn in said.lines().filter_map(|l| l.strip_prefix("conn ")) {
        abort_connection(conn);
    }
    std::process::exit(0)
}

/// Whether `file` has data or an end to read within `ms` milliseconds.
fn readable(file: &File, ms: i32) -> bool {
    let mut fds = [libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
    fds[0].revents != 0
}

/// The FUSE connection number of the mount at `path`, from mountinfo (a
/// stat of our own mount would ask this daemon, which is not serving yet).
fn connection_of(path: &std::path::Path) -> Option<u64> {
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

fn abort_connection(conn: &str) {
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

/// Raises the soft open-file limit to the hard one (each entry node the
/// kernel holds is an open file), keeping room for drafts, directories and
/// the store itself; the mounts share what is left.
fn default_max_nodes() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit to fill and set.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    let files = usize::try_from(lim.rlim_cur)
        .unwrap_or(usize::MAX)
        .min(1 << 24);
    files.saturating_sub(1024).max(256)
}

/// Unmounts one of our mounts: the system call as root, fusermount3
/// otherwise; lazily if it is busy (open files keep being served until
/// closed).
fn unmount(path: &std::path::Path) {
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
fn detach_stdio(log_file: Option<&std::path::Path>) {
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
