//! The seam to the UIO backend (`e1000-uio`): `e1000d --uio PCI_ADDR` turns a PCI function
//! bound to `uio_pci_generic` into the driver's [`Hw`] handles, exactly the shape the
//! simulated backend hands over.

use std::sync::Arc;

use e1000::hw::{Dma, Hw};
use e1000_uio::UioOptions;

/// Opens the 8254x at `pci_addr` (e.g. `0000:00:03.0`; binds it to `uio_pci_generic` if
/// needed, taking it from another driver only when `force`). Returns its handles and its
/// canonical address.
pub fn open(pci_addr: &str, force: bool) -> Result<(Hw, String), String> {
    let opts = UioOptions {
        bind: true,
        force,
        ..UioOptions::default()
    };
    let dev = e1000_uio::open(pci_addr, &opts).map_err(|e| e.to_string())?;
    let (vendor, device) = dev.ids();
    tracing::info!(
        addr = dev.addr(),
        uio = dev.uio_name(),
        ids = format!("{vendor:04x}:{device:04x}"),
        bar0 = dev.bar_len(),
        "UIO device open"
    );
    let dma: Arc<dyn Dma> = dev.dma();
    let hw = Hw {
        mmio: dev.mmio(),
        pci: dev.pci(),
        dma,
        irq: dev.irq(),
    };
    Ok((hw, dev.addr().to_string()))
}
