//! What can go wrong opening a device through UIO, each with what to do about it.

use std::io;
use std::path::PathBuf;

/// An error of the UIO backend. Every message says what was wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum UioError {
    /// The process is not root.
    #[error(
        "the UIO backend needs root (effective uid 0, uid is {uid}): binding drivers, mapping \
         BAR0 and reading bus addresses from /proc/self/pagemap all need it; run it with sudo"
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
         `lspci -D -d 8086:`",
        path = .path.display()
    )]
    NoSuchDevice {
        /// The address asked for.
        addr: String,
        /// The sysfs directory that was looked for.
        path: PathBuf,
    },
    /// The device is not an 8254x the driver supports.
    #[error(
        "PCI device {addr} is {vendor:04x}:{device:04x}, not an 8254x this driver supports \
         ({supported})"
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
    /// The uio_pci_generic driver is not available.
    #[error(
        "the uio_pci_generic driver is not loaded ({path} does not exist) and could not be \
         loaded: run `modprobe uio_pci_generic` (needs CONFIG_UIO_PCI_GENERIC; on Debian it \
         is in the linux-image package){detail}",
        path = .path.display()
    )]
    UioModuleMissing {
        /// The driver directory that was looked for.
        path: PathBuf,
        /// What the automatic modprobe said, if it was tried.
        detail: String,
    },
    /// Another driver holds the device.
    #[error(
        "PCI device {addr} is in use by the `{driver}` driver: refusing to take it (its \
         network interface would vanish); pass --force (UioOptions::force) to unbind it, \
         or unbind it yourself"
    )]
    HeldByDriver {
        /// The device's address.
        addr: String,
        /// The driver bound to it.
        driver: String,
    },
    /// The device is not bound to uio_pci_generic and binding was not asked for.
    #[error(
        "PCI device {addr} is not bound to uio_pci_generic (driver: {driver}): run \
         `e1000-uio-bind {addr}` first, or open it with binding enabled"
    )]
    NotBound {
        /// The device's address.
        addr: String,
        /// Its current driver, or "none".
        driver: String,
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
         the 4 KiB fallback (UioOptions::hugepages = false)"
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
        "mapping BAR0 of {addr} through {path} failed: {source}{hint}",
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

impl UioError {
    /// An [`UioError::Io`] for `path`.
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { what, path, source }
    }
}
