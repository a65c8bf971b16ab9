//! The device as sysfs shows it: ids, the bound driver, its network interfaces, its IOMMU
//! group, the UIO node, and the `driver_override` / `new_id` / `bind` dance that hands it to
//! `uio_pci_generic` or `vfio-pci` and back to the driver it came from.
//!
//! Everything takes the sysfs root as a parameter ([`Sysfs::at`]) so the tests run against a
//! fake tree in a temporary directory.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::HalError;

/// The user-space I/O drivers a device can be handed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserDriver {
    /// `uio_pci_generic`: BARs through sysfs, INTx through `/dev/uioN`, no IOMMU.
    Uio,
    /// `vfio-pci`: everything through `/dev/vfio`, DMA confined by the IOMMU.
    Vfio,
}

/// The driver the UIO backend binds devices to.
pub const UIO_DRIVER: &str = "uio_pci_generic";
/// The driver the VFIO backend binds devices to.
pub const VFIO_DRIVER: &str = "vfio-pci";

impl UserDriver {
    /// The kernel driver's name in `/sys/bus/pci/drivers`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Uio => UIO_DRIVER,
            Self::Vfio => VFIO_DRIVER,
        }
    }

    /// The module `modprobe` loads for it.
    fn module(self) -> &'static str {
        match self {
            Self::Uio => "uio_pci_generic",
            Self::Vfio => "vfio_pci",
        }
    }

    /// Parses `uio`, `uio_pci_generic`, `vfio` or `vfio-pci`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "uio" | UIO_DRIVER => Some(Self::Uio),
            "vfio" | VFIO_DRIVER | "vfio_pci" => Some(Self::Vfio),
            _ => None,
        }
    }
}

/// One PCI function as `microdriver-bind --list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciFunction {
    /// Its address (`0000:00:03.0`).
    pub addr: String,
    /// Vendor and device ids.
    pub ids: (u16, u16),
    /// The class code (`0x020000`: Ethernet).
    pub class: u32,
    /// The bound driver, if any.
    pub driver: Option<String>,
    /// Its network interfaces and whether each is up.
    pub interfaces: Vec<(String, bool)>,
    /// Its IOMMU group, if it has one.
    pub iommu_group: Option<u32>,
}

/// Normalises a PCI address to the `DDDD:BB:DD.F` form sysfs uses.
pub fn normalize_addr(addr: &str) -> Result<String, HalError> {
    let bad = || HalError::BadAddress(addr.to_string());
    let parts: Vec<&str> = addr.trim().split(':').collect();
    let (domain, bus, devfn) = match parts.as_slice() {
        [d, b, df] => (*d, *b, *df),
        [b, df] => ("0000", *b, *df),
        _ => return Err(bad()),
    };
    let (dev, func) = devfn.split_once('.').ok_or_else(bad)?;
    let hex = |s: &str, max_len: usize, max: u32| {
        if s.is_empty() || s.len() > max_len {
            return None;
        }
        u32::from_str_radix(s, 16).ok().filter(|v| *v <= max)
    };
    let domain = hex(domain, 4, 0xFFFF).ok_or_else(bad)?;
    let bus = hex(bus, 2, 0xFF).ok_or_else(bad)?;
    let dev = hex(dev, 2, 0x1F).ok_or_else(bad)?;
    let func = hex(func, 1, 7).ok_or_else(bad)?;
    Ok(format!("{domain:04x}:{bus:02x}:{dev:02x}.{func:x}"))
}

/// Parses a sysfs id file (`0x8086\n`).
pub fn parse_id(s: &str) -> Option<u16> {
    let s = s.trim();
    let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    u16::from_str_radix(hex, 16).ok()
}

/// What [`Sysfs::bind`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindOutcome {
    /// The device was already bound to `uio_pci_generic`.
    AlreadyBound,
    /// The device is now bound; `previous` is the driver it was taken from, if any.
    Bound {
        /// The driver that held the device before (only with `force`).
        previous: Option<String>,
    },
}

/// A sysfs tree (normally `/sys`).
#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
    /// Whether a missing `uio_pci_generic` may be loaded with `modprobe` (real systems only).
    modprobe: bool,
}

impl Default for Sysfs {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/sys"),
            modprobe: true,
        }
    }
}

impl Sysfs {
    /// A tree rooted at `root` (tests: never runs modprobe).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            modprobe: false,
        }
    }

    /// The device's directory, `/sys/bus/pci/devices/ADDR`.
    pub fn device_dir(&self, addr: &str) -> PathBuf {
        self.root.join("bus/pci/devices").join(addr)
    }

    /// A driver's directory, `/sys/bus/pci/drivers/NAME`.
    pub fn driver_dir(&self, name: &str) -> PathBuf {
        self.root.join("bus/pci/drivers").join(name)
    }

    /// Checks that the device exists; returns its directory.
    pub fn device(&self, addr: &str) -> Result<PathBuf, HalError> {
        let dir = self.device_dir(addr);
        if dir.is_dir() {
            Ok(dir)
        } else {
            Err(HalError::NoSuchDevice {
                addr: addr.to_string(),
                path: dir,
            })
        }
    }

    fn read_id(&self, addr: &str, which: &str) -> Result<u16, HalError> {
        let path = self.device_dir(addr).join(which);
        let s = fs::read_to_string(&path).map_err(HalError::io("reading a PCI id", &path))?;
        parse_id(&s).ok_or(HalError::Parse { path, contents: s })
    }

    /// The device's (vendor, device) ids.
    pub fn ids(&self, addr: &str) -> Result<(u16, u16), HalError> {
        Ok((self.read_id(addr, "vendor")?, self.read_id(addr, "device")?))
    }

    /// The device's class code (`class`, 24 bits).
    pub fn class(&self, addr: &str) -> Result<u32, HalError> {
        let path = self.device_dir(addr).join("class");
        let s = fs::read_to_string(&path).map_err(HalError::io("reading a PCI class", &path))?;
        let t = s.trim();
        t.strip_prefix("0x")
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or(HalError::Parse { path, contents: s })
    }

    /// The device's network interfaces (`net/*`) and whether each is up (IFF_UP in
    /// `flags`).
    pub fn interfaces(&self, addr: &str) -> Vec<(String, bool)> {
        let dir = self.device_dir(addr).join("net");
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut out: Vec<(String, bool)> = entries
            .filter_map(Result::ok)
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let up = fs::read_to_string(e.path().join("flags"))
                    .ok()
                    .and_then(|f| {
                        let f = f.trim();
                        u32::from_str_radix(f.strip_prefix("0x").unwrap_or(f), 16).ok()
                    })
                    .is_some_and(|f| f & 1 != 0);
                (name, up)
            })
            .collect();
        out.sort();
        out
    }

    /// The device's IOMMU group number, if it has one.
    pub fn iommu_group(&self, addr: &str) -> Option<u32> {
        let link = fs::read_link(self.device_dir(addr).join("iommu_group")).ok()?;
        link.file_name()?.to_str()?.parse().ok()
    }

    /// The addresses of the devices in IOMMU group `group`.
    pub fn group_devices(&self, group: u32) -> Vec<String> {
        let dir = self
            .root
            .join("kernel/iommu_groups")
            .join(group.to_string())
            .join("devices");
        let mut out: Vec<String> = fs::read_dir(dir)
            .map(|it| {
                it.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Every PCI function, sorted by address.
    pub fn list(&self) -> Result<Vec<PciFunction>, HalError> {
        let dir = self.root.join("bus/pci/devices");
        let mut addrs: Vec<String> = fs::read_dir(&dir)
            .map_err(HalError::io("listing PCI devices", &dir))?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        addrs.sort();
        addrs
            .into_iter()
            .map(|addr| {
                Ok(PciFunction {
                    ids: self.ids(&addr)?,
                    class: self.class(&addr).unwrap_or(0),
                    driver: self.driver(&addr),
                    interfaces: self.interfaces(&addr),
                    iommu_group: self.iommu_group(&addr),
                    addr,
                })
            })
            .collect()
    }

    /// The driver bound to the device, if any.
    pub fn driver(&self, addr: &str) -> Option<String> {
        let link = fs::read_link(self.device_dir(addr).join("driver")).ok()?;
        link.file_name().map(|n| n.to_string_lossy().into_owned())
    }

    /// The device's UIO node name (`uio0`), if it is bound to a UIO driver.
    pub fn uio_node(&self, addr: &str) -> Result<String, HalError> {
        let dir = self.device_dir(addr).join("uio");
        let mut names: Vec<String> = fs::read_dir(&dir)
            .map_err(|_| HalError::NoUioNode {
                addr: addr.to_string(),
                path: dir.clone(),
            })?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.strip_prefix("uio")
                    .is_some_and(|i| i.parse::<u32>().is_ok())
            })
            .collect();
        names.sort();
        names.into_iter().next().ok_or(HalError::NoUioNode {
            addr: addr.to_string(),
            path: dir,
        })
    }

    /// Makes sure `driver` is available, loading its module with modprobe if allowed.
    fn ensure_driver(&self, driver: UserDriver) -> Result<PathBuf, HalError> {
        let dir = self.driver_dir(driver.name());
        if dir.is_dir() {
            return Ok(dir);
        }
        let mut detail = String::new();
        if self.modprobe {
            match std::process::Command::new("modprobe")
                .arg(driver.module())
                .output()
            {
                Ok(out) if out.status.success() && dir.is_dir() => return Ok(dir),
                Ok(out) => {
                    detail = format!(
                        "; `modprobe {}` said: {}",
                        driver.module(),
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
                Err(e) => detail = format!("; running modprobe failed: {e}"),
            }
        }
        Err(HalError::DriverModuleMissing {
            driver: driver.name(),
            path: dir,
            detail,
        })
    }

    /// Binds the device to `driver`. A device another driver holds is refused unless
    /// `force`, in which case it is unbound from that driver first.
    pub fn bind(
        &self,
        addr: &str,
        driver: UserDriver,
        force: bool,
    ) -> Result<BindOutcome, HalError> {
        self.device(addr)?;
        let (vendor, device) = self.ids(addr)?;
        let want = driver.name();
        let previous = self.driver(addr);
        if previous.as_deref() == Some(want) {
            return Ok(BindOutcome::AlreadyBound);
        }
        let drv_dir = self.ensure_driver(driver)?;
        if let Some(held) = &previous {
            if !force {
                return Err(HalError::HeldByDriver {
                    addr: addr.to_string(),
                    driver: held.clone(),
                    interfaces: self.interfaces(addr),
                });
            }
            tracing::warn!(
                addr,
                driver = held,
                "unbinding the device from its driver (forced)"
            );
            write_attr(&self.device_dir(addr).join("driver/unbind"), addr)?;
        }
        let dev_dir = self.device_dir(addr);
        let override_path = dev_dir.join("driver_override");
        if override_path.exists() {
            // driver_override binds exactly this function, not every device with its ids.
            write_attr(&override_path, want)?;
            write_attr_tolerant(&drv_dir.join("bind"), addr)?;
        } else {
            // Old kernels: add the ids to the driver (which probes matching unbound
            // devices at once), then bind explicitly in case it did not.
            write_attr_tolerant(
                &drv_dir.join("new_id"),
                &format!("{vendor:04x} {device:04x}"),
            )?;
            if self.driver(addr).as_deref() != Some(want) {
                write_attr_tolerant(&drv_dir.join("bind"), addr)?;
            }
        }
        match self.driver(addr) {
            Some(d) if d == want => Ok(BindOutcome::Bound { previous }),
            other => Err(HalError::NotBound {
                addr: addr.to_string(),
                want,
                driver: other.unwrap_or_else(|| "none".into()),
            }),
        }
    }

    /// Gives the device back: unbinds it from its current driver, clears the override and
    /// hands it to `previous` (its `bind` file) if given and loaded, else asks the kernel
    /// to probe it (so its own driver, if loaded, takes it). Returns the driver that holds
    /// it afterwards.
    pub fn release(&self, addr: &str, previous: Option<&str>) -> Result<Option<String>, HalError> {
        let dev_dir = self.device(addr)?;
        if self.driver(addr).is_some() {
            write_attr(&dev_dir.join("driver/unbind"), addr)?;
        }
        let override_path = dev_dir.join("driver_override");
        if override_path.exists() {
            write_attr(&override_path, "\n")?;
        }
        let bind = previous.map(|p| self.driver_dir(p).join("bind"));
        match bind {
            Some(b) if b.exists() => write_attr_tolerant(&b, addr)?,
            _ => {
                let probe = self.root.join("bus/pci/drivers_probe");
                if probe.exists() {
                    write_attr_tolerant(&probe, addr)?;
                }
            }
        }
        Ok(self.driver(addr))
    }
}

/// Writes a sysfs attribute (the file must exist: sysfs never creates them).
fn write_attr(path: &Path, value: &str) -> Result<(), HalError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(HalError::io("opening a sysfs attribute", path))?;
    f.write_all(value.as_bytes())
        .map_err(HalError::io("writing a sysfs attribute", path))
}

/// Like [`write_attr`], but the "already done" errors (EEXIST from `new_id`, EBUSY/ENODEV
/// from `bind` when the kernel bound the device already or the driver declined) are left
/// to the caller's check of the result.
fn write_attr_tolerant(path: &Path, value: &str) -> Result<(), HalError> {
    match write_attr(path, value) {
        Err(HalError::Io { source, .. })
            if matches!(
                source.raw_os_error(),
                Some(libc::EEXIST | libc::EBUSY | libc::ENODEV)
            ) =>
        {
            tracing::debug!(path = %path.display(), error = %source, "tolerated");
            Ok(())
        }
        other => other,
    }
}

/// Reads `/proc/meminfo`-style `Key:   N kB` lines.
pub fn meminfo_value(meminfo: &str, key: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if k.trim() != key {
            return None;
        }
        let mut it = v.split_whitespace();
        let n: u64 = it.next()?.parse().ok()?;
        Some(match it.next() {
            Some("kB") => n * 1024,
            _ => n,
        })
    })
}
