//! Test support for device models (feature `sim`): the simulated DMA memory and interrupt
//! line a model of any device puts behind the [`seam`](crate::seam) traits, so that a
//! driver's kernel half runs against the model exactly as against a backend. Plain safe
//! code: every region is a lock-protected buffer, every bus access bounds-checked.

mod dma;
mod irq;

pub use dma::{BusFault, SimDma, SimDmaRegion, BUS_BASE, MAX_REGION, PAGE};
pub use irq::SimIrq;
