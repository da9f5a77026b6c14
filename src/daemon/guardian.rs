//! The guardian: a process that outlives the daemon's main thread.
//!
//! If the daemon is killed while its notifier thread waits in the kernel
//! for a directory lock that a request to this very daemon holds (an
//! invalidation racing `rm`), that thread can never end, the process never
//! exits and the mount hangs. The guardian hears of the main thread's death
//! (PR_SET_PDEATHSIG) and, unless the daemon said it was done, aborts the
//! daemon's FUSE connections, which fails the stuck request and frees
//! everything.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;

use nix::sys::signal::{SigSet, Signal};

use super::os::{abort_connection, detach_stdio};

/// Forks the guardian: a process that outlives the daemon's main thread.
/// If the daemon is killed while its notifier thread waits in the kernel
/// for a directory lock that a request to this very daemon holds (an
/// invalidation racing `rm`), that thread can never end, the process
/// never exits and the mount hangs. The guardian hears of the main
/// thread's death (PR_SET_PDEATHSIG) and, unless the daemon said it was
/// done, aborts the daemon's FUSE connections, which fails the stuck
/// request and frees everything. Returns the pipe that tells the guardian
/// the connections and "done".
pub(super) fn spawn_guardian(ready: &mut Option<File>) -> Option<File> {
    let (read_end, write_end) = nix::unistd::pipe().ok()?;
    let parent = nix::unistd::getpid();
    // SAFETY: called before this process starts any thread.
    match unsafe { nix::unistd::fork() }.ok()? {
        nix::unistd::ForkResult::Parent { .. } => Some(File::from(write_end)),
        nix::unistd::ForkResult::Child => {
            drop(write_end);
            drop(ready.take());
            // A program of its own name, so that nothing mistakes it for
            // the daemon; the control pipe's read end is inherited.
            let fd = read_end.as_raw_fd().to_string();
            let parent = parent.as_raw().to_string();
            let argv = [
                c"tagcachefs-guardian".to_owned(),
                c"--guardian".to_owned(),
                cstring(&fd),
                cstring(&parent),
            ];
            let _ = nix::unistd::execv(c"/proc/self/exe", &argv);
            guard(
                File::from(read_end),
                nix::unistd::Pid::from_raw(parent.parse().unwrap_or(0)),
            )
        }
    }
}

fn cstring(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).expect("numbers hold no NUL")
}

/// `tagcachefs-guardian --guardian FD PARENT`: the guardian after exec.
pub fn guardian_main(args: &[std::ffi::OsString]) -> ! {
    let number = |i: usize| args.get(i).and_then(|a| a.to_str()?.parse::<i32>().ok());
    let (Some(fd), Some(parent)) = (number(0), number(1)) else {
        std::process::exit(2)
    };
    // SAFETY: the descriptor was handed down by our parent for this use.
    let control = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    guard(control, nix::unistd::Pid::from_raw(parent))
}

fn guard(mut control: File, parent: nix::unistd::Pid) -> ! {
    detach_stdio(None);
    // SAFETY: plain prctl; SIGUSR1 is blocked and waited for below.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGUSR1) };
    let death = SigSet::from_iter([Signal::SIGUSR1]);
    let _ = death.thread_block();
    if nix::unistd::getppid() != parent {
        std::process::exit(0);
    }
    let mut said = String::new();
    let mut buf = [0u8; 256];
    loop {
        // Waits until the daemon writes, exits whole (EOF: its
        // connections went with it), or its main thread dies.
        if readable(&control, 100) {
            match control.read(&mut buf) {
                Ok(0) | Err(_) => std::process::exit(0),
                Ok(n) => said.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        if said.lines().any(|l| l == "done") {
            std::process::exit(0);
        }
        let timeout = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid signal set and timespec.
        let got = unsafe { libc::sigtimedwait(death.as_ref(), std::ptr::null_mut(), &timeout) };
        if got == libc::SIGUSR1 {
            break;
        }
    }
    // The main thread is gone. A whole exit closes the pipe at once.
    if readable(&control, 300) {
        let mut rest = String::new();
        if matches!(control.read_to_string(&mut rest), Ok(0)) || said.contains("done") {
            std::process::exit(0);
        }
        said.push_str(&rest);
        if said.lines().any(|l| l == "done") {
            std::process::exit(0);
        }
    }
    for conn in said.lines().filter_map(|l| l.strip_prefix("conn ")) {
        abort_connection(conn);
    }
    std::process::exit(0)
}

/// Whether `file` has data or an end to read within `ms` milliseconds.
fn readable(file: &File, ms: i32) -> bool {
    let mut fds = [libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
    fds[0].revents != 0
}
