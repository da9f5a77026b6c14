//! The store is opened relative to its directory and links in it are never
//! followed (SPEC §4, README "The store on disk").
//!
//! Symlinks planted in the store — a fan-out directory, key files (one
//! live-looking, one expired), a tag directory, an `SS` directory inside a
//! real tag, drafts, lock files, a removed-tag directory and a reaped entry
//! in tmp/ — each pointing outside the store, then the mount is used on
//! them (reads, listings, stale/, writes, rm, rmdir, O_EXCL, xattrs,
//! .stats), `tagcachefs cleanup` and `stats` run, and the store is mounted
//! again (its first sweep). Nothing outside the store changes, nothing
//! outside is ever served, and files in the store that the layout does not
//! name stay where they are. A store whose `data/` or `tmp/` is itself a
//! symlink is refused or kept inside.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use support::*;
use tagcachefs::store::layout;

/// Everything under `root`, links not followed: path → (kind, size, mtime,
/// mode, nlink, content).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let what = if ft.is_symlink() {
                format!("symlink -> {}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_dir() {
                "dir".to_string()
            } else {
                format!(
                    "file {:?}",
                    String::from_utf8_lossy(&std::fs::read(&p).unwrap())
                )
            };
            out.insert(
                p.strip_prefix(root).unwrap().to_path_buf(),
                format!(
                    "{what} size {} mtime {} mode {:o} nlink {}",
                    md.len(),
                    md.mtime(),
                    md.mode(),
                    md.nlink()
                ),
            );
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn data_path(store: &Path, rel: &str) -> PathBuf {
    store.join("data").join(rel)
}

/// Plants `link` → `target`, making the directories above it.
fn plant(link: &Path, target: &Path) {
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    assert!(
        std::fs::symlink_metadata(link).is_err(),
        "{} exists already; pick another name",
        link.display()
    );
    symlink(target, link).unwrap();
}

#[test]
fn symlinks_planted_in_the_store_are_never_followed() {
    let mut m = Mount::new(&["--cache-timeout", "0.2"]);
    let store = m.store.clone();
    let outside = m.dir.path().join("outside");

    // Outside: files an escape would serve, change or remove.
    write(&outside.join("secret.txt"), "SECRET");
    set_mtime(&outside.join("secret.txt"), 1 << 32).unwrap(); // looks like a live entry
    write(&outside.join("expired.txt"), "EXPIRED-OUTSIDE");
    set_mtime(&outside.join("expired.txt"), 1000).unwrap(); // looks expired: cleanup prey
    let fan = layout::OURS.key_path(b"fan");
    let fan_bb = fan.dir.split('/').nth(1).unwrap().to_string();
    write(
        &outside.join("fanout").join(&fan_bb).join(&fan.file),
        "OUTSIDE-FAN",
    );
    set_mtime(
        &outside.join("fanout").join(&fan_bb).join(&fan.file),
        1 << 32,
    )
    .unwrap();
    write(&outside.join("tagdir/99/2:99"), "DEAD-LOOKING LINK"); // nlink 1 ≠ 2
    write(&outside.join("ssdir/2:12345"), "DEAD-LOOKING LINK 2");
    write(&outside.join("draft.txt"), "DRAFT-OUTSIDE");
    write(&outside.join("lockfile"), "LOCK-OUTSIDE");
    write(&outside.join("deaddir/file"), "IN A DEAD DIR");
    write(&outside.join("reap.txt"), "REAP-OUTSIDE");
    let before = snapshot(&outside);

    // A real entry and a real tag, to prove the mount works around the
    // planted links.
    put(&m.keys("real"), b"real content", "treal", 0);

    // Links in data/.
    let fan_aa = fan.dir.split('/').next().unwrap();
    plant(&data_path(&store, fan_aa), &outside.join("fanout"));
    for (name, target) in [("keylink", "secret.txt"), ("keyexp", "expired.txt")] {
        let k = layout::OURS.key_path(name.as_bytes());
        plant(&data_path(&store, &k.path()), &outside.join(target));
    }
    let tl = layout::OURS.tag_path(b"tlink");
    plant(&data_path(&store, &tl.path()), &outside.join("tagdir"));
    let treal = layout::OURS.tag_path(b"treal");
    plant(
        &data_path(&store, &format!("{}/zz", treal.path())),
        &outside.join("ssdir"),
    );
    // Links in tmp/ under every prefix cleanup owns.
    let tmp = store.join("tmp");
    plant(&tmp.join("w.evil"), &outside.join("draft.txt"));
    plant(
        &tmp.join(layout::lock_file(b"locked")),
        &outside.join("lockfile"),
    );
    plant(
        &tmp.join(layout::lock_file(b"locked2")),
        &outside.join("newlock"),
    );
    plant(&tmp.join("dead.evil"), &outside.join("deaddir"));
    plant(&tmp.join("reap.evil"), &outside.join("reap.txt"));
    // Foreign files the layout does not name.
    write(&store.join("notes.txt"), "FOREIGN ROOT");
    write(&store.join("data/README"), "FOREIGN DATA");
    write(&store.join("data/zz/file"), "FOREIGN NON-FANOUT");
    write(
        &data_path(
            &store,
            &format!("{}/foo.txt", layout::OURS.key_path(b"real").dir),
        ),
        "FOREIGN IN BUCKET",
    );
    write(&tmp.join("foreign.txt"), "FOREIGN TMP");
    let foreign = [
        "notes.txt",
        "data/README",
        "data/zz/file",
        "tmp/foreign.txt",
    ];

    let mut problems = Vec::new();
    let mut check = |what: &str, ok: bool, detail: String| {
        if !ok {
            problems.push(format!("{what}: {detail}"));
        }
    };

    // Reads and listings never serve what is outside.
    for name in ["fan", "keylink", "keyexp"] {
        let r = std::fs::read(m.keys(name));
        check(
            &format!("read keys/{name}"),
            outcome(r.as_ref()) == Err(Errno::ENOENT),
            format!("{r:?}"),
        );
        let r = std::fs::read(m.stale(name));
        check(
            &format!("read stale/{name}"),
            outcome(r.as_ref()) == Err(Errno::ENOENT),
            format!("{r:?}"),
        );
        let r = get_xattr(&m.keys(name), b"user.tags");
        check(
            &format!("getxattr keys/{name}"),
            r == Err(Errno::ENOENT),
            format!("{r:?}"),
        );
        let r = set_xattr(&m.keys(name), b"user.expire", b"100");
        check(
            &format!("setxattr keys/{name}"),
            r == Err(Errno::ENOENT),
            format!("{r:?}"),
        );
        let r = unlink(&m.keys(name));
        check(
            &format!("rm keys/{name}"),
            r == Err(Errno::ENOENT),
            format!("{r:?}"),
        );
    }
    for dir in ["keys", "stale"] {
        match list_dir(&m.mnt.join(dir)) {
            Ok(names) => {
                for n in ["fan", "keylink", "keyexp"] {
                    check(
                        &format!("ls {dir}/"),
                        !names.contains(&n.as_bytes().to_vec()),
                        format!("lists {n}: {names:?}"),
                    );
                }
            }
            Err(e) => check(&format!("ls {dir}/"), false, format!("{e:?}")),
        }
    }
    check(
        "read keys/real",
        std::fs::read(m.keys("real")).ok().as_deref() == Some(&b"real content"[..]),
        "".into(),
    );
    match list_dir(&m.tag("treal")) {
        Ok(names) => check(
            "ls tags/treal/",
            names == [b"real".to_vec()],
            format!("{names:?}"),
        ),
        Err(e) => check("ls tags/treal/", false, format!("{e:?}")),
    }
    let r = list_dir(&m.tag("tlink"));
    check(
        "ls tags/tlink/ lists nothing from outside",
        r.as_ref().map_or(true, |n| n.is_empty()),
        format!("{r:?}"),
    );

    // Writes: a commit onto a symlinked key replaces the link, not its target.
    put(&m.keys("keylink"), b"new through the mount", "", 0);
    check(
        "keys/keylink after a write",
        std::fs::read(m.keys("keylink")).ok().as_deref() == Some(&b"new through the mount"[..]),
        "".into(),
    );
    let kl = data_path(&store, &layout::OURS.key_path(b"keylink").path());
    check(
        "the key path is a file now",
        std::fs::symlink_metadata(&kl).is_ok_and(|md| md.is_file()),
        "".into(),
    );
    // A commit with a symlinked tag directory must not link into it.
    let f = open(
        &m.keys("usetl"),
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
    )
    .unwrap();
    set_xattr_fd(&f, "user.tags", b"tlink").unwrap();
    write_chunks(&f, b"tagged tlink", 4096).unwrap();
    let closed = close(f);
    eprintln!("commit with a symlinked tag directory: close() -> {closed:?}");
    let r = rmdir(&m.tag("tlink"));
    eprintln!("rmdir of a symlinked tag directory -> {r:?}");
    // O_EXCL with a symlinked lock file: never creates or truncates the target.
    for name in ["locked", "locked2"] {
        let r = open(&m.keys(name), libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL);
        eprintln!(
            "O_EXCL keys/{name} with a symlinked lock file -> {:?}",
            r.as_ref().map(drop)
        );
        if let Ok(f) = r {
            let _ = close(f);
        }
    }
    std::fs::read(m.mnt.join(".stats")).expect(".stats");

    // The command-line tools, twice, and the mount's first sweep.
    let stats = tool(&["stats".as_ref(), store.as_os_str(), "--json".as_ref()]);
    check(
        "tagcachefs stats STORE",
        stats.status.success(),
        String::from_utf8_lossy(&stats.stderr).into_owned(),
    );
    let first = cleanup_json(&store);
    let second = cleanup_json(&store);
    eprintln!("cleanup with planted links: {first}, then {second}");
    check(
        "a second cleanup removes nothing (counts are what was removed)",
        removed_total(&second) == 0,
        format!(
            "first {first}, second {second}; tmp/ now {:?}",
            tmp_files(&store, "")
        ),
    );
    m.remount(&["--cache-timeout", "0.2"]);
    let _ = cleanup_json(&store);
    check(
        "read keys/real after all that",
        std::fs::read(m.keys("real")).ok().as_deref() == Some(&b"real content"[..]),
        "".into(),
    );

    // Outside: exactly as before. Foreign files: where they were.
    let after = snapshot(&outside);
    for (path, was) in &before {
        match after.get(path) {
            Some(now) if now == was => {}
            now => check(
                &format!("outside/{}", path.display()),
                false,
                format!("was {was}, now {now:?}"),
            ),
        }
    }
    for (path, now) in &after {
        if !before.contains_key(path) {
            check(
                &format!("outside/{}", path.display()),
                false,
                format!("appeared: {now}"),
            );
        }
    }
    for f in foreign {
        check(
            &format!("foreign file {f}"),
            store.join(f).is_file(),
            "was removed".into(),
        );
    }
    let log = m.log();
    check(
        "daemon log",
        panics_in(&log).is_empty(),
        format!("{:?}", panics_in(&log)),
    );
    drop(m);
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// `data/` or `tmp/` of a store being a symlink: the mount refuses it or
/// keeps everything inside the store directory.
#[test]
fn a_store_whose_data_or_tmp_is_a_symlink_keeps_nothing_outside() {
    for sub in ["data", "tmp"] {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o755)).unwrap();
        let store = dir.path().join("store");
        std::fs::create_dir_all(&store).unwrap();
        symlink(&outside, store.join(sub)).unwrap();
        let probe = dir.path().join("probe");
        std::fs::create_dir_all(&probe).unwrap();
        let out = std::process::Command::new(BIN)
            .arg(&store)
            .arg(&probe)
            .args(["--cleanup-interval", "0"])
            .output()
            .unwrap();
        unmount(&probe);
        eprintln!(
            "store with {sub}/ a symlink: mount {} {}",
            if out.status.success() {
                "succeeded"
            } else {
                "refused:"
            },
            String::from_utf8_lossy(&out.stderr).trim()
        );
        if out.status.success() {
            // It mounts: a write and a cleanup must stay inside the store.
            let m = Mount::on_store(dir, store.clone(), &["--cleanup-interval", "0"]);
            if let Ok(f) = open(&m.keys("x"), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) {
                let _ = write_chunks(&f, b"inside?", 4096);
                let _ = close(f);
            }
            let _ = tool(&["cleanup".as_ref(), store.as_os_str()]);
            let left: Vec<_> = std::fs::read_dir(&outside)
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .collect();
            drop(m);
            assert!(
                left.is_empty(),
                "a store whose {sub}/ is a symlink wrote outside it: {left:?}"
            );
        } else {
            let _ = tool(&["cleanup".as_ref(), store.as_os_str()]);
            let left: Vec<_> = std::fs::read_dir(&outside)
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .collect();
            assert!(
                left.is_empty(),
                "a refused store whose {sub}/ is a symlink had things written outside it: {left:?}"
            );
        }
    }
}
