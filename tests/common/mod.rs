//! Mounting tagcachefs for a test: the real binary, a real mount in a temp
//! dir, unmounted when the guard drops (also when the test panics). A mount
//! that cannot be made fails the test; nothing is skipped.
#![allow(dead_code)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_tagcachefs");

pub struct Mount {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
    pub mnt: PathBuf,
    /// The fast read-only view, when mounted with `fast_view()`.
    pub fast: PathBuf,
    mounted: Vec<PathBuf>,
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

    /// Mounts `store` (which may already hold entries) inside `dir`.
    pub fn on_store(dir: tempfile::TempDir, store: PathBuf, args: &[&str]) -> Mount {
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
        };
        m.mount(&args);
        m
    }

    fn mount(&mut self, args: &[String]) {
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
            .output()
            .expect("running tagcachefs");
        assert!(
            out.status.success(),
            "mounting failed (a FUSE test that cannot mount fails): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.mounted.push(self.mnt.clone());
        if args.iter().any(|a| a == "--read-mount") {
            self.mounted.push(self.fast.clone());
        }
    }

    /// Unmounts and mounts the same store again.
    pub fn remount(&mut self, args: &[&str]) {
        self.unmount();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        self.mount(&args);
    }

    pub fn unmount(&mut self) {
        for path in self.mounted.drain(..).rev() {
            unmount(&path);
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

/// Unmounts `path`; lazily if it is busy, so a failed test never leaves a
/// mount behind.
pub fn unmount(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    for _ in 0..50 {
        // SAFETY: a valid C string.
        if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
            return;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EBUSY) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: a valid C string.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
}

/// Writes `content` to `path` with tags and a TTL set on the writing
/// descriptor before close, as clients do.
pub fn put(path: &Path, content: &[u8], tags: &str, ttl: u64) {
    use std::io::Write;
    let mut f =
        std::fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    set_xattr_fd(&f, "user.tags", tags.as_bytes()).unwrap();
    set_xattr_fd(&f, "user.expire", ttl.to_string().as_bytes()).unwrap();
    f.write_all(content).unwrap();
    drop(f);
}

pub fn set_xattr_fd(f: &std::fs::File, name: &str, value: &[u8]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let name = CString::new(name).unwrap();
    // SAFETY: valid descriptor, C string and buffer.
    let r = unsafe {
        libc::fsetxattr(
            f.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let name = CString::new(name).unwrap();
    // SAFETY: valid C strings and buffer.
    let r = unsafe {
        libc::setxattr(
            p.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub fn get_xattr(path: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let name = CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C strings and buffer.
    let n = unsafe {
        libc::getxattr(
            p.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

pub fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}

pub fn errno<T: std::fmt::Debug>(r: std::io::Result<T>) -> i32 {
    r.expect_err("expected an error")
        .raw_os_error()
        .expect("an OS error")
}

pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
