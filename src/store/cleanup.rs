//! Cleanup and counting: the only code that walks the whole store.
//!
//! Cleanup removes only what is dead by the seed's rules (mtime, link count,
//! link names) plus the record's tag count, and only what it can lock: a
//! draft or lock file a live process holds is flocked, and so is a version
//! still being linked, so none of them is ever taken from under its owner.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use super::error::{Context, Result};
use super::{Store, Time, is_absent, layout, sys};

/// What one cleanup removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CleanupReport {
    pub entries: u64,
    pub bytes: u64,
    pub tag_links: u64,
    pub tag_dirs: u64,
    pub tmp_files: u64,
    /// Live entries evicted to bring the store within its bound.
    pub evicted: u64,
    pub evicted_bytes: u64,
}

/// What the store holds.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    pub entries: u64,
    pub bytes: u64,
    pub stale_entries: u64,
    pub stale_bytes: u64,
    pub tags: u64,
}

/// Removes `name` (a directory in `parent`) and everything in it. Loops until
/// the directory itself is gone, so a link added while it was being emptied
/// is removed too.
pub(super) fn remove_tree(store: &Store, parent: BorrowedFd, name: &str) -> io::Result<()> {
    loop {
        let dir = match sys::open_dir(parent, name) {
            Ok(d) => d,
            Err(e) if is_absent(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        for child in sys::read_dir_or_gone(dir.as_fd())? {
            let Some(child) = sys::as_str(&child) else {
                continue;
            };
            match store.unlink_counted(dir.as_fd(), child) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                    remove_tree(store, dir.as_fd(), child)?
                }
                Err(e) if is_absent(&e) => {}
                Err(e) => return Err(e),
            }
        }
        match sys::unlinkat(parent, name, true) {
            Ok(()) => return Ok(()),
            Err(e) if is_absent(&e) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn is_reg(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG
}

fn expired(st: &libc::stat, now: Time) -> bool {
    Time {
        sec: st.st_mtime,
        nsec: st.st_mtime_nsec,
    } <= now
}

/// What hears how far a walk of the store is: (phase, done, of how many).
pub type ProgressFn<'a> = dyn Fn(&str, u64, u64) + Sync + 'a;

/// How a cleanup runs.
#[derive(Default)]
pub struct Options<'a> {
    /// Count what would be removed; remove nothing.
    pub dry_run: bool,
    /// Told how far the walk is.
    pub progress: Option<&'a ProgressFn<'a>>,
}

impl Options<'_> {
    fn tell(&self, phase: &str, done: u64, total: u64) {
        if let Some(p) = self.progress {
            p(phase, done, total);
        }
    }
}

pub(super) fn run(store: &Store, opts: &Options) -> Result<CleanupReport> {
    let mut report = CleanupReport::default();
    let now = Time::now();
    clean_tmp(store, opts.dry_run, &mut report)?;

    // Tag links first: an inode whose link says it needs N links but has
    // another count lost a tag, and its key file is invalid even when it has
    // no record of its own (a store written by the seed).
    // Two walks, one bucket at a time: memory stays flat however big the
    // store is (the set holds only inodes found invalid by a tag link).
    let mut invalid: HashSet<u64> = HashSet::new();
    let dry = opts.dry_run;
    store.walk_buckets_inos(
        |rel, file, _| match sys::as_str(file) {
            Some(file) if store.ns.is_tag(file.as_bytes()) => gone_is_done(clean_tag_dir(
                store,
                &format!("{rel}/{file}"),
                now,
                dry,
                &mut invalid,
                &mut report,
            )),
            _ => Ok(()),
        },
        &mut |done, total| opts.tell("tag links", done, total),
    )?;
    store.walk_buckets_inos(
        |rel, file, _| match sys::as_str(file) {
            Some(file) if store.ns.is_key(file.as_bytes()) => {
                gone_is_done(clean_key(store, rel, file, now, dry, &invalid, &mut report))
            }
            _ => Ok(()),
        },
        &mut |done, total| opts.tell("entries", done, total),
    )?;
    if dry {
        return Ok(report);
    }
    log::info!(
        "cleanup of {}: {} entries ({} bytes), {} tag links, {} tag dirs, {} tmp files removed",
        store.path.display(),
        report.entries,
        report.bytes,
        report.tag_links,
        report.tag_dirs,
        report.tmp_files
    );
    Ok(report)
}

/// Only what a crashed process left in `tmp/`: drafts, lock files, the
/// remains of removed tag directories and reaped entries.
pub(super) fn reclaim_tmp(store: &Store) -> Result<CleanupReport> {
    let mut report = CleanupReport::default();
    clean_tmp(store, false, &mut report)?;
    Ok(report)
}

fn clean_tmp(store: &Store, dry: bool, report: &mut CleanupReport) -> Result<()> {
    let tmp = store.tmp.as_fd();
    let now = Time::now();
    for name in sys::read_dir(tmp).at(|| store.show_tmp(""))? {
        let Some(name) = sys::as_str(&name) else {
            continue;
        };
        let shown = || store.show_tmp(name);
        if name.starts_with("dead.") {
            // A removed tag directory's remains: only a real directory (a
            // symlink planted under that name is not ours to follow).
            let is_dir =
                sys::lstatat(tmp, name).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
            if is_dir {
                if !dry {
                    remove_tree(store, tmp, name).at(shown)?;
                }
                report.tmp_files += 1;
            }
            continue;
        }
        let ours = name.starts_with("w.") || name.starts_with("lock:") || name.starts_with("reap.");
        if !ours {
            // Another program's (the library's `tmp…` drafts): only a
            // regular file nothing changed for `foreign_tmp_age`.
            let old = sys::lstatat(tmp, name).is_ok_and(|st| {
                is_reg(&st)
                    && now.secs_since(Time::at(st.st_ctime)) > store.foreign_tmp_age.as_secs_f64()
            });
            if !old {
                continue;
            }
        }
        let file = match sys::open_file(tmp, name) {
            Ok(f) => f,
            Err(e) if is_absent(&e) => continue,
            Err(e) => return Err(e).at(shown),
        };
        if !sys::try_flock(file.as_fd(), true).at(shown)? {
            continue;
        }
        let ino = sys::fstat(file.as_fd()).at(shown)?.st_ino;
        match sys::lstatat(tmp, name) {
            Ok(st) if st.st_ino == ino => {}
            _ => continue,
        }
        if dry {
            report.tmp_files += 1;
            continue;
        }
        match store.unlink_counted(tmp, name) {
            Ok(_) => report.tmp_files += 1,
            Err(e) if is_absent(&e) => {}
            Err(e) => return Err(e).at(shown),
        }
    }
    Ok(())
}

/// Passes each regular-file link `N:INO` of the tag directory at `tag_rel`
/// to `f`, with its `SS` directory, `N` and its stat; then `done` with each
/// `SS` directory once passed. `false` when there is no such directory.
fn walk_tag_links(
    store: &Store,
    tag_rel: &str,
    f: &mut dyn FnMut(BorrowedFd, &str, u64, &libc::stat) -> Result<()>,
    done: &mut dyn FnMut(BorrowedFd, &str),
) -> Result<bool> {
    let shown = || store.show(tag_rel);
    let tag_dir = match sys::open_dir(store.data.as_fd(), tag_rel) {
        Ok(d) => d,
        Err(e) if is_absent(&e) => return Ok(false),
        Err(e) => return Err(e).at(shown),
    };
    for ss in sys::read_dir_or_gone(tag_dir.as_fd()).at(shown)? {
        let Some(ss) = sys::as_str(&ss) else { continue };
        let Ok(ss_dir) = sys::open_dir(tag_dir.as_fd(), ss) else {
            continue;
        };
        for link in sys::read_dir_or_gone(ss_dir.as_fd()).at(shown)? {
            let Some((need, ino)) = layout::parse_tag_link(&link) else {
                continue;
            };
            let Some(link) = sys::as_str(&link) else {
                continue;
            };
            match sys::lstatat(ss_dir.as_fd(), link) {
                Ok(st) if is_reg(&st) && st.st_ino == ino => f(ss_dir.as_fd(), link, need, &st)?,
                _ => continue,
            }
        }
        done(tag_dir.as_fd(), ss);
    }
    Ok(true)
}

/// ENOENT, ESTALE: what a step was looking at was removed meanwhile (by
/// another process, or by another client of a network file system, which
/// answers ESTALE or ENOENT even on a descriptor: GlusterFS); there is
/// nothing left to clean.
fn gone_is_done(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if matches!(e.os_error(), Some(libc::ESTALE | libc::ENOENT)) => Ok(()),
        other => other,
    }
}

fn clean_tag_dir(
    store: &Store,
    tag_rel: &str,
    now: Time,
    dry: bool,
    invalid: &mut HashSet<u64>,
    report: &mut CleanupReport,
) -> Result<()> {
    let shown = || store.show(tag_rel);
    let mut kept = 0u64;
    let mut each = |ss_dir: BorrowedFd, link: &str, need: u64, st: &libc::stat| {
        let links_ok = st.st_nlink == need;
        if links_ok && !expired(st, now) {
            kept += 1;
            return Ok(());
        }
        // A version still being committed is flocked by its writer.
        let Ok(file) = sys::open_file(ss_dir, link) else {
            return Ok(());
        };
        if !sys::try_flock(file.as_fd(), false).unwrap_or(false) {
            kept += 1;
            return Ok(());
        }
        if dry {
            if !links_ok {
                invalid.insert(st.st_ino);
            }
            report.tag_links += 1;
            return Ok(());
        }
        if !links_ok {
            invalid.insert(st.st_ino);
            // As the library's cleanup does: an entry without a record
            // expires through the link first, so that it stays invalid
            // once its links are gone.
            if let Ok(meta) = store.meta_of(file.as_fd(), shown) {
                store.note_link(&meta, need);
                if meta.record.is_none() {
                    let _ = sys::set_mtime(file.as_fd(), now.sec, now.nsec);
                }
            }
        }
        match store.unlink_counted(ss_dir, link) {
            Ok(_) => report.tag_links += 1,
            Err(e) if is_absent(&e) => {}
            Err(e) => return Err(e).at(shown),
        }
        Ok(())
    };
    let mut drop_ss = |tag_dir: BorrowedFd, ss: &str| {
        if !dry {
            let _ = sys::unlinkat(tag_dir, ss, true);
        }
    };
    if !walk_tag_links(store, tag_rel, &mut each, &mut drop_ss)? {
        return Ok(());
    }
    if dry {
        if kept == 0 {
            report.tag_dirs += 1;
        }
        return Ok(());
    }
    // An empty tag directory goes too; ENOTEMPTY means it is in use.
    let (dir, file) = tag_rel.rsplit_once('/').expect("tag paths have a bucket");
    if let Ok(bucket) = sys::open_dir(store.data.as_fd(), dir)
        && sys::unlinkat(bucket.as_fd(), file, true).is_ok()
    {
        report.tag_dirs += 1;
    }
    Ok(())
}

fn clean_key(
    store: &Store,
    rel: &str,
    file: &str,
    now: Time,
    dry: bool,
    invalid: &HashSet<u64>,
    report: &mut CleanupReport,
) -> Result<()> {
    let path = format!("{rel}/{file}");
    let shown = || store.show(&path);
    let bucket = match sys::open_dir(store.data.as_fd(), rel) {
        Ok(b) => b,
        Err(e) if is_absent(&e) => return Ok(()),
        Err(e) => return Err(e).at(shown),
    };
    let version = match sys::open_file(bucket.as_fd(), file) {
        Ok(f) => f,
        Err(_) => return Ok(()),
    };
    let meta = store.meta_of(version.as_fd(), shown)?;
    if !meta.regular {
        return Ok(());
    }
    // `invalid` judges only entries without a record (written by another
    // program): inode numbers are reused, and a fresh version of ours may
    // carry the number of one found dead a moment ago.
    let dead = !meta.is_live_at(now) || (meta.record.is_none() && invalid.contains(&meta.ino));
    // A seed process regenerating an entry holds its flock.
    if !dead || !sys::try_flock(version.as_fd(), true).at(shown)? {
        return Ok(());
    }
    if dry {
        report.entries += 1;
        report.bytes += meta.size;
        return Ok(());
    }
    if reap(store, bucket.as_fd(), file, meta.ino, shown)?.is_some() {
        report.entries += 1;
        report.bytes += meta.size;
    }
    Ok(())
}

/// Removes the version at `file` in `bucket` if it is still inode `ino`
/// (judged dead by the caller): the bytes that freed (0 while other names
/// of it remain), or `None` if it was not removed.
///
/// It is moved out first, then checked: a commit may have renamed a new
/// version onto the name in between, and that one is put back (unless an
/// even newer one is there by then).
pub(super) fn reap(
    store: &Store,
    bucket: BorrowedFd,
    file: &str,
    ino: u64,
    shown: impl Fn() -> String,
) -> Result<Option<u64>> {
    let reap = store.unique("reap");
    match sys::renameat(bucket, file, store.tmp.as_fd(), &reap, 0) {
        Ok(()) => {}
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(e).at(&shown),
    }
    let moved = sys::lstatat(store.tmp.as_fd(), &reap).at(|| store.show_tmp(&reap))?;
    if moved.st_ino != ino {
        match sys::renameat(
            store.tmp.as_fd(),
            &reap,
            bucket,
            file,
            libc::RENAME_NOREPLACE,
        ) {
            Ok(()) => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e).at(&shown),
        }
    }
    let freed = store
        .unlink_counted(store.tmp.as_fd(), &reap)
        .at(|| store.show_tmp(&reap))?;
    Ok((moved.st_ino == ino).then_some(freed))
}

/// What the store's files occupy: the blocks of the regular files under
/// data/ and tmp/, each inode once (every name counts its share, blocks /
/// links), plus what drafts have reserved beyond their size. One bucket at
/// a time: memory stays flat.
pub(super) fn disk_usage(store: &Store) -> Result<u64> {
    let share = |st: &libc::stat| {
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return 0;
        }
        st.st_blocks as u64 * 512 / st.st_nlink.max(1)
    };
    let mut total = 0u64;
    store.walk_buckets(|rel, file| {
        let Some(file) = sys::as_str(file) else {
            return Ok(());
        };
        let path = format!("{rel}/{file}");
        if store.ns.is_key(file.as_bytes()) {
            if let Ok(st) = sys::lstatat(store.data.as_fd(), &path) {
                total += share(&st);
            }
        } else if store.ns.is_tag(file.as_bytes()) {
            total += links_usage(store, &path, &share);
        }
        Ok(())
    })?;
    for (name, _) in sys::read_dir_inos(store.tmp.as_fd()).at(|| store.show_tmp(""))? {
        let Some(name) = sys::as_str(&name) else {
            continue;
        };
        let Ok(st) = sys::lstatat(store.tmp.as_fd(), name) else {
            continue;
        };
        total += share(&st);
        if name.starts_with("w.")
            && let Ok(f) = sys::open_file(store.tmp.as_fd(), name)
            && let Ok(Some(r)) = sys::fgetxattr(f.as_fd(), super::RESERVED)
            && let Some(reserved) = std::str::from_utf8(&r)
                .ok()
                .and_then(|r| r.parse::<u64>().ok())
        {
            total += reserved.saturating_sub(st.st_blocks as u64 * 512);
        }
    }
    Ok(total)
}

fn links_usage(store: &Store, tag_rel: &str, share: &dyn Fn(&libc::stat) -> u64) -> u64 {
    let Ok(tag_dir) = sys::open_dir(store.data.as_fd(), tag_rel) else {
        return 0;
    };
    let mut total = 0;
    for ss in sys::read_dir(tag_dir.as_fd()).unwrap_or_default() {
        let Some(ss) = sys::as_str(&ss) else { continue };
        let Ok(ss_dir) = sys::open_dir(tag_dir.as_fd(), ss) else {
            continue;
        };
        for link in sys::read_dir(ss_dir.as_fd()).unwrap_or_default() {
            if let Some(link) = sys::as_str(&link)
                && let Ok(st) = sys::lstatat(ss_dir.as_fd(), link)
            {
                total += share(&st);
            }
        }
    }
    total
}

pub(super) fn stats(store: &Store, progress: &mut dyn FnMut(&str, u64, u64)) -> Result<StoreStats> {
    let mut stats = StoreStats::default();
    let now = Time::now();
    // As cleanup judges them: an entry without a record whose tag link
    // says it needs another link count than it has is not live.
    let mut invalid: HashSet<u64> = HashSet::new();
    store.walk_buckets_inos(
        |rel, file, _| {
            if !store.ns.is_tag(file) {
                return Ok(());
            }
            stats.tags += 1;
            let Some(file) = sys::as_str(file) else {
                return Ok(());
            };
            let mut each = |_: BorrowedFd, _: &str, need: u64, st: &libc::stat| {
                if st.st_nlink != need {
                    invalid.insert(st.st_ino);
                }
                Ok(())
            };
            walk_tag_links(store, &format!("{rel}/{file}"), &mut each, &mut |_, _| {})?;
            Ok(())
        },
        &mut |done, total| progress("tag links", done, total),
    )?;
    let mut entries = |rel: &str, file: &[u8], _| {
        let Some(file) = sys::as_str(file).filter(|f| store.ns.is_key(f.as_bytes())) else {
            return Ok(());
        };
        let rel = format!("{rel}/{file}");
        let Ok(file) = sys::open_file(store.data.as_fd(), &rel) else {
            return Ok(());
        };
        let Ok(meta) = store.meta_of(file.as_fd(), || store.show(&rel)) else {
            return Ok(());
        };
        let links_lost = meta.record.is_none() && invalid.contains(&meta.ino);
        if meta.is_live_at(now) && !links_lost {
            stats.entries += 1;
            stats.bytes += meta.size;
        } else {
            stats.stale_entries += 1;
            stats.stale_bytes += meta.size;
        }
        Ok(())
    };
    store.walk_buckets_inos(&mut entries, &mut |done, total| {
        progress("entries", done, total)
    })?;
    Ok(stats)
}
