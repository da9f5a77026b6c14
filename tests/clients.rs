//! The client packages and examples against real mounts: the Python
//! package's pytest suite (clients/python, installed into a venv under
//! target/) and the Node package's `node --test` suite (clients/node), the
//! seed's blog example from a shell (examples/blog.sh), from Python
//! (examples/tagcache_client.py, over the Python package) and from Node
//! (examples/tagcache_client.mjs, over the Node package), the shell
//! get-or-compute helper (examples/tagcache.sh), and single-flight across
//! processes through each client and through all three at once. bash,
//! python3 with venv (Debian packages `python3`, `python3-venv`), node
//! (`nodejs`) and getfattr (`attr`) are required, and pip must reach PyPI
//! once for pytest and the build backend: a missing one fails the test.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::*;

const TIMEOUT: Duration = Duration::from_secs(60);
/// Making the venv and installing into it (pip may download).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(170);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn example(name: &str) -> PathBuf {
    repo().join("examples").join(name)
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
    finish_within(child, what, TIMEOUT)
}

fn finish_within(child: Child, what: &str, timeout: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.unwrap_or_else(|e| panic!("{what}: {e}")),
        Err(_) => {
            // SAFETY: kill(2) has no memory effects. The waiting thread has
            // not returned, so the pid is still our (unreaped) child's.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("{what} did not finish within {timeout:?}");
        }
    }
}

fn run(cmd: &mut Command, what: &str) -> Output {
    run_within(cmd, what, TIMEOUT)
}

fn run_within(cmd: &mut Command, what: &str, timeout: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    finish_within(child, what, timeout)
}

/// Runs an install step, failing the test with its output if it fails.
fn install(cmd: &mut Command, what: &str) {
    let out = run_within(cmd, what, INSTALL_TIMEOUT);
    assert!(
        out.status.success(),
        "{what} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

/// What the Python package is made of (everything but its tests): the venv
/// is reinstalled when this changes.
fn python_package_stamp() -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy();
            if path.is_dir() {
                if !name.starts_with('.') && name != "__pycache__" && name != "tests" {
                    walk(&path, files);
                }
            } else {
                files.push(path);
            }
        }
    }
    let root = repo().join("clients/python");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    let mut h = DefaultHasher::new();
    for f in &files {
        f.strip_prefix(&root).unwrap().hash(&mut h);
        std::fs::read(f).unwrap().hash(&mut h);
    }
    format!("{:016x}\n", h.finish())
}

/// The python of a venv under target/ holding the Python package (installed
/// with `pip install ./clients/python`, as a user would) and pytest. The
/// first test of a run to need it makes it, the others wait on a lock; it is
/// reinstalled only when the package's files change.
fn venv_python() -> PathBuf {
    use std::os::fd::AsRawFd;
    require("python3", "python3");
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let venv = tmp.join("clients-venv");
    let lock = std::fs::File::create(tmp.join("clients-venv.lock")).unwrap();
    // SAFETY: flock(2) on a descriptor `lock` owns; closing it unlocks.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let python = venv.join("bin/python");
    let stamp_file = venv.join("tagcachefs-package.stamp");
    let stamp = python_package_stamp();
    if python.exists() && std::fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp) {
        return python;
    }
    if !python.exists() {
        install(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv (Debian package `python3-venv`)",
        );
    }
    let pip = |args: &[&str]| {
        let mut cmd = Command::new(&python);
        cmd.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(args)
        .current_dir(repo());
        cmd
    };
    install(&mut pip(&["pytest"]), "pip install pytest");
    install(
        &mut pip(&["--force-reinstall", "--no-deps", "./clients/python"]),
        "pip install ./clients/python",
    );
    std::fs::write(&stamp_file, stamp).unwrap();
    python
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
    let python = venv_python();
    let m = Mount::new(&[]);
    let start = Instant::now();
    let out = run(
        Command::new(&python)
            .arg(example("tagcache_client.py"))
            .arg(&m.mnt),
        "python3 examples/tagcache_client.py",
    );
    assert_ok(&out, "python3 examples/tagcache_client.py", &m);
    eprintln!("tagcache_client.py: {:?}", start.elapsed());
    assert!(String::from_utf8_lossy(&out.stdout).contains("the blog example held"));
    assert_blog_example_left_stale(&m);
}

/// What the examples' blog run leaves behind, seen from here: blog-home
/// invalidated at the end, its last content (JSON) under stale/.
fn assert_blog_example_left_stale(m: &Mount) {
    assert_eq!(errno(read(&m.keys("blog-home"))), Errno::ENOENT);
    let last: serde_json::Value =
        serde_json::from_slice(&read(&m.stale("blog-home")).unwrap()).unwrap();
    assert_eq!(last["run"], 2, "{last}");
    assert_eq!(last["bio"]["name"], "Huang junwen");
}

#[test]
fn blog_example_from_node() {
    require("node", "nodejs");
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
    assert_blog_example_left_stale(&m);
}

/// The shell helper's own demo: hit, computed, tags and expiry, stale while
/// another process holds the lock, a failing compute, the fallback past the
/// wait, an empty value, and a regenerated entry tagged from the first
/// moment it is visible.
#[test]
fn get_or_compute_from_shell() {
    require("bash", "bash");
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
/// "<how> <value>". Python and Node go through their packages (the Python
/// one as installed in the venv).
#[derive(Clone, Copy, Debug)]
enum Client {
    Python,
    Node,
    Shell,
}

impl Client {
    /// The program that runs the client, once it is installed; fails the
    /// test if it cannot be.
    fn program(self) -> PathBuf {
        match self {
            Client::Python => venv_python(),
            Client::Node => {
                require("node", "nodejs");
                "node".into()
            }
            Client::Shell => {
                require("bash", "bash");
                "bash".into()
            }
        }
    }

    fn race(self, program: &Path, mnt: &Path, key: &str, record: &Path) -> Command {
        let script = match self {
            Client::Python => "tagcache_client.py",
            Client::Node => "tagcache_client.mjs",
            Client::Shell => "tagcache.sh",
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
    let programs: Vec<PathBuf> = clients.iter().map(|c| c.program()).collect();
    let m = Mount::new(&[]);
    let record = m.dir.path().join("computed.log");
    let start = Instant::now();
    let mut children: Vec<Child> = clients
        .iter()
        .zip(&programs)
        .enumerate()
        .map(|(i, (c, program))| {
            c.race(program, &m.mnt, "slow-page", &record)
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

/// The lock is the file system's, not a client's: two Python-package, two
/// Node-package and one shell contender on one key still compute once.
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
    let python = venv_python();
    let m = Mount::with_fast_view(&["--cache-timeout", "60"]);
    let out = run(
        Command::new(&python)
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

/// Runs a package's test suite against `m` (both views), failing on any
/// failure and on any skipped test: everything here must run.
fn package_suite(m: &Mount, cmd: &mut Command, what: &str) -> String {
    let start = Instant::now();
    let out = run(
        cmd.current_dir(repo())
            .env("TAGCACHEFS_MNT", &m.mnt)
            .env("TAGCACHEFS_FAST", &m.fast)
            .env("TAGCACHEFS_BIN", BIN)
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        what,
    );
    assert_ok(&out, what, m);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" passed") || (l.starts_with("# ") && !l.starts_with("# Subtest")))
        .collect();
    eprintln!("{what}: {:?} {summary:?}", start.elapsed());
    stdout
}

/// clients/python/tests (pytest) against a real mount with its fast view,
/// the package installed in the venv with pip.
#[test]
fn python_package_tests() {
    let python = venv_python();
    let m = Mount::with_fast_view(&["--cache-timeout", "60"]);
    let stdout = package_suite(
        &m,
        Command::new(&python).args([
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rs",
            "clients/python/tests",
        ]),
        "pytest clients/python/tests",
    );
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    assert!(
        last.contains(" passed") && !last.contains("skipped"),
        "{stdout}"
    );
}

/// clients/node/test (node --test) against a real mount with its fast view;
/// the tests import the package by its name, through its "exports".
#[test]
fn node_package_tests() {
    require("node", "nodejs");
    let dir = repo().join("clients/node/test");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.mjs"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.test.mjs in {}", dir.display());
    let m = Mount::with_fast_view(&["--cache-timeout", "60"]);
    let stdout = package_suite(
        &m,
        Command::new("node")
            .args(["--test", "--test-reporter=tap"])
            .args(&files),
        "node --test clients/node/test",
    );
    for (line, want) in [("# fail ", "0"), ("# skipped ", "0"), ("# cancelled ", "0")] {
        let got = stdout.lines().find_map(|l| l.strip_prefix(line));
        assert_eq!(got, Some(want), "{line}: {stdout}");
    }
    let passed = stdout.lines().find_map(|l| l.strip_prefix("# pass "));
    assert!(
        passed.is_some_and(|n| n.parse::<u32>().unwrap() > 0),
        "{stdout}"
    );
}
