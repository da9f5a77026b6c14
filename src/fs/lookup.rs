//! Names to nodes: what `keys/x`, `tags/t/x`, `stale/x` and the fixed
//! directories resolve to, and the attributes of what the kernel holds.
//!
//! - `keys/x` and `tags/t/x` resolve to x's live version (and `tags/t/x`
//!   only while it carries t); `stale/x` to a version that is not live.
//! - A miss in `keys/` or `tags/t/` is cached for `--cache-timeout` (the
//!   daemon invalidates it when it creates the name); a miss in `stale/` is
//!   not, since a name appears there with no event the daemon sees.
//! - A version the kernel holds a node for keeps answering for itself
//!   (its size, its expiry) even after a commit replaced it; operations
//!   that change an entry act on the name's current version (`target`).

use std::time::Duration;

use super::Mount;
use super::attr::Entry;
use super::counters::bump;
use super::error::{FsError, FsResult};
use super::nodes::{EntryNode, KEYS, Kind, STALE, STATS, TAGS};
use crate::store::{Version, layout};

/// What a name resolved to.
#[derive(Debug, Clone, Copy)]
pub enum Lookup {
    Found(Entry),
    /// Absent: the kernel may remember that for the time given.
    Negative(Duration),
    /// Absent now, and it may appear with no event the kernel would hear of.
    Uncached,
}

impl Mount<'_> {
    /// `lookup`: one more kernel reference to the node found, if any. A
    /// name absent from `keys/` or `tags/t/` is a miss.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> FsResult<Lookup> {
        let parent = self.kind(parent)?;
        let found = self.resolve(&parent, name)?;
        if matches!(parent, Kind::Keys | Kind::Tag(_)) && matches!(found, Lookup::Negative(_)) {
            bump(&self.fs.counters.misses);
        }
        Ok(found)
    }

    /// The kernel dropped `n` references to node `id`.
    pub fn forget(&self, id: u64, n: u64) {
        self.state().nodes.lock().unwrap().forget(id, n);
    }

    /// Registers `version` as a node (one more kernel reference).
    pub(super) fn node_for(&self, version: Version, name: &[u8], stale_view: bool) -> Lookup {
        let mut nodes = self.state().nodes.lock().unwrap();
        let (id, node) = nodes.entry(version, name, stale_view, false);
        drop(nodes);
        let state = node.state.lock().unwrap();
        let ttl = if stale_view {
            self.fs.opts.cache_timeout
        } else {
            self.fs.ttl(&state.meta)
        };
        Lookup::Found(Entry {
            attr: self.fs.entry_attr(id, &state, stale_view),
            ttl,
        })
    }

    /// The committed version an operation reaching `node` acts on: the
    /// node's own while it is live; the name's current live version when a
    /// commit replaced the node's (the kernel still had the old name cached:
    /// a path call racing the commit, or a descriptor opened before it);
    /// `None` when the entry is gone.
    pub(super) fn target(&self, node: &EntryNode) -> FsResult<Option<Version>> {
        let meta = self.store().refresh(&node.file)?;
        node.state.lock().unwrap().meta = meta.clone();
        if meta.is_live() {
            let file = node.file.try_clone().map_err(|e| crate::store::Error::Io {
                path: format!("entry {}", layout::lossy(&node.name())),
                source: e,
            })?;
            return Ok(Some(Version { file, meta }));
        }
        Ok(self.store().open_live(&node.name())?)
    }

    pub(super) fn resolve(&self, parent: &Kind, name: &[u8]) -> FsResult<Lookup> {
        let store = self.store();
        let fs = self.fs;
        match parent {
            Kind::Root => {
                let id = match name {
                    b"keys" => KEYS,
                    b"tags" => TAGS,
                    b"stale" if !self.is_fast() => STALE,
                    b".stats" if !self.is_fast() => STATS,
                    _ => return Ok(Lookup::Negative(fs.opts.cache_timeout)),
                };
                let (attr, ttl) = if id == STATS {
                    (fs.stats_attr(), Duration::ZERO)
                } else {
                    (fs.dir_attr(id), fs.opts.cache_timeout)
                };
                Ok(Lookup::Found(Entry { attr, ttl }))
            }
            Kind::Keys | Kind::Tag(_) => {
                let version = store.open_live(name)?;
                let version = match (parent, version) {
                    (Kind::Tag(t), Some(v)) if !v.meta.tags().iter().any(|x| **x == **t) => None,
                    (_, v) => v,
                };
                match version {
                    Some(v) => Ok(self.node_for(v, name, false)),
                    None => Ok(Lookup::Negative(fs.opts.cache_timeout)),
                }
            }
            Kind::Tags => {
                if !store.tag_exists(name)? {
                    return Ok(Lookup::Negative(fs.opts.cache_timeout));
                }
                let id = self.state().nodes.lock().unwrap().tag(name);
                Ok(Lookup::Found(Entry {
                    attr: fs.dir_attr(id),
                    ttl: fs.opts.cache_timeout,
                }))
            }
            // A name appears in stale/ when its entry expires, or when an
            // rmdir invalidates it without the daemon learning its name: a
            // miss here is not cached.
            Kind::Stale => match store.open_version(name)?.filter(|v| !v.meta.is_live()) {
                Some(v) => Ok(self.node_for(v, name, true)),
                None => Ok(Lookup::Uncached),
            },
            Kind::Stats | Kind::Entry(_) => Err(FsError::Invalid("not a directory")),
        }
    }

    /// `getattr`: what node `id` is now, and for how long that holds.
    pub fn getattr(&self, id: u64) -> FsResult<Entry> {
        let fs = self.fs;
        let timeout = fs.opts.cache_timeout;
        Ok(match self.kind(id)? {
            Kind::Root | Kind::Keys | Kind::Tags | Kind::Stale | Kind::Tag(_) => Entry {
                attr: fs.dir_attr(id),
                ttl: timeout,
            },
            Kind::Stats => Entry {
                attr: fs.stats_attr(),
                ttl: Duration::ZERO,
            },
            Kind::Entry(node) => {
                let mut state = node.state.lock().unwrap();
                // One fstat; a draft still being written keeps what it
                // was created with until its commit.
                if !state.pending || state.meta.record.is_some() {
                    let _ = self.store().restat(&node.file, &mut state.meta);
                }
                let ttl = if state.pending {
                    Duration::ZERO
                } else {
                    fs.ttl(&state.meta)
                };
                Entry {
                    attr: fs.entry_attr(id, &state, node.stale_view),
                    ttl,
                }
            }
        })
    }
}
