//! Opening a device: claim, bind, open, and give it back on the way out.
//!
//! [`open_at`] takes the device's [`Claim`] before anything else (a second claimant is
//! refused with the holder's pid and nothing changes), checks its ids, binds it to the
//! backend's driver (refusing one another driver holds unless `force`), and opens it. Any
//! failure after the bind undoes it, and so does dropping the [`Device`]: the device goes
//! back to the driver it came from (its `driver_override` cleared), unless the caller
//! [`commit`](Device::commit)ted a successful start with [`OpenOptions::keep_bound`].

use std::any::Any;
use std::sync::{Arc, Weak};

use crate::claim::Claim;
use crate::error::HalError;
use crate::seam::Hw;
use crate::sysfs::{normalize_addr, BindOutcome, UserDriver};
#[cfg(feature = "uio")]
use crate::uio::UioHandles;
#[cfg(feature = "vfio")]
use crate::vfio::{IrqMode, VfioHandles};
use crate::{check_root, Roots};

/// How [`open`] treats the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// The backend: `uio_pci_generic` or `vfio-pci`.
    pub driver: UserDriver,
    /// The (vendor, device, name) ids the caller drives; empty accepts any. A device with
    /// other ids is refused before anything is changed.
    pub ids: Vec<(u16, u16, &'static str)>,
    /// Bind the device to the backend's driver if it is not bound yet (default: true).
    pub bind: bool,
    /// Take the device even from another driver that holds it (default: false).
    pub force: bool,
    /// UIO: require hugepages for DMA memory instead of falling back to 4 KiB pages.
    pub hugepages: bool,
    /// VFIO: which interrupt to use (default: MSI-X, else MSI, else INTx).
    #[cfg(feature = "vfio")]
    pub irq: IrqMode,
    /// Leave the device on the backend's driver after a committed start (default: false:
    /// it goes back to the driver it came from when the [`Device`] is dropped).
    pub keep_bound: bool,
}

impl OpenOptions {
    /// The defaults for `driver`.
    pub fn new(driver: UserDriver) -> Self {
        Self {
            driver,
            ids: Vec::new(),
            bind: true,
            force: false,
            hugepages: false,
            #[cfg(feature = "vfio")]
            irq: IrqMode::Auto,
            keep_bound: false,
        }
    }
}

#[derive(Debug)]
enum Handles {
    #[cfg(feature = "uio")]
    Uio(UioHandles),
    #[cfg(feature = "vfio")]
    Vfio(VfioHandles),
}

impl Handles {
    fn hw(&self) -> Hw {
        match self {
            #[cfg(feature = "uio")]
            Self::Uio(h) => h.hw(),
            #[cfg(feature = "vfio")]
            Self::Vfio(h) => h.hw(),
        }
    }

    /// Weak references to everything that keeps the device open (files, mappings).
    fn watch(&self) -> Vec<Weak<dyn Any + Send + Sync>> {
        fn w<T: Any + Send + Sync>(a: &Arc<T>) -> Weak<dyn Any + Send + Sync> {
            let weak: Weak<dyn Any + Send + Sync> = Arc::downgrade(a) as _;
            weak
        }
        match self {
            #[cfg(feature = "uio")]
            Self::Uio(h) => vec![w(&h.mmio), w(&h.pci), w(&h.irq), w(&h.dma)],
            #[cfg(feature = "vfio")]
            Self::Vfio(h) => vec![
                w(&h.mmio),
                w(&h.pci),
                w(&h.irq),
                w(&h.dma),
                w(&h.container),
                w(&h.device),
            ],
        }
    }
}

/// An opened, claimed device. Dropping it closes it and gives it back (see the module).
#[derive(Debug)]
pub struct Device {
    handles: Option<Handles>,
    addr: String,
    ids: (u16, u16),
    driver: UserDriver,
    /// `Some(previous driver)` when we bound the device ourselves.
    bound_from: Option<Option<String>>,
    keep_bound: bool,
    committed: bool,
    roots: Roots,
    /// Dropped last: the device is ours until it is given back.
    claim: Claim,
}

impl Device {
    /// The handles a driver's kernel half needs.
    pub fn hw(&self) -> Hw {
        match &self.handles {
            Some(h) => h.hw(),
            None => unreachable!("a Device always has handles until it is dropped"),
        }
    }

    /// The PCI address, normalised (`0000:00:03.0`).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// (vendor, device) ids.
    pub fn ids(&self) -> (u16, u16) {
        self.ids
    }

    /// The backend.
    pub fn driver(&self) -> UserDriver {
        self.driver
    }

    /// The driver the device was taken from, if we bound it and it had one.
    pub fn previous_driver(&self) -> Option<&str> {
        self.bound_from.as_ref().and_then(|p| p.as_deref())
    }

    /// The VFIO DMA allocator itself (not boxed behind [`Hw::dma`]), for tools that need
    /// its regions' [`virt_addr`](crate::vfio::VfioRegion::virt_addr); `None` under UIO.
    #[cfg(feature = "vfio")]
    pub fn vfio_dma(&self) -> Option<Arc<crate::vfio::VfioDma>> {
        match &self.handles {
            Some(Handles::Vfio(h)) => Some(h.dma.clone()),
            _ => None,
        }
    }

    /// The claim's lock file.
    pub fn lock_path(&self) -> &std::path::Path {
        self.claim.path()
    }

    /// One line for logs and `status`: backend, BAR, DMA, interrupt.
    pub fn describe(&self) -> String {
        match &self.handles {
            #[cfg(feature = "uio")]
            Some(Handles::Uio(h)) => h.describe(),
            #[cfg(feature = "vfio")]
            Some(Handles::Vfio(h)) => h.describe(),
            None => "closed".into(),
        }
    }

    /// The caller started successfully: with [`OpenOptions::keep_bound`], the device now
    /// stays on the backend's driver when dropped. Without it this changes nothing.
    pub fn commit(&mut self) {
        self.committed = true;
    }

    /// Closes the device and gives it back now; returns the driver holding it afterwards
    /// (`Ok(None)` when it was left bound or nothing took it).
    pub fn close(mut self) -> Result<Option<String>, HalError> {
        self.give_back()
    }

    fn give_back(&mut self) -> Result<Option<String>, HalError> {
        let Some(handles) = self.handles.take() else {
            return Ok(None);
        };
        let watch = handles.watch();
        drop(handles);
        let Some(previous) = self.bound_from.take() else {
            return Ok(None);
        };
        if self.committed && self.keep_bound {
            tracing::info!(
                addr = self.addr,
                driver = self.driver.name(),
                "left bound (keep_bound)"
            );
            return Ok(None);
        }
        if watch.iter().any(|w| w.strong_count() > 0) {
            // Unbinding vfio-pci blocks until every file of the device is closed; a driver
            // that leaked a handle would hang us. Leave it bound and say so.
            tracing::error!(
                addr = self.addr,
                "the device's handles are still held: leaving it on {} (give it back with \
                 `microdriver-bind --unbind {}`)",
                self.driver.name(),
                self.addr
            );
            return Ok(None);
        }
        let after = self.roots.sysfs.release(&self.addr, previous.as_deref())?;
        tracing::info!(
            addr = self.addr,
            previous = ?previous,
            now = ?after,
            "device given back"
        );
        Ok(after)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        if let Err(e) = self.give_back() {
            tracing::error!(addr = self.addr, error = %e, "giving the device back failed");
        }
    }
}

/// Opens the device at `pci_addr` on a real system (see [`open_at`]).
pub fn open(pci_addr: &str, opts: &OpenOptions) -> Result<Device, HalError> {
    open_at(&Roots::default(), pci_addr, opts)
}

/// Claims, binds and opens the device at `pci_addr` under `roots`.
pub fn open_at(roots: &Roots, pci_addr: &str, opts: &OpenOptions) -> Result<Device, HalError> {
    if roots.require_root {
        check_root()?;
    }
    let addr = normalize_addr(pci_addr)?;
    let sysfs = &roots.sysfs;
    sysfs.device(&addr)?;
    let ids = sysfs.ids(&addr)?;
    if !opts.ids.is_empty() && !opts.ids.iter().any(|(v, d, _)| (*v, *d) == ids) {
        return Err(HalError::WrongIds {
            addr,
            vendor: ids.0,
            device: ids.1,
            supported: opts
                .ids
                .iter()
                .map(|(v, d, n)| format!("{v:04x}:{d:04x} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let claim = Claim::take(&roots.locks, &addr)?;
    let want = opts.driver.name();
    let previous = sysfs.driver(&addr);
    let bound_from = if opts.bind {
        match sysfs.bind(&addr, opts.driver, opts.force) {
            Ok(BindOutcome::AlreadyBound) => None,
            Ok(BindOutcome::Bound { previous }) => {
                tracing::info!(addr, ?previous, "bound to {want}");
                Some(previous)
            }
            Err(e) => {
                // A half-done bind (unbound from its driver, not bound to ours) is undone.
                if sysfs.driver(&addr) != previous {
                    if let Err(u) = sysfs.release(&addr, previous.as_deref()) {
                        tracing::error!(addr, error = %u, "undoing a failed bind failed");
                    }
                }
                return Err(e);
            }
        }
    } else if previous.as_deref() != Some(want) {
        return Err(HalError::NotBound {
            addr,
            want,
            driver: previous.unwrap_or_else(|| "none".into()),
        });
    } else {
        None
    };
    let mut dev = Device {
        handles: None,
        addr,
        ids,
        driver: opts.driver,
        bound_from,
        keep_bound: opts.keep_bound,
        committed: false,
        roots: roots.clone(),
        claim,
    };
    // From here a failure drops `dev`, which gives the device back.
    dev.handles = Some(match opts.driver {
        #[cfg(feature = "uio")]
        UserDriver::Uio => Handles::Uio(UioHandles::open(roots, &dev.addr, opts)?),
        #[cfg(feature = "vfio")]
        UserDriver::Vfio => Handles::Vfio(VfioHandles::open(roots, &dev.addr, opts)?),
        #[allow(unreachable_patterns)]
        other => {
            return Err(HalError::BackendNotBuilt {
                backend: other.name(),
            })
        }
    });
    Ok(dev)
}

/// Binds the device at `pci_addr` to `driver` (what `microdriver-bind` runs), refusing a
/// device a process claims.
pub fn bind(
    roots: &Roots,
    pci_addr: &str,
    driver: UserDriver,
    force: bool,
) -> Result<BindOutcome, HalError> {
    if roots.require_root {
        check_root()?;
    }
    let addr = normalize_addr(pci_addr)?;
    roots.sysfs.device(&addr)?;
    let _claim = Claim::take(&roots.locks, &addr)?;
    roots.sysfs.bind(&addr, driver, force)
}

/// Unbinds the device at `pci_addr` and hands it to `to` (or lets the kernel probe it),
/// refusing a device a process claims; returns its driver afterwards.
pub fn release(
    roots: &Roots,
    pci_addr: &str,
    to: Option<&str>,
) -> Result<Option<String>, HalError> {
    if roots.require_root {
        check_root()?;
    }
    let addr = normalize_addr(pci_addr)?;
    roots.sysfs.device(&addr)?;
    let _claim = Claim::take(&roots.locks, &addr)?;
    roots.sysfs.release(&addr, to)
}
