//! Shared pieces of the `reliability_*` tests (issue 4): self-checking
//! version contents, a seeded RNG, a clock all processes share, child
//! processes that are this test binary re-run in a role, the daemon's pid,
//! the command-line tools, and a watchdog that turns a hang into a failure.
//!
//! Long mode: `TAGCACHEFS_LONG=1` makes every reliability test run longer
//! (more rounds, more seconds); `TAGCACHEFS_SEED=N` replays a run.
#![allow(dead_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_tagcachefs");

/// The environment variable that makes a re-run of the test binary a child.
pub const ROLE: &str = "TAGCACHEFS_TEST_ROLE";

/// `TAGCACHEFS_LONG=1`: the long mode.
pub fn long_mode() -> bool {
    std::env::var("TAGCACHEFS_LONG").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The run's seed: `TAGCACHEFS_SEED` or the clock; printed so a failure can
/// be replayed.
pub fn seed(what: &str) -> u64 {
    let seed = std::env::var("TAGCACHEFS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| mono_ns() ^ (std::process::id() as u64) << 32);
    eprintln!("{what}: TAGCACHEFS_SEED={seed}");
    seed
}

/// CLOCK_MONOTONIC in nanoseconds: comparable between processes of one
/// host, which is what ordering an `rmdir` before an `open` needs.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// SplitMix64: small, seedable, good enough to pick operations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

// ---------------------------------------------------------------------------
// Versions that prove themselves whole.

/// Header: magic, id, total length, FNV-1a of the body.
const MAGIC: &[u8; 8] = b"TCFSVER1";
pub const HEADER: usize = 32;

fn fnv(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The content of version `id`, `len` bytes long (at least `HEADER`): a
/// header naming the id, the length and the body's checksum, then a body
/// that only this id produces. Any prefix, suffix or mix of two versions
/// fails `check_version`.
pub fn version_content(id: u64, len: usize) -> Vec<u8> {
    let len = len.max(HEADER);
    let mut rng = Rng::new(id.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ len as u64);
    let mut body = Vec::with_capacity(len - HEADER);
    while body.len() < len - HEADER {
        body.extend_from_slice(&rng.next().to_le_bytes());
    }
    body.truncate(len - HEADER);
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(len as u64).to_le_bytes());
    out.extend_from_slice(&fnv(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// The id of the version `data` is, if it is exactly one whole version.
pub fn check_version(data: &[u8]) -> Result<u64, String> {
    let show = |why: &str| {
        let head: Vec<u8> = data.iter().take(HEADER).copied().collect();
        format!("{why} (length {}, header {:02x?})", data.len(), head)
    };
    if data.len() < HEADER || &data[..8] != MAGIC {
        return Err(show("no version header"));
    }
    let id = u64::from_le_bytes(data[8..16].try_into().unwrap());
    let len = u64::from_le_bytes(data[16..24].try_into().unwrap()) as usize;
    if len != data.len() {
        let tail = if data.len() > len {
            let zeros = data[len..].iter().filter(|&&b| b == 0).count();
            let whole = data[..len] == version_content(id, len)[..];
            format!(
                "; the first {len} bytes are {} version {id}, the {} bytes after them hold {zeros} zero bytes",
                if whole { "exactly" } else { "NOT" },
                data.len() - len
            )
        } else {
            String::new()
        };
        return Err(show(&format!(
            "torn: version {id} is {len} bytes, read {}{tail}",
            data.len()
        )));
    }
    if data != version_content(id, len).as_slice() {
        return Err(show(&format!("torn: bytes differ from version {id}")));
    }
    Ok(id)
}

// ---------------------------------------------------------------------------
// System calls with their errno.

pub fn cpath(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

pub fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// open(2) with exactly these flags (mode 0644 when creating).
pub fn open_raw(path: &Path, flags: i32) -> Result<File, i32> {
    let p = cpath(path);
    // SAFETY: a valid C string.
    let fd = unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC, 0o644) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// close(2), returning its error: a commit's error shows here.
pub fn close_raw(f: File) -> Result<(), i32> {
    let fd = std::os::fd::IntoRawFd::into_raw_fd(f);
    // SAFETY: we own `fd` and close it once.
    if unsafe { libc::close(fd) } < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// Writes all of `data` in chunks of at most `chunk` bytes.
pub fn write_all_raw(f: &File, data: &[u8], chunk: usize) -> Result<(), i32> {
    let mut done = 0;
    while done < data.len() {
        let end = (done + chunk.max(1)).min(data.len());
        // SAFETY: a valid descriptor and buffer.
        let n = unsafe { libc::write(f.as_raw_fd(), data[done..end].as_ptr().cast(), end - done) };
        if n < 0 {
            let e = last_errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    Ok(())
}

/// Reads to the end in reads of `chunk` bytes.
pub fn read_all_raw(f: &File, chunk: usize) -> Result<Vec<u8>, i32> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk.max(1)];
    loop {
        // SAFETY: a valid descriptor and buffer.
        let n = unsafe { libc::read(f.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = last_errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
}

pub fn fset_xattr(f: &File, name: &str, value: &[u8]) -> Result<(), i32> {
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
    if r < 0 { Err(last_errno()) } else { Ok(()) }
}

pub fn fget_xattr(f: &File, name: &str) -> Result<Vec<u8>, i32> {
    let name = CString::new(name).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: valid descriptor, C string and buffer.
    let n = unsafe {
        libc::fgetxattr(
            f.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(last_errno());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

pub fn set_xattr_raw(path: &Path, name: &[u8], value: &[u8]) -> Result<(), i32> {
    let p = cpath(path);
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
    if r < 0 { Err(last_errno()) } else { Ok(()) }
}

pub fn get_xattr_raw(path: &Path, name: &[u8]) -> Result<Vec<u8>, i32> {
    let p = cpath(path);
    let name = CString::new(name).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
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
        return Err(last_errno());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// Runs a path system call and returns 0 or its errno.
pub fn sys_path(
    path: &Path,
    f: impl FnOnce(*const libc::c_char) -> libc::c_int,
) -> Result<(), i32> {
    let p = cpath(path);
    if f(p.as_ptr()) < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

pub fn rmdir_raw(path: &Path) -> Result<(), i32> {
    // SAFETY: a valid C string.
    sys_path(path, |p| unsafe { libc::rmdir(p) })
}

pub fn unlink_raw(path: &Path) -> Result<(), i32> {
    // SAFETY: a valid C string.
    sys_path(path, |p| unsafe { libc::unlink(p) })
}

pub fn mkdir_raw(path: &Path) -> Result<(), i32> {
    // SAFETY: a valid C string.
    sys_path(path, |p| unsafe { libc::mkdir(p, 0o755) })
}

/// Names in a directory (raw bytes), or the errno of opening/reading it.
pub fn list_raw(dir: &Path) -> Result<Vec<Vec<u8>>, i32> {
    let rd = std::fs::read_dir(dir).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    let mut names = Vec::new();
    for e in rd {
        let e = e.map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        names.push(e.file_name().as_bytes().to_vec());
    }
    names.sort();
    Ok(names)
}

pub fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EACCES => "EACCES",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::ENODATA => "ENODATA",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENOTCONN => "ENOTCONN",
        libc::ESTALE => "ESTALE",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::E2BIG => "E2BIG",
        libc::EFAULT => "EFAULT",
        libc::EDEADLK => "EDEADLK",
        libc::EINTR => "EINTR",
        libc::EBUSY => "EBUSY",
        _ => return format!("errno {e}"),
    };
    name.to_string()
}

// ---------------------------------------------------------------------------
// The daemon and the command-line tools.

/// Pids of the daemons serving `store` (the mount command line names the
/// store path, which is unique to each test's temp dir).
pub fn daemon_pids(store: &Path) -> Vec<i32> {
    let want = store.as_os_str().as_bytes();
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

/// The one daemon serving `store`.
pub fn daemon_pid(store: &Path) -> i32 {
    let pids = daemon_pids(store);
    assert_eq!(
        pids.len(),
        1,
        "expected one daemon for {}, found {pids:?}",
        store.display()
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

/// Aborts the FUSE connections of every mount of `store` (through the
/// fusectl file system, mounted for the purpose if it is not): whatever
/// waits on them returns ENOTCONN, and a daemon stuck in the kernel can
/// end. Returns how many were aborted.
pub fn abort_connections(store: &Path) -> usize {
    let want = store.display().to_string();
    let minors: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mut r = right.split(' ');
            let (fstype, source) = (r.next()?, r.next()?);
            let dev = left.split(' ').nth(2)?;
            (fstype.starts_with("fuse") && source == want)
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
        detach(ctl);
    }
    aborted
}

fn detach(path: &Path) {
    let c = cpath(path);
    // SAFETY: a valid C string.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
}

/// `tagcachefs <args>`, its output captured.
pub fn tool(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running tagcachefs")
}

/// `tagcachefs cleanup STORE --json`: what it removed, as JSON.
pub fn cleanup_json(store: &Path) -> serde_json::Value {
    let out = tool(&["cleanup".as_ref(), store.as_os_str(), "--json".as_ref()]);
    assert!(
        out.status.success(),
        "tagcachefs cleanup {} failed: {}",
        store.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "cleanup --json printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// How many things a cleanup report says were removed (every count but
/// `bytes`; 0 = removed nothing).
pub fn removed_total(report: &serde_json::Value) -> u64 {
    report
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| *k != "bytes")
                .filter_map(|(_, v)| v.as_u64())
                .sum()
        })
        .unwrap_or_else(|| panic!("not a cleanup report: {report}"))
}

/// Names in the store's `tmp/` starting with `prefix`.
pub fn tmp_files(store: &Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.join("tmp"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
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

// ---------------------------------------------------------------------------
// Child processes: this test binary, re-run on one test in a role.

/// A child process running `role` of test `test` (the test function checks
/// `ROLE` first and runs the role instead). Its stdout and stderr go to
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
pub fn wait_all(
    children: &mut [Child],
    deadline: std::time::Instant,
) -> Vec<(String, Option<i32>, String)> {
    let mut results = Vec::new();
    for c in children.iter_mut() {
        let status = loop {
            match c.child.try_wait() {
                Ok(Some(st)) => break st.code().or(Some(-1000)),
                Ok(None) if std::time::Instant::now() < deadline => {
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

// ---------------------------------------------------------------------------
// Watchdog.

/// Fails a run that does not end in time: after `limit` it prints the
/// kernel stacks of the daemon and of the registered processes, SIGKILLs
/// them and aborts the store's FUSE connections (so everything blocked on
/// the mount returns ENOTCONN), and records that it fired.
pub struct Watchdog {
    tx: Option<mpsc::Sender<()>>,
    fired: Arc<AtomicBool>,
    pub pids: Arc<Mutex<Vec<i32>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    pub fn new(what: &str, limit: Duration, stores: Vec<PathBuf>) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let pids: Arc<Mutex<Vec<i32>>> = Arc::default();
        let (f, p, what) = (fired.clone(), pids.clone(), what.to_string());
        let thread = std::thread::spawn(move || {
            if !matches!(rx.recv_timeout(limit), Err(mpsc::RecvTimeoutError::Timeout)) {
                return;
            }
            f.store(true, Ordering::SeqCst);
            eprintln!("WATCHDOG: {what} did not end within {limit:?} (deadlock?)");
            let daemons: Vec<i32> = stores.iter().flat_map(|s| daemon_pids(s)).collect();
            for pid in &daemons {
                eprintln!("daemon {pid}:\n{}", stacks_of(*pid));
            }
            let others = p.lock().unwrap().clone();
            for pid in &others {
                eprintln!("process {pid}:\n{}", stacks_of(*pid));
            }
            for pid in others.iter().chain(&daemons) {
                // SAFETY: plain syscall.
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
            // A daemon thread stuck in the kernel survives SIGKILL and
            // keeps the connection up: abort it, so the test can end.
            std::thread::sleep(Duration::from_secs(1));
            for store in &stores {
                abort_connections(store);
            }
        });
        Watchdog {
            tx: Some(tx),
            fired,
            pids,
            thread: Some(thread),
        }
    }

    pub fn watch(&self, pid: i32) {
        self.pids.lock().unwrap().push(pid);
    }

    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Stops the watchdog; true if it had fired.
    pub fn disarm(&mut self) -> bool {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.fired()
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.disarm();
    }
}

/// Lets another user through a temp dir that `tempfile` made 0700.
pub fn open_up(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Polls `f` until it returns true or `secs` pass; returns the seconds it
/// took, or None.
pub fn within(secs: f64, mut f: impl FnMut() -> bool) -> Option<f64> {
    let start = std::time::Instant::now();
    loop {
        if f() {
            return Some(start.elapsed().as_secs_f64());
        }
        if start.elapsed().as_secs_f64() > secs {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
