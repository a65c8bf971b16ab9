//! `e1000-uio-bind PCI_ADDR [--force]`: hands an 8254x to `uio_pci_generic` for e1000d;
//! `e1000-uio-bind --unbind PCI_ADDR` gives it back to the kernel.

use std::process::ExitCode;

use clap::Parser;
use e1000_uio::{BindOutcome, UIO_DRIVER};

/// Binds an Intel 8254x (82540EM, 82545EM, 82544GC) to uio_pci_generic so e1000d can
/// drive it from user space, or gives it back.
#[derive(Debug, Parser)]
#[command(name = "e1000-uio-bind", version)]
struct Args {
    /// The device's PCI address (`lspci -D`: 0000:00:03.0, or 00:03.0).
    pci_addr: String,
    /// Take the device even if another driver (the kernel's e1000) holds it: its network
    /// interface goes away.
    #[arg(long)]
    force: bool,
    /// Give the device back: unbind it from uio_pci_generic and let the kernel probe it.
    #[arg(long, conflicts_with = "force")]
    unbind: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let result = if args.unbind {
        e1000_uio::unbind(&args.pci_addr).map(|driver| match driver {
            Some(d) => format!(
                "{}: unbound from {UIO_DRIVER}, now driven by {d}",
                args.pci_addr
            ),
            None => format!(
                "{}: unbound from {UIO_DRIVER}, no driver took it",
                args.pci_addr
            ),
        })
    } else {
        e1000_uio::bind(&args.pci_addr, args.force).map(|o| match o {
            BindOutcome::AlreadyBound => {
                format!("{}: already bound to {UIO_DRIVER}", args.pci_addr)
            }
            BindOutcome::Bound { previous: Some(p) } => {
                format!(
                    "{}: taken from {p} and bound to {UIO_DRIVER}",
                    args.pci_addr
                )
            }
            BindOutcome::Bound { previous: None } => {
                format!("{}: bound to {UIO_DRIVER}", args.pci_addr)
            }
        })
    };
    match result {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("e1000-uio-bind: {e}");
            ExitCode::FAILURE
        }
    }
}
