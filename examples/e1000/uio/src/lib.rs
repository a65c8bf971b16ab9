//! The UIO backend of the e1000 microdriver: a real or QEMU-emulated 8254x bound to Linux's
//! `uio_pci_generic`, seen through the hardware seam traits of `e1000_sim::hw`.
//!
//! [`open`] finds the device in sysfs, checks its ids, (optionally) binds it to
//! `uio_pci_generic`, maps BAR0 through `resource0`, opens the configuration space and
//! `/dev/uioN`, and sets up a DMA allocator whose regions are locked and physically
//! contiguous, with bus addresses from `/proc/self/pagemap`. The caller (e1000d) builds the
//! driver's `e1000::hw::Hw` from the handles:
//!
//! ```ignore
//! let dev = e1000_uio::open("0000:00:03.0", &UioOptions::default())?;
//! let hw = e1000::hw::Hw { mmio: dev.mmio(), pci: dev.pci(), dma: dev.dma(), irq: dev.irq() };
//! ```
//!
//! This crate does not depend on the driver (which forbids `unsafe`); its `unsafe` lives in
//! [`mem`] alone (memory mappings and volatile access).

pub mod dma;
pub mod error;
pub mod mem;
pub mod pci;
pub mod sysfs;

use std::path::PathBuf;
use std::sync::Arc;

pub use dma::{UioDma, UioRegion};
pub use e1000_sim::hw::{DmaAllocator, DmaRegion, InterruptLine, Mmio, PciConfig};
pub use error::UioError;
pub use pci::{Bar, SysfsConfig, UioIrq};
pub use sysfs::{normalize_addr, BindOutcome, Sysfs, SUPPORTED, UIO_DRIVER};

/// How [`open`] treats the device and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UioOptions {
    /// Bind the device to `uio_pci_generic` if it is not bound yet (default: true).
    pub bind: bool,
    /// Take the device even from another driver that holds it (default: false).
    pub force: bool,
    /// Require hugepages for DMA memory instead of falling back to 4 KiB pages (default:
    /// false: hugepages are used when there are free ones).
    pub hugepages: bool,
}

impl Default for UioOptions {
    fn default() -> Self {
        Self {
            bind: true,
            force: false,
            hugepages: false,
        }
    }
}

/// Where the backend looks (real system: `/sys`, `/dev`, `/proc`). Tests point it at a
/// fake tree.
#[derive(Debug, Clone)]
pub struct Roots {
    /// The sysfs tree.
    pub sysfs: Sysfs,
    /// The directory holding `uioN` device nodes.
    pub dev: PathBuf,
    /// procfs (`meminfo`, `self/pagemap`).
    pub proc: PathBuf,
    /// Whether to insist on euid 0.
    pub require_root: bool,
}

impl Default for Roots {
    fn default() -> Self {
        Self {
            sysfs: Sysfs::default(),
            dev: PathBuf::from("/dev"),
            proc: PathBuf::from("/proc"),
            require_root: true,
        }
    }
}

/// An opened device: the handles the driver's kernel half needs.
#[derive(Debug)]
pub struct UioDevice {
    addr: String,
    ids: (u16, u16),
    uio: String,
    mmio: Arc<Bar>,
    pci: Arc<SysfsConfig>,
    irq: Arc<UioIrq>,
    dma: Arc<UioDma>,
}

impl UioDevice {
    /// BAR0.
    pub fn mmio(&self) -> Arc<dyn Mmio> {
        self.mmio.clone()
    }
    /// PCI configuration space.
    pub fn pci(&self) -> Arc<dyn PciConfig> {
        self.pci.clone()
    }
    /// The interrupt line.
    pub fn irq(&self) -> Arc<dyn InterruptLine> {
        self.irq.clone()
    }
    /// The DMA allocator (implements [`DmaAllocator`]; `e1000::hw::Dma` via its blanket impl).
    pub fn dma(&self) -> Arc<UioDma> {
        self.dma.clone()
    }
    /// (vendor, device) ids.
    pub fn ids(&self) -> (u16, u16) {
        self.ids
    }
    /// The PCI address, normalised (`0000:00:03.0`).
    pub fn addr(&self) -> &str {
        &self.addr
    }
    /// The UIO node (`uio0`).
    pub fn uio_name(&self) -> &str {
        &self.uio
    }
    /// BAR0's size in bytes.
    pub fn bar_len(&self) -> usize {
        self.mmio.len()
    }
}

/// Checks that we run as root.
pub fn check_root() -> Result<(), UioError> {
    let uid = rustix::process::geteuid().as_raw();
    if uid == 0 {
        Ok(())
    } else {
        Err(UioError::NotRoot { uid })
    }
}

/// Binds the device at `pci_addr` to `uio_pci_generic` (see [`Sysfs::bind`]); what
/// `e1000-uio-bind` runs.
pub fn bind(pci_addr: &str, force: bool) -> Result<BindOutcome, UioError> {
    check_root()?;
    Sysfs::default().bind(&normalize_addr(pci_addr)?, force)
}

/// Gives the device back (see [`Sysfs::unbind`]); returns the driver holding it afterwards.
pub fn unbind(pci_addr: &str) -> Result<Option<String>, UioError> {
    check_root()?;
    Sysfs::default().unbind(&normalize_addr(pci_addr)?)
}

/// Opens the 8254x at `pci_addr` through UIO.
pub fn open(pci_addr: &str, opts: &UioOptions) -> Result<UioDevice, UioError> {
    open_at(&Roots::default(), pci_addr, opts)
}

/// [`open`] against explicit roots.
pub fn open_at(roots: &Roots, pci_addr: &str, opts: &UioOptions) -> Result<UioDevice, UioError> {
    if roots.require_root {
        check_root()?;
    }
    let addr = normalize_addr(pci_addr)?;
    let sysfs = &roots.sysfs;
    let ids = sysfs.check_device(&addr)?;
    if opts.bind {
        match sysfs.bind(&addr, opts.force)? {
            BindOutcome::AlreadyBound => {}
            BindOutcome::Bound { previous } => {
                tracing::info!(addr, ?previous, "bound to {UIO_DRIVER}");
            }
        }
    } else if sysfs.driver(&addr).as_deref() != Some(UIO_DRIVER) {
        return Err(UioError::NotBound {
            driver: sysfs.driver(&addr).unwrap_or_else(|| "none".into()),
            addr,
        });
    }
    let uio = sysfs.uio_node(&addr)?;
    let dir = sysfs.device_dir(&addr);
    let pci = Arc::new(SysfsConfig::open(&dir.join("config"))?);
    let mmio = Arc::new(Bar::map(&addr, &dir.join("resource0"))?);
    let irq = Arc::new(UioIrq::open(&roots.dev.join(&uio), pci.clone())?);
    let dma = Arc::new(UioDma::new(&roots.proc, opts.hugepages)?);
    tracing::info!(
        addr,
        ids = format_args!("{:04x}:{:04x}", ids.0, ids.1),
        uio,
        bar0 = mmio.len(),
        hugepage = ?dma.hugepage_size(),
        "opened through UIO"
    );
    Ok(UioDevice {
        addr,
        ids,
        uio,
        mmio,
        pci,
        irq,
        dma,
    })
}
