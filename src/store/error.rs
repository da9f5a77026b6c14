//! The store's one error type. Every I/O error carries the path it was about.

use std::io;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("name too long: {0} bytes (at most 125)")]
    NameTooLong(usize),
    #[error("invalid name \"{0}\": {1}")]
    InvalidName(String, &'static str),
    #[error("invalid value \"{0}\": {1}")]
    InvalidValue(String, &'static str),
    #[error("{0}: the store's file system does not support user extended attributes")]
    NoXattrs(String),
    #[error("entry \"{0}\" does not exist or is not live")]
    NoEntry(String),
    #[error("tag \"{0}\" does not exist")]
    NoTag(String),
    #[error("entry \"{0}\" was invalidated while it was being re-committed")]
    Invalidated(String),
    #[error("an entry of {size} bytes does not fit the store's bound of {bound} bytes")]
    TooBig { size: u64, bound: u64 },
}

impl Error {
    /// The OS error behind this one, if any (ENOSPC, EIO, …).
    pub fn os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            Error::TooBig { .. } => Some(libc::EFBIG),
            _ => None,
        }
    }
}

/// Attaches a path to an `io::Error`.
pub trait Context<T> {
    fn at(self, path: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn at(self, path: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path(),
            source,
        })
    }
}
