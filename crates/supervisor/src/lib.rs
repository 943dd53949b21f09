//! keel's supervised child process, the one way keel starts, watches and stops another program
//! (mariadbd and its helpers, the node's `keel cache`, the agents of `keel up`).
//!
//! A [`Child`] is spawned from a [`Spec`]: stdout and stderr appended to its log file, stdin from
//! /dev/null, leader of its own process group (so a stop reaches the helpers it forks, and a
//! terminal's Ctrl-C does not), optionally with a parent-death signal (so it does not outlive a
//! killed supervisor and hold its ports against the next one) or detached (it is meant to outlive
//! the process that started it). Readiness is polled with a deadline ([`Child::wait_ready`]); a
//! stop asks politely and waits a grace period, then SIGKILLs the whole group and reaps
//! ([`Child::stop`]); dropping an owned child does the same without the grace period. Restarts
//! follow one rule, [`BackOff`].
//!
//! Only pids this crate spawned (or that the caller verified and adopted) are ever signalled, and a
//! process group only while its leader is unreaped or just reaped by us, so the id cannot have
//! been reused. Signals, users and process groups go through `nix`; the only `unsafe` is the
//! `pre_exec` hook that sets the parent-death signal and the termination signal handler, each with
//! its `SAFETY` note.

use nix::sys::signal;
pub use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What can go wrong with a child.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("opening the log file {path} of {child}: {source}")]
    Log {
        child: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("starting {child} ({program}): {source}")]
    Spawn {
        child: String,
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("{child} (pid {pid}) did not finish within {secs} s")]
    Timeout { child: String, pid: i32, secs: u64 },
    #[error("{child} (pid {pid}) exited before it was ready: {status}")]
    Exited {
        child: String,
        pid: i32,
        status: ExitStatus,
    },
    #[error("{child} (pid {pid}) was not ready within {secs} s")]
    NotReady { child: String, pid: i32, secs: u64 },
}

/// How to start a child.
#[derive(Debug, Clone)]
pub struct Spec {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    env_clear: bool,
    env: Vec<(OsString, OsString)>,
    log: Option<PathBuf>,
    user: Option<(u32, u32)>,
    parent_death: Option<Signal>,
    detached: bool,
}

impl Spec {
    /// `name` is what logs and errors call the child (`mariadbd`, `keel cache`).
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>) -> Spec {
        Spec {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env_clear: false,
            env: Vec::new(),
            log: None,
            user: None,
            parent_death: None,
            detached: false,
        }
    }
    pub fn arg(mut self, a: impl Into<OsString>) -> Spec {
        self.args.push(a.into());
        self
    }
    pub fn args<I, A>(mut self, args: I) -> Spec
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
    /// Starts from an empty environment, so nothing of the supervisor's leaks in.
    pub fn env_clear(mut self) -> Spec {
        self.env_clear = true;
        self
    }
    pub fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Spec {
        self.env.push((k.into(), v.into()));
        self
    }
    /// stdout and stderr are appended to this file (created when missing); without one they go
    /// to /dev/null.
    pub fn log(mut self, path: impl Into<PathBuf>) -> Spec {
        self.log = Some(path.into());
        self
    }
    /// Runs the child as this uid and gid (the supervisor must be root).
    pub fn user(mut self, uid: u32, gid: u32) -> Spec {
        self.user = Some((uid, gid));
        self
    }
    /// The child gets `sig` when the thread that spawned it dies, so a killed supervisor leaves
    /// no child holding its ports.
    pub fn parent_death_signal(mut self, sig: Signal) -> Spec {
        self.parent_death = Some(sig);
        self
    }
    /// The child is meant to outlive its supervisor: no parent-death signal, and dropping the
    /// [`Child`] leaves it running.
    pub fn detached(mut self) -> Spec {
        self.detached = true;
        self.parent_death = None;
        self
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The command line, for messages.
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.as_os_str())
            .chain(self.args.iter().map(OsString::as_os_str))
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// How a [`Child::stop`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It exited within the grace period (or had exited already).
    Clean,
    /// The grace period ran out: its process group was SIGKILLed.
    Killed,
}

/// A child process keel supervises (leader of its own process group), or one adopted from an
/// earlier supervisor (not our child: watched through /proc).
#[derive(Debug)]
pub struct Child {
    name: String,
    pid: Pid,
    /// `None` for an adopted process.
    inner: Option<std::process::Child>,
    detached: bool,
    exit: Option<ExitStatus>,
    started: Instant,
}

/// How often the waits poll.
const POLL: Duration = Duration::from_millis(50);

impl Child {
    /// Starts the child described by `spec`.
    pub fn spawn(spec: &Spec) -> Result<Child, Error> {
        let mut c = Command::new(&spec.program);
        c.args(&spec.args).stdin(Stdio::null()).process_group(0);
        if spec.env_clear {
            c.env_clear();
        }
        c.envs(spec.env.iter().map(|(k, v)| (k, v)));
        match &spec.log {
            Some(path) => {
                let log = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .and_then(|f| Ok((f.try_clone()?, f)))
                    .map_err(|source| Error::Log {
                        child: spec.name.clone(),
                        path: path.clone(),
                        source,
                    })?;
                c.stdout(log.0).stderr(log.1);
            }
            None => {
                c.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        if let Some((uid, gid)) = spec.user {
            c.uid(uid).gid(gid);
        }
        if let Some(sig) = spec.parent_death.filter(|_| !spec.detached) {
            let parent = nix::unistd::getpid();
            // SAFETY: the hook runs in the forked child before exec, where only
            // async-signal-safe calls are allowed: prctl and getppid are plain system calls that
            // allocate nothing and take no lock.
            unsafe {
                c.pre_exec(move || {
                    nix::sys::prctl::set_pdeathsig(sig)?;
                    // The parent may have died before prctl: then nobody would send the signal.
                    if nix::unistd::getppid() != parent {
                        return Err(std::io::Error::other("the supervisor exited"));
                    }
                    Ok(())
                });
            }
        }
        let child = c.spawn().map_err(|source| Error::Spawn {
            child: spec.name.clone(),
            program: spec.program.clone(),
            source,
        })?;
        let pid = Pid::from_raw(child.id() as i32);
        tracing::debug!(child = %spec.name, pid = pid.as_raw(), command = %spec.command_line(), "spawned");
        Ok(Child {
            name: spec.name.clone(),
            pid,
            inner: Some(child),
            detached: spec.detached,
            exit: None,
            started: Instant::now(),
        })
    }

    /// Takes over a process another supervisor started (the caller verified it is the right
    /// one). It is watched through /proc and never killed on drop.
    pub fn adopt(name: impl Into<String>, pid: i32) -> Option<Child> {
        alive(pid).then(|| Child {
            name: name.into(),
            pid: Pid::from_raw(pid),
            inner: None,
            detached: true,
            exit: None,
            started: Instant::now(),
        })
    }

    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    /// When it was spawned (or adopted).
    pub fn started(&self) -> Instant {
        self.started
    }
    /// True for an adopted process.
    pub fn adopted(&self) -> bool {
        self.inner.is_none()
    }

    /// `Some(status)` once it has exited (reaping it). For an adopted process the status is
    /// unknown and reported as -1.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = match &mut self.inner {
                Some(c) => c.try_wait().ok().flatten(),
                None => (!alive(self.pid())).then(|| ExitStatus::from_raw(-1)),
            };
        }
        self.exit
    }

    /// Polls `ready` until it says yes, the child exits, or `deadline` passes. The child is
    /// left running when it is not ready in time: the caller decides what that means.
    pub fn wait_ready(
        &mut self,
        deadline: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), Error> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            if let Some(status) = self.try_wait() {
                return Err(Error::Exited {
                    child: self.name.clone(),
                    pid: self.pid(),
                    status,
                });
            }
            if ready() {
                return Ok(());
            }
            if start.elapsed() >= deadline {
                return Err(Error::NotReady {
                    child: self.name.clone(),
                    pid: self.pid(),
                    secs: deadline.as_secs(),
                });
            }
            std::thread::sleep(pause.min(deadline.saturating_sub(start.elapsed())));
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Waits for the child to finish on its own within `deadline`; on timeout its group is
    /// SIGKILLed and reaped. For programs that run to completion (`mariadb-install-db`).
    pub fn wait_exit(&mut self, deadline: Duration) -> Result<ExitStatus, Error> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.try_wait() {
                return Ok(st);
            }
            if start.elapsed() >= deadline {
                self.kill();
                return Err(Error::Timeout {
                    child: self.name.clone(),
                    pid: self.pid(),
                    secs: deadline.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM to the child, then up to `grace` for it to exit; then SIGKILL to its process
    /// group, and reap. Helpers it left behind in its group get SIGTERM after a clean exit.
    pub fn stop(&mut self, grace: Duration) -> Stopped {
        if self.try_wait().is_some() {
            return Stopped::Clean;
        }
        let _ = signal::kill(self.pid, Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < grace {
            if self.try_wait().is_some() {
                self.signal_group(Signal::SIGTERM);
                tracing::debug!(child = %self.name, pid = self.pid(), "stopped");
                return Stopped::Clean;
            }
            std::thread::sleep(POLL.min(grace.saturating_sub(start.elapsed())));
        }
        if self.try_wait().is_some() {
            self.signal_group(Signal::SIGTERM);
            return Stopped::Clean;
        }
        tracing::warn!(child = %self.name, pid = self.pid(), grace_s = grace.as_secs_f64(), "did not stop within its grace period: SIGKILL to its process group");
        self.kill();
        Stopped::Killed
    }

    /// Sends `sig` to the child's process group (best effort).
    pub fn signal_group(&self, sig: Signal) {
        let _ = signal::killpg(self.pid, sig);
    }

    /// SIGKILL to the group, then reaps (an adopted process: waits up to 10 s for it to vanish).
    fn kill(&mut self) {
        self.signal_group(Signal::SIGKILL);
        match &mut self.inner {
            Some(c) => {
                if let Ok(st) = c.wait() {
                    self.exit = Some(st);
                }
            }
            None => {
                let t = Instant::now();
                while alive(self.pid()) && t.elapsed() < Duration::from_secs(10) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                self.exit = Some(ExitStatus::from_raw(-1));
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.detached && self.try_wait().is_none() {
            self.kill();
        }
    }
}

/// When a supervised program is restarted after it exited: the first restart after a healthy
/// run waits `first`, each further restart without a healthy run in between twice as long, up
/// to `max`. A broken program therefore does not spin, and one that ran well comes back at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackOff {
    first: Duration,
    max: Duration,
    failures: u32,
}

impl BackOff {
    /// The rule every child of keel follows: 0.5 s, doubling up to 10 s.
    pub const DEFAULT: BackOff = BackOff::new(Duration::from_millis(500), Duration::from_secs(10));
    /// A run at least this long counts as healthy for programs that have no better signal.
    pub const HEALTHY_RUN: Duration = Duration::from_secs(10);

    pub const fn new(first: Duration, max: Duration) -> BackOff {
        BackOff {
            first,
            max,
            failures: 0,
        }
    }

    /// The pause before restarting a program that just exited; `was_healthy` says whether the
    /// run that ended got healthy (which resets the doubling).
    pub fn after_exit(&mut self, was_healthy: bool) -> Duration {
        if was_healthy {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        let doublings = (self.failures - 1).min(31);
        self.first
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// Exits in a row without a healthy run in between.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// Is `pid` alive (not gone, not a zombie)?
pub fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
        st.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    })
}

/// The command line of `pid` (its arguments), empty when it is gone.
pub fn cmdline(pid: i32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Sends `sig` to `pid`, a process the caller started or verified.
pub fn signal(pid: i32, sig: Signal) -> nix::Result<()> {
    signal::kill(Pid::from_raw(pid), sig)
}

/// Sends `sig` to the process group led by `pid`, a child the caller started in its own group
/// and has not reaped yet.
pub fn signal_group(pid: i32, sig: Signal) {
    if pid > 0 {
        let _ = signal::killpg(Pid::from_raw(pid), sig);
    }
}

/// Why an OS user could not be had.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("OS user {0:?} does not exist")]
    NoSuchUser(String),
    #[error("looking up OS user {name:?}: {source}")]
    Lookup { name: String, source: nix::Error },
}

/// uid and gid of the OS user `name`.
pub fn os_user(name: &str) -> Result<(u32, u32), UserError> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok((u.uid.as_raw(), u.gid.as_raw())),
        Ok(None) => Err(UserError::NoSuchUser(name.into())),
        Err(source) => Err(UserError::Lookup {
            name: name.into(),
            source,
        }),
    }
}

/// True when this process runs as root.
pub fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

static TERMINATION: AtomicBool = AtomicBool::new(false);

extern "C" fn on_termination(_: nix::libc::c_int) {
    TERMINATION.store(true, Ordering::SeqCst);
}

/// From now on SIGTERM and SIGINT only set a flag ([`termination_requested`]), so a supervisor
/// can stop its children cleanly before it exits.
pub fn catch_termination() -> nix::Result<()> {
    let action = signal::SigAction::new(
        signal::SigHandler::Handler(on_termination),
        signal::SaFlags::SA_RESTART,
        signal::SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { signal::sigaction(sig, &action) }?;
    }
    Ok(())
}

/// True once SIGTERM or SIGINT arrived after [`catch_termination`].
pub fn termination_requested() -> bool {
    TERMINATION.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("keel-supervisor-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn sh(name: &str, script: &str) -> Spec {
        Spec::new(name, "/bin/sh").arg("-c").arg(script)
    }

    #[test]
    fn back_off_doubles_until_max_and_resets_after_a_healthy_run() {
        let mut b = BackOff::new(Duration::from_millis(500), Duration::from_secs(10));
        let ms = |d: Duration| d.as_millis();
        let seq: Vec<u128> = (0..7).map(|_| ms(b.after_exit(false))).collect();
        assert_eq!(seq, [500, 1000, 2000, 4000, 8000, 10000, 10000]);
        assert_eq!(b.failures(), 7);
        assert_eq!(ms(b.after_exit(true)), 500);
        assert_eq!(ms(b.after_exit(false)), 1000);
        // Never overflows, however long a program keeps failing.
        for _ in 0..100 {
            assert!(b.after_exit(false) <= Duration::from_secs(10));
        }
        assert_eq!(ms(b.after_exit(false)), 10000);
        assert_eq!(
            BackOff::DEFAULT.clone().after_exit(true),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn output_goes_to_the_log_and_exit_is_reaped() {
        let d = tmp("log");
        let log = d.join("child.log");
        fs::write(&log, "earlier\n").unwrap();
        let spec = sh("echo", "echo out; echo err >&2; exit 3")
            .log(&log)
            .env_clear()
            .env("X", "y");
        let mut c = Child::spawn(&spec).unwrap();
        let st = c.wait_exit(Duration::from_secs(10)).unwrap();
        assert_eq!(st.code(), Some(3));
        assert_eq!(fs::read_to_string(&log).unwrap(), "earlier\nout\nerr\n");
        assert!(!alive(c.pid()), "reaped, not a zombie");
        let mut c = Child::spawn(
            &sh("env", "echo $X-$HOME")
                .log(&log)
                .env_clear()
                .env("X", "y"),
        )
        .unwrap();
        c.wait_exit(Duration::from_secs(10)).unwrap();
        assert!(fs::read_to_string(&log).unwrap().ends_with("y-\n"));
    }

    #[test]
    fn readiness_is_polled_until_ready_or_deadline() {
        let d = tmp("ready");
        let flag = d.join("ready");
        let mut c = Child::spawn(&sh(
            "late",
            &format!("sleep 0.3; touch {}; sleep 30", flag.display()),
        ))
        .unwrap();
        let t = Instant::now();
        c.wait_ready(Duration::from_secs(10), || flag.exists())
            .unwrap();
        assert!(t.elapsed() >= Duration::from_millis(250));

        let mut never = Child::spawn(&sh("never", "sleep 30")).unwrap();
        let t = Instant::now();
        let e = never
            .wait_ready(Duration::from_millis(300), || false)
            .unwrap_err();
        assert!(matches!(e, Error::NotReady { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(never.try_wait().is_none(), "left running");

        let mut dies = Child::spawn(&sh("dies", "exit 7")).unwrap();
        let e = dies
            .wait_ready(Duration::from_secs(10), || false)
            .unwrap_err();
        assert!(
            matches!(e, Error::Exited { status, .. } if status.code() == Some(7)),
            "{e}"
        );
    }

    #[test]
    fn stop_is_clean_when_the_child_obeys_sigterm() {
        let mut c = Child::spawn(&sh("obeys", "sleep 30")).unwrap();
        let t = Instant::now();
        assert_eq!(c.stop(Duration::from_secs(10)), Stopped::Clean);
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(c.try_wait().unwrap().signal() == Some(15));
        assert!(!alive(c.pid()));
    }

    #[test]
    fn stop_kills_the_whole_group_after_the_grace_period() {
        let d = tmp("group");
        let pidfile = d.join("grandchild");
        // The shell ignores SIGTERM and leaves a grandchild in its group.
        let script = format!(
            "trap '' TERM; sleep 60 & echo $! > {}; wait; sleep 60",
            pidfile.display()
        );
        let mut c = Child::spawn(&sh("stubborn", &script)).unwrap();
        c.wait_ready(Duration::from_secs(10), || {
            fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))
        })
        .unwrap();
        let grandchild: i32 = fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(alive(grandchild));
        let t = Instant::now();
        assert_eq!(c.stop(Duration::from_millis(400)), Stopped::Killed);
        assert!(t.elapsed() >= Duration::from_millis(400));
        assert_eq!(c.try_wait().unwrap().signal(), Some(9));
        // The grandchild (reparented to init, or to a subreaper) dies with the group.
        let t = Instant::now();
        while alive(grandchild) && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(grandchild), "grandchild {grandchild} survived");
    }

    #[test]
    fn drop_kills_and_reaps_an_owned_child_but_not_a_detached_one() {
        let c = Child::spawn(&sh("owned", "sleep 30")).unwrap();
        let pid = c.pid();
        drop(c);
        assert!(!alive(pid), "killed and reaped on drop");

        let c = Child::spawn(&sh("detached", "sleep 30").detached()).unwrap();
        let pid = c.pid();
        drop(c);
        assert!(alive(pid), "a detached child outlives its handle");
        let mut adopted = Child::adopt("detached", pid).unwrap();
        assert!(adopted.adopted());
        // Our own zombie would look dead through /proc only once reaped: kill it through the
        // adopted handle, then reap it here since it is still our child.
        signal(pid, Signal::SIGKILL).unwrap();
        let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
        assert!(adopted.try_wait().is_some());
    }

    #[test]
    fn parent_death_signal_reaches_the_child_when_its_thread_dies() {
        let d = tmp("pdeath");
        let pidfile = d.join("pid");
        let p = pidfile.clone();
        // The signal follows the spawning thread: spawn from a thread that then ends.
        let pid = std::thread::spawn(move || {
            let c = Child::spawn(
                &sh(
                    "orphan",
                    &format!("echo $$ > {}; exec sleep 30", p.display()),
                )
                .parent_death_signal(Signal::SIGTERM)
                .detached(),
            )
            .unwrap();
            c.pid()
        })
        .join()
        .unwrap();
        // detached() drops the parent-death signal: still alive after its thread ended.
        std::thread::sleep(Duration::from_millis(200));
        assert!(alive(pid));
        signal(pid, Signal::SIGKILL).unwrap();
        let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);

        let p = pidfile.clone();
        let _ = fs::remove_file(&p);
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let c = Child::spawn(
                &sh(
                    "orphan",
                    &format!("echo $$ > {}; exec sleep 30", p.display()),
                )
                .parent_death_signal(Signal::SIGTERM),
            )
            .unwrap();
            let pid = c.pid();
            let pf = p.clone();
            let mut c = c;
            c.wait_ready(Duration::from_secs(10), || pf.exists())
                .unwrap();
            std::mem::forget(c); // end the thread without the drop's kill
            tx.send(pid).unwrap();
        });
        let pid = rx.recv().unwrap();
        t.join().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(nix::sys::wait::WaitStatus::Signaled(_, sig, _)) = nix::sys::wait::waitpid(
                Pid::from_raw(pid),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            ) {
                assert_eq!(sig, Signal::SIGTERM);
                break;
            }
            assert!(Instant::now() < deadline, "no parent-death signal");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn os_user_lookup() {
        assert_eq!(os_user("root").unwrap(), (0, 0));
        assert!(matches!(
            os_user("no-such-user-keel"),
            Err(UserError::NoSuchUser(_))
        ));
    }
}
