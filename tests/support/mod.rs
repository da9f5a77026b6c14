//! What the integration tests share, one module for every test binary
//! (`mod support;`, then `use support::*;`). Each binary uses a part of
//! it, hence the dead-code allowance below.
//!
//! - `mount`: a real mount of the binary, unmounted on drop; a tmpfs;
//!   the guard that unmounts them.
//! - `sys`: system calls and xattrs, every error an `Errno`.
//! - `entries`: writing and looking at entries as a user does.
//! - `store`: the store on disk, looked at directly.
//! - `cli`: the `cleanup` and `stats` commands.
//! - `daemon`: the daemon process behind a mount.
//! - `wait`: the clocks, and polling until something is true.
//! - `watchdog`: turning a deadlock into a failure.
//! - `children`: other processes a test starts, this binary among them.
//! - `random`: a seeded RNG.
//! - `version`: self-checking version contents.
//!
//! Long mode: `TAGCACHEFS_LONG=1` makes every reliability test run longer
//! (more rounds, more seconds); `TAGCACHEFS_SEED=N` replays a run.
#![allow(dead_code)]

mod children;
mod cli;
mod daemon;
mod entries;
mod mount;
mod random;
mod store;
mod sys;
mod version;
mod wait;
mod watchdog;

// Each binary uses a part of these, too.
#[allow(unused_imports)]
pub use {
    children::*, cli::*, daemon::*, entries::*, mount::*, random::*, store::*, sys::*, version::*,
    wait::*, watchdog::*,
};

/// `TAGCACHEFS_LONG=1`: the long mode.
pub fn long_mode() -> bool {
    std::env::var("TAGCACHEFS_LONG").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// How much of something a test does: the number in the environment
/// variable `var` if set, else `long` in the long mode, else `short`.
pub fn amount(var: &str, short: u64, long: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if long_mode() { long } else { short })
}
