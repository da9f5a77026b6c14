//! The example clients against a real mount: the seed's blog example from a
//! shell (examples/blog.sh) and from Python (examples/tagcache_client.py),
//! and single-flight across processes through the Python client. bash,
//! python3 and setfattr/getfattr (Debian package `attr`) are required: a
//! missing one fails the test.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

const TIMEOUT: Duration = Duration::from_secs(60);

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// Fails the test unless `tool` can be run.
fn require(tool: &str, package: &str) {
    let out = Command::new(tool)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!("`{tool}` is required by this test (Debian package `{package}`): {e}")
        });
    assert!(out.status.success(), "`{tool} --version` failed: {out:?}");
}

/// Waits for `child` (stdout and stderr piped) for at most `TIMEOUT`, killing
/// it if it hangs.
fn finish(child: Child, what: &str) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(out) => out.unwrap_or_else(|e| panic!("{what}: {e}")),
        Err(_) => {
            // SAFETY: kill(2) has no memory effects. The waiting thread has
            // not returned, so the pid is still our (unreaped) child's.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("{what} did not finish within {TIMEOUT:?}");
        }
    }
}

fn run(cmd: &mut Command, what: &str) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    finish(child, what)
}

fn assert_ok(out: &Output, what: &str, m: &Mount) {
    assert!(
        out.status.success(),
        "{what} failed ({})\n--- stdout\n{}\n--- stderr\n{}\n--- daemon log\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        m.log()
    );
}

#[test]
fn blog_example_from_bash() {
    require("bash", "bash");
    require("setfattr", "attr");
    require("getfattr", "attr");
    let m = Mount::new(&[]);
    let start = Instant::now();
    let out = run(
        Command::new("bash").arg(example("blog.sh")).arg(&m.mnt),
        "bash examples/blog.sh",
    );
    assert_ok(&out, "bash examples/blog.sh", &m);
    eprintln!("blog.sh: {:?}", start.elapsed());
    assert!(String::from_utf8_lossy(&out.stdout).contains("all expectations held"));
    // What the script left behind, seen from here.
    assert_eq!(errno(read(&m.keys("blog-home"))), libc::ENOENT);
    assert!(
        read(&m.stale("blog-home"))
            .unwrap()
            .starts_with(b"{\"bio\"")
    );
}

#[test]
fn blog_example_from_python() {
    require("python3", "python3");
    let m = Mount::new(&[]);
    let start = Instant::now();
    let out = run(
        Command::new("python3")
            .arg(example("tagcache_client.py"))
            .arg(&m.mnt),
        "python3 examples/tagcache_client.py",
    );
    assert_ok(&out, "python3 examples/tagcache_client.py", &m);
    eprintln!("tagcache_client.py: {:?}", start.elapsed());
    assert!(String::from_utf8_lossy(&out.stdout).contains("the blog example held"));
}

/// Five processes released together on a missing key whose compute step
/// takes 1 s: exactly one computes (one line in the record), every one gets
/// that value.
#[test]
fn single_flight_across_processes() {
    require("python3", "python3");
    let m = Mount::new(&[]);
    let record = m.dir.path().join("computed.log");
    let start = Instant::now();
    let mut children: Vec<Child> = (0..5)
        .map(|i| {
            Command::new("python3")
                .arg(example("tagcache_client.py"))
                .arg("--race")
                .arg(&m.mnt)
                .arg("slow-page")
                .arg(&record)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("starting contender {i}: {e}"))
        })
        .collect();
    // Each contender waits for a line on stdin: release them together.
    for c in &mut children {
        let mut stdin = c.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
    }
    let outs: Vec<Output> = children
        .into_iter()
        .enumerate()
        .map(|(i, c)| finish(c, &format!("contender {i}")))
        .collect();
    let elapsed = start.elapsed();
    let mut lines = Vec::new();
    for (i, out) in outs.iter().enumerate() {
        assert_ok(out, &format!("contender {i}"), &m);
        let stdout = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
        let (how, value) = stdout
            .split_once(' ')
            .unwrap_or_else(|| panic!("contender {i} printed {stdout:?}"));
        lines.push((how.to_string(), value.to_string()));
    }
    eprintln!("single flight: {elapsed:?} {lines:#?}");
    let record = std::fs::read_to_string(&record).unwrap_or_default();
    assert_eq!(
        record.lines().count(),
        1,
        "compute ran more than once: {record:?} {lines:#?}"
    );
    let computed: Vec<_> = lines.iter().filter(|(how, _)| how == "computed").collect();
    assert_eq!(computed.len(), 1, "{lines:#?}");
    assert!(
        lines.iter().all(|(_, v)| *v == computed[0].1),
        "the contenders saw different values: {lines:#?}"
    );
    assert!(
        computed[0]
            .1
            .starts_with(&format!("computed by {} ", record.trim())),
        "the value is not the recorded run's: {record:?} {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .all(|(how, _)| how == "computed" || how == "waited" || how == "hit"),
        "{lines:#?}"
    );
    // Released together, with a 1 s compute: the others met the lock.
    assert!(
        lines.iter().any(|(how, _)| how == "waited"),
        "no contender met the single-flight lock: {lines:#?}"
    );
    assert_eq!(
        read(&m.keys("slow-page")).unwrap(),
        computed[0].1.as_bytes()
    );
}

/// The same through the fast read-only view: hits are read there (the
/// kernel serves them), and rmdir/unlink/commits through the daemon show
/// there at once.
#[test]
fn blog_example_from_python_with_fast_view() {
    require("python3", "python3");
    let m = Mount::with_fast_view(&["--cache-timeout", "60"]);
    let out = run(
        Command::new("python3")
            .arg(example("tagcache_client.py"))
            .arg(&m.mnt)
            .arg(&m.fast),
        "python3 examples/tagcache_client.py (fast view)",
    );
    assert_ok(&out, "python3 examples/tagcache_client.py (fast view)", &m);
}
