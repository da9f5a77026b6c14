//! The file system's error type and the one table that turns errors into
//! errno values. No call site picks an errno: each says what went wrong.

use crate::store;

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("no such entry")]
    NotFound,
    #[error("already exists")]
    Exists,
    #[error("not permitted: {0}")]
    NotPermitted(&'static str),
    #[error("read-only here")]
    ReadOnly,
    #[error("no such attribute")]
    NoAttr,
    #[error("attribute not supported")]
    UnsupportedAttr,
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    #[error("invalid value: {0}")]
    Invalid(&'static str),
    #[error("not across directories")]
    CrossDir,
    #[error("unknown file handle")]
    BadHandle,
    #[error("buffer too small")]
    Range,
    #[error("is a directory")]
    IsDir,
    #[error("the version of \"{0}\" this node named is gone from the store")]
    Stale(String),
    /// A listing that cannot go on. Never ENOENT: the C library takes
    /// that from getdents for the end of the directory, a short listing.
    #[error("listing failed: {0}")]
    Listing(store::Error),
}

pub type FsResult<T> = Result<T, FsError>;

impl FsError {
    /// The errno the caller's system call returns.
    pub fn errno(&self) -> i32 {
        use store::Error as S;
        match self {
            FsError::Store(e) => match e {
                S::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
                S::NameTooLong(_) => libc::ENAMETOOLONG,
                S::InvalidName(..) | S::InvalidValue(..) => libc::EINVAL,
                S::NoXattrs(_) => libc::EOPNOTSUPP,
                S::NoEntry(_) | S::NoTag(_) => libc::ENOENT,
                S::Invalidated(_) => libc::ESTALE,
                S::TooBig { .. } => libc::EFBIG,
            },
            FsError::NotFound => libc::ENOENT,
            FsError::Exists => libc::EEXIST,
            FsError::NotPermitted(_) => libc::EPERM,
            FsError::ReadOnly => libc::EROFS,
            FsError::NoAttr => libc::ENODATA,
            FsError::UnsupportedAttr | FsError::Unsupported(_) => libc::EOPNOTSUPP,
            FsError::Invalid(_) => libc::EINVAL,
            FsError::CrossDir => libc::EXDEV,
            FsError::BadHandle => libc::EBADF,
            FsError::Range => libc::ERANGE,
            FsError::IsDir => libc::EISDIR,
            FsError::Stale(_) => libc::ESTALE,
            FsError::Listing(e) => match e.os_error() {
                Some(code) if code != libc::ENOENT => code,
                _ => libc::EIO,
            },
        }
    }

    /// Whether this is worth a log line and the `errors` counter: the
    /// expected answers (misses, refusals of bad input) are not.
    pub fn is_fault(&self) -> bool {
        match self {
            // An entry too large for the bound is the caller's, like bad
            // input (the later commit of its descriptor carries the errno).
            FsError::Store(e) | FsError::Listing(e) => match e {
                store::Error::Io { source, .. } => source.raw_os_error() != Some(libc::EFBIG),
                _ => false,
            },
            _ => false,
        }
    }
}
