//! A full disk (SPEC §2: "close() returns the commit's error (ENOSPC, EIO…)
//! and then nothing of it is visible"; §4: nothing lost, nothing torn).
//! The store lives on a small tmpfs mounted by the test (8 MiB), unmounted
//! by a guard after the FUSE mount, also when the test fails.

mod support;

use std::path::{Path, PathBuf};

use support::*;

const MIB: usize = 1 << 20;

fn free_bytes(path: &Path) -> u64 {
    let p = cpath(path);
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and statvfs buffer.
    assert_eq!(unsafe { libc::statvfs(p.as_ptr(), &mut st) }, 0);
    st.f_bavail * st.f_frsize
}

/// The tmpfs, then the mount of a store on it (dropped in reverse order:
/// the FUSE mount first).
fn setup() -> (Tmpfs, Mount) {
    let fs = Tmpfs::new("size=8m");
    let dir = tempfile::tempdir().unwrap();
    let m = Mount::on_store(dir, fs.path().join("store"), &["--cache-timeout", "1"]);
    (fs, m)
}

/// Writes version `id` (`len` bytes) with `tags`; the errors of write()
/// and close(), in that order.
fn put_version(
    path: &Path,
    id: u64,
    len: usize,
    tags: &str,
) -> (Result<(), Errno>, Result<(), Errno>) {
    let f = match open(path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) {
        Ok(f) => f,
        Err(e) => return (Err(e), Ok(())),
    };
    set_xattr_fd(&f, "user.tags", tags.as_bytes()).unwrap();
    let w = write_chunks(&f, &version_content(id, len), 128 * 1024);
    (w, close(f))
}

fn read_id(path: &Path) -> Result<u64, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    check_version(&data).map_err(|e| format!("{}: {e}", path.display()))
}

/// Fills the file system holding `dir` with a file there, to the last page.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let f = std::fs::File::create(&path).unwrap();
    for chunk in [MIB, 64 * 1024, 4096, 512, 1] {
        while write_chunks(&f, &vec![7u8; chunk], chunk).is_ok() {}
    }
    path
}

fn assert_enospc(what: &str, results: &[Result<(), Errno>]) {
    let errors: Vec<Errno> = results.iter().filter_map(|r| r.err()).collect();
    assert!(
        errors.contains(&Errno::ENOSPC),
        "{what}: expected ENOSPC, got {errors:?}"
    );
    assert!(
        errors.iter().all(|e| *e == Errno::ENOSPC),
        "{what}: only ENOSPC is the answer to a full disk, got {errors:?}"
    );
}

fn assert_no_drafts(m: &Mount, when: &str) {
    let drafts = tmp_files(&m.store, "w.");
    assert!(
        drafts.is_empty(),
        "{when}: tmp/ still holds drafts {drafts:?}"
    );
}

#[test]
fn disk_full_fails_the_commit_keeps_every_entry_and_recovers() {
    let (fs, m) = setup();
    for i in 0..5u64 {
        let (w, c) = put_version(&m.keys(&format!("a{i}")), i, 300 * 1024, "old");
        assert_eq!((w, c), (Ok(()), Ok(())), "writing a{i} on an empty disk");
    }
    let (w, c) = put_version(&m.keys("keep"), 100, 100 * 1024, "k");
    assert_eq!((w, c), (Ok(()), Ok(())));
    let free0 = free_bytes(&m.store);
    let free_mnt = free_bytes(&m.mnt);
    assert!(
        free_mnt.abs_diff(free0) < MIB as u64,
        "df on the mount tells the store's free space: {free_mnt} vs {free0}"
    );

    // One write past the free space: write() or close() says ENOSPC.
    let (w, c) = put_version(&m.keys("big"), 999, 12 * MIB, "new");
    assert_enospc("a 12 MiB entry on an 8 MiB disk", &[w, c]);
    eprintln!("12 MiB write on a full disk: write() -> {w:?}, close() -> {c:?}");
    assert_eq!(
        outcome(std::fs::read(m.keys("big"))),
        Err(Errno::ENOENT),
        "an entry whose commit failed is not visible"
    );
    for i in 0..5u64 {
        assert_eq!(
            read_id(&m.keys(&format!("a{i}"))),
            Ok(i),
            "a{i} after the failed write"
        );
    }
    assert_eq!(read_id(&m.keys("keep")), Ok(100));
    assert_no_drafts(&m, "after the failed commit");
    assert!(
        free_bytes(&m.store) + 256 * 1024 >= free0,
        "the failed draft's space is returned at close: {} free, {free0} before",
        free_bytes(&m.store)
    );

    // Full to the last page: every kind of commit fails with ENOSPC and
    // leaves the entry it targets as it was.
    let filler = fill(fs.path());
    let (w, c) = put_version(&m.keys("small"), 200, 10_000, "new");
    assert_enospc("a new 10 kB entry on a full disk", &[w, c]);
    assert_eq!(
        outcome(std::fs::read(m.keys("small"))),
        Err(Errno::ENOENT),
        "a new entry whose commit failed is not visible"
    );
    let r = set_xattr(&m.keys("a0"), b"user.tags", b"old,more");
    assert_enospc("retagging (a copy) on a full disk", &[r]);
    assert_eq!(get_xattr(&m.keys("a0"), b"user.tags"), Ok(b"old".to_vec()));
    let f = open(&m.keys("a1"), libc::O_WRONLY | libc::O_APPEND).unwrap();
    let w = write_chunks(&f, b"appended", 4096);
    let c = close(f);
    assert_enospc("appending (a copy) on a full disk", &[w, c]);
    for i in 0..5u64 {
        assert_eq!(
            read_id(&m.keys(&format!("a{i}"))),
            Ok(i),
            "a{i} on a full disk"
        );
    }
    // Invalidation needs no space, and the daemon still serves.
    rmdir(&m.tag("old")).expect("rmdir on a full disk");
    assert_eq!(outcome(std::fs::read(m.keys("a2"))), Err(Errno::ENOENT));
    assert_eq!(read_id(&m.keys("keep")), Ok(100));
    std::fs::read(m.mnt.join(".stats")).expect(".stats on a full disk");
    assert_no_drafts(&m, "after the failed commits on a full disk");

    // Space comes back: the filler goes, cleanup reclaims a0..a4.
    std::fs::remove_file(filler).unwrap();
    let report = cleanup_json(&m.store);
    assert!(
        report["entries"].as_u64() >= Some(5),
        "cleanup report: {report}"
    );
    let free1 = free_bytes(&m.store);
    assert!(
        free1 + 256 * 1024 >= free0 + 5 * 300 * 1024,
        "cleanup returns the space of the 5 invalidated entries: {free1} free, {free0} before them"
    );
    let (w, c) = put_version(&m.keys("after"), 300, 2 * MIB, "new");
    assert_eq!((w, c), (Ok(()), Ok(())), "a 2 MiB entry once space is back");
    assert_eq!(read_id(&m.keys("after")), Ok(300));
    assert_eq!(read_id(&m.keys("keep")), Ok(100));
    assert!(
        !daemon_pids(&m.store).is_empty(),
        "the daemon is still there"
    );
    assert_eq!(
        panics_in(&m.log()),
        Vec::<String>::new(),
        "the daemon panicked"
    );
    drop(m);
    drop(fs);
}

/// A descriptor whose write() failed for space has not written the version
/// its caller meant: closing it must not publish what it holds (an empty
/// or truncated entry), and must not replace the entry it was overwriting.
#[test]
fn a_write_that_failed_for_space_publishes_nothing() {
    let (fs, m) = setup();
    let (w, c) = put_version(&m.keys("x"), 1, 200 * 1024, "t");
    assert_eq!((w, c), (Ok(()), Ok(())));
    let filler = fill(fs.path());

    // `echo v > keys/x` on a full disk: the open-time truncate, then a
    // write that fails.
    let (w, c) = put_version(&m.keys("x"), 2, 50_000, "t");
    eprintln!("overwrite on a full disk: write() -> {w:?}, close() -> {c:?}");
    assert_eq!(
        w,
        Err(Errno::ENOSPC),
        "the write itself finds the disk full"
    );
    assert_eq!(
        read_id(&m.keys("x")),
        Ok(1),
        "after a failed overwrite (close() -> {c:?}), keys/x is still the version before it"
    );

    // A new name whose first write failed.
    let (w, c) = put_version(&m.keys("fresh"), 3, 50_000, "t");
    eprintln!("new entry on a full disk: write() -> {w:?}, close() -> {c:?}");
    assert_eq!(w, Err(Errno::ENOSPC));
    let fresh = std::fs::read(m.keys("fresh"));
    assert!(
        matches!(&fresh, Err(e) if e.to_errno() == Errno::ENOENT),
        "a new entry whose write failed (close() -> {c:?}) is not published, found {:?}",
        fresh.map(|d| format!("{} bytes", d.len()))
    );

    std::fs::remove_file(filler).unwrap();
    assert_eq!(read_id(&m.keys("x")), Ok(1));
    assert_no_drafts(&m, "after the failed writes");
    drop(m);
    drop(fs);
}
