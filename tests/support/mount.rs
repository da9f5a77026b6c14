//! Mounting tagcachefs for a test: the real binary, a real mount in a temp
//! dir, unmounted when the guard drops (also when the test panics). A mount
//! that cannot be made fails the test; nothing is skipped. The same guard
//! unmounts what mount(8) made, and a small tmpfs.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::sys::{Errno, cpath};

pub const BIN: &str = env!("CARGO_BIN_EXE_tagcachefs");

pub struct Mount {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
    pub mnt: PathBuf,
    /// The fast read-only view, when mounted with `with_fast_view()`.
    pub fast: PathBuf,
    mounted: Vec<Unmount>,
    /// Set in the daemon's environment (`TAGCACHEFS_FAILPOINTS`, …).
    env: Vec<(String, String)>,
}

impl Mount {
    /// A fresh store mounted with `args` added to the command line.
    pub fn new(args: &[&str]) -> Mount {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = dir.path().join("store");
        Mount::on_store(dir, store, args)
    }

    /// Full mount plus the fast view.
    pub fn with_fast_view(args: &[&str]) -> Mount {
        let mut all = vec!["--read-mount", "@fast"];
        all.extend_from_slice(args);
        Mount::new(&all)
    }

    /// A fresh store mounted with `args`, its daemon injecting the faults
    /// `failpoints` names (src/failpoint.rs).
    pub fn with_failpoints(failpoints: &str, args: &[&str]) -> Mount {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = dir.path().join("store");
        let env = vec![("TAGCACHEFS_FAILPOINTS".to_string(), failpoints.to_string())];
        Mount::on_store_with(dir, store, args, env)
    }

    /// Mounts `store` (which may already hold entries) inside `dir`.
    pub fn on_store(dir: tempfile::TempDir, store: PathBuf, args: &[&str]) -> Mount {
        Mount::on_store_with(dir, store, args, Vec::new())
    }

    fn on_store_with(
        dir: tempfile::TempDir,
        store: PathBuf,
        args: &[&str],
        env: Vec<(String, String)>,
    ) -> Mount {
        let mnt = dir.path().join("mnt");
        let fast = dir.path().join("fast");
        std::fs::create_dir_all(&mnt).unwrap();
        std::fs::create_dir_all(&fast).unwrap();
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                if *a == "@fast" {
                    fast.display().to_string()
                } else {
                    a.to_string()
                }
            })
            .collect();
        let mut m = Mount {
            dir,
            store,
            mnt,
            fast,
            mounted: Vec::new(),
            env,
        };
        m.mount(&args);
        m
    }

    fn mount(&mut self, args: &[String]) {
        self.run_mount(args);
        self.mounted.push(Unmount(self.mnt.clone()));
        if args.iter().any(|a| a == "--read-mount") {
            self.mounted.push(Unmount(self.fast.clone()));
        }
    }

    /// Runs `tagcachefs STORE MNT args`; a failure fails the test.
    fn run_mount(&self, args: &[String]) {
        let log = self.dir.path().join("daemon.log");
        let out = Command::new(BIN)
            .arg(&self.store)
            .arg(&self.mnt)
            .arg("--log-file")
            .arg(&log)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("running tagcachefs");
        assert!(
            out.status.success(),
            "mounting failed (a FUSE test that cannot mount fails): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Unmounts and mounts the same store again.
    pub fn remount(&mut self, args: &[&str]) {
        self.unmount();
        let args = self.args(args);
        self.mount(&args);
    }

    /// `args` with `@fast` standing for the fast view's path.
    fn args(&self, args: &[&str]) -> Vec<String> {
        args.iter()
            .map(|a| {
                if *a == "@fast" {
                    self.fast.display().to_string()
                } else {
                    a.to_string()
                }
            })
            .collect()
    }

    /// Runs `tagcachefs STORE MNT args` again over a mount whose daemon was
    /// killed (it takes the dead mount over), without unmounting first.
    pub fn take_over(&mut self, args: &[&str]) {
        // The guards of the dead mount name the same paths: they unmount
        // the new one, or (if taking over fails) free the dead one.
        let args = self.args(args);
        if self.mounted.is_empty() {
            self.mount(&args);
        } else {
            self.run_mount(&args);
        }
    }

    /// Unmounts the fast view, then the mount.
    pub fn unmount(&mut self) {
        while let Some(mounted) = self.mounted.pop() {
            drop(mounted);
        }
    }

    pub fn keys(&self, name: &str) -> PathBuf {
        self.mnt.join("keys").join(name)
    }

    pub fn tag(&self, tag: &str) -> PathBuf {
        self.mnt.join("tags").join(tag)
    }

    pub fn stale(&self, name: &str) -> PathBuf {
        self.mnt.join("stale").join(name)
    }

    pub fn fast_keys(&self, name: &str) -> PathBuf {
        self.fast.join("keys").join(name)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub fn stats(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.mnt.join(".stats")).unwrap()).unwrap()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.unmount();
    }
}

/// A mount point, unmounted when this guard drops.
pub struct Unmount(pub PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        // A mount whose daemon is dead (a killed daemon, a failed test):
        // `tagcachefs unmount` aborts its connection first, so that no
        // client stays blocked on it.
        let _ = Command::new(BIN)
            .arg("unmount")
            .arg("--force")
            .arg(&self.0)
            .stderr(std::process::Stdio::null())
            .status();
        unmount(&self.0);
    }
}

/// Unmounts `path`; lazily if it is busy, so a failed test never leaves a
/// mount behind.
pub fn unmount(path: &Path) {
    let c = cpath(path);
    for _ in 0..50 {
        // SAFETY: a valid C string.
        match Errno::result(unsafe { libc::umount2(c.as_ptr(), 0) }) {
            Ok(_) => return,
            Err(Errno::EBUSY) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(_) => break,
        }
    }
    // SAFETY: a valid C string.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
}

/// Lets another user through a temp dir that `tempfile` made 0700.
pub fn open_up(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A small tmpfs (a store that can run out of space or inodes) on a fresh
/// temp dir, unmounted on drop.
pub struct Tmpfs {
    // Fields drop in order: the mount first, then the directory under it.
    mounted: Unmount,
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `options` as `mount -o` takes them: "size=8m,nr_inodes=64".
    pub fn new(options: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs ({options}) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            mounted: Unmount(dir.path().to_path_buf()),
            dir,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}
