//! What `.stats` shows: counters of what the daemon answered. Hits on the
//! fast view never reach the daemon, so they are not counted.

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
    pub errors: AtomicU64,
    pub bytes_written: AtomicU64,
}

pub(super) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Fs {
    /// Counts a request that failed for a reason other than bad input.
    pub fn count_error(&self) {
        bump(&self.counters.errors);
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
        let value = serde_json::json!({
            "store": self.store.path(),
            "hits": hits,
            "misses": misses,
            "hit_ratio": ratio,
            "commits": get(&c.commits),
            "commit_errors": get(&c.commit_errors),
            "invalidations": get(&c.invalidations),
            "stale_reads": get(&c.stale_reads),
            "errors": get(&c.errors),
            "bytes_written": get(&c.bytes_written),
            "kernel_nodes": nodes,
        });
        format!("{value:#}\n")
    }
}
