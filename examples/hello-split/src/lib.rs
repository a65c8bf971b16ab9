//! **hello-split**: a complete split driver for a toy NIC, small enough to read in one
//! sitting. It is the example the guide (`docs/guide/`) walks through.
//!
//! The driver is ordinary Rust with three kinds of annotations:
//!
//! - `#[critical]` functions are the **kernel half**: the hot path ([`transmit`]) and the
//!   few checked services the user half may ask for ([`read_reg`], [`write_reg`],
//!   [`program_ring`]). Called from the user half, they become downcalls.
//! - `#[upcall]` functions are the **user half**: [`probe`], [`set_max_frame`],
//!   [`stats`]. Called from the kernel half, they run in the user-half process; if it has
//!   crashed they return an error instead, and the hot path never calls them.
//! - `#[derive(Marshal)]` types cross between the halves; `#[marshal(len = size)]` says how
//!   many elements an array field carries, `#[marshal(skip)]` keeps a field in the kernel
//!   half. State both halves change sits behind a [`ComboLock`].
//!
//! The same source runs **monolithic** (no [`microdriver_rt::start`]: every annotated
//! function is a direct call) or **split** (after `start`).
#![forbid(unsafe_code)]

pub mod device;

use microdriver_rt::{critical, upcall, CallError, ComboLock, ComboLockError, Marshal};
use parking_lot::Mutex;

use device::{reg, ToyNic, CTRL_ENABLE, CTRL_RESET, DEVICE_ID, MAX_RING};

/// The device this process drives. Only kernel-half code touches it: in the user-half
/// process this static exists too, but nothing there reaches it except through the
/// `#[critical]` functions, which run in the kernel half.
static DEVICE: Mutex<Option<ToyNic>> = Mutex::new(None);

/// The driver's errors. They cross the split (`Marshal`), so the user half's failures
/// reach the kernel-half caller as they are.
#[derive(Debug, Clone, PartialEq, Eq, Marshal, thiserror::Error)]
pub enum HelloError {
    /// The device is not a toy NIC.
    #[error("not a toy NIC: device id {0:#010x}")]
    WrongDevice(u32),
    /// A ring size outside what the device takes.
    #[error("ring size {0} is out of range: use 2..={MAX_RING}")]
    BadRingSize(u32),
    /// A frame size outside the configured limits.
    #[error("frame of {len} bytes is out of range: frames are 14..={max} bytes")]
    BadFrame {
        /// The frame's length.
        len: usize,
        /// The configured maximum.
        max: u16,
    },
    /// A maximum frame size the driver does not take.
    #[error("maximum frame size {0} is out of range: use 60..=9018")]
    BadMaxFrame(u16),
    /// No device was attached, or it was not probed.
    #[error("the device is not probed yet: call probe first")]
    NotProbed,
    /// The user half asked for a register write it may not make.
    #[error("register {0:#04x} is not the user half's to write")]
    Refused(u32),
    /// The call between the halves failed (the user half crashed, hung, or is restarting).
    #[error("{0}")]
    Call(String),
}

impl From<CallError> for HelloError {
    fn from(e: CallError) -> Self {
        HelloError::Call(e.to_string())
    }
}

impl From<ComboLockError> for HelloError {
    fn from(e: ComboLockError) -> Self {
        HelloError::Call(e.to_string())
    }
}

/// The transmit ring. The kernel half owns it; the user half sees snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Marshal)]
pub struct Ring {
    /// Descriptors in the ring.
    pub size: u32,
    /// The next descriptor the driver fills.
    pub tail: u32,
    /// Each descriptor's frame length: an array of `size` elements when it crosses.
    #[marshal(len = size)]
    pub lens: Vec<u16>,
    /// The frame buffers (the device reads them): they never leave the kernel half.
    #[marshal(skip)]
    pub buffers: Vec<Vec<u8>>,
}

/// What the user half configures and the hot path obeys.
#[derive(Debug, Clone, PartialEq, Eq, Marshal)]
pub struct Config {
    /// Largest frame `transmit` accepts.
    pub max_frame: u16,
    /// Set by `probe`.
    pub probed: bool,
}

/// The driver's device object, created by the kernel half and passed to upcalls by
/// reference (the runtime pairs it with the user half's copy).
#[derive(Debug, Marshal)]
pub struct Nic {
    /// The configuration: the user half locks it to change it.
    pub config: ComboLock<Config>,
    /// The ring: the user half may only take snapshots of it (its indexes are the hot
    /// path's invariants).
    pub ring: ComboLock<Ring>,
}

/// What `probe` found.
#[derive(Debug, Clone, PartialEq, Eq, Marshal)]
pub struct ProbeInfo {
    /// The device id register.
    pub device_id: u32,
    /// The ring size programmed.
    pub ring_size: u32,
}

/// What `stats` reports.
#[derive(Debug, Clone, PartialEq, Eq, Marshal)]
pub struct Stats {
    /// Frames the device sent since it was probed.
    pub sent: u32,
    /// The ring's size and tail, as the user half saw them.
    pub ring_size: u32,
    /// The ring's tail.
    pub tail: u32,
    /// The process the statistics were gathered in (the user half's pid when split).
    pub pid: u32,
}

impl Nic {
    /// A driver instance for a freshly attached device (kernel half).
    pub fn attach() -> Nic {
        *DEVICE.lock() = Some(ToyNic::new());
        Nic {
            config: ComboLock::new(Config {
                max_frame: 1514,
                probed: false,
            }),
            ring: ComboLock::snapshot_only(Ring::default()),
        }
    }
}

/// The frames the device has sent so far (kernel half; what a peer on the wire got).
pub fn wire() -> Vec<Vec<u8>> {
    DEVICE
        .lock()
        .as_ref()
        .map_or_else(Vec::new, |d| d.wire().to_vec())
}

// --- The kernel half: the hot path ----------------------------------------------------

/// Queues `frame` and tells the device to send it. The hot path: it never waits for the
/// user half, so it keeps working while the user half is down.
#[critical]
pub fn transmit(nic: &Nic, frame: &[u8]) -> Result<(), HelloError> {
    let max_frame = {
        let config = nic.config.lock()?;
        if !config.probed {
            return Err(HelloError::NotProbed);
        }
        config.max_frame
    };
    if frame.len() < 14 || frame.len() > usize::from(max_frame) {
        return Err(HelloError::BadFrame {
            len: frame.len(),
            max: max_frame,
        });
    }
    let mut guard = nic.ring.lock()?;
    let ring = &mut *guard;
    let mut device = DEVICE.lock();
    let device = device.as_mut().ok_or(HelloError::NotProbed)?;
    let slot = ring.tail as usize;
    let (Some(buffer), Some(len)) = (ring.buffers.get_mut(slot), ring.lens.get_mut(slot)) else {
        return Err(HelloError::NotProbed);
    };
    buffer.clear();
    buffer.extend_from_slice(frame);
    *len = frame.len() as u16;
    ring.tail = (ring.tail + 1) % ring.size;
    device.write(reg::TAIL, ring.tail, &ring.buffers);
    Ok(())
}

// --- The kernel half: checked services for the user half ------------------------------

/// Reads a device register.
#[critical]
pub fn read_reg(offset: u32) -> Result<u32, HelloError> {
    let device = DEVICE.lock();
    Ok(device.as_ref().ok_or(HelloError::NotProbed)?.read(offset))
}

/// Writes a device register: only `CTRL`, and never to enable transmission before a ring
/// exists. The tail belongs to the hot path, the ring size to [`program_ring`]: the kernel
/// half checks every request, whoever makes it.
#[critical]
pub fn write_reg(offset: u32, value: u32) -> Result<(), HelloError> {
    if offset != reg::CTRL {
        return Err(HelloError::Refused(offset));
    }
    let mut device = DEVICE.lock();
    let device = device.as_mut().ok_or(HelloError::NotProbed)?;
    if value & CTRL_ENABLE != 0 && device.read(reg::RING_SIZE) == 0 {
        return Err(HelloError::NotProbed);
    }
    device.write(offset, value, &[]);
    Ok(())
}

/// Gives the device a ring of `size` descriptors (kernel half: it owns the ring memory).
#[critical]
pub fn program_ring(nic: &Nic, size: u32) -> Result<(), HelloError> {
    if !(2..=MAX_RING).contains(&size) {
        return Err(HelloError::BadRingSize(size));
    }
    let mut ring = nic.ring.lock()?;
    let mut device = DEVICE.lock();
    let device = device.as_mut().ok_or(HelloError::NotProbed)?;
    device.write(reg::CTRL, 0, &[]);
    device.write(reg::RING_SIZE, size, &[]);
    device.write(reg::CTRL, CTRL_ENABLE, &[]);
    *ring = Ring {
        size,
        tail: 0,
        lens: vec![0; size as usize],
        buffers: vec![Vec::new(); size as usize],
    };
    Ok(())
}

// --- The user half ----------------------------------------------------------------------

/// Probes the device: checks its id, resets it, gives it a ring of `ring_size`
/// descriptors and marks the driver probed.
#[upcall]
pub fn probe(nic: &Nic, ring_size: u32) -> Result<ProbeInfo, HelloError> {
    let device_id = read_reg(reg::ID)?;
    if device_id != DEVICE_ID {
        return Err(HelloError::WrongDevice(device_id));
    }
    write_reg(reg::CTRL, CTRL_RESET)?;
    program_ring(nic, ring_size)?;
    // A user-half hold: the kernel half's copy changes when the guard drops.
    let mut config = nic.config.lock()?;
    config.probed = true;
    Ok(ProbeInfo {
        device_id,
        ring_size,
    })
}

/// Sets the largest frame the hot path accepts.
#[upcall]
pub fn set_max_frame(nic: &Nic, max_frame: u16) -> Result<(), HelloError> {
    if !(60..=9018).contains(&max_frame) {
        return Err(HelloError::BadMaxFrame(max_frame));
    }
    nic.config.lock()?.max_frame = max_frame;
    Ok(())
}

/// Gathers statistics from the device registers and a snapshot of the ring.
#[upcall]
pub fn stats(nic: &Nic) -> Result<Stats, HelloError> {
    let sent = read_reg(reg::SENT)?;
    let ring = nic.ring.snapshot()?;
    Ok(Stats {
        sent,
        ring_size: ring.size,
        tail: ring.tail,
        pid: std::process::id(),
    })
}
