//! One store, two clients: the tagcache Python library (the design's
//! origin, its 0.2.2 release ported to Python 3) and a real mount with
//! `--tagcache-format`, each seeing what the other writes and invalidates
//! (README "Sharing a store with the tagcache library"). The library is
//! not part of the project: it is taken from `$TAGCACHE_LIBRARY`, else
//! from `shared/seed` beside the checkout (or above it); a missing one or a
//! missing python3 fails the test.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

const TIMEOUT: Duration = Duration::from_secs(30);

/// The directory holding the library's `tagcache` package.
fn library() -> PathBuf {
    if let Some(dir) = std::env::var_os("TAGCACHE_LIBRARY") {
        return PathBuf::from(dir);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    repo.ancestors()
        .map(|a| a.join("shared/seed"))
        .chain([PathBuf::from("/work/shared/seed")])
        .find(|d| d.join("tagcache/cache.py").is_file())
        .expect(
            "the tagcache library (shared/seed/tagcache beside the checkout, \
             or TAGCACHE_LIBRARY=DIR) is required by this test",
        )
}

fn client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tagcache_library/client.py")
}

/// A library process on `store` in namespace `ns`, running `args`.
fn client(store: &Path, ns: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(client_script())
        .arg(store)
        .arg(ns)
        .args(args)
        .env("TAGCACHE_LIBRARY", library())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn finish(child: Child, what: &str) -> String {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(TIMEOUT) {
        Ok(out) => out.unwrap_or_else(|e| panic!("{what}: {e}")),
        Err(_) => {
            // SAFETY: kill(2); the child is not reaped yet.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("{what} did not finish within {TIMEOUT:?}");
        }
    };
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs the library: `args` on `store` in namespace `ns`; its stdout.
fn lib(store: &Path, ns: &str, args: &[&str]) -> String {
    let what = format!("the library: {}", args.join(" "));
    finish(
        client(store, ns, args)
            .spawn()
            .unwrap_or_else(|e| panic!("python3 is required by this test: {e}")),
        &what,
    )
}

/// The library's `get`: (value, whether it called the content function).
fn lib_get(store: &Path, ns: &str, args: &[&str]) -> (serde_json::Value, bool) {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    let out: serde_json::Value = serde_json::from_str(&lib(store, ns, &all)).unwrap();
    (out["value"].clone(), out["generated"].as_bool().unwrap())
}

fn text(path: &Path) -> Result<String, Errno> {
    read(path).map(|b| String::from_utf8(b).unwrap())
}

fn library_mount(args: &[&str]) -> Mount {
    let mut all = vec!["--tagcache-format", "--cache-timeout", "0.3"];
    all.extend_from_slice(args);
    Mount::with_fast_view(&all)
}

/// Past the entry timeout: the kernel asks the daemon again.
fn past_timeout() {
    std::thread::sleep(Duration::from_millis(500));
}

#[test]
fn what_the_library_writes_the_mount_lists_and_serves_as_its_payload() {
    let m = library_mount(&[]);
    let (value, generated) = lib_get(
        &m.store,
        "k",
        &["blog-home", "--tags", "blog-new,bio", "--expire", "3600"],
    );
    assert!(generated);
    assert_eq!(names(&m.mnt.join("keys")), ["blog-home"]);
    assert_eq!(names(&m.tag("bio")), ["blog-home"]);
    assert_eq!(names(&m.tag("blog-new")), ["blog-home"]);
    let payload = text(&m.keys("blog-home")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(parsed, value, "the mount serves the payload alone");
    assert_eq!(text(&m.fast_keys("blog-home")).unwrap(), payload);
    let md = std::fs::metadata(m.keys("blog-home")).unwrap();
    assert_eq!(md.len(), payload.len() as u64, "the size is the payload's");
    assert_eq!(tags_of(&m.keys("blog-home")), "bio,blog-new");
    let left = expire_of(&m.keys("blog-home"));
    assert!((3590..=3600).contains(&left), "user.expire {left}");
    // A read from an offset counts from the payload too.
    let f = open(&m.keys("blog-home"), libc::O_RDONLY).unwrap();
    let mut buf = [0u8; 4];
    let n = std::os::unix::fs::FileExt::read_at(&f, &mut buf, 2).unwrap();
    assert_eq!(&buf[..n], &payload.as_bytes()[2..6]);
    // The library's file on disk: the tags line, then the payload.
    let disk = std::fs::read(key_file_in(&m.store, "k", "blog-home")).unwrap();
    assert!(disk.ends_with(payload.as_bytes()));
}

/// The key file the library uses for `key`.
fn key_file_in(store: &Path, ns: &str, key: &str) -> PathBuf {
    PathBuf::from(lib(store, ns, &["paths", key]).trim())
}

#[test]
fn an_rmdir_on_the_mount_makes_the_library_regenerate() {
    let m = library_mount(&[]);
    lib_get(&m.store, "k", &["page", "--tags", "t", "--expire", "600"]);
    let (_, again) = lib_get(&m.store, "k", &["page", "--tags", "t", "--expire", "600"]);
    assert!(!again, "a hit before the rmdir");
    rmdir(&m.tag("t")).unwrap();
    let (_, regenerated) = lib_get(&m.store, "k", &["page", "--tags", "t", "--expire", "600"]);
    assert!(
        regenerated,
        "the library served an entry whose tag was removed"
    );
}

#[test]
fn the_librarys_invalidations_stop_the_mount_serving_within_the_entry_timeout() {
    let m = library_mount(&[]);
    lib_get(&m.store, "k", &["a", "--tags", "bio", "--expire", "600"]);
    lib_get(&m.store, "k", &["b", "--expire", "600"]);
    // Both cached by the kernel on both mounts.
    for path in [m.keys("a"), m.fast_keys("a"), m.keys("b"), m.fast_keys("b")] {
        read(&path).unwrap();
    }
    lib(&m.store, "k", &["invalidate-tag", "bio"]);
    lib(&m.store, "k", &["invalidate-key", "b"]);
    past_timeout();
    for path in [m.keys("a"), m.fast_keys("a"), m.keys("b"), m.fast_keys("b")] {
        assert_eq!(
            errno(read(&path)),
            Errno::ENOENT,
            "{} still served",
            path.display()
        );
    }
    // invalidate_key expires it: it is stale, readable there until cleanup.
    assert!(names(&m.mnt.join("stale")).contains(&"b".to_string()));
}

#[test]
fn what_the_mount_writes_the_library_reads_as_a_hit_with_its_tags() {
    let m = library_mount(&[]);
    let value = r#"{"by":"mount"}"#;
    // xattrs on the writing descriptor
    let f = open(&m.keys("x"), libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC).unwrap();
    set_xattr_fd(&f, "user.tags", b"a,b").unwrap();
    set_xattr_fd(&f, "user.expire", b"600").unwrap();
    write_fd(&f, value.as_bytes()).unwrap();
    close(f).unwrap();
    // put/, with tags longer than the room a version keeps for them
    let long: Vec<String> = (0..40).map(|i| format!("tag-number-{i:03}")).collect();
    let p = m
        .mnt
        .join(format!("put/tags={}/expire=600/y", long.join(",")));
    std::fs::write(&p, value).unwrap();
    // ln into a tag directory adds a tag
    mkdir(&m.tag("c")).unwrap();
    std::fs::hard_link(m.keys("x"), m.tag("c").join("x")).unwrap();

    let (got, generated) = lib_get(&m.store, "k", &["x", "--tags", "a", "--expire", "600"]);
    assert!(!generated, "a miss for an entry the mount wrote");
    assert_eq!(got, serde_json::json!({"by": "mount"}));
    let (got, generated) = lib_get(&m.store, "k", &["y", "--expire", "600"]);
    assert!(!generated);
    assert_eq!(got, serde_json::json!({"by": "mount"}));
    assert_eq!(text(&m.keys("y")).unwrap(), value);
    // The library knows their tags: invalidating one makes it regenerate.
    for (key, tag) in [("x", "c"), ("y", "tag-number-039")] {
        lib(&m.store, "k", &["invalidate-tag", tag]);
        let (_, generated) = lib_get(&m.store, "k", &[key, "--expire", "600"]);
        assert!(
            generated,
            "{key} outlived the library's invalidate_tag({tag})"
        );
    }
}

#[test]
fn both_cleanups_on_one_store_remove_only_the_dead() {
    let m = library_mount(&[]);
    let s = &m.store;
    for key in ["live-lib", "dead-key", "dead-tag"] {
        lib_get(s, "k", &[key, "--tags", key, "--expire", "600"]);
    }
    put(&m.keys("live-mount"), b"\"m\"", "lm", 600);
    put(&m.keys("dead-mount"), b"\"m\"", "dm", 600);
    lib(s, "k", &["invalidate-key", "dead-key"]);
    lib(s, "k", &["invalidate-tag", "dead-tag"]);
    rmdir(&m.tag("dm")).unwrap();
    let paths: Vec<PathBuf> = [
        "live-lib",
        "dead-key",
        "dead-tag",
        "live-mount",
        "dead-mount",
    ]
    .iter()
    .map(|k| key_file_in(s, "k", k))
    .collect();
    // Both at once, twice over.
    let a = client(s, "k", &["cleanup"]).spawn().unwrap();
    let ours = tool(&["cleanup".as_ref(), s.as_os_str()]);
    assert!(ours.status.success(), "{ours:?}");
    finish(a, "the library's cleanup");
    lib(s, "k", &["cleanup"]);
    assert!(tool(&["cleanup".as_ref(), s.as_os_str()]).status.success());
    let present: Vec<bool> = paths.iter().map(|p| p.exists()).collect();
    assert_eq!(present, [true, false, false, true, false]);
    assert_eq!(text(&m.keys("live-mount")).unwrap(), "\"m\"");
    let (_, generated) = lib_get(
        s,
        "k",
        &["live-lib", "--tags", "live-lib", "--expire", "600"],
    );
    assert!(!generated);
    let (_, generated) = lib_get(s, "k", &["live-mount", "--expire", "600"]);
    assert!(!generated, "the library missed an entry the mount wrote");
}

#[test]
fn single_flight_holds_between_the_library_and_an_o_excl_writer() {
    let m = library_mount(&[]);
    let s = &m.store;
    let excl = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY;
    lib_get(s, "k", &["e", "--expire", "600"]);
    lib(s, "k", &["invalidate-key", "e"]);
    // The mount's writer holds it: the library serves what it has.
    let w = open(&m.keys("e"), excl).unwrap();
    let (value, generated) = lib_get(s, "k", &["e", "--expire", "600"]);
    assert!(
        !generated,
        "the library regenerated what the mount's writer holds"
    );
    assert_eq!(value["by"], "library");
    write_fd(&w, br#"{"by":"mount"}"#).unwrap();
    close(w).unwrap();
    let (value, generated) = lib_get(s, "k", &["e", "--expire", "600"]);
    assert!(!generated);
    assert_eq!(value, serde_json::json!({"by": "mount"}));

    // The library regenerates (holding the entry's flock for 2 s): the
    // mount's O_EXCL open finds the entry taken.
    lib(s, "k", &["invalidate-key", "e"]);
    past_timeout();
    let started = m.dir.path().join("started");
    let hold = format!("{}:2", started.display());
    let regen = client(s, "k", &["get", "e", "--expire", "600", "--hold", &hold])
        .spawn()
        .unwrap();
    eventually(10.0, || started.exists()).expect("the library started regenerating");
    assert_eq!(errno(open(&m.keys("e"), excl)), Errno::EEXIST);
    let out: serde_json::Value = serde_json::from_str(&finish(regen, "regenerating")).unwrap();
    assert_eq!(out["generated"], true);
    past_timeout();
    assert_eq!(errno(open(&m.keys("e"), excl)), Errno::EEXIST, "live again");
}

#[test]
fn stats_count_the_librarys_entries_live_and_dead() {
    let m = library_mount(&[]);
    let s = &m.store;
    for key in ["l1", "l2", "d1", "d2"] {
        lib_get(s, "k", &[key, "--tags", key, "--expire", "600"]);
    }
    lib(s, "k", &["invalidate-key", "d1"]);
    lib(s, "k", &["invalidate-tag", "d2"]);
    let out = tool(&["stats".as_ref(), "--json".as_ref(), s.as_os_str()]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (stats["entries"].as_u64(), stats["stale_entries"].as_u64()),
        (Some(2), Some(2)),
        "{stats}"
    );
}

/// Without `--tagcache-format`: the library in our namespace (key:/tag:)
/// writes an entry with a tag; the mount serves the file as it is (the
/// tags line included), and once the daemon has seen one of its tag links
/// it never serves it after its link count fell below the link's `N`.
#[test]
fn in_our_format_an_entry_that_lost_a_tag_link_is_never_served_once_a_link_was_seen() {
    let m = Mount::new(&["--cache-timeout", "0.3"]);
    let s = &m.store;
    lib_get(s, "key", &["raw", "--tags", "t,u", "--expire", "600"]);
    let served = text(&m.keys("raw")).unwrap();
    assert!(
        served.starts_with("t:u\n") || served.starts_with("u:t\n"),
        "{served:?}"
    );
    // A listing of a tag passes its links (its entries without a record
    // are not listed: nothing names them).
    assert!(names(&m.tag("t")).is_empty());
    lib(s, "key", &["invalidate-tag", "u"]);
    past_timeout();
    assert_eq!(errno(read(&m.keys("raw"))), Errno::ENOENT);
    // Cleanup expires it through its link (as the library's does), then
    // removes it; the library then misses it too.
    let file = key_file_in(s, "key", "raw");
    let report = cleanup_json(s);
    assert!(!file.exists(), "cleanup left {}: {report}", file.display());
    let (_, generated) = lib_get(s, "key", &["raw", "--tags", "t,u", "--expire", "600"]);
    assert!(generated);
}

#[test]
fn cleanup_reclaims_another_programs_old_tmp_files_but_never_one_in_use() {
    let m = library_mount(&[]);
    let tmp = m.store.join("tmp");
    let (old, held, fresh) = (
        tmp.join("tmpold"),
        tmp.join("tmpheld"),
        tmp.join("tmpfresh"),
    );
    std::fs::write(&old, "abandoned").unwrap();
    std::fs::write(&held, "being written").unwrap();
    let holder = std::fs::File::open(&held).unwrap();
    // SAFETY: flock(2) on a descriptor we own.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&holder), libc::LOCK_EX) },
        0
    );
    // Old and held are 4 s old, fresh is new: an age bound of 3 s leaves
    // the cleanup 3 s to start on a loaded machine.
    std::thread::sleep(Duration::from_secs(4));
    std::fs::write(&fresh, "just now").unwrap();
    let out = tool(&[
        "cleanup".as_ref(),
        "--foreign-tmp-age".as_ref(),
        "3".as_ref(),
        m.store.as_os_str(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(!old.exists(), "an abandoned file stayed");
    assert!(held.exists(), "a file in use was removed");
    assert!(fresh.exists(), "a recent file was removed");
    // The default is an hour: nothing of this goes.
    drop(holder);
    assert!(
        tool(&["cleanup".as_ref(), m.store.as_os_str()])
            .status
            .success()
    );
    assert!(held.exists() && fresh.exists());
    let _ = std::fs::metadata(&held).unwrap().ino();
}

#[test]
fn a_store_marked_for_the_library_keeps_its_format_and_refuses_another_namespace() {
    let mut m = library_mount(&[]);
    lib_get(&m.store, "k", &["kept", "--tags", "t", "--expire", "600"]);
    let marker = std::fs::read_to_string(m.store.join("format")).unwrap();
    assert_eq!(marker.trim(), "tagcache k");
    // Mounted again without the option: the marker decides.
    m.remount(&["--read-mount", "@fast", "--cache-timeout", "0.3"]);
    assert_eq!(names(&m.tag("t")), ["kept"]);
    m.unmount();
    let out = Command::new(BIN)
        .arg(&m.store)
        .arg(&m.mnt)
        .args(["--tagcache-format=key"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("namespace k, not key"), "{err}");
}
