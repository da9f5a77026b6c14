//! Big entries through a real mount: read opens of the full mount are
//! passed through to the version's file (the kernel reads it itself), and
//! that changes nothing a reader or a writer can see (SPEC §2, §4).

mod support;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

use support::*;

const MIB: usize = 1 << 20;
const BLOCK: usize = 4096;

fn passthrough_opens(m: &Mount) -> u64 {
    m.stats()["passthrough_opens"]
        .as_u64()
        .expect("passthrough_opens in .stats")
}

/// Version `id` of a big entry: `big_len(id)` bytes, each 4 KiB block
/// starting with the id and the block's index, the rest of it the id's
/// byte. Cheap to check block by block, so a reader can tell a whole
/// version from a mix of two, a prefix, or zeros past its end.
fn big_len(id: u64) -> usize {
    64 * MIB - id as usize * 12_345
}

fn big_version(id: u64) -> Vec<u8> {
    let len = big_len(id);
    let mut out = vec![id as u8; len];
    for (i, block) in out.chunks_mut(BLOCK).enumerate() {
        let mut head = [0u8; 16];
        head[..8].copy_from_slice(&id.to_le_bytes());
        head[8..].copy_from_slice(&(i as u64).to_le_bytes());
        let n = block.len().min(16);
        block[..n].copy_from_slice(&head[..n]);
    }
    out
}

/// The id of the big version `data` is, if it is exactly one whole one.
fn check_big(data: &[u8]) -> Result<u64, String> {
    if data.len() < 16 {
        return Err(format!("{} bytes: no version", data.len()));
    }
    let id = u64::from_le_bytes(data[..8].try_into().unwrap());
    if id == 0 || id > 1000 || data.len() != big_len(id) {
        return Err(format!(
            "version {id} is {} bytes, read {}",
            if (1..=1000).contains(&id) {
                big_len(id)
            } else {
                0
            },
            data.len()
        ));
    }
    for (i, block) in data.chunks(BLOCK).enumerate() {
        let n = block.len().min(16);
        let mut head = [0u8; 16];
        head[..8].copy_from_slice(&id.to_le_bytes());
        head[8..].copy_from_slice(&(i as u64).to_le_bytes());
        if block[..n] != head[..n] || block[n..].iter().any(|&b| b != id as u8) {
            return Err(format!("block {i} of version {id} holds other bytes"));
        }
    }
    Ok(id)
}

/// Reads `f` from its start to its end in 1 MiB reads, calling `between`
/// after each read.
fn read_whole(mut f: &File, mut between: impl FnMut()) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; MIB];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
        between();
    }
}

#[test]
fn read_opens_are_passed_through_and_return_the_version_whole() {
    let m = Mount::new(&[]);
    let v = version_content(1, 3 * MIB + 17);
    put(&m.keys("x"), &v, "", 0);
    let before = passthrough_opens(&m);
    assert_eq!(read(&m.keys("x")).unwrap(), v);
    assert!(
        passthrough_opens(&m) > before,
        "the read open was passed through (the kernel and the daemon run as root)"
    );

    // mmap maps the version's file too, shared mappings as well.
    let f = File::open(m.keys("x")).unwrap();
    let len = v.len();
    for (kind, flags) in [("private", libc::MAP_PRIVATE), ("shared", libc::MAP_SHARED)] {
        // SAFETY: a read-only mapping of a file this test keeps open,
        // copied out and unmapped before the file closes.
        let mapped = unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                flags,
                std::os::fd::AsRawFd::as_raw_fd(&f),
                0,
            );
            assert_ne!(
                p,
                libc::MAP_FAILED,
                "mmap {kind}: {}",
                std::io::Error::last_os_error()
            );
            let copy = std::slice::from_raw_parts(p as *const u8, len).to_vec();
            libc::munmap(p, len);
            copy
        };
        assert!(mapped == v, "a {kind} mapping holds the version's bytes");
    }

    // What the fast view does not use, the tags and stale views still do.
    put(&m.keys("t1"), b"tagged", "t", 0);
    assert_eq!(read(&m.tag("t").join("t1")).unwrap(), b"tagged");
}

/// A writer opening a name whose readers the kernel passes through: the
/// open succeeds (the kernel would refuse a non-passthrough open of that
/// node, so the daemon sends it to another), and the readers keep their
/// version until they close, whatever the writer does.
#[test]
fn a_writer_opens_beside_passthrough_readers_and_they_keep_their_version() {
    let m = Mount::new(&[]);
    for (round, mode) in ["continue", "truncate", "append"].iter().enumerate() {
        let name = format!("e{round}");
        let old = version_content(10 + round as u64, 2 * MIB + 3);
        let new = version_content(20 + round as u64, MIB + 5);
        put(&m.keys(&name), &old, "", 0);
        let reader = File::open(m.keys(&name)).unwrap();
        let mut head = vec![0u8; 4096];
        reader.read_exact_at(&mut head, 0).unwrap();

        let mut o = OpenOptions::new();
        o.write(true);
        match *mode {
            "truncate" => {
                o.truncate(true);
            }
            "append" => {
                o.append(true);
            }
            _ => {}
        }
        let mut w = o
            .open(m.keys(&name))
            .unwrap_or_else(|e| panic!("{mode}: a writer opens beside a reader: {e}"));
        let expected = match *mode {
            "append" => {
                w.write_all(&new).unwrap();
                [old.clone(), new.clone()].concat()
            }
            _ => {
                w.set_len(0).unwrap();
                w.write_all_at(&new, 0).unwrap();
                new.clone()
            }
        };
        assert_eq!(
            read_whole(&reader, || ()),
            old,
            "{mode}: an open reader reads its version while the writer writes"
        );
        assert_eq!(
            read(&m.keys(&name)).unwrap(),
            old,
            "{mode}: a new reader reads the committed version"
        );
        drop(w);
        let mut again = Vec::new();
        (&reader).read_to_end(&mut again).unwrap();
        assert!(
            again.is_empty(),
            "{mode}: the reader is at its version's end"
        );
        assert_eq!(
            reader.read_at(&mut head, 0).unwrap(),
            4096,
            "{mode}: after the commit the open reader still has its version"
        );
        assert_eq!(&head[..], &old[..4096]);
        assert_eq!(read(&m.keys(&name)).unwrap(), expected, "{mode}: committed");
    }
    // Reads of other entries are still passed through (the names whose
    // writers were sent back get nodes without for a few seconds).
    put(&m.keys("other"), b"other", "", 0);
    let before = passthrough_opens(&m);
    assert_eq!(read(&m.keys("other")).unwrap(), b"other");
    assert!(passthrough_opens(&m) > before);
}

/// A reader opening while a writer has the node open is not passed
/// through (the writer's node must stay open to it), and reads the
/// committed bytes only.
#[test]
fn a_reader_opening_beside_a_writer_reads_the_committed_bytes() {
    let m = Mount::new(&[]);
    put(&m.keys("x"), b"committed", "", 0);
    let w = OpenOptions::new().write(true).open(m.keys("x")).unwrap();
    w.write_all_at(&vec![b'W'; 3 * MIB], 0).unwrap();
    let r = File::open(m.keys("x")).unwrap();
    assert_eq!(read_whole(&r, || ()), b"committed");
    drop(w);
    assert_eq!(read_whole(&r, || ()), b"", "at its end");
    assert_eq!(r.read_at(&mut [0u8; 64], 0).unwrap(), 9);
    assert_eq!(read(&m.keys("x")).unwrap().len(), 3 * MIB);
}

/// Concurrent readers of a 64 MiB entry while it is rewritten again and
/// again (through keys/ and put/) each see exactly one whole version,
/// never an older one than a read before it saw, also when their reads
/// of one descriptor span commits.
#[test]
fn readers_of_a_big_entry_being_rewritten_see_one_whole_version_each() {
    let m = Arc::new(Mount::new(&[]));
    let rounds: u64 = if long_mode() { 40 } else { 8 };
    std::fs::write(m.keys("big"), big_version(1)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let latest = Arc::new(AtomicU64::new(1));
    let start = Arc::new(Barrier::new(3));
    // Reads each reader has finished: the writer lets every reader finish
    // one read of each version before it commits the next.
    let reads: Arc<[AtomicU64; 2]> = Arc::new(Default::default());
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (m, done, latest, start, reads) = (
                m.clone(),
                done.clone(),
                latest.clone(),
                start.clone(),
                reads.clone(),
            );
            std::thread::spawn(move || {
                start.wait();
                let mut seen = Vec::new();
                let mut last = 0;
                while !done.load(Ordering::Acquire) {
                    let committed_before = latest.load(Ordering::Acquire);
                    let f = File::open(m.keys("big")).unwrap();
                    // The second reader dawdles, so its descriptor lives
                    // across commits.
                    let data = read_whole(&f, || {
                        if r == 1 {
                            std::thread::sleep(std::time::Duration::from_millis(2));
                        }
                    });
                    let id = check_big(&data).unwrap_or_else(|e| panic!("reader {r}: {e}"));
                    assert!(
                        id >= committed_before && id >= last,
                        "reader {r}: read version {id} after {last}, opened when {committed_before} was committed"
                    );
                    last = id;
                    seen.push(id);
                    reads[r].fetch_add(1, Ordering::Release);
                }
                seen
            })
        })
        .collect();
    start.wait();
    // Until every reader has finished a read it started after the last
    // commit.
    let each_reader_read = || {
        let now: Vec<u64> = reads.iter().map(|n| n.load(Ordering::Acquire)).collect();
        eventually(60.0, || {
            reads
                .iter()
                .zip(&now)
                .all(|(n, &before)| n.load(Ordering::Acquire) >= before + 2)
        })
        .expect("the readers read");
    };
    each_reader_read();
    for id in 2..=rounds {
        let data = big_version(id);
        let path = if id % 2 == 0 {
            m.keys("big")
        } else {
            m.mnt.join("put/tags=big/big")
        };
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        for chunk in data.chunks(MIB) {
            f.write_all(chunk).unwrap();
        }
        drop(f);
        latest.store(id, Ordering::Release);
        each_reader_read();
    }
    done.store(true, Ordering::Release);
    let seen: Vec<Vec<u64>> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    for (r, s) in seen.iter().enumerate() {
        assert!(!s.is_empty(), "reader {r} read");
    }
    let distinct: std::collections::BTreeSet<u64> = seen.iter().flatten().copied().collect();
    assert_eq!(
        distinct,
        (1..=rounds).collect(),
        "the readers read every version"
    );
    let last = check_big(&read(&m.keys("big")).unwrap()).unwrap();
    assert_eq!(last, rounds, "the last commit is what a reader reads now");
}

/// A big write is answered before its bytes reach the draft; everything
/// else its writer does comes after them: the next write (also over the
/// same bytes), a read through the descriptor, the commit at close. The
/// failpoint makes every such write take 100 ms after its answer.
#[test]
fn a_big_write_answered_early_lands_before_anything_else_of_its_writer() {
    use std::os::unix::fs::OpenOptionsExt;
    let m = Mount::with_failpoints("writer.later=100", &[]);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(m.keys("x"))
        .unwrap();
    f.write_all_at(&vec![b'A'; MIB], 0).unwrap();
    f.write_all_at(&vec![b'B'; MIB], 0).unwrap();
    let mut back = vec![0u8; MIB];
    f.read_exact_at(&mut back, 0).unwrap();
    assert!(
        back.iter().all(|&b| b == b'B'),
        "the later write won, and is read back"
    );
    f.write_all_at(&vec![b'C'; MIB], MIB as u64).unwrap();
    drop(f);
    let data = read(&m.keys("x")).unwrap();
    assert_eq!(data.len(), 2 * MIB);
    assert!(data[..MIB].iter().all(|&b| b == b'B'));
    assert!(
        data[MIB..].iter().all(|&b| b == b'C'),
        "the last write is in the commit"
    );
}

/// A big write that fails after it was answered (EIO, once): the close
/// reports it, and the entry it was overwriting stays as it was.
#[test]
fn a_big_write_failing_after_its_answer_fails_the_close() {
    let m = Mount::with_failpoints("writer.later", &[]);
    put(&m.keys("x"), b"before", "", 0);
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(m.keys("x"))
        .unwrap();
    // Half a MiB: one request (a MiB not page-aligned in memory is two).
    let first = f.write_all(&vec![b'N'; MIB / 2]);
    let rest = f.write_all(&vec![b'M'; MIB / 2]);
    let closed = close(f);
    eprintln!("writes: {first:?}, {rest:?}; close: {closed:?}");
    assert!(
        first.is_ok(),
        "the failing write itself was answered before it ran"
    );
    let errors: Vec<Errno> = [rest.map_err(|e| e.to_errno()), closed]
        .into_iter()
        .filter_map(Result::err)
        .collect();
    assert!(
        !errors.is_empty(),
        "the next write or the close reports the loss"
    );
    assert!(errors.iter().all(|&e| e == Errno::EIO), "{errors:?}");
    assert_eq!(read(&m.keys("x")).unwrap(), b"before");
    // The daemon serves on, and the next writer commits.
    put(&m.keys("x"), b"after", "", 0);
    assert_eq!(read(&m.keys("x")).unwrap(), b"after");
}
