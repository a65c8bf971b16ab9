//! The simulated backend: a device from the `e1000-sim` model.

use std::sync::Arc;

use e1000_sim::{E1000Sim, SimConfig};

use crate::error::DriverError;
use crate::hw::Hw;

/// The handles of a running model.
pub fn hw(sim: &Arc<E1000Sim>) -> Hw {
    Hw {
        mmio: sim.clone(),
        pci: sim.clone(),
        dma: Arc::new(sim.dma().clone()),
        irq: sim.irq(),
    }
}

/// Starts a model with `cfg` and returns it with its handles.
pub fn start(cfg: SimConfig) -> Result<(Arc<E1000Sim>, Hw), DriverError> {
    let sim =
        Arc::new(E1000Sim::new(cfg).map_err(|e| {
            DriverError::Unsupported(format!("the device model could not start: {e}"))
        })?);
    let hw = hw(&sim);
    Ok((sim, hw))
}
