//! tagcachefs: a tag-invalidated cache that any program uses through plain
//! files. `store` is the seed's hardlink store (no FUSE in it); `fs` is the
//! FUSE adapter over it; `cli`, `daemon` and `report` are the program.

pub mod cli;
pub mod daemon;
pub mod fs;
pub mod report;
pub mod store;
