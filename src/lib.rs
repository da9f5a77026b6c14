//! tagcachefs: a tag-invalidated cache that any program uses through plain
//! files.
//!
//! - `store`: the seed's hardlink store on disk (no FUSE in it);
//! - `fs`: the file system over it as plain Rust — what each request on a
//!   mount means;
//! - `fuse`: the adapter linking the kernel's FUSE requests to `fs`;
//! - `daemon`: mounting, serving, the guardian; `cli` and `report`: the
//!   command line and what the tools print; `mount_helper`: the program
//!   as mount(8) runs it; `exit`: exit codes;
//! - `metrics`: the Prometheus text format, and its HTTP endpoint.

pub mod cli;
pub mod daemon;
pub mod exit;
pub mod failpoint;
pub mod fs;
pub mod fuse;
pub mod metrics;
pub mod mount_helper;
pub mod report;
pub mod store;
