//! The kernel half's side: spawning the user half and watching it.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

use super::death::DeathCause;
use super::{heartbeat, liveness};
use super::{FD_ENV, LOG_FD_ENV, PARENT_ENV, SPIN_ENV, STANDBY_FD_ENV, STATUS_FD_ENV, WORKERS_ENV};
use crate::lrpc::{CallOptions, EntryTable, KernelEndpoint, WaitPolicy};
use crate::marshal::frame::FORMAT_VERSION;
use crate::tracker::ObjectTracker;
use crate::transport::shm::ShmTransport;
use crate::transport::{wait_on, Area, AreaError, Transport, Word};

/// Errors starting a user half.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComponentError {
    /// The shared area could not be set up.
    #[error("setting up the call slots: {0}")]
    Area(#[from] AreaError),
    /// The executable could not be found or started.
    #[error("starting the user half ({exe}): {source}")]
    Spawn {
        /// The executable.
        exe: String,
        /// Why.
        source: std::io::Error,
    },
    /// The child did not say hello in time (did its `main` call
    /// `component::run_user_half_if_requested()` first?).
    #[error("the user half did not answer the handshake within {0:?}; does the executable call microdriver_rt::component::run_user_half_if_requested() at the start of main?")]
    NoHello(Duration),
    /// An activated warm standby did not say hello in time (it is stopped or hung): the
    /// caller starts a fresh user half instead.
    #[error("the warm standby did not say hello within {0:?} of its activation (time it could run): it is stopped or hung, so it was killed")]
    StandbyNoHello(Duration),
    /// The child runs a different build.
    #[error("the user half was built from different sources (entry table {theirs:#018x}, ours {ours:#018x}; format {their_format}, ours {our_format})")]
    Mismatch {
        /// Its table hash.
        theirs: u64,
        /// Ours.
        ours: u64,
        /// Its wire format.
        their_format: u32,
        /// Ours.
        our_format: u32,
    },
    /// An OS call failed.
    #[error("{what}: {source}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// How to start a user half.
#[derive(Debug, Clone)]
pub struct ComponentConfig {
    /// Worker threads serving upcalls concurrently.
    pub workers: usize,
    /// Call slots in all.
    pub slots: usize,
    /// Of them, slots for upcalls (the rest carry free-standing downcalls).
    pub upcall_slots: usize,
    /// Bytes per slot (the largest request or reply).
    pub capacity: usize,
    /// How callers on both sides wait, and the default call timeout.
    pub options: CallOptions,
    /// How long the child has to say hello.
    pub handshake_timeout: Duration,
    /// The executable to run (default: this one).
    pub exe: Option<PathBuf>,
    /// Its arguments (default: none).
    pub args: Vec<OsString>,
    /// Extra latency per crossing (the delay transport), zero for none.
    pub crossing_delay: Duration,
    /// Run the user half in its sandbox (empty environment, no fds but its channel and
    /// stderr, unprivileged, seccomp allow-list; see [`super::sandbox`]). Default true.
    pub sandbox: bool,
}

impl Default for ComponentConfig {
    fn default() -> Self {
        ComponentConfig {
            workers: 2,
            slots: 24,
            upcall_slots: 16,
            capacity: 256 * 1024,
            options: CallOptions::default(),
            handshake_timeout: Duration::from_secs(10),
            exe: None,
            args: Vec::new(),
            crossing_delay: Duration::ZERO,
            sandbox: true,
        }
    }
}

/// Serialises the window in which a channel's memfd is inheritable, so a concurrent spawn
/// of another user half does not inherit it.
static SPAWN_LOCK: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

fn set_cloexec(fd: std::os::fd::RawFd, on: bool) -> Result<(), ComponentError> {
    // SAFETY: fcntl(2) on a descriptor this process owns (the channel's memfd or one end
    // of a user half's pipe); it changes only that descriptor's flags.
    let rc = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 {
            flags
        } else if on {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC)
        } else {
            libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC)
        }
    };
    if rc < 0 {
        return Err(ComponentError::Os {
            what: "setting close-on-exec on a descriptor for the user half",
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// The kernel half's side of the channel: the shared slot area and the endpoint that
/// calls through it. It outlives user-half processes: a restarted user half attaches to
/// the same area, so stubs and installed endpoints keep working across restarts.
pub struct Channel {
    memfd: OwnedFd,
    transport: Arc<dyn Transport>,
    endpoint: Arc<KernelEndpoint>,
    table_hash: u64,
}

impl Channel {
    /// Creates the slot area and the kernel endpoint, with `tracker` as the kernel half's
    /// tracker.
    pub fn new(
        config: &ComponentConfig,
        tracker: Arc<ObjectTracker>,
    ) -> Result<Arc<Channel>, ComponentError> {
        let shm = ShmTransport::create(config.slots, config.upcall_slots, config.capacity)?;
        let table_hash = EntryTable::get().hash();
        shm.header(Word::KernelTableLo)
            .store(table_hash as u32, SeqCst);
        shm.header(Word::KernelTableHi)
            .store((table_hash >> 32) as u32, SeqCst);
        let memfd = shm
            .fd()
            .try_clone_to_owned()
            .map_err(|source| ComponentError::Os {
                what: "duplicating the slot memfd",
                source,
            })?;
        let transport: Arc<dyn Transport> = if config.crossing_delay.is_zero() {
            Arc::new(shm)
        } else {
            Arc::new(crate::transport::delay::DelayTransport::new(
                shm,
                config.crossing_delay,
            ))
        };
        let endpoint = Arc::new(KernelEndpoint::new(
            transport.clone(),
            tracker,
            config.options,
        ));
        Ok(Arc::new(Channel {
            memfd,
            transport,
            endpoint,
            table_hash,
        }))
    }

    /// The endpoint upcalls go through.
    pub fn endpoint(&self) -> &Arc<KernelEndpoint> {
        &self.endpoint
    }
}

/// Signals one user-half process through its pidfd: a signal never reaches another
/// process that was given the same pid after this one was reaped (on a busy machine pids
/// come round again within a minute), it fails with `ESRCH` instead.
#[derive(Clone)]
pub(crate) struct Signaller(Arc<OwnedFd>);

impl Signaller {
    /// Sends `signal` to the process (`ESRCH` once it has been reaped).
    pub(crate) fn send(&self, signal: Signal) -> rustix::io::Result<()> {
        pidfd_send_signal(&*self.0, signal)
    }
}

/// A running user half.
pub struct UserHalf {
    channel: Arc<Channel>,
    child: Child,
    pid: u32,
    pidfd: Arc<OwnedFd>,
    watcher: Option<JoinHandle<()>>,
    started: Instant,
    /// Why it died, once known (the watcher or `kill` fills it; the first answer wins).
    death: Arc<parking_lot::Mutex<Option<DeathCause>>>,
    /// The read end of its status pipe (its SIGSYS handler's record).
    trap: Arc<OwnedFd>,
    /// A warm standby's activation pipe (the write end; None once active). Only the kernel
    /// half holds it: no user half can activate a standby.
    activation: Option<OwnedFd>,
    /// True once it serves the channel: only then does its death fail the channel's calls
    /// (a standby's death is not the user half's).
    active: Arc<std::sync::atomic::AtomicBool>,
    /// Where its death is reported.
    on_death: Option<crossbeam_channel::Sender<u32>>,
    /// Set by whichever watcher reports the death first (the death word's or the pidfd's):
    /// one notice per death.
    reported: Arc<std::sync::atomic::AtomicBool>,
    /// The death-word watcher (see `liveness`), once it is the active user half.
    early: Option<JoinHandle<()>>,
    /// Tells the death-word watcher to end (the process was reaped).
    early_stop: Arc<std::sync::atomic::AtomicBool>,
}

fn os_error(what: &'static str) -> impl FnOnce(rustix::io::Errno) -> ComponentError {
    move |e| ComponentError::Os {
        what,
        source: e.into(),
    }
}

impl UserHalf {
    /// Starts a user half on a fresh channel with `tracker` as the kernel half's tracker.
    pub fn spawn(
        config: &ComponentConfig,
        tracker: Arc<ObjectTracker>,
    ) -> Result<UserHalf, ComponentError> {
        let channel = Channel::new(config, tracker)?;
        UserHalf::start(&channel, config, None)
    }

    /// Starts a user half on `channel` (after any previous one is dead and reaped): the
    /// channel is reset (slots freed, the tracker's pairings with the old user half
    /// dropped), the child started and its hello checked. When it dies, the endpoint fails
    /// every call at once and its pid is sent to `on_death`.
    pub fn start(
        channel: &Arc<Channel>,
        config: &ComponentConfig,
        on_death: Option<crossbeam_channel::Sender<u32>>,
    ) -> Result<UserHalf, ComponentError> {
        channel.endpoint.reset();
        // No death word left by a predecessor (it is dead: its kernel no longer marks it).
        channel.transport.header(Word::Alive).store(0, SeqCst);
        let mut half = UserHalf::launch(channel, config, false)?;
        half.active.store(true, SeqCst);
        half.on_death = on_death;
        half.handshake_and_watch(config)
    }

    /// Starts a **warm standby** on `channel`: a user-half process that does everything up
    /// to and including entering its sandbox, then waits, touching nothing in the shared
    /// area, until [`UserHalf::activate`]. Its death (sent to `on_death` like any other)
    /// fails no call. The channel is not reset: the running user half keeps serving.
    pub fn spawn_standby(
        channel: &Arc<Channel>,
        config: &ComponentConfig,
        on_death: Option<crossbeam_channel::Sender<u32>>,
    ) -> Result<UserHalf, ComponentError> {
        let mut half = UserHalf::launch(channel, config, true)?;
        half.on_death = on_death;
        half.watcher = Some(half.watch());
        Ok(half)
    }

    /// True while it is a standby not yet activated.
    pub fn is_standby(&self) -> bool {
        self.activation.is_some()
    }

    /// Makes a standby the channel's user half (after the previous one is dead and
    /// reaped): the channel is reset, the standby told to go on, and its hello checked.
    /// A user half that is already active is returned as it is.
    ///
    /// The hello must come within `hello_within` of time the standby could run (time its
    /// threads waited for a CPU is granted on top, up to the handshake timeout), not the
    /// whole handshake timeout: a warm standby answers at once, and one that hangs
    /// (stopped, deadlocked) must not hold the caller, who keeps every upcall waiting at
    /// the closed gate meanwhile. It is killed then, and the error returned.
    pub fn activate(
        mut self,
        config: &ComponentConfig,
        hello_within: Duration,
    ) -> Result<UserHalf, ComponentError> {
        let Some(activation) = self.activation.take() else {
            return Ok(self);
        };
        self.channel.endpoint.reset();
        self.channel.transport.header(Word::Alive).store(0, SeqCst);
        self.active.store(true, SeqCst);
        let written = rustix::io::write(&activation, &[1]);
        drop(activation);
        if let Err(e) = written {
            self.kill();
            return Err(ComponentError::Os {
                what: "activating the standby user half",
                source: e.into(),
            });
        }
        self.activation_handshake(config, hello_within)?;
        self.early = self.watch_death_word();
        Ok(self)
    }

    /// The hello of an activated standby: see [`UserHalf::activate`].
    fn activation_handshake(
        &mut self,
        config: &ComponentConfig,
        within: Duration,
    ) -> Result<(), ComponentError> {
        let asked = Instant::now();
        let mut window = within;
        let mut before = heartbeat::cpu_wait(self.pid);
        let result = loop {
            match self.handshake(&*self.channel.transport, window, self.channel.table_hash) {
                Err(ComponentError::NoHello(_)) if !self.is_dead() => {
                    let now = heartbeat::cpu_wait(self.pid);
                    let left = config.handshake_timeout.saturating_sub(asked.elapsed());
                    let granted = heartbeat::starvation_grant(before, now, window).min(left);
                    if granted.is_zero() {
                        break Err(ComponentError::StandbyNoHello(asked.elapsed()));
                    }
                    before = now;
                    window = granted;
                }
                other => break other,
            }
        };
        match result {
            Ok(()) => self.started = Instant::now(),
            Err(_) => self.kill(),
        }
        result
    }

    fn handshake_and_watch(mut self, config: &ComponentConfig) -> Result<UserHalf, ComponentError> {
        self.handshake_or_kill(config)?;
        self.watcher = Some(self.watch());
        self.early = self.watch_death_word();
        Ok(self)
    }

    /// Spawns the process (a standby when `standby`), without waiting for its hello.
    fn launch(
        channel: &Arc<Channel>,
        config: &ComponentConfig,
        standby: bool,
    ) -> Result<UserHalf, ComponentError> {
        // By default the child runs this very executable. Through /proc/self/exe, not the
        // path it was started from: the file may have been replaced or deleted since (a
        // rebuild or an upgrade while the driver runs), and a user half must always be the
        // same build as its kernel half.
        let (exe, arg0) = match &config.exe {
            Some(exe) => (exe.clone(), None),
            None => {
                let me = PathBuf::from("/proc/self/exe");
                if me.exists() {
                    (me, std::env::current_exe().ok())
                } else {
                    let exe = std::env::current_exe().map_err(|source| ComponentError::Os {
                        what: "finding this executable",
                        source,
                    })?;
                    (exe, None)
                }
            }
        };
        let mut command = Command::new(&exe);
        if let Some(name) = arg0 {
            std::os::unix::process::CommandExt::arg0(&mut command, name);
        }
        // Its own process group: job-control signals meant for the kernel half's job never
        // reach it behind the supervisor's back. In the kernel half's group, a stopped
        // user half was continued by the SIGCONT the kernel sends a process group that
        // becomes orphaned with a stopped member (the shell that started the driver in the
        // background exits), and a terminal's Ctrl-C, Ctrl-Z or `fg` hit it too. Set by
        // posix_spawn (POSIX_SPAWN_SETPGROUP): still no fork of this process.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        if config.sandbox {
            // The user half gets no environment but the variables set below.
            command.env_clear();
        }
        command
            .args(&config.args)
            .env(
                super::sandbox::SANDBOX_ENV,
                if config.sandbox { "1" } else { "0" },
            )
            .env(WORKERS_ENV, config.workers.to_string())
            .env(SPIN_ENV, config.options.wait.spin.as_micros().to_string())
            .env(PARENT_ENV, std::process::id().to_string());
        // No pre_exec closure: with one, std must fork() this whole process (copying its
        // page tables and leaving every page copy-on-write), which stalls the kernel half's
        // other threads, the critical path included, for milliseconds per restart. Without
        // one it spawns with posix_spawn (vfork semantics). The memfd is made inheritable
        // for the spawn only; the child finds it by number and sets its own death signal.
        let raw = channel.memfd.as_raw_fd();
        command.env(FD_ENV, raw.to_string());
        // Two pipes: its `tracing` events (non-blocking on its side: a full pipe drops
        // events, never stalls it) and the record its SIGSYS handler writes.
        use rustix::pipe::{pipe_with, PipeFlags};
        let (log_rx, log_tx) =
            pipe_with(PipeFlags::CLOEXEC).map_err(os_error("creating the log pipe"))?;
        rustix::fs::fcntl_setfl(&log_tx, rustix::fs::OFlags::NONBLOCK)
            .map_err(os_error("making the log pipe non-blocking"))?;
        let (trap_rx, trap_tx) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)
            .map_err(os_error("creating the status pipe"))?;
        command
            .env(LOG_FD_ENV, log_tx.as_raw_fd().to_string())
            .env(
                super::LOG_LEVEL_ENV,
                tracing::level_filters::LevelFilter::current().to_string(),
            )
            .env(STATUS_FD_ENV, trap_tx.as_raw_fd().to_string());
        let mut inherited = vec![raw, log_tx.as_raw_fd(), trap_tx.as_raw_fd()];
        // A standby waits for a byte on this pipe before it touches the shared area.
        let standby_pipe = if standby {
            let (wait, go) =
                pipe_with(PipeFlags::CLOEXEC).map_err(os_error("creating the standby pipe"))?;
            command.env(STANDBY_FD_ENV, wait.as_raw_fd().to_string());
            inherited.push(wait.as_raw_fd());
            Some((wait, go))
        } else {
            None
        };
        let child = {
            let _guard = SPAWN_LOCK.lock();
            for &fd in &inherited {
                set_cloexec(fd, false)?;
            }
            let spawned = command.spawn();
            for &fd in &inherited {
                set_cloexec(fd, true)?;
            }
            spawned.map_err(|source| ComponentError::Spawn {
                exe: exe.display().to_string(),
                source,
            })?
        };
        // Only the child holds the write ends now: its death ends both pipes.
        drop((log_tx, trap_tx));
        let activation = standby_pipe.map(|(wait, go)| {
            drop(wait);
            go
        });
        let pid = child.id();
        if let Err(e) = super::logs::spawn_reader(log_rx, pid) {
            tracing::warn!("user half {pid}: its log events are lost: {e}");
        }
        let pidfd = Pid::from_raw(pid as i32)
            .ok_or(ComponentError::Os {
                what: "the child's pid",
                source: std::io::Error::from(std::io::ErrorKind::InvalidData),
            })
            .and_then(|p| {
                pidfd_open(p, PidfdFlags::empty()).map_err(|e| ComponentError::Os {
                    what: "pidfd_open on the user half",
                    source: e.into(),
                })
            })?;
        Ok(UserHalf {
            channel: Arc::clone(channel),
            child,
            pid,
            pidfd: Arc::new(pidfd),
            watcher: None,
            started: Instant::now(),
            death: Arc::new(parking_lot::Mutex::new(None)),
            trap: Arc::new(trap_rx),
            activation,
            active: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            on_death: None,
            reported: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            early: None,
            early_stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        })
    }

    /// Waits for the hello; a user half that does not give one (in time, or of this build)
    /// is killed.
    fn handshake_or_kill(&mut self, config: &ComponentConfig) -> Result<(), ComponentError> {
        let result = self.handshake(
            &*self.channel.transport,
            config.handshake_timeout,
            self.channel.table_hash,
        );
        match result {
            // Its uptime as the user half starts with its hello: the time it waited as a
            // standby, or took to start, is not time it ran (counted, a standby that
            // waited longer than `stable_uptime` and then died at once was no young
            // death, and `status` showed an uptime it never had).
            Ok(()) => self.started = Instant::now(),
            Err(_) => self.kill(),
        }
        result
    }

    fn handshake(
        &self,
        area: &dyn Transport,
        timeout: Duration,
        ours: u64,
    ) -> Result<(), ComponentError> {
        let deadline = Instant::now() + timeout;
        let hello = area.header(Word::Hello);
        while hello.load(SeqCst) == 0 {
            let now = Instant::now();
            if now >= deadline || self.is_dead() {
                return Err(ComponentError::NoHello(timeout));
            }
            wait_on(hello, 0, (deadline - now).min(Duration::from_millis(10)));
        }
        let theirs = u64::from(area.header(Word::UserTableLo).load(SeqCst))
            | (u64::from(area.header(Word::UserTableHi).load(SeqCst)) << 32);
        let their_format = area.header(Word::UserFormat).load(SeqCst);
        let our_format = u32::from(FORMAT_VERSION);
        if theirs != ours || their_format != our_format {
            return Err(ComponentError::Mismatch {
                theirs,
                ours,
                their_format,
                our_format,
            });
        }
        Ok(())
    }

    /// What either watcher does when it learns of the death: fail every call (if it is
    /// the active user half) and send the notice, once.
    fn death_notice(&self) -> impl Fn() + Send + 'static {
        let endpoint = Arc::clone(&self.channel.endpoint);
        let (active, reported) = (Arc::clone(&self.active), Arc::clone(&self.reported));
        let on_death = self.on_death.clone();
        let pid = self.pid;
        move || {
            if reported.swap(true, SeqCst) {
                return;
            }
            if active.load(SeqCst) {
                endpoint.mark_dead();
            }
            if let Some(tx) = &on_death {
                let _ = tx.send(pid);
            }
        }
    }

    /// Starts the thread that reports the death the moment the kernel marks the death word
    /// (the main thread is exiting; see `liveness`), when the user half holds it. None when
    /// it does not (the pidfd watcher reports the death then).
    fn watch_death_word(&self) -> Option<JoinHandle<()>> {
        let word = self.channel.transport.header(Word::Alive).load(SeqCst);
        if word & liveness::TID_MASK != self.pid {
            return None;
        }
        let channel = Arc::clone(&self.channel);
        let stop = Arc::clone(&self.early_stop);
        let (pid, notice) = (self.pid, self.death_notice());
        std::thread::Builder::new()
            .name(format!("uhalf-death-word-{pid}"))
            .spawn(move || {
                let word = channel.transport.header(Word::Alive);
                liveness::watch(word, pid, &stop, Duration::from_millis(100), notice);
            })
            .ok()
    }

    /// Starts the thread that fails every call the moment the child dies.
    fn watch(&self) -> JoinHandle<()> {
        let pidfd = Arc::clone(&self.pidfd);
        let (death, trap) = (Arc::clone(&self.death), Arc::clone(&self.trap));
        let waitfd = Arc::clone(&pidfd);
        let notice = self.death_notice();
        let died = move || {
            record_wait_status(&waitfd, &trap, &death);
            notice();
        };
        std::thread::Builder::new()
            .name(format!("uhalf-watch-{}", self.pid))
            .spawn(move || loop {
                let mut fds = [PollFd::new(&*pidfd, PollFlags::IN)];
                match poll(&mut fds, None) {
                    // A pidfd polls readable when the process exits and may report only
                    // HUP (or ERR) once it has been reaped: any event means it is gone.
                    // Looping on one of those without returning would spin a core.
                    Ok(_) if !fds[0].revents().is_empty() => {
                        died();
                        return;
                    }
                    Ok(_) | Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => {
                        died();
                        return;
                    }
                }
            })
            .expect("spawning the user-half watcher")
    }

    /// The kernel half's endpoint to this user half.
    pub fn endpoint(&self) -> &Arc<KernelEndpoint> {
        &self.channel.endpoint
    }

    /// The channel it runs on.
    pub fn channel(&self) -> &Arc<Channel> {
        &self.channel
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How long it has been the user half: since it answered its hello (a standby not yet
    /// activated: since it was launched).
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// True once the child has exited (does not reap it).
    pub fn is_dead(&self) -> bool {
        let mut fds = [PollFd::new(&*self.pidfd, PollFlags::IN)];
        let zero = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
    }

    /// Why it died: None while it runs (or until its death was noticed). Once its death
    /// was reported (its calls fail with `PeerDied`), this waits for the exit to complete
    /// (at most a second) so that the wait status is known.
    pub fn death_cause(&self) -> Option<DeathCause> {
        if self.death.lock().is_none() && self.reported.load(SeqCst) {
            // Reported by the death word: the process is still being torn down.
            let mut fds = [PollFd::new(&*self.pidfd, PollFlags::IN)];
            let second = rustix::time::Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            };
            let _ = poll(&mut fds, Some(&second));
            record_wait_status(&self.pidfd, &self.trap, &self.death);
        }
        self.death.lock().clone()
    }

    /// A handle that signals this process and no other, also after it was reaped and its
    /// pid reused (it signals through the process's pidfd): for code that must signal the
    /// user half without holding whatever owns this `UserHalf`.
    pub(crate) fn signaller(&self) -> Signaller {
        Signaller(Arc::clone(&self.pidfd))
    }

    /// Records why it is about to die (a kill for a reason the wait status cannot tell:
    /// a hang); the first cause recorded wins.
    pub(crate) fn note_death_cause(&self, cause: DeathCause) {
        self.death.lock().get_or_insert(cause);
    }

    /// Sends the child SIGKILL without waiting for it to go: every thread of it is marked
    /// for death when this returns, so none runs user code again (its memory is freed
    /// later; [`UserHalf::kill`] reaps it).
    /// It no longer serves the channel then: reaping it later leaves the channel (and a
    /// successor on it) alone.
    pub(crate) fn signal_kill(&mut self) {
        let _ = self.child.kill();
        if self.active.swap(false, SeqCst) {
            self.channel.endpoint.mark_dead();
        }
    }

    /// Kills the child (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        self.signal_kill();
        if let Ok(status) = self.child.wait() {
            // Read the trap record only if no one recorded the death yet (see
            // `record_wait_status`).
            let mut known = self.death.lock();
            if known.is_none() {
                *known = Some(DeathCause::from_status(
                    status.code(),
                    status.signal(),
                    Some(&self.trap),
                ));
            }
        }
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
        if let Some(early) = self.early.take() {
            liveness::stop_watch(self.channel.transport.header(Word::Alive), &self.early_stop);
            let _ = early.join();
        }
    }

    /// Asks the child to exit, waits up to `grace`, then kills it.
    pub fn shutdown(mut self, grace: Duration) {
        self.channel.endpoint.request_shutdown();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        self.kill();
    }

    /// The spin policy both halves use when configured with `spin`.
    pub fn policy(spin: Duration) -> WaitPolicy {
        WaitPolicy::spinning(spin)
    }
}

/// Records why the process behind `pidfd` died from its wait status, without reaping it
/// (`kill` reaps: a zombie still has one). Nothing while it runs.
fn record_wait_status(
    pidfd: &OwnedFd,
    trap: &OwnedFd,
    death: &parking_lot::Mutex<Option<DeathCause>>,
) {
    use rustix::process::{waitid, WaitId, WaitIdOptions};
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT | WaitIdOptions::NOHANG;
    // Under the lock, from the wait to the record: the trap record is read (consumed)
    // from the status pipe once, so two threads recording at once (the pidfd watcher and
    // `death_cause` after the death word) must not both read it, the loser's empty read
    // then winning the record (a seccomp death reported without its system call).
    let mut known = death.lock();
    if known.is_some() {
        return;
    }
    if let Ok(Some(status)) = waitid(WaitId::PidFd(pidfd.as_fd()), options) {
        *known = Some(DeathCause::from_status(
            status.exit_status(),
            status.terminating_signal(),
            Some(trap),
        ));
    }
}

impl Drop for UserHalf {
    fn drop(&mut self) {
        if self.watcher.is_some() {
            self.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state letter of process `pid` (`T`: stopped), None once it is gone.
    fn state(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(") ")?.1.chars().next()
    }

    /// Starts `sleep` with the pid `wanted` (the kernel hands out the pid after
    /// `ns_last_pid`; another process may take it first, so this tries a few times).
    /// None if this process may not set `ns_last_pid` (not root).
    fn spawn_with_pid(wanted: u32) -> Option<Child> {
        for _ in 0..50 {
            std::fs::write("/proc/sys/kernel/ns_last_pid", (wanted - 1).to_string()).ok()?;
            let child = Command::new("sleep").arg("30").spawn().expect("spawning sleep");
            if child.id() == wanted {
                return Some(child);
            }
            reap(child);
        }
        panic!("no process got pid {wanted} in 50 tries");
    }

    fn reap(mut child: Child) {
        let _ = child.kill();
        let _ = child.wait();
    }

    /// A user half's pid can name another process once the user half was reaped (pids come
    /// round again within a minute on a busy machine): `kill(pid)` would stop or kill that
    /// one. The signaller signals the user half's own process or nothing.
    #[test]
    #[cfg_attr(miri, ignore = "process and pidfd system calls")]
    fn a_signaller_never_reaches_a_process_that_reused_the_pid() {
        let old = Command::new("sleep").arg("30").spawn().expect("spawning sleep");
        let pid = old.id();
        let fd = pidfd_open(
            Pid::from_raw(pid as i32).expect("a child's pid is positive"),
            PidfdFlags::empty(),
        )
        .expect("pidfd_open");
        let signaller = Signaller(Arc::new(fd));
        reap(old);
        let Some(newcomer) = spawn_with_pid(pid) else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "this test needs root (it sets /proc/sys/kernel/ns_last_pid)"
            );
            eprintln!("skipped: setting ns_last_pid needs root");
            return;
        };
        // The pid names a live process again: what kill(pid, SIGSTOP) would stop.
        assert_eq!(state(pid).map(|s| s != 'Z'), Some(true));
        assert_eq!(
            signaller.send(Signal::STOP),
            Err(rustix::io::Errno::SRCH),
            "the signaller must refuse: its process is gone"
        );
        let now = state(pid);
        reap(newcomer);
        assert_ne!(now, Some('T'), "the process that reused pid {pid} was stopped");
    }
}
