//! The Debian package as an administrator uses it: `scripts/package`
//! builds it, apt installs it, mount(8) mounts through its helper (with
//! `mount -t fuse.tagcachefs` and with the README's fstab line), and apt
//! removes it again. Nothing of the build directory is used once the
//! package is installed; mount.fuse3 never runs.
//!
//! The test changes the machine (it installs a package) and builds a
//! release binary, so .config/nextest.toml runs it alone, with a longer
//! timeout. It leaves the machine as it found it, also when it fails, and
//! refuses to run over a tagcachefs installed by someone else.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::*;

const HELPER: &str = "/sbin/mount.fuse.tagcachefs";
const INSTALLED: &str = "/usr/bin/tagcachefs";
/// What mount(8) and the helper may use: the system's directories only.
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn run(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn apt_get(args: &[&str]) -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.args(["-y", "-q", "-o", "DPkg::Lock::Timeout=120"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null());
    cmd
}

fn installed() -> bool {
    let out = output(Command::new("dpkg-query").args(["-W", "-f=${Status}", "tagcachefs"]));
    String::from_utf8_lossy(&out.stdout).contains("installed")
        && !String::from_utf8_lossy(&out.stdout).contains("not-installed")
}

/// Removes the package when dropped: after a failure too.
struct Package;

impl Package {
    fn install(deb: &Path) -> Package {
        let package = Package;
        // No recommends: the point is that nothing but the package is needed.
        run(apt_get(&["install", "--no-install-recommends"]).arg(deb));
        package
    }

    fn remove(self) {
        run(&mut apt_get(&["purge", "tagcachefs"]));
        std::mem::forget(self);
        assert!(!installed(), "apt-get purge removed the package");
        for path in [HELPER, INSTALLED] {
            assert!(
                std::fs::symlink_metadata(path).is_err(),
                "{path} is gone with the package"
            );
        }
    }
}

impl Drop for Package {
    fn drop(&mut self) {
        let out = apt_get(&["purge", "tagcachefs"]).output();
        if !out.as_ref().is_ok_and(|o| o.status.success()) {
            eprintln!("removing the package failed: {out:?}");
        }
    }
}

/// scripts/package, then the .deb it made for this version.
fn build() -> PathBuf {
    run(Command::new(repo().join("scripts/package")).current_dir(repo()));
    let dir = repo().join("target/debian");
    let prefix = format!("tagcachefs_{}-", env!("CARGO_PKG_VERSION"));
    let debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(&prefix) && name.ends_with(".deb")
        })
        .collect();
    assert_eq!(debs.len(), 1, "one package in {}: {debs:?}", dir.display());
    debs.into_iter().next().unwrap()
}

/// The fstab line of the README's Install section, for `store` and `mnt`.
fn readme_fstab_line(store: &Path, mnt: &Path) -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.starts_with("/var/cache/blog ") && l.contains(" fuse.tagcachefs "))
        .expect("the README's Install section has an fstab line");
    assert!(
        line.contains("nofail") && line.contains("x-systemd.requires-mounts-for=/var/cache/blog"),
        "{line}"
    );
    line.replace("/var/cache/blog", store.to_str().unwrap())
        .replace("/mnt/cache", mnt.to_str().unwrap())
}

fn is_mounted(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    mounts.lines().any(|l| l.split(' ').nth(1) == path.to_str())
}

/// The daemon serving `store` is the installed binary, run as the helper.
fn assert_served_by_the_helper(store: &Path) {
    let pid = daemon_pid(store);
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(exe, Path::new(INSTALLED), "the installed binary serves");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap();
    assert_eq!(
        String::from_utf8_lossy(argv0),
        HELPER,
        "mount(8) ran the package's helper (not mount.fuse3)"
    );
}

/// Writes through the mount and reads it back, tags and default TTL kept.
fn round_trip(mnt: &Path, ttl: &[u8]) {
    put(&mnt.join("keys/a"), b"hello", "t", 3600);
    assert_eq!(read(&mnt.join("keys/a")).unwrap(), b"hello");
    assert_eq!(read(&mnt.join("tags/t/a")).unwrap(), b"hello");
    std::fs::write(mnt.join("keys/b"), "plain").unwrap();
    assert_eq!(get_xattr(&mnt.join("keys/b"), "user.expire").unwrap(), ttl);
}

fn umount(mnt: &Path, store: &Path) {
    run(Command::new("umount").arg(mnt).env("PATH", PATH));
    eventually(10.0, || daemon_pids(store).is_empty()).expect("umount ends the daemon");
}

#[test]
fn the_debian_package_installs_mounts_from_mount_t_and_fstab_and_removes() {
    // SAFETY: plain getter.
    assert_eq!(
        unsafe { libc::getuid() },
        0,
        "installing a package needs root"
    );
    assert!(
        !installed(),
        "tagcachefs is already installed here; this test installs and removes it, \
         so it does not run over an install it did not make (apt-get purge tagcachefs)"
    );
    for path in [HELPER, INSTALLED] {
        assert!(
            std::fs::symlink_metadata(path).is_err(),
            "{path} exists outside the package; remove it first"
        );
    }

    let deb = build();
    let package = Package::install(&deb);

    // What the package holds.
    let helper = std::fs::read_link(HELPER).expect("the mount helper is a symlink");
    assert_eq!(helper, Path::new(INSTALLED));
    let man = run(Command::new("zcat").arg("/usr/share/man/man1/tagcachefs.1.gz"));
    assert!(man.contains("EXIT STATUS") && man.contains("fuse.tagcachefs"));
    for (shell, path, needle) in [
        (
            "bash",
            "/usr/share/bash-completion/completions/tagcachefs",
            "complete -F",
        ),
        (
            "zsh",
            "/usr/share/zsh/vendor-completions/_tagcachefs",
            "#compdef tagcachefs",
        ),
        (
            "fish",
            "/usr/share/fish/vendor_completions.d/tagcachefs.fish",
            "complete -c tagcachefs",
        ),
    ] {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{shell}: {path}: {e}"));
        assert!(text.contains(needle), "{shell} completions: {path}");
    }
    run(Command::new("bash").args([
        "-c",
        "source /usr/share/bash-completion/completions/tagcachefs && complete -p tagcachefs",
    ]));
    let unit = std::fs::read_to_string("/lib/systemd/system/tagcachefs@.service").unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/tagcachefs "), "{unit}");
    let listed = run(Command::new("dpkg-query").args(["-L", "tagcachefs"]));
    assert!(
        !listed.lines().any(|l| l.starts_with("/etc/")),
        "nothing in /etc: no unit is enabled\n{listed}"
    );
    for doc in ["README.md", "changelog.gz", "examples/mnt-cache.mount"] {
        assert!(
            Path::new("/usr/share/doc/tagcachefs").join(doc).exists(),
            "{doc}"
        );
    }

    // mount -t, with the options mount(8) and systemd add.
    let dir = tempfile::tempdir().unwrap();
    let (store, mnt) = (dir.path().join("store"), dir.path().join("mnt"));
    std::fs::create_dir(&mnt).unwrap();
    run(Command::new("mount")
        .args(["-t", "fuse.tagcachefs"])
        .arg(&store)
        .arg(&mnt)
        .args(["-o", "default_expire=60,nofail,_netdev,noatime"])
        .env("PATH", PATH));
    let guard = Unmount(mnt.clone());
    assert!(is_mounted(&mnt), "mount(8) returns once the mount is live");
    assert_served_by_the_helper(&store);
    round_trip(&mnt, b"60");
    let stats = run(Command::new(INSTALLED).arg("stats").arg(&mnt).arg("--json"));
    assert!(stats.contains("\"commits\": 2"), "{stats}");
    umount(&mnt, &store);
    drop(guard);

    // The README's fstab line, mounted by its mount point.
    let (store, mnt) = (dir.path().join("store2"), dir.path().join("mnt2"));
    std::fs::create_dir(&mnt).unwrap();
    let fstab = dir.path().join("fstab");
    std::fs::write(&fstab, readme_fstab_line(&store, &mnt) + "\n").unwrap();
    run(Command::new("mount")
        .arg("-T")
        .arg(&fstab)
        .arg(&mnt)
        .env("PATH", PATH));
    let guard = Unmount(mnt.clone());
    assert!(is_mounted(&mnt));
    assert_served_by_the_helper(&store);
    round_trip(&mnt, b"3600");
    umount(&mnt, &store);
    drop(guard);

    // An option nobody knows is refused, with its name.
    let out = output(
        Command::new("mount")
            .args(["-t", "fuse.tagcachefs"])
            .arg(&store)
            .arg(&mnt)
            .args(["-o", "bogus"])
            .env("PATH", PATH),
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "mount(8) passes the helper's code"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown mount option \"bogus\""));
    assert!(!is_mounted(&mnt));

    package.remove();
}
