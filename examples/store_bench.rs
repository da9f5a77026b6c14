//! Store micro-benchmark: commit and read of 4 KiB entries through the
//! store library, against the same writes and reads with plain std::fs in
//! the same run and directory tree. Prints ops/s and the ratio.
//!
//! cargo run --release --example store_bench [-- ENTRIES]

use std::io::{Read, Write};
use std::time::Instant;

use tagcachefs::store::{Commit, Store, Time};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000);
    let dir =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/tmp".into())).unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let plain = dir.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let content = vec![b'x'; 4096];
    let tags = [b"t1".to_vec(), b"t2".to_vec()];
    let names: Vec<String> = (0..n).map(|i| format!("entry-{i}")).collect();

    let best = |f: &mut dyn FnMut() -> f64| (0..3).map(|_| f()).fold(0.0, f64::max);

    let commit = best(&mut || {
        let t = Instant::now();
        for name in &names {
            let draft = store.new_draft().unwrap();
            draft.file().write_all(&content).unwrap();
            store
                .commit(
                    draft,
                    &Commit::fresh(name.as_bytes(), &tags, Time::after_ttl(3600), 3600),
                )
                .unwrap();
        }
        n as f64 / t.elapsed().as_secs_f64()
    });
    let native_write = best(&mut || {
        let t = Instant::now();
        for name in &names {
            let tmp = plain.join(format!("{name}.tmp"));
            std::fs::File::create(&tmp)
                .unwrap()
                .write_all(&content)
                .unwrap();
            std::fs::rename(&tmp, plain.join(name)).unwrap();
        }
        n as f64 / t.elapsed().as_secs_f64()
    });
    let mut buf = Vec::with_capacity(8192);
    let read = best(&mut || {
        let t = Instant::now();
        for name in &names {
            let mut v = store.open_live(name.as_bytes()).unwrap().unwrap();
            buf.clear();
            v.file.read_to_end(&mut buf).unwrap();
            assert_eq!(buf.len(), 4096);
        }
        n as f64 / t.elapsed().as_secs_f64()
    });
    let native_read = best(&mut || {
        let t = Instant::now();
        for name in &names {
            buf.clear();
            std::fs::File::open(plain.join(name))
                .unwrap()
                .read_to_end(&mut buf)
                .unwrap();
            assert_eq!(buf.len(), 4096);
        }
        n as f64 / t.elapsed().as_secs_f64()
    });
    println!("{n} entries of 4 KiB, best of 3, ops/s");
    println!(
        "{:<34} {:>10} {:>10} {:>7}",
        "operation", "store", "std::fs", "ratio"
    );
    println!(
        "{:<34} {:>10.0} {:>10.0} {:>7.2}",
        "commit (2 tags, expire) vs write+rename",
        commit,
        native_write,
        commit / native_write
    );
    println!(
        "{:<34} {:>10.0} {:>10.0} {:>7.2}",
        "read live entry vs open+read",
        read,
        native_read,
        read / native_read
    );
}
