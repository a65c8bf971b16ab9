//! The toy device: a NIC with one transmit ring, modelled as a passive state machine.
//!
//! It stands for the hardware, so the driver reaches it only through register reads and
//! writes ([`ToyNic::read`], [`ToyNic::write`]) and the descriptors it fetches from the
//! ring's memory. Writing the tail register makes it "transmit" every descriptor from its
//! head up to the new tail onto its wire (a list of frames a test can inspect) and count
//! them. A real driver would reach a real device through `microdriver-hal` instead.

/// Register offsets.
pub mod reg {
    /// Device id (read only): [`super::DEVICE_ID`].
    pub const ID: u32 = 0x00;
    /// Control: [`super::CTRL_ENABLE`], [`super::CTRL_RESET`].
    pub const CTRL: u32 = 0x04;
    /// Ring size in descriptors (written while disabled).
    pub const RING_SIZE: u32 = 0x08;
    /// Transmit tail: the next descriptor the driver will fill. Writing it sends.
    pub const TAIL: u32 = 0x0C;
    /// Transmit head (read only): the next descriptor the device will send.
    pub const HEAD: u32 = 0x10;
    /// Frames sent since reset (read only).
    pub const SENT: u32 = 0x14;
}

/// What [`reg::ID`] reads.
pub const DEVICE_ID: u32 = 0x70F0_0001;
/// [`reg::CTRL`]: transmit enabled.
pub const CTRL_ENABLE: u32 = 1 << 0;
/// [`reg::CTRL`]: reset (self-clearing).
pub const CTRL_RESET: u32 = 1 << 1;
/// The largest ring the device takes.
pub const MAX_RING: u32 = 4096;

/// The device's state.
#[derive(Debug, Default)]
pub struct ToyNic {
    ctrl: u32,
    ring_size: u32,
    head: u32,
    tail: u32,
    sent: u32,
    wire: Vec<Vec<u8>>,
}

impl ToyNic {
    /// A device just after power-on.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads register `offset` (0 for an unknown one, as reads of holes usually are).
    pub fn read(&self, offset: u32) -> u32 {
        match offset {
            reg::ID => DEVICE_ID,
            reg::CTRL => self.ctrl,
            reg::RING_SIZE => self.ring_size,
            reg::TAIL => self.tail,
            reg::HEAD => self.head,
            reg::SENT => self.sent,
            _ => 0,
        }
    }

    /// Writes register `offset`. `ring` is the ring's memory, which the device reads on a
    /// tail write (as it would fetch descriptors by DMA). Writes to read-only or unknown
    /// registers are ignored, as hardware ignores them.
    pub fn write(&mut self, offset: u32, value: u32, ring: &[Vec<u8>]) {
        match offset {
            reg::CTRL if value & CTRL_RESET != 0 => {
                let wire = std::mem::take(&mut self.wire);
                *self = ToyNic {
                    wire,
                    ..ToyNic::new()
                };
            }
            reg::CTRL => self.ctrl = value,
            reg::RING_SIZE if self.ctrl & CTRL_ENABLE == 0 => {
                self.ring_size = value.min(MAX_RING);
                self.head = 0;
                self.tail = 0;
            }
            reg::TAIL if self.ctrl & CTRL_ENABLE != 0 && value < self.ring_size => {
                self.tail = value;
                while self.head != self.tail {
                    // A descriptor outside the memory the driver gave is skipped, as a
                    // device with an IOMMU would fault it instead of reading it.
                    if let Some(frame) = ring.get(self.head as usize) {
                        self.wire.push(frame.clone());
                        self.sent = self.sent.wrapping_add(1);
                    }
                    self.head = (self.head + 1) % self.ring_size;
                }
            }
            _ => {}
        }
    }

    /// The frames sent so far (what a peer on the wire received), in order.
    pub fn wire(&self) -> &[Vec<u8>] {
        &self.wire
    }
}
