//! A GlusterFS volume for a test, with two client hosts, torn down when
//! the guard drops (also when the test panics).
//!
//! - The server is this machine's network namespace: `glusterd` with a
//!   working directory of its own (a temp dir, so nothing of it outlives
//!   the test), and one replica pair of bricks (a replicated volume, 1 ×
//!   2) on one tmpfs, whose use is the store's size twice over. Not
//!   distributed: on a 2 × 2 volume, two clients removing the same
//!   directories at once (cleanups on both hosts) hung both in rmdir, 2
//!   of some 17 runs (doc/SEVERAL-HOSTS.md).
//! - Each host is a network namespace of its own, `tcfsgl-a` and
//!   `tcfsgl-b`, joined to the server by a veth pair: 198.18.1.2 and
//!   198.18.2.2 (RFC 2544 benchmarking addresses, never routed), the
//!   server at 198.18.1.1, reached from b through its gateway 198.18.2.1.
//!   glusterd refuses bricks on a loopback address, and a client in a
//!   namespace of its own is one more client the server cannot tell from a
//!   remote one. Each host's client (`mount -t glusterfs`, run in the
//!   host's namespace by `nsenter --net`) is mounted in this mount
//!   namespace, where the tagcachefs daemons use it.
//!
//! Only one such volume exists on a machine at a time: glusterd listens on
//! the fixed port 24007. A lock file serializes test processes (also of
//! other checkouts), and whatever an earlier, killed run left (processes,
//! mounts, namespaces) is swept away first. Setting up fails the test
//! with what went wrong (tests/gluster.rs skips only without root, and
//! never under CI).

use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Tmpfs, unmount};

/// What every name, process and path of ours carries, so that a sweep
/// finds what a killed run left.
const MARK: &str = "tcfsgl";
/// The server's address (the server end of host a's link).
pub const SERVER: &str = "198.18.1.1";
/// The volume settings the README's "Several hosts" section gives, each
/// one decided by a test: the checks of tests/gluster.rs fail without it,
/// or `each_volume_setting_is_needed` measures what goes wrong (figures
/// in doc/SEVERAL-HOSTS.md).
pub const SETTINGS: &[(&str, &str)] = &[
    // Upcall invalidations carry times as 32-bit seconds: the other client
    // reads the expiry "never" (2^32) as a time long past, so a live entry
    // as expired (10 of 10 files). Without them, metadata is cached for
    // md-cache-timeout.
    ("features.cache-invalidation", "off"),
    // The default, stated because the bound is made of it (the
    // metadata-cache group raises it to 600 s).
    ("performance.md-cache-timeout", "1"),
    // A negative-lookup cache hides another host's new names: not seen
    // within 15 s.
    ("performance.nl-cache", "off"),
    // quick-read serves a small file's content cached at lookup, which no
    // page-cache drop reaches: the size ledger, rewritten under its lock by
    // every host, must be read fresh (1 of 40 updates lost).
    // open-behind answers an open at once and opens on the bricks only
    // later (reads go through anonymous descriptors meanwhile): nothing
    // then keeps the file alive, and a version another host's cleanup
    // removes is gone (ENOENT) for a reader that had it open here.
    ("performance.open-behind", "off"),
    // AFR's eager lock holds a file's lock 1 s after a write by default:
    // every hand-over of the ledger between hosts waits that long (980 ms
    // an update taking turns, against 5 ms).
    ("cluster.post-op-delay-secs", "0"),
];
/// The client's kernel caches (mount options of `mount -t glusterfs`,
/// these are its defaults): attributes and names 1 s, no negative names.
pub const CLIENT_OPTIONS: &str = "attribute-timeout=1,entry-timeout=1,negative-timeout=0";
/// How long metadata changed through one client may stay unseen by the
/// other: the kernel's attribute-timeout plus md-cache-timeout, in seconds.
pub const VOLUME_STALENESS: f64 = 2.0;

pub struct Host {
    pub name: &'static str,
    pub netns: String,
    /// This host's client mount of the volume.
    pub mnt: PathBuf,
}

pub struct Volume {
    pub name: String,
    pub hosts: Vec<Host>,
    dir: tempfile::TempDir,
    bricks: Option<Tmpfs>,
    glusterd: Option<i32>,
    created: bool,
    _lock: std::fs::File,
}

impl Volume {
    /// A started 1 × 2 volume with `SETTINGS`, mounted on both hosts.
    pub fn up() -> Volume {
        let lock = machine_lock();
        install();
        sweep();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{MARK}-"))
            .tempdir()
            .unwrap();
        let mut v = Volume {
            name: format!("{MARK}{}", std::process::id()),
            hosts: Vec::new(),
            dir,
            bricks: None,
            glusterd: None,
            created: false,
            _lock: lock,
        };
        let started = Instant::now();
        v.network();
        v.start_glusterd();
        v.create(SETTINGS);
        for i in 0..v.hosts.len() {
            v.mount_client(i);
        }
        eprintln!(
            "volume {} (1 x 2 bricks on a tmpfs) up and mounted on {} hosts in {:.1} s",
            v.name,
            v.hosts.len(),
            started.elapsed().as_secs_f64()
        );
        v
    }

    /// The tmpfs that holds every brick: its use is the store's twice.
    pub fn bricks_root(&self) -> &Path {
        self.bricks.as_ref().unwrap().path()
    }

    /// `gluster volume set`, on the running volume.
    pub fn set(&self, key: &str, value: &str) {
        gluster(&["volume", "set", &self.name, key, value]);
    }

    fn network(&mut self) {
        for (i, name) in ["a", "b"].into_iter().enumerate() {
            let netns = format!("{MARK}-{name}");
            let net = i + 1;
            let (outer, inner) = (format!("198.18.{net}.1"), format!("198.18.{net}.2"));
            run_ok("ip", &["netns", "add", &netns]);
            run_ok(
                "ip",
                &[
                    "link", "add", &netns, "type", "veth", "peer", "name", "eth0", "netns", &netns,
                ],
            );
            run_ok(
                "ip",
                &["addr", "add", &format!("{outer}/24"), "dev", &netns],
            );
            run_ok("ip", &["link", "set", &netns, "up"]);
            let inside = |args: &[&str]| {
                let mut all = vec!["-n", &netns];
                all.extend_from_slice(args);
                run_ok("ip", &all);
            };
            inside(&["addr", "add", &format!("{inner}/24"), "dev", "eth0"]);
            inside(&["link", "set", "eth0", "up"]);
            inside(&["link", "set", "lo", "up"]);
            inside(&["route", "add", "default", "via", &outer]);
            let mnt = self.dir.path().join(format!("host-{name}"));
            std::fs::create_dir(&mnt).unwrap();
            self.hosts.push(Host { name, netns, mnt });
        }
    }

    fn start_glusterd(&mut self) {
        let d = self.dir.path();
        let work = d.join("glusterd");
        std::fs::create_dir(&work).unwrap();
        // The packaged volfile, with the working directory moved into ours.
        let vol = std::fs::read_to_string("/etc/glusterfs/glusterd.vol")
            .expect("/etc/glusterfs/glusterd.vol (glusterfs-server)");
        let vol: String = vol
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("option working-directory") {
                    format!("    option working-directory {}", work.display())
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let volfile = d.join("glusterd.vol");
        std::fs::write(&volfile, vol + "\n").unwrap();
        let pidfile = d.join("glusterd.pid");
        run_ok(
            "glusterd",
            &[
                "-f",
                volfile.to_str().unwrap(),
                "-p",
                pidfile.to_str().unwrap(),
                "-l",
                d.join("glusterd.log").to_str().unwrap(),
            ],
        );
        let up = crate::support::eventually(20.0, || {
            run("gluster", &["--mode=script", "pool", "list"], 10).is_ok_and(|o| o.status.success())
        });
        assert!(
            up.is_ok(),
            "glusterd did not answer within 20 s:\n{}",
            std::fs::read_to_string(d.join("glusterd.log")).unwrap_or_default()
        );
        self.glusterd = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|p| p.trim().parse().ok());
    }

    fn create(&mut self, settings: &[(&str, &str)]) {
        let fs = Tmpfs::new("size=512m");
        let mut args = vec![
            "volume".to_string(),
            "create".into(),
            self.name.clone(),
            "replica".into(),
            "2".into(),
        ];
        for b in 1..=2 {
            let brick = fs.path().join(format!("brick{b}"));
            std::fs::create_dir(&brick).unwrap();
            args.push(format!("{SERVER}:{}", brick.display()));
        }
        self.bricks = Some(fs);
        // `force`: the bricks of a replica pair on one server.
        args.push("force".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        gluster(&args);
        self.created = true;
        for (k, v) in settings {
            self.set(k, v);
        }
        gluster(&["volume", "start", &self.name]);
    }

    fn mount_client(&self, i: usize) {
        let h = &self.hosts[i];
        let source = format!("{SERVER}:/{}", self.name);
        let out = run(
            "nsenter",
            &[
                &format!("--net=/run/netns/{}", h.netns),
                "mount",
                "-t",
                "glusterfs",
                "-o",
                CLIENT_OPTIONS,
                &source,
                h.mnt.to_str().unwrap(),
            ],
            60,
        )
        .unwrap_or_else(|e| panic!("mounting {source} on host {}: {e}", h.name));
        assert!(
            out.status.success() && is_mounted(&h.mnt),
            "mounting {source} on host {} failed: {}{}",
            h.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        for h in &self.hosts {
            if is_mounted(&h.mnt) {
                unmount(&h.mnt);
            }
        }
        if self.created {
            let _ = run(
                "gluster",
                &["--mode=script", "volume", "stop", &self.name, "force"],
                60,
            );
            let _ = run(
                "gluster",
                &["--mode=script", "volume", "delete", &self.name],
                60,
            );
        }
        if let Some(pid) = self.glusterd {
            stop_process(pid);
        }
        // The self-heal daemon and anything else of this volume.
        let dir = self.dir.path().display().to_string();
        for pid in marked_pids(&[&self.name, &dir]) {
            stop_process(pid);
        }
        for h in &self.hosts {
            let _ = run("ip", &["netns", "del", &h.netns], 10);
        }
        // The bricks' tmpfs goes with `bricks`, the temp dir after it.
        self.bricks.take();
        let _ = std::fs::remove_dir_all(format!("/var/run/gluster/vols/{}", self.name));
        let _ = std::fs::remove_dir_all(format!("/var/run/gluster/shd/{}", self.name));
    }
}

/// Serializes the test processes of this machine that run a volume; held
/// by the volume.
fn machine_lock() -> std::fs::File {
    std::fs::create_dir_all("/run/lock").unwrap();
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/run/lock/tagcachefs-gluster-test")
        .unwrap();
    // SAFETY: a valid descriptor.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        eprintln!("waiting for another GlusterFS test on this machine to finish");
        // SAFETY: a valid descriptor.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(r, 0, "flock: {}", std::io::Error::last_os_error());
    }
    f
}

/// Installs GlusterFS with apt-get when a part of it is missing (as
/// scripts/test does for the whole suite).
fn install() {
    let have = [
        "/usr/sbin/glusterd",
        "/usr/sbin/gluster",
        "/sbin/mount.glusterfs",
    ]
    .iter()
    .all(|p| Path::new(p).exists());
    if have {
        return;
    }
    eprintln!("installing glusterfs-server and glusterfs-client with apt-get");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .expect("running apt-get (GlusterFS is missing: apt-get install glusterfs-server glusterfs-client)")
    };
    let install = [
        "install",
        "-y",
        "-qq",
        "glusterfs-server",
        "glusterfs-client",
    ];
    if !apt(&install).status.success() {
        apt(&["update", "-qq"]);
        let out = apt(&install);
        assert!(
            out.status.success(),
            "apt-get install glusterfs-server glusterfs-client failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Removes what an earlier run that was killed left behind: its client
/// mounts, its processes, its namespaces. Called under the machine lock,
/// so nothing marked is another live run's.
fn sweep() {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    for line in mounts.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() > 2 && f[2] == "fuse.glusterfs" && f[0].contains(&format!(":/{MARK}")) {
            eprintln!("unmounting {} left by an earlier run", f[1]);
            unmount(Path::new(f[1]));
        }
    }
    for pid in marked_pids(&[MARK]) {
        eprintln!("stopping process {pid} left by an earlier run");
        stop_process(pid);
    }
    // Another glusterd (the system's) would hold the port.
    let other: Vec<i32> = gluster_pids()
        .into_iter()
        .filter(|(_, args)| args.first().is_some_and(|a| a.ends_with("glusterd")))
        .map(|(pid, _)| pid)
        .collect();
    assert!(
        other.is_empty(),
        "a glusterd not started by this test runs (pids {other:?}): it holds port 24007; stop it first"
    );
    if let Ok(rd) = std::fs::read_dir("/run/netns") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!("{MARK}-")) {
                let _ = run("ip", &["netns", "del", &name], 10);
            }
        }
    }
    // A namespace's veth goes with it, a moment later.
    let _ = crate::support::eventually(5.0, || {
        ["a", "b"]
            .iter()
            .all(|h| !Path::new(&format!("/sys/class/net/{MARK}-{h}")).exists())
    });
}

/// GlusterFS processes (glusterd, glusterfsd, glusterfs), with their
/// command lines.
fn gluster_pids() -> Vec<(i32, Vec<String>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_gluster = args.first().is_some_and(|a| {
            let base = a.rsplit('/').next().unwrap_or(a);
            matches!(base, "glusterd" | "glusterfsd" | "glusterfs")
        });
        if is_gluster {
            out.push((pid, args));
        }
    }
    out
}

/// GlusterFS processes whose command line contains one of `marks`.
fn marked_pids(marks: &[&str]) -> Vec<i32> {
    gluster_pids()
        .into_iter()
        .filter(|(_, args)| args.iter().any(|a| marks.iter().any(|m| a.contains(m))))
        .map(|(pid, _)| pid)
        .collect()
}

/// SIGTERM, then SIGKILL if it has not ended within 5 s.
fn stop_process(pid: i32) {
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, r)| !r.starts_with('Z'))
        })
    };
    // SAFETY: plain syscalls.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    if crate::support::eventually(5.0, || !alive()).is_err() {
        // SAFETY: plain syscalls.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = crate::support::eventually(5.0, || !alive());
    }
}

/// What is in use on the file system at `root` (statvfs).
pub fn used_bytes(root: &Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(root).unwrap();
    (st.blocks() - st.blocks_free()) * st.fragment_size()
}

pub fn is_mounted(path: &Path) -> bool {
    let want = path.as_os_str().as_bytes();
    std::fs::read("/proc/self/mounts")
        .unwrap_or_default()
        .split(|&b| b == b'\n')
        .any(|l| l.split(|&b| b == b' ').nth(1) == Some(want))
}

/// `gluster --mode=script ARGS`, which must succeed.
pub fn gluster(args: &[&str]) -> String {
    let mut all = vec!["--mode=script"];
    all.extend_from_slice(args);
    let out = run("gluster", &all, 60).unwrap_or_else(|e| panic!("gluster {args:?}: {e}"));
    assert!(
        out.status.success(),
        "gluster {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_ok(program: &str, args: &[&str]) {
    let out = run(program, args, 60).unwrap_or_else(|e| panic!("{program} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command with a time limit (killed past it). Its output goes to
/// files, not pipes: glusterd and the client daemonize, and a daemon that
/// kept a pipe open would keep a reader waiting.
pub fn run(program: &str, args: &[&str], secs: u64) -> Result<Output, String> {
    use std::io::{Read, Seek};
    let (mut out, mut err) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} {args:?} still running after {secs} s"));
            }
        }
    };
    let read = |f: &mut std::fs::File| {
        let mut v = Vec::new();
        f.rewind().unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    };
    Ok(Output {
        status,
        stdout: read(&mut out),
        stderr: read(&mut err),
    })
}
