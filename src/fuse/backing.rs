//! The kernel's backing files of one mount's passthrough read opens.
//!
//! The kernel wants one backing id per node for all its passthrough opens
//! at a time (a second id for a node that has passthrough opens fails the
//! open), so a node's id is shared by its open handles and closed with the
//! last of them. By the time that handle's RELEASE arrives the kernel has
//! let go of the node's backing file, so the next open may register a new
//! one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use fuser::BackingId;

#[derive(Debug, Default)]
pub struct Backing {
    ids: Mutex<Ids>,
}

#[derive(Debug, Default)]
struct Ids {
    by_node: HashMap<u64, Weak<BackingId>>,
    by_fh: HashMap<u64, (u64, Arc<BackingId>)>,
}

impl Backing {
    /// The backing id of node `node` for handle `fh`: the node's current
    /// one, or the one `register` (called only then) gets from the kernel.
    pub fn open(
        &self,
        node: u64,
        fh: u64,
        register: impl FnOnce() -> std::io::Result<BackingId>,
    ) -> std::io::Result<Arc<BackingId>> {
        let mut ids = self.ids.lock().unwrap();
        let id = match ids.by_node.get(&node).and_then(Weak::upgrade) {
            Some(id) => id,
            None => {
                let id = Arc::new(register()?);
                ids.by_node.insert(node, Arc::downgrade(&id));
                id
            }
        };
        ids.by_fh.insert(fh, (node, id.clone()));
        Ok(id)
    }

    /// Handle `fh` is released: its node's id closes with its last handle.
    pub fn release(&self, fh: u64) {
        let mut ids = self.ids.lock().unwrap();
        if let Some((node, id)) = ids.by_fh.remove(&fh) {
            drop(id);
            if ids
                .by_node
                .get(&node)
                .is_some_and(|w| w.strong_count() == 0)
            {
                ids.by_node.remove(&node);
            }
        }
    }
}
