//! `--max-size` and `--min-free` through real mounts: the bound holds at
//! every commit's return, whatever the writers; recency decides what goes.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use support::*;

const WRITE: i32 = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;

/// What is in use on a file system of its own (a tmpfs): one atomic figure,
/// where a walk of the store would race the writers it measures.
fn used_bytes(root: &Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(root).unwrap();
    (st.blocks() - st.blocks_free()) * st.fragment_size()
}

fn write_entry(path: &Path, len: usize) -> Result<(), Errno> {
    let f = open(path, WRITE)?;
    write_chunks(&f, &vec![b'v'; len], 65536)?;
    close(f)
}

#[test]
fn a_writer_storm_never_takes_the_store_past_its_bound() {
    let fs = Tmpfs::new("size=64m");
    let used = {
        let root = fs.path().to_path_buf();
        move || used_bytes(&root)
    };
    let bound = 8u64 << 20;
    let dir = tempfile::tempdir().unwrap();
    let m = Mount::on_store(
        dir,
        fs.path().join("store"),
        &["--max-size", "8M", "--cache-timeout", "0.2"],
    );
    // The ledger file and directories are not entries' bytes.
    let overhead = used();
    let peak = Arc::new(AtomicU64::new(0));
    let commits = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let (keys, peak, commits, used) = (
                m.mnt.join("keys"),
                peak.clone(),
                commits.clone(),
                used.clone(),
            );
            std::thread::spawn(move || {
                let mut rng = Rng::new(w + 1);
                for i in 0..60 {
                    let len = rng.range(1 << 10, 256 << 10) as usize;
                    write_entry(&keys.join(format!("w{w}-{i}")), len).expect("a commit that fits");
                    commits.fetch_add(1, Ordering::Relaxed);
                    // Measured once the commit returned.
                    peak.fetch_max(used() - overhead, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let peak = peak.load(Ordering::Relaxed);
    let stats = m.stats();
    eprintln!(
        "{} commits; the store's size peaked at {peak} bytes of {bound}; {} evictions for size, {} commits waited {:.3} s in all",
        commits.load(Ordering::Relaxed),
        stats["evictions_size"],
        stats["eviction_waits"],
        stats["eviction_wait_seconds"].as_f64().unwrap()
    );
    assert!(peak <= bound, "peaked at {peak}, bound {bound}");
    assert!(
        stats["evictions_size"].as_u64().unwrap() > 0,
        "nothing evicted: {stats}"
    );
    // Quiet now: the ledger is never below a walk of the store (a re-count
    // that ran beside the evictions may leave it above, never below).
    let ledger = stats["size_bytes"].as_u64().unwrap();
    assert!(ledger <= bound);
    let walked = store_size(&m.store);
    assert!(
        ledger >= walked,
        "the ledger says {ledger}, the store holds {walked}"
    );
}

#[test]
fn an_entry_larger_than_the_bound_fails_with_efbig_and_leaves_nothing() {
    let m = Mount::new(&["--max-size", "1M"]);
    write_entry(&m.keys("small"), 1000).unwrap();
    let f = open(&m.keys("big"), WRITE).unwrap();
    let wrote = write_chunks(&f, &vec![b'x'; 2 << 20], 65536);
    // A stream's size is known only as it grows: the write that passes the
    // bound fails (what was evicted for it on the way stays evicted).
    assert_eq!(wrote, Err(Errno::EFBIG));
    assert_eq!(close(f), Err(Errno::EFBIG));
    assert_eq!(errno(read(&m.keys("big"))), Errno::ENOENT);
    eventually(2.0, || tmp_files(&m.store, "w.").is_empty()).expect("no draft left");
    // Its reservation went back: the whole bound is there for the next.
    assert_eq!(
        m.stats()["size_bytes"].as_u64().unwrap(),
        store_size(&m.store)
    );
    write_entry(&m.keys("fits"), 900 << 10).unwrap();
    assert_eq!(
        read(&m.keys("fits")).map(|d| d.len()),
        Ok(900 << 10),
        "{}",
        m.log()
    );
}

/// Writes `prefix0..n` of `len` bytes.
fn fill(m: &Mount, prefix: &str, n: usize, len: usize) {
    for i in 0..n {
        write_entry(&m.keys(&format!("{prefix}{i}")), len).unwrap();
    }
}

#[test]
fn entries_read_often_survive_and_the_unread_go_first() {
    // 64 KiB entries, room for about 30.
    let m = Mount::with_fast_view(&["--max-size", "2M", "--cache-timeout", "1"]);
    fill(&m, "old", 20, 64 << 10);
    // Past the recency clock's resolution (the entry timeout), the hot
    // ones are read: half on the full mount, half on the fast view.
    std::thread::sleep(Duration::from_millis(1300));
    for i in 0..6 {
        let path = if i % 2 == 0 {
            m.keys(&format!("old{i}"))
        } else {
            m.fast_keys(&format!("old{i}"))
        };
        read(&path).unwrap();
    }
    // Entries just committed are never the victims: these must stay.
    fill(&m, "new", 20, 64 << 10);
    for i in 0..6 {
        assert!(
            read(&m.keys(&format!("old{i}"))).is_ok(),
            "hot old{i} was evicted"
        );
    }
    let newest: Vec<usize> = (10..20)
        .filter(|i| read(&m.keys(&format!("new{i}"))).is_err())
        .collect();
    assert!(newest.is_empty(), "just committed and evicted: {newest:?}");
    let cold_left = (6..20)
        .filter(|i| read(&m.keys(&format!("old{i}"))).is_ok())
        .count();
    eprintln!("cold entries left: {cold_left} of 14; hot: 6 of 6");
    assert!(cold_left < 14, "nothing cold was evicted");
}

#[test]
fn recency_survives_a_restart() {
    let mut m = Mount::new(&["--max-size", "2M", "--cache-timeout", "1"]);
    fill(&m, "old", 20, 64 << 10);
    std::thread::sleep(Duration::from_millis(1300));
    for i in 0..6 {
        read(&m.keys(&format!("old{i}"))).unwrap();
    }
    m.remount(&["--max-size", "2M", "--cache-timeout", "1"]);
    fill(&m, "new", 20, 64 << 10);
    for i in 0..6 {
        assert!(
            read(&m.keys(&format!("old{i}"))).is_ok(),
            "hot old{i} was evicted after a restart"
        );
    }
}

#[test]
fn two_daemons_on_one_store_hold_one_bound() {
    let bound = 4u64 << 20;
    let fs = Tmpfs::new("size=32m");
    let args = ["--max-size", "4M", "--cache-timeout", "0.2"];
    let store = fs.path().join("store");
    let a = Mount::on_store(tempfile::tempdir().unwrap(), store.clone(), &args);
    let b = Mount::on_store(tempfile::tempdir().unwrap(), store, &args);
    let overhead = used_bytes(fs.path());
    let peak = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = [a.mnt.join("keys"), b.mnt.join("keys")]
        .into_iter()
        .enumerate()
        .map(|(w, keys)| {
            let (root, peak) = (fs.path().to_path_buf(), peak.clone());
            std::thread::spawn(move || {
                for i in 0..60 {
                    write_entry(&keys.join(format!("d{w}-{i}")), 200 << 10).expect("fits");
                    peak.fetch_max(used_bytes(&root) - overhead, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let peak = peak.load(Ordering::Relaxed);
    eprintln!("two daemons: the store's size peaked at {peak} bytes of {bound}");
    assert!(peak <= bound, "peaked at {peak}, bound {bound}");
    let evicted = a.stats()["evictions_size"].as_u64().unwrap()
        + b.stats()["evictions_size"].as_u64().unwrap();
    assert!(evicted > 0);
}

#[test]
fn min_free_keeps_room_on_a_small_file_system() {
    let fs = Tmpfs::new("size=24m");
    let dir = tempfile::tempdir().unwrap();
    let store = fs.path().join("store");
    let m = Mount::on_store(dir, store, &["--min-free", "8M", "--cache-timeout", "0.2"]);
    let free = || {
        let st = nix::sys::statvfs::statvfs(fs.path()).unwrap();
        st.blocks_available() * st.fragment_size()
    };
    let mut lowest = u64::MAX;
    for i in 0..120 {
        write_entry(&m.keys(&format!("k{i}")), 256 << 10).expect("a commit that fits");
        lowest = lowest.min(free());
    }
    eprintln!("free space never below {lowest} bytes (wanted 8 MiB)");
    assert!(lowest >= 8 << 20, "free space fell to {lowest}");
    assert!(m.stats()["evictions_min_free"].as_u64().unwrap() > 0);
}

#[test]
fn cleanup_with_max_size_evicts_a_store_without_a_daemon() {
    let mut m = Mount::new(&[]);
    fill(&m, "k", 40, 64 << 10);
    m.unmount();
    let out = tool(&[
        "cleanup".as_ref(),
        m.store.as_os_str(),
        "--max-size".as_ref(),
        "1M".as_ref(),
        "--json".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["evicted"].as_u64().unwrap() > 0, "{report}");
    let size = store_size(&m.store);
    assert!(size <= 1 << 20, "{size} bytes left");
}
