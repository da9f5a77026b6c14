//! What a power loss can leave never becomes a live entry (SPEC §1): ext4
//! and others can leave a file that was renamed into place shorter than
//! what was written, its xattrs and mtime intact. The record holds the
//! committed length; a version that does not match it is never served,
//! listed or kept by cleanup.
//!
//! Simulated: entries committed through the mount, the daemon stopped, the
//! data files cut short behind their records (their mtime restored, as a
//! power loss leaves it), the store mounted again.

mod support;

use std::os::unix::fs::MetadataExt;

use support::*;

/// Cuts `file` to `len` bytes, keeping its mtime (the entry's expiry).
fn shorten(file: &std::path::Path, len: u64) {
    let md = std::fs::metadata(file).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.set_len(len).unwrap();
    drop(f);
    let t = libc::timespec {
        tv_sec: md.mtime(),
        tv_nsec: md.mtime_nsec(),
    };
    let c = cpath(file);
    // SAFETY: a valid path and two timespecs.
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), [t, t].as_ptr(), 0) };
    assert_eq!(r, 0, "restoring the mtime of {}", file.display());
}

#[test]
fn a_version_cut_short_by_a_power_loss_is_never_served_and_cleanup_reclaims_it() {
    let mut m = Mount::with_fast_view(&[]);
    let body = vec![b'x'; 20_000];
    for i in 0..6 {
        put(&m.keys(&format!("k{i}")), &body, "t", 0);
    }
    put(&m.keys("whole"), b"untouched", "t", 0);
    m.unmount();
    // Half cut to nothing, half to one block, as delayed allocation leaves it.
    for i in 0..6 {
        shorten(
            &key_file(&m.store, format!("k{i}").as_bytes()),
            if i % 2 == 0 { 0 } else { 4096 },
        );
    }
    let fast = m.fast.display().to_string();
    m.remount(&["--read-mount", &fast]);
    for i in 0..6 {
        let name = format!("k{i}");
        assert_eq!(errno(read(&m.keys(&name))), Errno::ENOENT, "keys/{name}");
        assert_eq!(
            errno(read(&m.tag("t").join(&name))),
            Errno::ENOENT,
            "tags/t/{name}"
        );
        assert_eq!(
            errno(read(&m.fast_keys(&name))),
            Errno::ENOENT,
            "fast view {name}"
        );
        assert_eq!(
            errno(read(&m.stale(&name))),
            Errno::ENOENT,
            "not even stale"
        );
    }
    assert_eq!(names(&m.mnt.join("keys")), ["whole"]);
    assert_eq!(names(&m.tag("t")), ["whole"]);
    assert!(names(&m.stale("")).is_empty());
    assert_eq!(read(&m.keys("whole")).unwrap(), b"untouched");
    assert!(m.stats()["torn"].as_u64().unwrap() >= 6);
    assert_eq!(
        m.log().matches("a power loss?").count(),
        6,
        "each torn version logged once:\n{}",
        m.log()
    );
    let report = cleanup_json(&m.store);
    assert_eq!(report["entries"], 6, "{report}");
    for i in 0..6 {
        assert!(!key_file(&m.store, format!("k{i}").as_bytes()).exists());
    }
    assert_eq!(read(&m.keys("whole")).unwrap(), b"untouched");
}

#[test]
fn durable_mode_commits_invalidates_and_fsyncs_as_the_default_does() {
    let m = Mount::new(&["-o", "durable"]);
    let f = open(&m.keys("x"), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC).unwrap();
    set_xattr_fd(&f, "user.tags", b"t").unwrap();
    write_fd(&f, b"kept").unwrap();
    f.sync_all().expect("fsync of a writing descriptor");
    assert_eq!(
        errno(read(&m.keys("x"))),
        Errno::ENOENT,
        "fsync does not commit"
    );
    close(f).unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"kept");
    assert_eq!(names(&m.tag("t")), ["x"]);
    let reader = std::fs::File::open(m.keys("x")).unwrap();
    reader.sync_all().expect("fsync of a reading descriptor");
    rmdir(&m.tag("t")).unwrap();
    assert_eq!(errno(read(&m.keys("x"))), Errno::ENOENT);
}
