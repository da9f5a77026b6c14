//! `tagcachefs cleanup` and `tagcachefs stats`: what they print.

use std::path::Path;

use crate::store::Store;

pub fn cleanup(path: &Path, json: bool) -> Result<(), String> {
    let store = Store::open_existing(path).map_err(|e| e.to_string())?;
    let r = store.cleanup().map_err(|e| e.to_string())?;
    if json {
        println!("{}", serde_json::to_string(&r).expect("plain struct"));
    } else {
        println!(
            "removed {} entries ({} bytes), {} tag links, {} empty tag directories, {} tmp files",
            r.entries, r.bytes, r.tag_links, r.tag_dirs, r.tmp_files
        );
    }
    Ok(())
}

/// `path` is a store, or a mount point whose `.stats` names its store.
pub fn stats(path: &Path, json: bool) -> Result<(), String> {
    let counters: Option<serde_json::Value> = match std::fs::read(path.join(".stats")) {
        Ok(bytes) => Some(
            serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}/.stats: {e}", path.display()))?,
        ),
        Err(_) => None,
    };
    let store_path = counters
        .as_ref()
        .and_then(|c| c["store"].as_str())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| path.to_path_buf());
    let store = Store::open_existing(&store_path).map_err(|e| e.to_string())?;
    let s = store.stats().map_err(|e| e.to_string())?;
    let mut value = serde_json::to_value(&s).expect("plain struct");
    if let Some(serde_json::Value::Object(c)) = &counters {
        value["daemon"] = serde_json::Value::Object(c.clone());
    }
    if json {
        println!("{value:#}");
        return Ok(());
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
