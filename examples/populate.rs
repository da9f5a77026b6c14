//! Fills a tagcachefs store directly, without a mount, for the benchmark.
//!
//! Populating a million entries through FUSE takes many minutes; calling
//! `Store::commit` in a loop writes exactly what a commit through the mount
//! writes (draft in `tmp/`, tag links, expiry, record, rename) at the speed
//! of the underlying file system.
//!
//! ```text
//! populate STORE SPEC...
//! SPEC = PREFIX:START:COUNT:SIZE[:TAG,TAG...]
//! ```
//!
//! Each SPEC commits the entries `PREFIX<i>` for i in START..START+COUNT
//! (i zero-padded to 7 digits), each SIZE bytes of `content(i, SIZE)`,
//! never expiring, carrying the given tags. The benchmark's floor
//! (`examples/floorfs.rs`) generates the same names and contents.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use tagcachefs::store::{Commit, Store, Time, layout};

struct Spec {
    prefix: String,
    start: u64,
    count: u64,
    size: usize,
    tags: Vec<Vec<u8>>,
}

fn parse_spec(s: &str) -> Result<Spec, String> {
    let parts: Vec<&str> = s.split(':').collect();
    if !(4..=5).contains(&parts.len()) {
        return Err(format!("{s}: expected PREFIX:START:COUNT:SIZE[:TAGS]"));
    }
    let num = |p: &str| p.parse::<u64>().map_err(|e| format!("{s}: {p}: {e}"));
    Ok(Spec {
        prefix: parts[0].to_string(),
        start: num(parts[1])?,
        count: num(parts[2])?,
        size: num(parts[3])? as usize,
        tags: parts
            .get(4)
            .map(|t| layout::parse_tags(t.as_bytes()).map_err(|e| e.to_string()))
            .transpose()?
            .unwrap_or_default(),
    })
}

/// The content of entry number `i`: a byte pattern that differs per entry.
fn content(i: u64, size: usize) -> Vec<u8> {
    (0..size)
        .map(|j| ((i.wrapping_mul(31) + j as u64) % 251) as u8)
        .collect()
}

fn commit_range(store: &Store, spec: &Spec, from: u64, to: u64) -> Result<(), String> {
    let mut cached: Option<(u64, Vec<u8>)> = None;
    for i in from..to {
        let name = format!("{}{i:07}", spec.prefix);
        // Contents repeat every 251 entries; reuse the buffer when they do.
        let body = match &cached {
            Some((k, b)) if k % 251 == i % 251 => b.clone(),
            _ => {
                let b = content(i, spec.size);
                cached = Some((i, b.clone()));
                b
            }
        };
        let draft = store.new_draft().map_err(|e| e.to_string())?;
        let mut file = draft.file();
        file.write_all(&body)
            .map_err(|e| format!("writing {name}: {e}"))?;
        store
            .commit(
                draft,
                &Commit::fresh(name.as_bytes(), &spec.tags, Time::at(layout::NEVER), 0),
            )
            .map_err(|e| format!("committing {name}: {e}"))?;
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: populate STORE PREFIX:START:COUNT:SIZE[:TAG,TAG...]...");
        std::process::exit(2);
    }
    let store = match Store::open(&PathBuf::from(&args[0])) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("populate: {e}");
            std::process::exit(1);
        }
    };
    let started = Instant::now();
    let mut total = 0;
    for arg in &args[1..] {
        let spec = match parse_spec(arg) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("populate: {e}");
                std::process::exit(2);
            }
        };
        // Two writers: the machine has two cores and each commit is a dozen
        // system calls on different directories.
        let mid = spec.start + spec.count / 2;
        let end = spec.start + spec.count;
        let result = std::thread::scope(|s| {
            let a = s.spawn(|| commit_range(&store, &spec, spec.start, mid));
            let b = commit_range(&store, &spec, mid, end);
            a.join().expect("writer thread").and(b)
        });
        if let Err(e) = result {
            eprintln!("populate: {e}");
            std::process::exit(1);
        }
        total += spec.count;
    }
    eprintln!(
        "populate: {total} entries in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
