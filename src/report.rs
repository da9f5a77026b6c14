//! `tagcachefs cleanup`, `stats` and `completions`: what they print.

use std::io::{IsTerminal, Write};

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use std::path::Path;

use clap::CommandFactory;

use crate::cli::{Cli, StatsFormat};
use crate::exit::{Code, Failure};
use crate::store::Store;
use crate::store::layout::Namespace;

/// The store at `path`, read in the tagcache library's format if asked
/// (or marked so).
fn open(path: &Path, tagcache_format: Option<Namespace>) -> crate::store::Result<Store> {
    let store = Store::open_existing(path)?;
    match tagcache_format {
        Some(ns) => store.reading_library_format(ns),
        None => Ok(store),
    }
}

/// A progress bar on stderr while a walk of the store goes, when stderr is
/// a terminal (hidden otherwise): one step per `AA` directory of `data/`.
struct Progress {
    bar: ProgressBar,
}

impl Progress {
    fn new(what: &str) -> Progress {
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::new(0)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} {msg:>10} [{bar:30}] {pos}/{len} buckets, {elapsed}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(what.to_string());
        Progress { bar }
    }

    fn tell(&self, phase: &str, done: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
        self.bar.set_message(phase.to_string());
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// Per second, for the summary line.
fn rate(n: u64, d: std::time::Duration) -> String {
    format!("{:.0}", n as f64 / d.as_secs_f64().max(1e-9))
}

#[allow(clippy::too_many_arguments)]
pub fn cleanup(
    path: &Path,
    json: bool,
    dry_run: bool,
    max_size: Option<u64>,
    min_free: Option<crate::store::evict::MinFree>,
    tagcache_format: Option<Namespace>,
    foreign_tmp_age: std::time::Duration,
) -> Result<(), Failure> {
    let bound = crate::store::evict::Bound {
        max_size,
        min_free,
        young: std::time::Duration::ZERO,
        low: 0.9,
        high: 0.95,
    };
    let store = open(path, tagcache_format)
        .and_then(|s| s.bounded(bound))
        .map_err(Failure::store)?
        .foreign_tmp_age(foreign_tmp_age);
    let started = std::time::Instant::now();
    let progress = Progress::new("cleanup");
    let tell = |phase: &str, done, total| progress.tell(phase, done, total);
    let opts = crate::store::cleanup::Options {
        dry_run,
        progress: Some(&tell),
    };
    let mut r = store.cleanup_with(&opts).map_err(|e| e.to_string())?;
    drop(progress);
    if dry_run {
        let over = store.over_bound().map_err(|e| e.to_string())?;
        if json {
            let mut v = serde_json::to_value(&r).expect("plain struct");
            v["dry_run"] = true.into();
            v["over_bound_bytes"] = over.into();
            println!("{v}");
        } else {
            println!(
                "would remove {} entries ({}), {} tag links, {} empty tag directories, {} tmp files",
                r.entries,
                HumanBytes(r.bytes),
                r.tag_links,
                r.tag_dirs,
                r.tmp_files
            );
            if over > 0 {
                println!(
                    "then {} over the bound: the least recently used live entries would go",
                    HumanBytes(over)
                );
            }
        }
        return Ok(());
    }
    let before = store.evictions();
    let dead_before = before.expired.load(std::sync::atomic::Ordering::Relaxed)
        + before
            .invalidated
            .load(std::sync::atomic::Ordering::Relaxed);
    let (evicted, bytes) = store.evict_to_bound().map_err(|e| e.to_string())?;
    let after = store.evictions();
    let dead = after.expired.load(std::sync::atomic::Ordering::Relaxed)
        + after.invalidated.load(std::sync::atomic::Ordering::Relaxed)
        - dead_before;
    r.entries += dead;
    r.evicted = evicted - dead;
    r.evicted_bytes = bytes;
    if json {
        println!("{}", serde_json::to_string(&r).expect("plain struct"));
    } else {
        println!(
            "removed {} entries ({}), {} tag links, {} empty tag directories, {} tmp files",
            r.entries,
            HumanBytes(r.bytes),
            r.tag_links,
            r.tag_dirs,
            r.tmp_files
        );
        if r.evicted > 0 {
            println!(
                "evicted {} live entries ({}) to fit the bound",
                r.evicted,
                HumanBytes(r.evicted_bytes)
            );
        }
        let took = started.elapsed();
        eprintln!(
            "took {:.2} s ({} entries removed per second)",
            took.as_secs_f64(),
            rate(r.entries + r.evicted, took)
        );
    }
    Ok(())
}

/// `path` is a store, or a mount point whose `.stats` names its store.
pub fn stats(
    path: &Path,
    format: StatsFormat,
    tagcache_format: Option<Namespace>,
) -> Result<(), Failure> {
    let counters: Option<serde_json::Value> = match std::fs::read(path.join(".stats")) {
        Ok(bytes) => Some(
            serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}/.stats: {e}", path.display()))?,
        ),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(Failure::new(
                Code::MountPoint,
                format!(
                    "{}: {e}: a dead mount (its daemon is gone); umount it",
                    path.display()
                ),
            ));
        }
        Err(_) => None,
    };
    let store_path = counters
        .as_ref()
        .and_then(|c| c["store"].as_str())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| path.to_path_buf());
    let store = open(&store_path, tagcache_format).map_err(Failure::store)?;
    let started = std::time::Instant::now();
    let progress = Progress::new("stats");
    let s = store
        .stats_with(&mut |phase, done, total| progress.tell(phase, done, total))
        .map_err(|e| e.to_string())?;
    drop(progress);
    let took = started.elapsed();
    let mut value = serde_json::to_value(&s).expect("plain struct");
    if let Some(serde_json::Value::Object(c)) = &counters {
        value["daemon"] = serde_json::Value::Object(c.clone());
    }
    match format {
        StatsFormat::Json => {
            println!("{value:#}");
            return Ok(());
        }
        StatsFormat::Prometheus => {
            print!("{}", crate::metrics::exposition(&value));
            return Ok(());
        }
        StatsFormat::Table => {}
    }
    println!("store          {}", store_path.display());
    println!("entries        {}", s.entries);
    println!("bytes          {} ({})", s.bytes, HumanBytes(s.bytes));
    println!(
        "stale entries  {} ({})",
        s.stale_entries,
        HumanBytes(s.stale_bytes)
    );
    println!("tags           {}", s.tags);
    if let Some(serde_json::Value::Object(c)) = counters {
        for (k, v) in c.iter().filter(|(k, _)| k.as_str() != "store") {
            println!("{:<14} {v}", k.replace('_', " "));
        }
    }
    let n = s.entries + s.stale_entries;
    eprintln!(
        "counted in {:.2} s ({} entries)",
        took.as_secs_f64(),
        rate(n, took)
    );
    Ok(())
}

/// `tagcachefs completions SHELL`: the shell's completion script.
pub fn completions(shell: clap_complete::Shell) -> Result<(), Failure> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "tagcachefs", &mut script);
    std::io::stdout()
        .write_all(&script)
        .map_err(|e| Failure::from(format!("writing the {shell} completions: {e}")))
}
