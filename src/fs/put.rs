//! `put/`: writing an entry with its tags and TTL in the path, for
//! languages that have no xattr call.
//!
//! `put/expire=3600/tags=a,b/NAME` opened for writing is exactly a write of
//! `keys/NAME` with `user.expire=3600` and `user.tags=a,b` set on the
//! descriptor before any data: committed at close, O_EXCL taking NAME's
//! single-flight lock, tags linked with the commit.
//!
//! The kernel never says whether a path component is the last one, so a
//! component must be a directory or a name before the walk goes on: a
//! component starting with `expire=` or `tags=` is a parameter directory
//! (a malformed value or a parameter given twice: EINVAL), anything else
//! is the entry's name. So a name may hold `=`, but not start with a
//! parameter. `put/` and its directories list empty and hold nothing.

use super::error::{FsError, FsResult};
use crate::store::layout;

/// The parameters a path below `put/` gives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Params {
    pub expire: Option<u64>,
    pub tags: Option<Vec<Vec<u8>>>,
}

impl Params {
    /// `component` as one more parameter, or `None` when it is a name.
    pub fn with(&self, component: &[u8]) -> FsResult<Option<Params>> {
        let mut next = self.clone();
        if let Some(value) = component.strip_prefix(b"expire=") {
            if self.expire.is_some() {
                return Err(FsError::Invalid("expire= given twice"));
            }
            next.expire = Some(super::xattr::parse_ttl(value)?);
        } else if let Some(value) = component.strip_prefix(b"tags=") {
            if self.tags.is_some() {
                return Err(FsError::Invalid("tags= given twice"));
            }
            next.tags = Some(layout::parse_tags(value)?);
        } else {
            return Ok(None);
        }
        Ok(Some(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_parse_once_each_and_names_are_the_rest() {
        let p = Params::default();
        let e = p.with(b"expire=3600").unwrap().unwrap();
        assert_eq!(e.expire, Some(3600));
        let t = e.with(b"tags= b, a").unwrap().unwrap();
        assert_eq!(t.tags, Some(vec![b"a".to_vec(), b"b".to_vec()]));
        assert_eq!(p.with(b"tags=").unwrap().unwrap().tags, Some(vec![]));
        assert!(t.with(b"blog-home").unwrap().is_none());
        assert!(t.with(b"a=b").unwrap().is_none(), "a name may hold =");
        assert!(e.with(b"expire=1").is_err(), "repeated");
        assert!(p.with(b"expire=soon").is_err(), "malformed");
        assert!(p.with(b"expire=4294967297").is_err(), "over 2^32");
        assert!(p.with(b"tags=a b").is_err(), "a tag with a blank");
    }
}
