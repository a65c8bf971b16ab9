//! The crate's error type.

/// Errors of the model's fallible API.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The device thread could not be started.
    #[error("cannot start the device thread: {0}")]
    Spawn(String),
    /// DMA memory could not be allocated.
    #[error(transparent)]
    Dma(#[from] crate::hw::DmaError),
}
