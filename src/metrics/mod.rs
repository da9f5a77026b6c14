//! Metrics in the Prometheus text exposition format (version 0.0.4), from
//! the JSON that `tagcachefs stats --json` prints: the store's figures at
//! the top level, the daemon's `.stats` counters under `daemon`.
//!
//! `SAMPLES` is the whole mapping: one line per sample. A key missing from
//! the JSON (no daemon, an older daemon) leaves its sample out, never a
//! made-up zero. Names follow Prometheus' conventions: the `tagcachefs_`
//! prefix, base units (bytes, seconds) in the name, counters ending in
//! `_total`; samples of one family sit next to each other and share its
//! HELP and TYPE lines.

pub mod http;

use std::fmt::Write;

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One sample: where its value is in the stats JSON and what it is called.
#[derive(Debug)]
pub struct Sample {
    /// A key of the stats JSON; `daemon.x` is key x of its `daemon` object.
    pub key: &'static str,
    /// The family's name, without the `tagcachefs_` prefix.
    pub family: &'static str,
    /// Label pairs, as they go between the braces (`result="hit"`).
    pub labels: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

const fn counter(
    key: &'static str,
    family: &'static str,
    labels: &'static str,
    help: &'static str,
) -> Sample {
    Sample {
        key,
        family,
        labels,
        kind: Kind::Counter,
        help,
    }
}

const fn gauge(
    key: &'static str,
    family: &'static str,
    labels: &'static str,
    help: &'static str,
) -> Sample {
    Sample {
        key,
        family,
        labels,
        kind: Kind::Gauge,
        help,
    }
}

const LOOKUPS: &str = "Lookups and read opens of entries on the full mount, by result (the fast view's hits never reach the daemon).";
const ENTRIES: &str =
    "Entries in the store: live, or stale (expired or invalidated, until cleanup).";
const BYTES: &str = "Bytes of the entries in the store, live or stale.";
const EVICTIONS: &str = "Entries removed to keep the store within its bound: live ones by size or free space, dead ones (expired, invalidated) first.";

/// Every sample, in the order printed. Adding a counter is one line here.
#[rustfmt::skip]
pub const SAMPLES: &[Sample] = &[
    counter("daemon.hits", "lookups_total", r#"result="hit""#, LOOKUPS),
    counter("daemon.misses", "lookups_total", r#"result="miss""#, LOOKUPS),
    counter("daemon.stale_reads", "lookups_total", r#"result="stale""#, LOOKUPS),
    counter("daemon.commits", "commits_total", "", "Versions committed through the mount."),
    counter("daemon.commit_errors", "commit_errors_total", "", "Commits that failed (their close returned the error)."),
    counter("daemon.invalidations", "invalidations_total", "", "Invalidations through the mount: an rm of an entry or an rmdir of a tag counts one."),
    counter("daemon.errors", "errors_total", "", "Requests that failed for a reason other than bad input."),
    counter("daemon.passthrough_opens", "passthrough_opens_total", "", "Read opens of the full mount the kernel serves from the version's file itself, with no READ request to the daemon."),
    counter("daemon.bytes_written", "written_bytes_total", "", "Bytes written to entries through the mount."),
    gauge("daemon.last_cleanup_unixtime", "last_cleanup_timestamp_seconds", "", "When the mount's last cleanup ended well (Unix time; 0: none yet)."),
    gauge("daemon.last_cleanup_seconds", "last_cleanup_duration_seconds", "", "How long the mount's last good cleanup took."),
    gauge("daemon.kernel_nodes", "kernel_nodes", "", "Entry nodes the kernel holds over the daemon's mounts."),
    gauge("daemon.pinned_versions", "pinned_versions", "", "Replaced versions held open for nodes the kernel still holds (bounded)."),
    counter("daemon.torn", "torn_versions_total", "", "Sightings of versions whose size is not their committed length (never served)."),
    counter("daemon.evictions_size", "evictions_total", r#"reason="size""#, EVICTIONS),
    counter("daemon.evictions_min_free", "evictions_total", r#"reason="min_free""#, EVICTIONS),
    counter("daemon.evictions_expired", "evictions_total", r#"reason="expired""#, EVICTIONS),
    counter("daemon.evictions_invalidated", "evictions_total", r#"reason="invalidated""#, EVICTIONS),
    counter("daemon.evicted_bytes", "evicted_bytes_total", "", "Bytes freed by eviction."),
    counter("daemon.eviction_waits", "eviction_waits_total", "", "Commits (reservations) that waited for eviction to make room."),
    counter("daemon.eviction_wait_seconds", "eviction_wait_seconds_total", "", "Time commits spent waiting for room."),
    gauge("daemon.size_bytes", "size_bytes", "", "What the store's files occupy, by the size ledger (with drafts' reservations)."),
    gauge("daemon.max_size_bytes", "max_size_bytes", "", "The bound (--max-size)."),
    gauge("entries", "store_entries", r#"state="live""#, ENTRIES),
    gauge("stale_entries", "store_entries", r#"state="stale""#, ENTRIES),
    gauge("bytes", "store_bytes", r#"state="live""#, BYTES),
    gauge("stale_bytes", "store_bytes", r#"state="stale""#, BYTES),
    gauge("tags", "store_tags", "", "Tag directories in the store."),
    gauge("store_age_seconds", "store_figures_age_seconds", "", "Age of the store_* figures (the HTTP endpoint counts the store in the background, at most every 30 s)."),
];

/// Keys of the stats JSON that are deliberately not samples: the store's
/// path, and a ratio Prometheus derives better from the counters.
pub const NOT_SAMPLES: &[&str] = &["store", "daemon.store", "daemon.hit_ratio"];

/// The exposition text of `stats` (as `tagcachefs stats --json` prints it).
pub fn exposition(stats: &Value) -> String {
    let mut out = String::new();
    let mut family = "";
    for s in SAMPLES {
        let Some(value) = lookup(stats, s.key).and_then(number) else {
            continue;
        };
        let name = format!("tagcachefs_{}", s.family);
        if s.family != family {
            family = s.family;
            let kind = match s.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {name} {}", s.help);
            let _ = writeln!(out, "# TYPE {name} {kind}");
        }
        if s.labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{}}} {value}", s.labels);
        }
    }
    for m in LABELLED {
        let Some(Value::Object(by)) = lookup(stats, m.key) else {
            continue;
        };
        let name = format!("tagcachefs_{}", m.family);
        let _ = writeln!(out, "# HELP {name} {}", m.help);
        let _ = writeln!(out, "# TYPE {name} counter");
        for (label, value) in by {
            if let Some(value) = number(value) {
                let _ = writeln!(out, "{name}{{{}=\"{}\"}} {value}", m.label, escape(label));
            }
        }
    }
    out.push_str("# HELP tagcachefs_build_info The running tagcachefs: always 1.\n");
    out.push_str("# TYPE tagcachefs_build_info gauge\n");
    let _ = writeln!(
        out,
        "tagcachefs_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    out
}

/// A family whose samples are the entries of one object of the stats
/// JSON, each labelled with its key.
pub struct Labelled {
    pub key: &'static str,
    pub family: &'static str,
    pub label: &'static str,
    pub help: &'static str,
}

pub const LABELLED: &[Labelled] = &[
    Labelled {
        key: "daemon.errors_by_op",
        family: "request_errors_total",
        label: "op",
        help: "Requests that failed for a reason other than bad input, by operation.",
    },
    Labelled {
        key: "daemon.commit_errors_by_errno",
        family: "commit_failures_total",
        label: "errno",
        help: "Commits that failed, by the errno their close returned.",
    },
];

/// A label value as the exposition format writes it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn lookup<'a>(stats: &'a Value, key: &str) -> Option<&'a Value> {
    match key.split_once('.') {
        Some((object, key)) => stats.get(object)?.get(key),
        None => stats.get(key),
    }
}

/// A JSON number as the exposition writes it: integers exactly.
fn number(v: &Value) -> Option<String> {
    if let Some(n) = v.as_u64() {
        return Some(n.to_string());
    }
    v.as_f64().filter(|f| f.is_finite()).map(|f| f.to_string())
}

/// Numeric keys of `stats` that neither `SAMPLES` nor `NOT_SAMPLES` name:
/// a counter added to `.stats` without its metric.
pub fn unmapped(stats: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    let Some(top) = stats.as_object() else {
        return keys;
    };
    for (k, v) in top {
        match v {
            Value::Object(inner) => {
                keys.extend(inner.keys().map(|i| format!("{k}.{i}")));
            }
            _ => keys.push(k.clone()),
        }
    }
    keys.retain(|k| {
        lookup(stats, k).is_some_and(Value::is_number)
            && !SAMPLES.iter().any(|s| s.key == k)
            && !NOT_SAMPLES.contains(&k.as_str())
    });
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_get_one_help_and_type_and_missing_keys_no_sample() {
        let stats = serde_json::json!({
            "entries": 3, "stale_entries": 1, "bytes": 10, "stale_bytes": 2, "tags": 1,
            "daemon": {"hits": 5, "misses": 2, "hit_ratio": 0.7, "commits": 4}
        });
        let text = exposition(&stats);
        assert_eq!(
            text.matches("# TYPE tagcachefs_lookups_total counter")
                .count(),
            1
        );
        assert!(text.contains("tagcachefs_lookups_total{result=\"hit\"} 5\n"));
        assert!(text.contains("tagcachefs_lookups_total{result=\"miss\"} 2\n"));
        assert!(
            !text.contains("result=\"stale\""),
            "no stale_reads key: {text}"
        );
        assert!(text.contains("tagcachefs_store_entries{state=\"stale\"} 1\n"));
        assert!(!text.contains("hit_ratio"));
        assert!(text.ends_with(&format!(
            "tagcachefs_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
        assert_eq!(unmapped(&stats), Vec::<String>::new());
        let more = serde_json::json!({"daemon": {"evictions": 1}});
        assert_eq!(unmapped(&more), vec!["daemon.evictions".to_string()]);
    }

    #[test]
    fn names_follow_the_conventions() {
        for s in SAMPLES {
            assert_eq!(
                s.family.ends_with("_total"),
                s.kind == Kind::Counter,
                "{}",
                s.family
            );
            assert!(
                !s.family.contains("byte") || s.family.contains("bytes"),
                "{}",
                s.family
            );
        }
        // A family's samples are next to each other.
        for (i, s) in SAMPLES.iter().enumerate() {
            let later = SAMPLES[i + 1..].iter().position(|t| t.family == s.family);
            assert!(later.is_none_or(|p| p == 0), "{} is split", s.family);
        }
    }
}
