//! Listings through a real mount: `ls keys/`, `ls tags/t/`, `find`, at
//! scale and while the store changes. A listing returns every name that
//! exists throughout it exactly once, or fails; it is never short.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::*;
use tagcachefs::store::{Commit, Store, Time};

/// Every name a listing of `dir` gave, with how many times.
fn listed(dir: &Path) -> Result<BTreeMap<Vec<u8>, usize>, Errno> {
    let mut seen = BTreeMap::new();
    for name in list_dir(dir)? {
        *seen.entry(name).or_insert(0) += 1;
    }
    Ok(seen)
}

/// Commits `count` entries `<prefix><i>` straight into the store (what a
/// commit through the mount writes), on two threads.
fn fill(store: &Path, prefix: &str, count: usize, tags: &[&str]) {
    let store = Arc::new(Store::open(store).unwrap());
    let tags: Arc<Vec<Vec<u8>>> = Arc::new(tags.iter().map(|t| t.as_bytes().to_vec()).collect());
    let threads: Vec<_> = (0..2)
        .map(|part| {
            let (store, tags, prefix) = (store.clone(), tags.clone(), prefix.to_string());
            std::thread::spawn(move || {
                use std::io::Write;
                for i in (part..count).step_by(2) {
                    let name = format!("{prefix}{i}");
                    let draft = store.new_draft().unwrap();
                    draft.file().write_all(name.as_bytes()).unwrap();
                    let c = Commit::fresh(name.as_bytes(), &tags, Time::NEVER, 0);
                    store.commit(draft, &c).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn ls_l_of_100k_entries_is_whole_on_both_mounts() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    fill(&store, "k", 100_000, &["t"]);
    let m = Mount::on_store(
        dir,
        store,
        &["--read-mount", "@fast", "--cache-timeout", "60"],
    );
    for (what, keys) in [
        ("full mount", m.mnt.join("keys")),
        ("fast view", m.fast.join("keys")),
    ] {
        let mut n = 0;
        for e in std::fs::read_dir(&keys).unwrap() {
            let e = e.unwrap();
            let md = std::fs::symlink_metadata(e.path()).unwrap();
            assert!(md.is_file(), "{what}: {:?}", e.path());
            n += 1;
        }
        assert_eq!(n, 100_000, "ls -l keys/ on the {what}");
    }
    let seen = listed(&m.mnt.join("tags/t")).unwrap();
    assert_eq!(seen.len(), 100_000, "ls tags/t/");
    assert!(seen.values().all(|&n| n == 1), "a name listed twice");
    let pid = daemon_pid(&m.store);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    assert!(
        fds < 64,
        "the daemon holds {fds} descriptors for 200,000 nodes"
    );
}

#[test]
fn find_counts_every_name_that_exists_throughout_once_while_a_writer_commits() {
    let m = Mount::new(&["--cache-timeout", "0.5"]);
    fill(&m.store, "stable", 3_000, &["t"]);
    let stop = Arc::new(AtomicBool::new(false));
    let (keys, flag) = (m.mnt.join("keys"), stop.clone());
    // New names come and others go while the listings run.
    let writer = std::thread::spawn(move || {
        let mut i = 0u64;
        while !flag.load(Ordering::SeqCst) {
            std::fs::write(keys.join(format!("new{i}")), b"n").unwrap();
            if i >= 20 {
                let _ = std::fs::remove_file(keys.join(format!("new{}", i - 20)));
            }
            i += 1;
        }
        i
    });
    let stable: BTreeSet<Vec<u8>> = (0..3_000)
        .map(|i| format!("stable{i}").into_bytes())
        .collect();
    for round in 0..5 {
        let out = std::process::Command::new("find")
            .arg(m.mnt.join("keys"))
            .args(["-type", "f"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "find failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut counts: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
        for line in out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let name = line.rsplit(|&b| b == b'/').next().unwrap().to_vec();
            *counts.entry(name).or_insert(0) += 1;
        }
        for name in &stable {
            assert_eq!(
                counts.get(name),
                Some(&1),
                "round {round}: {} listed {:?} times",
                String::from_utf8_lossy(name),
                counts.get(name)
            );
        }
        assert!(
            counts.values().all(|&n| n == 1),
            "round {round}: a name listed twice"
        );
        let tagged = listed(&m.tag("t")).unwrap();
        assert_eq!(tagged.len(), 3_000, "round {round}: ls tags/t/");
    }
    stop.store(true, Ordering::SeqCst);
    assert!(writer.join().unwrap() > 0, "the writer committed");
}

#[test]
fn a_tag_listing_is_whole_while_its_entries_are_recommitted_and_cleaned_up() {
    // Cleanup removes a tag's SS directories as they empty, during the
    // listings: a listing must skip them, not end (glibc reads an ENOENT
    // from getdents as the end of the directory).
    let m = Mount::new(&["--cache-timeout", "1", "--cleanup-interval", "1"]);
    for i in 0..4 {
        put(&m.keys(&format!("sentinel{i}")), b"s", "keep", 0);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (keys, flag) = (m.mnt.join("keys"), stop.clone());
    let churn = std::thread::spawn(move || {
        let mut n = 0;
        while !flag.load(Ordering::SeqCst) {
            for k in ["own0", "own1"] {
                put(&keys.join(k), &vec![b'x'; n % 5000], "keep", 0);
                n += 1;
            }
        }
    });
    let (store, flag) = (m.store.clone(), stop.clone());
    let cleaner = std::thread::spawn(move || {
        while !flag.load(Ordering::SeqCst) {
            cleanup_json(&store);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let end = Instant::now() + Duration::from_secs(3);
    let mut listings = 0;
    while Instant::now() < end {
        let names = listed(&m.tag("keep")).expect("listing tags/keep/");
        for i in 0..4 {
            let s = format!("sentinel{i}").into_bytes();
            assert_eq!(names.get(&s), Some(&1), "listing {listings}: {names:?}");
        }
        listings += 1;
    }
    stop.store(true, Ordering::SeqCst);
    churn.join().unwrap();
    cleaner.join().unwrap();
    assert!(listings > 50, "only {listings} listings ran");
}

#[test]
fn a_listing_counts_no_miss_for_stale_entries() {
    let m = Mount::new(&[]);
    for i in 0..20 {
        put(&m.keys(&format!("k{i}")), b"v", "t", 0);
    }
    for i in 0..10 {
        std::fs::remove_file(m.keys(&format!("k{i}"))).unwrap();
    }
    let misses = m.stats()["misses"].as_u64().unwrap();
    assert_eq!(names(&m.mnt.join("keys")).len(), 10);
    assert_eq!(names(&m.stale("")).len(), 10);
    assert_eq!(
        m.stats()["misses"].as_u64().unwrap(),
        misses,
        "ls counted misses"
    );
}
