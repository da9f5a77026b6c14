//! The size ledger: what the store's files occupy, shared by every process
//! that writes the store (mounts on this host and others, the CLI).
//!
//! `STORE/ledger` holds two numbers: `used`, the bytes of the regular
//! files under `data/` and `tmp/` plus what drafts have reserved beyond
//! their current size, and `added`, every byte ever added (only grows).
//! Each change is a read-modify-write under an exclusive `flock` of the
//! file (other processes, other hosts) and a mutex (the threads of this
//! one: they share the open file, and `flock` does not tell them apart).
//! A re-count (`Store::recount_size`) corrects the drift that
//! crashes and other programs leave: it walks the store (S) and sets
//! `used = S + what was added during the walk`, never less than the truth.
//!
//! The ledger exists once a mount with a bound (or `cleanup --max-size`)
//! made it; from then on every process of ours keeps it.
//!
//! On a network file system (a FUSE one such as GlusterFS's client, NFS,
//! CephFS, SMB) the lock orders the hosts but their caches do not follow
//! it: a host would read the figures from its own page cache, and its
//! write could reach the servers after it let go of the lock (measured on
//! GlusterFS: half of the updates of two hosts taking turns were lost).
//! There each update drops the cached page before reading and syncs its
//! write before unlocking.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use super::sys;

#[derive(Debug)]
pub struct Ledger {
    file: File,
    threads: std::sync::Mutex<()>,
    /// On a file system that other hosts may share (see above).
    shared: bool,
}

/// What the ledger says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    pub used: u64,
    pub added: u64,
}

impl Ledger {
    pub(super) fn new(file: File) -> Ledger {
        let shared = sys::is_network_fs(file.as_fd());
        Ledger {
            file,
            threads: std::sync::Mutex::new(()),
            shared,
        }
    }

    fn read(&self) -> io::Result<Figures> {
        if self.shared {
            sys::drop_cache(self.file.as_fd())?;
        }
        let mut buf = [0u8; 64];
        let n = self.file.read_at(&mut buf, 0)?;
        let text = std::str::from_utf8(&buf[..n]).unwrap_or("");
        let mut parts = text
            .split_whitespace()
            .map(|p| p.parse::<u64>().unwrap_or(0));
        Ok(Figures {
            used: parts.next().unwrap_or(0),
            added: parts.next().unwrap_or(0),
        })
    }

    fn write(&self, f: Figures) -> io::Result<()> {
        // Fixed width: a shorter number never leaves a longer one's tail.
        let text = format!("{:020} {:020}\n", f.used, f.added);
        self.file.write_all_at(text.as_bytes(), 0)
    }

    /// Runs `change` on the figures under the ledger's lock and writes what
    /// it returns; `change` says no by returning `None` (nothing written).
    pub fn update(
        &self,
        change: impl FnOnce(Figures) -> Option<Figures>,
    ) -> io::Result<Option<Figures>> {
        let _threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        let _lock = sys::Flock::exclusive(self.file.as_fd())?;
        let now = self.read()?;
        match change(now) {
            Some(next) => {
                self.write(next)?;
                if self.shared {
                    sys::fdatasync(self.file.as_fd())?;
                }
                Ok(Some(next))
            }
            None => Ok(None),
        }
    }

    /// What a just-written file occupies, from its `fstat`. A network
    /// file system may answer with the blocks of a moment before the last
    /// writes (GlusterFS: the ledger fell 40 KiB below a walk of the
    /// store, and the store went 32 KiB past its bound), so there it is at
    /// least the size rounded up to 4 KiB.
    pub fn occupied(&self, st: &libc::stat) -> u64 {
        let blocks = st.st_blocks as u64 * 512;
        if self.shared {
            blocks.max((st.st_size as u64).div_ceil(4096) * 4096)
        } else {
            blocks
        }
    }

    /// `used` goes up by `add` and down by `remove` (never below 0).
    pub fn adjust(&self, add: u64, remove: u64) -> io::Result<Figures> {
        let next = self.update(|f| {
            Some(Figures {
                used: (f.used + add).saturating_sub(remove),
                added: f.added + add,
            })
        })?;
        Ok(next.expect("adjust always writes"))
    }

    pub fn figures(&self) -> io::Result<Figures> {
        let _threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        let _lock = sys::Flock::shared(self.file.as_fd())?;
        self.read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_adjustments_are_all_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.path().join("ledger"))
            .unwrap();
        let ledger = Arc::new(Ledger::new(file));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let l = ledger.clone();
                std::thread::spawn(move || {
                    for _ in 0..500 {
                        l.adjust(3, 1).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let f = ledger.figures().unwrap();
        assert_eq!((f.used, f.added), (8 * 500 * 2, 8 * 500 * 3));
    }
}
