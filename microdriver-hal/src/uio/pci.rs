//! PCI configuration space through sysfs (`/sys/bus/pci/devices/ADDR/config`), BAR0
//! through `resource0`, and the interrupt through `/dev/uioN`.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::seam::{InterruptLine, Mmio, PciConfig};
use rustix::event::{poll, PollFd, PollFlags, Timespec};

use crate::error::HalError;
use crate::mem::Mapping;

/// COMMAND register offset.
pub const COMMAND: u16 = 0x04;
/// STATUS register offset.
pub const STATUS: u16 = 0x06;
/// COMMAND: INTx emulation disable (bit 10, i.e. bit 2 of config byte 5).
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
/// STATUS: the function asserts INTx.
pub const STATUS_INTERRUPT: u16 = 1 << 3;

/// The device's configuration space file.
#[derive(Debug)]
pub struct SysfsConfig {
    file: File,
    path: PathBuf,
}

impl SysfsConfig {
    /// Opens `path` (the device's `config` file) for reading and writing.
    pub fn open(path: &Path) -> Result<Self, HalError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(HalError::io("opening PCI configuration space", path))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Reads `buf.len()` bytes at `off`; on failure logs and fills with 0xFF (what a read
    /// of an absent function returns).
    pub fn read(&self, off: u16, buf: &mut [u8]) {
        if let Err(e) = self.file.read_exact_at(buf, u64::from(off)) {
            tracing::error!(path = %self.path.display(), off, error = %e, "config read failed");
            buf.fill(0xFF);
        }
    }

    /// Writes `data` at `off` (the kernel splits it into naturally sized accesses).
    pub fn write(&self, off: u16, data: &[u8]) {
        if let Err(e) = self.file.write_all_at(data, u64::from(off)) {
            tracing::error!(path = %self.path.display(), off, error = %e, "config write failed");
        }
    }

    /// Sets or clears COMMAND.INTX_DISABLE; returns whether it was set before.
    ///
    /// The write is the whole 16-bit COMMAND register, never config byte 5 alone: QEMU
    /// (7.2) re-evaluates the INTx line only for writes that cover byte 4, so clearing the
    /// bit with a one-byte write while the device asserts INTx leaves its interrupt router
    /// with an inverted level, and the host then sees an endless storm of interrupts nobody
    /// claims ("irq 11: nobody cared", and the kernel disables the line). Only we change
    /// COMMAND's other bits, and the kernel's handler only ever sets this bit while it is
    /// clear, so the read-modify-write loses nothing.
    pub fn set_intx_disabled(&self, disabled: bool) -> bool {
        let cmd = self.config_read16(COMMAND);
        let was = cmd & COMMAND_INTX_DISABLE != 0;
        if was != disabled {
            let v = if disabled {
                cmd | COMMAND_INTX_DISABLE
            } else {
                cmd & !COMMAND_INTX_DISABLE
            };
            self.config_write16(COMMAND, v);
        }
        was
    }

    /// STATUS.INTERRUPT: whether the function asserts INTx now (regardless of masking).
    pub fn intx_asserted(&self) -> bool {
        self.config_read16(STATUS) & STATUS_INTERRUPT != 0
    }
}

impl PciConfig for SysfsConfig {
    fn config_read32(&self, off: u16) -> u32 {
        let mut b = [0u8; 4];
        self.read(off & !3, &mut b);
        u32::from_le_bytes(b)
    }

    fn config_write32(&self, off: u16, v: u32) {
        self.write(off & !3, &v.to_le_bytes());
    }

    fn config_read16(&self, off: u16) -> u16 {
        let mut b = [0u8; 2];
        self.read(off & !1, &mut b);
        u16::from_le_bytes(b)
    }

    /// A 16-bit write of just this field: a dword read-modify-write of COMMAND would also
    /// write STATUS back, whose error bits clear when written with 1.
    fn config_write16(&self, off: u16, v: u16) {
        self.write(off & !1, &v.to_le_bytes());
    }
}

/// BAR0 mapped through `resource0`.
#[derive(Debug)]
pub struct Bar {
    map: Mapping,
}

impl Bar {
    /// Maps the whole of `path` (the device's `resource0`).
    pub fn map(addr: &str, path: &Path) -> Result<Self, HalError> {
        let err = |source| HalError::MapBar {
            addr: addr.to_string(),
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_SYNC)
            .open(path)
            .map_err(err)?;
        let len = file.metadata().map_err(err)?.len() as usize;
        if len == 0 {
            return Err(err(std::io::Error::other(
                "resource0 has size 0 (BAR0 unassigned)",
            )));
        }
        Ok(Self {
            map: Mapping::map_shared(&file, len).map_err(err)?,
        })
    }

    /// The BAR's size in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the BAR is empty (never, for a mapped BAR).
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }
}

impl Mmio for Bar {
    fn read32(&self, off: u32) -> u32 {
        self.map.read32(off as usize).unwrap_or(0)
    }

    fn write32(&self, off: u32, v: u32) {
        if !self.map.write32(off as usize, v) {
            tracing::warn!(off, "ignored an unaligned or out-of-range register write");
        }
    }
}

/// The device's interrupt through `/dev/uioN` (uio_pci_generic: INTx).
///
/// uio_pci_generic's handler masks INTx (COMMAND.INTX_DISABLE) at every interrupt and
/// counts it; it has no `irqcontrol` write (`write()` gives ENOSYS), so [`wait`] re-enables
/// INTx through the config file before it sleeps. The line is level-triggered: a cause the
/// driver has not yet cleared (by reading ICR) shows in STATUS.INTERRUPT and makes `wait`
/// return at once.
///
/// [`wait`]: InterruptLine::wait
#[derive(Debug)]
pub struct UioIrq {
    cfg: std::sync::Arc<SysfsConfig>,
    /// Blocking reads and polls (the interrupt thread).
    events: File,
    /// Non-blocking reads for [`assertions`](InterruptLine::assertions) from other threads
    /// (each open file has its own event cursor).
    counter: File,
    masked: AtomicBool,
    count: AtomicU64,
    path: PathBuf,
}

impl UioIrq {
    /// Opens `path` (`/dev/uioN`).
    pub fn open(path: &Path, cfg: std::sync::Arc<SysfsConfig>) -> Result<Self, HalError> {
        let events = OpenOptions::new()
            .read(true)
            .open(path)
            .map_err(HalError::io("opening the UIO device", path))?;
        let counter = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(HalError::io("opening the UIO device", path))?;
        let irq = Self {
            cfg,
            events,
            counter,
            masked: AtomicBool::new(false),
            count: AtomicU64::new(0),
            path: path.to_path_buf(),
        };
        irq.refresh();
        Ok(irq)
    }

    /// Reads the kernel's interrupt count if a new one is there (non-blocking).
    fn refresh(&self) {
        let mut b = [0u8; 4];
        if (&self.counter).read(&mut b).ok() == Some(4) {
            self.count
                .fetch_max(u64::from(u32::from_ne_bytes(b)), Ordering::Relaxed);
        }
    }
}

impl InterruptLine for UioIrq {
    fn wait(&self, timeout: Duration) -> bool {
        if self.masked.load(Ordering::SeqCst) {
            std::thread::sleep(timeout);
            return false;
        }
        // Re-arm INTx (the kernel masked it at the last interrupt).
        self.cfg.set_intx_disabled(false);
        if self.cfg.intx_asserted() {
            return true;
        }
        let ts = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&self.events, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(n) if n > 0 => {
                let mut b = [0u8; 4];
                match (&self.events).read(&mut b) {
                    Ok(4) => {
                        self.count
                            .fetch_max(u64::from(u32::from_ne_bytes(b)), Ordering::Relaxed);
                    }
                    Ok(n) => tracing::warn!(n, "short read from the UIO device"),
                    Err(e) => {
                        tracing::error!(path = %self.path.display(), error = %e, "UIO read failed");
                        std::thread::sleep(timeout);
                        return false;
                    }
                }
                !self.masked.load(Ordering::SeqCst)
            }
            Ok(_) => false,
            Err(rustix::io::Errno::INTR) => false,
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "poll failed");
                std::thread::sleep(timeout);
                false
            }
        }
    }

    fn is_asserted(&self) -> bool {
        self.cfg.intx_asserted()
    }

    fn mask(&self) {
        self.masked.store(true, Ordering::SeqCst);
        self.cfg.set_intx_disabled(true);
    }

    fn unmask(&self) {
        self.masked.store(false, Ordering::SeqCst);
        self.cfg.set_intx_disabled(false);
    }

    fn is_masked(&self) -> bool {
        self.masked.load(Ordering::SeqCst)
    }

    fn assertions(&self) -> u64 {
        self.refresh();
        self.count.load(Ordering::Relaxed)
    }
}
