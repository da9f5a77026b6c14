//! Names to nodes: what `keys/x`, `tags/t/x`, `stale/x` and the fixed
//! directories resolve to, and the attributes of what the kernel holds.
//!
//! - `keys/x` and `tags/t/x` resolve to x's live version (and `tags/t/x`
//!   only while it carries t); `stale/x` to a version that is not live.
//! - A miss in `keys/` or `tags/t/` is cached for `--cache-timeout` (the
//!   daemon invalidates it when it creates the name); a miss in `stale/` is
//!   not, since a name appears there with no event the daemon sees.
//! - A node keeps answering for its own version (its size, its expiry),
//!   also after a commit replaced it; operations that change an entry act
//!   on the name's current version (`target`).
//! - A node's bytes are found by its version's identity (`open_node`):
//!   never another version's, even one that reuses its inode number.

use std::time::Duration;

use super::Mount;
use super::attr::Entry;
use super::counters::bump;
use super::error::{FsError, FsResult};
use super::nodes::{EntryNode, KEYS, Kind, PUT, STALE, STATS, TAGS};
use crate::store::{Meta, Version};

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

    /// A commit replacing version `v` of `name` after this lookup opened
    /// it but before its node `id` was registered pinned `v` only for the
    /// nodes that existed then: pin it for `id` too, so that the fast
    /// view's reads of the node (which cannot be retried) find it. Not
    /// when `v` was removed instead (an invalidation stays one).
    /// `commits`: `Publishing::finished` before `v` was opened; unchanged,
    /// no commit of this daemon pinned anything in between.
    fn pin_if_replaced_meanwhile(&self, id: u64, name: &[u8], v: Version, commits: u64) {
        use std::os::unix::fs::MetadataExt;
        if self.fs.publishing.finished() == commits {
            return;
        }
        let unlinked = v.file.metadata().is_ok_and(|m| m.nlink() == 0);
        if !unlinked {
            return;
        }
        let replaced = self.store().open_version(name).is_ok_and(|now| {
            now.is_some_and(|now| now.meta.ino != v.meta.ino || now.meta.ver != v.meta.ver)
        });
        if replaced {
            self.state().nodes.lock().unwrap().pin(id, v.file);
        }
    }

    /// The kernel dropped `n` references to node `id`.
    pub fn forget(&self, id: u64, n: u64) {
        self.state().nodes.lock().unwrap().forget(id, n);
        self.state().reads.forget(id);
    }

    /// Registers the version `meta` describes as a node (one more kernel
    /// reference).
    pub(super) fn node_for(&self, meta: &Meta, name: &[u8], stale_view: bool) -> Lookup {
        let fs = self.fs;
        let mut nodes = self.state().nodes.lock().unwrap();
        let mut id = nodes.entry(meta, name, stale_view, false);
        // A writer sent back (`opens`) must find a node no reader can pass
        // through: this one, or a new one of the same version. (Names are
        // rarely returning: that is asked first.)
        if !stale_view
            && self.state().opens.lock().unwrap().returning(name)
            && nodes.entry_of(id).is_some_and(|n| n.passthrough)
        {
            nodes.retire(id);
            nodes.forget(id, 1);
            id = nodes.entry(meta, name, false, false);
            nodes.forbid_passthrough(id);
        }
        let node = nodes.entry_of(id).expect("just made");
        let ttl = if stale_view {
            fs.opts.cache_timeout
        } else {
            fs.ttl(node.expiry)
        };
        Lookup::Found(Entry {
            attr: fs.entry_attr(id, &node),
            ttl,
        })
    }

    /// The version node `id` names, opened: the file pinned for it, or at
    /// its key path, or (replaced since) through one of its tag links, each
    /// checked to be that very version. `None` when it is in the store no
    /// more.
    pub(super) fn open_node(&self, id: u64, node: &EntryNode) -> FsResult<Option<Version>> {
        let found = self.open_node_now(id, node)?;
        // A commit of this daemon between its rename and its pinning of the
        // version it replaced: once it has pinned, look again.
        if found.is_none() && self.fs.publishing.wait(&node.name) {
            return self.open_node_now(id, node);
        }
        Ok(found)
    }

    fn open_node_now(&self, id: u64, node: &EntryNode) -> FsResult<Option<Version>> {
        let pinned = self
            .state()
            .nodes
            .lock()
            .unwrap()
            .pinned(id)
            .map(|f| f.try_clone());
        if let Some(file) = pinned {
            let file = file.map_err(|e| crate::store::Error::Io {
                path: format!(
                    "a pinned version of {}",
                    crate::store::layout::lossy(&node.name)
                ),
                source: e,
            })?;
            let meta = self.store().refresh(&file)?;
            return Ok(Some(Version { file, meta }));
        }
        let found = self
            .store()
            .find_version(&node.name, &node.tags, node.ino, node.ver)?;
        if let Some(v) = &found {
            self.refresh_node(id, &v.meta);
        }
        Ok(found)
    }

    /// Node `id` takes what changed in place (size, links, expiry) from
    /// `meta`, if it still names that version.
    pub(super) fn refresh_node(&self, id: u64, meta: &Meta) {
        self.state().nodes.lock().unwrap().refresh(id, meta);
    }

    /// The committed version an operation reaching `node` acts on: the
    /// name's current live version (the node's own, or the one a commit
    /// put in its place while the kernel still had the old name cached);
    /// `None` when the entry is gone.
    pub(super) fn target(&self, node: &EntryNode) -> FsResult<Option<Version>> {
        Ok(self.store().open_live(&node.name)?)
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
                    b"put" if !self.is_fast() => PUT,
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
                let commits = fs.publishing.finished();
                let version = store.open_version(name)?;
                if let Some(v) = version.as_ref().filter(|v| v.meta.torn()) {
                    fs.note_torn(name, &v.meta);
                }
                let version = version.filter(|v| v.meta.is_live());
                if let Some(v) = &version {
                    // The fast view's hits come back here once per entry
                    // timeout: its recency.
                    store.note_use(&v.file, &v.meta);
                }
                let version = match (parent, version) {
                    (Kind::Tag(t), Some(v)) if !v.meta.tags().iter().any(|x| **x == **t) => None,
                    (_, v) => v,
                };
                match version {
                    Some(v) => {
                        let found = self.node_for(&v.meta, name, false);
                        if let Lookup::Found(e) = &found {
                            self.pin_if_replaced_meanwhile(e.attr.id, name, v, commits);
                        }
                        Ok(found)
                    }
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
            Kind::Put(params) => match params.with(name)? {
                Some(params) => {
                    let id = self.state().nodes.lock().unwrap().put_dir(params);
                    Ok(Lookup::Found(Entry {
                        attr: fs.dir_attr(id),
                        ttl: fs.opts.cache_timeout,
                    }))
                }
                // put/ holds nothing: a name below it is created.
                None => Ok(Lookup::Negative(fs.opts.cache_timeout)),
            },
            // A name appears in stale/ when its entry expires, or when an
            // rmdir invalidates it without the daemon learning its name: a
            // miss here is not cached.
            Kind::Stale => match store
                .open_version(name)?
                .filter(|v| !v.meta.is_live() && !v.meta.torn())
            {
                Some(v) => Ok(self.node_for(&v.meta, name, true)),
                None => Ok(Lookup::Uncached),
            },
            Kind::Stats | Kind::Entry(_) => Err(FsError::Invalid("not a directory")),
        }
    }

    /// `getattr`: what node `id` is now, and for how long that holds. A
    /// version replaced or gone answers with what it last was.
    pub fn getattr(&self, id: u64) -> FsResult<Entry> {
        let fs = self.fs;
        let timeout = fs.opts.cache_timeout;
        Ok(match self.kind(id)? {
            Kind::Root | Kind::Keys | Kind::Tags | Kind::Stale | Kind::Tag(_) | Kind::Put(_) => {
                Entry {
                    attr: fs.dir_attr(id),
                    ttl: timeout,
                }
            }
            Kind::Stats => Entry {
                attr: fs.stats_attr(),
                ttl: Duration::ZERO,
            },
            Kind::Entry(mut node) => {
                // A draft still being written keeps what it was created
                // with until its commit.
                if node.pending {
                    return Ok(Entry {
                        attr: fs.entry_attr(id, &node),
                        ttl: Duration::ZERO,
                    });
                }
                if let Ok(Some(v)) = self.open_node(id, &node) {
                    node.update(&v.meta);
                }
                Entry {
                    attr: fs.entry_attr(id, &node),
                    ttl: fs.ttl(node.expiry),
                }
            }
        })
    }
}
