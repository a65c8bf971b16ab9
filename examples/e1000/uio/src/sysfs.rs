//! The device as sysfs shows it: ids, the bound driver, the UIO node, and the
//! `driver_override` / `new_id` / `bind` dance that hands it to `uio_pci_generic`.
//!
//! Everything takes the sysfs root as a parameter ([`Sysfs::at`]) so the tests run against a
//! fake tree in a temporary directory.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::UioError;

/// The driver the backend binds devices to.
pub const UIO_DRIVER: &str = "uio_pci_generic";

/// The 8254x parts the e1000 driver supports: (vendor, device, name). Kept in step with
/// `e1000::adapter::MacType::from_ids` (QEMU's `e1000`, `e1000-82545em`, `e1000-82544gc`).
pub const SUPPORTED: &[(u16, u16, &str)] = &[
    (0x8086, 0x100E, "82540EM"),
    (0x8086, 0x100F, "82545EM"),
    (0x8086, 0x100C, "82544GC"),
];

/// The supported ids, for messages.
pub fn supported_list() -> String {
    SUPPORTED
        .iter()
        .map(|(v, d, n)| format!("{v:04x}:{d:04x} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Normalises a PCI address to the `DDDD:BB:DD.F` form sysfs uses.
pub fn normalize_addr(addr: &str) -> Result<String, UioError> {
    let bad = || UioError::BadAddress(addr.to_string());
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
    pub fn device(&self, addr: &str) -> Result<PathBuf, UioError> {
        let dir = self.device_dir(addr);
        if dir.is_dir() {
            Ok(dir)
        } else {
            Err(UioError::NoSuchDevice {
                addr: addr.to_string(),
                path: dir,
            })
        }
    }

    fn read_id(&self, addr: &str, which: &str) -> Result<u16, UioError> {
        let path = self.device_dir(addr).join(which);
        let s = fs::read_to_string(&path).map_err(UioError::io("reading a PCI id", &path))?;
        parse_id(&s).ok_or(UioError::Parse { path, contents: s })
    }

    /// The device's (vendor, device) ids.
    pub fn ids(&self, addr: &str) -> Result<(u16, u16), UioError> {
        Ok((self.read_id(addr, "vendor")?, self.read_id(addr, "device")?))
    }

    /// Checks that the device exists and is a supported 8254x; returns its ids.
    pub fn check_device(&self, addr: &str) -> Result<(u16, u16), UioError> {
        self.device(addr)?;
        let (vendor, device) = self.ids(addr)?;
        if SUPPORTED
            .iter()
            .any(|(v, d, _)| (*v, *d) == (vendor, device))
        {
            Ok((vendor, device))
        } else {
            Err(UioError::WrongIds {
                addr: addr.to_string(),
                vendor,
                device,
                supported: supported_list(),
            })
        }
    }

    /// The driver bound to the device, if any.
    pub fn driver(&self, addr: &str) -> Option<String> {
        let link = fs::read_link(self.device_dir(addr).join("driver")).ok()?;
        link.file_name().map(|n| n.to_string_lossy().into_owned())
    }

    /// The device's UIO node name (`uio0`), if it is bound to a UIO driver.
    pub fn uio_node(&self, addr: &str) -> Result<String, UioError> {
        let dir = self.device_dir(addr).join("uio");
        let mut names: Vec<String> = fs::read_dir(&dir)
            .map_err(|_| UioError::NoUioNode {
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
        names.into_iter().next().ok_or(UioError::NoUioNode {
            addr: addr.to_string(),
            path: dir,
        })
    }

    /// Makes sure `uio_pci_generic` is available, loading it with modprobe if allowed.
    fn ensure_uio_driver(&self) -> Result<PathBuf, UioError> {
        let dir = self.driver_dir(UIO_DRIVER);
        if dir.is_dir() {
            return Ok(dir);
        }
        let mut detail = String::new();
        if self.modprobe {
            match std::process::Command::new("modprobe")
                .arg(UIO_DRIVER)
                .output()
            {
                Ok(out) if out.status.success() && dir.is_dir() => return Ok(dir),
                Ok(out) => {
                    detail = format!(
                        "; `modprobe {UIO_DRIVER}` said: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
                Err(e) => detail = format!("; running modprobe failed: {e}"),
            }
        }
        Err(UioError::UioModuleMissing { path: dir, detail })
    }

    /// Binds the device to `uio_pci_generic`. A device another driver holds is refused
    /// unless `force`, in which case it is unbound from that driver first.
    pub fn bind(&self, addr: &str, force: bool) -> Result<BindOutcome, UioError> {
        let (vendor, device) = self.check_device(addr)?;
        let previous = self.driver(addr);
        if previous.as_deref() == Some(UIO_DRIVER) {
            return Ok(BindOutcome::AlreadyBound);
        }
        let uio_dir = self.ensure_uio_driver()?;
        if let Some(driver) = &previous {
            if !force {
                return Err(UioError::HeldByDriver {
                    addr: addr.to_string(),
                    driver: driver.clone(),
                });
            }
            tracing::warn!(
                addr,
                driver,
                "unbinding the device from its driver (forced)"
            );
            write_attr(&self.device_dir(addr).join("driver/unbind"), addr)?;
        }
        let dev_dir = self.device_dir(addr);
        let override_path = dev_dir.join("driver_override");
        if override_path.exists() {
            // driver_override binds exactly this function, not every device with its ids.
            write_attr(&override_path, UIO_DRIVER)?;
            write_attr_tolerant(&uio_dir.join("bind"), addr)?;
        } else {
            // Old kernels: add the ids to the driver (which probes matching unbound
            // devices at once), then bind explicitly in case it did not.
            write_attr_tolerant(
                &uio_dir.join("new_id"),
                &format!("{vendor:04x} {device:04x}"),
            )?;
            if self.driver(addr).as_deref() != Some(UIO_DRIVER) {
                write_attr_tolerant(&uio_dir.join("bind"), addr)?;
            }
        }
        match self.driver(addr) {
            Some(d) if d == UIO_DRIVER => Ok(BindOutcome::Bound { previous }),
            other => Err(UioError::NotBound {
                addr: addr.to_string(),
                driver: other.unwrap_or_else(|| "none".into()),
            }),
        }
    }

    /// Gives the device back: unbinds it from `uio_pci_generic`, clears the override and
    /// asks the kernel to probe it again (so its own driver, if loaded, takes it). Returns
    /// the driver that holds it afterwards.
    pub fn unbind(&self, addr: &str) -> Result<Option<String>, UioError> {
        let dev_dir = self.device(addr)?;
        if self.driver(addr).as_deref() == Some(UIO_DRIVER) {
            write_attr(&self.driver_dir(UIO_DRIVER).join("unbind"), addr)?;
        }
        let override_path = dev_dir.join("driver_override");
        if override_path.exists() {
            write_attr(&override_path, "\n")?;
        }
        let probe = self.root.join("bus/pci/drivers_probe");
        if probe.exists() {
            write_attr_tolerant(&probe, addr)?;
        }
        Ok(self.driver(addr))
    }
}

/// Writes a sysfs attribute (the file must exist: sysfs never creates them).
fn write_attr(path: &Path, value: &str) -> Result<(), UioError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(UioError::io("opening a sysfs attribute", path))?;
    f.write_all(value.as_bytes())
        .map_err(UioError::io("writing a sysfs attribute", path))
}

/// Like [`write_attr`], but the "already done" errors (EEXIST from `new_id`, EBUSY/ENODEV
/// from `bind` when the kernel bound the device already or the driver declined) are left
/// to the caller's check of the result.
fn write_attr_tolerant(path: &Path, value: &str) -> Result<(), UioError> {
    match write_attr(path, value) {
        Err(UioError::Io { source, .. })
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
