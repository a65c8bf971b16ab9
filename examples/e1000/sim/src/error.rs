//! The crate's error type.

/// Errors of the model's fallible API.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The device thread could not be started.
    #[error("cannot start the device thread: {0}")]
    Spawn(String),
    /// The configuration describes something the part cannot be.
    #[error("invalid model configuration: {0}")]
    Config(String),
    /// DMA memory could not be allocated.
    #[error(transparent)]
    Dma(#[from] crate::hw::DmaError),
}
