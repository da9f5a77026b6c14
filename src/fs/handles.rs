//! The open handles of one mount: write descriptors, `.stats` snapshots and
//! directory listings. A handle id is never reused while the daemon runs.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::Mount;
use super::listing::Listing;
use super::writer::Writer;

#[derive(Debug)]
pub(super) enum Handle {
    Writer(Box<Writer>),
    Stats(Vec<u8>),
    Dir(Listing),
}

impl Mount<'_> {
    pub(super) fn new_handle(&self, h: Handle) -> u64 {
        let fh = self.fs.next_fh.fetch_add(1, Ordering::Relaxed);
        self.state()
            .handles
            .lock()
            .unwrap()
            .insert(fh, Arc::new(Mutex::new(h)));
        fh
    }

    pub(super) fn handle(&self, fh: u64) -> Option<Arc<Mutex<Handle>>> {
        self.state().handles.lock().unwrap().get(&fh).cloned()
    }

    pub(super) fn take_handle(&self, fh: u64) -> Option<Arc<Mutex<Handle>>> {
        self.state().handles.lock().unwrap().remove(&fh)
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
            .filter(|(_, h)| {
                matches!(&*h.lock().unwrap(), Handle::Writer(w)
                    if w.node == id && pid.is_none_or(|p| p == w.pid))
            })
            .max_by_key(|(fh, _)| **fh)
            .map(|(_, h)| h.clone())
    }
}
