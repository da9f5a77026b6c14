//! What `.stats` shows: counters of what the daemon answered. Hits on the
//! fast view never reach the daemon, so they are not counted.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Fs;

#[derive(Debug, Default)]
pub struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub commits: AtomicU64,
    pub commit_errors: AtomicU64,
    pub invalidations: AtomicU64,
    pub stale_reads: AtomicU64,
    /// Read opens the kernel serves from the version's file itself.
    pub passthrough_opens: AtomicU64,
    pub errors: AtomicU64,
    pub bytes_written: AtomicU64,
    /// Versions found not to be their committed length (never served).
    pub torn: AtomicU64,
    /// Failed requests (faults, not refusals of bad input), by operation.
    pub errors_by_op: Mutex<BTreeMap<&'static str, u64>>,
    /// Failed commits by errno name.
    pub commit_errors_by_errno: Mutex<BTreeMap<String, u64>>,
    /// When the last cleanup of the mount's own ended well (Unix time), and
    /// how long it took, in nanoseconds.
    pub last_cleanup_end: AtomicU64,
    pub last_cleanup_ns: AtomicU64,
}

impl Counters {
    pub fn count_commit_error(&self, errno: i32) {
        let name = format!("{:?}", nix::errno::Errno::from_raw(errno));
        *self
            .commit_errors_by_errno
            .lock()
            .unwrap()
            .entry(name)
            .or_default() += 1;
    }

    /// A cleanup of the mount's own ended well after `took`.
    pub fn cleanup_done(&self, took: std::time::Duration) {
        let now = crate::store::Time::now().sec.max(0) as u64;
        self.last_cleanup_end.store(now, Ordering::Relaxed);
        self.last_cleanup_ns
            .store(took.as_nanos() as u64, Ordering::Relaxed);
    }
}

pub(super) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Fs {
    /// A version of `name` that is not its committed length was found: it
    /// is never served; counted each time, logged once.
    pub(super) fn note_torn(&self, name: &[u8], meta: &crate::store::Meta) {
        bump(&self.counters.torn);
        let mut seen = self.torn_seen.lock().unwrap();
        if seen.len() > 4096 {
            seen.clear();
        }
        if seen.insert((meta.ino, meta.ver)) {
            let len = meta.record.as_ref().and_then(|r| r.len).unwrap_or(0);
            log::warn!(
                "{}: {} bytes on disk, {len} committed (a power loss?): never served, cleanup reclaims it",
                crate::store::layout::lossy(name),
                meta.size
            );
        }
    }

    /// Counts a request (operation `op`) that failed for a reason other
    /// than bad input.
    pub fn count_error(&self, op: &'static str) {
        bump(&self.counters.errors);
        *self
            .counters
            .errors_by_op
            .lock()
            .unwrap()
            .entry(op)
            .or_default() += 1;
    }

    /// `.stats` as JSON.
    pub fn stats_json(&self) -> String {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (hits, misses) = (get(&c.hits), get(&c.misses));
        let ratio = if hits + misses > 0 {
            hits as f64 / (hits + misses) as f64
        } else {
            0.0
        };
        let nodes: usize = self
            .mounts
            .iter()
            .map(|m| m.nodes.lock().unwrap().len())
            .sum();
        let pinned: usize = self
            .mounts
            .iter()
            .map(|m| m.nodes.lock().unwrap().pinned_count())
            .sum();
        let e = self.store.evictions();
        let size = self.store.size_figures();
        let value = serde_json::json!({
            "store": self.store.path(),
            "hits": hits,
            "misses": misses,
            "hit_ratio": ratio,
            "commits": get(&c.commits),
            "commit_errors": get(&c.commit_errors),
            "commit_errors_by_errno": *c.commit_errors_by_errno.lock().unwrap(),
            "errors_by_op": *c.errors_by_op.lock().unwrap(),
            "last_cleanup_unixtime": get(&c.last_cleanup_end),
            "last_cleanup_seconds": get(&c.last_cleanup_ns) as f64 / 1e9,
            "invalidations": get(&c.invalidations),
            "stale_reads": get(&c.stale_reads),
            "passthrough_opens": get(&c.passthrough_opens),
            "errors": get(&c.errors),
            "bytes_written": get(&c.bytes_written),
            "torn": get(&c.torn),
            "kernel_nodes": nodes,
            "pinned_versions": pinned,
            "evictions_size": get(&e.size),
            "evictions_min_free": get(&e.min_free),
            "evictions_expired": get(&e.expired),
            "evictions_invalidated": get(&e.invalidated),
            "evicted_bytes": get(&e.bytes),
            "eviction_waits": get(&e.waits),
            "eviction_wait_seconds": get(&e.wait_ns) as f64 / 1e9,
            "size_bytes": size.map(|(f, _)| f.used),
            "max_size_bytes": size.and_then(|(_, b)| b.max_size),
        });
        format!("{value:#}\n")
    }
}
