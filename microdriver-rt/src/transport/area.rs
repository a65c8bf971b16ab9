//! [`Area`]: typed access to a transport's control words and slot data.

use crate::sync::atomic::AtomicU32;

/// Control words in the header.
pub const HEADER_WORDS: usize = 32;
/// Control words per slot.
pub const SLOT_WORDS: usize = 8;

/// Header word indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Word {
    /// `MAGIC`.
    Magic = 0,
    /// Layout version.
    Version = 1,
    /// Number of slots.
    SlotCount = 2,
    /// Data bytes per slot.
    Capacity = 3,
    /// Slots `0..upcall_slots` carry upcalls (owned by the kernel half); the rest carry
    /// downcalls from user-half threads outside any upcall.
    UpcallSlots = 4,
    /// Doorbell the user half's workers sleep on (a sequence number).
    UserDoorbell = 5,
    /// How many user-half threads sleep on it.
    UserSleepers = 6,
    /// Doorbell the kernel half's downcall servers sleep on.
    KernelDoorbell = 7,
    /// How many kernel-half threads sleep on it.
    KernelSleepers = 8,
    /// Handshake state: 0 = nothing yet, 1 = the user half wrote its hello.
    Hello = 9,
    /// The user half's pid (as it reports it).
    UserPid = 10,
    /// Set by the kernel half to ask the user half to exit.
    Shutdown = 11,
    /// The user half's entry-table hash, low word.
    UserTableLo = 12,
    /// ... high word.
    UserTableHi = 13,
    /// The kernel half's entry-table hash, low word.
    KernelTableLo = 14,
    /// ... high word.
    KernelTableHi = 15,
    /// The wire-format version the user half speaks.
    UserFormat = 16,
    /// Workers the user half started.
    UserWorkers = 17,
    /// The active user half's death word: its main thread's id, which the kernel marks
    /// `FUTEX_OWNER_DIED` the moment that thread exits (see `component::liveness`).
    Alive = 18,
}

/// Errors setting up an area.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AreaError {
    /// The requested geometry is unusable.
    #[error("invalid transport geometry: {0}")]
    Geometry(String),
    /// The region could not be created or mapped.
    #[error("shared memory: {0}")]
    Io(#[from] std::io::Error),
    /// The region does not carry a slot area this build understands.
    #[error("the shared region is not a microdriver slot area: {0}")]
    Foreign(String),
}

/// The memory a slot protocol runs on.
///
/// Implementations keep every access in bounds: a word index or data range outside the
/// area is refused (`None`/`false`), never performed.
pub trait Area: Send + Sync {
    /// Number of slots.
    fn slot_count(&self) -> usize;
    /// Data bytes per slot.
    fn capacity(&self) -> usize;
    /// Header word `word`.
    fn header(&self, word: Word) -> &AtomicU32;
    /// Control word `index` (`< SLOT_WORDS`) of slot `slot`, or `None` if out of range.
    fn slot_word(&self, slot: usize, index: usize) -> Option<&AtomicU32>;
    /// All [`SLOT_WORDS`] control words of slot `slot` at once (one call on the hot path
    /// instead of one per word), or `None` if out of range.
    fn slot_words(&self, slot: usize) -> Option<&[AtomicU32]>;
    /// Copies `bytes` into slot `slot`'s data; false if it does not fit.
    fn write_data(&self, slot: usize, bytes: &[u8]) -> bool;
    /// Copies `len` bytes of slot `slot`'s data into `out` (replacing its contents);
    /// false if out of range.
    fn read_data(&self, slot: usize, len: usize, out: &mut Vec<u8>) -> bool;
}

/// "MDRV".
pub const MAGIC: u32 = 0x5652_444d;
/// Version of this layout (2: each slot's data follows its control words on the same line;
/// 3: a slot's length word may say the message carries no frame, `lrpc::slot::SMALL`).
pub const LAYOUT_VERSION: u32 = 3;

/// Writes a fresh header (the kernel half does this before the user half exists).
pub(crate) fn init_header(area: &dyn Area, upcall_slots: usize) {
    use crate::sync::atomic::Ordering::SeqCst;
    area.header(Word::Magic).store(MAGIC, SeqCst);
    area.header(Word::Version).store(LAYOUT_VERSION, SeqCst);
    area.header(Word::SlotCount)
        .store(area.slot_count() as u32, SeqCst);
    area.header(Word::Capacity)
        .store(area.capacity() as u32, SeqCst);
    area.header(Word::UpcallSlots)
        .store(upcall_slots.min(area.slot_count()) as u32, SeqCst);
}
