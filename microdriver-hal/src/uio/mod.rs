//! The UIO backend: a PCI function bound to Linux's `uio_pci_generic`.
//!
//! BAR0 is mapped through sysfs `resource0`, configuration space is the sysfs `config`
//! file, the interrupt (INTx, level-triggered) comes from `/dev/uioN`, and DMA memory is
//! locked and physically contiguous with bus addresses from `/proc/self/pagemap`. There is
//! no IOMMU: the device can reach all of memory, so only a trusted device belongs here (use
//! [`vfio`](crate::vfio) where there is an IOMMU).

pub mod dma;
pub mod pci;

use std::sync::Arc;

pub use dma::{UioDma, UioRegion};
pub use pci::{Bar, SysfsConfig, UioIrq};

use crate::error::HalError;
use crate::seam::Hw;
use crate::{OpenOptions, Roots};

/// The handles of a device opened through UIO.
#[derive(Debug)]
pub(crate) struct UioHandles {
    pub(crate) uio: String,
    pub(crate) mmio: Arc<Bar>,
    pub(crate) pci: Arc<SysfsConfig>,
    pub(crate) irq: Arc<UioIrq>,
    pub(crate) dma: Arc<UioDma>,
}

impl UioHandles {
    /// Opens the device at `addr`, which is bound to `uio_pci_generic` already.
    pub(crate) fn open(roots: &Roots, addr: &str, opts: &OpenOptions) -> Result<Self, HalError> {
        let sysfs = &roots.sysfs;
        let uio = sysfs.uio_node(addr)?;
        let dir = sysfs.device_dir(addr);
        let pci = Arc::new(SysfsConfig::open(&dir.join("config"))?);
        let mmio = Arc::new(Bar::map(addr, &dir.join("resource0"))?);
        let irq = Arc::new(UioIrq::open(&roots.dev.join(&uio), pci.clone())?);
        let dma = Arc::new(UioDma::new(&roots.proc, opts.hugepages)?);
        tracing::info!(
            addr,
            uio,
            bar0 = mmio.len(),
            hugepage = ?dma.hugepage_size(),
            "opened through UIO"
        );
        Ok(Self {
            uio,
            mmio,
            pci,
            irq,
            dma,
        })
    }

    pub(crate) fn hw(&self) -> Hw {
        Hw {
            mmio: self.mmio.clone(),
            pci: self.pci.clone(),
            dma: self.dma.clone(),
            irq: self.irq.clone(),
        }
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "uio {}, BAR0 {} KiB, hugepages {}",
            self.uio,
            self.mmio.len() / 1024,
            match self.dma.hugepage_size() {
                Some(s) => format!("{} KiB", s / 1024),
                None => "none".into(),
            }
        )
    }
}
