//! What can go wrong claiming, binding and opening a device, each with what to do about it.

use std::io;
use std::path::PathBuf;

/// An error of the HAL's Linux backends. Every message says what was wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HalError {
    /// The process is not root.
    #[error(
        "opening a device needs root (effective uid 0, uid is {uid}): binding drivers, mapping \
         BARs, reading bus addresses from /proc/self/pagemap and mapping DMA through VFIO all \
         need it; run it with sudo"
    )]
    NotRoot {
        /// The effective uid we run as.
        uid: u32,
    },
    /// The PCI address is malformed.
    #[error(
        "`{0}` is not a PCI address: use DOMAIN:BUS:DEVICE.FUNCTION (0000:00:03.0) or \
         BUS:DEVICE.FUNCTION (00:03.0), as `lspci -D` prints"
    )]
    BadAddress(String),
    /// No such device in sysfs.
    #[error(
        "no PCI device {addr} ({path} does not exist): list the network devices with \
         `microdriver-bind --list` or `lspci -D`",
        path = .path.display()
    )]
    NoSuchDevice {
        /// The address asked for.
        addr: String,
        /// The sysfs directory that was looked for.
        path: PathBuf,
    },
    /// The device is not one the caller accepts ([`OpenOptions::ids`](crate::OpenOptions)).
    #[error(
        "PCI device {addr} is {vendor:04x}:{device:04x}, not a device this driver supports \
         ({supported}); nothing was changed"
    )]
    WrongIds {
        /// The device's address.
        addr: String,
        /// Its vendor id.
        vendor: u16,
        /// Its device id.
        device: u16,
        /// The supported ids, for the message.
        supported: String,
    },
    /// The user-space driver (uio_pci_generic or vfio-pci) is not available.
    #[error(
        "the {driver} driver is not loaded ({path} does not exist) and could not be \
         loaded: run `modprobe {driver}` (on Debian it is in the linux-image package){detail}",
        path = .path.display()
    )]
    DriverModuleMissing {
        /// The driver asked for.
        driver: &'static str,
        /// The driver directory that was looked for.
        path: PathBuf,
        /// What the automatic modprobe said, if it was tried.
        detail: String,
    },
    /// Another driver holds the device.
    #[error(
        "PCI device {addr} is in use by the `{driver}` driver{interfaces}: refusing to take \
         it (its network interface would vanish); pass --force to unbind it, or unbind it \
         yourself",
        interfaces = describe_interfaces(.interfaces)
    )]
    HeldByDriver {
        /// The device's address.
        addr: String,
        /// The driver bound to it.
        driver: String,
        /// Its network interfaces, with whether each is up.
        interfaces: Vec<(String, bool)>,
    },
    /// The device is not bound to the wanted driver and binding was not asked for.
    #[error(
        "PCI device {addr} is not bound to {want} (driver: {driver}): run \
         `microdriver-bind --driver {want} {addr}` first, or open it with binding enabled"
    )]
    NotBound {
        /// The device's address.
        addr: String,
        /// The driver it should be bound to.
        want: &'static str,
        /// Its current driver, or "none".
        driver: String,
    },
    /// Another process claims the device (its lock is held).
    #[error(
        "PCI device {addr} is already claimed by process {holder} (lock {path} held): one \
         process drives a device at a time; stop that process first (nothing was changed)",
        holder = match .pid { Some(p) => p.to_string(), None => "(pid unknown)".into() },
        path = .path.display()
    )]
    Claimed {
        /// The device's address.
        addr: String,
        /// The holder's pid, as it recorded it.
        pid: Option<u32>,
        /// The lock file.
        path: PathBuf,
    },
    /// The device has no IOMMU group (no IOMMU, or it is off).
    #[error(
        "PCI device {addr} has no IOMMU group ({path} missing): VFIO needs an IOMMU; boot \
         with intel_iommu=on (or amd_iommu=on) and enable VT-d/AMD-Vi in the firmware, or use \
         the UIO backend",
        path = .path.display()
    )]
    NoIommuGroup {
        /// The device's address.
        addr: String,
        /// The sysfs link looked for.
        path: PathBuf,
    },
    /// Another device of the IOMMU group is held by a host driver.
    #[error(
        "IOMMU group {group} of {addr} is not viable: every device in it must be bound to \
         vfio-pci or to no driver ({others}); bind them with `microdriver-bind --driver \
         vfio-pci ADDR`"
    )]
    GroupNotViable {
        /// The device's address.
        addr: String,
        /// The group number.
        group: u32,
        /// The group's other devices and their drivers.
        others: String,
    },
    /// A VFIO ioctl failed.
    #[error("VFIO {what} failed for {addr}: {source}{hint}")]
    Vfio {
        /// The device's address.
        addr: String,
        /// What was asked of VFIO.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// The device reported something impossible (a region or interrupt description).
    #[error("PCI device {addr} reported an unusable {what}: {detail}")]
    BadDevice {
        /// The device's address.
        addr: String,
        /// What was wrong.
        what: &'static str,
        /// The values seen.
        detail: String,
    },
    /// Binding seemed to work but the device has no UIO node.
    #[error(
        "PCI device {addr} is bound to uio_pci_generic but has no uio node under {path}: the \
         driver refused it (no INTx pin, or INTx masking unsupported; see dmesg)",
        path = .path.display()
    )]
    NoUioNode {
        /// The device's address.
        addr: String,
        /// The directory looked in.
        path: PathBuf,
    },
    /// Hugepages were required but there are none.
    #[error(
        "no free hugepages ({detail}): reserve some with `echo 64 > \
         /proc/sys/vm/nr_hugepages` (or hugepages=64 on the kernel command line), or allow \
         the 4 KiB fallback (OpenOptions::hugepages = false)"
    )]
    NoHugepages {
        /// What was found.
        detail: String,
    },
    /// /proc/self/pagemap gave a zero frame number.
    #[error(
        "/proc/self/pagemap returned frame number 0 for a locked, present page: the kernel \
         hides physical addresses from processes without CAP_SYS_ADMIN; run as root (not \
         in a user namespace)"
    )]
    PagemapZeroFrames,
    /// This build leaves the backend out (a cargo feature of `microdriver-hal`).
    #[error(
        "this build has no {backend} backend: rebuild with the `uio`/`vfio` feature of \
         microdriver-hal (e1000d: `--features uio,vfio`)"
    )]
    BackendNotBuilt {
        /// The backend's driver.
        backend: &'static str,
    },
    /// A sysfs or device file operation failed.
    #[error("{what} ({path}): {source}", path = .path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A sysfs file held something unexpected.
    #[error("unexpected contents in {path}: {contents:?}", path = .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What it held.
        contents: String,
    },
    /// Mapping BAR0 failed.
    #[error(
        "mapping a BAR of {addr} through {path} failed: {source}{hint}",
        path = .path.display(),
        hint = if .source.raw_os_error() == Some(libc::EINVAL) {
            " (EINVAL: another driver probably still claims the device; unbind it)"
        } else {
            ""
        }
    )]
    MapBar {
        /// The device's address.
        addr: String,
        /// The resource file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// `", interface eth0 (up)"` for the message of [`HalError::HeldByDriver`].
fn describe_interfaces(ifs: &[(String, bool)]) -> String {
    if ifs.is_empty() {
        return String::new();
    }
    let list: Vec<String> = ifs
        .iter()
        .map(|(n, up)| format!("{n} ({})", if *up { "up" } else { "down" }))
        .collect();
    format!(", network interface {}", list.join(", "))
}

impl HalError {
    /// An [`HalError::Io`] for `path`.
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { what, path, source }
    }
}
