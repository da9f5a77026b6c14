//! `put/`: tags and TTL in the path, for languages without xattrs. Every
//! write through it is exactly a write of `keys/NAME` with `user.expire`
//! and `user.tags` set on the descriptor before any data.

mod support;

use std::time::Duration;

use support::*;

const WRITE: i32 = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
const EXCL: i32 = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;

fn write_through(path: &std::path::Path, flags: i32, data: &[u8]) -> Result<(), Errno> {
    let f = open(path, flags)?;
    write_fd(&f, data)?;
    close(f)
}

#[test]
fn put_with_both_parameters_in_either_order_sets_tags_and_expiry() {
    let m = Mount::new(&[]);
    let put = m.mnt.join("put");
    write_through(
        &put.join("expire=3600/tags=blog-new,bio/blog-home"),
        WRITE,
        b"home",
    )
    .unwrap();
    write_through(&put.join("tags=bio/expire=60/about"), WRITE, b"about").unwrap();
    assert_eq!(read(&m.keys("blog-home")).unwrap(), b"home");
    assert_eq!(tags_of(&m.keys("blog-home")), "bio,blog-new");
    assert!((3590..=3600).contains(&expire_of(&m.keys("blog-home"))));
    assert_eq!(tags_of(&m.keys("about")), "bio");
    assert!((50..=60).contains(&expire_of(&m.keys("about"))));
    assert_eq!(names(&m.tag("bio")), ["about", "blog-home"]);
    assert_eq!(names(&m.tag("blog-new")), ["blog-home"]);
}

#[test]
fn put_with_one_or_no_parameter_is_a_plain_write() {
    let m = Mount::new(&["--default-expire", "100"]);
    let put = m.mnt.join("put");
    write_through(&put.join("plain"), WRITE, b"p").unwrap();
    assert_eq!(tags_of(&m.keys("plain")), "");
    assert!(
        (90..=100).contains(&expire_of(&m.keys("plain"))),
        "--default-expire applies"
    );
    write_through(&put.join("tags=t/tagged"), WRITE, b"t").unwrap();
    assert!((90..=100).contains(&expire_of(&m.keys("tagged"))));
    write_through(&put.join("expire=0/forever"), WRITE, b"f").unwrap();
    assert_eq!(expire_of(&m.keys("forever")), 0, "0 = never");
    write_through(&put.join("tags=/untagged"), WRITE, b"u").unwrap();
    assert_eq!(tags_of(&m.keys("untagged")), "", "an empty list means none");
    // A name may hold '=' (but not start with a parameter).
    write_through(&put.join("tags=t/a=b"), WRITE, b"eq").unwrap();
    assert_eq!(read(&m.keys("a=b")).unwrap(), b"eq");
}

#[test]
fn an_overwrite_through_put_keeps_what_it_does_not_set_as_keys_does() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"one", "a,b", 600);
    write_through(&m.mnt.join("put/x"), WRITE, b"two").unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"two");
    assert_eq!(tags_of(&m.keys("x")), "a,b", "tags kept");
    assert!((590..=600).contains(&expire_of(&m.keys("x"))), "TTL kept");
    // Appending continues the committed content.
    write_through(
        &m.mnt.join("put/tags=c/x"),
        libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND,
        b"+",
    )
    .unwrap();
    assert_eq!(read(&m.keys("x")).unwrap(), b"two+");
    assert_eq!(tags_of(&m.keys("x")), "c");
}

#[test]
fn malformed_repeated_or_misplaced_parameters_are_refused_and_nothing_is_created() {
    let m = Mount::new(&[]);
    let before = store_listing(&m.store);
    let put = m.mnt.join("put");
    for bad in [
        "expire=soon/x",
        "expire=-1/x",
        "expire=99999999999/x",
        "tags=a b/x",
        "tags=a/tags=b/x",
        "expire=1/expire=2/x",
    ] {
        assert_eq!(
            write_through(&put.join(bad), WRITE, b"v"),
            Err(Errno::EINVAL),
            "{bad}"
        );
    }
    // A name is not a directory to walk through.
    assert_eq!(
        write_through(&put.join("color=red/x"), WRITE, b"v"),
        Err(Errno::ENOENT)
    );
    assert_eq!(store_listing(&m.store), before, "nothing created");
    assert_eq!(errno(read(&m.keys("x"))), Errno::ENOENT);
}

#[test]
fn put_lists_empty_stats_as_directories_and_refuses_everything_else() {
    let m = Mount::with_fast_view(&[]);
    let put = m.mnt.join("put");
    write_through(&put.join("tags=t/x"), WRITE, b"v").unwrap();
    assert!(names(&put).is_empty());
    assert!(names(&put.join("tags=t")).is_empty());
    assert!(
        std::fs::metadata(put.join("expire=5/tags=t"))
            .unwrap()
            .is_dir()
    );
    assert_eq!(errno(read(&put.join("x"))), Errno::ENOENT, "write-only");
    assert_eq!(errno(mkdir(&put.join("d"))), Errno::EPERM);
    assert_eq!(
        errno(unlink(&put.join("x"))),
        Errno::ENOENT,
        "nothing is there"
    );
    assert_eq!(errno(rmdir(&put.join("tags=t"))), Errno::EPERM);
    assert!(names(&m.mnt).contains(&"put".to_string()));
    assert!(!m.fast.join("put").exists(), "the full mount only");
}

#[test]
fn o_excl_through_put_takes_the_same_single_flight_lock_as_keys() {
    let m = Mount::new(&[]);
    let holder = open(&m.mnt.join("put/tags=t/x"), EXCL).unwrap();
    assert_eq!(excl_open_in_child(&m.keys("x")), Err(Errno::EEXIST));
    assert_eq!(
        excl_open_in_child(&m.mnt.join("put/expire=5/x")),
        Err(Errno::EEXIST)
    );
    // Closing without a write gives it up: nothing committed.
    close(holder).unwrap();
    eventually(2.0, || excl_open_in_child(&m.keys("x")).is_ok()).expect("the lock freed");
    assert_eq!(errno(read(&m.keys("x"))), Errno::ENOENT);
    // Live: EEXIST through put/ too.
    put(&m.keys("y"), b"v", "", 0);
    assert_eq!(
        errno(open(&m.mnt.join("put/tags=t/y"), EXCL)),
        Errno::EEXIST
    );
}

#[test]
fn bash_redirects_through_put_never_publish_an_empty_version() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"old", "t", 0);
    let path = m.mnt.join("put/tags=t/x");
    let script = format!(
        "for i in $(seq 1 30); do echo \"content $i\" > '{}'; done",
        path.display()
    );
    let mut shell = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .spawn()
        .unwrap();
    let mut seen_empty = 0;
    while shell.try_wait().unwrap().is_none() {
        if read(&m.keys("x")).is_ok_and(|b| b.is_empty()) {
            seen_empty += 1;
        }
    }
    assert!(shell.wait().unwrap().success());
    assert_eq!(seen_empty, 0, "an empty version was visible");
    assert_eq!(read(&m.keys("x")).unwrap(), b"content 30\n");
    assert_eq!(tags_of(&m.keys("x")), "t");
}

#[test]
fn an_rmdir_racing_a_put_write_never_leaves_the_new_content_untagged() {
    let m = Mount::new(&[]);
    for round in 0..30 {
        let name = format!("k{round}");
        let f = open(&m.mnt.join(format!("put/tags=t/{name}")), WRITE).unwrap();
        write_fd(&f, b"new").unwrap();
        let tag = m.tag("t");
        let remover = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_micros(200 * round));
            let _ = rmdir(&tag);
        });
        close(f).unwrap();
        remover.join().unwrap();
        // Either the commit came first and the rmdir invalidated it, or the
        // rmdir came first and the commit made t again, linked in it.
        match read(&m.keys(&name)) {
            Ok(b) => {
                assert_eq!(b, b"new");
                assert_eq!(tags_of(&m.keys(&name)), "t");
                assert!(names(&m.tag("t")).contains(&name), "round {round}");
            }
            Err(e) => assert_eq!(e, Errno::ENOENT, "round {round}"),
        }
    }
}
