//! The device's interrupt through VFIO: an eventfd the kernel signals
//! (`VFIO_DEVICE_SET_IRQS` with `ACTION_TRIGGER`), for INTx, MSI or MSI-X vector 0.
//!
//! INTx is level-triggered and automasked: the kernel masks the line at each interrupt,
//! and [`wait`](InterruptLine::wait) unmasks it (`ACTION_UNMASK`) before it sleeps, so a
//! cause the driver has not cleared fires again at once. MSI and MSI-X are edges: one
//! eventfd signal per message, nothing to unmask.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags, Timespec};

use super::sys;
use super::VfioConfig;
use crate::seam::{InterruptLine, PciConfig};

/// STATUS register offset and its INTERRUPT bit.
const STATUS: u16 = 0x06;
const STATUS_INTERRUPT: u16 = 1 << 3;

/// Which interrupt a VFIO device uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IrqMode {
    /// MSI-X if the device has it, else MSI, else INTx.
    #[default]
    Auto,
    /// The legacy INTx pin (level-triggered).
    Intx,
    /// MSI vector 0.
    Msi,
    /// MSI-X vector 0.
    Msix,
}

impl IrqMode {
    pub(crate) fn index(self) -> u32 {
        match self {
            Self::Auto | Self::Intx => sys::PCI_INTX_IRQ_INDEX,
            Self::Msi => sys::PCI_MSI_IRQ_INDEX,
            Self::Msix => sys::PCI_MSIX_IRQ_INDEX,
        }
    }

    /// Parses `auto`, `intx`, `msi` or `msix`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "auto" => Self::Auto,
            "intx" => Self::Intx,
            "msi" => Self::Msi,
            "msix" | "msi-x" => Self::Msix,
            _ => return None,
        })
    }
}

/// A VFIO interrupt: one eventfd.
#[derive(Debug)]
pub struct VfioIrq {
    device: Arc<File>,
    cfg: Arc<VfioConfig>,
    events: OwnedFd,
    mode: IrqMode,
    masked: AtomicBool,
    /// INTx: the kernel masked the line at the last interrupt we consumed.
    need_unmask: AtomicBool,
    count: AtomicU64,
}

impl VfioIrq {
    /// Wires an eventfd to vector 0 of `mode` (not `Auto`).
    pub(crate) fn new(
        device: Arc<File>,
        cfg: Arc<VfioConfig>,
        mode: IrqMode,
    ) -> std::io::Result<Self> {
        let events = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        sys::set_irq(
            &*device,
            mode.index(),
            sys::IRQ_SET_ACTION_TRIGGER,
            Some(events.as_raw_fd()),
        )?;
        Ok(Self {
            device,
            cfg,
            events,
            mode,
            masked: AtomicBool::new(false),
            need_unmask: AtomicBool::new(false),
            count: AtomicU64::new(0),
        })
    }

    /// The interrupt in use.
    pub fn mode(&self) -> IrqMode {
        self.mode
    }

    fn intx(&self) -> bool {
        self.mode == IrqMode::Intx
    }

    fn unmask_intx(&self) {
        if let Err(e) = sys::set_irq(
            &*self.device,
            sys::PCI_INTX_IRQ_INDEX,
            sys::IRQ_SET_ACTION_UNMASK,
            None,
        ) {
            tracing::error!(error = %e, "VFIO INTx unmask failed");
        }
    }

    /// Takes what the eventfd counted, if anything.
    fn drain(&self) -> bool {
        let mut b = [0u8; 8];
        match rustix::io::read(&self.events, &mut b) {
            Ok(8) => {
                self.count
                    .fetch_add(u64::from_ne_bytes(b), Ordering::Relaxed);
                if self.intx() {
                    self.need_unmask.store(true, Ordering::SeqCst);
                }
                true
            }
            _ => false,
        }
    }

    fn readable(&self, timeout: Option<&Timespec>) -> bool {
        let mut fds = [PollFd::new(&self.events, PollFlags::IN)];
        matches!(poll(&mut fds, timeout), Ok(n) if n > 0)
    }
}

impl InterruptLine for VfioIrq {
    fn wait(&self, timeout: Duration) -> bool {
        if self.masked.load(Ordering::SeqCst) {
            std::thread::sleep(timeout);
            return false;
        }
        if self.intx() && self.need_unmask.swap(false, Ordering::SeqCst) {
            self.unmask_intx();
        }
        let ts = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        if !self.readable(Some(&ts)) {
            return false;
        }
        self.drain();
        !self.masked.load(Ordering::SeqCst)
    }

    fn is_asserted(&self) -> bool {
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        self.readable(Some(&zero))
            || (self.intx() && self.cfg.config_read16(STATUS) & STATUS_INTERRUPT != 0)
    }

    fn mask(&self) {
        self.masked.store(true, Ordering::SeqCst);
        if self.intx() {
            if let Err(e) = sys::set_irq(
                &*self.device,
                sys::PCI_INTX_IRQ_INDEX,
                sys::IRQ_SET_ACTION_MASK,
                None,
            ) {
                tracing::error!(error = %e, "VFIO INTx mask failed");
            }
        }
    }

    fn unmask(&self) {
        self.masked.store(false, Ordering::SeqCst);
        if self.intx() {
            self.need_unmask.store(false, Ordering::SeqCst);
            self.unmask_intx();
        }
    }

    fn is_masked(&self) -> bool {
        self.masked.load(Ordering::SeqCst)
    }

    fn assertions(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn level_triggered(&self) -> bool {
        self.intx()
    }
}

impl Drop for VfioIrq {
    fn drop(&mut self) {
        if let Err(e) = sys::disable_irq(&*self.device, self.mode.index()) {
            tracing::warn!(error = %e, "disabling the VFIO interrupt failed");
        }
    }
}
