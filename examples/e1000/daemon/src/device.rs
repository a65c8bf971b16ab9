//! Where e1000d's device comes from: the model (`--sim`, the `sim` feature) or a PCI
//! function through `microdriver-hal` (`--uio` / `--vfio`, the `uio` / `vfio` features),
//! each turned into the driver's [`Hw`] handles.

#[cfg(any(feature = "uio", feature = "vfio"))]
pub use pci::{open_pci, PciOptions, E1000_IDS};

#[cfg(any(feature = "uio", feature = "vfio"))]
mod pci {
    use microdriver_hal::{Device, OpenOptions, UserDriver};

    /// The 8254x parts the driver supports: (vendor, device, name). Kept in step with
    /// `e1000::adapter::MacType::from_ids` (QEMU's `e1000`, `e1000-82545em`,
    /// `e1000-82544gc`).
    pub const E1000_IDS: [(u16, u16, &str); 3] = [
        (0x8086, 0x100E, "82540EM"),
        (0x8086, 0x100F, "82545EM"),
        (0x8086, 0x100C, "82544GC"),
    ];

    /// How to take a PCI function.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct PciOptions {
        /// Take it from another driver that holds it.
        pub force: bool,
        /// Leave it on uio_pci_generic / vfio-pci at exit instead of giving it back.
        pub keep_bound: bool,
        /// UIO: require hugepages for DMA memory.
        pub hugepages: bool,
        /// VFIO: the interrupt to use.
        #[cfg(feature = "vfio")]
        pub irq: microdriver_hal::IrqMode,
    }

    /// Claims, binds and opens the 8254x at `addr` through `driver`. The returned
    /// [`Device`] gives the function back to the driver it came from when dropped (unless
    /// committed with `keep_bound`), so a start that fails after this undoes the bind.
    pub fn open_pci(
        addr: &str,
        driver: UserDriver,
        opts: PciOptions,
    ) -> Result<Device, microdriver_hal::HalError> {
        let o = OpenOptions {
            ids: E1000_IDS.to_vec(),
            force: opts.force,
            keep_bound: opts.keep_bound,
            hugepages: opts.hugepages,
            #[cfg(feature = "vfio")]
            irq: opts.irq,
            ..OpenOptions::new(driver)
        };
        let dev = microdriver_hal::open(addr, &o)?;
        let (vendor, device) = dev.ids();
        tracing::info!(
            addr = dev.addr(),
            ids = format!("{vendor:04x}:{device:04x}"),
            from = dev.previous_driver().unwrap_or("-"),
            lock = %dev.lock_path().display(),
            "{}",
            dev.describe()
        );
        Ok(dev)
    }
}
