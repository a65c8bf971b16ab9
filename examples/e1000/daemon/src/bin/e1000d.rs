//! `e1000d`: the e1000 microdriver daemon. It runs the driver's kernel half, supervises
//! its user half (a sandboxed child process), and serves `e1000ctl` on a Unix socket.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use e1000d::{Backend, Daemon, DaemonConfig};
use microdriver_rt::component::run_user_half_if_requested;

/// The e1000 microdriver daemon.
#[derive(Debug, Parser)]
#[command(name = "e1000d", version, about)]
#[command(
    after_help = "Logging: to stderr, filtered by E1000D_LOG, else RUST_LOG (the \
    tracing-subscriber EnvFilter syntax of RUST_LOG, e.g. `E1000D_LOG=debug` or \
    `RUST_LOG=e1000d=debug,info`); default `info`. Logged at info and above: start-up, the \
    link going up or down (and the TAP carrier with it), user-half crashes and restarts, \
    resets, a lost device."
)]
#[command(group = clap::ArgGroup::new("pci").args(["uio", "vfio"]))]
struct Cli {
    /// Drive the simulated 82540EM on a simulated wire whose far end is 10.0.2.2 (the
    /// default; needs the `sim` feature).
    #[arg(long, conflicts_with = "pci")]
    sim: bool,
    /// Drive the PCI function PCI_ADDR (e.g. 0000:00:03.0) through uio_pci_generic (no
    /// IOMMU: the device can reach all memory).
    #[arg(long, value_name = "PCI_ADDR")]
    uio: Option<String>,
    /// Drive the PCI function PCI_ADDR through vfio-pci: its DMA is confined by the IOMMU
    /// to the memory the driver mapped (needs intel_iommu=on or amd_iommu=on).
    #[arg(long, value_name = "PCI_ADDR", conflicts_with = "uio")]
    vfio: Option<String>,
    /// With --uio/--vfio: take the device even if another driver (e.g. the kernel's e1000)
    /// holds it. A device another process drives is refused regardless.
    #[arg(long = "force", visible_alias = "uio-force", requires = "pci")]
    uio_force: bool,
    /// With --uio/--vfio: leave the device on uio_pci_generic / vfio-pci at exit. By
    /// default it goes back to the driver it was taken from (and always does when
    /// start-up fails).
    #[arg(long, requires = "pci")]
    keep_bound: bool,
    /// With --vfio: the interrupt to use: auto (MSI-X, then MSI, then INTx), intx, msi,
    /// msix.
    #[cfg(feature = "vfio")]
    #[arg(long, value_name = "KIND", default_value = "auto", value_parser = parse_irq, requires = "vfio")]
    irq: microdriver_hal::IrqMode,
    /// Bridge the NIC to the TAP interface NAME so the host's network stack uses it.
    #[arg(long, value_name = "NAME")]
    tap: Option<String>,
    /// Receive descriptors (a multiple of 8, 80 to 4096).
    #[arg(long, value_name = "N")]
    rx_ring: Option<u32>,
    /// Transmit descriptors (a multiple of 8, 80 to 4096).
    #[arg(long, value_name = "N")]
    tx_ring: Option<u32>,
    /// A load-time driver parameter, as Linux's e1000 module parameters (repeatable):
    /// TxDescriptors, RxDescriptors, Speed, Duplex, AutoNeg, FlowControl, XsumRX,
    /// TxIntDelay, TxAbsIntDelay, RxIntDelay, RxAbsIntDelay, InterruptThrottleRate,
    /// SmartPowerDownEnable, copybreak (e.g. `--param Speed=100 --param Duplex=2`). A
    /// comma-separated list gives one value per board; this daemon drives board 0. A bad
    /// value, or one the part cannot take, stops start-up.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// User-half worker threads.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,
    /// Run the whole driver in this process (no split), as the baseline.
    #[arg(long)]
    monolithic: bool,
    /// Add this latency to every user/kernel crossing (e.g. 10us, 1ms, 20ms).
    #[arg(long, value_name = "DURATION", value_parser = e1000d::format::parse_duration, default_value = "0")]
    crossing_delay: Duration,
    /// How long to wait for one call into the user half before giving up on it (a user
    /// half that stops answering altogether is caught sooner, by the heartbeat).
    #[arg(long, value_name = "DURATION", value_parser = e1000d::format::parse_duration, default_value = "30s")]
    call_timeout: Duration,
    /// At most N user-half restarts within --restart-window; one more and the driver runs
    /// degraded (traffic flows, configuration and statistics are refused) until the next
    /// attempt at a user half (see --revive-backoff) or `e1000ctl revive`. Default 20.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_restarts: Option<u32>,
    /// The window of --max-restarts (e.g. 10s, 500ms), in the time user halves ran (time
    /// spent restarting them, backing off or degraded does not count). Default 10s.
    #[arg(long, value_name = "DURATION", value_parser = e1000d::format::parse_duration)]
    restart_window: Option<Duration>,
    /// How long a degraded driver waits before it tries a user half again; doubled each
    /// time the new one crash-loops straight back, up to --revive-backoff-max.
    /// Default 1s.
    #[arg(long, value_name = "DURATION", value_parser = e1000d::format::parse_duration)]
    revive_backoff: Option<Duration>,
    /// The longest wait between attempts at a user half while degraded. Default 60s (or
    /// --revive-backoff, if longer).
    #[arg(long, value_name = "DURATION", value_parser = e1000d::format::parse_duration)]
    revive_backoff_max: Option<Duration>,
    /// A user half that dies younger than this is restarted after a backoff (1 ms,
    /// doubling per young death up to 1 s); one that ran this long is restarted at once.
    /// Default 200ms.
    #[arg(long, value_name = "DURATION", value_parser = e1000d::format::parse_duration)]
    stable_uptime: Option<Duration>,
    /// The control socket.
    #[arg(long, value_name = "PATH", default_value = e1000d::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Serve the daemon's counters in the Prometheus text format at http://ADDR/metrics:
    /// frames, bytes, drops, link, user-half restarts and recovery time, calls per entry.
    /// ADDR is PORT (bound to 127.0.0.1), IP:PORT or [IPv6]:PORT.
    #[arg(long, value_name = "ADDR", value_parser = e1000d::metrics::parse_addr)]
    metrics: Option<std::net::SocketAddr>,
}

#[cfg(feature = "vfio")]
fn parse_irq(s: &str) -> Result<microdriver_hal::IrqMode, String> {
    microdriver_hal::IrqMode::parse(s).ok_or_else(|| format!("`{s}`: use auto, intx, msi or msix"))
}

fn main() -> ExitCode {
    run_user_half_if_requested();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("E1000D_LOG")
                .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if cli.monolithic && !cli.crossing_delay.is_zero() {
        eprintln!("e1000d: --crossing-delay needs the split mode (drop --monolithic)");
        return ExitCode::from(2);
    }
    if cli.restart_window.is_some_and(|w| w.is_zero()) {
        eprintln!("e1000d: --restart-window must be more than 0");
        return ExitCode::from(2);
    }
    if let (Some(initial), Some(max)) = (cli.revive_backoff, cli.revive_backoff_max) {
        if max < initial {
            eprintln!(
                "e1000d: --revive-backoff-max ({max:?}) is shorter than --revive-backoff ({initial:?})"
            );
            return ExitCode::from(2);
        }
    }
    if cli.call_timeout.is_zero() {
        eprintln!("e1000d: --call-timeout must be more than 0");
        return ExitCode::from(2);
    }
    let params = match e1000::params::Params::parse(cli.params.iter().map(String::as_str), 0) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("e1000d: --param: {e}");
            return ExitCode::from(2);
        }
    };
    for (flag, given, param) in [
        (
            "--rx-ring",
            cli.rx_ring.is_some(),
            params.rx_descriptors.is_some(),
        ),
        (
            "--tx-ring",
            cli.tx_ring.is_some(),
            params.tx_descriptors.is_some(),
        ),
    ] {
        if given && param {
            let name = if flag == "--rx-ring" {
                "RxDescriptors"
            } else {
                "TxDescriptors"
            };
            eprintln!("e1000d: {flag} and --param {name} both size the ring: give one of them");
            return ExitCode::from(2);
        }
    }
    let cfg = DaemonConfig {
        params: (!params.is_empty()).then_some(params),
        backend: match (cli.uio, cli.vfio) {
            (Some(a), _) => Backend::Uio(a),
            (None, Some(a)) => Backend::Vfio(a),
            (None, None) => Backend::Sim,
        },
        keep_bound: cli.keep_bound,
        #[cfg(feature = "vfio")]
        irq: cli.irq,
        tap: cli.tap,
        rx_ring: cli.rx_ring,
        tx_ring: cli.tx_ring,
        workers: usize::from(cli.workers),
        monolithic: cli.monolithic,
        crossing_delay: cli.crossing_delay,
        max_restarts: cli.max_restarts.map(|n| n as usize),
        restart_window: cli.restart_window,
        revive_backoff: cli.revive_backoff,
        revive_backoff_max: cli.revive_backoff_max,
        stable_uptime: cli.stable_uptime,
        socket: cli.socket,
        metrics: cli.metrics,
        uio_force: cli.uio_force,
        call_timeout: cli.call_timeout,
        ..DaemonConfig::default()
    };
    // Signals first: a SIGTERM during start-up still shuts down cleanly.
    let stop = Arc::new(AtomicBool::new(false));
    let socket = cfg.socket.clone();
    match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ]) {
        Ok(mut signals) => {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    tracing::info!(signal = sig, "signal received");
                    stop.store(true, Ordering::SeqCst);
                    e1000d::daemon::wake(&socket);
                }
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, "no signal handling: stop e1000d with `e1000ctl shutdown`")
        }
    }
    let daemon = match Daemon::start_with_stop(cfg, stop) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("e1000d: {e}");
            return ExitCode::FAILURE;
        }
    };
    daemon.serve();
    ExitCode::SUCCESS
}
