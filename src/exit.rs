//! Exit codes: what a script, mount(8) (which returns its helper's code)
//! or systemd can tell apart. Every failure carries one, and a message
//! naming the path and the cause.

use std::fmt;
use std::process::ExitCode;

/// Why the program failed. Success is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Anything else: a store that fails while being read, a `.stats` that
    /// is not JSON.
    Failed = 1,
    /// A bad command line or mount option (clap uses 2 as well).
    Usage = 2,
    /// The store cannot be used: not a store, no user xattrs, no access.
    Store = 3,
    /// The mount did not come up: no /dev/fuse, no permission, a missing
    /// mount point, the metrics address taken.
    Mount = 4,
    /// The mount point is busy (a live daemon serves it), or a dead mount
    /// there could not be taken over.
    MountPoint = 5,
}

/// Every exit code and what it means, for `--help` and the man page.
pub const CODES: &[(u8, &str)] = &[
    (0, "success (a mount returns once it is live)"),
    (1, "any other failure"),
    (2, "usage: a bad command line or mount option"),
    (
        3,
        "the store is not usable (not a store, no user xattrs, no access)",
    ),
    (
        4,
        "mounting failed (no /dev/fuse, no permission, no mount point)",
    ),
    (
        5,
        "the mount point is busy (served by a live daemon) or cannot be taken over",
    ),
];

/// A failure: its code and what to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: Code,
    pub message: String,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(Code::Usage, message)
    }

    pub fn store(message: impl fmt::Display) -> Failure {
        Failure::new(Code::Store, message.to_string())
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code as u8)
    }

    /// As the serving process sends it to the waiting parent: `CODE:message`.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.code as u8, self.message)
    }

    /// The parent's reading of `encode()`; a message without a code is a
    /// failed mount.
    pub fn decode(said: &str) -> Failure {
        let code = |n: &str| match n {
            "1" => Some(Code::Failed),
            "2" => Some(Code::Usage),
            "3" => Some(Code::Store),
            "4" => Some(Code::Mount),
            "5" => Some(Code::MountPoint),
            _ => None,
        };
        match said.split_once(':').and_then(|(n, m)| Some((code(n)?, m))) {
            Some((code, message)) => Failure::new(code, message),
            None => Failure::new(Code::Mount, said),
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::new(Code::Failed, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The exit codes as the long help's and the man page's text.
pub fn help() -> String {
    CODES
        .iter()
        .map(|(n, what)| format!("  {n}  {what}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_crosses_the_pipe_with_its_code() {
        let f = Failure::new(Code::MountPoint, "mounting /m: gone: x");
        assert_eq!(Failure::decode(&f.encode()), f);
        assert_eq!(
            Failure::decode("no code: here"),
            Failure::new(Code::Mount, "no code: here")
        );
    }

    #[test]
    fn every_code_is_documented() {
        for code in [
            Code::Failed,
            Code::Usage,
            Code::Store,
            Code::Mount,
            Code::MountPoint,
        ] {
            assert!(CODES.iter().any(|(n, _)| *n == code as u8), "{code:?}");
        }
    }
}
