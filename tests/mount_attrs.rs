//! Attributes through a real mount (SPEC §2): getfattr, user.expire,
//! touch, `ls -l`, expiry with no cleanup, and `.stats`.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use support::*;

const NEVER: i64 = 1 << 32;

#[test]
fn getfattr_shows_seconds_left_and_the_tags() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"v", " b, a ", 3600);
    put(&m.keys("forever"), b"v", "", 0);
    assert_eq!(tags_of(&m.keys("x")), "a,b");
    let left = expire_of(&m.keys("x"));
    assert!((3599..=3600).contains(&left), "{left}");
    assert_eq!(expire_of(&m.keys("forever")), 0);
    assert_eq!(tags_of(&m.keys("forever")), "");
    assert_eq!(
        list_xattr(&m.keys("x")).unwrap(),
        ["user.expire", "user.tags"]
    );
    // Through a tag path: the same entry.
    assert_eq!(tags_of(&m.tag("a").join("x")), "a,b");
    // A buffer too small: ERANGE, as for any file.
    let p = cpath(&m.keys("x"));
    let mut small = [0u8; 2];
    // SAFETY: valid C strings and buffer.
    let n = unsafe {
        libc::getxattr(
            p.as_ptr(),
            c"user.tags".as_ptr(),
            small.as_mut_ptr().cast(),
            small.len(),
        )
    };
    assert_eq!(n, -1);
    assert_eq!(Errno::last(), Errno::ERANGE);
}

#[test]
fn user_expire_counts_down() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"v", "", 100);
    let first = expire_of(&m.keys("x"));
    assert!((99..=100).contains(&first), "{first}");
    std::thread::sleep(Duration::from_millis(1100));
    let later = expire_of(&m.keys("x"));
    assert!(later < first && later >= 97, "{first} then {later}");
}

#[test]
fn setfattr_user_expire_sets_the_expiry_in_place() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"v", "t", 0);
    let ino = std::fs::metadata(key_file(&m.store, b"x")).unwrap().ino();
    set_xattr(&m.keys("x"), "user.expire", b"3600").unwrap();
    let left = expire_of(&m.keys("x"));
    assert!((3599..=3600).contains(&left), "{left}");
    let mtime = mtime_of(&m.keys("x"));
    assert!((now() + 3598..=now() + 3601).contains(&mtime), "{mtime}");
    // In place: the same inode in the store, its mtime the expiry.
    let st = std::fs::metadata(key_file(&m.store, b"x")).unwrap();
    assert_eq!(st.ino(), ino);
    assert_eq!(st.mtime(), mtime);
    set_xattr(&m.keys("x"), "user.expire", b"0").unwrap();
    assert_eq!(expire_of(&m.keys("x")), 0);
    assert_eq!(mtime_of(&m.keys("x")), NEVER);
    // `setfattr -x user.expire`: never expires either.
    set_xattr(&m.keys("x"), "user.expire", b"60").unwrap();
    remove_xattr(&m.keys("x"), "user.expire").unwrap();
    assert_eq!(expire_of(&m.keys("x")), 0);
    assert_eq!(tags_of(&m.keys("x")), "t");
}

#[test]
fn touch_d_sets_the_expiry_and_a_past_time_invalidates() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"content", "t", 0);
    let t = now() + 1000;
    set_mtime(&m.keys("x"), t).unwrap();
    assert_eq!(mtime_of(&m.keys("x")), t);
    let left = expire_of(&m.keys("x"));
    assert!((998..=1000).contains(&left), "{left}");
    assert_eq!(
        std::fs::metadata(key_file(&m.store, b"x")).unwrap().mtime(),
        t
    );
    // The past: invalidated, readable under stale/.
    read(&m.keys("x")).unwrap();
    set_mtime(&m.keys("x"), now() - 10).unwrap();
    assert_eq!(errno(read(&m.keys("x"))), Errno::ENOENT);
    assert_eq!(errno(read(&m.tag("t").join("x"))), Errno::ENOENT);
    assert_eq!(names(&m.mnt.join("keys")), Vec::<String>::new());
    assert_eq!(read(&m.stale("x")).unwrap(), b"content");
    // An invalidated entry cannot be touched back to life.
    assert_eq!(errno(set_mtime(&m.keys("x"), now() + 100)), Errno::ENOENT);
    assert_eq!(errno(read(&m.keys("x"))), Errno::ENOENT);
}

#[test]
fn touch_renews_for_the_ttl_it_was_given() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"v", "", 100);
    set_mtime(&m.keys("x"), now() + 5).unwrap();
    assert!(expire_of(&m.keys("x")) <= 5);
    touch_now(&m.keys("x")).unwrap();
    let left = expire_of(&m.keys("x"));
    assert!((99..=100).contains(&left), "renewed for 100 s: {left}");
    let mtime = mtime_of(&m.keys("x"));
    assert!((now() + 98..=now() + 101).contains(&mtime), "{mtime}");
    // A never-expiring entry stays so.
    put(&m.keys("forever"), b"v", "", 0);
    touch_now(&m.keys("forever")).unwrap();
    assert_eq!(mtime_of(&m.keys("forever")), NEVER);
}

#[test]
fn ls_l_shows_size_expiry_links_mode_and_owner() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"twelve bytes", "a,b,c", 3600);
    put(&m.keys("y"), b"", "", 0);
    let mut seen = Vec::new();
    for e in std::fs::read_dir(m.mnt.join("keys")).unwrap() {
        let e = e.unwrap();
        let md = e.metadata().unwrap();
        seen.push(e.file_name().to_string_lossy().into_owned());
        assert!(md.is_file());
        assert_eq!(md.permissions().mode() & 0o7777, 0o644);
        // SAFETY: getuid/getgid cannot fail.
        assert_eq!(md.uid(), unsafe { libc::getuid() });
        assert_eq!(md.gid(), unsafe { libc::getgid() });
        if e.file_name() == "x" {
            assert_eq!(md.len(), 12);
            assert_eq!(md.nlink(), 4);
            let expiry = md.mtime();
            assert!((now() + 3598..=now() + 3601).contains(&expiry), "{expiry}");
        } else {
            assert_eq!(md.len(), 0);
            assert_eq!(md.nlink(), 1);
            assert_eq!(md.mtime(), NEVER);
        }
    }
    seen.sort();
    assert_eq!(seen, ["x", "y"]);
    for dir in [
        m.mnt.clone(),
        m.mnt.join("keys"),
        m.mnt.join("tags"),
        m.tag("a"),
    ] {
        let md = std::fs::metadata(&dir).unwrap();
        assert!(md.is_dir(), "{}", dir.display());
        assert_eq!(md.mode() & 0o7777, 0o755, "{}", dir.display());
        // SAFETY: getuid cannot fail.
        assert_eq!(md.uid(), unsafe { libc::getuid() });
    }
    // tags/t/x: the same attributes as keys/x.
    let a = std::fs::metadata(m.keys("x")).unwrap();
    let b = std::fs::metadata(m.tag("c").join("x")).unwrap();
    assert_eq!(
        (a.ino(), a.len(), a.nlink(), a.mtime()),
        (b.ino(), b.len(), b.nlink(), b.mtime())
    );
}

#[test]
fn an_entry_expires_on_time_with_no_cleanup() {
    let m = Mount::new(&["--cleanup-interval", "0", "--cache-timeout", "60"]);
    put(&m.keys("x"), b"short-lived", "t", 1);
    put(&m.keys("y"), b"stays", "t", 0);
    // Warm every cache the kernel has.
    assert_eq!(read(&m.keys("x")).unwrap(), b"short-lived");
    assert_eq!(read(&m.tag("t").join("x")).unwrap(), b"short-lived");
    std::fs::metadata(m.keys("x")).unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(errno(read(&m.keys("x"))), Errno::ENOENT);
    assert_eq!(errno(std::fs::metadata(m.keys("x"))), Errno::ENOENT);
    assert_eq!(errno(read(&m.tag("t").join("x"))), Errno::ENOENT);
    assert_eq!(names(&m.mnt.join("keys")), ["y"]);
    assert_eq!(names(&m.tag("t")), ["y"]);
    assert_eq!(read(&m.stale("x")).unwrap(), b"short-lived");
    // Still on disk: nothing swept it, expiry alone did it.
    assert!(key_file(&m.store, b"x").exists());
}

#[test]
fn stats_is_json_with_the_counters() {
    let m = Mount::new(&[]);
    let s0 = m.stats();
    for k in [
        "hits",
        "misses",
        "hit_ratio",
        "commits",
        "commit_errors",
        "invalidations",
        "stale_reads",
        "errors",
        "bytes_written",
    ] {
        assert!(s0.get(k).is_some(), "no {k} in {s0}");
    }
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap();
    put(&m.keys("x"), b"12345", "t", 0);
    read(&m.keys("x")).unwrap();
    read(&m.keys("x")).unwrap();
    assert_eq!(errno(read(&m.keys("missing"))), Errno::ENOENT);
    std::fs::remove_file(m.keys("x")).unwrap();
    read(&m.stale("x")).unwrap();
    let s = m.stats();
    assert_eq!(n(&s, "commits") - n(&s0, "commits"), 1);
    assert_eq!(n(&s, "bytes_written") - n(&s0, "bytes_written"), 5);
    assert!(n(&s, "hits") - n(&s0, "hits") >= 2);
    assert!(n(&s, "misses") > n(&s0, "misses"));
    assert_eq!(n(&s, "invalidations") - n(&s0, "invalidations"), 1);
    assert_eq!(n(&s, "stale_reads") - n(&s0, "stale_reads"), 1);
    assert_eq!(n(&s, "errors"), 0);
    // Fresh on every read, and read-only.
    let md = std::fs::metadata(m.mnt.join(".stats")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o444);
    assert_eq!(
        errno(open(&m.mnt.join(".stats"), libc::O_WRONLY)),
        Errno::EROFS
    );
    assert_eq!(
        errno(std::fs::remove_file(m.mnt.join(".stats"))),
        Errno::EPERM
    );
}

#[test]
fn touch_and_setfattr_racing_rm_never_hang_the_mount() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"v", "t", 0);
    let (path, keys) = (m.keys("x"), m.keys("x"));
    let rounds = deadline(30, &m.mnt, move || {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let toucher = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = touch_now(&path);
                let _ = set_xattr(&path, "user.expire", b"100");
                let _ = set_xattr(&path, "user.tags", b"t");
            }
        });
        let start = std::time::Instant::now();
        let mut rounds = 0;
        while start.elapsed() < Duration::from_secs(2) {
            let _ = std::fs::remove_file(&keys);
            std::fs::write(&keys, b"v").unwrap();
            rounds += 1;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        toucher.join().unwrap();
        rounds
    });
    assert!(rounds > 5, "{rounds} rounds");
    assert_eq!(read(&m.keys("x")).unwrap(), b"v");
}
