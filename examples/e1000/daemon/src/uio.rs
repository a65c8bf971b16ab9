//! The seam to the UIO backend: `e1000d --uio PCI_ADDR` turns a PCI function bound to
//! `uio_pci_generic` into the driver's [`Hw`] handles.

use e1000::hw::Hw;

/// Opens the device at `pci_addr` (e.g. `0000:00:03.0`).
pub fn open(pci_addr: &str) -> Result<Hw, String> {
    Err(format!(
        "--uio {pci_addr}: the UIO backend is not built into this e1000d yet"
    ))
}
