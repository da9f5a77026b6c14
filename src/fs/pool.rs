//! The versions most recently read without a handle (reads on the fast
//! view carry none), kept open so that a large file read in many requests
//! is opened once: at most `CAPACITY` files, whatever the number of nodes,
//! each dropped when the kernel forgets its node.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::store::Content;

const CAPACITY: usize = 32;

#[derive(Debug, Default)]
pub(super) struct ReadPool {
    files: Mutex<VecDeque<(u64, Arc<Content>)>>,
}

impl ReadPool {
    /// The open file of node `id`, if it is in the pool.
    pub fn get(&self, id: u64) -> Option<Arc<Content>> {
        let files = self.files.lock().unwrap();
        files.iter().find(|(i, _)| *i == id).map(|(_, f)| f.clone())
    }

    /// Keeps `file` (node `id`'s version) for the next reads.
    pub fn put(&self, id: u64, file: Arc<Content>) {
        let mut files = self.files.lock().unwrap();
        if files.iter().any(|(i, _)| *i == id) {
            return;
        }
        if files.len() == CAPACITY {
            files.pop_front();
        }
        files.push_back((id, file));
    }

    /// The kernel forgot node `id` (or may have): its file goes.
    pub fn forget(&self, id: u64) {
        let mut files = self.files.lock().unwrap();
        files.retain(|(i, _)| *i != id);
    }
}
