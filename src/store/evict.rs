//! Keeping the store within its bound: `--max-size` and `--min-free`.
//!
//! Invariants:
//! - Space is taken only through a reservation: a draft reserves room in
//!   the ledger before its bytes are written, chunk by chunk, so however
//!   many writers run, `used` (files and reservations) never passes
//!   `max_size`; an entry larger than the bound is refused (EFBIG).
//! - When a reservation does not fit, room is made first from the dead
//!   (expired, invalidated, torn), then from the least recently used live
//!   entries, chosen by sampling (a pool of the best candidates among
//!   random buckets, as Redis does); never the version being written, and
//!   one born within `young` only when the samples hold nothing older.
//! - An evicted entry is invalidated (it would be in `stale/`) and, since
//!   the room is needed now, reclaimed at once: its tag links, then its key
//!   file. A background sweep keeps `used` between the low and high
//!   watermarks, so that most commits find room without evicting.
//! - Recency is the entry file's atime, which the mount sets at most once
//!   a minute per entry it serves (`Store::note_use`): it survives a
//!   restart and is shared by every mount of the store.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::error::{Context, Error, Result};
use super::ledger::Figures;
use super::{Draft, Meta, Store, Time, is_absent, layout, sys};

/// How much free space to keep on the store's file system.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MinFree {
    Bytes(u64),
    /// Of the file system's size.
    Percent(f64),
}

/// A store's bound, from the command line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub max_size: Option<u64>,
    pub min_free: Option<MinFree>,
    /// Entries born this recently go last (they have had no time to be
    /// used yet).
    pub young: Duration,
    /// The background sweep evicts down to `low` of the bound once `used`
    /// passes `high` of it.
    pub low: f64,
    pub high: f64,
}

impl Bound {
    pub fn is_set(&self) -> bool {
        self.max_size.is_some() || self.min_free.is_some()
    }
}

/// What eviction did, for `.stats`.
#[derive(Debug, Default)]
pub struct Evictions {
    pub size: AtomicU64,
    pub min_free: AtomicU64,
    pub expired: AtomicU64,
    pub invalidated: AtomicU64,
    pub bytes: AtomicU64,
    /// Reservations (commits) that had to wait for room, and how long.
    pub waits: AtomicU64,
    pub wait_ns: AtomicU64,
}

/// Why room is being made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Size,
    MinFree,
}

/// What a chosen entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    /// Invalid: a tag of it was removed, or it was cut short.
    Invalidated,
    /// Its expiry has passed (or it was invalidated with rm).
    Expired,
    Live,
}

#[derive(Debug, Clone)]
struct Candidate {
    bucket: String,
    file: String,
    ino: u64,
    class: Class,
    /// Born within the bound's `young` when sampled.
    young: bool,
    /// Last use (atime), in seconds.
    used: i64,
}

impl Candidate {
    /// Smaller is evicted first: the dead, then the least recently used,
    /// the just born last.
    fn rank(&self) -> (Class, bool, i64) {
        (
            self.class,
            self.young && self.class == Class::Live,
            self.used,
        )
    }
}

/// The best candidates seen so far, kept across rounds (Redis's eviction
/// pool): each round adds a few random samples, and the best of all goes.
#[derive(Debug)]
pub(super) struct Pool<C> {
    cands: Vec<C>,
}

impl<C> Default for Pool<C> {
    fn default() -> Self {
        Pool { cands: Vec::new() }
    }
}

impl<C> Pool<C> {
    /// Adds `fresh` (skipping what `same` says is there already), keeping
    /// the `POOL` best by `rank`.
    pub fn offer<K: Ord>(
        &mut self,
        fresh: Vec<C>,
        same: impl Fn(&C, &C) -> bool,
        rank: impl Fn(&C) -> K,
    ) {
        for c in fresh {
            if !self.cands.iter().any(|p| same(p, &c)) {
                self.cands.push(c);
            }
        }
        self.cands.sort_by_key(&rank);
        self.cands.truncate(POOL);
    }

    /// Takes the best candidate `eligible` accepts.
    pub fn take(&mut self, eligible: impl Fn(&C) -> bool) -> Option<C> {
        let i = self.cands.iter().position(eligible)?;
        Some(self.cands.remove(i))
    }
}

/// The sampling state: a pool of the best candidates seen, the buckets
/// that exist, a random generator; and the background sweep's wake-up.
#[derive(Debug, Default)]
pub(super) struct Evictor {
    pool: Mutex<Pool<Candidate>>,
    buckets: Mutex<Option<(Instant, Vec<String>)>>,
    rng: AtomicU64,
    pub counters: Evictions,
    sweep_wanted: Mutex<bool>,
    sweep_wake: Condvar,
}

/// How long the list of buckets sampled from is kept.
const BUCKETS_KEPT: Duration = Duration::from_secs(2);

const POOL: usize = 16;
const SAMPLES: usize = 8;

/// The bytes a file of `len` bytes occupies (whole blocks).
pub fn footprint(len: u64) -> u64 {
    len.div_ceil(4096) * 4096
}

impl Evictor {
    fn random(&self) -> u64 {
        let mut x = self.rng.load(Ordering::Relaxed);
        if x == 0 {
            x = Time::now().nsec as u64 | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        x
    }
}

fn classify(meta: &Meta, now: Time) -> Class {
    if !meta.links_ok() || meta.torn() {
        Class::Invalidated
    } else if meta.expiry <= now {
        Class::Expired
    } else {
        Class::Live
    }
}

impl Store {
    /// The ledger figures and the bound, if this store has both.
    pub fn size_figures(&self) -> Option<(Figures, Bound)> {
        let ledger = self.ledger.as_ref()?;
        Some((ledger.figures().ok()?, self.bound?))
    }

    pub fn evictions(&self) -> &Evictions {
        &self.evictor.counters
    }

    /// Why adding `add` bytes would break the bound, if it would.
    fn over(&self, f: Figures, add: u64, bound: &Bound) -> Option<Reason> {
        if bound.max_size.is_some_and(|max| f.used + add > max) {
            return Some(Reason::Size);
        }
        let min = bound.min_free?;
        let st = sys::fstatvfs(self.data.as_fd()).ok()?;
        let size = st.f_blocks * st.f_frsize;
        let avail = st.f_bavail * st.f_frsize;
        let want = match min {
            MinFree::Bytes(b) => b,
            MinFree::Percent(p) => (size as f64 * p / 100.0) as u64,
        };
        (avail < add + want).then_some(Reason::MinFree)
    }

    /// The reservation chunk: a 256th of the bound, 16 KiB to 4 MiB.
    fn chunk(&self, bound: &Bound) -> u64 {
        let base = bound.max_size.map_or(1 << 20, |m| m / 256);
        footprint(base.clamp(16 << 10, 4 << 20))
    }

    /// Makes sure `draft` has room for `len` bytes, reserving more (and
    /// evicting for it) when it has not. Without a bound, nothing to do.
    pub fn reserve(&self, draft: &mut Draft, len: u64) -> Result<()> {
        let (Some(bound), Some(ledger)) = (self.bound, &self.ledger) else {
            return Ok(());
        };
        let need = footprint(draft.head() + len);
        if need <= draft.reserved {
            return Ok(());
        }
        if let Some(max) = bound.max_size
            && need > max
        {
            return Err(Error::TooBig {
                size: len,
                bound: max,
            });
        }
        let mut chunk = (need - draft.reserved).max(self.chunk(&bound));
        if let Some(max) = bound.max_size {
            chunk = chunk.min(max - draft.reserved).max(need - draft.reserved);
        }
        let shown = || self.show_tmp(&draft.name);
        let started = Instant::now();
        let mut waited = false;
        loop {
            let granted = ledger
                .update(|f| {
                    self.over(f, chunk, &bound).is_none().then_some(Figures {
                        used: f.used + chunk,
                        added: f.added + chunk,
                    })
                })
                .at(|| self.show_ledger())?;
            if let Some(f) = granted {
                if bound
                    .max_size
                    .is_some_and(|max| f.used as f64 > max as f64 * bound.high)
                {
                    self.want_sweep();
                }
                draft.reserved += chunk;
                let _ = sys::fsetxattr(
                    draft.file.as_fd(),
                    super::RESERVED,
                    draft.reserved.to_string().as_bytes(),
                );
                if waited {
                    let c = &self.evictor.counters;
                    c.waits.fetch_add(1, Ordering::Relaxed);
                    c.wait_ns
                        .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                }
                return Ok(());
            }
            waited = true;
            let figures = ledger.figures().at(|| self.show_ledger())?;
            let reason = self.over(figures, chunk, &bound).unwrap_or(Reason::Size);
            let deficit = match (reason, bound.max_size) {
                (Reason::Size, Some(max)) => (figures.used + chunk).saturating_sub(max),
                _ => chunk,
            };
            let needed = || {
                ledger
                    .figures()
                    .map_or(true, |f| self.over(f, chunk, &bound).is_some())
            };
            let freed = self.evict(deficit.max(1), reason, Some(draft.ino), &needed)?;
            if freed == 0 {
                // Other writers' reservations hold the room: they end soon.
                if started.elapsed() > Duration::from_secs(5) {
                    return Err(std::io::Error::from_raw_os_error(libc::ENOSPC)).at(shown);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }

    /// Evicts until `deficit` bytes are freed or nothing eligible is left;
    /// returns the bytes freed.
    ///
    /// `needed` is asked again before each entry goes: the room may have
    /// been made meanwhile (another writer's refused reservation given
    /// back, another process evicting), and what was just committed must
    /// not go for a need that is gone.
    pub fn evict(
        &self,
        deficit: u64,
        reason: Reason,
        protect: Option<u64>,
        needed: &dyn Fn() -> bool,
    ) -> Result<u64> {
        let mut freed = 0;
        let mut empty_rounds = 0;
        while freed < deficit && empty_rounds < 3 && needed() {
            match self.evict_one(reason, protect, needed)? {
                // Gone meanwhile, or empty: nothing freed, as with no pick.
                Some(bytes) if bytes > 0 => {
                    freed += bytes;
                    empty_rounds = 0;
                }
                _ => empty_rounds += 1,
            }
        }
        Ok(freed)
    }

    /// Samples, then evicts the best candidate of the pool; `None` when the
    /// pool has none eligible.
    fn evict_one(
        &self,
        reason: Reason,
        protect: Option<u64>,
        needed: &dyn Fn() -> bool,
    ) -> Result<Option<u64>> {
        let now = Time::now();
        let fresh = self.sample(SAMPLES, now)?;
        let mut pool = self.evictor.pool.lock().unwrap();
        pool.offer(
            fresh,
            |a, b| a.ino == b.ino && a.file == b.file,
            Candidate::rank,
        );
        let pick = pool.take(|c| Some(c.ino) != protect);
        drop(pool);
        match pick {
            Some(c) if needed() => self.reclaim(&c, reason, now),
            _ => Ok(None),
        }
    }

    /// Invalidates and removes the entry `c` names, if it is still that
    /// inode; the bytes freed.
    fn reclaim(&self, c: &Candidate, reason: Reason, now: Time) -> Result<Option<u64>> {
        let bucket = match sys::open_dir(self.data.as_fd(), &c.bucket) {
            Ok(b) => b,
            Err(e) if is_absent(&e) => return Ok(Some(0)),
            Err(e) => return Err(e).at(|| self.show(&c.bucket)),
        };
        let Some(meta) = self.meta_in(bucket.as_fd(), c.file.as_bytes())? else {
            return Ok(Some(0));
        };
        if meta.ino != c.ino {
            return Ok(Some(0));
        }
        let class = classify(&meta, now);
        if class == Class::Live {
            // It goes through stale/ like any invalidated entry.
            if let Ok(file) = sys::open_file(bucket.as_fd(), &c.file) {
                let _ = sys::set_mtime(file.as_fd(), now.sec, now.nsec);
            }
        }
        // The tag links first (the entry is invalid from then on), then the
        // key file: the last name of the inode frees its blocks.
        let tags = meta.tags().to_vec();
        let (ss, link) = layout::tag_link(tags.len() as u64 + 1, meta.ino);
        let mut freed = 0;
        for tag in &tags {
            let rel = format!("{}/{ss}", self.ns.tag_path(tag).path());
            if let Ok(dir) = sys::open_dir(self.data.as_fd(), &rel)
                && sys::lstatat(dir.as_fd(), &link).is_ok_and(|st| st.st_ino == meta.ino)
            {
                freed += self.unlink_counted(dir.as_fd(), &link).unwrap_or(0);
            }
        }
        let path = format!("{}/{}", c.bucket, c.file);
        freed +=
            super::cleanup::reap(self, bucket.as_fd(), &c.file, meta.ino, || self.show(&path))?
                .unwrap_or(0);
        let counters = &self.evictor.counters;
        let counter = match (class, reason) {
            (Class::Invalidated, _) => &counters.invalidated,
            (Class::Expired, _) => &counters.expired,
            (Class::Live, Reason::Size) => &counters.size,
            (Class::Live, Reason::MinFree) => &counters.min_free,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        counters.bytes.fetch_add(freed, Ordering::Relaxed);
        Ok(Some(freed))
    }

    /// Up to `n` entries from random buckets: a random `AA/BB` of those
    /// that exist, its entries. A bucket found empty leaves the list; a
    /// list that yields nothing is made again, once.
    fn sample(&self, n: usize, now: Time) -> Result<Vec<Candidate>> {
        let young = self.bound.map_or(0.0, |b| b.young.as_secs_f64());
        let mut out = Vec::new();
        for fresh_list in [false, true] {
            for _ in 0..n * 4 {
                if out.len() >= n {
                    return Ok(out);
                }
                let Some(bucket) = self.random_bucket(fresh_list)? else {
                    break;
                };
                let Ok(dir) = sys::open_dir(self.data.as_fd(), &bucket) else {
                    self.drop_bucket(&bucket);
                    continue;
                };
                let names = sys::read_dir(dir.as_fd()).unwrap_or_default();
                let keys: Vec<&Vec<u8>> = names.iter().filter(|n| self.ns.is_key(n)).collect();
                if keys.is_empty() {
                    self.drop_bucket(&bucket);
                    continue;
                }
                // A few of the bucket's entries, from a random one on.
                let first = (self.evictor.random() % keys.len() as u64) as usize;
                for name in keys.iter().cycle().skip(first).take(keys.len().min(4)) {
                    let Some(meta) = self.meta_in(dir.as_fd(), name)? else {
                        continue;
                    };
                    out.push(Candidate {
                        bucket: bucket.clone(),
                        file: String::from_utf8_lossy(name).into_owned(),
                        ino: meta.ino,
                        class: classify(&meta, now),
                        young: now.secs_since(meta.born) < young,
                        used: meta.atime.sec,
                    });
                }
            }
            if !out.is_empty() {
                break;
            }
        }
        Ok(out)
    }

    /// A random `AA/BB` bucket of data/ from a list made at most once per
    /// `BUCKETS_KEPT` (`fresh`: made now, unless made within the last
    /// 100 ms). `None`: data/ has none.
    fn random_bucket(&self, fresh: bool) -> Result<Option<String>> {
        let mut cached = self.evictor.buckets.lock().unwrap();
        let keep = if fresh {
            Duration::from_millis(100)
        } else {
            BUCKETS_KEPT
        };
        let stale = match cached.as_ref() {
            Some((at, list)) => at.elapsed() >= keep || (list.is_empty() && fresh),
            None => true,
        };
        if stale {
            *cached = Some((Instant::now(), self.list_buckets()?));
        }
        let list = &cached.as_ref().expect("made above").1;
        if list.is_empty() {
            return Ok(None);
        }
        let i = (self.evictor.random() % list.len() as u64) as usize;
        Ok(Some(list[i].clone()))
    }

    /// Takes an emptied bucket off the sampling list.
    fn drop_bucket(&self, bucket: &str) {
        if let Some((_, list)) = self.evictor.buckets.lock().unwrap().as_mut()
            && let Some(i) = list.iter().position(|b| b == bucket)
        {
            list.swap_remove(i);
        }
    }

    fn list_buckets(&self) -> Result<Vec<String>> {
        let mut list = Vec::new();
        for aa in sys::read_dir(self.data.as_fd()).at(|| self.show(""))? {
            let Some(aa) = sys::as_str(&aa).filter(|s| super::is_fanout(s)) else {
                continue;
            };
            let Ok(dir) = sys::open_dir(self.data.as_fd(), aa) else {
                continue;
            };
            for bb in sys::read_dir(dir.as_fd()).unwrap_or_default() {
                if let Some(bb) = sys::as_str(&bb).filter(|s| super::is_fanout(s)) {
                    list.push(format!("{aa}/{bb}"));
                }
            }
        }
        Ok(list)
    }

    /// Wakes the background sweep (a reservation passed the high mark).
    fn want_sweep(&self) {
        *self.evictor.sweep_wanted.lock().unwrap() = true;
        self.evictor.sweep_wake.notify_one();
    }

    /// The background sweep's wait: until a reservation passes the high
    /// watermark, or `timeout`.
    pub fn wait_for_sweep(&self, timeout: Duration) {
        let wanted = self.evictor.sweep_wanted.lock().unwrap();
        let (mut wanted, _) = self
            .evictor
            .sweep_wake
            .wait_timeout_while(wanted, timeout, |w| !*w)
            .unwrap();
        *wanted = false;
    }

    /// The background sweep: past the high watermark, evicts down to the
    /// low one; below the free space wanted, evicts until it is back.
    /// Returns the bytes freed.
    pub fn sweep_to_watermark(&self) -> Result<u64> {
        let (Some(bound), Some(ledger)) = (self.bound, &self.ledger) else {
            return Ok(0);
        };
        let f = ledger.figures().at(|| self.show_ledger())?;
        if let Some(max) = bound.max_size
            && f.used as f64 > max as f64 * bound.high
        {
            // Step by step, looking again each time: the reservation that
            // passed the mark may be gone already (a refused write).
            let low = (max as f64 * bound.low) as u64;
            let mut freed = 0;
            loop {
                let f = ledger.figures().at(|| self.show_ledger())?;
                if f.used <= low {
                    return Ok(freed);
                }
                let step = (f.used - low).min(self.chunk(&bound));
                let needed = || ledger.figures().map_or(true, |f| f.used > low);
                match self.evict(step, Reason::Size, None, &needed)? {
                    0 => return Ok(freed),
                    n => freed += n,
                }
            }
        }
        if let Some(reason) = self.over(f, 0, &bound) {
            let needed = || {
                ledger
                    .figures()
                    .map_or(true, |f| self.over(f, 0, &bound).is_some())
            };
            return self.evict(self.chunk(&bound), reason, None, &needed);
        }
        Ok(0)
    }

    /// How many bytes the store is over its `--max-size` (0 within it, or
    /// without a bound).
    pub fn over_bound(&self) -> Result<u64> {
        let (Some(bound), Some(ledger)) = (self.bound, &self.ledger) else {
            return Ok(0);
        };
        let f = ledger.figures().at(|| self.show_ledger())?;
        Ok(bound.max_size.map_or(0, |max| f.used.saturating_sub(max)))
    }

    /// Evicts until the store is within its bound (the dead first, the
    /// young last); how many entries and bytes went.
    pub fn evict_to_bound(&self) -> Result<(u64, u64)> {
        let (Some(bound), Some(ledger)) = (self.bound, &self.ledger) else {
            return Ok((0, 0));
        };
        let c = &self.evictor.counters;
        let count = || {
            c.size.load(Ordering::Relaxed)
                + c.min_free.load(Ordering::Relaxed)
                + c.expired.load(Ordering::Relaxed)
                + c.invalidated.load(Ordering::Relaxed)
        };
        let (entries, bytes) = (count(), c.bytes.load(Ordering::Relaxed));
        loop {
            let f = ledger.figures().at(|| self.show_ledger())?;
            let Some(reason) = self.over(f, 0, &bound) else {
                break;
            };
            let deficit = match (reason, bound.max_size) {
                (Reason::Size, Some(max)) => f.used.saturating_sub(max).max(1),
                _ => self.chunk(&bound),
            };
            let needed = || {
                ledger
                    .figures()
                    .map_or(true, |f| self.over(f, 0, &bound).is_some())
            };
            if self.evict(deficit, reason, None, &needed)? == 0 {
                break;
            }
        }
        Ok((count() - entries, c.bytes.load(Ordering::Relaxed) - bytes))
    }

    /// A mount served `file` (a version with `meta`): its atime is the
    /// entry's last use, the recency clock. Set at most once per entry
    /// timeout (at least a second): that is how often the fast view asks
    /// again for a name in use, so finer would tell nothing more.
    pub fn note_use(&self, file: &std::fs::File, meta: &Meta) {
        let Some(bound) = self.bound else {
            return;
        };
        let resolution = bound.young.max(Duration::from_secs(1)).as_secs_f64();
        let age = Time::now().secs_since(meta.atime);
        if age >= resolution {
            let _ = sys::touch_atime(file.as_fd());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache of `capacity` keys over a skewed trace: the hit ratio of
    /// exact LRU and of the sampled pool (8 random samples a round, the
    /// pool's best evicted), with the same trace.
    fn hit_ratios(capacity: usize, keys: u64, requests: usize) -> (f64, f64) {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Zipf-like: key k with weight 1/(k+1), by inverse transform on
        // the harmonic sums.
        let weights: Vec<f64> = (0..keys).map(|k| 1.0 / (k as f64 + 1.0)).collect();
        let total: f64 = weights.iter().sum();
        let mut cdf = Vec::with_capacity(keys as usize);
        let mut acc = 0.0;
        for w in &weights {
            acc += w / total;
            cdf.push(acc);
        }
        let trace: Vec<u64> = (0..requests)
            .map(|_| {
                let u = (rnd() >> 11) as f64 / (1u64 << 53) as f64;
                cdf.partition_point(|&c| c < u) as u64
            })
            .collect();
        // Exact LRU.
        let mut lru: std::collections::HashMap<u64, usize> = Default::default();
        let mut lru_hits = 0;
        for (t, &k) in trace.iter().enumerate() {
            if lru.insert(k, t).is_some() {
                lru_hits += 1;
            } else if lru.len() > capacity {
                let oldest = *lru.iter().min_by_key(|(_, t)| **t).unwrap().0;
                lru.remove(&oldest);
            }
        }
        // Sampled: the same pool as the store's.
        let mut cache: std::collections::HashMap<u64, usize> = Default::default();
        let mut order: Vec<u64> = Vec::new();
        let mut pool: Pool<(u64, usize)> = Pool::default();
        let mut hits = 0;
        for (t, &k) in trace.iter().enumerate() {
            if cache.insert(k, t).is_some() {
                hits += 1;
                continue;
            }
            order.push(k);
            if cache.len() > capacity {
                let fresh: Vec<(u64, usize)> = (0..SAMPLES)
                    .map(|_| order[(rnd() % order.len() as u64) as usize])
                    .filter(|k| cache.contains_key(k))
                    .map(|k| (k, cache[&k]))
                    .collect();
                pool.offer(fresh, |a, b| a.0 == b.0, |c| c.1);
                // A candidate used since it was sampled is stale: dropped, as
                // the store drops one whose inode changed.
                while let Some((victim, used)) = pool.take(|c| c.0 != k) {
                    if cache.get(&victim) == Some(&used) {
                        cache.remove(&victim);
                        order.retain(|&o| o != victim);
                        break;
                    }
                }
            }
        }
        (
            lru_hits as f64 / requests as f64,
            hits as f64 / requests as f64,
        )
    }

    #[test]
    fn sampled_eviction_hits_nearly_as_often_as_exact_lru() {
        let (lru, sampled) = hit_ratios(500, 10_000, 100_000);
        eprintln!("hit ratio on a Zipf trace: exact LRU {lru:.4}, sampled {sampled:.4}");
        assert!(lru > 0.3, "the trace has locality: {lru}");
        assert!(sampled >= lru * 0.95, "sampled {sampled} against LRU {lru}");
    }

    #[test]
    fn the_dead_go_before_the_live_and_the_old_before_the_recent() {
        let c = |class, used| Candidate {
            bucket: String::new(),
            file: String::new(),
            ino: 1,
            class,
            used,
            young: false,
        };
        let mut v = [
            c(Class::Live, 5),
            c(Class::Expired, 9),
            c(Class::Live, 1),
            c(Class::Invalidated, 7),
        ];
        v.sort_by_key(Candidate::rank);
        let order: Vec<(Class, i64)> = v.iter().map(|c| (c.class, c.used)).collect();
        assert_eq!(
            order,
            [
                (Class::Invalidated, 7),
                (Class::Expired, 9),
                (Class::Live, 1),
                (Class::Live, 5)
            ]
        );
        assert_eq!(footprint(1), 4096);
        assert_eq!(footprint(4096), 4096);
        assert_eq!(footprint(0), 0);
    }
}
