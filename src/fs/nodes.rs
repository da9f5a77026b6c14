//! The inode table of one mount: which node id names what.
//!
//! - Ids 1–5 are the fixed directories and `.stats`; every other id comes
//!   from a counter and is never reused, so an id never names two versions.
//! - An entry node holds its version's file open for as long as the kernel
//!   holds the node. That pins the inode number, so looking a version up by
//!   its inode number always finds the node of that same version.
//! - `keys/x` and `tags/t/x` resolve to the same node; `stale/x` has nodes
//!   of its own (read-only), so a write open is never mistaken for either.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex};

use crate::store::{Meta, Version};

pub const ROOT: u64 = 1;
pub const KEYS: u64 = 2;
pub const TAGS: u64 = 3;
pub const STALE: u64 = 4;
pub const STATS: u64 = 5;
const FIRST_DYNAMIC: u64 = 16;

/// A version the kernel holds a node for.
#[derive(Debug)]
pub struct EntryNode {
    pub file: File,
    pub ino: u64,
    pub stale_view: bool,
    pub state: Mutex<EntryState>,
}

#[derive(Debug, Clone)]
pub struct EntryState {
    pub name: Vec<u8>,
    pub meta: Meta,
    /// Created by a writer and not committed yet: only the writer sees it.
    pub pending: bool,
}

impl EntryNode {
    pub fn state(&self) -> EntryState {
        self.state.lock().unwrap().clone()
    }

    pub fn pending(&self) -> bool {
        self.state.lock().unwrap().pending
    }

    pub fn name(&self) -> Vec<u8> {
        self.state.lock().unwrap().name.clone()
    }
}

#[derive(Debug, Clone)]
pub enum Kind {
    Root,
    Keys,
    Tags,
    Stale,
    Stats,
    Tag(Arc<[u8]>),
    Entry(Arc<EntryNode>),
}

#[derive(Debug)]
struct Slot {
    kind: Kind,
    lookups: u64,
}

#[derive(Debug)]
pub struct Nodes {
    slots: HashMap<u64, Slot>,
    by_ino: HashMap<(u64, bool), u64>,
    by_tag: HashMap<Arc<[u8]>, u64>,
    next: u64,
    /// Entry nodes, each holding one open file.
    entries: usize,
}

impl Default for Nodes {
    fn default() -> Self {
        let fixed = [
            (ROOT, Kind::Root),
            (KEYS, Kind::Keys),
            (TAGS, Kind::Tags),
            (STALE, Kind::Stale),
            (STATS, Kind::Stats),
        ];
        Nodes {
            slots: fixed
                .into_iter()
                .map(|(id, kind)| (id, Slot { kind, lookups: 0 }))
                .collect(),
            by_ino: HashMap::new(),
            by_tag: HashMap::new(),
            next: FIRST_DYNAMIC,
            entries: 0,
        }
    }
}

impl Nodes {
    pub fn get(&self, id: u64) -> Option<Kind> {
        self.slots.get(&id).map(|s| s.kind.clone())
    }

    fn insert(&mut self, kind: Kind) -> u64 {
        let id = self.next;
        self.next += 1;
        self.slots.insert(id, Slot { kind, lookups: 1 });
        id
    }

    /// The node of `version` (found by inode number, or new), counted as
    /// one more kernel lookup. Its state is refreshed from `version`.
    pub fn entry(
        &mut self,
        version: Version,
        name: &[u8],
        stale_view: bool,
        pending: bool,
    ) -> (u64, Arc<EntryNode>) {
        let key = (version.meta.ino, stale_view);
        if let Some(&id) = self.by_ino.get(&key) {
            let slot = self.slots.get_mut(&id).expect("by_ino points at a slot");
            slot.lookups += 1;
            if let Kind::Entry(node) = &slot.kind {
                let mut state = node.state.lock().unwrap();
                state.meta = version.meta;
                state.name = name.to_vec();
                state.pending = pending;
                drop(state);
                return (id, node.clone());
            }
        }
        let node = Arc::new(EntryNode {
            ino: version.meta.ino,
            file: version.file,
            stale_view,
            state: Mutex::new(EntryState {
                name: name.to_vec(),
                meta: version.meta,
                pending,
            }),
        });
        let id = self.insert(Kind::Entry(node.clone()));
        self.by_ino.insert(key, id);
        self.entries += 1;
        (id, node)
    }

    /// The node of tag directory `tag`, counted as one more kernel lookup.
    pub fn tag(&mut self, tag: &[u8]) -> u64 {
        if let Some(&id) = self.by_tag.get(tag) {
            self.slots
                .get_mut(&id)
                .expect("by_tag points at a slot")
                .lookups += 1;
            return id;
        }
        let tag: Arc<[u8]> = tag.into();
        let id = self.insert(Kind::Tag(tag.clone()));
        self.by_tag.insert(tag, id);
        id
    }

    pub fn tag_id(&self, tag: &[u8]) -> Option<u64> {
        self.by_tag.get(tag).copied()
    }

    /// The kernel dropped `n` references to `id`.
    pub fn forget(&mut self, id: u64, n: u64) {
        if id < FIRST_DYNAMIC {
            return;
        }
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        slot.lookups = slot.lookups.saturating_sub(n);
        if slot.lookups > 0 {
            return;
        }
        match self.slots.remove(&id).map(|s| s.kind) {
            Some(Kind::Entry(node)) => {
                self.by_ino.remove(&(node.ino, node.stale_view));
                self.entries -= 1;
            }
            Some(Kind::Tag(tag)) => {
                self.by_tag.remove(&tag);
            }
            _ => {}
        }
    }

    /// Entry nodes whose last known tags include `tag`.
    pub fn entries_tagged(&self, tag: &[u8]) -> Vec<Arc<EntryNode>> {
        self.entries()
            .filter(|n| n.state().meta.tags().iter().any(|t| t == tag))
            .collect()
    }

    /// Entry nodes of inode `ino` (in either view).
    pub fn entries_of_ino(&self, ino: u64) -> Vec<Arc<EntryNode>> {
        [false, true]
            .iter()
            .filter_map(|&stale| self.by_ino.get(&(ino, stale)))
            .filter_map(|id| match self.get(*id) {
                Some(Kind::Entry(node)) => Some(node),
                _ => None,
            })
            .collect()
    }

    fn entries(&self) -> impl Iterator<Item = Arc<EntryNode>> + '_ {
        self.slots.values().filter_map(|s| match &s.kind {
            Kind::Entry(node) => Some(node.clone()),
            _ => None,
        })
    }

    /// How many entry nodes (each with an open file) the kernel holds.
    pub fn entry_count(&self) -> usize {
        self.entries
    }

    /// The `n` entry nodes handed to the kernel longest ago.
    pub fn oldest_entries(&self, n: usize) -> Vec<Arc<EntryNode>> {
        let mut ids: Vec<(u64, Arc<EntryNode>)> = self
            .slots
            .iter()
            .filter_map(|(id, s)| match &s.kind {
                Kind::Entry(node) => Some((*id, node.clone())),
                _ => None,
            })
            .collect();
        ids.sort_unstable_by_key(|(id, _)| *id);
        ids.into_iter().take(n).map(|(_, node)| node).collect()
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}
