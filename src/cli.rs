//! The command line: `tagcachefs STORE MOUNTPOINT`, `cleanup`, `stats`,
//! `completions`. The mount helper's own argv is in `mount_helper`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use crate::store::evict::MinFree;
pub use crate::store::layout::Namespace;

/// A tag-invalidated cache as a file system: entries are files under keys/,
/// tags are directories under tags/, `rmdir tags/<t>` invalidates every
/// entry carrying <t>.
#[derive(Debug, Parser)]
#[command(
    name = "tagcachefs",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Examples and exit codes: --help.",
    after_long_help = long_help()
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub mount: MountArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Remove expired and invalid entries, dead tag links, empty tag
    /// directories and abandoned tmp and lock files; print what was removed.
    Cleanup {
        /// The store directory.
        store: PathBuf,
        /// Print the counts as JSON.
        #[arg(long)]
        json: bool,
        /// Count what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Then evict the least recently used live entries until the
        /// store's files occupy at most SIZE (K, M, G, T: powers of 1024).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_size: Option<u64>,
        /// Then evict until the file system has SIZE or PCT% free.
        #[arg(long, value_name = "SIZE|PCT%", value_parser = parse_min_free)]
        min_free: Option<MinFree>,
        /// Read the store in the tagcache library's format (as a mount with
        /// --tagcache-format would; a store a mount marked needs nothing).
        #[arg(long, value_name = "NS", num_args = 0..=1, default_missing_value = "k", value_parser = parse_namespace)]
        tagcache_format: Option<Namespace>,
        /// Remove another program's files in tmp/ once unchanged this long.
        #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
        foreign_tmp_age: u64,
    },
    /// Unmount a tagcachefs mount point; one whose daemon is dead has its
    /// FUSE connection aborted first, so that no client stays blocked.
    Unmount {
        /// The mount point.
        mountpoint: PathBuf,
        /// Detach it even while files are open on it.
        #[arg(long)]
        force: bool,
    },
    /// Print entries, bytes and tags of a store, and the daemon's counters
    /// when given a mount point.
    Stats {
        /// A store directory or a tagcachefs mount point.
        path: PathBuf,
        /// Print JSON instead of a table (the same as --format json).
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// What to print: a table, JSON, or the Prometheus text format (for
        /// node_exporter's textfile collector).
        #[arg(long, value_enum, default_value_t = StatsFormat::Table)]
        format: StatsFormat,
        /// Read the store in the tagcache library's format.
        #[arg(long, value_name = "NS", num_args = 0..=1, default_missing_value = "k", value_parser = parse_namespace)]
        tagcache_format: Option<Namespace>,
    },
    /// Print the completion script of a shell (bash, zsh, fish, …).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatsFormat {
    Table,
    Json,
    Prometheus,
}

/// Two examples, as the long help and the man page show them.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "Mount, write an entry tagged bio, then invalidate every entry tagged bio:",
        "tagcachefs /var/cache/blog /mnt/cache --default-expire 3600\n\
         echo '<h1>home</h1>' > /mnt/cache/put/tags=bio/home\n\
         rmdir /mnt/cache/tags/bio",
    ),
    (
        "An /etc/fstab line (mount(8) runs /sbin/mount.fuse.tagcachefs):",
        "/var/cache/blog /mnt/cache fuse.tagcachefs \
         default_expire=3600,nofail,x-systemd.requires-mounts-for=/var/cache/blog 0 0",
    ),
];

/// The long help's end: the examples and the exit codes.
fn long_help() -> String {
    let mut text = String::from("Examples:\n");
    for (what, how) in EXAMPLES {
        text.push_str(&format!("  # {what}\n"));
        for line in how.lines() {
            text.push_str(&format!("  {line}\n"));
        }
        text.push('\n');
    }
    text.push_str("Exit status:\n");
    text.push_str(&crate::exit::help());
    text
}

/// Mounting: `tagcachefs STORE MOUNTPOINT [options]`.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// The store directory (created if missing).
    #[arg(required = true)]
    pub store: Option<PathBuf>,
    /// Where to mount the full file system (keys/, tags/, stale/, .stats).
    #[arg(required = true)]
    pub mountpoint: Option<PathBuf>,
    /// Stay in the foreground instead of serving in the background.
    #[arg(short, long, help_heading = "Mounting")]
    pub foreground: bool,
    /// Let other users use the mount (file modes are then enforced).
    #[arg(long, help_heading = "Mounting")]
    pub allow_other: bool,
    /// TTL in seconds of entries written without user.expire (0 = never).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0,
        help_heading = "Caching"
    )]
    pub default_expire: u64,
    /// Longest time in seconds the kernel may cache a name or attributes;
    /// changes made to the store from outside this daemon show within it.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 1.0,
        help_heading = "Caching"
    )]
    pub cache_timeout: f64,
    /// Seconds between the mount's own cleanups (0 = never).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 600,
        help_heading = "Caching"
    )]
    pub cleanup_interval: u64,
    /// Also mount the fast read-only view of keys/ and tags/ here: hits on
    /// it are served by the kernel without a request to the daemon.
    #[arg(long, value_name = "PATH", help_heading = "Fast view")]
    pub read_mount: Option<PathBuf>,
    /// The most entries the kernel may hold a node for, over the daemon's
    /// mounts (each costs the daemon about 200 bytes); past it the daemon
    /// makes the kernel forget the least recently used. Default: 1048576.
    #[arg(long, value_name = "N", help_heading = "Caching")]
    pub max_nodes: Option<usize>,
    /// Every commit and invalidation is on disk when its call returns
    /// (fsync of the version and its directories); fsync(2) on a writing
    /// descriptor flushes what it wrote so far.
    #[arg(long, help_heading = "Caching")]
    pub durable: bool,
    /// Share the store with the tagcache Python library: entries in its
    /// file format (the first line names the tags), in its namespace NS:
    /// `k` (k:/t:, what it writes by default) or `key` (key:/tag:). The
    /// store remembers it (STORE/format).
    #[arg(long, value_name = "NS", num_args = 0..=1, default_missing_value = "k", value_parser = parse_namespace, help_heading = "Store")]
    pub tagcache_format: Option<Namespace>,
    /// Cleanup removes another program's files in STORE/tmp/ once nothing
    /// changed them for this long.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 3600,
        help_heading = "Store"
    )]
    pub foreign_tmp_age: u64,
    /// Bound the store: a commit returns only once the store's files fit
    /// in SIZE (K, M, G, T: powers of 1024), evicting what is dead, then
    /// the least recently used live entries. Give every mount of a store
    /// the same bound.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, help_heading = "Caching")]
    pub max_size: Option<u64>,
    /// Keep SIZE (or PCT% of it) free on the store's file system, evicting
    /// as --max-size does.
    #[arg(long, value_name = "SIZE|PCT%", value_parser = parse_min_free, help_heading = "Caching")]
    pub min_free: Option<MinFree>,
    /// The background sweep evicts down to LOW% of the bound once the
    /// store passes HIGH%.
    #[arg(long, value_name = "LOW,HIGH", value_parser = parse_watermarks, default_value = "90,95", help_heading = "Caching")]
    pub watermarks: (f64, f64),
    /// Write the daemon's log here (it goes nowhere in the background
    /// otherwise; RUST_LOG sets the level).
    #[arg(long, value_name = "PATH", help_heading = "Logging")]
    pub log_file: Option<PathBuf>,
    /// Mount options, comma-separated, as mount(8) and fstab pass them:
    /// allow_other, default_expire=N, cache_timeout=N, cleanup_interval=N,
    /// read_mount=PATH, log_file=PATH, max_nodes=N, durable, tagcache_format[=NS],
    /// foreign_tmp_age=N, max_size=SIZE, min_free=SIZE|PCT%,
    /// watermarks=LOW,HIGH, metrics_addr=ADDR, ro,
    /// the generic rw, nosuid, nodev, noexec, noatime, … (passed on), and
    /// what mount(8) and systemd add (nofail, noauto, _netdev, x-*,
    /// comment=…: ignored).
    #[arg(short = 'o', value_name = "OPTIONS", help_heading = "Mounting")]
    pub options: Vec<String>,
    /// Serve the metrics (the Prometheus text format) on
    /// http://ADDR/metrics; a loopback address only, such as 127.0.0.1:9612.
    /// Store figures are counted in the background, at most every 30 s.
    #[arg(long, value_name = "ADDR", help_heading = "Metrics")]
    pub metrics_addr: Option<SocketAddr>,
}

/// Everything the daemon needs, once `-o` is folded in.
#[derive(Debug, Clone)]
pub struct MountConfig {
    pub store: PathBuf,
    pub mountpoint: PathBuf,
    pub foreground: bool,
    pub allow_other: bool,
    pub read_only: bool,
    pub default_expire: u64,
    pub cache_timeout: Duration,
    pub cleanup_interval: u64,
    pub read_mount: Option<PathBuf>,
    pub log_file: Option<PathBuf>,
    pub max_nodes: Option<usize>,
    pub durable: bool,
    pub tagcache_format: Option<Namespace>,
    pub foreign_tmp_age: u64,
    pub max_size: Option<u64>,
    pub min_free: Option<MinFree>,
    /// The background sweep's low and high watermarks, fractions of the bound.
    pub watermarks: (f64, f64),
    /// Where to serve the metrics over HTTP (a loopback address).
    pub metrics_addr: Option<SocketAddr>,
    /// Generic kernel mount flags passed on (nosuid, nodev, noexec, …).
    pub flags: Vec<String>,
}

/// Options that mount(8), mount.fuse3 or fstab may pass and that mean
/// nothing more to us.
const IGNORED: &[&str] = &[
    "rw",
    "defaults",
    "auto",
    "noauto",
    "user",
    "users",
    "nouser",
    "nofail",
    "_netdev",
    "relatime",
    "norelatime",
    "strictatime",
    "lazytime",
    "nolazytime",
    "nodiratime",
    "diratime",
    "async",
    "default_permissions",
    "comment",
];
/// Generic kernel flags passed on to the mount.
const PASSED: &[&str] = &[
    "nosuid", "suid", "nodev", "dev", "noexec", "exec", "noatime", "atime", "sync", "dirsync",
];

impl MountArgs {
    pub fn config(&self) -> Result<MountConfig, String> {
        let mut c = MountConfig {
            store: self.store.clone().ok_or("STORE is required")?,
            mountpoint: self.mountpoint.clone().ok_or("MOUNTPOINT is required")?,
            foreground: self.foreground,
            allow_other: self.allow_other,
            read_only: false,
            default_expire: self.default_expire,
            cache_timeout: seconds(self.cache_timeout)?,
            cleanup_interval: self.cleanup_interval,
            read_mount: self.read_mount.clone(),
            log_file: self.log_file.clone(),
            max_nodes: self.max_nodes,
            durable: self.durable,
            tagcache_format: self.tagcache_format,
            foreign_tmp_age: self.foreign_tmp_age,
            max_size: self.max_size,
            min_free: self.min_free,
            watermarks: self.watermarks,
            metrics_addr: self.metrics_addr,
            flags: Vec::new(),
        };
        for opt in self
            .options
            .iter()
            .flat_map(|o| o.split(','))
            .filter(|o| !o.is_empty())
        {
            let (key, value) = match opt.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (opt, None),
            };
            let number = || -> Result<u64, String> {
                value
                    .and_then(|v| v.parse().ok())
                    .ok_or(format!("option {key} needs a whole number of seconds"))
            };
            match key {
                "allow_other" => c.allow_other = true,
                "ro" => c.read_only = true,
                "durable" => c.durable = true,
                "tagcache_format" => {
                    c.tagcache_format = Some(parse_namespace(value.unwrap_or("k"))?)
                }
                "foreign_tmp_age" => c.foreign_tmp_age = number()?,
                "default_expire" => c.default_expire = number()?,
                "cleanup_interval" => c.cleanup_interval = number()?,
                "max_nodes" => c.max_nodes = Some(number()? as usize),
                "max_size" => c.max_size = Some(parse_size(value.unwrap_or_default())?),
                "min_free" => c.min_free = Some(parse_min_free(value.unwrap_or_default())?),
                "watermarks" => c.watermarks = parse_watermarks(value.unwrap_or_default())?,
                "cache_timeout" => {
                    let v = value
                        .and_then(|v| v.parse().ok())
                        .ok_or("option cache_timeout needs seconds")?;
                    c.cache_timeout = seconds(v)?;
                }
                "read_mount" => {
                    c.read_mount = Some(value.ok_or("option read_mount needs a path")?.into())
                }
                "log_file" => {
                    c.log_file = Some(value.ok_or("option log_file needs a path")?.into())
                }
                "metrics_addr" => {
                    let addr = value.and_then(|v| v.parse().ok());
                    c.metrics_addr =
                        Some(addr.ok_or("option metrics_addr needs an address, IP:PORT")?);
                }
                k if IGNORED.contains(&k)
                    || k.starts_with("x-")
                    || k == "fsname"
                    || k == "subtype" => {}
                k if PASSED.contains(&k) => c.flags.push(k.to_string()),
                _ => return Err(format!("unknown mount option \"{opt}\"")),
            }
        }
        if let Some(addr) = c.metrics_addr.filter(|a| !a.ip().is_loopback()) {
            return Err(format!(
                "metrics address {addr}: only a loopback address (127.0.0.1, [::1]) is served"
            ));
        }
        Ok(c)
    }
}

/// `k` (the tagcache library's k:/t:) or `key` (key:/tag:).
pub fn parse_namespace(text: &str) -> Result<Namespace, String> {
    match text {
        "k" => Ok(crate::store::layout::LIBRARY),
        "key" => Ok(crate::store::layout::OURS),
        _ => Err(format!(
            "{text:?}: a namespace is k (k:/t:) or key (key:/tag:)"
        )),
    }
}

/// A size: bytes, or with a suffix K, M, G, T (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches(['B', 'I'])
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("{text:?}: a size is a number with K, M, G or T")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: a size is a number with K, M, G or T"))?;
    n.checked_mul(1 << shift)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("{text:?}: not a size"))
}

/// `--min-free`: a size, or a percentage of the file system (`10%`).
pub fn parse_min_free(text: &str) -> Result<MinFree, String> {
    match text.trim().strip_suffix('%') {
        Some(p) => {
            let p: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("{text:?}: a percentage is a number and %"))?;
            if !(0.0..100.0).contains(&p) {
                return Err(format!("{text:?}: a percentage below 100"));
            }
            Ok(MinFree::Percent(p))
        }
        None => parse_size(text).map(MinFree::Bytes),
    }
}

/// `--watermarks LOW,HIGH` in percent of the bound.
pub fn parse_watermarks(text: &str) -> Result<(f64, f64), String> {
    let bad = || format!("{text:?}: watermarks are LOW,HIGH percentages, LOW < HIGH <= 100");
    let (low, high) = text.split_once(',').ok_or_else(bad)?;
    let (low, high): (f64, f64) = (
        low.trim().parse().map_err(|_| bad())?,
        high.trim().parse().map_err(|_| bad())?,
    );
    if !(0.0 < low && low < high && high <= 100.0) {
        return Err(bad());
    }
    Ok((low / 100.0, high / 100.0))
}

fn seconds(v: f64) -> Result<Duration, String> {
    if !(0.0..=1e9).contains(&v) {
        return Err(format!("{v}: not a number of seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}
