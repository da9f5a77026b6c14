//! Other processes a test starts: a forked child for a few raw system
//! calls from a second process, and this test binary re-run on one test in
//! a role.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::sys::{Errno, cpath, from_code};

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
    from_code(in_child(|| {
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
    }))
}

/// The environment variable that makes a re-run of the test binary a child.
pub const ROLE: &str = "TAGCACHEFS_TEST_ROLE";

/// A child process running `role` of test `test` (the test function checks
/// `role()` first and runs the role instead). Its stdout and stderr go to
/// `<out>/<label>.out`.
pub struct Child {
    pub label: String,
    pub child: std::process::Child,
    pub out: PathBuf,
}

pub fn spawn_role(
    test: &str,
    role: &str,
    label: &str,
    out_dir: &Path,
    env: &[(&str, String)],
) -> Child {
    let out = out_dir.join(format!("{label}.out"));
    let log = File::create(&out).unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env("TAGCACHEFS_LABEL", label)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("re-running the test binary");
    Child {
        label: label.to_string(),
        child,
        out,
    }
}

impl Child {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

/// The role this process was started in, if it is a child.
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

pub fn env_u64(name: &str) -> u64 {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} not set"))
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number"))
}

pub fn env_path(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(name).unwrap_or_else(|| panic!("{name} not set")))
}

/// Waits for every child to exit; returns (label, exit status, output).
/// Children still running at `deadline` are killed and reported as hung.
pub fn wait_all(children: &mut [Child], deadline: Instant) -> Vec<(String, Option<i32>, String)> {
    let mut results = Vec::new();
    for c in children.iter_mut() {
        let status = loop {
            match c.child.try_wait() {
                Ok(Some(st)) => break st.code().or(Some(-1000)),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = c.child.kill();
                    let _ = c.child.wait();
                    break None;
                }
            }
        };
        results.push((c.label.clone(), status, c.output()));
    }
    results
}
