//! Changes to names: `rm` invalidates an entry, `rmdir` a tag, `mkdir`
//! makes an empty tag, `ln` adds a tag, `mv` renames an entry.
//!
//! - `rm keys/x` and `rm tags/t/x` set x's expiry to now: its content stays
//!   readable in `stale/` until cleanup.
//! - `rmdir tags/t` removes t's directory from the store: every entry that
//!   carried t is invalid at once, empty or not; the names the kernel may
//!   hold for them are in the returned `Change`.
//! - `ln keys/x tags/t/x` commits a new version of x carrying t as well.
//! - `mv keys/a keys/b` moves the same version (tags and expiry kept).
//! - The layout itself is fixed: EPERM; writes in `stale/`: EROFS.

use super::Mount;
use super::attr::Attr;
use super::change::Change;
use super::counters::bump;
use super::error::{FsError, FsResult};
use super::lookup::Lookup;
use super::nodes::Kind;

/// `rename(2)` flags we look at.
pub const RENAME_NOREPLACE: u32 = libc::RENAME_NOREPLACE;
pub const RENAME_EXCHANGE: u32 = libc::RENAME_EXCHANGE;

impl Mount<'_> {
    /// `unlink`: invalidates the entry.
    pub fn unlink(&self, parent: u64, name: &[u8]) -> FsResult<Change> {
        let parent = self.kind(parent)?;
        match &parent {
            Kind::Keys | Kind::Tag(_) => self.writable()?,
            Kind::Stale => return Err(FsError::ReadOnly),
            Kind::Root | Kind::Tags => return Err(FsError::NotPermitted("fixed layout")),
            Kind::Put(_) => return Err(FsError::NotPermitted("put/ holds nothing")),
            _ => return Err(FsError::NotFound),
        }
        let version = self.store().open_live(name)?.ok_or(FsError::NotFound)?;
        if let Kind::Tag(t) = &parent
            && !version.meta.tags().iter().any(|x| **x == **t)
        {
            return Err(FsError::NotFound);
        }
        if !self.store().invalidate_entry(name)? {
            return Err(FsError::NotFound);
        }
        bump(&self.fs.counters.invalidations);
        Ok(Change::entry(name, version.meta.tags().to_vec()))
    }

    /// `rmdir tags/<t>`: invalidates every entry carrying t.
    pub fn rmdir(&self, parent: u64, name: &[u8]) -> FsResult<Change> {
        match self.kind(parent)? {
            Kind::Tags => self.writable()?,
            Kind::Keys | Kind::Tag(_) | Kind::Stale => {
                return Err(FsError::Invalid("not a directory"));
            }
            _ => return Err(FsError::NotPermitted("fixed layout")),
        }
        if !self.store().invalidate_tag(name)? {
            return Err(FsError::NotFound);
        }
        bump(&self.fs.counters.invalidations);
        // Only names of nodes the kernel holds can be cached positively.
        let mut change = Change {
            tags: vec![name.to_vec()],
            ..Change::default()
        };
        for mount in &self.fs.mounts {
            for (entry, tags) in mount.nodes.lock().unwrap().entries_tagged(name) {
                change.entries.push((entry.into_vec(), tags.to_vec()));
            }
        }
        Ok(change)
    }

    /// `mkdir tags/<t>`: an empty tag.
    pub fn mkdir(&self, parent: u64, name: &[u8]) -> FsResult<(Attr, Change)> {
        match self.kind(parent)? {
            Kind::Tags => self.writable()?,
            Kind::Stale => return Err(FsError::ReadOnly),
            _ => return Err(FsError::NotPermitted("directories are made in tags/ only")),
        }
        if !self.store().create_tag(name)? {
            return Err(FsError::Exists);
        }
        let id = self.state().nodes.lock().unwrap().tag(name);
        let change = Change {
            tags: vec![name.to_vec()],
            ..Change::default()
        };
        Ok((self.fs.dir_attr(id), change))
    }

    /// `link keys/x tags/t/x`: adds tag t to x.
    pub fn link(&self, id: u64, newparent: u64, newname: &[u8]) -> FsResult<(Lookup, Change)> {
        let node = self.entry_node(id)?;
        let tag = match self.kind(newparent)? {
            Kind::Tag(t) => t,
            Kind::Stale => return Err(FsError::ReadOnly),
            _ => {
                return Err(FsError::NotPermitted(
                    "an entry is linked into tags/<tag>/ only",
                ));
            }
        };
        self.writable()?;
        if node.stale_view {
            return Err(FsError::ReadOnly);
        }
        let name = node.name.to_vec();
        if name != newname {
            return Err(FsError::Invalid("the link must keep the entry's name"));
        }
        let current = self.store().open_live(&name)?.ok_or(FsError::NotFound)?;
        let old_tags = current.meta.tags().to_vec();
        if old_tags.iter().any(|t| **t == *tag) {
            return Err(FsError::Exists);
        }
        if !self.store().tag_exists(&tag)? {
            return Err(FsError::NotFound);
        }
        let mut tags = old_tags.clone();
        tags.push(tag.to_vec());
        tags.sort();
        let published = self.store().retag_published(&name, &tags)?;
        bump(&self.fs.counters.commits);
        if let Some(old) = published.replaced {
            self.fs.pin_for_readers(old);
        }
        let v = published.version;
        let mut change = Change::entry(&name, tags);
        change.tags = published.created;
        Ok((self.node_for(&v.meta, &name, false), change))
    }

    /// `rename` within keys/ (or within one tag directory): moves the entry.
    pub fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: u32,
    ) -> FsResult<Change> {
        let (from, to) = (self.kind(parent)?, self.kind(newparent)?);
        match (&from, &to) {
            (Kind::Stale, _) | (_, Kind::Stale) => return Err(FsError::ReadOnly),
            (Kind::Keys, Kind::Keys) => {}
            (Kind::Tag(a), Kind::Tag(b)) if a == b => {}
            (Kind::Keys | Kind::Tag(_), Kind::Keys | Kind::Tag(_)) => {
                return Err(FsError::CrossDir);
            }
            _ => {
                return Err(FsError::NotPermitted(
                    "tags and fixed directories are not renamed",
                ));
            }
        }
        self.writable()?;
        if flags & RENAME_EXCHANGE != 0 {
            return Err(FsError::Invalid("RENAME_EXCHANGE"));
        }
        let store = self.store();
        let current = store.open_live(name)?.ok_or(FsError::NotFound)?;
        if let Kind::Tag(t) = &from
            && !current.meta.tags().iter().any(|x| **x == **t)
        {
            return Err(FsError::NotFound);
        }
        let noreplace = flags & RENAME_NOREPLACE != 0;
        let replaced = store.open_live(newname)?;
        if noreplace && replaced.is_some() {
            return Err(FsError::Exists);
        }
        if name == newname {
            return Ok(Change::default());
        }
        crate::failpoint::check("rename.checked")?;
        let renamed = if noreplace {
            store.rename_noreplace(name, newname)
        } else {
            store.rename(name, newname)
        };
        let v = renamed.map_err(|e| match e.os_error() {
            Some(libc::EEXIST) => FsError::Exists,
            _ => e.into(),
        })?;
        for mount in &self.fs.mounts {
            mount.nodes.lock().unwrap().rename_version(&v.meta, newname);
        }
        let mut change = Change::entry(name, v.meta.tags().to_vec());
        let replaced_tags = replaced.map(|r| r.meta.tags().to_vec()).unwrap_or_default();
        change.entries.push((
            newname.to_vec(),
            [v.meta.tags().to_vec(), replaced_tags].concat(),
        ));
        Ok(change)
    }
}
