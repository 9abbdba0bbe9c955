//! Process handling: starting the program in a process group of its own,
//! waiting for it with a deadline, killing the whole group, and capturing
//! its output within a cap.

use std::io::{self, Read};
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::eval::EvalError;

/// How long to wait for the output pipes to close after the program ended
/// and its group was killed (a descendant that left the group may hold them).
const PIPE_GRACE: Duration = Duration::from_secs(2);
/// Lines of stderr quoted in a failure reason.
const STDERR_TAIL_LINES: usize = 5;
/// Characters kept of each quoted line.
const QUOTED_LINE_CHARS: usize = 200;

/// What ended the run.
pub(super) enum End {
    Exited(ExitStatus),
    TimedOut,
}

/// Why the program could not be started: fatal, unless the cause may pass.
pub(super) fn spawn_error(program: &Path, e: io::Error) -> EvalError {
    let shown = program.display();
    let on_path = program.components().count() == 1 && !program.is_absolute();
    match e.raw_os_error() {
        _ if e.kind() == io::ErrorKind::NotFound && on_path => {
            EvalError::Fatal(format!("program `{shown}` not found on PATH"))
        }
        _ if e.kind() == io::ErrorKind::NotFound => EvalError::Fatal(format!("program {shown} does not exist")),
        _ if e.kind() == io::ErrorKind::PermissionDenied => {
            EvalError::Fatal(format!("program {shown} cannot be executed (permission denied; is it executable?)"))
        }
        Some(libc::ENOEXEC) => {
            EvalError::Fatal(format!("program {shown} is not an executable format (missing `#!` line?)"))
        }
        // Temporary: the file is being written, or out of processes/memory/fds.
        Some(libc::ETXTBSY | libc::EAGAIN | libc::ENOMEM | libc::EMFILE | libc::ENFILE) => {
            EvalError::Transient(format!("could not start {shown}: {e}"))
        }
        _ => EvalError::Fatal(format!("could not start {shown}: {e}")),
    }
}

/// Wait until the child ends or the deadline passes, then SIGKILL its whole
/// process group (stragglers included) and reap it. The group is killed
/// while the leader is still unreaped, so its id cannot have been reused.
pub(super) fn wait_and_kill_group(child: &mut Child, deadline: Instant) -> io::Result<End> {
    let pid = child.id() as libc::pid_t;
    let mut nap = Duration::from_millis(1);
    let end = loop {
        match exited_unreaped(child) {
            Ok(true) => break None,
            Ok(false) => {}
            Err(e) => {
                kill_group(pid);
                let _ = child.wait();
                return Err(e);
            }
        }
        let now = Instant::now();
        if now >= deadline {
            break Some(End::TimedOut);
        }
        thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(20));
    };
    kill_group(pid);
    let status = child.wait()?;
    Ok(end.unwrap_or(End::Exited(status)))
}

fn kill_group(pid: libc::pid_t) {
    // Never -1 or -0 (every process / our own group).
    if pid > 1 {
        // SAFETY: kill has no memory-safety preconditions; ESRCH (group gone) is fine.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// Has the child ended? Leaves it a zombie so that its pid (the group id)
/// stays reserved until we reap it.
#[cfg(target_os = "linux")]
fn exited_unreaped(child: &mut Child) -> io::Result<bool> {
    loop {
        // SAFETY: siginfo_t is plain data; waitid writes into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                child.id() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            // SAFETY: waitid filled `info` (si_pid stays 0 when nothing happened).
            return Ok(unsafe { info.si_pid() } != 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn exited_unreaped(child: &mut Child) -> io::Result<bool> {
    Ok(child.try_wait()?.is_some())
}

/// Wait (a bounded time) for `n` readers to reach end of file.
pub(super) fn wait_pipes(done: &Receiver<()>, n: usize) -> bool {
    let deadline = Instant::now() + PIPE_GRACE;
    (0..n).all(|_| done.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_ok())
}

/// The last `cap` bytes of a stream, and how many bytes it carried.
#[derive(Debug, Default)]
pub(super) struct Captured {
    pub bytes: Vec<u8>,
    pub total: u64,
}

impl Captured {
    pub(super) fn truncated(&self) -> bool {
        self.total > self.bytes.len() as u64
    }

    /// Lines of the captured text; a first line cut by the cap is dropped.
    pub(super) fn lines(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.bytes);
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        if self.truncated() && !lines.is_empty() {
            lines.remove(0);
        }
        lines
    }

    /// `; stderr tail: a | b | c`, or nothing when stderr was empty.
    pub(super) fn tail_note(&self) -> String {
        let lines: Vec<String> = self.lines().into_iter().filter(|l| !l.trim().is_empty()).collect();
        if lines.is_empty() {
            return String::new();
        }
        let tail = &lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..];
        let quoted: Vec<String> = tail.iter().map(|l| clip(l.trim_end())).collect();
        format!("; stderr tail: {}", quoted.join(" | "))
    }
}

pub(super) fn clip(s: &str) -> String {
    if s.chars().count() <= QUOTED_LINE_CHARS {
        s.to_string()
    } else {
        let cut: String = s.chars().take(QUOTED_LINE_CHARS).collect();
        format!("{cut}…")
    }
}

/// A reader thread draining one pipe into a capped buffer.
pub(super) struct Capture {
    shared: Arc<Mutex<Captured>>,
}

impl Capture {
    pub(super) fn start(mut reader: impl Read + Send + 'static, cap: usize, done: Sender<()>) -> Capture {
        let shared = Arc::new(Mutex::new(Captured::default()));
        let sink = Arc::clone(&shared);
        thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut c = sink.lock().unwrap_or_else(|e| e.into_inner());
                        c.total += n as u64;
                        c.bytes.extend_from_slice(&buf[..n]);
                        if c.bytes.len() > 2 * cap {
                            let excess = c.bytes.len() - cap;
                            c.bytes.drain(..excess);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let mut c = sink.lock().unwrap_or_else(|e| e.into_inner());
            if c.bytes.len() > cap {
                let excess = c.bytes.len() - cap;
                c.bytes.drain(..excess);
            }
            drop(c);
            let _ = done.send(());
        });
        Capture { shared }
    }

    /// What was captured so far (all of it once the reader is done).
    pub(super) fn take(self) -> Captured {
        std::mem::take(&mut *self.shared.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
pub(super) fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "signal",
    }
}
