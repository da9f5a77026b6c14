//! The open handles of one mount: write descriptors, `.stats` snapshots and
//! directory listings. A handle id is never reused while the daemon runs.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::Mount;
use super::listing::Listing;
use super::writer::Writer;

#[derive(Debug)]
pub(super) enum Handle {
    /// A read open: the version's content.
    Reader(crate::store::Content),
    Writer(Box<Writer>),
    Stats(Vec<u8>),
    Dir(Listing),
}

/// A handle in the table, with what finding a writer needs kept outside
/// the handle's own lock (which a commit holds through its I/O).
#[derive(Debug)]
pub(super) struct Slot {
    /// For a writer: the node it writes and the process that opened it.
    writer_of: Option<(u64, u32)>,
    handle: Arc<Mutex<Handle>>,
}

impl Mount<'_> {
    pub(super) fn new_handle(&self, h: Handle) -> u64 {
        let fh = self.fs.next_fh.fetch_add(1, Ordering::Relaxed);
        let writer_of = match &h {
            Handle::Writer(w) => Some((w.node, w.pid)),
            _ => None,
        };
        let slot = Slot {
            writer_of,
            handle: Arc::new(Mutex::new(h)),
        };
        self.state().handles.lock().unwrap().insert(fh, slot);
        fh
    }

    pub(super) fn handle(&self, fh: u64) -> Option<Arc<Mutex<Handle>>> {
        let handles = self.state().handles.lock().unwrap();
        handles.get(&fh).map(|s| s.handle.clone())
    }

    pub(super) fn take_handle(&self, fh: u64) -> Option<Arc<Mutex<Handle>>> {
        let slot = self.state().handles.lock().unwrap().remove(&fh);
        slot.map(|s| s.handle)
    }

    /// The writer of node `id` opened by process `pid`, if any: requests
    /// that carry no handle (open-time truncate, xattrs) go to it.
    /// With several, the one opened last: an open-time truncate follows its
    /// OPEN at once, and an xattr call cannot say which descriptor it came
    /// through.
    pub(super) fn writer_of(&self, id: u64, pid: Option<u32>) -> Option<Arc<Mutex<Handle>>> {
        let handles = self.state().handles.lock().unwrap();
        handles
            .iter()
            .filter(|(_, s)| {
                s.writer_of
                    .is_some_and(|(node, p)| node == id && pid.is_none_or(|pid| pid == p))
            })
            .max_by_key(|(fh, _)| **fh)
            .map(|(_, s)| s.handle.clone())
    }
}
