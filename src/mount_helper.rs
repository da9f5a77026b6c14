//! The program as mount(8) runs it: `/sbin/mount.fuse.tagcachefs` is a
//! symlink to the binary, and mount(8), for `mount -t fuse.tagcachefs` and
//! fstab lines of that type, runs
//!
//! ```text
//! /sbin/mount.fuse.tagcachefs SPEC DIR [-sfnv] [-N NAMESPACE] [-o OPTIONS]
//! ```
//!
//! (mount(8)'s "external helpers"), as it does sshfs's and mergerfs's. No
//! mount.fuse3 and no fusermount3 are involved: as root the daemon mounts
//! by the system call. SPEC is the store, DIR the mount point, OPTIONS go
//! through the same `-o` parsing as `tagcachefs STORE DIR -o OPTIONS`, so
//! unknown ones are refused. `-f` (fake) checks the options and mounts
//! nothing; `-v` says what was mounted; `-n` (no mtab) and `-s` (sloppy)
//! change nothing here (unknown options are refused all the same);
//! `-N` mounts in another mount namespace.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, FromArgMatches, Parser};

use crate::cli::MountArgs;
use crate::exit::{Code, Failure};

/// The helper's file names: mount(8) runs `mount.<type>`.
pub const NAMES: &[&str] = &["mount.fuse.tagcachefs"];

/// Whether the program was run under a helper's name.
pub fn invoked_as(args: &[OsString]) -> bool {
    args.first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|name| NAMES.iter().any(|n| name == *n))
}

/// mount(8)'s calling convention for external helpers.
#[derive(Debug, Parser)]
#[command(
    name = "mount.fuse.tagcachefs",
    about = "Mounts a tagcachefs store as mount(8) asks: SPEC is the store, DIR the mount point.",
    disable_version_flag = true
)]
struct HelperArgs {
    spec: PathBuf,
    dir: PathBuf,
    /// Sloppy: accepted (unknown options are still refused).
    #[arg(short = 's')]
    sloppy: bool,
    /// Fake: check the options, mount nothing.
    #[arg(short = 'f')]
    fake: bool,
    /// No mtab: accepted (there is none to write).
    #[arg(short = 'n')]
    no_mtab: bool,
    /// Verbose: say what was mounted.
    #[arg(short = 'v')]
    verbose: bool,
    /// Mount in this mount namespace (a PID, or a namespace file).
    #[arg(short = 'N', value_name = "NAMESPACE")]
    namespace: Option<PathBuf>,
    /// The mount options, comma-separated.
    #[arg(short = 'o', value_name = "OPTIONS")]
    options: Vec<String>,
    /// The file system type (fuse.tagcachefs), if mount(8) passes it.
    #[arg(short = 't', value_name = "TYPE")]
    fstype: Option<String>,
}

pub fn run(args: &[OsString]) -> Result<(), Failure> {
    let helper = HelperArgs::try_parse_from(args).unwrap_or_else(|e| e.exit());
    if let Some(t) = helper.fstype.as_deref().filter(|t| *t != "fuse.tagcachefs") {
        return Err(Failure::usage(format!(
            "file system type {t}: this helper mounts fuse.tagcachefs"
        )));
    }
    // The mount command's defaults, then what mount(8) passed.
    let command = MountArgs::augment_args(clap::Command::new("tagcachefs"));
    let matches = command
        .try_get_matches_from([
            OsString::from("tagcachefs"),
            OsString::from("--"),
            helper.spec.clone().into(),
            helper.dir.clone().into(),
        ])
        .map_err(|e| Failure::usage(e.to_string()))?;
    let mut mount =
        MountArgs::from_arg_matches(&matches).map_err(|e| Failure::usage(e.to_string()))?;
    mount.options = helper.options;
    let config = mount.config().map_err(Failure::usage)?;
    if let Some(ns) = &helper.namespace {
        enter_namespace(ns)?;
    }
    if helper.fake {
        return Ok(());
    }
    crate::daemon::run(config)?;
    if helper.verbose {
        println!(
            "tagcachefs: mounted {} on {}",
            helper.spec.display(),
            helper.dir.display()
        );
    }
    Ok(())
}

/// `-N`: joins the mount namespace of a process (a PID) or of a namespace
/// file, before anything is resolved in it.
fn enter_namespace(ns: &std::path::Path) -> Result<(), Failure> {
    let path = match ns.to_str().and_then(|s| s.parse::<u32>().ok()) {
        Some(pid) => PathBuf::from(format!("/proc/{pid}/ns/mnt")),
        None => ns.to_path_buf(),
    };
    let file = std::fs::File::open(&path)
        .map_err(|e| Failure::new(Code::Mount, format!("namespace {}: {e}", path.display())))?;
    // SAFETY: a valid descriptor; no thread exists yet.
    if unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNS) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(Failure::new(
            Code::Mount,
            format!("entering the mount namespace {}: {e}", path.display()),
        ));
    }
    Ok(())
}
