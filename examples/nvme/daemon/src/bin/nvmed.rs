//! nvmed: serves an NVMe namespace as /dev/nbdN with the split nvme driver.
//!
//! ```text
//! nvmed --uio 0000:00:04.0 --nbd /dev/nbd0      # QEMU's or a real controller, UIO
//! nvmed --vfio 0000:00:04.0 --nbd /dev/nbd0     # VFIO (IOMMU-confined DMA)
//! nvmed --sim                                   # the controller model
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use nvmed::daemon::{Backend, Daemon, DaemonConfig, DEFAULT_SOCKET};

#[derive(Parser, Debug)]
#[command(
    name = "nvmed",
    about = "the nvme microdriver daemon: an NVMe namespace as /dev/nbdN"
)]
struct Args {
    /// Drive this PCI function through uio_pci_generic.
    #[arg(long, value_name = "PCI_ADDR", conflicts_with_all = ["vfio", "sim"])]
    uio: Option<String>,
    /// Drive this PCI function through vfio-pci.
    #[arg(long, value_name = "PCI_ADDR", conflicts_with = "sim")]
    vfio: Option<String>,
    /// Drive the controller model.
    #[arg(long)]
    sim: bool,
    /// Serve the namespace as this NBD device.
    #[arg(long, value_name = "DEVICE")]
    nbd: Option<PathBuf>,
    /// The control socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Run both halves in this process.
    #[arg(long)]
    monolithic: bool,
    /// Take the PCI function even from a driver that holds it.
    #[arg(long)]
    force: bool,
    /// Leave the function on the user-space driver at exit.
    #[arg(long)]
    keep_bound: bool,
    /// Reap completions by polling the completion queue instead of waiting for the
    /// interrupt.
    #[arg(long)]
    poll: bool,
    /// Seconds a command may be in flight before the controller is reset.
    #[arg(long, default_value_t = 10)]
    io_timeout: u64,
}

fn main() {
    microdriver_rt::run_user_half_if_requested();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let backend = match (a.uio, a.vfio, a.sim) {
        (Some(addr), None, false) => Backend::Uio(addr),
        (None, Some(addr), false) => Backend::Vfio(addr),
        (None, None, true) => Backend::Sim,
        _ => {
            eprintln!("nvmed: give one of --uio PCI_ADDR, --vfio PCI_ADDR or --sim");
            std::process::exit(2);
        }
    };
    let cfg = DaemonConfig {
        backend,
        nbd: a.nbd,
        socket: a.socket,
        monolithic: a.monolithic,
        force: a.force,
        keep_bound: a.keep_bound,
        io_timeout: Duration::from_secs(a.io_timeout.max(1)),
        poll: a.poll,
        ..DaemonConfig::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let socket = cfg.socket.clone();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let (stop, socket) = (Arc::clone(&stop), socket.clone());
        // SIGINT/SIGTERM: set the flag and wake the accept loop from a helper thread.
        let r = signal_hook::flag::register(sig, Arc::clone(&stop)).and_then(|_| {
            std::thread::Builder::new()
                .name("nvmed-signal".into())
                .spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    let _ = std::os::unix::net::UnixStream::connect(&socket);
                })
                .map(drop)
        });
        if let Err(e) = r {
            eprintln!("nvmed: installing signal handlers: {e}");
            std::process::exit(1);
        }
    }
    match Daemon::start(cfg, stop) {
        Ok(d) => d.serve(),
        Err(e) => {
            eprintln!("nvmed: {e}");
            std::process::exit(1);
        }
    }
}
