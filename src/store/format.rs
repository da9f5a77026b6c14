//! How an entry's file holds its content: as is (ours), or in the tagcache
//! library's format, where the first line names the entry's tags joined by
//! `:` and the content follows it.
//!
//! A store shared with the library says so in `STORE/format` (written by
//! the first mount with `--tagcache-format`; every later process of ours
//! follows it). In that format:
//! - An entry's tags come from its record, else from its first line; its
//!   content starts after that line (`Meta::head`), and sizes and offsets
//!   count from there.
//! - A version we write keeps room for the line at its start (`HEAD`
//!   bytes): the tags are known only at commit, when the line is written
//!   there, padded with blanks (the library strips them). Tags that do not
//!   fit move the content once, in place.
//! - Validity is the library's: link count = tags + 1, mtime = expiry.
//!
//! In our own format, an entry without a record (another program's) is
//! judged by its expiry, and by its link count once a tag link of it was
//! seen: the link's name `N:INO` says it needs `N` links (`SeenLinks`).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::layout::{self, Namespace};
use super::{Meta, Record, sys};

/// The marker file of a store shared with the tagcache library.
pub const MARKER: &str = "format";

/// Room kept for the tags line at the start of a version we write in the
/// library's format.
pub const HEAD: u64 = 512;

/// The longest first line read: a longer one is not the library's.
const MAX_LINE: usize = 64 << 10;

/// How entries' files hold their content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// The content as is; tags, TTL and name in the record.
    #[default]
    Native,
    /// The tagcache library's: the tags line, then the content.
    Tagcache,
}

impl Format {
    /// Where a new draft's content starts.
    pub fn draft_head(self) -> u64 {
        match self {
            Format::Native => 0,
            Format::Tagcache => HEAD,
        }
    }
}

/// What `STORE/format` holds: the format and the namespace.
pub fn marker_text(ns: Namespace) -> String {
    format!("tagcache {}\n", ns.label())
}

/// Parses `STORE/format`.
pub fn parse_marker(text: &str) -> Option<Namespace> {
    match text.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["tagcache", "k"] => Some(layout::LIBRARY),
        ["tagcache", "key"] => Some(layout::OURS),
        _ => None,
    }
}

/// The first line of a file in the library's format: where the content
/// starts, the tags it names that are tags (blanks and empty parts
/// dropped, as the library does), and how many parts it has (what the
/// library counts against the link count).
pub fn read_line(file: BorrowedFd, size: u64) -> io::Result<(u64, Vec<Vec<u8>>, u64)> {
    let want = (size as usize).min(MAX_LINE);
    let mut buf = vec![0u8; want.min(4096)];
    let mut got = 0;
    loop {
        let n = sys::pread(file, &mut buf[got..], got as u64)?;
        got += n;
        if let Some(i) = buf[..got].iter().position(|&b| b == b'\n') {
            let (tags, parts) = parse_line(&buf[..i]);
            return Ok((i as u64 + 1, tags, parts));
        }
        if n == 0 || got >= want {
            // No newline: the library reads the whole file as the line.
            let (tags, parts) = parse_line(&buf[..got]);
            return Ok((size, tags, parts));
        }
        if got == buf.len() {
            buf.resize((buf.len() * 4).min(want), 0);
        }
    }
}

/// The tags of a first line (without its newline), and its part count.
pub fn parse_line(line: &[u8]) -> (Vec<Vec<u8>>, u64) {
    let mut parts: Vec<Vec<u8>> = line
        .trim_ascii()
        .split(|&b| b == b':')
        .map(|p| p.to_vec())
        .filter(|p| !p.is_empty())
        .collect();
    parts.sort();
    parts.dedup();
    let count = parts.len() as u64;
    parts.retain(|t| layout::check_tag(t).is_ok());
    (parts, count)
}

/// The first line for `tags`, padded with blanks to `room` bytes when it
/// fits (its newline last); `None` when it does not.
pub fn line_for(tags: &[Vec<u8>], room: u64) -> Option<Vec<u8>> {
    let mut line = tags.join(&b":"[..]);
    if line.len() as u64 + 1 > room {
        return None;
    }
    line.resize(room as usize - 1, b' ');
    line.push(b'\n');
    Some(line)
}

/// Moves `len` bytes at `from` in `file` to `to` (> `from`), from the end
/// backwards, so that nothing is overwritten before it is moved.
pub fn shift_forward(file: &File, from: u64, to: u64, len: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64);
        let at = left - n;
        file.read_exact_at(&mut buf[..n as usize], from + at)?;
        file.write_all_at(&buf[..n as usize], to + at)?;
        left = at;
    }
    Ok(())
}

/// Link counts learnt from tag links' names (`N:INO`) for entries without a
/// record, by inode and version (birth time). Bounded: past `CAP` it
/// starts over (an entry then waits for its links to be seen again).
#[derive(Debug, Default)]
pub struct SeenLinks {
    map: Mutex<HashMap<(u64, u64), u64>>,
}

const CAP: usize = 1 << 18;

impl SeenLinks {
    pub fn note(&self, ino: u64, ver: u64, want: u64) {
        let mut map = self.map.lock().unwrap();
        if map.len() >= CAP {
            map.clear();
        }
        map.insert((ino, ver), want);
    }

    pub fn get(&self, ino: u64, ver: u64) -> Option<u64> {
        self.map.lock().unwrap().get(&(ino, ver)).copied()
    }
}

/// The names of the entries' key files by inode number, for the versions
/// without a record that a tag link leads to (the library's): made by a
/// walk of the store when one is not in it, at most once a second.
#[derive(Debug, Default)]
pub struct Names {
    /// When the map was made, and the map.
    map: Mutex<(Option<Instant>, NameMap)>,
}

type NameMap = HashMap<u64, Vec<u8>>;

const NAMES_KEPT: Duration = Duration::from_secs(1);

/// Where the rest of an entry's metadata comes from: its open file, or its
/// name in a directory (opened only when the first line must be read).
pub enum Source<'a> {
    Fd(BorrowedFd<'a>),
    At(BorrowedFd<'a>, &'a str),
}

impl super::Store {
    /// Completes `meta` (made from a stat and the record) by the store's
    /// format: where the content starts, the tags line, the link count an
    /// entry without a record must have.
    pub(super) fn shape(&self, meta: Meta, src: Source) -> Meta {
        let st_size = meta.size;
        if let Some(Record { head, .. }) = meta.record {
            return meta.with_head(head, st_size);
        }
        if !meta.regular {
            return meta;
        }
        let mut meta = meta;
        match self.format {
            Format::Tagcache => {
                let line = match src {
                    Source::Fd(fd) => read_line(fd, st_size),
                    Source::At(dir, name) => {
                        sys::open_file(dir, name).and_then(|f| read_line(f.as_fd(), st_size))
                    }
                };
                match line {
                    Ok((head, tags, parts)) => {
                        meta.line_tags = Some(tags);
                        meta.want_links = Some(parts + 1);
                        meta.with_head(head, st_size)
                    }
                    // Unreadable: never served (no file has 0 links).
                    Err(_) => {
                        meta.want_links = Some(0);
                        meta
                    }
                }
            }
            Format::Native => {
                meta.want_links = self.seen_links.get(meta.ino, meta.ver);
                meta
            }
        }
    }

    /// A tag link `N:INO` of an entry without a record was seen (a tag
    /// walk, cleanup): from now on the entry needs `N` links.
    pub fn note_link(&self, meta: &Meta, want: u64) {
        if meta.record.is_none() && self.format == Format::Native {
            self.seen_links.note(meta.ino, meta.ver, want);
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The name of the entry whose key file is inode `ino` (a version
    /// without a record, found through a tag link), if it has one.
    pub fn name_of_inode(&self, ino: u64) -> super::Result<Option<Vec<u8>>> {
        let mut names = self.names.map.lock().unwrap();
        if let Some(name) = names.1.get(&ino) {
            return Ok(Some(name.clone()));
        }
        if names.0.is_some_and(|at| at.elapsed() < NAMES_KEPT) {
            return Ok(None);
        }
        let mut map = HashMap::new();
        let ns = self.ns;
        self.walk_buckets_inos(
            |_, file, ino| {
                if let Some(name) = ns.decode_key(file) {
                    map.insert(ino, name);
                }
                Ok(())
            },
            &mut |_, _| {},
        )?;
        *names = (Some(Instant::now()), map);
        Ok(names.1.get(&ino).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_as_the_library_reads_them() {
        assert_eq!(
            parse_line(b"bio:blog-new"),
            (vec![b"bio".to_vec(), b"blog-new".to_vec()], 2)
        );
        assert_eq!(parse_line(b""), (vec![], 0));
        assert_eq!(
            parse_line(b"a::b   "),
            (vec![b"a".to_vec(), b"b".to_vec()], 2)
        );
        // Not a tag of ours, still a part the library counts.
        assert_eq!(parse_line(b"a:b c"), (vec![b"a".to_vec()], 2));
    }

    #[test]
    fn a_padded_line_reads_back_as_its_tags() {
        let tags = vec![b"a".to_vec(), b"bb".to_vec()];
        let line = line_for(&tags, HEAD).unwrap();
        assert_eq!(line.len() as u64, HEAD);
        assert_eq!(parse_line(&line[..line.len() - 1]), (tags, 2));
        assert!(line_for(&[vec![b'x'; 600]], HEAD).is_none());
        assert_eq!(line_for(&[], 1).unwrap(), b"\n");
    }

    #[test]
    fn markers_round_trip() {
        for ns in [layout::LIBRARY, layout::OURS] {
            assert_eq!(parse_marker(&marker_text(ns)), Some(ns));
        }
        assert_eq!(parse_marker("native"), None);
    }
}
