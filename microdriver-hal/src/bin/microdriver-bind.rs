//! `microdriver-bind`: which driver holds which PCI device, and handing devices to
//! `uio_pci_generic` or `vfio-pci` for a microdriver daemon (like DPDK's dpdk-devbind).
//!
//! ```text
//! microdriver-bind --list [--net]              every PCI function: ids, class, driver, interfaces, IOMMU group
//! microdriver-bind --driver uio|vfio ADDR...   bind (refuses a device another driver holds without --force)
//! microdriver-bind --unbind ADDR... [--to DRV] unbind and give back (to DRV, or whichever driver the kernel picks)
//! ```
//! A device a running daemon claims is refused whatever the flags (its lock names the pid).

use std::process::ExitCode;

use clap::Parser;
use microdriver_hal::{BindOutcome, HalError, PciFunction, Roots, UserDriver};

/// Lists PCI devices with their drivers, binds them to uio_pci_generic or vfio-pci for a
/// microdriver daemon, or gives them back.
#[derive(Debug, Parser)]
#[command(name = "microdriver-bind", version)]
struct Args {
    /// List PCI functions (with `--net`, network controllers only).
    #[arg(long, conflicts_with_all = ["driver", "unbind"])]
    list: bool,
    /// With --list: only network controllers (class 0x02).
    #[arg(long, requires = "list")]
    net: bool,
    /// Bind to this driver: `uio` (uio_pci_generic) or `vfio` (vfio-pci).
    #[arg(long, value_parser = parse_driver, conflicts_with = "unbind")]
    driver: Option<UserDriver>,
    /// Take a device even if another driver holds it (its network interface goes away).
    #[arg(long, requires = "driver")]
    force: bool,
    /// Unbind the devices and give them back.
    #[arg(long)]
    unbind: bool,
    /// With --unbind: the driver to hand them to (default: let the kernel probe).
    #[arg(long, requires = "unbind")]
    to: Option<String>,
    /// PCI addresses (`lspci -D`: 0000:00:03.0, or 00:03.0).
    pci_addrs: Vec<String>,
}

fn parse_driver(s: &str) -> Result<UserDriver, String> {
    UserDriver::parse(s)
        .ok_or_else(|| format!("`{s}`: use uio (uio_pci_generic) or vfio (vfio-pci)"))
}

fn show(f: &PciFunction) -> String {
    let ifs: Vec<String> = f
        .interfaces
        .iter()
        .map(|(n, up)| format!("{n}{}", if *up { "*" } else { "" }))
        .collect();
    format!(
        "{} {:04x}:{:04x} class {:06x} driver={}{}{}",
        f.addr,
        f.ids.0,
        f.ids.1,
        f.class,
        f.driver.as_deref().unwrap_or("none"),
        if ifs.is_empty() {
            String::new()
        } else {
            format!(" if={}", ifs.join(","))
        },
        f.iommu_group
            .map(|g| format!(" iommu_group={g}"))
            .unwrap_or_default()
    )
}

fn run(args: &Args) -> Result<Vec<String>, HalError> {
    let roots = Roots::default();
    if args.list {
        return Ok(roots
            .sysfs
            .list()?
            .iter()
            .filter(|f| !args.net || f.class >> 16 == 0x02)
            .map(show)
            .collect());
    }
    let mut out = Vec::new();
    for addr in &args.pci_addrs {
        let line = if let Some(driver) = args.driver {
            let name = driver.name();
            match microdriver_hal::bind(&roots, addr, driver, args.force)? {
                BindOutcome::AlreadyBound => format!("{addr}: already bound to {name}"),
                BindOutcome::Bound { previous: Some(p) } => {
                    format!("{addr}: taken from {p} and bound to {name}")
                }
                BindOutcome::Bound { previous: None } => format!("{addr}: bound to {name}"),
            }
        } else {
            match microdriver_hal::release(&roots, addr, args.to.as_deref())? {
                Some(d) => format!("{addr}: unbound, now driven by {d}"),
                None => format!("{addr}: unbound, no driver took it"),
            }
        };
        out.push(line);
    }
    Ok(out)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    if !args.list && args.pci_addrs.is_empty() {
        eprintln!("microdriver-bind: give --list, or PCI addresses with --driver DRV or --unbind");
        return ExitCode::from(2);
    }
    if !args.list && args.driver.is_none() && !args.unbind {
        eprintln!(
            "microdriver-bind: say what to do with the devices: --driver uio|vfio, or --unbind"
        );
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("microdriver-bind: {e}");
            ExitCode::FAILURE
        }
    }
}
