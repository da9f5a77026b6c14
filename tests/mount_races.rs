//! Changes racing each other through a real mount: what SPEC §1 says must
//! never happen (an invalidated entry brought back) does not.

mod support;

use std::io::Write;

use support::*;

#[test]
fn overwrite_that_keeps_tags_does_not_undo_an_rmdir_of_one() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"old", "t", 0);
    // A writer continues x (keeping its tag t) while t is invalidated and
    // then re-created by another entry.
    let mut w = std::fs::OpenOptions::new()
        .write(true)
        .open(m.keys("x"))
        .unwrap();
    std::fs::remove_dir(m.tag("t")).unwrap();
    put(&m.keys("y"), b"other", "t", 0);
    w.write_all(b"new content computed before the invalidation")
        .unwrap();
    assert_eq!(
        errno(close(w)),
        Errno::ESTALE,
        "close reports the lost commit"
    );
    assert_eq!(errno(read(&m.keys("x"))), Errno::ENOENT);
    assert_eq!(names(&m.tag("t")), ["y"]);
    assert_eq!(read(&m.keys("y")).unwrap(), b"other");
}

#[test]
fn readers_never_see_a_writers_longer_uncommitted_size() {
    use std::io::Read;
    use std::os::unix::fs::FileExt;

    let m = Mount::new(&[]);
    put(&m.keys("x"), b"small", "", 0);
    let reader = std::fs::File::open(m.keys("x")).unwrap();
    let mut buf = vec![0u8; 4096];
    assert_eq!(reader.read_at(&mut buf, 0).unwrap(), 5);
    // A writer continuing x: its direct write past the cached page raises
    // the kernel's size of the node that readers share.
    let w = std::fs::OpenOptions::new()
        .write(true)
        .open(m.keys("x"))
        .unwrap();
    w.write_all_at(&vec![b'N'; 100_000], 8192).unwrap();
    assert_eq!(
        reader.read_at(&mut buf, 0).unwrap(),
        5,
        "an open reader reads the committed bytes"
    );
    assert_eq!(&buf[..5], b"small");
    w.write_all_at(&vec![b'M'; 100_000], 8192).unwrap();
    let mut fresh = std::fs::File::open(m.keys("x")).unwrap();
    assert_eq!(
        fresh.read(&mut buf).unwrap(),
        5,
        "a new reader reads the committed version whole"
    );
    assert_eq!(&buf[..5], b"small");
    drop(w);
    let committed = read(&m.keys("x")).unwrap();
    assert_eq!(committed.len(), 108_192);
    assert_eq!(&committed[..5], b"small");
}

#[test]
fn a_forked_childs_close_does_not_commit_the_parents_xattrs() {
    let m = Mount::new(&[]);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(m.keys("y"))
        .unwrap();
    set_xattr_fd(&f, "user.tags", b"t").unwrap();
    // The child only exits, closing its copies of the descriptors.
    in_child(|| 0);
    assert_eq!(
        errno(read(&m.keys("y"))),
        Errno::ENOENT,
        "the child's close committed nothing"
    );
    assert_eq!(write_fd(&f, b"value"), Ok(5));
    drop(f);
    assert_eq!(read(&m.keys("y")).unwrap(), b"value");
    assert_eq!(get_xattr(&m.keys("y"), "user.tags").unwrap(), b"t");
}

#[test]
fn past_max_nodes_the_kernel_is_made_to_forget_names() {
    let m = Mount::new(&["--max-nodes", "100", "--cache-timeout", "60"]);
    for i in 0..400 {
        std::fs::write(m.keys(&format!("k{i}")), format!("v{i}")).unwrap();
    }
    for i in 0..400 {
        std::fs::metadata(m.keys(&format!("k{i}"))).unwrap();
    }
    assert_eq!(
        names(&m.mnt.join("keys")).len(),
        400,
        "a listing past the budget is whole"
    );
    let nodes = || m.stats()["kernel_nodes"].as_u64().unwrap();
    let forgot = eventually(10.0, || nodes() <= 120);
    assert!(
        forgot.is_ok(),
        "nodes held: {} (budget 100 entries)",
        nodes()
    );
    for i in 0..400 {
        assert_eq!(
            read(&m.keys(&format!("k{i}"))).unwrap(),
            format!("v{i}").as_bytes()
        );
    }
}

#[test]
fn a_retag_on_the_writing_descriptor_makes_the_old_tag_paths_forget_it() {
    let m = Mount::with_fast_view(&["--cache-timeout", "60"]);
    put(&m.keys("x"), b"v1", "a", 0);
    let (full, fast) = (m.tag("a").join("x"), m.fast.join("tags/a/x"));
    assert_eq!(read(&full).unwrap(), b"v1");
    assert_eq!(read(&fast).unwrap(), b"v1");
    // Written again with user.tags=b set on the writing descriptor.
    put(&m.keys("x"), b"v2", "b", 0);
    assert_eq!(errno(read(&full)), Errno::ENOENT, "full mount");
    assert_eq!(errno(read(&fast)), Errno::ENOENT, "fast view");
    assert_eq!(read(&m.tag("b").join("x")).unwrap(), b"v2");
    assert_eq!(read(&m.fast.join("tags/b/x")).unwrap(), b"v2");
}

#[test]
fn a_commit_makes_the_tag_paths_of_a_concurrently_committed_version_forget_it() {
    let m = Mount::with_fast_view(&["--cache-timeout", "60"]);
    put(&m.keys("x"), b"v1", "a", 0);
    // A writer continues x (tags a) and retags its version to b ...
    let w = open(&m.keys("x"), libc::O_WRONLY | libc::O_TRUNC).unwrap();
    set_xattr_fd(&w, "user.tags", b"b").unwrap();
    write_fd(&w, b"w").unwrap();
    // ... while another commit puts a version tagged c in between.
    put(&m.keys("x"), b"v2", "c", 0);
    let (full, fast) = (m.tag("c").join("x"), m.fast.join("tags/c/x"));
    assert_eq!(read(&full).unwrap(), b"v2");
    assert_eq!(read(&fast).unwrap(), b"v2");
    close(w).unwrap();
    assert_eq!(errno(read(&full)), Errno::ENOENT, "full mount");
    assert_eq!(errno(read(&fast)), Errno::ENOENT, "fast view");
    assert_eq!(read(&m.keys("x")).unwrap(), b"w");
}

#[test]
fn mv_n_never_replaces_an_entry_committed_while_it_runs() {
    // The rename pauses after checking its target: a commit lands there.
    let m = Mount::with_failpoints("rename.checked=1000", &[]);
    put(&m.keys("a"), b"A", "t", 0);
    let b = open(&m.keys("b"), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC).unwrap();
    write_fd(&b, b"B").unwrap();
    let (from, to) = (m.keys("a"), m.keys("b"));
    let mover = std::thread::spawn(move || rename_noreplace(&from, &to));
    std::thread::sleep(std::time::Duration::from_millis(300));
    close(b).unwrap();
    assert_eq!(mover.join().unwrap(), Err(Errno::EEXIST));
    assert_eq!(read(&m.keys("b")).unwrap(), b"B", "the commit stays");
    assert_eq!(read(&m.keys("a")).unwrap(), b"A", "the entry did not move");
    assert_eq!(
        names(&m.tag("t")),
        ["a"],
        "its record still names it after the failed rename"
    );
}

#[test]
fn shedding_goes_on_after_a_failed_thread_spawn() {
    let m = Mount::with_failpoints(
        "spawn.shed",
        &["--max-nodes", "100", "--cache-timeout", "60"],
    );
    for i in 0..400 {
        std::fs::write(m.keys(&format!("k{i}")), format!("v{i}")).unwrap();
    }
    for i in 0..400 {
        std::fs::metadata(m.keys(&format!("k{i}"))).unwrap();
    }
    let nodes = || m.stats()["kernel_nodes"].as_u64().unwrap();
    let forgot = eventually(10.0, || nodes() <= 120);
    assert!(
        forgot.is_ok(),
        "nodes held: {} (budget 100 entries)",
        nodes()
    );
    assert!(m.log().contains("failpoint spawn.shed"), "{}", m.log());
}

#[test]
fn a_commit_in_progress_does_not_hold_up_calls_on_other_entries() {
    // Every commit takes a second and a half, holding its descriptor.
    let m = Mount::with_failpoints("writer.commit=1500", &[]);
    put(&m.keys("other"), b"o", "t", 0);
    let slow = m.keys("slow");
    let writer = std::thread::spawn(move || {
        let f = open(&slow, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC).unwrap();
        write_fd(&f, b"s").unwrap();
        close(f).unwrap();
    });
    // Once the slow commit is in its pause (the second pause logged: the
    // first was other's).
    let paused = || m.log().matches("failpoint writer.commit").count() >= 2;
    eventually(5.0, paused).expect("the slow commit pausing");
    assert_eq!(get_xattr(&m.keys("other"), "user.tags").unwrap(), b"t");
    assert_eq!(
        errno(read(&m.keys("slow"))),
        Errno::ENOENT,
        "getxattr of another entry waited until the commit was published"
    );
    writer.join().unwrap();
    assert_eq!(read(&m.keys("slow")).unwrap(), b"s");
}

#[test]
fn a_node_never_serves_a_version_that_reused_its_inode_number() {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    use tagcachefs::store::{Commit, Store, Time};

    let m = Mount::with_fast_view(&["--cache-timeout", "1"]);
    let key = key_file(&m.store, b"x");
    let store = Store::open(&m.store).unwrap();
    // Up to 5 tries: another process on the same file system (a test
    // running beside this one) may take the freed inode number first.
    let mut found = None;
    for attempt in 0..5 {
        put(&m.keys("x"), b"version one", "", 0);
        // Open on the fast view: the kernel holds a node of version one,
        // the daemon holds no file of it, and nothing has been read yet.
        let old = open(&m.fast_keys("x"), libc::O_RDONLY).unwrap();
        let ino = std::fs::metadata(&key).unwrap().ino();
        // Replaced from outside the daemon, again and again, until a new
        // version of x gets version one's inode number back.
        for i in 0..200 {
            let draft = store.new_draft().unwrap();
            draft
                .file()
                .write_all(format!("version {attempt}.{i} of many").as_bytes())
                .unwrap();
            store
                .commit(draft, &Commit::fresh(b"x", &[], Time::NEVER, 0))
                .unwrap();
            if std::fs::metadata(&key).unwrap().ino() == ino {
                found = Some((old, format!("version {attempt}.{i} of many")));
                break;
            }
        }
        if found.is_some() {
            break;
        }
    }
    let (old, now) = found.expect("the store's file system gave the inode number back");
    let now = now.into_bytes();
    match pread_all(&old) {
        Ok(bytes) => assert_eq!(
            bytes, b"version one",
            "the old descriptor read another version"
        ),
        Err(e) => assert_eq!(e, Errno::ESTALE, "the old version is gone"),
    }
    eventually(3.0, || read(&m.fast_keys("x")).is_ok_and(|b| b == now))
        .expect("a new open reads the current version");
    assert_eq!(read(&m.keys("x")).unwrap(), now);
}

/// An entry that always exists, overwritten again and again: no read of
/// it on either mount ever finds it missing (a lookup opening the key path
/// as a commit renames over it opens the new version; a read of a node in
/// the moment between that rename and the pinning of the version it
/// replaced waits for the pin).
#[test]
fn reads_of_an_entry_being_overwritten_never_find_it_missing() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let m = Arc::new(Mount::with_fast_view(&["--cache-timeout", "1"]));
    put(&m.keys("x"), b"first", "", 0);
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (m, done) = (m.clone(), done.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let body = format!("writer {w} version {n}");
                    std::fs::write(m.keys("x"), body.as_bytes()).unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (m, done) = (m.clone(), done.clone());
            std::thread::spawn(move || {
                let path = if r == 0 {
                    m.keys("x")
                } else {
                    m.fast_keys("x")
                };
                let (mut reads, mut missing) = (0u64, Vec::new());
                while !done.load(Ordering::Relaxed) {
                    match std::fs::read(&path) {
                        Ok(b) => assert!(
                            b == b"first" || b.starts_with(b"writer "),
                            "a whole version: {b:?}"
                        ),
                        Err(e) => missing.push(e.to_errno()),
                    }
                    reads += 1;
                }
                (reads, missing)
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_secs(if long_mode() {
        30
    } else {
        3
    }));
    done.store(true, Ordering::Relaxed);
    let commits: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    for (r, h) in readers.into_iter().enumerate() {
        let (reads, missing) = h.join().unwrap();
        eprintln!(
            "reader {r}: {reads} reads beside {commits} commits, {} failed",
            missing.len()
        );
        assert!(reads > 0 && commits > 0);
        // Never missing. A reader descheduled between its lookup and its
        // read for longer than 128 newer commits take (the pins a mount
        // keeps, README "Limits") can still find its version gone: ESTALE,
        // which the kernel retries once.
        let absent: Vec<_> = missing.iter().filter(|&&e| e != Errno::ESTALE).collect();
        assert!(
            absent.is_empty(),
            "reader {r}: {} of {reads} reads failed: {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
    }
}
