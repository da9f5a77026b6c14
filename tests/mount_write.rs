//! The write path of SPEC §2 through a real mount: what `echo v > keys/x`,
//! `>>`, dup/fork closes, O_EXCL single-flight and xattrs on the writing
//! descriptor do, and what everyone else sees meanwhile.

mod support;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use support::*;

const WRONLY_CREAT_TRUNC: i32 = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
const EXCL: i32 = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;

fn commits(m: &Mount) -> u64 {
    m.stats()["commits"].as_u64().unwrap()
}

#[test]
fn echo_into_a_new_key_creates_the_entry_at_close() {
    let m = Mount::new(&[]);
    let f = open(&m.keys("x"), WRONLY_CREAT_TRUNC).unwrap();
    write_fd(&f, b"hello\n").unwrap();
    close(f).unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"hello\n");
    assert_eq!(std::fs::metadata(m.keys("x")).unwrap().len(), 6);
    assert_eq!(names(&m.mnt.join("keys")), ["x"]);
    // In the store: the seed's key file, content from byte 0.
    assert_eq!(std::fs::read(key_file(&m.store, b"x")).unwrap(), b"hello\n");
}

#[test]
fn overwrite_with_shorter_content_leaves_no_old_tail() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"a rather long first version", "t", 0);
    let f = open(&m.keys("x"), WRONLY_CREAT_TRUNC).unwrap();
    write_fd(&f, b"short").unwrap();
    close(f).unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"short");
    assert_eq!(std::fs::metadata(m.keys("x")).unwrap().len(), 5);
    // Tags and TTL are the entry's, kept by an overwrite.
    assert_eq!(tags_of(&m.keys("x")), "t");
    assert_eq!(names(&m.tag("t")), ["x"]);
}

#[test]
fn readers_keep_seeing_the_committed_version_while_a_writer_has_it_open() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"old content", "t", 0);
    let before = open(&m.keys("x"), libc::O_RDONLY).unwrap();
    let old_ino = before.metadata().unwrap().ino();

    for new in [&b"a much longer new content than before"[..], b"tiny"] {
        let w = open(&m.keys("x"), WRONLY_CREAT_TRUNC).unwrap();
        write_fd(&w, &new[..2]).unwrap();
        // Everyone else: the previous version's content and size.
        let current = read(&m.keys("x")).unwrap();
        assert_ne!(current, new, "uncommitted bytes visible");
        assert!(current == b"old content" || current.starts_with(b"a much"));
        let len = std::fs::metadata(m.keys("x")).unwrap().len();
        assert_eq!(len, current.len() as u64, "a writer's size leaked");
        assert_eq!(read(&m.tag("t").join("x")).unwrap(), current);
        write_fd(&w, &new[2..]).unwrap();
        assert_eq!(read(&m.keys("x")).unwrap(), current);
        assert_eq!(std::fs::metadata(m.keys("x")).unwrap().len(), len);
        close(w).unwrap();
        // Once close() returned, every new open sees the new version.
        assert_eq!(read(&m.keys("x")).unwrap(), new);
        assert_eq!(
            std::fs::metadata(m.keys("x")).unwrap().len(),
            new.len() as u64
        );
    }
    // A descriptor opened before keeps the version it opened.
    assert_eq!(before.metadata().unwrap().ino(), old_ino);
    assert_eq!(before.metadata().unwrap().len(), 11);
    assert_eq!(pread_all(&before).unwrap(), b"old content");
}

#[test]
fn a_name_being_created_is_invisible_until_committed() {
    let m = Mount::new(&[]);
    let w = open(&m.keys("new"), WRONLY_CREAT_TRUNC).unwrap();
    write_fd(&w, b"draft").unwrap();
    assert_eq!(errno(read(&m.keys("new"))), Errno::ENOENT);
    assert_eq!(errno(std::fs::metadata(m.keys("new"))), Errno::ENOENT);
    assert_eq!(names(&m.mnt.join("keys")), Vec::<String>::new());
    assert!(
        !store_listing(&m.store)
            .iter()
            .any(|i| i.path.contains("key:")),
        "nothing in data/ before the commit"
    );
    close(w).unwrap();
    assert_eq!(read(&m.keys("new")).unwrap(), b"draft");
}

#[test]
fn append_starts_from_committed_content() {
    let m = Mount::new(&[]);
    put(&m.keys("log"), b"line 1\n", "t", 3600);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(m.keys("log"))
        .unwrap();
    f.write_all(b"line 2\n").unwrap();
    assert_eq!(
        read(&m.keys("log")).unwrap(),
        b"line 1\n",
        "not committed yet"
    );
    f.write_all(b"line 3\n").unwrap();
    close(f).unwrap();
    assert_eq!(read(&m.keys("log")).unwrap(), b"line 1\nline 2\nline 3\n");
    assert_eq!(tags_of(&m.keys("log")), "t");
    let left = expire_of(&m.keys("log"));
    assert!(
        (3598..=3600).contains(&left),
        "TTL kept and renewed: {left}"
    );
}

#[test]
fn two_appenders_each_append_to_their_own_copy() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"base;", "", 0);
    let a = open(&m.keys("x"), libc::O_WRONLY | libc::O_APPEND).unwrap();
    let b = open(&m.keys("x"), libc::O_WRONLY | libc::O_APPEND).unwrap();
    write_fd(&a, b"AAAA").unwrap();
    write_fd(&b, b"BB").unwrap();
    close(b).unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"base;BB");
    close(a).unwrap();
    // The last commit wins, and holds no NUL gap from the other's bytes.
    assert_eq!(read(&m.keys("x")).unwrap(), b"base;AAAA");
}

#[test]
fn writing_without_o_trunc_overwrites_a_copy_in_place() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"hello world", "", 0);
    let f = open(&m.keys("x"), libc::O_WRONLY).unwrap();
    write_fd(&f, b"HELLO").unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"hello world");
    close(f).unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"HELLO world");
}

#[test]
fn a_read_write_descriptor_reads_its_own_uncommitted_bytes() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"0123456789", "", 0);
    let f = open(&m.keys("x"), libc::O_RDWR).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_at(b"ab", 3).unwrap();
    assert_eq!(pread_all(&f).unwrap(), b"012ab56789");
    assert_eq!(read(&m.keys("x")).unwrap(), b"0123456789");
    close(f).unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"012ab56789");
}

#[test]
fn each_close_of_a_dup_commits_new_writes_and_an_idle_close_commits_nothing() {
    let m = Mount::new(&[]);
    let f = open(&m.keys("x"), WRONLY_CREAT_TRUNC).unwrap();
    write_fd(&f, b"one").unwrap();
    let c0 = commits(&m);
    close(dup(&f)).unwrap();
    assert_eq!(
        read(&m.keys("x")).unwrap(),
        b"one",
        "close of a dup commits"
    );
    assert_eq!(commits(&m), c0 + 1);
    // Nothing new: a close commits nothing.
    close(dup(&f)).unwrap();
    assert_eq!(commits(&m), c0 + 1);
    write_fd(&f, b"two").unwrap();
    close(dup(&f)).unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"onetwo");
    assert_eq!(commits(&m), c0 + 2);
    // An xattr change alone is something new.
    set_xattr_fd(&f, "user.tags", b"t").unwrap();
    close(dup(&f)).unwrap();
    assert_eq!(names(&m.tag("t")), ["x"]);
    assert_eq!(commits(&m), c0 + 3);
    // The last close, with nothing new, leaves it all as it is.
    close(f).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(commits(&m), c0 + 3);
    assert_eq!(read(&m.keys("x")).unwrap(), b"onetwo");
}

#[test]
fn bash_style_redirect_never_publishes_an_empty_version() {
    // `echo v > x` in bash: open(O_TRUNC), dup2 (a close before any write),
    // write, close.
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"previous", "", 0);
    let c0 = commits(&m);
    let f = open(&m.keys("x"), WRONLY_CREAT_TRUNC).unwrap();
    let copy = dup(&f);
    close(f).unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"previous");
    write_fd(&copy, b"v\n").unwrap();
    close(copy).unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"v\n");
    assert_eq!(commits(&m), c0 + 1, "one version, not an empty one first");
}

#[test]
fn a_forked_child_closing_its_copy_commits_nothing_partial() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"previous", "", 0);
    let f = open(&m.keys("x"), WRONLY_CREAT_TRUNC).unwrap();
    write_fd(&f, b"part 1, ").unwrap();
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    // SAFETY (child): close(2) only.
    assert_eq!(in_child(|| unsafe { libc::close(fd) }), 0);
    assert_eq!(read(&m.keys("x")).unwrap(), b"previous");
    write_fd(&f, b"part 2").unwrap();
    close(f).unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"part 1, part 2");
}

#[test]
fn a_forked_child_that_writes_commits_at_its_close() {
    let m = Mount::new(&[]);
    let f = open(&m.keys("x"), WRONLY_CREAT_TRUNC).unwrap();
    write_fd(&f, b"parent;").unwrap();
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    let code = in_child(|| {
        // SAFETY (child): raw write and close of an inherited descriptor.
        let n = unsafe { libc::write(fd, b"child;".as_ptr().cast(), 6) };
        if n != 6 {
            return 1;
        }
        // SAFETY: as above.
        if unsafe { libc::close(fd) } != 0 {
            return 2;
        }
        0
    });
    assert_eq!(code, 0);
    assert_eq!(read(&m.keys("x")).unwrap(), b"parent;child;");
    close(f).unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"parent;child;");
}

#[test]
fn truncating_open_without_writes_commits_an_empty_version_at_release() {
    // `: > keys/x`
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"content", "t", 0);
    close(open(&m.keys("x"), WRONLY_CREAT_TRUNC).unwrap()).unwrap();
    eventually(2.0, || read(&m.keys("x")).unwrap() == b"").expect("x emptied");
    assert_eq!(std::fs::metadata(m.keys("x")).unwrap().len(), 0);
    assert_eq!(tags_of(&m.keys("x")), "t");
}

#[test]
fn touching_a_new_name_creates_an_empty_entry() {
    let m = Mount::new(&[]);
    close(open(&m.keys("empty"), libc::O_WRONLY | libc::O_CREAT).unwrap()).unwrap();
    eventually(2.0, || read(&m.keys("empty")).is_ok()).expect("empty entry committed");
    assert_eq!(read(&m.keys("empty")).unwrap(), b"");
}

#[test]
fn close_reports_a_failed_commit_and_nothing_of_it_is_visible() {
    // The entry's tag is removed while it is being rewritten: committing
    // would bring an invalidated entry back, so the commit fails, close()
    // says so, and the name stays invalid.
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"v1", "t", 0);
    let f = open(&m.keys("x"), WRONLY_CREAT_TRUNC).unwrap();
    write_fd(&f, b"v2 built from stale data").unwrap();
    std::fs::remove_dir(m.tag("t")).unwrap();
    assert_eq!(errno(close(f)), Errno::ESTALE);
    assert_eq!(errno(read(&m.keys("x"))), Errno::ENOENT);
    assert_eq!(read(&m.stale("x")).unwrap(), b"v1");
    assert_eq!(names(&m.mnt.join("tags")), Vec::<String>::new());
    assert_eq!(m.stats()["commit_errors"].as_u64().unwrap(), 1);
}

#[test]
fn o_excl_holder_closing_without_writing_commits_nothing() {
    let m = Mount::new(&[]);
    let before = store_listing(&m.store);
    let c0 = commits(&m);
    let f = open(&m.keys("x"), EXCL).unwrap();
    close(f).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(errno(read(&m.keys("x"))), Errno::ENOENT);
    assert_eq!(commits(&m), c0);
    assert_eq!(store_listing(&m.store), before);
    // And the lock is free again.
    eventually(2.0, || excl_open_in_child(&m.keys("x")).is_ok()).expect("lock released");
}

#[test]
fn o_excl_is_single_flight_while_held_and_while_live() {
    let m = Mount::new(&[]);
    let holder = open(&m.keys("x"), EXCL).unwrap();
    // While held: the same process, another process.
    assert_eq!(errno(open(&m.keys("x"), EXCL)), Errno::EEXIST);
    assert_eq!(excl_open_in_child(&m.keys("x")), Err(Errno::EEXIST));
    // Plain readers see nothing yet.
    assert_eq!(errno(read(&m.keys("x"))), Errno::ENOENT);
    write_fd(&holder, b"regenerated").unwrap();
    assert_eq!(excl_open_in_child(&m.keys("x")), Err(Errno::EEXIST));
    close(holder).unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"regenerated");
    // While live.
    assert_eq!(errno(open(&m.keys("x"), EXCL)), Errno::EEXIST);
    assert_eq!(excl_open_in_child(&m.keys("x")), Err(Errno::EEXIST));
    // Invalidated: the next O_EXCL wins again.
    std::fs::remove_file(m.keys("x")).unwrap();
    let again = open(&m.keys("x"), EXCL).unwrap();
    assert_eq!(excl_open_in_child(&m.keys("x")), Err(Errno::EEXIST));
    write_fd(&again, b"v2").unwrap();
    close(again).unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"v2");
}

#[test]
fn plain_o_creat_writers_are_not_bound_by_the_lock_and_the_last_commit_wins() {
    let m = Mount::new(&[]);
    let holder = open(&m.keys("x"), EXCL).unwrap();
    let plain = open(&m.keys("x"), WRONLY_CREAT_TRUNC).unwrap();
    write_fd(&plain, b"plain").unwrap();
    close(plain).unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"plain");
    write_fd(&holder, b"exclusive").unwrap();
    close(holder).unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"exclusive");
}

#[test]
fn o_excl_lock_holds_across_two_mounts_of_one_store() {
    let m = Mount::new(&[]);
    let other_dir = tempfile::tempdir().unwrap();
    let other = Mount::on_store(other_dir, m.store.clone(), &[]);
    let holder = open(&m.keys("x"), EXCL).unwrap();
    assert_eq!(errno(open(&other.keys("x"), EXCL)), Errno::EEXIST);
    assert_eq!(excl_open_in_child(&other.keys("x")), Err(Errno::EEXIST));
    write_fd(&holder, b"from mount one").unwrap();
    close(holder).unwrap();
    // Changes from another daemon show within --cache-timeout (1 s).
    eventually(2.5, || {
        read(&other.keys("x")).is_ok_and(|c| c == b"from mount one")
    })
    .expect("commit seen on the other mount");
    assert_eq!(errno(open(&other.keys("x"), EXCL)), Errno::EEXIST);
}

#[test]
fn xattrs_on_the_writing_descriptor_before_and_after_data() {
    let m = Mount::new(&[]);
    let f = open(&m.keys("x"), WRONLY_CREAT_TRUNC).unwrap();
    set_xattr_fd(&f, "user.tags", b" b , a").unwrap();
    write_fd(&f, b"data").unwrap();
    set_xattr_fd(&f, "user.expire", b"100").unwrap();
    assert_eq!(get_xattr_fd(&f, "user.tags").unwrap(), b"a,b");
    assert_eq!(get_xattr_fd(&f, "user.expire").unwrap(), b"100");
    close(f).unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"data");
    assert_eq!(tags_of(&m.keys("x")), "a,b");
    let left = expire_of(&m.keys("x"));
    assert!((99..=100).contains(&left), "{left}");
    assert_eq!(names(&m.tag("a")), ["x"]);
    assert_eq!(names(&m.tag("b")), ["x"]);
    assert_eq!(std::fs::metadata(m.keys("x")).unwrap().nlink(), 3);

    // On a rewrite: a tags change on the fd replaces the entry's tags.
    let f = open(&m.keys("x"), WRONLY_CREAT_TRUNC).unwrap();
    write_fd(&f, b"data 2").unwrap();
    set_xattr_fd(&f, "user.tags", b"c").unwrap();
    // Others still see the committed tags until close.
    assert_eq!(names(&m.tag("a")), ["x"]);
    close(f).unwrap();
    assert_eq!(tags_of(&m.keys("x")), "c");
    assert_eq!(names(&m.tag("a")), Vec::<String>::new());
    assert_eq!(names(&m.tag("c")), ["x"]);
    let left = expire_of(&m.keys("x"));
    assert!((99..=100).contains(&left), "the TTL it was given: {left}");
}

#[test]
fn default_expire_applies_without_xattrs() {
    let m = Mount::new(&["--default-expire", "100"]);
    std::fs::write(m.keys("x"), b"v").unwrap();
    let left = expire_of(&m.keys("x"));
    assert!((99..=100).contains(&left), "{left}");
    let mtime = mtime_of(&m.keys("x"));
    assert!((now() + 98..=now() + 101).contains(&mtime), "mtime {mtime}");
    // An explicit 0 means never.
    let f = open(&m.keys("forever"), WRONLY_CREAT_TRUNC).unwrap();
    set_xattr_fd(&f, "user.expire", b"0").unwrap();
    write_fd(&f, b"v").unwrap();
    close(f).unwrap();
    assert_eq!(expire_of(&m.keys("forever")), 0);
    assert_eq!(mtime_of(&m.keys("forever")), 1 << 32);
    // Without --default-expire, entries never expire.
    let plain = Mount::new(&[]);
    std::fs::write(plain.keys("x"), b"v").unwrap();
    assert_eq!(expire_of(&plain.keys("x")), 0);
}

#[test]
fn writing_to_an_expired_entry_starts_a_fresh_one() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"old", "t", 1);
    put(&m.keys("y"), b"old", "t", 1);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(errno(read(&m.keys("x"))), Errno::ENOENT);
    // echo new > x
    std::fs::write(m.keys("x"), b"new").unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"new");
    assert_eq!(
        tags_of(&m.keys("x")),
        "",
        "an expired entry's tags are gone with it"
    );
    assert_eq!(expire_of(&m.keys("x")), 0);
    // echo new >> y: nothing of the expired content is carried over.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(m.keys("y"))
        .unwrap();
    f.write_all(b"appended").unwrap();
    close(f).unwrap();
    assert_eq!(read(&m.keys("y")).unwrap(), b"appended");
}

#[test]
fn two_writers_in_one_process_truncate_only_the_one_opened_with_o_trunc() {
    let m = Mount::new(&[]);
    for round in 0..8 {
        put(&m.keys("x"), b"0123456789", "", 0);
        let a = open(&m.keys("x"), libc::O_WRONLY).unwrap();
        write_fd(&a, b"AAAA").unwrap();
        let b = open(&m.keys("x"), WRONLY_CREAT_TRUNC).unwrap();
        write_fd(&b, b"bb").unwrap();
        close(a).unwrap();
        assert_eq!(read(&m.keys("x")).unwrap(), b"AAAA456789", "round {round}");
        close(b).unwrap();
        assert_eq!(read(&m.keys("x")).unwrap(), b"bb", "round {round}");
    }
}

#[test]
fn ftruncate_on_the_writing_descriptor_shortens_the_new_version() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"0123456789", "", 0);
    let f = open(&m.keys("x"), libc::O_WRONLY).unwrap();
    f.set_len(4).unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"0123456789");
    close(f).unwrap();
    eventually(2.0, || read(&m.keys("x")).unwrap() == b"0123")
        .expect("truncated version committed");
    let f = open(&m.keys("x"), libc::O_WRONLY | libc::O_APPEND).unwrap();
    f.set_len(6).unwrap();
    write_fd(&f, b"!").unwrap();
    close(f).unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"0123\0\0!");
}

#[test]
fn rewriting_through_a_tag_path_rewrites_the_entry() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"v1", "t,u", 0);
    std::fs::write(m.tag("t").join("x"), b"v2").unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"v2");
    assert_eq!(read(&m.tag("u").join("x")).unwrap(), b"v2");
    assert_eq!(tags_of(&m.keys("x")), "t,u");
}

#[test]
fn a_killed_o_excl_holder_releases_the_lock() {
    let m = Mount::new(&[]);
    let p = cpath(&m.keys("x"));
    let code = in_child(|| {
        // SAFETY (child): open, then exit without closing.
        let fd = unsafe { libc::open(p.as_ptr(), EXCL, 0o644) };
        if fd < 0 { Errno::last_raw() } else { 0 }
    });
    assert_eq!(code, 0);
    eventually(2.0, || excl_open_in_child(&m.keys("x")).is_ok())
        .expect("the lock died with its holder");
    assert_eq!(
        errno(read(&m.keys("x"))),
        Errno::ENOENT,
        "nothing committed"
    );
}

#[test]
fn another_process_sees_the_committed_tags_while_a_writer_changes_them() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"v1", "old", 0);
    let f = open(&m.keys("x"), WRONLY_CREAT_TRUNC).unwrap();
    set_xattr_fd(&f, "user.tags", b"new").unwrap();
    write_fd(&f, b"v2").unwrap();
    let p = cpath(&m.keys("x"));
    let seen = in_child(|| {
        let mut buf = [0u8; 64];
        // SAFETY (child): getxattr into a stack buffer.
        let n = unsafe {
            libc::getxattr(
                p.as_ptr(),
                c"user.tags".as_ptr(),
                buf.as_mut_ptr().cast(),
                64,
            )
        };
        if n == 3 && &buf[..3] == b"old" { 0 } else { 1 }
    });
    assert_eq!(seen, 0, "another process saw the writer's tags");
    assert_eq!(names(&m.tag("old")), ["x"]);
    close(f).unwrap();
    assert_eq!(tags_of(&m.keys("x")), "new");
}

#[test]
fn a_failed_write_fails_the_close_and_commits_nothing() {
    let fs = Tmpfs::new("size=1m,nr_inodes=1000");
    let m = Mount::on_store(tempfile::tempdir().unwrap(), fs.path().join("store"), &[]);
    put(&m.keys("x"), b"small and committed", "t", 0);
    let f = open(&m.keys("x"), WRONLY_CREAT_TRUNC).unwrap();
    let chunk = vec![b'z'; 256 * 1024];
    let mut failed = None;
    for _ in 0..16 {
        if let Err(e) = write_fd(&f, &chunk) {
            failed = Some(e);
            break;
        }
    }
    assert_eq!(failed, Some(Errno::ENOSPC), "a 1 MiB store filled up");
    assert_eq!(
        errno(close(f)),
        Errno::ENOSPC,
        "close() reports the lost bytes"
    );
    assert_eq!(read(&m.keys("x")).unwrap(), b"small and committed");
    // The space is back: a new version fits again.
    std::fs::write(m.keys("x"), b"v2").unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"v2");
}

#[test]
fn close_returns_enospc_when_the_commit_runs_out_of_inodes() {
    let fs = Tmpfs::new("size=4m,nr_inodes=64");
    let m = Mount::on_store(tempfile::tempdir().unwrap(), fs.path().join("store"), &[]);
    assert_eq!(read(&m.mnt.join(".stats")).map(drop), Ok(()));
    // Use up every inode but one, outside the store.
    let fill = fs.path().join("fill");
    std::fs::create_dir(&fill).unwrap();
    let mut n = 0;
    while std::fs::write(fill.join(n.to_string()), b"").is_ok() {
        n += 1;
    }
    std::fs::remove_file(fill.join((n - 1).to_string())).unwrap();
    let before = store_listing(&m.store);
    // The draft takes the last inode; the commit needs directories.
    let f = open(&m.keys("x"), WRONLY_CREAT_TRUNC).unwrap();
    set_xattr_fd(&f, "user.tags", b"t").unwrap();
    write_fd(&f, b"data").unwrap();
    assert_eq!(errno(close(f)), Errno::ENOSPC);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(errno(read(&m.keys("x"))), Errno::ENOENT);
    assert_eq!(names(&m.mnt.join("tags")), Vec::<String>::new());
    assert_eq!(store_listing(&m.store), before, "nothing of it in data/");
    assert_eq!(m.stats()["commit_errors"].as_u64().unwrap(), 1);
}

#[test]
fn a_commit_failing_at_release_is_logged_and_counted() {
    // `: > keys/x` commits at release, after close() returned: its error
    // cannot reach the caller, so the daemon logs and counts it.
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"v1", "t", 0);
    let f = open(&m.keys("x"), WRONLY_CREAT_TRUNC).unwrap();
    std::fs::remove_dir(m.tag("t")).unwrap();
    close(f).unwrap();
    eventually(2.0, || m.stats()["commit_errors"].as_u64().unwrap() == 1)
        .expect("the failed commit counted");
    // The log line follows the count.
    let logged = eventually(2.0, || m.log().contains("at release"));
    assert!(logged.is_ok(), "not logged:\n{}", m.log());
    assert_eq!(
        errno(read(&m.keys("x"))),
        Errno::ENOENT,
        "nothing of it visible"
    );
    assert_eq!(read(&m.stale("x")).unwrap(), b"v1");
}

#[test]
fn a_published_commit_succeeds_whatever_bookkeeping_follows() {
    // Holding the tag directories of a version just committed fails once.
    let m = Mount::with_failpoints("hold_tag_dirs", &[]);
    let f = open(&m.keys("x"), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC).unwrap();
    set_xattr_fd(&f, "user.tags", b"t").unwrap();
    write_fd(&f, b"stored").unwrap();
    assert_eq!(close(f), Ok(()), "close says stored for a stored entry");
    assert_eq!(read(&m.keys("x")).unwrap(), b"stored");
    assert_eq!(names(&m.tag("t")), ["x"]);
    assert_eq!(m.stats()["commit_errors"], 0);
}
