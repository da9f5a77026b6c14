//! Mounting the way Linux users do (mount -t, fstab), signals, and the
//! command-line tools.

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

fn is_mounted(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let path = path.to_str().unwrap();
    mounts.lines().any(|l| l.split(' ').nth(1) == Some(path))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dirs() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    (dir, store, mnt)
}

#[test]
fn mount_t_fuse_with_the_program_path_passes_options() {
    let (_dir, store, mnt) = dirs();
    let source = format!("{BIN}#{}", store.display());
    run(Command::new("mount")
        .args(["-t", "fuse", &source])
        .arg(&mnt)
        .args(["-o", "default_expire=60,nosuid,nodev,noatime"]));
    let _guard = Unmount(mnt.clone());
    assert!(
        is_mounted(&mnt),
        "mount(8) returns only once the mount is live"
    );
    std::fs::write(mnt.join("keys/a"), "x").unwrap();
    assert_eq!(
        get_xattr(&mnt.join("keys/a"), "user.expire").unwrap(),
        b"60"
    );
    let line = std::fs::read_to_string("/proc/mounts").unwrap();
    let line = line
        .lines()
        .find(|l| l.contains(mnt.to_str().unwrap()))
        .unwrap()
        .to_string();
    assert!(line.contains("nosuid") && line.contains("nodev"), "{line}");
}

#[test]
fn mount_t_fuse_tagcachefs_through_mount_fuse3() {
    // mount.fuse3 runs `tagcachefs STORE MNT -o ...` from the helper PATH,
    // where an installed tagcachefs lives.
    let installed = Path::new("/usr/local/bin/tagcachefs");
    let ours = !installed.exists();
    if ours {
        std::os::unix::fs::symlink(BIN, installed)
            .expect("installing tagcachefs (the test runs as root)");
    }
    struct Remove(bool);
    impl Drop for Remove {
        fn drop(&mut self) {
            if self.0 {
                let _ = std::fs::remove_file("/usr/local/bin/tagcachefs");
            }
        }
    }
    let _remove = Remove(ours);
    let (_dir, store, mnt) = dirs();
    run(Command::new("mount")
        .args(["-t", "fuse.tagcachefs"])
        .arg(&store)
        .arg(&mnt)
        .args(["-o", "default_expire=45,allow_other"]));
    let _guard = Unmount(mnt.clone());
    std::fs::write(mnt.join("keys/a"), "x").unwrap();
    assert_eq!(
        get_xattr(&mnt.join("keys/a"), "user.expire").unwrap(),
        b"45"
    );
}

#[test]
fn fstab_line_mounts_with_mount_fstab() {
    let (dir, store, mnt) = dirs();
    let fstab = dir.path().join("fstab");
    std::fs::write(
        &fstab,
        format!(
            "{BIN}#{} {} fuse default_expire=30,cache_timeout=2,noauto 0 0\n",
            store.display(),
            mnt.display()
        ),
    )
    .unwrap();
    run(Command::new("mount").arg("--fstab").arg(&fstab).arg(&mnt));
    let _guard = Unmount(mnt.clone());
    std::fs::write(mnt.join("keys/a"), "x").unwrap();
    assert_eq!(
        get_xattr(&mnt.join("keys/a"), "user.expire").unwrap(),
        b"30"
    );
}

#[test]
fn unknown_mount_options_are_refused_with_a_message() {
    let (_dir, store, mnt) = dirs();
    let out = Command::new(BIN)
        .arg(&store)
        .arg(&mnt)
        .args(["-o", "rw,bogus=1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown mount option \"bogus=1\""));
    assert!(!is_mounted(&mnt));
}

#[test]
fn sigterm_unmounts_both_mounts() {
    let m = Mount::with_fast_view(&[]);
    let pid = daemon_pid(&m.store);
    assert!(is_mounted(&m.mnt) && is_mounted(&m.fast));
    // SAFETY: sending a signal to a process we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    eventually(10.0, || !is_mounted(&m.mnt) && !is_mounted(&m.fast)).expect("SIGTERM unmounts");
}

#[test]
fn external_umount_ends_the_daemon() {
    let mut m = Mount::new(&[]);
    let pid = daemon_pid(&m.store);
    m.unmount();
    // A zombie keeps its /proc entry: its state below decides.
    let _ = eventually(10.0, || !Path::new(&format!("/proc/{pid}")).exists());
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        state.is_empty() || state.contains(") Z"),
        "the daemon exited: {state}"
    );
}

#[test]
fn cleanup_and_stats_commands_report_counts() {
    let m = Mount::new(&[]);
    put(&m.keys("a"), b"12345", "t", 0);
    put(&m.keys("b"), b"678", "u", 0);
    std::fs::remove_dir(m.tag("u")).unwrap();
    let stats = run(Command::new(BIN).arg("stats").arg(&m.mnt).arg("--json"));
    let v: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(v["entries"], 1);
    assert_eq!(v["bytes"], 5);
    assert_eq!(v["stale_entries"], 1);
    assert_eq!(v["daemon"]["commits"], 2);
    let table = run(Command::new(BIN).arg("stats").arg(&m.store));
    assert!(table.contains("entries        1"), "{table}");
    // A dry run counts what would go and removes nothing.
    let before = store_listing(&m.store);
    let dry = run(Command::new(BIN)
        .args(["cleanup", "--dry-run", "--json"])
        .arg(&m.store));
    let d: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(
        (d["entries"].as_u64(), d["dry_run"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(
        store_listing(&m.store),
        before,
        "a dry run removed something"
    );
    let human = run(Command::new(BIN)
        .args(["cleanup", "--dry-run"])
        .arg(&m.store));
    assert!(human.starts_with("would remove 1 entries (3 B)"), "{human}");
    let cleaned = run(Command::new(BIN).arg("cleanup").arg(&m.store).arg("--json"));
    let v: serde_json::Value = serde_json::from_str(&cleaned).unwrap();
    assert_eq!(v["entries"], 1);
    assert_eq!(v["bytes"], 3);
    for key in ["entries", "tag_links", "tag_dirs", "tmp_files"] {
        assert_eq!(
            v[key], d[key],
            "the dry run's {key} was not what cleanup removed"
        );
    }
    let again = run(Command::new(BIN).arg("cleanup").arg(&m.store));
    assert!(again.starts_with("removed 0 entries"), "{again}");
    assert_eq!(read(&m.keys("a")).unwrap(), b"12345");
}

#[test]
fn cli_tools_refuse_a_directory_that_is_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    for cmd in ["cleanup", "stats"] {
        let out = Command::new(BIN).arg(cmd).arg(dir.path()).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "the store is not usable");
        assert!(String::from_utf8_lossy(&out.stderr).contains("not a tagcachefs store"));
    }
}

#[test]
fn help_names_every_option() {
    let help = run(Command::new(BIN).arg("--help"));
    for opt in [
        "--foreground",
        "--allow-other",
        "--default-expire",
        "--cache-timeout",
        "--cleanup-interval",
        "--read-mount",
        "--log-file",
        "-o <OPTIONS>",
        "cleanup",
        "stats",
    ] {
        assert!(help.contains(opt), "--help lacks {opt}:\n{help}");
    }
}

#[test]
fn a_normal_user_mounts_through_fusermount3_and_sigterm_unmounts() {
    let mode = std::fs::metadata("/dev/fuse").expect("/dev/fuse exists");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o666,
        0o666,
        "/dev/fuse must be usable by every user as Debian sets it up (scripts/test does, as root)"
    );
    assert!(
        Path::new("/usr/bin/fusermount3").exists() || Path::new("/bin/fusermount3").exists(),
        "fusermount3 (Debian package fuse3)"
    );
    let (dir, store, mnt) = dirs();
    for p in [dir.path(), &mnt] {
        std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
    }
    let as_nobody = |script: &str| {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "bash",
            "-c",
            script,
        ]);
        cmd
    };
    let script = format!(
        "set -e; {BIN} {s} {m}; echo hi > {m}/keys/a; setfattr -n user.tags -v t {m}/keys/a; cat {m}/tags/t/a; stat -c %u {m}/keys/a",
        s = store.display(),
        m = mnt.display()
    );
    let out = run(&mut as_nobody(&script));
    let _guard = Unmount(mnt.clone());
    assert_eq!(out, "hi\n65534\n", "owner = the mounting user");
    let line = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(
        line.contains(&format!("{} fuse", mnt.display())) && line.contains("user_id=65534"),
        "{line}"
    );
    let pid = daemon_pid(&store);
    // SAFETY: signalling the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    eventually(10.0, || !is_mounted(&mnt))
        .expect("SIGTERM unmounts through fusermount3 for a normal user");
}

#[test]
fn systemd_units_in_contrib_verify() {
    // CI runs no systemd; systemd-analyze checks the units' syntax and
    // commands (with the program path pointed at this build).
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd");
    for (from, to) in [
        ("mnt-cache.mount", "mnt-cache.mount"),
        ("tagcachefs@.service", "tagcachefs@blog.service"),
    ] {
        let text = std::fs::read_to_string(src.join(from)).unwrap();
        std::fs::write(
            dir.path().join(to),
            text.replace("/usr/bin/tagcachefs", BIN),
        )
        .unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(dir.path().join(to))
            .output()
            .expect("systemd-analyze (Debian package systemd)");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && said.trim().is_empty(),
            "{to}: {said}"
        );
    }
}

/// `tagcachefs STORE MNT`'s exit code and message.
fn mount_status(store: &Path, mnt: &Path) -> (Option<i32>, String) {
    let out = Command::new(BIN).arg(store).arg(mnt).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        let _ = Unmount(mnt.to_path_buf());
    }
    (out.status.code(), said)
}

#[test]
fn exit_codes_tell_usage_store_mount_and_mount_point_apart() {
    let (dir, store, mnt) = dirs();
    let out = Command::new(BIN).arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "usage");

    // A store path that is a file: the store is not usable.
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let (code, said) = mount_status(&file, &mnt);
    assert_eq!(code, Some(3), "{said}");
    assert!(
        said.contains(file.to_str().unwrap()),
        "names the path: {said}"
    );

    // No mount point: the mount failed, with the path and the cause.
    let missing = dir.path().join("missing");
    let (code, said) = mount_status(&store, &missing);
    assert_eq!(code, Some(4), "{said}");
    assert!(
        said.contains(missing.to_str().unwrap()) && said.contains("No such file or directory"),
        "{said}"
    );
    assert_eq!(
        said.matches("tagcachefs:").count(),
        1,
        "said once, by the waiting parent: {said}"
    );

    // A mount point left dead by a killed daemon: stats says so, and a
    // mount there takes it over.
    let m = Mount::new(&[]);
    kill9(daemon_pid(&m.store)).unwrap();
    eventually(10.0, || {
        std::fs::metadata(&m.mnt)
            .err()
            .and_then(|e| e.raw_os_error())
            == Some(libc::ENOTCONN)
    })
    .expect("the guardian aborts the dead daemon's connection");
    let out = Command::new(BIN).arg("stats").arg(&m.mnt).output().unwrap();
    assert_eq!(out.status.code(), Some(5), "stats on a dead mount point");
    let out = Command::new(BIN).arg(&store).arg(&m.mnt).output().unwrap();
    assert!(
        out.status.success(),
        "a dead mount point is taken over: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _taken_over = Unmount(m.mnt.clone());
    // A mount point a live daemon serves is busy.
    let (code, said) = mount_status(&store, &m.mnt);
    assert_eq!(code, Some(5), "{said}");
    assert!(
        said.contains(m.mnt.to_str().unwrap()) && said.contains("already mounted"),
        "{said}"
    );
}

#[test]
fn help_groups_options_and_shows_examples_and_exit_codes() {
    let help = run(Command::new(BIN).arg("--help"));
    for heading in [
        "Mounting:",
        "Caching:",
        "Fast view:",
        "Logging:",
        "Metrics:",
        "Examples:",
        "Exit status:",
    ] {
        assert!(help.contains(heading), "--help lacks {heading}:\n{help}");
    }
    assert!(help.contains("fuse.tagcachefs default_expire=3600,nofail"));
    for code in 0..=5 {
        assert!(help.contains(&format!("\n  {code}  ")), "exit code {code}");
    }
    let short = run(Command::new(BIN).arg("-h"));
    assert!(short.contains("Mounting:") && !short.contains("Exit status:"));
    assert!(short.contains("--help"), "-h says where the rest is");
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    for (shell, needle) in [
        ("bash", "complete -F _tagcachefs"),
        ("zsh", "#compdef tagcachefs"),
        ("fish", "complete -c tagcachefs"),
    ] {
        let script = run(Command::new(BIN).args(["completions", shell]));
        assert!(script.contains(needle), "{shell}: {script}");
        assert!(script.contains("metrics-addr"), "{shell} knows the options");
    }
    let out = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// BIN under the name mount(8) runs it by.
fn helper(dir: &Path) -> std::path::PathBuf {
    let helper = dir.join("mount.fuse.tagcachefs");
    std::os::unix::fs::symlink(BIN, &helper).unwrap();
    helper
}

#[test]
fn the_mount_helper_takes_mount_8s_arguments_and_ignores_its_options() {
    let (dir, store, mnt) = dirs();
    let helper = helper(dir.path());
    let out = Command::new(&helper)
        .arg(&store)
        .arg(&mnt)
        .args(["-f", "-o", "default_expire=7"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!is_mounted(&mnt) && !store.exists(), "-f mounts nothing");
    let out = Command::new(&helper)
        .arg(&store)
        .arg(&mnt)
        .args(["-o", "rw,bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown mount option \"bogus\""));

    let said = run(Command::new(&helper).arg(&store).arg(&mnt).args([
        "-s",
        "-n",
        "-v",
        "-o",
        "rw,default_expire=7,defaults,auto,noauto,nofail,_netdev,user,users,\
         comment=systemd.automount,x-systemd.requires-mounts-for=/var,x-systemd.device-timeout=5",
    ]));
    let _guard = Unmount(mnt.clone());
    assert!(said.contains("mounted"), "-v: {said}");
    assert!(
        is_mounted(&mnt),
        "the helper returns once the mount is live"
    );
    std::fs::write(mnt.join("keys/a"), "x").unwrap();
    assert_eq!(get_xattr(&mnt.join("keys/a"), "user.expire").unwrap(), b"7");
}

#[test]
fn the_mount_helper_mounts_in_the_namespace_n_names() {
    let (dir, store, mnt) = dirs();
    let helper = helper(dir.path());
    // A process in a mount namespace of its own, kept until the end.
    let mut holder = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sleep", "60"])
        .spawn()
        .expect("unshare (util-linux)");
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = holder.id();
    let _kill = Kill(&mut holder);
    let ns = format!("/proc/{pid}/ns/mnt");
    eventually(5.0, || {
        std::fs::read_link(&ns).ok() != std::fs::read_link("/proc/self/ns/mnt").ok()
    })
    .expect("unshare made its namespace");
    run(Command::new(&helper)
        .arg(&store)
        .arg(&mnt)
        .args(["-N", &pid.to_string()]));
    let theirs = std::fs::read_to_string(format!("/proc/{pid}/mounts")).unwrap();
    let unmount_there = || {
        let _ = Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-m", "umount"])
            .arg(&mnt)
            .status();
    };
    let visible = theirs.contains(mnt.to_str().unwrap());
    let ours = is_mounted(&mnt);
    unmount_there();
    assert!(visible, "mounted in the namespace -N named:\n{theirs}");
    assert!(!ours, "and not in ours");
    wait_daemon_gone(&store);
}
