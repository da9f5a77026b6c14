//! SPEC §2's "anything else" row through a real mount: every refused call
//! gets its exact errno, leaves the store's data/ exactly as it was, and
//! the daemon goes on serving.

mod support;

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;

use support::*;

/// A mount with `x` (tags t,u) and `old` (invalidated, under stale/).
fn fixture() -> Mount {
    let m = Mount::new(&["--cleanup-interval", "0"]);
    put(&m.keys("x"), b"content", "t,u", 0);
    put(&m.keys("old"), b"old content", "", 0);
    std::fs::remove_file(m.keys("old")).unwrap();
    assert_eq!(read(&m.stale("old")).unwrap(), b"old content");
    m
}

/// `op` fails with `want`, the store is unchanged, the daemon serves.
fn refused<T: std::fmt::Debug, E: ToErrno>(
    m: &Mount,
    what: &str,
    want: Errno,
    op: impl FnOnce() -> Result<T, E>,
) {
    let before = store_listing(&m.store);
    let got = errno(op());
    assert_eq!(got, want, "{what}: got {got}, want {want}");
    assert_eq!(store_listing(&m.store), before, "{what}: the store changed");
    assert_eq!(
        read(&m.keys("x")).unwrap(),
        b"content",
        "{what}: not serving"
    );
    assert_eq!(tags_of(&m.keys("x")), "t,u", "{what}");
    assert_eq!(
        m.stats()["errors"].as_u64().unwrap(),
        0,
        "{what}: counted as a fault"
    );
}

#[test]
fn mkdir_outside_tags_is_refused() {
    let m = fixture();
    refused(&m, "mkdir keys/d", Errno::EPERM, || {
        std::fs::create_dir(m.keys("d"))
    });
    refused(&m, "mkdir tags/t/d", Errno::EPERM, || {
        std::fs::create_dir(m.tag("t").join("d"))
    });
    refused(&m, "mkdir MNT/d", Errno::EPERM, || {
        std::fs::create_dir(m.mnt.join("d"))
    });
    refused(&m, "mkdir stale/d", Errno::EROFS, || {
        std::fs::create_dir(m.stale("d"))
    });
}

#[test]
fn files_outside_keys_are_refused() {
    let m = fixture();
    refused(&m, "create tags/f", Errno::EPERM, || {
        std::fs::write(m.mnt.join("tags/f"), b"v")
    });
    refused(&m, "create tags/t/new", Errno::EPERM, || {
        std::fs::write(m.tag("t").join("new"), b"v")
    });
    refused(&m, "create MNT/f", Errno::EPERM, || {
        std::fs::write(m.mnt.join("f"), b"v")
    });
    refused(&m, "ln keys/x keys/y", Errno::EPERM, || {
        std::fs::hard_link(m.keys("x"), m.keys("y"))
    });
    refused(&m, "ln keys/x tags/x", Errno::EPERM, || {
        std::fs::hard_link(m.keys("x"), m.mnt.join("tags/x"))
    });
}

#[test]
fn writes_in_stale_are_refused_read_only() {
    let m = fixture();
    let old = m.stale("old");
    refused(&m, "open stale/old for writing", Errno::EROFS, || {
        open(&old, libc::O_WRONLY)
    });
    refused(&m, "open stale/old O_RDWR|O_TRUNC", Errno::EROFS, || {
        open(&old, libc::O_RDWR | libc::O_TRUNC)
    });
    refused(&m, "create stale/new", Errno::EROFS, || {
        std::fs::write(m.stale("new"), b"v")
    });
    refused(&m, "rm stale/old", Errno::EROFS, || {
        std::fs::remove_file(&old)
    });
    refused(&m, "setfattr stale/old", Errno::EROFS, || {
        set_xattr(&old, "user.tags", b"t")
    });
    refused(&m, "setfattr user.expire stale/old", Errno::EROFS, || {
        set_xattr(&old, "user.expire", b"60")
    });
    refused(&m, "touch stale/old", Errno::EROFS, || {
        set_mtime(&old, now() + 100)
    });
    refused(&m, "truncate stale/old", Errno::EROFS, || truncate(&old, 0));
    refused(&m, "mv keys/x stale/y", Errno::EROFS, || {
        std::fs::rename(m.keys("x"), m.stale("y"))
    });
    refused(&m, "mv stale/old keys/old", Errno::EROFS, || {
        std::fs::rename(&old, m.keys("old"))
    });
    refused(&m, "ln keys/x stale/x", Errno::EROFS, || {
        std::fs::hard_link(m.keys("x"), m.stale("x"))
    });
    refused(&m, "ln stale/old tags/t/old", Errno::EROFS, || {
        std::fs::hard_link(&old, m.tag("t").join("old"))
    });
    assert_eq!(read(&old).unwrap(), b"old content");
}

#[test]
fn symlinks_and_devices_are_refused() {
    let m = fixture();
    refused(&m, "ln -s keys/l", Errno::EPERM, || {
        std::os::unix::fs::symlink("x", m.keys("l"))
    });
    refused(&m, "ln -s tags/t/l", Errno::EPERM, || {
        std::os::unix::fs::symlink("x", m.tag("t").join("l"))
    });
    refused(&m, "mkfifo keys/p", Errno::EPERM, || {
        mknod(&m.keys("p"), libc::S_IFIFO | 0o644, 0)
    });
    refused(&m, "mknod keys/c", Errno::EPERM, || {
        mknod(&m.keys("c"), libc::S_IFCHR | 0o644, libc::makedev(1, 3))
    });
    refused(&m, "mknod keys/s", Errno::EPERM, || {
        mknod(&m.keys("s"), libc::S_IFSOCK | 0o644, 0)
    });
}

#[test]
fn chmod_and_chown_are_refused() {
    let m = fixture();
    let perm = |mode| std::fs::Permissions::from_mode(mode);
    refused(&m, "chmod 600 keys/x", Errno::EPERM, || {
        std::fs::set_permissions(m.keys("x"), perm(0o600))
    });
    refused(&m, "chmod 755 keys/x", Errno::EPERM, || {
        std::fs::set_permissions(m.keys("x"), perm(0o755))
    });
    refused(&m, "chown keys/x", Errno::EPERM, || {
        chown(&m.keys("x"), 1234, 1234)
    });
    refused(&m, "chmod keys/", Errno::EPERM, || {
        std::fs::set_permissions(m.mnt.join("keys"), perm(0o700))
    });
    refused(&m, "chown tags/t", Errno::EPERM, || {
        chown(&m.tag("t"), 1234, 1234)
    });
    refused(&m, "touch keys/", Errno::EPERM, || {
        set_mtime(&m.mnt.join("keys"), now())
    });
    // What it already is: allowed, nothing changes.
    let before = store_listing(&m.store);
    std::fs::set_permissions(m.keys("x"), perm(0o644)).unwrap();
    // SAFETY: getuid/getgid cannot fail.
    chown(&m.keys("x"), unsafe { libc::getuid() }, unsafe {
        libc::getgid()
    })
    .unwrap();
    assert_eq!(store_listing(&m.store), before);
}

#[test]
fn other_xattr_names_are_not_supported() {
    let m = fixture();
    let x = m.keys("x");
    for name in [
        "user.foo",
        "user.tagcache",
        "trusted.tags",
        "security.foo",
        "user.Tags",
    ] {
        refused(&m, &format!("setfattr {name}"), Errno::EOPNOTSUPP, || {
            set_xattr(&x, name, b"v")
        });
        refused(
            &m,
            &format!("setfattr -x {name}"),
            Errno::EOPNOTSUPP,
            || remove_xattr(&x, name),
        );
        refused(&m, &format!("getfattr {name}"), Errno::ENODATA, || {
            get_xattr(&x, name)
        });
    }
    refused(&m, "setfattr user.tags keys/", Errno::EOPNOTSUPP, || {
        set_xattr(&m.mnt.join("keys"), "user.tags", b"t")
    });
    refused(&m, "setfattr user.tags tags/t", Errno::EOPNOTSUPP, || {
        set_xattr(&m.tag("t"), "user.tags", b"t")
    });
    // On a writing descriptor too; closing it unchanged commits nothing.
    let f = open(&x, libc::O_WRONLY).unwrap();
    refused(&m, "fsetxattr user.foo", Errno::EOPNOTSUPP, || {
        set_xattr_fd(&f, "user.foo", b"v")
    });
    let before = store_listing(&m.store);
    close(f).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(store_listing(&m.store), before);
}

#[test]
fn bad_user_expire_values_are_invalid() {
    let m = fixture();
    let x = m.keys("x");
    for v in [
        &b"abc"[..],
        b"-5",
        b"",
        b"1.5",
        b"99999999999",
        b"10s",
        b"0x10",
    ] {
        let shown = String::from_utf8_lossy(v).into_owned();
        refused(&m, &format!("user.expire={shown:?}"), Errno::EINVAL, || {
            set_xattr(&x, "user.expire", v)
        });
    }
    let f = open(&x, libc::O_WRONLY).unwrap();
    refused(&m, "fsetxattr user.expire=-1", Errno::EINVAL, || {
        set_xattr_fd(&f, "user.expire", b"-1")
    });
    close(f).unwrap();
}

#[test]
fn names_and_tags_over_125_bytes_are_too_long() {
    let m = fixture();
    let long = "n".repeat(126);
    refused(&m, "create keys/<126>", Errno::ENAMETOOLONG, || {
        std::fs::write(m.keys(&long), b"v")
    });
    refused(&m, "stat keys/<126>", Errno::ENAMETOOLONG, || {
        std::fs::metadata(m.keys(&long))
    });
    refused(&m, "mkdir tags/<126>", Errno::ENAMETOOLONG, || {
        std::fs::create_dir(m.tag(&long))
    });
    refused(&m, "mv keys/x keys/<126>", Errno::ENAMETOOLONG, || {
        std::fs::rename(m.keys("x"), m.keys(&long))
    });
    refused(
        &m,
        "user.tags with a 126-byte tag",
        Errno::ENAMETOOLONG,
        || set_xattr(&m.keys("x"), "user.tags", format!("t,{long}").as_bytes()),
    );
    refused(&m, "create keys/<300>", Errno::ENAMETOOLONG, || {
        std::fs::write(m.keys(&"n".repeat(300)), b"v")
    });
}

#[test]
fn names_of_125_bytes_and_odd_bytes_work() {
    let m = Mount::new(&[]);
    let name = "n".repeat(125);
    put(&m.keys(&name), b"v", &"t".repeat(125), 0);
    assert_eq!(read(&m.keys(&name)).unwrap(), b"v");
    assert_eq!(names(&m.tag(&"t".repeat(125))), [name]);
    // Any bytes but / and NUL: blanks, newlines, non-UTF-8.
    use std::os::unix::ffi::OsStrExt;
    let odd = std::ffi::OsStr::from_bytes(b"a b\n\xff,c");
    std::fs::write(m.mnt.join("keys").join(odd), b"odd").unwrap();
    assert_eq!(read(&m.mnt.join("keys").join(odd)).unwrap(), b"odd");
}

#[test]
fn tags_with_a_comma_or_blank_are_invalid() {
    let m = fixture();
    for bad in ["a,b", "a b", "a\tb", " a"] {
        refused(&m, &format!("mkdir tags/{bad:?}"), Errno::EINVAL, || {
            std::fs::create_dir(m.tag(bad))
        });
    }
    refused(&m, "user.tags 'a b'", Errno::EINVAL, || {
        set_xattr(&m.keys("x"), "user.tags", b"t,a b")
    });
    refused(&m, "user.tags with a tab", Errno::EINVAL, || {
        set_xattr(&m.keys("x"), "user.tags", b"a\tb")
    });
    refused(&m, "ln into tags/'a,b'", Errno::EINVAL, || {
        std::fs::hard_link(m.keys("x"), m.tag("a,b").join("x"))
    });
}

#[test]
fn renames_across_keys_and_tags_are_cross_device() {
    let m = fixture();
    put(&m.keys("y"), b"y", "", 0);
    let serving = |what: &str| assert_eq!(read(&m.keys("y")).unwrap(), b"y", "{what}");
    refused(&m, "mv keys/y tags/t/y", Errno::EXDEV, || {
        std::fs::rename(m.keys("y"), m.tag("t").join("y"))
    });
    refused(&m, "mv tags/t/x keys/z", Errno::EXDEV, || {
        std::fs::rename(m.tag("t").join("x"), m.keys("z"))
    });
    refused(&m, "mv tags/t/x tags/u/z", Errno::EXDEV, || {
        std::fs::rename(m.tag("t").join("x"), m.tag("u").join("z"))
    });
    // Two names of one file: rename(2) does nothing and succeeds (POSIX);
    // the kernel answers it without asking the daemon.
    let before = store_listing(&m.store);
    std::fs::rename(m.keys("x"), m.tag("t").join("x")).unwrap();
    std::fs::rename(m.tag("t").join("x"), m.tag("u").join("x")).unwrap();
    assert_eq!(store_listing(&m.store), before);
    assert_eq!(names(&m.tag("t")), ["x"]);
    refused(&m, "mv tags/t tags/v", Errno::EPERM, || {
        std::fs::rename(m.tag("t"), m.tag("v"))
    });
    refused(&m, "mv keys MNT/k", Errno::EPERM, || {
        std::fs::rename(m.mnt.join("keys"), m.mnt.join("k"))
    });
    refused(&m, "mv -T --exchange keys/x keys/y", Errno::EINVAL, || {
        rename_exchange(&m.keys("x"), &m.keys("y"))
    });
    serving("after the renames");
}

#[test]
fn truncate_on_a_path_is_not_permitted() {
    let m = fixture();
    refused(&m, "truncate keys/x 0", Errno::EPERM, || {
        truncate(&m.keys("x"), 0)
    });
    refused(&m, "truncate keys/x 100", Errno::EPERM, || {
        truncate(&m.keys("x"), 100)
    });
    refused(&m, "truncate tags/t/x 1", Errno::EPERM, || {
        truncate(&m.tag("t").join("x"), 1)
    });
    refused(&m, "truncate keys/", Errno::EISDIR, || {
        truncate(&m.mnt.join("keys"), 0)
    });
}

#[test]
fn shared_mmap_of_a_writing_descriptor_is_refused() {
    let m = fixture();
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let w = open(&m.keys("x"), libc::O_RDWR).unwrap();
    // The kernel refuses MAP_SHARED of a FOPEN_DIRECT_IO file (ENODEV): a
    // writer's bytes go to the daemon, never to pages.
    refused(
        &m,
        "mmap(MAP_SHARED, rw) of a writer",
        Errno::ENODEV,
        || mmap(&w, rw, libc::MAP_SHARED),
    );
    refused(&m, "mmap(MAP_SHARED, r) of a writer", Errno::ENODEV, || {
        mmap(&w, libc::PROT_READ, libc::MAP_SHARED)
    });
    let before = store_listing(&m.store);
    close(w).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        store_listing(&m.store),
        before,
        "the writer committed nothing"
    );
    // A reader maps the committed version (read-only: full-mount reads
    // are passed through to the version's file, whose mappings the kernel
    // makes, shared ones too: mount_big).
    let r = open(&m.keys("x"), libc::O_RDONLY).unwrap();
    assert_eq!(
        mmap(&r, libc::PROT_READ, libc::MAP_PRIVATE).unwrap(),
        b"content"
    );
    refused(
        &m,
        "mmap(MAP_SHARED, rw) of a reader",
        Errno::EACCES,
        || mmap(&r, rw, libc::MAP_SHARED),
    );
}

#[test]
fn fallocate_and_directory_oddities_are_refused() {
    let m = fixture();
    let w = open(&m.keys("x"), libc::O_WRONLY).unwrap();
    refused(&m, "fallocate on a writer", Errno::EOPNOTSUPP, || {
        // SAFETY: a valid descriptor.
        Errno::result(unsafe { libc::fallocate(w.as_raw_fd(), 0, 0, 4096) })
    });
    close(w).unwrap();
    refused(&m, "rmdir keys", Errno::EPERM, || {
        std::fs::remove_dir(m.mnt.join("keys"))
    });
    refused(&m, "rmdir stale", Errno::EPERM, || {
        std::fs::remove_dir(m.mnt.join("stale"))
    });
    refused(&m, "rmdir keys/x", Errno::ENOTDIR, || {
        std::fs::remove_dir(m.keys("x"))
    });
    refused(&m, "rm .stats", Errno::EPERM, || {
        std::fs::remove_file(m.mnt.join(".stats"))
    });
    refused(&m, "rm keys (a directory)", Errno::EISDIR, || {
        std::fs::remove_file(m.mnt.join("keys"))
    });
    refused(&m, "rmdir tags/missing", Errno::ENOENT, || {
        std::fs::remove_dir(m.tag("missing"))
    });
    refused(&m, "rm keys/missing", Errno::ENOENT, || {
        std::fs::remove_file(m.keys("missing"))
    });
}
