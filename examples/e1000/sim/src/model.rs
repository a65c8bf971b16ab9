//! The model as a whole: the device thread, the wire, the peer, and the handle drivers and
//! tests use.
//!
//! One lock protects the device, the wire and the peer. MMIO accesses take it briefly and
//! perform register semantics synchronously (as a PCI read completes with the register's
//! value); anything that takes time on hardware — DMA, EEPROM reads through EERD, MDIO
//! cycles, auto-negotiation, interrupt delay timers — happens on the device thread, which
//! a register write wakes up and which otherwise sleeps until its next timer.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::device::{Device, SimBus, Variant};
use crate::error::SimError;
use crate::fault::Fault;
use crate::hw::{Mmio, PciConfig};
use crate::peer::{
    Direction, Peer, PeerConfig, PeerStats, StreamConfig, Wire, WireFrame, WireStats,
};
use crate::SimDma;
use crate::SimIrq;

/// Configuration of a model instance.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Which part to model.
    pub variant: Variant,
    /// The MAC address stored in the EEPROM.
    pub mac: [u8; 6],
    /// How long auto-negotiation takes (real hardware: a few seconds at worst, typically
    /// hundreds of milliseconds; tests want it short).
    pub autoneg_time: Duration,
    /// Whether the cable is plugged in at start.
    pub link_up: bool,
    /// The link partner.
    pub peer: PeerConfig,
    /// Whether PCI memory space and bus mastering start enabled (as after an OS enabled
    /// the device; the default). `false` models a function freshly handed to a UIO driver,
    /// which must set COMMAND.MEMORY and COMMAND.BUS_MASTER itself.
    pub pci_enabled: bool,
    /// The host bus the part sampled at reset (STATUS bits 15:11); `None` is the
    /// variant's [`Variant::default_bus`].
    pub bus: Option<SimBus>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            variant: Variant::I82540EM,
            mac: [0x52, 0x54, 0x00, 0x12, 0x34, 0x56],
            autoneg_time: Duration::from_millis(5),
            link_up: true,
            peer: PeerConfig::default(),
            pci_enabled: true,
            bus: None,
        }
    }
}

/// Descriptors handled per lock hold before the device thread lets others in.
const BUDGET: usize = 64;

struct Inner {
    dev: Device,
    wire: Wire,
    peer: Peer,
    shutdown: bool,
    tx_out: Vec<WireFrame>,
    /// Passes of the device thread that ended with nothing more to do right away.
    idle_passes: u64,
}

impl Inner {
    /// One round of device work; returns whether more work is ready right away.
    fn step(&mut self, now: Instant) -> bool {
        self.dev.tick(now);
        self.flush_control(now);
        let mut out = std::mem::take(&mut self.tx_out);
        self.dev.process_tx(now, BUDGET, &mut out);
        let loopback = self.dev.loopback();
        for f in out.drain(..) {
            if loopback {
                self.dev.loop_back(f, now);
            } else if let Some(f) = self.wire.carry(Direction::ToPeer, f) {
                self.peer.receive(f, now);
            }
        }
        self.tx_out = out;
        self.flush_control(now);
        if !loopback {
            let mut n = 0;
            while n < BUDGET {
                let dev = &self.dev;
                let Some(data) = self.peer.next_frame(now, |len| dev.can_accept(len)) else {
                    break;
                };
                n += 1;
                if let Some(f) = self
                    .wire
                    .carry(Direction::ToNic, WireFrame { data, fcs_ok: true })
                {
                    self.dev.receive(f, now);
                    // An XOFF reaches the peer before it sends its next frame.
                    self.flush_control(now);
                }
                // On hardware the DMA engine drains the FIFO while frames arrive; when this
                // thread catches up on a backlog of rate-paced frames, do the same rather
                // than letting the burst overflow the FIFO.
                if self.dev.rx_fifo_half_full() {
                    self.dev.process_rx(now, BUDGET);
                    self.flush_control(now);
                }
            }
        }
        self.dev.process_rx(now, BUDGET);
        self.flush_control(now);
        self.dev.update_irq(now);
        self.dev.tx_ready()
            || self.dev.rx_ready()
            || self.dev.has_pending_ops()
            || (!loopback && self.peer_ready(now))
    }

    /// Puts the MAC's PAUSE frames on the wire (they bypass the transmit ring).
    fn flush_control(&mut self, now: Instant) {
        if self.dev.fc_out.is_empty() {
            return;
        }
        let loopback = self.dev.loopback();
        for f in std::mem::take(&mut self.dev.fc_out) {
            if loopback {
                self.dev.receive(f, now);
            } else if let Some(f) = self.wire.carry(Direction::ToPeer, f) {
                self.peer.receive(f, now);
            }
        }
    }

    fn peer_ready(&mut self, now: Instant) -> bool {
        if self.peer.deadline().is_some_and(|d| d <= now) {
            return true;
        }
        // A lossless stream or a queued reply that the NIC can take now.
        self.peer.stream_remaining() > 0
            && self.dev.can_accept(1514)
            && self.peer.deadline().is_none()
            || self.peer.has_queued() && self.dev.can_accept(1514)
    }

    fn deadline(&self) -> Option<Instant> {
        [self.dev.deadline(), self.peer.deadline()]
            .into_iter()
            .flatten()
            .min()
    }
}

struct Shared {
    inner: Mutex<Inner>,
    cv: Condvar,
    /// Notified at the end of each idle pass (see [`E1000Sim::settle`]).
    idle: Condvar,
}

/// A running model of an 8254x on a wire with a peer.
///
/// Implements [`Mmio`] for BAR0; DMA memory comes from [`dma`](E1000Sim::dma) and the
/// interrupt line from [`irq`](E1000Sim::irq). Dropping it stops the device thread.
pub struct E1000Sim {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    dma: SimDma,
    irq: Arc<SimIrq>,
    variant: Variant,
    mac: [u8; 6],
}

impl std::fmt::Debug for E1000Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E1000Sim")
            .field("variant", &self.variant)
            .field("mac", &self.mac)
            .finish_non_exhaustive()
    }
}

impl E1000Sim {
    /// Powers on a model: registers at their reset values, the PHY starting
    /// auto-negotiation if the cable is plugged in.
    pub fn new(cfg: SimConfig) -> Result<Self, SimError> {
        if let Some(bus) = cfg.bus {
            cfg.variant.check_bus(bus).map_err(SimError::Config)?;
        }
        let dma = SimDma::new();
        let irq = Arc::new(SimIrq::new());
        let now = Instant::now();
        let dev = Device::new(&cfg, dma.clone(), Arc::clone(&irq), now);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                dev,
                wire: Wire::new(cfg.link_up),
                peer: Peer::new(cfg.peer),
                shutdown: false,
                tx_out: Vec::new(),
                idle_passes: 0,
            }),
            cv: Condvar::new(),
            idle: Condvar::new(),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("e1000-sim".into())
            .spawn(move || device_thread(&s))
            .map_err(|e| SimError::Spawn(e.to_string()))?;
        Ok(Self {
            shared,
            thread: Some(thread),
            dma,
            irq,
            variant: cfg.variant,
            mac: cfg.mac,
        })
    }

    /// A model with the default configuration.
    pub fn with_defaults() -> Result<Self, SimError> {
        Self::new(SimConfig::default())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared.inner.lock()
    }

    fn kick(&self) {
        self.shared.cv.notify_one();
    }

    /// The modelled part.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// PCI (vendor, device) IDs.
    pub fn pci_ids(&self) -> (u16, u16) {
        (self.variant.vendor_id(), self.variant.device_id())
    }

    /// The MAC address programmed into the EEPROM.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The DMA allocator/bus the device masters.
    pub fn dma(&self) -> &SimDma {
        &self.dma
    }

    /// The interrupt line.
    pub fn irq(&self) -> Arc<SimIrq> {
        Arc::clone(&self.irq)
    }

    /// Faults recorded so far (see [`Fault`]).
    pub fn faults(&self) -> Vec<Fault> {
        self.lock().dev.faults.faults.clone()
    }

    /// Faults recorded so far, clearing the log.
    pub fn take_faults(&self) -> Vec<Fault> {
        std::mem::take(&mut self.lock().dev.faults.faults)
    }

    /// Number of DMA bus errors (master aborts) so far.
    pub fn bus_errors(&self) -> u64 {
        self.lock().dev.faults.bus_errors
    }

    /// The EEPROM's current contents.
    pub fn eeprom_words(&self) -> [u16; crate::eeprom::WORDS] {
        *self.lock().dev.eeprom.words()
    }

    /// Reprograms the EEPROM with `words` (as an EEPROM programmer on the bench would).
    /// The part reads it at its next reset or EEPROM access; the PCI subsystem ids it
    /// loaded at power-on stay as they were.
    pub fn set_eeprom_words(&self, words: [u16; crate::eeprom::WORDS]) {
        self.lock().dev.eeprom = crate::eeprom::Eeprom::new(words);
    }

    /// Plugs or unplugs the cable.
    pub fn set_link(&self, up: bool) {
        let mut g = self.lock();
        g.wire.up = up;
        g.dev.wire_changed(Instant::now(), up);
        drop(g);
        self.kick();
    }

    /// Replaces the link partner's abilities and settings (see
    /// [`LinkPartner`](crate::phy::LinkPartner)); like a partner reconfigured on the far
    /// end, it makes the link renegotiate.
    pub fn set_link_partner(&self, p: crate::phy::LinkPartner) {
        self.lock().dev.set_link_partner(p, Instant::now());
        self.kick();
    }

    /// The link partner's abilities and settings.
    pub fn link_partner(&self) -> crate::phy::LinkPartner {
        self.lock().dev.link_partner()
    }

    /// Makes the PHY count `n` 1000BASE-T idle errors (1000BASE-T status bits 7:0, which
    /// saturate at 255 and clear when read).
    pub fn phy_add_idle_errors(&self, n: u32) {
        self.lock().dev.phy_add_idle_errors(n);
    }

    /// Whether the cable is plugged in.
    pub fn link_plugged(&self) -> bool {
        self.lock().wire.up
    }

    /// Drops the next `n` frames travelling in `dir`.
    pub fn drop_frames(&self, dir: Direction, n: u64) {
        self.lock().wire.drop_next(dir, n);
    }

    /// Corrupts (bad FCS) the next `n` frames travelling in `dir`.
    pub fn corrupt_frames(&self, dir: Direction, n: u64) {
        self.lock().wire.corrupt_next(dir, n);
    }

    /// Injects a defective register: bits `mask` of the register at `off` read 0 from now
    /// on, whatever is written (a stuck-at-zero cell, for self-test tests).
    pub fn inject_stuck_bits(&self, off: u32, mask: u32) {
        self.lock().dev.defects.stuck_low.push((off, mask));
    }

    /// Injects dead interrupt logic: the causes in `mask` are never latched into ICR, from
    /// ICS or from the event itself.
    pub fn inject_dead_causes(&self, mask: u32) {
        self.lock().dev.defects.dead_causes |= mask;
    }

    /// Corrupts the next `n` frames looped back inside the device (MAC or PHY loopback):
    /// one payload byte of each is inverted, with a good FCS (as a fault in the packet
    /// buffer or the DMA path would).
    pub fn corrupt_loopback_frames(&self, n: u64) {
        self.lock().dev.defects.corrupt_loopback += n;
    }

    /// Removes every injected defect.
    pub fn clear_defects(&self) {
        self.lock().dev.defects = Default::default();
    }

    /// Adds `n` to the statistics counter at `off` (COLC, TPT ...; a 64-bit counter by its
    /// low half), as if the device had counted `n` events: for tests of what a driver does
    /// with its statistics. Returns false (and changes nothing) if `off` is not a counter.
    pub fn add_stat(&self, off: u32, n: u64) -> bool {
        self.lock().dev.add_stat(off, n)
    }

    /// Wire counters.
    pub fn wire_stats(&self) -> WireStats {
        self.lock().wire.stats.clone()
    }

    /// Peer counters.
    pub fn peer_stats(&self) -> PeerStats {
        self.lock().peer.stats.clone()
    }

    /// Takes the frames the peer recorded (without FCS, oldest first).
    pub fn peer_take_received(&self) -> Vec<Vec<u8>> {
        self.lock().peer.received.drain(..).collect()
    }

    /// Turns the peer's recording of received frames on or off.
    pub fn peer_set_recording(&self, on: bool) {
        let mut g = self.lock();
        g.peer.cfg.record = on;
        if !on {
            g.peer.received.clear();
        }
    }

    /// Starts a generated stream from the peer (replacing any running one).
    pub fn peer_start_stream(&self, cfg: StreamConfig) {
        self.lock().peer.start_stream(cfg, Instant::now());
        self.kick();
    }

    /// Stops the peer's stream.
    pub fn peer_stop_stream(&self) {
        self.lock().peer.stop_stream();
    }

    /// Stream frames not yet sent.
    pub fn peer_stream_remaining(&self) -> u64 {
        self.lock().peer.stream_remaining()
    }

    /// Makes the peer send an IEEE 802.3x PAUSE frame for `quanta` (0 = XON) to the NIC,
    /// ahead of anything queued and regardless of the peer's own pause state.
    pub fn peer_send_pause(&self, quanta: u16) {
        self.lock().peer.send_pause(quanta);
        self.kick();
    }

    /// Makes the peer send an arbitrary frame (bytes without FCS) to the NIC.
    pub fn peer_send(&self, frame: Vec<u8>) {
        self.lock().peer.inject(frame);
        self.kick();
    }

    /// The peer's MAC and IPv4 address.
    pub fn peer_addr(&self) -> ([u8; 6], [u8; 4]) {
        let g = self.lock();
        (g.peer.cfg.mac, g.peer.cfg.ip)
    }

    /// Frames waiting in the receive FIFO (not yet in host memory).
    pub fn rx_fifo_frames(&self) -> usize {
        self.lock().dev.rx_fifo_len()
    }

    /// Frames discarded from the receive FIFO so far by a device reset or by the receiver
    /// turned off while it held them. Hardware counts these nowhere a driver can read; the
    /// model counts them so that a test can say where lost frames went.
    pub fn rx_fifo_discarded(&self) -> u64 {
        self.lock().dev.rx_fifo_discarded
    }

    /// Stops the device thread and waits for it.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Waits until the device thread has done everything it can do now with the state as
    /// it is when this is called (register writes, frames on the wire): one full pass of it
    /// that started after this call and ended with nothing more ready (timed work, such as
    /// interrupt delays, may still be pending). For tests that check that something did
    /// *not* happen, or read what the device made of hostile input. False after `timeout`
    /// (a device thread that never runs out of work, e.g. spinning on a fault).
    pub fn settle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        // Holding the lock: the pass that ends next started after this call.
        let seen = g.idle_passes;
        self.kick();
        while g.idle_passes == seen {
            if g.shutdown || self.shared.idle.wait_until(&mut g, deadline).timed_out() {
                return g.idle_passes != seen;
            }
        }
        true
    }

    fn stop(&mut self) {
        self.lock().shutdown = true;
        self.shared.cv.notify_all();
        if let Some(t) = self.thread.take() {
            // The device thread never panics by design; if it did, there is nothing more
            // to clean up here.
            let _ = t.join();
        }
    }
}

impl Drop for E1000Sim {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Mmio for E1000Sim {
    fn read32(&self, off: u32) -> u32 {
        self.lock().dev.read(off, Instant::now())
    }

    fn write32(&self, off: u32, v: u32) {
        self.lock().dev.write(off, v, Instant::now());
        self.kick();
    }
}

impl PciConfig for E1000Sim {
    fn config_read32(&self, off: u16) -> u32 {
        self.lock().dev.config_read(off)
    }

    fn config_write32(&self, off: u16, v: u32) {
        self.lock().dev.config_write(off, v);
        self.kick();
    }
}

/// Longest sleep of the device thread when nothing is scheduled.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// How soon the device thread looks again at a deadline that passed without progress.
const PASSED_DEADLINE_RETRY: Duration = Duration::from_micros(20);

fn device_thread(s: &Shared) {
    let mut g = s.inner.lock();
    loop {
        if g.shutdown {
            break;
        }
        let now = Instant::now();
        if g.step(now) {
            MutexGuard::bump(&mut g);
            continue;
        }
        g.idle_passes += 1;
        s.idle.notify_all();
        let until = g.deadline().unwrap_or(now + IDLE_WAIT).min(now + IDLE_WAIT);
        if until > now {
            s.cv.wait_until(&mut g, until);
        } else {
            // A deadline has passed that `step` could not act on yet (the receive FIFO is
            // full until the driver returns buffers, say). Looping at once would spin while
            // holding the lock and starve the very driver threads that would unblock it (a
            // livelock seen under load); let them in and look again shortly.
            s.cv.wait_for(&mut g, PASSED_DEADLINE_RETRY);
        }
    }
}
