//! The seed's blog example through a real mount, and the basic rows of
//! SPEC §2.

mod support;

use std::os::unix::fs::MetadataExt;

use support::*;

#[test]
fn write_with_tags_read_and_rmdir_a_tag() {
    let m = Mount::new(&[]);
    put(
        &m.keys("blog-home"),
        b"<html>home</html>",
        "blog-new, bio",
        3600,
    );
    assert_eq!(read(&m.keys("blog-home")).unwrap(), b"<html>home</html>");
    assert_eq!(names(&m.mnt.join("tags")), ["bio", "blog-new"]);
    assert_eq!(names(&m.tag("bio")), ["blog-home"]);
    let a = std::fs::metadata(m.keys("blog-home")).unwrap();
    let b = std::fs::metadata(m.tag("bio").join("blog-home")).unwrap();
    assert_eq!(a.ino(), b.ino(), "keys/x and tags/t/x are the same inode");
    assert_eq!(a.nlink(), 3);
    assert_eq!(a.mode() & 0o7777, 0o644);
    std::fs::remove_dir(m.tag("bio")).unwrap();
    assert_eq!(errno(read(&m.keys("blog-home"))), Errno::ENOENT);
    assert_eq!(names(&m.mnt.join("keys")), Vec::<String>::new());
    assert_eq!(read(&m.stale("blog-home")).unwrap(), b"<html>home</html>");
    // The store underneath is the seed's layout.
    assert!(m.store.join("data/ae/08/key:626c6f672d686f6d65").exists());
}

#[test]
fn fast_view_serves_hits_and_sees_rmdir_at_once() {
    let m = Mount::with_fast_view(&["--cache-timeout", "60"]);
    put(&m.keys("page"), b"v1", "t", 0);
    assert_eq!(read(&m.fast_keys("page")).unwrap(), b"v1");
    put(&m.keys("page"), b"version two", "t", 0);
    assert_eq!(read(&m.fast_keys("page")).unwrap(), b"version two");
    std::fs::remove_dir(m.tag("t")).unwrap();
    assert_eq!(errno(read(&m.fast_keys("page"))), Errno::ENOENT);
}
