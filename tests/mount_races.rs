//! Changes racing each other through a real mount: what SPEC §1 says must
//! never happen (an invalidated entry brought back) does not.

mod common;

use std::io::Write;

use common::*;

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
    let e = w.flush().and_then(|()| {
        use std::os::fd::IntoRawFd;
        // SAFETY: the descriptor is ours and closed once.
        match unsafe { libc::close(w.into_raw_fd()) } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    });
    assert_eq!(errno(e), libc::ESTALE, "close reports the lost commit");
    assert_eq!(errno(read(&m.keys("x"))), libc::ENOENT);
    assert_eq!(names(&m.tag("t")), ["y"]);
    assert_eq!(read(&m.keys("y")).unwrap(), b"other");
}
