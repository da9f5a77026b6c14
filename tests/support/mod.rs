//! What the integration tests share, one module for every test binary
//! (`mod support;`): each uses a part, hence the crate-wide dead-code
//! allowance below.
//!
//! - `mount`: a real mount of the binary, unmounted on drop; a tmpfs.
//! - `sys`: system calls and xattrs, every error an `Errno`.
//! - `entries`: writing and looking at entries as a user does.
//! - `store`: the store on disk, looked at directly.
//! - `wait`: the clock, and polling until something is true.
//! - `watchdog`: turning a deadlock into a failure.
//! - `daemon`: the daemon process behind a mount.
//! - `children`: other processes a test starts.
#![allow(dead_code)]

mod children;
mod daemon;
mod entries;
mod mount;
mod store;
mod sys;
mod wait;
mod watchdog;

// Each binary uses a part of these too.
#[allow(unused_imports)]
pub use {children::*, daemon::*, entries::*, mount::*, store::*, sys::*, wait::*, watchdog::*};
