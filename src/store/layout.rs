//! Where things live in the store: the seed's md5 fan-out and file names.
//!
//! `data/AA/BB/key:<hex(name)>` is an entry, `data/CC/DD/tag:<hex(tag)>` a
//! tag directory, and `SS/<N>:<INO>` inside it a hard link of an entry that
//! must have `N` links, `SS` being the last two characters of that link name.
//! The prefixes are the store's namespace: `key:`/`tag:` (ours, and the
//! library's README), or `k:`/`t:` (what the tagcache library writes by
//! default). Nothing else in the crate builds these names.

use md5::{Digest, Md5};

use super::error::{Error, Result};

/// The longest name or tag, in bytes: `key:` + 250 hex digits fits in 255.
pub const MAX_NAME: usize = 125;

/// Expiry time stored for an entry that never expires (as the seed).
pub const NEVER: i64 = 1 << 32;

/// A path below `data/`: the two fan-out directories and the file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sharded {
    pub dir: String,
    pub file: String,
}

impl Sharded {
    fn new(file: String) -> Sharded {
        let digest = hex::encode(Md5::digest(file.as_bytes()));
        Sharded {
            dir: format!("{}/{}", &digest[0..2], &digest[2..4]),
            file,
        }
    }

    /// `AA/BB/<file>`, relative to `data/`.
    pub fn path(&self) -> String {
        format!("{}/{}", self.dir, self.file)
    }
}

/// The prefixes of entry and tag file names in `data/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Namespace {
    pub key: &'static str,
    pub tag: &'static str,
}

/// `key:` and `tag:`: the default.
pub const OURS: Namespace = Namespace {
    key: "key:",
    tag: "tag:",
};

/// `k:` and `t:`: the tagcache library's defaults (`Cache.key_ns`,
/// `Cache.tag_ns`).
pub const LIBRARY: Namespace = Namespace {
    key: "k:",
    tag: "t:",
};

impl Namespace {
    /// Where the entry `name` lives.
    pub fn key_path(&self, name: &[u8]) -> Sharded {
        Sharded::new(format!("{}{}", self.key, hex::encode(name)))
    }

    /// Where the directory of tag `tag` lives.
    pub fn tag_path(&self, tag: &[u8]) -> Sharded {
        Sharded::new(format!("{}{}", self.tag, hex::encode(tag)))
    }

    pub fn is_key(&self, file: &[u8]) -> bool {
        file.starts_with(self.key.as_bytes())
    }

    pub fn is_tag(&self, file: &[u8]) -> bool {
        file.starts_with(self.tag.as_bytes())
    }

    /// The entry name a key file name holds.
    pub fn decode_key(&self, file: &[u8]) -> Option<Vec<u8>> {
        decode(self.key, file)
    }

    /// The tag a tag directory's name holds.
    pub fn decode_tag(&self, file: &[u8]) -> Option<Vec<u8>> {
        decode(self.tag, file)
    }

    /// `k` or `key`: how the command line names it.
    pub fn label(&self) -> &'static str {
        self.key.trim_end_matches(':')
    }
}

/// Where the entry `name` lives in our namespace.
#[cfg(test)]
pub fn key_path(name: &[u8]) -> Sharded {
    OURS.key_path(name)
}

/// Where the directory of tag `tag` lives in our namespace.
#[cfg(test)]
pub fn tag_path(tag: &[u8]) -> Sharded {
    OURS.tag_path(tag)
}

/// The link of inode `ino` in a tag directory: `(SS, "N:INO")`.
pub fn tag_link(nlink: u64, ino: u64) -> (String, String) {
    let name = format!("{nlink}:{ino}");
    let ss = name[name.len() - 2..].to_string();
    (ss, name)
}

/// Parses a tag link name `N:INO`.
pub fn parse_tag_link(name: &[u8]) -> Option<(u64, u64)> {
    let s = std::str::from_utf8(name).ok()?;
    let (n, ino) = s.split_once(':')?;
    Some((n.parse().ok()?, ino.parse().ok()?))
}

/// Decodes `key:<hex>` / `tag:<hex>` file names back to the name.
fn decode(prefix: &str, file: &[u8]) -> Option<Vec<u8>> {
    let hex_part = file.strip_prefix(prefix.as_bytes())?;
    let name = hex::decode(hex_part).ok()?;
    (!name.is_empty() && name.len() <= MAX_NAME).then_some(name)
}

/// Name of the single-flight lock file of entry `name`, under `tmp/`.
pub fn lock_file(name: &[u8]) -> String {
    format!("lock:{}", hex::encode(name))
}

/// Checks an entry name: any bytes but `/` and NUL, 1 to 125 bytes.
pub fn check_name(name: &[u8]) -> Result<()> {
    if name.len() > MAX_NAME {
        return Err(Error::NameTooLong(name.len()));
    }
    if name.is_empty() || name == b"." || name == b".." {
        return Err(Error::InvalidName(lossy(name), "empty, . or .."));
    }
    if name.iter().any(|&b| b == b'/' || b == 0) {
        return Err(Error::InvalidName(lossy(name), "contains / or NUL"));
    }
    Ok(())
}

/// Checks a tag: as a name, and no comma or blank either.
pub fn check_tag(tag: &[u8]) -> Result<()> {
    check_name(tag)?;
    if tag.iter().any(|&b| b == b',' || b.is_ascii_whitespace()) {
        return Err(Error::InvalidName(
            lossy(tag),
            "a tag holds no comma or blank",
        ));
    }
    Ok(())
}

/// Parses a comma-separated tag list, blanks around names ignored; duplicates
/// are dropped and the result is sorted, so equal sets compare equal.
pub fn parse_tags(list: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut tags = Vec::new();
    for part in list.split(|&b| b == b',') {
        let tag = part.trim_ascii();
        if tag.is_empty() {
            continue;
        }
        check_tag(tag)?;
        tags.push(tag.to_vec());
    }
    tags.sort();
    tags.dedup();
    Ok(tags)
}

/// Joins tags into the list `user.tags` shows.
pub fn join_tags(tags: &[Vec<u8>]) -> Vec<u8> {
    tags.join(&b","[..])
}

/// A name for messages: UTF-8 where it is, escaped elsewhere.
pub fn lossy(name: &[u8]) -> String {
    name.escape_ascii().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_readme_example_paths() {
        assert_eq!(
            key_path(b"blog-home").path(),
            "ae/08/key:626c6f672d686f6d65"
        );
        assert_eq!(tag_path(b"bio").path(), "18/ae/tag:62696f");
        assert_eq!(tag_path(b"blog-new").dir, "37/64");
        assert_eq!(tag_path(b"blog-new").file, "tag:626c6f672d6e6577");
    }

    #[test]
    fn tag_link_shards_by_last_two_characters() {
        assert_eq!(tag_link(3, 110235185), ("85".into(), "3:110235185".into()));
        assert_eq!(parse_tag_link(b"3:110235185"), Some((3, 110235185)));
        assert_eq!(parse_tag_link(b"x:1"), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name(b"blog home\n\xff").is_ok());
        assert!(matches!(
            check_name(&[b'a'; 126]),
            Err(Error::NameTooLong(126))
        ));
        assert!(check_name(&[b'a'; 125]).is_ok());
        assert!(check_name(b"a/b").is_err());
        assert!(check_name(b"a\0b").is_err());
        assert!(check_name(b"").is_err());
        assert!(check_name(b"..").is_err());
        assert!(check_tag(b"a b").is_err());
        assert!(check_tag(b"a,b").is_err());
        assert_eq!(key_path(&[b'a'; 125]).file.len(), 254);
        assert_eq!(lock_file(&[b'a'; 125]).len(), 255);
    }

    #[test]
    fn tag_lists_parse_with_blanks_and_duplicates() {
        assert_eq!(
            parse_tags(b" b , a,,b ").unwrap(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(parse_tags(b"").unwrap(), Vec::<Vec<u8>>::new());
        assert!(parse_tags(b"a,b c").is_err());
    }

    #[test]
    fn decode_round_trips() {
        assert_eq!(
            decode("key:", key_path(b"x\xff").file.as_bytes()),
            Some(b"x\xff".to_vec())
        );
        assert_eq!(decode("key:", b"key:zz"), None);
        assert_eq!(decode("tag:", b"key:61"), None);
        assert_eq!(LIBRARY.decode_key(b"k:61"), Some(b"a".to_vec()));
        assert_eq!(LIBRARY.decode_key(b"key:61"), None);
    }

    #[test]
    fn the_library_namespace_hashes_its_own_prefix() {
        // tagcache 0.2.2: md5("k:" + hex(name)) names the fan-out.
        let p = LIBRARY.key_path(b"blog-home");
        assert_eq!(p.file, "k:626c6f672d686f6d65");
        let digest = hex::encode(Md5::digest(p.file.as_bytes()));
        assert_eq!(p.dir, format!("{}/{}", &digest[0..2], &digest[2..4]));
    }
}
