//! A soak: commits (through keys/ and put/), hits on both mounts, retags,
//! rmdirs, listings, cleanups and a remount, for a while. The daemon's
//! descriptors come back to where they started, its kernel nodes stay
//! within --max-nodes, nothing but the expected errnos is seen, and no
//! draft or lock is left at the end. Its RSS, descriptors and nodes are
//! reported (start, peak, end of each daemon's life).
//!
//! 15 s in CI; `TAGCACHEFS_LONG=1` 120 s; `TAGCACHEFS_SOAK_SECS=N` any
//! (scripts/soak runs 600).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::*;

const ARGS: &[&str] = &[
    "--read-mount",
    "@fast",
    "--cache-timeout",
    "0.5",
    "--max-nodes",
    "2000",
];

fn secs() -> u64 {
    amount("TAGCACHEFS_SOAK_SECS", 15, 120)
}

#[derive(Debug, Default, Clone, Copy)]
struct Sample {
    rss_kib: u64,
    fds: u64,
    nodes: u64,
}

fn sample(m: &Mount) -> Sample {
    let pid = daemon_pid(&m.store);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    let nodes = m.stats()["kernel_nodes"].as_u64().unwrap_or(0);
    Sample {
        rss_kib,
        fds,
        nodes,
    }
}

/// Start, peak and end of one daemon's life.
#[derive(Debug, Default)]
struct Life {
    start: Sample,
    peak: Sample,
    end: Sample,
}

impl Life {
    fn see(&mut self, s: Sample) {
        self.peak.rss_kib = self.peak.rss_kib.max(s.rss_kib);
        self.peak.fds = self.peak.fds.max(s.fds);
        self.peak.nodes = self.peak.nodes.max(s.nodes);
        self.end = s;
    }
}

const KEYS: u64 = 300;
const TAGS: &[&str] = &["a", "b", "c"];

#[test]
fn a_mixed_workload_leaves_nothing_behind_and_stays_within_its_bounds() {
    let secs = secs();
    let mut m = Mount::new(ARGS);
    let errors: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let ops = Arc::new(AtomicU64::new(0));
    let mut lives = Vec::new();
    let halves = [secs / 2, secs - secs / 2];
    for (half, run) in halves.iter().enumerate() {
        if half == 1 {
            m.remount(ARGS);
            // The old daemon is still ending for a moment.
            eventually(5.0, || daemon_pids(&m.store).len() == 1).expect("one daemon");
        }
        let mut life = Life {
            start: sample(&m),
            ..Life::default()
        };
        life.see(life.start);
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for worker in 0..4u64 {
            let (mnt, fast, stop, errors, ops) = (
                m.mnt.clone(),
                m.fast.clone(),
                stop.clone(),
                errors.clone(),
                ops.clone(),
            );
            workers.push(std::thread::spawn(move || {
                let mut rng = Rng::new(worker * 7919 + half as u64);
                while !stop.load(Ordering::SeqCst) {
                    let key = format!("k{}", rng.below(KEYS));
                    let tag = *rng.pick(TAGS);
                    let r: Result<(), Errno> = match rng.below(10) {
                        0 | 1 => {
                            let f = open(
                                &mnt.join("put").join(format!("tags={tag}")).join(&key),
                                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
                            );
                            f.and_then(|f| {
                                write_fd(&f, &vec![b'v'; rng.range(1, 9000) as usize])
                                    .and_then(|_| close(f))
                            })
                        }
                        2 => {
                            let f = open(
                                &mnt.join("keys").join(&key),
                                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
                            );
                            f.and_then(|f| write_fd(&f, b"plain").and_then(|_| close(f)))
                        }
                        3 | 4 => read(&fast.join("keys").join(&key)).map(drop),
                        5 => read(&mnt.join("keys").join(&key)).map(drop),
                        6 => set_xattr(&mnt.join("keys").join(&key), "user.tags", tag.as_bytes()),
                        7 => rmdir(&mnt.join("tags").join(tag)),
                        8 => list_dir(&mnt.join("tags").join(tag)).map(drop),
                        _ => list_dir(&fast.join("keys")).map(drop),
                    };
                    match r {
                        Ok(()) => {}
                        // Absent, invalidated under a retag or a commit.
                        Err(Errno::ENOENT | Errno::ESTALE) => {}
                        Err(e) => errors.lock().unwrap().push(format!("{e}")),
                    }
                    ops.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        let (store, stop_c) = (m.store.clone(), stop.clone());
        let cleaner = std::thread::spawn(move || {
            while !stop_c.load(Ordering::SeqCst) {
                cleanup_json(&store);
                std::thread::sleep(Duration::from_millis(700));
            }
        });
        let end = Instant::now() + Duration::from_secs(*run);
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(500));
            life.see(sample(&m));
        }
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            w.join().unwrap();
        }
        cleaner.join().unwrap();
        // Every handle closes (RELEASE comes after close() returns); what
        // the daemon may keep open then is bounded whatever the number of
        // nodes: the read pools and the replaced versions pinned for nodes.
        let bound = life.start.fds + 2 * (32 + 128);
        eventually(5.0, || sample(&m).fds <= bound).unwrap_or_else(|_| {
            panic!(
                "descriptors: {} at the end, {} at the start, bound {bound}",
                sample(&m).fds,
                life.start.fds
            )
        });
        life.see(sample(&m));
        lives.push(life);
    }
    for (i, life) in lives.iter().enumerate() {
        eprintln!(
            "daemon {i}: RSS {} / {} / {} KiB, descriptors {} / {} / {}, kernel nodes {} / {} / {} (start / peak / end)",
            life.start.rss_kib,
            life.peak.rss_kib,
            life.end.rss_kib,
            life.start.fds,
            life.peak.fds,
            life.end.fds,
            life.start.nodes,
            life.peak.nodes,
            life.end.nodes
        );
        // --max-nodes 2000 bounds the entry nodes (plus a few directories;
        // a listing may overshoot until the next round of shedding).
        assert!(
            life.peak.nodes < 2000 + 700,
            "kernel nodes peaked at {}",
            life.peak.nodes
        );
    }
    eprintln!("{} operations in {secs} s", ops.load(Ordering::Relaxed));
    let errors = errors.lock().unwrap();
    assert!(
        errors.is_empty(),
        "unexpected errors: {:?}",
        &errors[..errors.len().min(20)]
    );
    cleanup_json(&m.store);
    let leaked: Vec<String> = ["w.", "lock:", "reap.", "dead."]
        .iter()
        .flat_map(|p| tmp_files(&m.store, p))
        .collect();
    assert!(leaked.is_empty(), "left in tmp/: {leaked:?}");
    assert!(panics_in(&m.log()).is_empty(), "the daemon panicked");
}
