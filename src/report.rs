//! `tagcachefs cleanup`, `stats` and `completions`: what they print.

use std::io::Write;
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

pub fn cleanup(
    path: &Path,
    json: bool,
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
    let mut r = store.cleanup().map_err(|e| e.to_string())?;
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
            "removed {} entries ({} bytes), {} tag links, {} empty tag directories, {} tmp files",
            r.entries, r.bytes, r.tag_links, r.tag_dirs, r.tmp_files
        );
        if r.evicted > 0 {
            println!(
                "evicted {} live entries ({} bytes) to fit the bound",
                r.evicted, r.evicted_bytes
            );
        }
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
    let s = store.stats().map_err(|e| e.to_string())?;
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
    println!("bytes          {}", s.bytes);
    println!(
        "stale entries  {} ({} bytes)",
        s.stale_entries, s.stale_bytes
    );
    println!("tags           {}", s.tags);
    if let Some(serde_json::Value::Object(c)) = counters {
        for (k, v) in c.iter().filter(|(k, _)| k.as_str() != "store") {
            println!("{:<14} {v}", k.replace('_', " "));
        }
    }
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
