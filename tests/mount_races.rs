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
