//! Mounting and serving: fork, mount, report readiness through a pipe, serve
//! until unmounted or signalled.
//!
//! The parent returns only once the kernel handshake of every session is
//! done (so a script can use the mount on its next line), or prints why the
//! mount failed. SIGTERM, SIGINT and SIGHUP unmount cleanly; an external
//! `umount` of either mount point ends the daemon and unmounts the other.

pub use guardian::guardian_main;

mod guardian;
mod os;
mod takeover;

pub use takeover::unmount;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fuser::{BackgroundSession, Config, MountOption, Session, SessionACL};
use nix::sys::signal::{SigSet, Signal};

use crate::cli::MountConfig;
use crate::exit::{Code, Failure};
use crate::fs::{Fs, Options};
use crate::fuse::Kernel;
use crate::store::Store;

pub fn run(config: MountConfig) -> Result<(), Failure> {
    let bound = crate::store::evict::Bound {
        max_size: config.max_size,
        min_free: config.min_free,
        young: config.cache_timeout,
        low: config.watermarks.0,
        high: config.watermarks.1,
    };
    let store = Store::open(&config.store)
        .and_then(|s| match config.tagcache_format {
            Some(ns) => s.shared_with_library(ns),
            None => Ok(s),
        })
        .and_then(|s| s.durable(config.durable).bounded(bound))
        .map_err(Failure::store)?
        .foreign_tmp_age(Duration::from_secs(config.foreign_tmp_age));
    // A mount point whose daemon is dead is taken over, its clients freed.
    for path in std::iter::once(&config.mountpoint).chain(&config.read_mount) {
        takeover::take_over(path).map_err(|e| Failure::new(Code::MountPoint, e))?;
    }
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
    let mut guardian = guardian::spawn_guardian(&mut ready);
    let signals = SigSet::from_iter([Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP]);
    signals
        .thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;

    let log_file = config.log_file.clone();
    let result = serve(config, store, &mut ready, guardian.as_mut());
    if let Some(g) = guardian.as_mut() {
        let _ = g.write_all(b"done\n");
    }
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            if let Some(mut pipe) = ready {
                let _ = pipe.write_all(e.encode().as_bytes());
                // The parent tells the user; this process's own report of
                // it goes to the log.
                drop(pipe);
                os::detach_stdio(log_file.as_deref());
            }
            Err(e)
        }
    }
}

/// The parent's side: wait for "ok" or an error message from the child.
fn wait_ready(read_end: OwnedFd) -> Result<(), Failure> {
    let mut message = String::new();
    File::from(read_end)
        .read_to_string(&mut message)
        .map_err(|e| format!("waiting for the mount: {e}"))?;
    match message.as_str() {
        "ok" => Ok(()),
        "" => Err(Failure::new(
            Code::Mount,
            "the serving process exited before the mount was ready",
        )),
        m => Err(Failure::decode(m)),
    }
}

/// A failed mount(2): the mount point's fault (busy, or a dead mount left
/// by a killed daemon), or any other.
fn mount_failure(path: &std::path::Path, e: std::io::Error) -> Failure {
    let at = path.display();
    match e.raw_os_error() {
        Some(libc::ENOTCONN | libc::ECONNABORTED) => Failure::new(
            Code::MountPoint,
            format!("mounting {at}: {e}: a dead mount (its daemon is gone); umount it first"),
        ),
        Some(libc::EBUSY) => Failure::new(Code::MountPoint, format!("mounting {at}: {e}")),
        _ => Failure::new(Code::Mount, format!("mounting {at}: {e}")),
    }
}

fn mount_config(config: &MountConfig, read_only: bool) -> Config {
    let mut options = vec![
        MountOption::FSName(config.store.display().to_string()),
        // As mount data too: fuser gives the subtype only to fusermount,
        // and mountinfo shows fuse.tagcachefs only with it.
        MountOption::CUSTOM("subtype=tagcachefs".into()),
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
) -> Result<(), Failure> {
    let opts = Options {
        default_ttl: config.default_expire,
        cache_timeout: config.cache_timeout,
        read_only: config.read_only,
        max_nodes: config.max_nodes.unwrap_or(crate::fs::DEFAULT_MAX_NODES),
    };
    os::raise_open_file_limit();
    if store.format() == crate::store::format::Format::Tagcache {
        log::info!(
            "the store is shared with the tagcache library: its file format, namespace {}",
            store.namespace().label()
        );
    }
    if config.durable {
        log::info!("durable: every commit and invalidation is synced to disk before it returns");
    }
    log::info!("at most {} entry nodes", opts.max_nodes);
    let kernel = Kernel::new(Fs::new(store, opts, config.read_mount.is_some()));
    if let Some(addr) = config.metrics_addr {
        crate::metrics::http::start(addr, kernel.fs().clone())
            .map_err(|e| Failure::new(Code::Mount, e))?;
    }
    let mut mounts = vec![(
        config.mountpoint.clone(),
        mount_config(&config, config.read_only),
    )];
    if let Some(path) = &config.read_mount {
        mounts.push((path.clone(), mount_config(&config, true)));
    }
    let mut sessions = Vec::new();
    let mut conns = Vec::new();
    for (idx, (path, mount_config)) in mounts.iter().enumerate() {
        // On failure, dropping the sessions made so far unmounts them.
        let session = Session::new(kernel.filesystem(idx), path, mount_config)
            .map_err(|e| mount_failure(path, e))?;
        kernel.set_notifier(idx, session.notifier());
        sessions.push(session);
        if let Some(conn) = os::connection_of(path) {
            takeover::record_serving(conn, &os::absolute(path));
            conns.push(conn);
            if let Some(g) = guardian.as_mut() {
                let _ = writeln!(g, "conn {conn}");
            }
        }
        log::info!("mounted {} on {}", config.store.display(), path.display());
    }

    if let Some(mut pipe) = ready.take() {
        let _ = pipe.write_all(b"ok");
        drop(pipe);
        os::detach_stdio(config.log_file.as_deref());
    } else if let Some(path) = &config.log_file {
        os::detach_stdio(Some(path));
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

    let sweeper = kernel.fs().clone();
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
                let started = std::time::Instant::now();
                match sweeper.store().cleanup() {
                    Ok(_) => sweeper.counters.cleanup_done(started.elapsed()),
                    Err(e) => log::error!("cleanup: {e}"),
                }
                // The ledger's drift (crashes, other programs) corrected.
                if let Err(e) = sweeper.store().recount_size() {
                    log::error!("counting the store's size: {e}");
                }
            }
        })
        .map_err(|e| e.to_string())?;
    if config.max_size.is_some() || config.min_free.is_some() {
        // Between the watermarks, so that most commits find room at once.
        let store_fs = kernel.fs().clone();
        std::thread::Builder::new()
            .name("evict".into())
            .spawn(move || {
                loop {
                    store_fs.store().wait_for_sweep(Duration::from_millis(100));
                    if let Err(e) = store_fs.store().sweep_to_watermark() {
                        log::error!("evicting to the low watermark: {e}");
                    }
                }
            })
            .map_err(|e| e.to_string())?;
    }

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
            os::unmount(path);
        }
    }
    while !running.iter().all(|s| s.guard.is_finished()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::mem::forget(running);
    for conn in conns {
        takeover::forget_serving(conn);
    }
    log::info!("unmounted {}", config.mountpoint.display());
    Ok(())
}
