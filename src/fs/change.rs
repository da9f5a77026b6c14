//! What a change makes wrong in the kernel's caches.
//!
//! Every request that changes the store returns a `Change`: the entry names
//! (with every tag they carried before or after) and the `tags/<t>` names it
//! made appear or vanish. `Fs::invalidations` turns it into the names to
//! invalidate on each mount — `keys/x`, `stale/x` and `tags/t/x` for each
//! tag directory the kernel holds a node for — which the caller must
//! invalidate before the change's system call returns.

use super::Fs;
use super::nodes::{KEYS, STALE, TAGS};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Change {
    /// An entry's name and every tag it carried before or after.
    pub entries: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
    /// `tags/<t>` names that appeared or vanished.
    pub tags: Vec<Vec<u8>>,
}

impl Change {
    pub fn entry(name: &[u8], tags: impl IntoIterator<Item = Vec<u8>>) -> Change {
        let mut tags: Vec<Vec<u8>> = tags.into_iter().collect();
        tags.sort();
        tags.dedup();
        Change {
            entries: vec![(name.to_vec(), tags)],
            tags: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.tags.is_empty()
    }
}

/// One name the kernel may have cached: `name` in directory node `parent`
/// of mount `mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inval {
    pub mount: usize,
    pub parent: u64,
    pub name: Vec<u8>,
}

impl Fs {
    /// The names `change` made wrong on mount `idx`.
    pub fn invalidations(&self, change: &Change, idx: usize) -> Vec<Inval> {
        let mount = &self.mounts[idx];
        let nodes = mount.nodes.lock().unwrap();
        let mut out = Vec::new();
        let mut add = |parent: u64, name: &[u8]| {
            out.push(Inval {
                mount: idx,
                parent,
                name: name.to_vec(),
            })
        };
        for (name, tags) in &change.entries {
            add(KEYS, name);
            if !mount.fast {
                add(STALE, name);
            }
            for tag in tags {
                if let Some(id) = nodes.tag_id(tag) {
                    add(id, name);
                }
            }
        }
        for tag in &change.tags {
            add(TAGS, tag);
        }
        out
    }

    /// The names `change` made wrong on every mount.
    pub fn invalidations_everywhere(&self, change: &Change) -> Vec<Inval> {
        (0..self.mounts.len())
            .flat_map(|i| self.invalidations(change, i))
            .collect()
    }
}
