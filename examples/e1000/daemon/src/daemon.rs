//! The daemon: start-up (device, supervisor, driver, network side), the control socket,
//! and shutdown.

use std::io::BufReader;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use e1000::hw::Hw;
use e1000::netdev::{Netdev, Options};
#[cfg(feature = "sim")]
use e1000_sim::{PeerConfig, SimConfig};
use microdriver_rt::component::{Supervisor, SupervisorConfig};
use microdriver_rt::lrpc::install_kernel;
use microdriver_rt::tracker::ObjectTracker;
use parking_lot::Mutex;

use crate::handlers;
pub(crate) use crate::model::Model;
use crate::protocol::{read_message, write_message, ProtocolError, Reply, Request};
use crate::stack::Stack;
use crate::tap::{Tap, TapError};

/// Where the device comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The 82540EM model on a simulated wire whose far end answers for 10.0.2.2 (the
    /// `sim` feature).
    Sim,
    /// A PCI function bound to `uio_pci_generic` (e.g. `0000:00:03.0`).
    Uio(String),
    /// A PCI function bound to `vfio-pci`, its DMA confined by the IOMMU.
    Vfio(String),
}

/// The default of [`DaemonConfig::call_timeout`].
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How to run.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The device.
    pub backend: Backend,
    /// Bridge the NIC to this TAP interface.
    pub tap: Option<String>,
    /// Receive ring size (None: the driver's default).
    pub rx_ring: Option<u32>,
    /// Transmit ring size.
    pub tx_ring: Option<u32>,
    /// Load-time driver parameters (Linux's e1000 module parameters), applied after probe
    /// and before the interface opens.
    pub params: Option<e1000::params::Params>,
    /// User-half worker threads.
    pub workers: usize,
    /// Run both halves in this process (the baseline).
    pub monolithic: bool,
    /// Extra latency per user/kernel crossing.
    pub crossing_delay: Duration,
    /// The control socket.
    pub socket: PathBuf,
    /// The control socket's permissions.
    pub socket_mode: u32,
    /// Serve the Prometheus metrics here (`--metrics`; None: no endpoint).
    pub metrics: Option<std::net::SocketAddr>,
    /// How long to wait for the link at start-up before serving anyway.
    pub link_timeout: Duration,
    /// With [`Backend::Uio`] / [`Backend::Vfio`]: take the device from another driver
    /// that holds it.
    pub uio_force: bool,
    /// With a PCI backend: leave the device on uio_pci_generic / vfio-pci at exit instead
    /// of giving it back to the driver it came from.
    pub keep_bound: bool,
    /// With [`Backend::Vfio`]: the interrupt (`auto`: MSI-X, MSI, then INTx).
    #[cfg(feature = "vfio")]
    pub irq: microdriver_hal::IrqMode,
    /// How long the kernel half waits for one upcall before giving up on it. It must cover
    /// the slowest legitimate call: the offline self-test (a reset, link waits, the
    /// reopen) takes over 8 s on QEMU under TCG. A user half that stops answering at all
    /// is caught sooner, by the supervisor's heartbeat.
    pub call_timeout: Duration,
    /// At most this many user-half restarts within 10 s before the driver runs degraded
    /// (None: the supervisor's default).
    pub max_restarts: Option<usize>,
    /// The window of `max_restarts` (None: the supervisor's default, 10 s).
    pub restart_window: Option<Duration>,
    /// How long a degraded driver waits before its first attempt at a user half again
    /// (doubled per crash loop straight back; None: the supervisor's default, 1 s).
    pub revive_backoff: Option<Duration>,
    /// The longest wait between attempts (None: the supervisor's default, 60 s, or
    /// `revive_backoff` if longer).
    pub revive_backoff_max: Option<Duration>,
    /// A user half that dies younger than this is restarted after a doubling backoff
    /// (None: the supervisor's default, 200 ms).
    pub stable_uptime: Option<Duration>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            backend: Backend::Sim,
            tap: None,
            rx_ring: None,
            tx_ring: None,
            params: None,
            workers: 2,
            monolithic: false,
            crossing_delay: Duration::ZERO,
            socket: PathBuf::from(crate::client::DEFAULT_SOCKET),
            socket_mode: 0o600,
            metrics: None,
            link_timeout: Duration::from_secs(10),
            uio_force: false,
            keep_bound: false,
            #[cfg(feature = "vfio")]
            irq: microdriver_hal::IrqMode::Auto,
            call_timeout: DEFAULT_CALL_TIMEOUT,
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
pub enum DaemonError {
    /// The device model failed.
    #[error("starting the device model: {0}")]
    Model(String),
    /// The PCI backend (UIO or VFIO) failed.
    #[error("{0}")]
    Uio(String),
    /// This build leaves the backend out.
    #[error("this e1000d was built without {0}: rebuild with `--features {1}`")]
    NotBuilt(&'static str, &'static str),
    /// The user half could not start.
    #[error("starting the user half: {0}")]
    Supervisor(String),
    /// The driver failed to probe or open the device.
    #[error("driver: {0}")]
    Driver(#[from] e1000::DriverError),
    /// The TAP interface failed.
    #[error(transparent)]
    Tap(#[from] TapError),
    /// Another daemon serves the socket.
    #[error("another e1000d is already listening on {0} (stop it, or pass --socket PATH)")]
    SocketInUse(PathBuf),
    /// The socket could not be created.
    #[error("control socket {path}: {source}")]
    Socket {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A thread could not be spawned.
    #[error("spawning a thread: {0}")]
    Thread(std::io::Error),
    /// The metrics endpoint could not be bound.
    #[error("--metrics {addr}: {source} (is the port in use? pick another, or 0 for any)")]
    Metrics {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running daemon.
pub struct Daemon {
    pub(crate) inner: Arc<Inner>,
    listener: UnixListener,
    threads: Vec<JoinHandle<()>>,
    /// Where the metrics endpoint listens (`--metrics`), as bound.
    metrics: Option<std::net::SocketAddr>,
}

/// What the connection handlers share.
pub(crate) struct Inner {
    pub(crate) cfg: DaemonConfig,
    pub(crate) nd: Arc<Netdev>,
    pub(crate) sim: Option<Arc<Model>>,
    /// The PCI device (UIO/VFIO), given back to its driver when dropped: after the driver.
    #[cfg(any(feature = "uio", feature = "vfio"))]
    pub(crate) device: Mutex<Option<microdriver_hal::Device>>,
    pub(crate) supervisor: Option<Supervisor>,
    pub(crate) stack: Arc<Stack>,
    pub(crate) tap: Option<Arc<Tap>>,
    pub(crate) started: Instant,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) traffic_thread: Mutex<Option<JoinHandle<()>>>,
    pub(crate) bus_info: String,
    /// `inject crash-during-reattach`: the next re-attach hook crashes the new user half.
    pub(crate) crash_on_reattach: Arc<AtomicBool>,
}

/// An opened device: its handles, the model (with `--sim`), the PCI device (UIO/VFIO) and
/// its bus address.
struct Opened {
    hw: Hw,
    sim: Option<Arc<Model>>,
    #[cfg(any(feature = "uio", feature = "vfio"))]
    device: Option<microdriver_hal::Device>,
    bus_info: String,
}

fn open_backend(cfg: &DaemonConfig) -> Result<Opened, DaemonError> {
    match &cfg.backend {
        #[cfg(feature = "sim")]
        Backend::Sim => {
            let sc = SimConfig {
                autoneg_time: Duration::from_millis(100),
                peer: PeerConfig::default(),
                ..SimConfig::default()
            };
            let (sim, hw) = e1000_sim::start(sc).map_err(|e| DaemonError::Model(e.to_string()))?;
            Ok(Opened {
                hw,
                sim: Some(sim),
                #[cfg(any(feature = "uio", feature = "vfio"))]
                device: None,
                bus_info: "sim:0000:00:03.0".into(),
            })
        }
        #[cfg(not(feature = "sim"))]
        Backend::Sim => Err(DaemonError::NotBuilt("the device model (--sim)", "sim")),
        Backend::Uio(addr) | Backend::Vfio(addr) => open_pci(cfg, addr),
    }
}

#[cfg(any(feature = "uio", feature = "vfio"))]
fn open_pci(cfg: &DaemonConfig, addr: &str) -> Result<Opened, DaemonError> {
    use microdriver_hal::UserDriver;
    let driver = match cfg.backend {
        Backend::Vfio(_) => UserDriver::Vfio,
        _ => UserDriver::Uio,
    };
    if cfg!(not(feature = "uio")) && driver == UserDriver::Uio {
        return Err(DaemonError::NotBuilt("the UIO backend (--uio)", "uio"));
    }
    if cfg!(not(feature = "vfio")) && driver == UserDriver::Vfio {
        return Err(DaemonError::NotBuilt("the VFIO backend (--vfio)", "vfio"));
    }
    let opts = crate::device::PciOptions {
        force: cfg.uio_force,
        keep_bound: cfg.keep_bound,
        hugepages: false,
        #[cfg(feature = "vfio")]
        irq: cfg.irq,
    };
    let dev =
        crate::device::open_pci(addr, driver, opts).map_err(|e| DaemonError::Uio(e.to_string()))?;
    Ok(Opened {
        hw: dev.hw(),
        sim: None,
        bus_info: dev.addr().to_string(),
        device: Some(dev),
    })
}

#[cfg(not(any(feature = "uio", feature = "vfio")))]
fn open_pci(_: &DaemonConfig, _: &str) -> Result<Opened, DaemonError> {
    Err(DaemonError::NotBuilt(
        "the PCI backends (--uio, --vfio)",
        "uio,vfio",
    ))
}

/// Binds the control socket with `mode`, refusing if another daemon answers on it and
/// removing a stale one.
fn bind_socket(path: &Path, mode: u32) -> Result<UnixListener, DaemonError> {
    let err = |source| DaemonError::Socket {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(DaemonError::SocketInUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    // Nobody else may connect between bind and chmod.
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let bound = UnixListener::bind(path);
    rustix::process::umask(old);
    let listener = bound.map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    Ok(listener)
}

impl Daemon {
    /// Starts the device, the user half (unless monolithic), the driver and the network
    /// side, brings the interface up and binds the control socket.
    pub fn start(cfg: DaemonConfig) -> Result<Daemon, DaemonError> {
        Self::start_with_stop(cfg, Arc::new(AtomicBool::new(false)))
    }

    /// Like [`start`](Daemon::start), with the stop flag made beforehand (so signal
    /// handlers can be installed before start-up begins: a signal during start-up makes
    /// [`serve`](Daemon::serve) return at once).
    pub fn start_with_stop(
        cfg: DaemonConfig,
        stop: Arc<AtomicBool>,
    ) -> Result<Daemon, DaemonError> {
        // Refuse at once if another daemon serves the socket; bind it only when ready, so
        // a client that can connect finds the driver up.
        if UnixStream::connect(&cfg.socket).is_ok() {
            return Err(DaemonError::SocketInUse(cfg.socket.clone()));
        }
        let opened = open_backend(&cfg)?;
        let (hw, sim, bus_info) = (opened.hw, opened.sim, opened.bus_info);
        // Dropped (the device given back) if anything below fails, after the driver.
        #[cfg(any(feature = "uio", feature = "vfio"))]
        let device = opened.device;
        let crash_on_reattach = Arc::new(AtomicBool::new(false));
        let supervisor = if cfg.monolithic {
            tracing::info!("monolithic: both halves run in this process");
            None
        } else {
            let mut sc = SupervisorConfig::default();
            sc.component.workers = cfg.workers.max(1);
            sc.component.crossing_delay = cfg.crossing_delay;
            // A slow crossing must not look like a hang: allow each heartbeat ping its two
            // crossings plus the usual margin, and each upcall the crossings of the
            // register accesses nested in it (probe and open make several hundred).
            sc.heartbeat_timeout += cfg.crossing_delay * 4;
            sc.heartbeat += cfg.crossing_delay * 4;
            sc.component.options.timeout = cfg.call_timeout + cfg.crossing_delay * 4000;
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
            let supervisor = Supervisor::start(sc, Arc::new(ObjectTracker::new()))
                .map_err(|e| DaemonError::Supervisor(e.to_string()))?;
            install_kernel(supervisor.endpoint().clone());
            // The driver keeps no state in the user half (every upcall carries the
            // adapter), so re-attaching needs nothing; the hook exists for the
            // crash-during-reattach fault: a user half that dies while being re-attached.
            let armed = Arc::clone(&crash_on_reattach);
            supervisor.on_reattach(Box::new(move |_| {
                if armed.swap(false, Ordering::SeqCst) {
                    tracing::warn!("crashing the new user half inside its re-attach hook");
                    let _ = crate::faults::crash_user_half();
                }
            }));
            tracing::info!(
                user_half_pid = supervisor.pid().unwrap_or(0),
                workers = cfg.workers,
                crossing_delay = ?cfg.crossing_delay,
                "split: kernel half here, user half in a sandboxed child"
            );
            Some(supervisor)
        };
        let opts = Options {
            params: cfg.params,
            ..Options::default()
        };
        let nd = Arc::new(Netdev::start(hw, opts)?);
        let (mac, variant) = nd.with_adapter(|a| (a.mac, a.info.mac_type));
        tracing::info!(?variant, mac = %crate::format::mac(mac), "probed");
        if cfg.rx_ring.is_some() || cfg.tx_ring.is_some() {
            nd.with_adapter(|a| {
                let mut p = e1000::ethtool::get_ringparam(a)?;
                p.rx = cfg.rx_ring.unwrap_or(p.rx);
                p.tx = cfg.tx_ring.unwrap_or(p.tx);
                e1000::ethtool::set_ringparam(a, &p)
            })?;
        }
        nd.open()?;
        if nd.wait_link(cfg.link_timeout) {
            let link = nd.with_adapter(|a| a.link);
            tracing::info!(
                speed = link.speed,
                full_duplex = link.full_duplex,
                "link up"
            );
        } else {
            tracing::warn!("the link is not up yet; serving anyway");
        }
        let tap = match &cfg.tap {
            Some(name) => {
                let tap = Tap::open(name, mac)?;
                tracing::info!(tap = name, "bridged to TAP interface");
                Some(Arc::new(tap))
            }
            None => None,
        };
        let reset_state = {
            // Weak: shutdown takes the device back out of its Arc.
            let nd = Arc::downgrade(&nd);
            Box::new(move || {
                nd.upgrade()
                    .map_or((false, 0), |nd| (nd.reset_pending(), nd.reset_generation()))
            })
        };
        let flow_state = {
            let sim = sim.clone();
            Box::new(move || sim.as_deref().map_or(0, crate::model::pause_frames))
        };
        let stack = Arc::new(Stack::new(mac, reset_state, flow_state));
        #[cfg(any(feature = "uio", feature = "vfio"))]
        let mut device = device;
        #[cfg(any(feature = "uio", feature = "vfio"))]
        if let Some(d) = &mut device {
            d.commit();
        }
        let inner = Arc::new(Inner {
            cfg,
            nd,
            sim,
            supervisor,
            stack,
            tap,
            started: Instant::now(),
            stop,
            traffic_thread: Mutex::new(None),
            bus_info,
            crash_on_reattach,
            #[cfg(any(feature = "uio", feature = "vfio"))]
            device: Mutex::new(device),
        });
        let mut threads = Vec::new();
        match &inner.tap {
            Some(tap) => {
                crate::bridge::attach_rx(&inner.nd, Arc::clone(tap), Arc::clone(&inner.stack));
                threads.push(spawn("e1000d-tap", {
                    let inner = Arc::clone(&inner);
                    move || {
                        if let Some(tap) = &inner.tap {
                            crate::bridge::tx_loop(&inner.nd, tap, &inner.stack, &inner.stop)
                        }
                    }
                })?);
                threads.push(spawn("e1000d-host", {
                    let inner = Arc::clone(&inner);
                    move || {
                        if let Some(tap) = &inner.tap {
                            crate::hoststate::watch(&inner.nd, tap.name(), &inner.stop)
                        }
                    }
                })?);
            }
            None => threads.push(spawn("e1000d-rx", {
                let inner = Arc::clone(&inner);
                move || rx_loop(&inner)
            })?),
        }
        let metrics = match inner.cfg.metrics {
            Some(addr) => {
                let listener = std::net::TcpListener::bind(addr)
                    .map_err(|source| DaemonError::Metrics { addr, source })?;
                let bound = listener
                    .local_addr()
                    .map_err(|source| DaemonError::Metrics { addr, source })?;
                tracing::info!(addr = %bound, "metrics: Prometheus text format at /metrics");
                threads.push(spawn("e1000d-metrics", {
                    let inner = Arc::clone(&inner);
                    move || crate::metrics::serve(&inner, listener)
                })?);
                Some(bound)
            }
            None => None,
        };
        let listener = bind_socket(&inner.cfg.socket, inner.cfg.socket_mode)?;
        tracing::info!(socket = %inner.cfg.socket.display(), "serving");
        Ok(Daemon {
            inner,
            listener,
            threads,
            metrics,
        })
    }

    /// Where the metrics endpoint listens, if `--metrics` asked for one.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics
    }

    /// The flag that stops [`serve`](Daemon::serve) (signal handlers set it, then
    /// [`wake`] the accept loop).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.inner.stop)
    }

    /// The control socket's path.
    pub fn socket(&self) -> &Path {
        &self.inner.cfg.socket
    }

    /// Serves control requests until a `shutdown` request or the stop flag, then shuts
    /// everything down.
    pub fn serve(mut self) {
        let mut conns: Vec<JoinHandle<()>> = Vec::new();
        let incoming = self
            .listener
            .incoming()
            .take_while(|_| !self.inner.stop.load(Ordering::SeqCst));
        for stream in incoming {
            if self.inner.stop.load(Ordering::SeqCst) {
                break;
            }
            conns.retain(|c| !c.is_finished());
            match stream {
                Ok(stream) => {
                    let inner = Arc::clone(&self.inner);
                    match spawn("e1000d-conn", move || serve_one(&inner, stream)) {
                        Ok(t) => conns.push(t),
                        Err(e) => tracing::error!(error = %e, "dropping a connection"),
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            if self.inner.stop.load(Ordering::SeqCst) {
                break;
            }
        }
        tracing::info!("shutting down");
        self.inner.stop.store(true, Ordering::SeqCst);
        if let Some(addr) = self.metrics {
            // Wakes the metrics thread out of accept (it sees the stop flag).
            let _ = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for c in conns {
            while !c.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if c.is_finished() {
                let _ = c.join();
            }
        }
        if let Some(t) = self.inner.traffic_thread.lock().take() {
            let _ = t.join();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.inner.cfg.socket);
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => {
                let Inner {
                    nd,
                    supervisor,
                    #[cfg(any(feature = "uio", feature = "vfio"))]
                    device,
                    ..
                } = inner;
                match Arc::try_unwrap(nd) {
                    Ok(nd) => {
                        if let Err(e) = nd.shutdown() {
                            tracing::warn!(error = %e, "removing the device");
                        }
                    }
                    Err(_) => tracing::warn!("a request still holds the device; dropping it"),
                }
                if let Some(s) = supervisor {
                    s.shutdown();
                }
                // Last: the driver has let go of every handle, so the PCI function can go
                // back to the driver it came from.
                #[cfg(any(feature = "uio", feature = "vfio"))]
                if let Some(dev) = device.into_inner() {
                    match dev.close() {
                        Ok(Some(d)) => tracing::info!(driver = d, "device given back"),
                        Ok(None) => tracing::info!("device closed"),
                        Err(e) => tracing::error!(error = %e, "giving the device back failed"),
                    }
                }
            }
            Err(_) => tracing::warn!("a request is still running; leaving its state to exit"),
        }
        tracing::info!("stopped");
    }
}

/// Wakes a daemon blocked in accept on `socket` (after setting its stop flag).
pub fn wake(socket: &Path) {
    let _ = UnixStream::connect(socket);
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, DaemonError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(DaemonError::Thread)
}

fn serve_one(inner: &Arc<Inner>, stream: UnixStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "control connection");
            return;
        }
    };
    let reply = match read_message::<Request>(&mut BufReader::new(stream)) {
        Ok(req) => {
            tracing::debug!(?req, "request");
            let shutdown = req == Request::Shutdown;
            let reply = handlers::handle(inner, req);
            if shutdown {
                inner.stop.store(true, Ordering::SeqCst);
                let _ = write_message(&mut writer, &reply);
                wake(&inner.cfg.socket);
                return;
            }
            reply
        }
        Err(ProtocolError::Closed) => return,
        Err(e) => Reply::Error {
            message: format!("bad request: {e}"),
        },
    };
    if let Err(e) = write_message(&mut writer, &reply) {
        tracing::debug!(error = %e, "writing a reply");
    }
}

/// Takes every received frame to the small stack (no TAP interface).
fn rx_loop(inner: &Inner) {
    let peer_mac = inner.sim.as_deref().map_or([0; 6], crate::model::peer_mac);
    while !inner.stop.load(Ordering::Relaxed) {
        if let Some(frame) = inner.nd.recv(Duration::from_millis(100)) {
            inner.stack.deliver(frame.data, peer_mac);
        }
    }
}
