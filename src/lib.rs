//! tagcachefs: a tag-invalidated cache that any program uses through plain
//! files. `store` is the seed's hardlink store (no FUSE in it); `fs` is the
//! FUSE adapter over it; `cli` parses and runs the command line.

pub mod store;
