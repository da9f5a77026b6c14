//! The store's unit tests: commits, versions, links and cleanup on a
//! store in a temporary directory, without a mount.

use std::io::{Read, Write};

use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn put(store: &Store, name: &str, content: &str, tags: &[&str], ttl: u64) -> Version {
    let draft = store.new_draft().unwrap();
    draft.file().write_all(content.as_bytes()).unwrap();
    let tags: Vec<Vec<u8>> = tags.iter().map(|t| t.as_bytes().to_vec()).collect();
    store
        .commit(
            draft,
            &Commit::fresh(name.as_bytes(), &tags, Time::after_ttl(ttl), ttl),
        )
        .unwrap()
}

fn read(store: &Store, name: &str) -> Option<String> {
    let mut v = store.open_live(name.as_bytes()).unwrap()?;
    let mut s = String::new();
    v.file.read_to_string(&mut s).unwrap();
    Some(s)
}

#[test]
fn commit_lays_out_the_seed_paths() {
    let (dir, store) = store();
    let v = put(&store, "blog-home", "<html>", &["blog-new", "bio"], 0);
    let key = dir.path().join("data/ae/08/key:626c6f672d686f6d65");
    let st = std::fs::metadata(&key).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::nlink(&st), 3);
    assert_eq!(std::os::unix::fs::MetadataExt::mtime(&st), 1 << 32);
    let (ss, link) = layout::tag_link(3, v.meta.ino);
    assert!(
        dir.path()
            .join(format!("data/18/ae/tag:62696f/{ss}/{link}"))
            .exists()
    );
    assert!(
        dir.path()
            .join(format!("data/37/64/tag:626c6f672d6e6577/{ss}/{link}"))
            .exists()
    );
    assert_eq!(read(&store, "blog-home").as_deref(), Some("<html>"));
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}

#[test]
fn invalidating_a_tag_kills_its_entries_only() {
    let (_dir, store) = store();
    put(&store, "a", "1", &["x", "y"], 0);
    put(&store, "b", "2", &["y"], 0);
    put(&store, "c", "3", &[], 0);
    assert!(store.invalidate_tag(b"x").unwrap());
    assert!(!store.invalidate_tag(b"x").unwrap());
    assert_eq!(read(&store, "a"), None);
    assert_eq!(read(&store, "b").as_deref(), Some("2"));
    assert_eq!(read(&store, "c").as_deref(), Some("3"));
    let stale = store.open_version(b"a").unwrap().unwrap();
    assert!(!stale.meta.is_live());
    let mut tagged = Vec::new();
    store
        .for_each_tagged(b"y", |v| tagged.push(v.meta.record.unwrap().name))
        .unwrap();
    assert_eq!(tagged, vec![b"b".to_vec()]);
}

#[test]
fn expiry_and_entry_invalidation() {
    let (_dir, store) = store();
    let v = put(&store, "a", "1", &[], 3600);
    assert!(v.meta.expiry.sec > Time::now().sec + 3500);
    assert_eq!(v.meta.ttl(), 3600);
    store.set_expiry(&v.file, Time::at(1000), None).unwrap();
    assert_eq!(read(&store, "a"), None);
    store.set_expiry(&v.file, Time::NEVER, Some(0)).unwrap();
    assert_eq!(read(&store, "a").as_deref(), Some("1"));
    assert!(store.invalidate_entry(b"a").unwrap());
    assert_eq!(read(&store, "a"), None);
    assert!(store.open_version(b"a").unwrap().is_some());
}

#[test]
fn retag_is_a_new_version_and_rename_keeps_the_inode() {
    let (_dir, store) = store();
    let v1 = put(&store, "a", "content", &["x"], 0);
    let v2 = store.retag(b"a", &[b"y".to_vec()]).unwrap();
    assert_ne!(v1.meta.ino, v2.meta.ino);
    assert_eq!(v2.meta.tags(), &[b"y".to_vec()]);
    assert!(!store.refresh(&v1.file).unwrap().is_live());
    store.invalidate_tag(b"x").unwrap();
    assert_eq!(read(&store, "a").as_deref(), Some("content"));
    let v3 = store.rename(b"a", b"b").unwrap();
    assert_eq!(v3.meta.ino, v2.meta.ino);
    assert_eq!(read(&store, "a"), None);
    assert_eq!(read(&store, "b").as_deref(), Some("content"));
    assert_eq!(v3.meta.record.unwrap().name, b"b");
}

#[test]
fn recommit_after_its_tag_was_removed_does_not_resurrect() {
    let (_dir, store) = store();
    put(&store, "a", "1", &["x"], 0);
    let old = store.open_live(b"a").unwrap().unwrap();
    store.invalidate_tag(b"x").unwrap();
    let draft = store.draft_from(&old).unwrap();
    let err = store
        .commit(
            draft,
            &Commit {
                name: b"a",
                tags: &[b"x".to_vec(), b"z".to_vec()],
                expiry: Time::NEVER,
                ttl: 0,
                carried: old.meta.tags(),
                replaces: Some(&old),
                held: &[],
            },
        )
        .unwrap_err();
    assert!(matches!(err, Error::Invalidated(_)), "{err}");
    assert_eq!(read(&store, "a"), None);
    assert!(!store.tag_exists(b"x").unwrap());
    assert!(matches!(store.retag(b"a", &[]), Err(Error::NoEntry(_))));
}

#[test]
fn single_flight_lock_excludes_and_releases() {
    let (_dir, store) = store();
    let lock = store.try_lock(b"a").unwrap().unwrap();
    assert!(store.try_lock(b"a").unwrap().is_none());
    assert!(store.try_lock(b"b").unwrap().is_some());
    drop(lock);
    assert!(store.try_lock(b"a").unwrap().is_some());
}

#[test]
fn cleanup_counts_what_it_removes() {
    let (dir, store) = store();
    put(&store, "live", "1", &["t"], 0);
    put(&store, "dead-tag", "22", &["gone", "t"], 0);
    let expired = put(&store, "expired", "333", &[], 0);
    store.set_expiry(&expired.file, Time::at(5), None).unwrap();
    store.create_tag(b"empty").unwrap();
    store.invalidate_tag(b"gone").unwrap();
    let held = store.new_draft().unwrap();
    let lock = store.try_lock(b"held").unwrap().unwrap();
    std::fs::write(dir.path().join("tmp/w.1.2.3"), "abandoned").unwrap();

    let report = store.cleanup().unwrap();
    assert_eq!(report.entries, 2);
    assert_eq!(report.bytes, 5);
    assert_eq!(report.tag_links, 1, "dead-tag's link in t");
    assert_eq!(report.tag_dirs, 1, "the empty tag");
    assert_eq!(
        report.tmp_files, 1,
        "the abandoned draft, not the held ones"
    );
    assert_eq!(read(&store, "live").as_deref(), Some("1"));
    assert!(store.open_version(b"expired").unwrap().is_none());
    assert!(store.tag_exists(b"t").unwrap());
    assert_eq!(store.cleanup().unwrap(), CleanupReport::default());
    drop((held, lock));
    let stats = store.stats().unwrap();
    assert_eq!((stats.entries, stats.bytes, stats.tags), (1, 1, 1));
}

#[test]
fn cleanup_of_a_seed_store_without_records() {
    let (dir, store) = store();
    // The seed's layout as another program writes it: no record xattr.
    let key = dir.path().join("data/ae/08");
    std::fs::create_dir_all(&key).unwrap();
    let key = key.join("key:626c6f672d686f6d65");
    std::fs::write(&key, "x").unwrap();
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&key).unwrap());
    for tag in ["18/ae/tag:62696f", "37/64/tag:626c6f672d6e6577"] {
        let (ss, link) = layout::tag_link(3, ino);
        let d = dir.path().join(format!("data/{tag}/{ss}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::hard_link(&key, d.join(link)).unwrap();
    }
    std::process::Command::new("touch")
        .arg("-d")
        .arg("@4294967296")
        .arg(&key)
        .status()
        .unwrap();
    assert_eq!(store.cleanup().unwrap().entries, 0);
    std::fs::remove_dir_all(dir.path().join("data/18/ae/tag:62696f")).unwrap();
    let report = store.cleanup().unwrap();
    assert_eq!((report.entries, report.tag_links), (1, 1));
    assert!(!key.exists());
}

#[test]
fn symlinks_in_the_store_are_never_followed() {
    let (dir, store) = store();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "secret").unwrap();
    let key = layout::key_path(b"evil");
    std::fs::create_dir_all(dir.path().join("data").join(&key.dir)).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret"),
        dir.path().join("data").join(key.path()),
    )
    .unwrap();
    assert!(store.open_version(b"evil").unwrap().is_none());
    // A fan-out directory that is a symlink is not entered either.
    let tag = layout::tag_path(b"t");
    let aa = &tag.dir[..2];
    if !dir.path().join("data").join(aa).exists() {
        std::os::unix::fs::symlink(outside.path(), dir.path().join("data").join(aa)).unwrap();
        assert!(store.tag_exists(b"t").is_ok_and(|e| !e));
        assert!(store.create_tag(b"t").is_err());
    }
    store.cleanup().unwrap();
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret")).unwrap(),
        "secret"
    );
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
}

#[test]
fn bad_names_are_typed_errors() {
    let (_dir, store) = store();
    assert!(matches!(
        store.open_version(&[b'a'; 126]),
        Err(Error::NameTooLong(126))
    ));
    assert!(matches!(
        store.open_version(b"a/b"),
        Err(Error::InvalidName(..))
    ));
    assert!(matches!(
        store.create_tag(b"a,b"),
        Err(Error::InvalidName(..))
    ));
}

#[test]
fn keeping_tags_links_into_the_held_directory_not_a_recreated_one() {
    let (_dir, store) = store();
    put(&store, "a", "old", &["t"], 0);
    let old = store.open_live(b"a").unwrap().unwrap();
    let held = store.hold_tag_dirs(&old).unwrap().unwrap();
    assert_eq!(held.len(), 1);
    store.invalidate_tag(b"t").unwrap();
    // Another entry's commit starts a new directory for t.
    put(&store, "b", "other", &["t"], 0);
    let draft = store.draft_from(&old).unwrap();
    let err = store
        .commit(
            draft,
            &Commit {
                name: b"a",
                tags: &[b"t".to_vec()],
                expiry: Time::NEVER,
                ttl: 0,
                carried: &[],
                replaces: None,
                held: &held,
            },
        )
        .unwrap_err();
    assert!(matches!(err, Error::Invalidated(_)), "{err}");
    assert_eq!(read(&store, "a"), None);
    assert_eq!(read(&store, "b").as_deref(), Some("other"));
    // A version that lost its tag has no directories to hold.
    assert!(store.hold_tag_dirs(&old).unwrap().is_none());
}

#[test]
fn records_round_trip_and_stay_small() {
    let r = super::Record {
        name: b"blog-home".to_vec(),
        tags: vec![b"bio".to_vec(), b"blog-new".to_vec()],
        ttl: 604_800,
        ver: 0x0123_4567_89ab_cdef,
        len: Some(4096),
        head: 0,
    };
    let bytes = r.encode();
    assert!(bytes.len() <= 40, "{} bytes", bytes.len());
    assert_eq!(super::Record::decode(&bytes), Some(r.clone()));
    let none = super::Record {
        len: None,
        ..r.clone()
    };
    assert_eq!(super::Record::decode(&none.encode()), Some(none));
    // With the content's start (the tagcache library's format).
    let headed = super::Record { head: 512, ..r };
    assert_eq!(super::Record::decode(&headed.encode()), Some(headed));
    // The text form of earlier versions still reads.
    let old = b"ttl=0\nname=626c6f67\ntags=62696f\n";
    let got = super::Record::decode(old).unwrap();
    assert_eq!(
        (got.name, got.tags, got.ver),
        (b"blog".to_vec(), vec![b"bio".to_vec()], 0)
    );
    assert_eq!(super::Record::decode(b"\x01short"), None);
}

#[test]
fn estale_from_a_network_file_system_reads_as_absent() {
    // GlusterFS answers ESTALE for a directory another client removed.
    assert!(is_absent(&std::io::Error::from_raw_os_error(libc::ESTALE)));
    assert!(is_absent(&std::io::Error::from_raw_os_error(libc::ENOENT)));
    assert!(!is_absent(&std::io::Error::from_raw_os_error(libc::EIO)));
}
