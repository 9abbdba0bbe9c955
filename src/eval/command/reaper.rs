//! Evaluators die with knobs, however knobs ends.
//!
//! Each evaluator runs in a process group of its own (so that a terminal's
//! first Ctrl-C lets the trials in flight finish), which also means that
//! nothing kills it when knobs itself is killed: after a second Ctrl-C or a
//! `kill -9`, a load generator would go on loading the system, and a
//! `--resume` would start the same trial again beside it.
//!
//! So the first evaluator started by a process also starts a **reaper**: a
//! forked copy of knobs, in its own process group and deaf to the terminal's
//! signals, that reads the ids of the live evaluator groups from a pipe
//! (`+pgid` when one starts, `-pgid` once it is reaped). When knobs ends in
//! any way, the kernel closes the pipe's write end; the reaper sees end of
//! file, sends SIGKILL to every group still listed, and exits. Grandchildren
//! that stayed in their group die with it; a daemon that left the group with
//! `setsid` is beyond any group kill.
//!
//! On Linux the group leader also gets `PR_SET_PDEATHSIG`, which covers the
//! instant between its start and its registration with the reaper.
//!
//! The reaper runs between `fork` and `_exit` without allocating or taking
//! a lock (only `read`, `kill`, `close`, `signal`, `setpgid` and `_exit`), as
//! a child of a multi-threaded process must.

use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::{Mutex, OnceLock};

/// Most groups the reaper tracks at once (evaluations in flight).
const SLOTS: usize = 4096;

/// The write end of the pipe to the reaper; `None` when it could not be started.
static REAPER: OnceLock<Option<Mutex<std::fs::File>>> = OnceLock::new();

fn reaper() -> Option<&'static Mutex<std::fs::File>> {
    REAPER.get_or_init(start).as_ref()
}

/// Tell the reaper that process group `pgid` is live. Best effort: when the reaper cannot
/// be reached the evaluation still runs (and is still killed on timeout or when it ends).
pub(super) fn watch(pgid: u32) {
    send(b'+', pgid);
}

/// Tell the reaper that process group `pgid` is gone (its leader was reaped).
pub(super) fn unwatch(pgid: u32) {
    send(b'-', pgid);
}

fn send(op: u8, pgid: u32) {
    if let Some(pipe) = reaper() {
        // One line of at most 12 bytes: a single atomic write.
        let line = format!("{}{pgid}\n", op as char);
        if let Ok(mut f) = pipe.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// For `Command::pre_exec` on the group leader (Linux): die with the thread that started it.
#[cfg(target_os = "linux")]
pub(super) fn die_with_parent() -> std::io::Result<()> {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a plain signal number; async-signal-safe.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub(super) fn die_with_parent() -> std::io::Result<()> {
    Ok(())
}

fn start() -> Option<Mutex<std::fs::File>> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe writes two descriptors into the array it is given.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        tracing::warn!("cannot start the evaluator reaper: {}", std::io::Error::last_os_error());
        return None;
    }
    let (read_end, write_end) = (fds[0], fds[1]);
    // Evaluators must not inherit the write end, or the reaper would never see knobs end.
    // SAFETY: fcntl on descriptors we own.
    unsafe {
        libc::fcntl(write_end, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::fcntl(read_end, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    // SAFETY: the child only calls async-signal-safe functions and never returns (see `run`).
    match unsafe { libc::fork() } {
        -1 => {
            tracing::warn!("cannot start the evaluator reaper: {}", std::io::Error::last_os_error());
            // SAFETY: closing our own descriptors.
            unsafe {
                libc::close(read_end);
                libc::close(write_end);
            }
            None
        }
        0 => run(read_end),
        _ => {
            // SAFETY: closing the child's end in the parent; `write_end` is ours alone now.
            unsafe { libc::close(read_end) };
            Some(Mutex::new(unsafe { std::fs::File::from_raw_fd(write_end) }))
        }
    }
}

/// The reaper's life, in the forked child: no allocation, no locks, no return.
fn run(input: RawFd) -> ! {
    // SAFETY: every call here is async-signal-safe and takes plain values.
    unsafe {
        // Out of knobs' process group, and deaf to what the terminal sends it.
        libc::setpgid(0, 0);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        // Hold nothing of knobs' open: sockets, database files, other pipes.
        for fd in 0..1024 {
            if fd != input {
                libc::close(fd);
            }
        }
    }
    let mut groups = [0 as libc::pid_t; SLOTS];
    let mut buf = [0u8; 512];
    let (mut op, mut num, mut digits) = (0u8, 0 as libc::pid_t, 0usize);
    loop {
        // SAFETY: reading into a buffer we own, within its length.
        let n = unsafe { libc::read(input, buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 {
            break;
        }
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            break;
        }
        for &b in buf.iter().take(n as usize) {
            match b {
                b'+' | b'-' => (op, num, digits) = (b, 0, 0),
                b'0'..=b'9' if digits < 10 => {
                    num = num.saturating_mul(10).saturating_add((b - b'0') as libc::pid_t);
                    digits += 1;
                }
                b'\n' => {
                    if num > 1 {
                        if op == b'+' {
                            if let Some(slot) = groups.iter_mut().find(|g| **g == 0) {
                                *slot = num;
                            }
                        } else if op == b'-'
                            && let Some(slot) = groups.iter_mut().find(|g| **g == num)
                        {
                            *slot = 0;
                        }
                    }
                    (op, num, digits) = (0, 0, 0);
                }
                _ => (op, num, digits) = (0, 0, 0),
            }
        }
    }
    for &g in groups.iter().filter(|g| **g > 1) {
        // SAFETY: kill takes plain values; a group that is gone gives ESRCH.
        unsafe { libc::kill(-g, libc::SIGKILL) };
    }
    // SAFETY: ends the child without running the parent's atexit handlers or destructors.
    unsafe { libc::_exit(0) }
}
