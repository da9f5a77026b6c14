//! The fast read-only view (SPEC §2 "The fast read path"): hits served by
//! the kernel, and every change made through the daemon seen at once
//! through a warm cache (names, attributes and pages cached for 60 s).

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use support::*;

fn fast() -> Mount {
    Mount::with_fast_view(&["--cache-timeout", "60", "--cleanup-interval", "0"])
}

fn fast_tag(m: &Mount, tag: &str, name: &str) -> PathBuf {
    m.fast.join("tags").join(tag).join(name)
}

/// Reads and stats `paths` so the kernel caches their names, attributes
/// and pages.
fn warm(paths: &[PathBuf]) {
    for p in paths {
        read(p).unwrap_or_else(|e| panic!("warming {}: {e}", p.display()));
        std::fs::metadata(p).unwrap();
    }
}

#[test]
fn hits_on_the_fast_view_never_reach_the_daemon() {
    let m = fast();
    put(&m.keys("x"), b"cached content", "t", 0);
    assert_eq!(names(&m.fast), ["keys", "tags"]);
    assert_eq!(names(&m.fast.join("keys")), ["x"]);
    assert_eq!(names(&m.fast.join("tags")), ["t"]);
    assert_eq!(read(&fast_tag(&m, "t", "x")).unwrap(), b"cached content");
    warm(&[m.fast_keys("x")]);
    let hits = m.stats()["hits"].as_u64().unwrap();
    for _ in 0..200 {
        assert_eq!(read(&m.fast_keys("x")).unwrap(), b"cached content");
    }
    assert_eq!(
        m.stats()["hits"].as_u64().unwrap(),
        hits,
        "counted by the daemon"
    );
    // The same entry: same size, expiry, links as on the full mount.
    let (a, b) = (
        std::fs::metadata(m.keys("x")).unwrap(),
        std::fs::metadata(m.fast_keys("x")).unwrap(),
    );
    assert_eq!(
        (a.len(), a.mtime(), a.nlink()),
        (b.len(), b.mtime(), b.nlink())
    );
    assert_eq!(b.mode() & 0o7777, 0o644);
    // Only keys/ and tags/.
    assert_eq!(errno(read(&m.fast.join(".stats"))), Errno::ENOENT);
    assert_eq!(
        errno(std::fs::metadata(m.fast.join("stale"))),
        Errno::ENOENT
    );
    // Mapped shared, as a page-cache file.
    let f = std::fs::File::open(m.fast_keys("x")).unwrap();
    assert_eq!(
        mmap(&f, libc::PROT_READ, libc::MAP_SHARED).unwrap(),
        b"cached content"
    );
}

#[test]
fn a_commit_is_seen_through_a_warm_cache() {
    let m = fast();
    put(&m.keys("x"), b"version one", "t", 0);
    let paths = [m.fast_keys("x"), fast_tag(&m, "t", "x")];
    for new in [
        &b"version two, longer than the first"[..],
        b"v3",
        b"v3 appended",
    ] {
        warm(&paths);
        if new == b"v3 appended" {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(m.keys("x"))
                .unwrap();
            use std::io::Write;
            f.write_all(b" appended").unwrap();
            close(f).unwrap();
        } else {
            std::fs::write(m.keys("x"), new).unwrap();
        }
        for p in &paths {
            assert_eq!(read(p).unwrap(), new, "{}", p.display());
            assert_eq!(std::fs::metadata(p).unwrap().len(), new.len() as u64);
        }
    }
}

#[test]
fn a_writer_in_progress_is_not_seen_through_the_fast_view() {
    let m = fast();
    put(&m.keys("x"), b"old", "", 0);
    warm(&[m.fast_keys("x")]);
    let w = open(&m.keys("x"), libc::O_WRONLY | libc::O_TRUNC).unwrap();
    write_fd(&w, b"new and longer").unwrap();
    let n = open(&m.keys("n"), libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL).unwrap();
    write_fd(&n, b"n").unwrap();
    assert_eq!(read(&m.fast_keys("x")).unwrap(), b"old");
    assert_eq!(std::fs::metadata(m.fast_keys("x")).unwrap().len(), 3);
    assert_eq!(errno(read(&m.fast_keys("n"))), Errno::ENOENT);
    close(w).unwrap();
    close(n).unwrap();
    assert_eq!(read(&m.fast_keys("x")).unwrap(), b"new and longer");
    assert_eq!(read(&m.fast_keys("n")).unwrap(), b"n");
}

#[test]
fn a_cached_miss_is_forgotten_when_the_entry_is_written() {
    let m = fast();
    assert_eq!(errno(read(&m.fast_keys("x"))), Errno::ENOENT);
    assert_eq!(errno(read(&fast_tag(&m, "t", "x"))), Errno::ENOENT);
    assert_eq!(
        errno(std::fs::metadata(m.fast.join("tags/t"))),
        Errno::ENOENT
    );
    put(&m.keys("x"), b"now here", "t", 0);
    assert_eq!(read(&m.fast_keys("x")).unwrap(), b"now here");
    assert_eq!(read(&fast_tag(&m, "t", "x")).unwrap(), b"now here");
    assert_eq!(names(&m.fast.join("tags")), ["t"]);
    // mkdir of a tag, ln into it.
    assert_eq!(
        errno(std::fs::metadata(m.fast.join("tags/u"))),
        Errno::ENOENT
    );
    std::fs::create_dir(m.tag("u")).unwrap();
    assert_eq!(names(&m.fast.join("tags/u")), Vec::<String>::new());
    assert_eq!(errno(read(&fast_tag(&m, "u", "x"))), Errno::ENOENT);
    std::fs::hard_link(m.keys("x"), m.tag("u").join("x")).unwrap();
    assert_eq!(read(&fast_tag(&m, "u", "x")).unwrap(), b"now here");
}

#[test]
fn rmdir_is_seen_through_a_warm_cache() {
    let m = fast();
    put(&m.keys("x"), b"x", "t,u", 0);
    put(&m.keys("y"), b"y", "u", 0);
    let paths = [
        m.fast_keys("x"),
        fast_tag(&m, "t", "x"),
        fast_tag(&m, "u", "x"),
        m.fast_keys("y"),
    ];
    warm(&paths);
    let held = std::fs::File::open(m.fast_keys("x")).unwrap();
    std::fs::remove_dir(m.tag("t")).unwrap();
    for p in &paths[..3] {
        assert_eq!(errno(read(p)), Errno::ENOENT, "{}", p.display());
        assert_eq!(
            errno(std::fs::metadata(p)),
            Errno::ENOENT,
            "{}",
            p.display()
        );
    }
    assert_eq!(
        errno(std::fs::metadata(m.fast.join("tags/t"))),
        Errno::ENOENT
    );
    assert_eq!(names(&m.fast.join("tags")), ["u"]);
    assert_eq!(names(&m.fast.join("keys")), ["y"]);
    assert_eq!(read(&m.fast_keys("y")).unwrap(), b"y");
    // Opened before: keeps its version.
    assert_eq!(pread_all(&held).unwrap(), b"x");
}

#[test]
fn rm_is_seen_through_a_warm_cache() {
    let m = fast();
    put(&m.keys("x"), b"x", "t", 0);
    put(&m.keys("y"), b"y", "t", 0);
    let x = [m.fast_keys("x"), fast_tag(&m, "t", "x")];
    let y = [m.fast_keys("y"), fast_tag(&m, "t", "y")];
    warm(&x);
    warm(&y);
    std::fs::remove_file(m.keys("x")).unwrap();
    std::fs::remove_file(m.tag("t").join("y")).unwrap();
    for p in x.iter().chain(&y) {
        assert_eq!(errno(read(p)), Errno::ENOENT, "{}", p.display());
    }
    assert_eq!(names(&m.fast.join("tags/t")), Vec::<String>::new());
}

#[test]
fn mv_is_seen_through_a_warm_cache() {
    let m = fast();
    put(&m.keys("a"), b"content of a", "t", 0);
    put(&m.keys("b"), b"old b", "u", 0);
    warm(&[
        m.fast_keys("a"),
        fast_tag(&m, "t", "a"),
        m.fast_keys("b"),
        fast_tag(&m, "u", "b"),
    ]);
    assert_eq!(errno(read(&fast_tag(&m, "t", "b"))), Errno::ENOENT);
    std::fs::rename(m.keys("a"), m.keys("b")).unwrap();
    assert_eq!(errno(read(&m.fast_keys("a"))), Errno::ENOENT);
    assert_eq!(errno(read(&fast_tag(&m, "t", "a"))), Errno::ENOENT);
    assert_eq!(read(&m.fast_keys("b")).unwrap(), b"content of a");
    assert_eq!(read(&fast_tag(&m, "t", "b")).unwrap(), b"content of a");
    assert_eq!(
        errno(read(&fast_tag(&m, "u", "b"))),
        Errno::ENOENT,
        "the old b"
    );
}

#[test]
fn touch_into_the_past_and_the_future_is_seen_through_a_warm_cache() {
    let m = fast();
    put(&m.keys("x"), b"x", "t", 0);
    put(&m.keys("y"), b"y", "", 0);
    warm(&[m.fast_keys("x"), fast_tag(&m, "t", "x"), m.fast_keys("y")]);
    set_mtime(&m.keys("x"), now() - 1).unwrap();
    assert_eq!(errno(read(&m.fast_keys("x"))), Errno::ENOENT);
    assert_eq!(errno(read(&fast_tag(&m, "t", "x"))), Errno::ENOENT);
    let t = now() + 5000;
    set_mtime(&m.keys("y"), t).unwrap();
    assert_eq!(mtime_of(&m.fast_keys("y")), t, "the new expiry");
    set_xattr(&m.keys("y"), "user.expire", b"0").unwrap();
    assert_eq!(mtime_of(&m.fast_keys("y")), 1 << 32);
}

#[test]
fn setfattr_retag_is_seen_through_a_warm_cache() {
    let m = fast();
    put(&m.keys("x"), b"x", "old", 0);
    warm(&[m.fast_keys("x"), fast_tag(&m, "old", "x")]);
    assert_eq!(errno(read(&fast_tag(&m, "new", "x"))), Errno::ENOENT);
    set_xattr(&m.keys("x"), "user.tags", b"new").unwrap();
    assert_eq!(errno(read(&fast_tag(&m, "old", "x"))), Errno::ENOENT);
    assert_eq!(read(&fast_tag(&m, "new", "x")).unwrap(), b"x");
    assert_eq!(read(&m.fast_keys("x")).unwrap(), b"x");
    assert_eq!(std::fs::metadata(m.fast_keys("x")).unwrap().nlink(), 2);
    // Removing the old tag no longer reaches x, on either view.
    std::fs::remove_dir(m.tag("old")).unwrap();
    assert_eq!(read(&m.fast_keys("x")).unwrap(), b"x");
}

#[test]
fn no_cached_name_outlives_its_entry_s_expiry() {
    let m = fast();
    put(&m.keys("x"), b"short-lived", "t", 1);
    warm(&[m.fast_keys("x"), fast_tag(&m, "t", "x")]);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(errno(read(&m.fast_keys("x"))), Errno::ENOENT);
    assert_eq!(errno(read(&fast_tag(&m, "t", "x"))), Errno::ENOENT);
    assert_eq!(errno(std::fs::metadata(m.fast_keys("x"))), Errno::ENOENT);
}

#[test]
fn writes_on_the_fast_view_are_read_only() {
    let m = fast();
    put(&m.keys("x"), b"content", "t", 0);
    let before = store_listing(&m.store);
    let x = m.fast_keys("x");
    let refusals: Vec<(&str, Result<(), Errno>)> = vec![
        ("create", outcome(std::fs::write(m.fast_keys("new"), b"v"))),
        ("open O_WRONLY", open(&x, libc::O_WRONLY).map(drop)),
        ("open O_RDWR", open(&x, libc::O_RDWR).map(drop)),
        (
            "open O_APPEND",
            open(&x, libc::O_WRONLY | libc::O_APPEND).map(drop),
        ),
        ("rm", outcome(std::fs::remove_file(&x))),
        (
            "rm tags/t/x",
            outcome(std::fs::remove_file(fast_tag(&m, "t", "x"))),
        ),
        (
            "mkdir tags/n",
            outcome(std::fs::create_dir(m.fast.join("tags/n"))),
        ),
        (
            "rmdir tags/t",
            outcome(std::fs::remove_dir(m.fast.join("tags/t"))),
        ),
        ("mv", outcome(std::fs::rename(&x, m.fast_keys("y")))),
        (
            "ln",
            outcome(std::fs::hard_link(&x, fast_tag(&m, "t", "y"))),
        ),
        (
            "symlink",
            outcome(std::os::unix::fs::symlink("x", m.fast_keys("l"))),
        ),
        ("setfattr user.tags", set_xattr(&x, "user.tags", b"u")),
        ("setfattr user.expire", set_xattr(&x, "user.expire", b"5")),
        ("setfattr -x", remove_xattr(&x, "user.tags")),
        ("touch -d", set_mtime(&x, now() + 100)),
        ("touch", touch_now(&x)),
        (
            "chmod",
            outcome(std::fs::set_permissions(
                &x,
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )),
        ),
        (
            "truncate",
            outcome(std::fs::OpenOptions::new().write(true).open(&x)),
        ),
    ];
    for (what, r) in refusals {
        assert_eq!(errno(r), Errno::EROFS, "{what}");
    }
    assert_eq!(store_listing(&m.store), before);
    assert_eq!(read(&x).unwrap(), b"content");
    assert_eq!(read(&m.keys("x")).unwrap(), b"content");
    // Reading xattrs works.
    assert_eq!(tags_of(&x), "t");
    assert_eq!(expire_of(&x), 0);
}
