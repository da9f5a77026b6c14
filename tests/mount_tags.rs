//! Tags through a real mount (SPEC §2): ln, rm, rm -rf, setfattr
//! user.tags, mkdir/rmdir, listings, mv, stale/, and what survives a
//! remount.

mod support;

use std::os::unix::fs::MetadataExt;

use support::*;

fn keys(m: &Mount) -> Vec<String> {
    names(&m.mnt.join("keys"))
}

fn tags(m: &Mount) -> Vec<String> {
    names(&m.mnt.join("tags"))
}

#[test]
fn ln_into_a_tag_directory_adds_the_tag() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"content", "a", 3600);
    let expiry = mtime_of(&m.keys("x"));
    std::fs::create_dir(m.tag("b")).unwrap();
    std::fs::hard_link(m.keys("x"), m.tag("b").join("x")).unwrap();
    assert_eq!(tags_of(&m.keys("x")), "a,b");
    assert_eq!(names(&m.tag("b")), ["x"]);
    assert_eq!(names(&m.tag("a")), ["x"]);
    let md = std::fs::metadata(m.keys("x")).unwrap();
    assert_eq!(md.nlink(), 3);
    assert_eq!(md.mtime(), expiry, "the expiry is kept");
    assert_eq!(
        std::fs::metadata(m.tag("b").join("x")).unwrap().ino(),
        md.ino()
    );
    assert_eq!(read(&m.tag("b").join("x")).unwrap(), b"content");
    // rmdir of the new tag now invalidates x.
    std::fs::remove_dir(m.tag("b")).unwrap();
    assert_eq!(errno(read(&m.keys("x"))), Errno::ENOENT);
}

#[test]
fn ln_into_a_missing_tag_or_twice_is_refused() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"content", "a", 0);
    assert_eq!(
        errno(std::fs::hard_link(m.keys("x"), m.tag("nope").join("x"))),
        Errno::ENOENT
    );
    assert_eq!(
        errno(std::fs::hard_link(m.keys("x"), m.tag("a").join("x"))),
        Errno::EEXIST
    );
    std::fs::create_dir(m.tag("b")).unwrap();
    assert_eq!(
        errno(std::fs::hard_link(m.keys("x"), m.tag("b").join("other"))),
        Errno::EINVAL,
        "a link keeps the entry's name"
    );
    assert_eq!(names(&m.tag("b")), Vec::<String>::new());
    assert_eq!(tags_of(&m.keys("x")), "a");
}

#[test]
fn rm_of_a_key_invalidates_the_entry() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"xx", "t", 0);
    put(&m.keys("y"), b"yy", "t", 0);
    std::fs::remove_file(m.keys("x")).unwrap();
    assert_eq!(errno(read(&m.keys("x"))), Errno::ENOENT);
    assert_eq!(keys(&m), ["y"]);
    assert_eq!(names(&m.tag("t")), ["y"]);
    assert_eq!(read(&m.stale("x")).unwrap(), b"xx");
    assert_eq!(read(&m.keys("y")).unwrap(), b"yy");
    assert_eq!(
        errno(std::fs::remove_file(m.keys("x"))),
        Errno::ENOENT,
        "rm twice"
    );
    assert_eq!(m.stats()["invalidations"].as_u64().unwrap(), 1);
}

#[test]
fn rm_of_a_tagged_name_invalidates_the_entry_everywhere() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"xx", "t,u", 0);
    std::fs::remove_file(m.tag("t").join("x")).unwrap();
    assert_eq!(errno(read(&m.keys("x"))), Errno::ENOENT);
    assert_eq!(errno(read(&m.tag("u").join("x"))), Errno::ENOENT);
    assert_eq!(names(&m.tag("u")), Vec::<String>::new());
    assert_eq!(tags(&m), ["t", "u"], "the tags themselves stay");
    assert_eq!(read(&m.stale("x")).unwrap(), b"xx");
}

#[test]
fn rm_rf_of_a_tag_invalidates_all_its_entries() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"x", "t", 0);
    put(&m.keys("y"), b"y", "t,u", 0);
    put(&m.keys("z"), b"z", "u", 0);
    std::fs::remove_dir_all(m.tag("t")).unwrap();
    assert_eq!(keys(&m), ["z"]);
    assert_eq!(tags(&m), ["u"]);
    assert_eq!(names(&m.tag("u")), ["z"]);
    assert_eq!(errno(read(&m.keys("y"))), Errno::ENOENT);
    assert_eq!(read(&m.keys("z")).unwrap(), b"z");
}

#[test]
fn rmdir_tag_invalidates_all_entries() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"x", "t", 0);
    put(&m.keys("y"), b"y", "t,u", 0);
    put(&m.keys("z"), b"z", "u", 0);
    // Warm the kernel's caches of every path first.
    for p in [m.keys("x"), m.keys("y"), m.tag("u").join("y")] {
        read(&p).unwrap();
    }
    let held = std::fs::File::open(m.keys("x")).unwrap();
    std::fs::remove_dir(m.tag("t")).unwrap();
    for p in [
        m.keys("x"),
        m.keys("y"),
        m.tag("u").join("y"),
        m.tag("t").join("x"),
    ] {
        assert_eq!(errno(read(&p)), Errno::ENOENT, "{}", p.display());
    }
    assert_eq!(keys(&m), ["z"]);
    assert_eq!(names(&m.tag("u")), ["z"]);
    assert_eq!(tags(&m), ["u"]);
    // A descriptor opened before keeps its version.
    assert_eq!(pread_all(&held).unwrap(), b"x");
    assert_eq!(errno(std::fs::remove_dir(m.tag("t"))), Errno::ENOENT);
}

#[test]
fn setfattr_user_tags_retags_and_removes_tags() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"content", "a,b", 3600);
    let expiry = mtime_of(&m.keys("x"));
    set_xattr(&m.keys("x"), "user.tags", b" b ,c ").unwrap();
    assert_eq!(tags_of(&m.keys("x")), "b,c");
    assert_eq!(names(&m.tag("a")), Vec::<String>::new());
    assert_eq!(names(&m.tag("b")), ["x"]);
    assert_eq!(names(&m.tag("c")), ["x"]);
    assert_eq!(read(&m.keys("x")).unwrap(), b"content");
    assert_eq!(mtime_of(&m.keys("x")), expiry, "expiry kept");
    assert_eq!(std::fs::metadata(m.keys("x")).unwrap().nlink(), 3);
    // The removed tag no longer reaches x.
    std::fs::remove_dir(m.tag("a")).unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"content");
    // No tags at all.
    set_xattr(&m.keys("x"), "user.tags", b"").unwrap();
    assert_eq!(tags_of(&m.keys("x")), "");
    assert_eq!(std::fs::metadata(m.keys("x")).unwrap().nlink(), 1);
    assert_eq!(names(&m.tag("b")), Vec::<String>::new());
    std::fs::remove_dir(m.tag("b")).unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"content");
    // Through a tag path, and `setfattr -x`.
    set_xattr(&m.keys("x"), "user.tags", b"d").unwrap();
    set_xattr(&m.tag("d").join("x"), "user.tags", b"d,e").unwrap();
    assert_eq!(names(&m.tag("e")), ["x"]);
    remove_xattr(&m.keys("x"), "user.tags").unwrap();
    assert_eq!(tags_of(&m.keys("x")), "");
    assert_eq!(names(&m.tag("d")), Vec::<String>::new());
}

#[test]
fn mkdir_and_rmdir_of_a_tag() {
    let m = Mount::new(&[]);
    std::fs::create_dir(m.tag("t")).unwrap();
    assert_eq!(tags(&m), ["t"]);
    assert_eq!(names(&m.tag("t")), Vec::<String>::new());
    let md = std::fs::metadata(m.tag("t")).unwrap();
    assert!(md.is_dir());
    assert_eq!(md.mode() & 0o7777, 0o755);
    assert_eq!(errno(std::fs::create_dir(m.tag("t"))), Errno::EEXIST);
    std::fs::remove_dir(m.tag("t")).unwrap();
    assert_eq!(tags(&m), Vec::<String>::new());
    assert_eq!(errno(std::fs::metadata(m.tag("t"))), Errno::ENOENT);
    assert_eq!(errno(std::fs::remove_dir(m.tag("t"))), Errno::ENOENT);
    // In the store: the tag's directory, seed layout.
    std::fs::create_dir(m.tag("bio")).unwrap();
    assert!(m.store.join("data/18/ae/tag:62696f").is_dir());
}

#[test]
fn ls_of_a_tag_lists_its_live_entries() {
    let m = Mount::new(&[]);
    put(&m.keys("live"), b"1", "t", 0);
    put(&m.keys("other"), b"1", "u", 0);
    put(&m.keys("short"), b"1", "t", 1);
    put(&m.keys("removed"), b"1", "t", 0);
    std::fs::remove_file(m.keys("removed")).unwrap();
    assert_eq!(names(&m.tag("t")), ["live", "short"]);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert_eq!(names(&m.tag("t")), ["live"]);
    assert_eq!(tags(&m), ["t", "u"]);
    assert_eq!(keys(&m), ["live", "other"]);
    // `ls -l tags/t/`: the entries' own attributes.
    let e = std::fs::read_dir(m.tag("t"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(e.metadata().unwrap().nlink(), 2);
    assert_eq!(e.metadata().unwrap().len(), 1);
}

#[test]
fn mv_keeps_tags_and_expiry() {
    let m = Mount::new(&[]);
    put(&m.keys("a"), b"content", "t,u", 3600);
    let before = std::fs::metadata(m.keys("a")).unwrap();
    std::fs::rename(m.keys("a"), m.keys("b")).unwrap();
    assert_eq!(errno(read(&m.keys("a"))), Errno::ENOENT);
    assert_eq!(read(&m.keys("b")).unwrap(), b"content");
    let after = std::fs::metadata(m.keys("b")).unwrap();
    assert_eq!(after.mtime(), before.mtime());
    assert_eq!(after.nlink(), 3);
    assert_eq!(tags_of(&m.keys("b")), "t,u");
    assert_eq!(names(&m.tag("t")), ["b"]);
    assert_eq!(names(&m.tag("u")), ["b"]);
    assert_eq!(keys(&m), ["b"]);
    let left = expire_of(&m.keys("b"));
    assert!((3590..=3600).contains(&left), "{left}");
    // The renamed entry still answers to its tags.
    std::fs::remove_dir(m.tag("u")).unwrap();
    assert_eq!(errno(read(&m.keys("b"))), Errno::ENOENT);
}

#[test]
fn mv_onto_an_existing_entry_replaces_it() {
    let m = Mount::new(&[]);
    put(&m.keys("a"), b"new", "t", 0);
    put(&m.keys("b"), b"old", "u", 0);
    std::fs::rename(m.keys("a"), m.keys("b")).unwrap();
    assert_eq!(read(&m.keys("b")).unwrap(), b"new");
    assert_eq!(tags_of(&m.keys("b")), "t");
    assert_eq!(keys(&m), ["b"]);
    assert_eq!(
        names(&m.tag("u")),
        Vec::<String>::new(),
        "the old b is gone"
    );
    assert_eq!(names(&m.tag("t")), ["b"]);
    // Within a tag directory too.
    std::fs::rename(m.tag("t").join("b"), m.tag("t").join("c")).unwrap();
    assert_eq!(read(&m.keys("c")).unwrap(), b"new");
    assert_eq!(keys(&m), ["c"]);
}

#[test]
fn stale_entries_are_readable_after_invalidation_and_read_only() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"last content", "t", 0);
    put(&m.keys("live"), b"live", "", 0);
    assert_eq!(errno(read(&m.stale("x"))), Errno::ENOENT, "x is live");
    std::fs::remove_dir(m.tag("t")).unwrap();
    assert_eq!(read(&m.stale("x")).unwrap(), b"last content");
    assert_eq!(names(&m.mnt.join("stale")), ["x"]);
    let md = std::fs::metadata(m.stale("x")).unwrap();
    assert_eq!(md.len(), 12);
    assert_eq!(md.mode() & 0o7777, 0o444);
    assert_eq!(errno(open(&m.stale("x"), libc::O_WRONLY)), Errno::EROFS);
    assert_eq!(errno(std::fs::remove_file(m.stale("x"))), Errno::EROFS);
    assert_eq!(read(&m.stale("x")).unwrap(), b"last content");
    assert_eq!(m.stats()["stale_reads"].as_u64().unwrap(), 2);
    // Regenerating x (serve stale while one process regenerates).
    std::fs::write(m.keys("x"), b"fresh").unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"fresh");
    assert_eq!(errno(read(&m.stale("x"))), Errno::ENOENT, "x is live again");
}

#[test]
fn entries_tags_and_expiries_survive_a_remount() {
    let mut m = Mount::new(&[]);
    put(&m.keys("a"), b"alpha", "t,u", 3600);
    put(&m.keys("b"), b"beta", "u", 0);
    put(&m.keys("gone"), b"g", "", 0);
    put(&m.keys("dead"), b"d", "dead-tag", 0);
    std::fs::create_dir(m.tag("empty")).unwrap();
    std::fs::remove_file(m.keys("gone")).unwrap();
    std::fs::remove_dir(m.tag("dead-tag")).unwrap();
    let expiry = mtime_of(&m.keys("a"));
    let ino = std::fs::metadata(key_file(&m.store, b"a")).unwrap().ino();

    // The old daemon, on its way out, unmounts its mount point by path and
    // can take a new mount there with it: wait for it to be gone first.
    m.unmount();
    wait_daemon_gone(&m.mnt);
    m.remount(&["--cleanup-interval", "0"]);
    assert_eq!(keys(&m), ["a", "b"]);
    assert_eq!(read(&m.keys("a")).unwrap(), b"alpha");
    assert_eq!(read(&m.keys("b")).unwrap(), b"beta");
    assert_eq!(tags_of(&m.keys("a")), "t,u");
    assert_eq!(mtime_of(&m.keys("a")), expiry);
    assert_eq!(mtime_of(&m.keys("b")), 1 << 32);
    assert_eq!(expire_of(&m.keys("b")), 0);
    let left = expire_of(&m.keys("a"));
    assert!((3590..=3600).contains(&left), "{left}");
    assert_eq!(names(&m.tag("u")), ["a", "b"]);
    assert_eq!(names(&m.tag("t")), ["a"]);
    assert!(tags(&m).iter().all(|t| t != "dead-tag"));
    assert_eq!(errno(read(&m.keys("gone"))), Errno::ENOENT);
    assert_eq!(errno(read(&m.keys("dead"))), Errno::ENOENT);
    // Same inode: nothing was copied to come back.
    assert_eq!(
        std::fs::metadata(key_file(&m.store, b"a")).unwrap().ino(),
        ino
    );
    // And the remounted daemon works on them.
    std::fs::remove_dir(m.tag("t")).unwrap();
    assert_eq!(keys(&m), ["b"]);
}

#[test]
fn the_very_next_call_after_ln_setfattr_or_rm_sees_the_change() {
    let m = Mount::new(&[]);
    for i in 0..30 {
        put(&m.keys("x"), b"content", "a", 0);
        // Warm names and attributes.
        read(&m.keys("x")).unwrap();
        read(&m.tag("a").join("x")).unwrap();
        assert_eq!(std::fs::metadata(m.keys("x")).unwrap().nlink(), 2);
        let t = format!("b{i}");
        std::fs::create_dir(m.tag(&t)).unwrap();
        std::fs::hard_link(m.keys("x"), m.tag(&t).join("x")).unwrap();
        assert_eq!(
            std::fs::metadata(m.keys("x")).unwrap().nlink(),
            3,
            "round {i}"
        );
        assert_eq!(std::fs::metadata(m.tag("a").join("x")).unwrap().nlink(), 3);
        assert_eq!(tags_of(&m.keys("x")), format!("a,{t}"));
        set_xattr(&m.keys("x"), "user.tags", b"a").unwrap();
        assert_eq!(
            std::fs::metadata(m.keys("x")).unwrap().nlink(),
            2,
            "round {i}"
        );
        assert_eq!(errno(read(&m.tag(&t).join("x"))), Errno::ENOENT);
        std::fs::remove_file(m.tag("a").join("x")).unwrap();
        assert_eq!(
            errno(std::fs::metadata(m.keys("x"))),
            Errno::ENOENT,
            "round {i}"
        );
        assert_eq!(errno(read(&m.keys("x"))), Errno::ENOENT);
    }
}
