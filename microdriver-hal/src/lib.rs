//! `microdriver-hal`: the hardware seam every split driver uses, owned by no device.
//!
//! * [`seam`]: the traits a driver's kernel half sees ([`Mmio`], [`PciConfig`],
//!   [`DmaAllocator`] / [`DmaRegion`], [`InterruptLine`]), the object-safe [`Dma`] and the
//!   [`Hw`] bundle, and what every backend promises (bus addresses stable for a region's
//!   life, regions zeroed, which interrupts are level-triggered);
//! * the Linux backends for any PCI function: [`uio`] (`uio_pci_generic`, no IOMMU) and
//!   [`vfio`] (`vfio-pci`, DMA confined by the IOMMU, MSI/MSI-X where the device has them);
//! * [`open`]: claims the device ([`claim`]: one process at a time, a lock that dies with
//!   the process), binds it to the backend's driver ([`sysfs`]), opens it, and on a failure
//!   or when the [`Device`] is dropped gives it back to the driver it came from;
//! * the `microdriver-bind` tool (list, bind, unbind, refusing a device in use);
//! * [`sim`] (feature `sim`): simulated DMA memory and interrupt line for device models.
//!
//! A device model implements the [`seam`] traits itself and never depends on a backend.
//! `unsafe` code lives in `mem` (mappings, volatile access) and `vfio::sys` (ioctls).
//!
//! ```ignore
//! let dev = microdriver_hal::open("0000:00:03.0", &OpenOptions::new(UserDriver::Vfio))?;
//! let hw: microdriver_hal::Hw = dev.hw();
//! ```

pub mod seam;
#[cfg(feature = "sim")]
pub mod sim;

pub use seam::{Dma, DmaAllocator, DmaError, DmaRegion, Hw, InterruptLine, Mmio, PciConfig};

#[cfg(any(feature = "uio", feature = "vfio"))]
mod linux;
#[cfg(feature = "uio")]
pub mod uio;
#[cfg(feature = "vfio")]
pub mod vfio;

#[cfg(any(feature = "uio", feature = "vfio"))]
pub use linux::{claim, error, sysfs};
#[cfg(any(feature = "uio", feature = "vfio"))]
use linux::{device, mem};
#[cfg(feature = "vfio")]
pub use vfio::IrqMode;
#[cfg(any(feature = "uio", feature = "vfio"))]
pub use {
    claim::Claim,
    device::{bind, open, open_at, release, Device, OpenOptions},
    error::HalError,
    sysfs::{normalize_addr, BindOutcome, PciFunction, Sysfs, UserDriver, UIO_DRIVER, VFIO_DRIVER},
};

#[cfg(any(feature = "uio", feature = "vfio"))]
use std::path::PathBuf;

#[cfg(any(feature = "uio", feature = "vfio"))]
/// Where the backends look (real system: `/sys`, `/dev`, `/proc`, `/run/microdriver`).
/// Tests point them at a fake tree.
#[derive(Debug, Clone)]
pub struct Roots {
    /// The sysfs tree.
    pub sysfs: Sysfs,
    /// The directory holding `uioN` and `vfio/` device nodes.
    pub dev: PathBuf,
    /// procfs (`meminfo`, `self/pagemap`).
    pub proc: PathBuf,
    /// The directory of device lock files ([`claim`]).
    pub locks: PathBuf,
    /// Whether to insist on euid 0.
    pub require_root: bool,
}

#[cfg(any(feature = "uio", feature = "vfio"))]
impl Default for Roots {
    fn default() -> Self {
        Self {
            sysfs: Sysfs::default(),
            dev: PathBuf::from("/dev"),
            proc: PathBuf::from("/proc"),
            locks: PathBuf::from(claim::LOCK_DIR),
            require_root: true,
        }
    }
}

#[cfg(any(feature = "uio", feature = "vfio"))]
/// Checks that we run as root.
pub fn check_root() -> Result<(), HalError> {
    let uid = rustix::process::geteuid().as_raw();
    if uid == 0 {
        Ok(())
    } else {
        Err(HalError::NotRoot { uid })
    }
}
