//! The daemon: start-up (controller, user half, driver, NBD), the control socket, the
//! requests nvmectl sends, and shutdown.

use std::io::BufReader;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use microdriver_rt::lrpc::{EntryTable, Served};
use microdriver_rt::{SplitDriver, SupervisorConfig};
use nvme::host::Options;
use nvme::hw::Hw;
use nvme::{manage, BlockDev, NvmeError};
use parking_lot::Mutex;

use crate::format;
use crate::nbd::{self, sys::NbdDevice, NbdStats};
use crate::protocol::{read_message, write_message, Fault, ProtocolError, Reply, Request};

/// The default control socket.
pub const DEFAULT_SOCKET: &str = "/run/nvmed.sock";

/// Where the controller comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The controller model (the `sim` feature).
    Sim,
    /// A PCI function bound to `uio_pci_generic`.
    Uio(String),
    /// A PCI function bound to `vfio-pci`.
    Vfio(String),
}

/// How to run.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The controller.
    pub backend: Backend,
    /// Serve the namespace as this NBD device (e.g. `/dev/nbd0`).
    pub nbd: Option<PathBuf>,
    /// The control socket.
    pub socket: PathBuf,
    /// Both halves in this process.
    pub monolithic: bool,
    /// Take the PCI function from a driver that holds it.
    pub force: bool,
    /// Leave the function on the user-space driver at exit.
    pub keep_bound: bool,
    /// Command timeout before the kernel half asks for a reset.
    pub io_timeout: Duration,
    /// Completion by polling instead of by interrupt.
    pub poll: bool,
    /// How long the kernel half waits for one upcall.
    pub call_timeout: Duration,
    /// With [`Backend::Sim`]: the namespace's size in 512-byte blocks.
    pub sim_blocks: u64,
    /// At most this many user-half restarts within `restart_window` before the driver
    /// runs degraded (None: the supervisor's default).
    pub max_restarts: Option<usize>,
    /// The window of `max_restarts` (None: the supervisor's default).
    pub restart_window: Option<Duration>,
    /// How long a degraded driver waits before its first attempt at a user half again
    /// (None: the supervisor's default).
    pub revive_backoff: Option<Duration>,
    /// The longest wait between such attempts (None: the supervisor's default, or
    /// `revive_backoff` if longer).
    pub revive_backoff_max: Option<Duration>,
    /// A user half that dies younger than this is restarted after a doubling backoff
    /// (None: the supervisor's default).
    pub stable_uptime: Option<Duration>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            backend: Backend::Sim,
            nbd: None,
            socket: PathBuf::from(DEFAULT_SOCKET),
            monolithic: false,
            force: false,
            keep_bound: false,
            io_timeout: Duration::from_secs(10),
            poll: false,
            call_timeout: Duration::from_secs(30),
            sim_blocks: 65_536,
            max_restarts: None,
            restart_window: None,
            revive_backoff: None,
            revive_backoff_max: None,
            stable_uptime: None,
        }
    }
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The PCI backend failed.
    #[error("{0}")]
    Pci(String),
    /// This build leaves the backend out.
    #[error("this nvmed was built without {0}: rebuild with `--features {1}`")]
    NotBuilt(&'static str, &'static str),
    /// The user half could not start.
    #[error("starting the user half: {0}")]
    Supervisor(String),
    /// The driver failed.
    #[error("driver: {0}")]
    Driver(#[from] NvmeError),
    /// The NBD device could not be set up.
    #[error("NBD: {0}")]
    Nbd(std::io::Error),
    /// Another daemon serves the socket.
    #[error("another nvmed is already listening on {0} (stop it, or pass --socket PATH)")]
    SocketInUse(PathBuf),
    /// The control socket failed.
    #[error("control socket {0}: {1}")]
    Socket(PathBuf, std::io::Error),
}

struct Opened {
    hw: Hw,
    #[cfg(any(feature = "uio", feature = "vfio"))]
    device: Option<microdriver_hal::Device>,
    bus_info: String,
}

/// NVMe's PCI class code.
const NVME_CLASS: &str = "0x010802";

fn open_backend(cfg: &DaemonConfig) -> Result<Opened, DaemonError> {
    match &cfg.backend {
        #[cfg(feature = "sim")]
        Backend::Sim => {
            let sc = nvme_sim::SimConfig {
                blocks: cfg.sim_blocks,
                ..nvme_sim::SimConfig::default()
            };
            let (_sim, hw) = nvme_sim::start(sc);
            Ok(Opened {
                hw,
                #[cfg(any(feature = "uio", feature = "vfio"))]
                device: None,
                bus_info: "sim".into(),
            })
        }
        #[cfg(not(feature = "sim"))]
        Backend::Sim => Err(DaemonError::NotBuilt("the controller model (--sim)", "sim")),
        #[cfg(any(feature = "uio", feature = "vfio"))]
        Backend::Uio(addr) | Backend::Vfio(addr) => {
            use microdriver_hal::{OpenOptions, UserDriver};
            let driver = if matches!(cfg.backend, Backend::Vfio(_)) {
                UserDriver::Vfio
            } else {
                UserDriver::Uio
            };
            let class_path = Path::new("/sys/bus/pci/devices").join(addr).join("class");
            let class = std::fs::read_to_string(&class_path)
                .map_err(|e| DaemonError::Pci(format!("{}: {e}", class_path.display())))?;
            if class.trim() != NVME_CLASS {
                return Err(DaemonError::Pci(format!(
                    "{addr} has PCI class {}, not an NVMe controller ({NVME_CLASS})",
                    class.trim()
                )));
            }
            let o = OpenOptions {
                force: cfg.force,
                keep_bound: cfg.keep_bound,
                ..OpenOptions::new(driver)
            };
            let dev =
                microdriver_hal::open(addr, &o).map_err(|e| DaemonError::Pci(e.to_string()))?;
            tracing::info!(
                addr = dev.addr(),
                from = dev.previous_driver().unwrap_or("-"),
                "{}",
                dev.describe()
            );
            Ok(Opened {
                hw: dev.hw(),
                bus_info: dev.addr().to_string(),
                device: Some(dev),
            })
        }
        #[cfg(not(any(feature = "uio", feature = "vfio")))]
        Backend::Uio(_) | Backend::Vfio(_) => {
            Err(DaemonError::NotBuilt("the PCI backends", "uio,vfio"))
        }
    }
}

/// The NBD connection.
struct NbdLink {
    device: Arc<NbdDevice>,
    threads: Vec<JoinHandle<()>>,
}

/// What the request handlers share.
pub(crate) struct Inner {
    cfg: DaemonConfig,
    dev: Arc<BlockDev>,
    split: Option<SplitDriver>,
    nbd: Mutex<Option<NbdLink>>,
    nbd_stats: Arc<NbdStats>,
    #[cfg(any(feature = "uio", feature = "vfio"))]
    device: Mutex<Option<microdriver_hal::Device>>,
    bus_info: String,
    started: Instant,
    stop: Arc<AtomicBool>,
}

/// A running daemon.
pub struct Daemon {
    inner: Arc<Inner>,
    listener: UnixListener,
}

fn bind_socket(path: &Path) -> Result<UnixListener, DaemonError> {
    let err = |e| DaemonError::Socket(path.to_path_buf(), e);
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(DaemonError::SocketInUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let bound = UnixListener::bind(path);
    rustix::process::umask(old);
    let l = bound.map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    Ok(l)
}

fn start_nbd(
    path: &Path,
    dev: &Arc<BlockDev>,
    stats: &Arc<NbdStats>,
) -> Result<NbdLink, DaemonError> {
    let geo = dev.controller().geometry;
    let (ours, theirs) = UnixStream::pair().map_err(DaemonError::Nbd)?;
    let device = Arc::new(NbdDevice::open(path).map_err(DaemonError::Nbd)?);
    device
        .configure(&theirs, 1 << geo.lba_shift, geo.blocks)
        .map_err(DaemonError::Nbd)?;
    let doit = {
        let d = Arc::clone(&device);
        std::thread::Builder::new()
            .name("nbd-do-it".into())
            .spawn(move || {
                let _keep = theirs;
                if let Err(e) = d.do_it() {
                    tracing::info!(error = %e, "NBD_DO_IT returned");
                }
                let _ = d.clear();
            })
            .map_err(DaemonError::Nbd)?
    };
    let serve = {
        let (dev, stats) = (Arc::clone(dev), Arc::clone(stats));
        std::thread::Builder::new()
            .name("nbd-serve".into())
            .spawn(move || match nbd::serve(dev, ours, stats) {
                Ok(()) => tracing::info!("NBD disconnected"),
                Err(e) => tracing::error!(error = %e, "NBD server stopped"),
            })
            .map_err(DaemonError::Nbd)?
    };
    tracing::info!(nbd = %path.display(), blocks = geo.blocks, block_size = 1u32 << geo.lba_shift, "serving the namespace");
    Ok(NbdLink {
        device,
        threads: vec![serve, doit],
    })
}

impl Daemon {
    /// Starts everything and binds the control socket.
    pub fn start(cfg: DaemonConfig, stop: Arc<AtomicBool>) -> Result<Daemon, DaemonError> {
        if UnixStream::connect(&cfg.socket).is_ok() {
            return Err(DaemonError::SocketInUse(cfg.socket.clone()));
        }
        let opened = open_backend(&cfg)?;
        let split = if cfg.monolithic {
            None
        } else {
            let mut sc = SupervisorConfig::default();
            sc.component.options.timeout = cfg.call_timeout;
            if let Some(n) = cfg.max_restarts {
                sc.max_restarts = n;
            }
            if let Some(w) = cfg.restart_window {
                sc.restart_window = w;
            }
            if let Some(b) = cfg.revive_backoff {
                sc.revive_backoff_initial = b;
                sc.revive_backoff_max = sc.revive_backoff_max.max(b);
            }
            if let Some(m) = cfg.revive_backoff_max {
                sc.revive_backoff_max = m;
            }
            if let Some(u) = cfg.stable_uptime {
                sc.stable_uptime = u;
            }
            let s =
                microdriver_rt::start(sc).map_err(|e| DaemonError::Supervisor(e.to_string()))?;
            tracing::info!(
                user_half_pid = s.pid().unwrap_or(0),
                "split: kernel half here, user half in a sandboxed child"
            );
            Some(s)
        };
        let opts = Options {
            io_timeout: cfg.io_timeout,
            poll: cfg.poll,
            ..Options::default()
        };
        let dev = Arc::new(BlockDev::start(opened.hw, opts)?);
        let nbd_stats = Arc::new(NbdStats::default());
        let nbd = match &cfg.nbd {
            Some(p) => Some(start_nbd(p, &dev, &nbd_stats)?),
            None => None,
        };
        #[cfg(any(feature = "uio", feature = "vfio"))]
        let mut device = opened.device;
        #[cfg(any(feature = "uio", feature = "vfio"))]
        if let Some(d) = &mut device {
            d.commit();
        }
        let listener = bind_socket(&cfg.socket)?;
        tracing::info!(socket = %cfg.socket.display(), "serving");
        Ok(Daemon {
            inner: Arc::new(Inner {
                cfg,
                dev,
                split,
                nbd: Mutex::new(nbd),
                nbd_stats,
                #[cfg(any(feature = "uio", feature = "vfio"))]
                device: Mutex::new(device),
                bus_info: opened.bus_info,
                started: Instant::now(),
                stop,
            }),
            listener,
        })
    }

    /// The control socket.
    pub fn socket(&self) -> &Path {
        &self.inner.cfg.socket
    }

    /// The namespace's block device, to serve it over another connection than
    /// `/dev/nbdN` (a test serves NBD on a socket pair with [`crate::nbd::serve`], as
    /// the daemon does for the kernel).
    pub fn block_dev(&self) -> Arc<BlockDev> {
        Arc::clone(&self.inner.dev)
    }

    /// Serves control requests until `shutdown` or the stop flag, then shuts down.
    pub fn serve(self) {
        for stream in self.listener.incoming() {
            if self.inner.stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { continue };
            let inner = Arc::clone(&self.inner);
            let spawned = std::thread::Builder::new()
                .name("nvmed-conn".into())
                .spawn(move || serve_one(&inner, stream));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "dropping a connection");
            }
            if self.inner.stop.load(Ordering::SeqCst) {
                break;
            }
        }
        tracing::info!("shutting down");
        let _ = std::fs::remove_file(&self.inner.cfg.socket);
        if let Some(link) = self.inner.nbd.lock().take() {
            if let Err(e) = link.device.disconnect() {
                tracing::warn!(error = %e, "NBD disconnect");
            }
            for t in link.threads {
                let _ = t.join();
            }
        }
        // Connection threads hold the Arc for the length of one request.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut inner = self.inner;
        let inner = loop {
            match Arc::try_unwrap(inner) {
                Ok(i) => break Some(i),
                Err(i) if Instant::now() < deadline => {
                    inner = i;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => break None,
            }
        };
        let Some(inner) = inner else {
            tracing::warn!("a request is still running; leaving its state to exit");
            return;
        };
        match Arc::try_unwrap(inner.dev) {
            Ok(dev) => {
                if let Err(e) = dev.shutdown() {
                    tracing::warn!(error = %e, "controller shutdown");
                }
            }
            Err(_) => tracing::warn!("the block device is still shared; dropping it"),
        }
        if let Some(s) = inner.split {
            s.stop();
        }
        #[cfg(any(feature = "uio", feature = "vfio"))]
        if let Some(d) = inner.device.into_inner() {
            match d.close() {
                Ok(Some(drv)) => tracing::info!(driver = drv, "device given back"),
                Ok(None) => tracing::info!("device closed"),
                Err(e) => tracing::error!(error = %e, "giving the device back failed"),
            }
        }
        tracing::info!("stopped");
    }
}

fn serve_one(inner: &Arc<Inner>, stream: UnixStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(mut w) = stream.try_clone() else {
        return;
    };
    let reply = match read_message::<Request>(&mut BufReader::new(stream)) {
        Ok(req) => {
            let shutdown = req == Request::Shutdown;
            let reply = match handle(inner, req) {
                Ok(text) => Reply::Ok { text },
                Err(message) => Reply::Error { message },
            };
            if shutdown {
                inner.stop.store(true, Ordering::SeqCst);
                let _ = write_message(&mut w, &reply);
                let _ = UnixStream::connect(&inner.cfg.socket);
                return;
            }
            reply
        }
        Err(ProtocolError::Closed) => return,
        Err(e) => Reply::Error {
            message: format!("bad request: {e}"),
        },
    };
    let _ = write_message(&mut w, &reply);
}

fn node(inner: &Inner) -> String {
    inner
        .cfg
        .nbd
        .as_ref()
        .map_or_else(|| "-".into(), |p| p.display().to_string())
}

fn handle(inner: &Inner, req: Request) -> Result<String, String> {
    let d = inner.dev.dev();
    let e = |e: NvmeError| e.to_string();
    Ok(match req {
        Request::List => {
            let c = manage::id_ctrl(d).map_err(e)?;
            let nsid = inner.dev.controller().nsid;
            format::list(&node(inner), &c, nsid, &manage::id_ns(d, nsid).map_err(e)?)
        }
        Request::IdCtrl => format::id_ctrl(&manage::id_ctrl(d).map_err(e)?),
        Request::IdNs { nsid } => format::id_ns(nsid, &manage::id_ns(d, nsid).map_err(e)?),
        Request::SmartLog => format::smart_log(&node(inner), &manage::smart_log(d).map_err(e)?),
        Request::ErrorLog { entries } => {
            format::error_log(&node(inner), &manage::error_log(d, entries).map_err(e)?)
        }
        Request::GetFeature { fid, sel } => {
            let v = manage::get_feature(d, fid, sel).map_err(e)?;
            let which =
                ["Current", "Default", "Saved", "Supported capabilities"][usize::from(sel.min(3))];
            format!(
                "get-feature:{fid:#04x} ({}), {which} value:{v:#010x}\n",
                format::feature_name(fid)
            )
        }
        Request::SetFeature { fid, value } => {
            let r = manage::set_feature(d, fid, value).map_err(e)?;
            format!("set-feature:{fid:#04x} ({}), value:{value:#010x}, cdw12:00000000, save:0 (result {r:#x})\n", format::feature_name(fid))
        }
        Request::Format { nsid, lbaf, ses } => {
            manage::format(d, nsid, lbaf, ses).map_err(e)?;
            format!("Success formatting namespace:{nsid:x}\n")
        }
        Request::Abort { sqid, cid } => {
            let done = if manage::abort(d, sqid, cid).map_err(e)? {
                "aborted"
            } else {
                "not aborted"
            };
            format!("abort sqid:{sqid} cid:{cid:#06x}: {done}\n")
        }
        Request::Reset => {
            inner.dev.reset(Duration::from_secs(60)).map_err(e)?;
            let c = inner.dev.controller();
            let s = inner.dev.stats();
            format!(
                "controller reset: queues re-created; {} requests in flight when submission stopped, {} of them resubmitted (the controller completed the others before its reset); {} held for the new queues\n",
                s.reset_inflight, c.requeued, s.reset_held
            )
        }
        Request::Status => status(inner),
        Request::Inject { fault } => inject(inner, fault)?,
        Request::Shutdown => "shutting down\n".into(),
    })
}

fn status(inner: &Inner) -> String {
    use std::fmt::Write;
    let c = inner.dev.controller();
    let g = c.geometry;
    let s = inner.dev.stats();
    let (pending, last) = inner.dev.recovery_state();
    let irq = inner.dev.irq_stats();
    let mut out = format!(
        "nvmed: {} namespace {} ({} blocks of {} bytes) on {} for {} s\ncontroller: sn {} mn {} fr {}\nrecoveries: {} (pending: {}{})\nio: submitted {} completed {} errors {} bogus {} resubmitted {} resets {} inflight {} waiting {} device-avg {} us\nirq: interrupts {} wakes {} timed-polls {} reaped-by-irq {} reaped-by-poll {}\nnbd: requests {} errors {} bytes {} service-avg {} us commands {} driver-avg {} us\n",
        node(inner), c.nsid, g.blocks, 1u32 << g.lba_shift, inner.bus_info, inner.started.elapsed().as_secs(),
        c.id.sn, c.id.mn, c.id.fr,
        inner.dev.recoveries(), if pending { "yes" } else { "no" }, last.map(|l| format!(", last error: {l}")).unwrap_or_default(),
        s.submitted, s.completed, s.errors, s.bogus, s.resubmitted, s.resets, s.inflight, s.waiting, s.device_us / s.completed.max(1),
        inner.dev.kernel().hw().irq.assertions(), irq.irq_wakes, irq.timed_polls, irq.reaped_by_irq, irq.reaped_by_poll,
        inner.nbd_stats.requests.load(Ordering::Relaxed), inner.nbd_stats.errors.load(Ordering::Relaxed), inner.nbd_stats.bytes.load(Ordering::Relaxed),
        inner.nbd_stats.service_ns.load(Ordering::Relaxed) / 1000 / inner.nbd_stats.requests.load(Ordering::Relaxed).max(1),
        inner.nbd_stats.commands.load(Ordering::Relaxed),
        inner.nbd_stats.driver_ns.load(Ordering::Relaxed) / 1000 / inner.nbd_stats.commands.load(Ordering::Relaxed).max(1),
    );
    let ev = inner.dev.event_log();
    let _ = writeln!(
        out,
        "events: {} (last: {})\ntimeouts: {} aborted {} resets {} (last: {})",
        ev.events,
        ev.recent.back().map_or("-", String::as_str),
        ev.timeouts,
        ev.aborted,
        ev.timeout_resets,
        ev.last_timeout.as_deref().unwrap_or("-"),
    );
    for e in &ev.recent {
        let _ = writeln!(out, "  event: {e}");
    }
    let Some(sup) = &inner.split else {
        out.push_str("split: monolithic (both halves in this process)\n");
        return out;
    };
    let st = sup.status();
    let _ = writeln!(
        out,
        "user half: pid {}, restarts {}, hangs {}, degraded {}",
        st.pid.map_or("-".into(), |p| p.to_string()),
        st.restarts,
        st.hangs,
        if st.degraded { "yes" } else { "no" }
    );
    let table = EntryTable::get();
    let mut rows: Vec<_> = sup
        .endpoint()
        .stats()
        .entries()
        .into_iter()
        .map(|(id, c)| {
            let (dir, name) = match table.lookup(Served::ByUser, id) {
                Some(e) => ("upcall", e.name.to_string()),
                None => match table.lookup(Served::ByKernel, id) {
                    Some(e) => ("downcall", e.name.to_string()),
                    None => ("unknown", format!("{id:#010x}")),
                },
            };
            (
                c.calls,
                dir,
                name,
                c.errors,
                c.percentile(0.5),
                c.percentile(0.99),
            )
        })
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.2.cmp(&b.2)));
    out.push_str("calls:\n");
    for (calls, dir, name, errors, p50, p99) in rows {
        let _ = writeln!(
            out,
            "  {dir:<8} {name:<40} calls {calls:>7} errors {errors:>4} p50 {p50:?} p99 {p99:?}"
        );
    }
    out
}

fn inject(inner: &Inner, fault: Fault) -> Result<String, String> {
    let Some(sup) = &inner.split else {
        return Err("fault injection needs the split mode (this nvmed runs --monolithic)".into());
    };
    let Some(mut old) = sup.status().pid else {
        return Err("the user half is not running right now (restarting or degraded)".into());
    };
    tracing::warn!(?fault, pid = old, "injecting a fault into the user half");
    match fault {
        Fault::Crash => {
            let _ = crate::faults::crash_user_half();
        }
        Fault::Hang => {
            // Through the supervisor, which signals the process itself (the pid `status`
            // gave may name another process by now): the one stopped is the one whose
            // restart to wait for.
            old = sup
                .stop_user_half()
                .ok_or("the user half went away before it could be stopped")?;
        }
        Fault::Garbage => {
            let r = crate::faults::garbage_reply(sup.endpoint());
            tracing::info!(result = ?r, "the garbage reply");
            let _ = crate::faults::scribble_channel(u64::from(old) ^ 0x9E37_79B9_7F4A_7C15);
            let _ = microdriver_rt::lrpc::ping(sup.endpoint(), Duration::from_secs(2));
        }
    }
    let limit = Duration::from_secs(30);
    let end = Instant::now() + limit;
    // The channel must work again: a new user half (crash, hang) or the same one (garbage
    // caught as rejected frames).
    let back = match fault {
        Fault::Garbage => loop {
            if microdriver_rt::lrpc::ping(sup.endpoint(), Duration::from_secs(2)).is_ok() {
                break true;
            }
            if Instant::now() > end {
                break false;
            }
            std::thread::sleep(Duration::from_millis(20));
        },
        _ => sup.wait_restarted(Some(old), limit),
    };
    if !back {
        return Err(format!(
            "the user half did not come back within {limit:?} after {fault:?}"
        ));
    }
    let st = sup.status();
    Ok(format!(
        "injected {fault:?}: user half pid {} (was {old}), restarts {}\n",
        st.pid.map_or("-".into(), |p| p.to_string()),
        st.restarts
    ))
}
