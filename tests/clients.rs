//! The example clients against a real mount: the seed's blog example from a
//! shell (examples/blog.sh), from Python (examples/tagcache_client.py) and
//! from Node (examples/tagcache_client.mjs), the shell get-or-compute helper
//! (examples/tagcache.sh), and single-flight across processes through each
//! client and through all three at once. bash, python3, node (Debian
//! package `nodejs`) and setfattr/getfattr (Debian package `attr`) are
//! required: a missing one fails the test.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::*;

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
    assert_eq!(errno(read(&m.keys("blog-home"))), Errno::ENOENT);
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

#[test]
fn blog_example_from_node() {
    require("node", "nodejs");
    require("setfattr", "attr");
    let m = Mount::new(&[]);
    let start = Instant::now();
    let out = run(
        Command::new("node")
            .arg(example("tagcache_client.mjs"))
            .arg(&m.mnt),
        "node examples/tagcache_client.mjs",
    );
    assert_ok(&out, "node examples/tagcache_client.mjs", &m);
    eprintln!("tagcache_client.mjs: {:?}", start.elapsed());
    assert!(String::from_utf8_lossy(&out.stdout).contains("the blog example held"));
    // What the script left behind, seen from here: blog-home invalidated at
    // the end (its content under stale/), and "stuck", stored past the wait,
    // tagged from Node (setfattr on the writing descriptor) and never
    // expiring (mtime 2^32 set with futimes).
    assert_eq!(errno(read(&m.keys("blog-home"))), Errno::ENOENT);
    assert!(
        read(&m.stale("blog-home"))
            .unwrap()
            .starts_with(b"{\"bio\"")
    );
    let stuck = m.keys("stuck");
    assert_eq!(get_xattr(&stuck, "user.tags").unwrap(), b"blog-new");
    assert_eq!(get_xattr(&stuck, "user.expire").unwrap(), b"0");
}

/// The shell helper's own demo: hit, computed, tags and expiry, stale while
/// another process holds the lock, a failing compute, the fallback past the
/// wait, and a regenerated entry tagged from the first moment it is
/// visible.
#[test]
fn get_or_compute_from_shell() {
    require("bash", "bash");
    require("setfattr", "attr");
    require("getfattr", "attr");
    let m = Mount::new(&[]);
    let start = Instant::now();
    let out = run(
        Command::new("bash").arg(example("tagcache.sh")).arg(&m.mnt),
        "bash examples/tagcache.sh",
    );
    assert_ok(&out, "bash examples/tagcache.sh", &m);
    eprintln!("tagcache.sh: {:?}", start.elapsed());
    assert!(String::from_utf8_lossy(&out.stdout).contains("all expectations held"));
    assert_eq!(read(&m.keys("home")).unwrap(), b"regenerated\n");
    let mut tags: Vec<_> = String::from_utf8(get_xattr(&m.keys("home"), "user.tags").unwrap())
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    tags.sort();
    assert_eq!(tags, ["bio", "blog-new"]);
}

/// An example client, as one contender of a single-flight test: its
/// `--race MNT KEY RECORD` mode waits for a line on stdin, gets KEY with a
/// 1 s compute step that appends a line to RECORD, and prints
/// "<how> <value>".
#[derive(Clone, Copy, Debug)]
enum Client {
    Python,
    Node,
    Shell,
}

impl Client {
    /// Fails the test unless what the client runs on is installed.
    fn require(self) {
        match self {
            Client::Python => require("python3", "python3"),
            Client::Node => require("node", "nodejs"),
            Client::Shell => {
                require("bash", "bash");
                require("setfattr", "attr");
            }
        }
    }

    fn race(self, mnt: &Path, key: &str, record: &Path) -> Command {
        let (program, script) = match self {
            Client::Python => ("python3", "tagcache_client.py"),
            Client::Node => ("node", "tagcache_client.mjs"),
            Client::Shell => ("bash", "tagcache.sh"),
        };
        let mut cmd = Command::new(program);
        cmd.arg(example(script))
            .arg("--race")
            .arg(mnt)
            .arg(key)
            .arg(record);
        cmd
    }
}

/// One process per client released together on a missing key whose compute
/// step takes 1 s: exactly one computes (one line in the record), every one
/// gets that value.
fn single_flight(clients: &[Client]) {
    for c in clients {
        c.require();
    }
    let m = Mount::new(&[]);
    let record = m.dir.path().join("computed.log");
    let start = Instant::now();
    let mut children: Vec<Child> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            c.race(&m.mnt, "slow-page", &record)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("starting contender {i} ({c:?}): {e}"))
        })
        .collect();
    // Each contender waits for a line on stdin: release them together.
    for c in &mut children {
        let mut stdin = c.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
    }
    let outs: Vec<Output> = children
        .into_iter()
        .zip(clients)
        .enumerate()
        .map(|(i, (child, c))| finish(child, &format!("contender {i} ({c:?})")))
        .collect();
    let elapsed = start.elapsed();
    let mut lines = Vec::new();
    for (i, (out, c)) in outs.iter().zip(clients).enumerate() {
        assert_ok(out, &format!("contender {i} ({c:?})"), &m);
        let stdout = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
        let (how, value) = stdout
            .split_once(' ')
            .unwrap_or_else(|| panic!("contender {i} ({c:?}) printed {stdout:?}"));
        lines.push((*c, how.to_string(), value.to_string()));
    }
    eprintln!("single flight: {elapsed:?} {lines:#?}");
    let record = std::fs::read_to_string(&record).unwrap_or_default();
    assert_eq!(
        record.lines().count(),
        1,
        "compute ran more than once: {record:?} {lines:#?}"
    );
    let computed: Vec<_> = lines
        .iter()
        .filter(|(_, how, _)| how == "computed")
        .collect();
    assert_eq!(computed.len(), 1, "{lines:#?}");
    let value = &computed[0].2;
    assert!(
        lines.iter().all(|(_, _, v)| v == value),
        "the contenders saw different values: {lines:#?}"
    );
    assert!(
        value.starts_with(&format!("computed by {} ", record.trim())),
        "the value is not the recorded run's: {record:?} {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .all(|(_, how, _)| how == "computed" || how == "waited" || how == "hit"),
        "{lines:#?}"
    );
    // Released together, with a 1 s compute: the others met the lock.
    assert!(
        lines.iter().any(|(_, how, _)| how == "waited"),
        "no contender met the single-flight lock: {lines:#?}"
    );
    assert_eq!(read(&m.keys("slow-page")).unwrap(), value.as_bytes());
}

#[test]
fn single_flight_across_processes() {
    single_flight(&[Client::Python; 5]);
}

#[test]
fn single_flight_across_processes_node() {
    single_flight(&[Client::Node; 5]);
}

#[test]
fn single_flight_across_processes_shell() {
    single_flight(&[Client::Shell; 5]);
}

/// The lock is the file system's, not a client's: two Python, two Node and
/// one shell contender on one key still compute once.
#[test]
fn single_flight_across_languages() {
    use Client::*;
    single_flight(&[Python, Node, Shell, Python, Node]);
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

/// The Node client with hits read on the fast view.
#[test]
fn blog_example_from_node_with_fast_view() {
    require("node", "nodejs");
    require("setfattr", "attr");
    let m = Mount::with_fast_view(&["--cache-timeout", "60"]);
    let out = run(
        Command::new("node")
            .arg(example("tagcache_client.mjs"))
            .arg(&m.mnt)
            .arg(&m.fast),
        "node examples/tagcache_client.mjs (fast view)",
    );
    assert_ok(&out, "node examples/tagcache_client.mjs (fast view)", &m);
}
