//! The VFIO backend: a PCI function bound to `vfio-pci`, its DMA confined by the IOMMU.
//!
//! Opening follows the kernel's VFIO documentation (Documentation/driver-api/vfio.rst): a
//! container (`/dev/vfio/vfio`), the device's IOMMU group (`/dev/vfio/GROUP`, which must be
//! viable: every device in it bound to vfio-pci or to nothing) attached to it, the type-1
//! IOMMU set on the container, and the device's file from the group. Regions (BAR0, the
//! configuration space) are described by `VFIO_DEVICE_GET_REGION_INFO` and reached through
//! the device file (BAR0 mapped when the kernel allows it). DMA memory is ordinary memory of
//! this process mapped into the device's I/O address space ([`VfioDma`]): the device reaches
//! exactly those pages, and a bus address it was never given faults in the IOMMU. The
//! interrupt is an eventfd ([`VfioIrq`]): MSI-X, MSI or INTx.

mod dma;
pub mod iova;
mod irq;
mod sys;

use std::fs::{File, OpenOptions};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::Arc;

pub use dma::{VfioDma, VfioRegion, MAX_REGION};
pub use irq::{IrqMode, VfioIrq};

use crate::error::HalError;
use crate::mem::{page_size, Mapping};
use crate::seam::{Hw, Mmio, PciConfig};
use crate::{OpenOptions as HalOpenOptions, Roots};

/// A VFIO container with the device's group attached: the IOMMU context DMA maps go to.
#[derive(Debug)]
pub struct Container {
    fd: OwnedFd,
    _group: File,
}

/// The device's configuration space: the config region of the device file.
#[derive(Debug)]
pub struct VfioConfig {
    device: Arc<File>,
    offset: u64,
    size: u64,
}

impl VfioConfig {
    fn at(&self, off: u16, len: usize) -> Option<u64> {
        let off = u64::from(off);
        (off + len as u64 <= self.size).then_some(self.offset + off)
    }
}

impl PciConfig for VfioConfig {
    fn config_read32(&self, off: u16) -> u32 {
        let mut b = [0xFFu8; 4];
        if let Some(at) = self.at(off & !3, 4) {
            if let Err(e) = self.device.read_exact_at(&mut b, at) {
                tracing::error!(off, error = %e, "VFIO config read failed");
                b = [0xFF; 4];
            }
        }
        u32::from_le_bytes(b)
    }

    fn config_write32(&self, off: u16, v: u32) {
        if let Some(at) = self.at(off & !3, 4) {
            if let Err(e) = self.device.write_all_at(&v.to_le_bytes(), at) {
                tracing::error!(off, error = %e, "VFIO config write failed");
            }
        }
    }

    fn config_read16(&self, off: u16) -> u16 {
        let mut b = [0xFFu8; 2];
        if let Some(at) = self.at(off & !1, 2) {
            if let Err(e) = self.device.read_exact_at(&mut b, at) {
                tracing::error!(off, error = %e, "VFIO config read failed");
                b = [0xFF; 2];
            }
        }
        u16::from_le_bytes(b)
    }

    /// A 16-bit write of just this field (a dword write of COMMAND would write STATUS's
    /// write-one-to-clear bits back).
    fn config_write16(&self, off: u16, v: u16) {
        if let Some(at) = self.at(off & !1, 2) {
            if let Err(e) = self.device.write_all_at(&v.to_le_bytes(), at) {
                tracing::error!(off, error = %e, "VFIO config write failed");
            }
        }
    }
}

/// BAR0: mapped, or (when the kernel does not allow mapping it) read and written through
/// the device file.
#[derive(Debug)]
pub enum VfioBar {
    /// Mapped into this process.
    Mapped(Mapping),
    /// Accessed with `pread`/`pwrite` at the region's offset.
    File {
        /// The device file.
        device: Arc<File>,
        /// The region's offset in it.
        offset: u64,
        /// The region's size.
        size: u64,
    },
}

impl VfioBar {
    /// The BAR's size in bytes.
    pub fn len(&self) -> usize {
        match self {
            Self::Mapped(m) => m.len(),
            Self::File { size, .. } => *size as usize,
        }
    }

    /// Whether the BAR is empty (never, for an opened BAR).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Mmio for VfioBar {
    fn read32(&self, off: u32) -> u32 {
        match self {
            Self::Mapped(m) => m.read32(off as usize).unwrap_or(0),
            Self::File {
                device,
                offset,
                size,
            } => {
                let mut b = [0u8; 4];
                if !off.is_multiple_of(4) || u64::from(off) + 4 > *size {
                    return 0;
                }
                match device.read_exact_at(&mut b, offset + u64::from(off)) {
                    Ok(()) => u32::from_le_bytes(b),
                    Err(_) => 0,
                }
            }
        }
    }

    fn write32(&self, off: u32, v: u32) {
        let ok = match self {
            Self::Mapped(m) => m.write32(off as usize, v),
            Self::File {
                device,
                offset,
                size,
            } => {
                off.is_multiple_of(4)
                    && u64::from(off) + 4 <= *size
                    && device
                        .write_all_at(&v.to_le_bytes(), offset + u64::from(off))
                        .is_ok()
            }
        };
        if !ok {
            tracing::warn!(
                off,
                "ignored an unaligned, out-of-range or failed register write"
            );
        }
    }
}

/// The handles of a device opened through VFIO.
#[derive(Debug)]
pub(crate) struct VfioHandles {
    pub(crate) group: u32,
    pub(crate) mmio: Arc<VfioBar>,
    pub(crate) pci: Arc<VfioConfig>,
    pub(crate) irq: Arc<VfioIrq>,
    pub(crate) dma: Arc<VfioDma>,
    pub(crate) container: Arc<Container>,
    pub(crate) device: Arc<File>,
}

fn vfio_err(
    addr: &str,
    what: &'static str,
    hint: &'static str,
) -> impl FnOnce(std::io::Error) -> HalError {
    let addr = addr.to_string();
    move |source| HalError::Vfio {
        addr,
        what,
        source,
        hint,
    }
}

fn open_rw(path: &std::path::Path, what: &'static str) -> Result<File, HalError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(HalError::io(what, path))
}

impl VfioHandles {
    /// Opens the device at `addr`, which is bound to `vfio-pci` already.
    pub(crate) fn open(roots: &Roots, addr: &str, opts: &HalOpenOptions) -> Result<Self, HalError> {
        let sysfs = &roots.sysfs;
        let group = sysfs
            .iommu_group(addr)
            .ok_or_else(|| HalError::NoIommuGroup {
                addr: addr.to_string(),
                path: sysfs.device_dir(addr).join("iommu_group"),
            })?;
        let vfio_dir = roots.dev.join("vfio");
        let container = open_rw(&vfio_dir.join("vfio"), "opening the VFIO container")?;
        let version = sys::api_version(&container).map_err(vfio_err(
            addr,
            "GET_API_VERSION",
            " (is /dev/vfio/vfio the VFIO container?)",
        ))?;
        if version != sys::API_VERSION {
            return Err(HalError::BadDevice {
                addr: addr.to_string(),
                what: "VFIO API version",
                detail: format!("{version}, this code speaks {}", sys::API_VERSION),
            });
        }
        let iommu = [sys::TYPE1V2_IOMMU, sys::TYPE1_IOMMU]
            .into_iter()
            .find(|t| sys::check_extension(&container, *t).unwrap_or(false))
            .ok_or_else(|| {
                vfio_err(
                    addr,
                    "CHECK_EXTENSION(TYPE1_IOMMU)",
                    " (load vfio_iommu_type1: `modprobe vfio_iommu_type1`)",
                )(std::io::Error::from(std::io::ErrorKind::Unsupported))
            })?;
        let group_file = open_rw(
            &vfio_dir.join(group.to_string()),
            "opening the device's VFIO group (is it bound to vfio-pci?)",
        )?;
        let status =
            sys::group_status(&group_file).map_err(vfio_err(addr, "GROUP_GET_STATUS", ""))?;
        if status & sys::GROUP_FLAGS_VIABLE == 0 {
            let others = sysfs
                .group_devices(group)
                .into_iter()
                .map(|d| {
                    let drv = sysfs.driver(&d).unwrap_or_else(|| "none".into());
                    format!("{d}: {drv}")
                })
                .collect::<Vec<_>>()
                .join(", ");
            return Err(HalError::GroupNotViable {
                addr: addr.to_string(),
                group,
                others,
            });
        }
        sys::group_set_container(&group_file, &container).map_err(vfio_err(
            addr,
            "GROUP_SET_CONTAINER",
            " (another process may hold the group)",
        ))?;
        sys::set_iommu(&container, iommu).map_err(vfio_err(addr, "SET_IOMMU", ""))?;
        let device = sys::group_get_device_fd(&group_file, addr).map_err(vfio_err(
            addr,
            "GROUP_GET_DEVICE_FD",
            " (EBUSY: another process has the device open)",
        ))?;
        let device = Arc::new(File::from(device));
        let info = sys::device_info(&*device).map_err(vfio_err(addr, "DEVICE_GET_INFO", ""))?;
        if info.num_regions <= sys::PCI_CONFIG_REGION_INDEX {
            return Err(HalError::BadDevice {
                addr: addr.to_string(),
                what: "region count",
                detail: format!("{} regions, a PCI device has at least 8", info.num_regions),
            });
        }
        let cfg_info = sys::region_info(&*device, sys::PCI_CONFIG_REGION_INDEX)
            .map_err(vfio_err(addr, "GET_REGION_INFO(config)", ""))?;
        if cfg_info.size < 64 {
            return Err(HalError::BadDevice {
                addr: addr.to_string(),
                what: "configuration space",
                detail: format!("{} bytes", cfg_info.size),
            });
        }
        let pci = Arc::new(VfioConfig {
            device: device.clone(),
            offset: cfg_info.offset,
            size: cfg_info.size,
        });
        let mmio = Arc::new(Self::bar0(addr, &device)?);
        let mode = Self::pick_irq(&device, opts.irq, info.num_irqs);
        let irq = Arc::new(
            VfioIrq::new(device.clone(), pci.clone(), mode).map_err(vfio_err(
                addr,
                "SET_IRQS(trigger)",
                " (the device may have no usable interrupt of that kind; try --irq intx)",
            ))?,
        );
        let container = Arc::new(Container {
            fd: container.into(),
            _group: group_file,
        });
        let dma = Arc::new(VfioDma::new(
            container.clone(),
            iova::IovaSpace::new(iova::IOVA_BASE, iova::IOVA_END, page_size() as u64),
        ));
        tracing::info!(addr, group, bar0 = mmio.len(), irq = ?mode, "opened through VFIO");
        Ok(Self {
            group,
            mmio,
            pci,
            irq,
            dma,
            container,
            device,
        })
    }

    fn bar0(addr: &str, device: &Arc<File>) -> Result<VfioBar, HalError> {
        let info = sys::region_info(&**device, sys::PCI_BAR0_REGION_INDEX).map_err(vfio_err(
            addr,
            "GET_REGION_INFO(BAR0)",
            "",
        ))?;
        let rw = sys::REGION_INFO_FLAG_READ | sys::REGION_INFO_FLAG_WRITE;
        if info.size == 0 || info.flags & rw != rw || info.size > u64::from(u32::MAX) {
            return Err(HalError::BadDevice {
                addr: addr.to_string(),
                what: "BAR0",
                detail: format!("size {:#x}, flags {:#x}", info.size, info.flags),
            });
        }
        if info.flags & sys::REGION_INFO_FLAG_MMAP != 0 {
            match Mapping::map_shared_at(&**device, info.size as usize, info.offset) {
                Ok(m) => return Ok(VfioBar::Mapped(m)),
                Err(e) => {
                    tracing::warn!(addr, error = %e, "mapping BAR0 failed: using pread/pwrite")
                }
            }
        }
        Ok(VfioBar::File {
            device: device.clone(),
            offset: info.offset,
            size: info.size,
        })
    }

    fn pick_irq(device: &File, want: IrqMode, num_irqs: u32) -> IrqMode {
        let has = |m: IrqMode| {
            m.index() < num_irqs
                && sys::irq_info(device, m.index())
                    .is_ok_and(|i| i.count > 0 && i.flags & sys::IRQ_INFO_EVENTFD != 0)
        };
        match want {
            IrqMode::Auto => [IrqMode::Msix, IrqMode::Msi]
                .into_iter()
                .find(|m| has(*m))
                .unwrap_or(IrqMode::Intx),
            m => m,
        }
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
            "vfio group {}, BAR0 {} KiB{}, interrupt {:?}",
            self.group,
            self.mmio.len() / 1024,
            if matches!(*self.mmio, VfioBar::Mapped(_)) {
                " mapped"
            } else {
                " via the device file"
            },
            self.irq.mode()
        )
    }
}
