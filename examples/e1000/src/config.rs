//! Open/close and configuration: rings, transmit and receive setup, receive filtering
//! (promiscuous, all-multicast, the MTA hash, extra unicast addresses), MAC address, MTU,
//! VLAN filter, and the reset task.

use microdriver_rt::upcall;
use microdriver_rt::Marshal;

use crate::adapter::Adapter;
use crate::error::DriverError;
use crate::kernel::{self, HotParams, RingRequest};
use crate::link;
use crate::regs::{self, ctrl, flow, rctl, rxcsum, tctl, *};

/// Smallest MTU (IPv4's minimum datagram).
pub const MIN_MTU: u32 = 68;
/// Largest MTU (jumbo frames: 16128-byte frames with header and FCS).
pub const MAX_MTU: u32 = 16110;
/// Frame check sequence length.
const FCS_LEN: u32 = 4;
/// The longest frame the receiver takes without RCTL.LPE, FCS included (SDM 13.4.22).
pub const MAX_STD_FRAME_FCS: u32 = 1522;
/// Recommended TIPG for copper (IPGT 10, IPGR1 8, IPGR2 6; SDM 13.4 TIPG).
pub const TIPG_COPPER: u32 = 10 | (8 << 10) | (6 << 20);

/// Ring sizes (ethtool ring parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Marshal)]
pub struct RingParam {
    /// Receive descriptors.
    pub rx: u32,
    /// Transmit descriptors.
    pub tx: u32,
    /// Largest receive ring.
    pub rx_max: u32,
    /// Largest transmit ring.
    pub tx_max: u32,
}

/// A MAC address the part may use: unicast and not all zeros.
pub fn check_mac(mac: [u8; 6]) -> Result<(), DriverError> {
    if mac[0] & 1 != 0 || mac == [0; 6] {
        return Err(DriverError::InvalidMac(mac));
    }
    Ok(())
}

fn write_ra(a: &Adapter, n: u32, mac: Option<[u8; 6]>) -> Result<(), DriverError> {
    let (lo, hi) = match mac {
        Some(m) => {
            let (l, h) = mac_to_ra(m);
            (l, h | rah::AV)
        }
        None => (0, 0),
    };
    // Clear AV first so the filter never matches a half-written address.
    a.wr(RAH + 8 * n, 0)?;
    a.wr(RAL + 8 * n, lo)?;
    a.wr(RAH + 8 * n, hi)
}

/// Programs the MAC after a reset: `RA[0]`, empty filters, flow control, VLAN ethertype and
/// the PHY (SDM ch. 14).
pub fn init_hw(a: &mut Adapter) -> Result<(), DriverError> {
    write_ra(a, 0, Some(a.mac))?;
    for n in 1..RA_LEN {
        write_ra(a, n, None)?;
    }
    for i in 0..MTA_LEN {
        a.wr(MTA + 4 * i, 0)?;
    }
    for i in 0..VFTA_LEN {
        a.wr(VFTA + 4 * i, 0)?;
    }
    a.wr(VET, 0x8100)?;
    crate::eeprom::apply_ctrl_defaults(a)?;
    crate::led::init(a)?;
    a.wr(FCAL, flow::FCAL_VALUE)?;
    a.wr(FCAH, flow::FCAH_VALUE)?;
    a.wr(FCT, flow::FCT_VALUE)?;
    crate::fifo::set_fc_watermarks(a)?;
    crate::phy::init(a)?;
    link::apply_flow_control(a)?;
    Ok(())
}

/// The receive buffer length for the MTU: 2048 bytes for standard frames; 4096 with long
/// packets enabled for jumbo frames, which then span descriptors.
pub fn rx_buf_len(a: &Adapter) -> u32 {
    if a.max_frame() <= 2048 {
        2048
    } else {
        4096
    }
}

/// Opens the interface: allocates the rings (kernel half), programs transmit and receive,
/// receive filtering and VLANs, enables interrupts, and sets the carrier from the link.
#[upcall]
pub fn open(a: &mut Adapter) -> Result<(), DriverError> {
    if a.up {
        return Err(DriverError::WrongState {
            op: "open".into(),
            state: "up".into(),
            needed: "down".into(),
        });
    }
    if a.pm.suspended {
        return Err(DriverError::WrongState {
            op: "open".into(),
            state: "suspended".into(),
            needed: "resumed: resume it first".into(),
        });
    }
    kernel::rings_alloc(a.dev, &ring_request(a))?;
    kernel::set_hot_params(a.dev, &hot_params(a))?;
    configure_tx(a)?;
    configure_rx(a)?;
    apply_coalesce(a)?;
    apply_vlans(a)?;
    a.up = true;
    kernel::irq_set_mask(a.dev, IMS_ENABLE_MASK)?;
    link::check_link(a)?;
    kernel::set_carrier(a.dev, a.link.up)?;
    Ok(())
}

/// The rings the configuration asks for.
fn ring_request(a: &Adapter) -> RingRequest {
    RingRequest {
        tx_count: a.conf.tx_ring,
        rx_count: a.conf.rx_ring,
        rx_buf_len: rx_buf_len(a),
    }
}

/// Programs the transmitter (the kernel half programmed its ring).
fn configure_tx(a: &Adapter) -> Result<(), DriverError> {
    a.wr(TIPG, TIPG_COPPER)?;
    let cold = if a.link.up && !a.link.full_duplex {
        0x200
    } else {
        0x40
    };
    a.wr(
        TCTL,
        tctl::EN | tctl::PSP | (0x0F << tctl::CT_SHIFT) | (cold << tctl::COLD_SHIFT),
    )
}

/// Programs the receiver (the kernel half programmed its ring and gave it buffers).
fn configure_rx(a: &Adapter) -> Result<(), DriverError> {
    a.wr(
        RXCSUM,
        if a.conf.rx_csum {
            rxcsum::IPOFLD | rxcsum::TUOFLD
        } else {
            0
        },
    )?;
    a.wr(RCTL, rctl_value(a)?)?;
    set_rx_mode(a)
}

/// The RCTL value for the current configuration (receiver enabled when up).
fn rctl_value(a: &Adapter) -> Result<u32, DriverError> {
    let buf = rx_buf_len(a) as usize;
    let bits = regs::rctl_buffer_bits(buf)
        .ok_or_else(|| DriverError::invalid("receive buffer", format!("{buf} bytes")))?;
    let mut v = rctl::EN | rctl::BAM | bits;
    if !a.conf.offloads.rx_fcs {
        // Strip the FCS unless ethtool's rx-fcs keeps it (SDM 13.4.22 RCTL.SECRC).
        v |= rctl::SECRC;
    }
    // Without LPE the MAC takes frames up to 1522 bytes with FCS, i.e. a full-size
    // standard frame with a VLAN tag (SDM 13.4.22 RCTL.LPE); `max_frame` has the tag and no
    // FCS.
    if a.max_frame() + FCS_LEN > MAX_STD_FRAME_FCS {
        v |= rctl::LPE;
    }
    if !a.conf.vlans.is_empty() {
        v |= rctl::VFE;
    }
    Ok(v)
}

/// Microseconds to the 1.024 us units of RDTR/RADV/TIDV/TADV.
fn delay_units(us: u32) -> u32 {
    ((u64::from(us) * 1000 / DELAY_UNIT_NS) as u32).min(0xFFFF)
}

/// The hot path's parameters from the adapter's configuration.
pub fn hot_params(a: &Adapter) -> HotParams {
    let c = a.conf.coalesce;
    HotParams {
        copybreak: a.conf.copybreak,
        // With rx-fcs, received frames keep their 4-byte FCS.
        max_frame: a.max_frame() + crate::features::rx_fcs_len(&a.conf),
        tx_ide: c.tx_usecs != 0,
        rx_csum: a.conf.rx_csum,
        tx_offloads: crate::features::tx_offloads(&a.conf),
        adaptive_itr: c.adaptive && a.info.mac_type.has_itr(),
        max_irq_rate: c.max_irq_rate,
    }
}

/// Programs the interrupt delay timers and the throttle (RADV, TADV and ITR only on the
/// 82540 and later). ITR only in fixed mode: in adaptive mode the kernel half's poll path
/// owns it (`set_hot_params`, called first, hands it over or takes it back).
pub fn apply_coalesce(a: &mut Adapter) -> Result<(), DriverError> {
    let c = a.conf.coalesce;
    a.wr(RDTR, delay_units(c.rx_usecs))?;
    a.wr(TIDV, delay_units(c.tx_usecs))?;
    if a.info.mac_type.has_itr() {
        a.wr(RADV, delay_units(c.rx_abs_usecs))?;
        a.wr(TADV, delay_units(c.tx_abs_usecs))?;
        if !c.adaptive {
            a.wr(ITR, link::itr_value(c.max_irq_rate))?;
            a.wd.irq_rate = c.max_irq_rate;
        }
    }
    Ok(())
}

/// Closes the interface: stops accepting packets and lets every accepted one go out,
/// stops the receiver and delivers what it completed, masks interrupts, frees the rings.
#[upcall]
pub fn close(a: &mut Adapter) -> Result<(), DriverError> {
    if !a.up {
        return Err(DriverError::WrongState {
            op: "close".into(),
            state: "down".into(),
            needed: "up".into(),
        });
    }
    if let Err(e) = tx_drain(a, 2000) {
        tracing::warn!(dev = a.dev.0, error = %e, "closing with packets still queued");
    }
    quiesce_rx(a)?;
    a.rmw(TCTL, tctl::EN, 0)?;
    a.rmw(RCTL, rctl::EN, 0)?;
    kernel::ring_quiesce(a.dev, true, true)?;
    kernel::irq_set_mask(a.dev, 0)?;
    kernel::set_carrier(a.dev, false)?;
    kernel::rings_free(a.dev)?;
    a.up = false;
    Ok(())
}

/// Before the receiver is disabled (which drops what its FIFO holds, SDM 13.4.22): with
/// transmit flow control on, send one XOFF (TCTL.SWXOFF) so the partner pauses, then wait
/// (at most 30 ms, within the pause) until the receive head has stayed still for 2 ms with
/// descriptors available, i.e. the FIFO has drained into the ring. Best effort: frames
/// still in the FIFO when the receiver stops were never handed to the driver.
fn quiesce_rx(a: &Adapter) -> Result<(), DriverError> {
    use std::time::{Duration, Instant};
    if !a.conf.pause.tx_pause || !a.link.up {
        return Ok(());
    }
    a.rmw(TCTL, 0, tctl::SWXOFF)?;
    let end = Instant::now() + Duration::from_millis(30);
    let mut head = a.rd(RDH)?;
    let mut still_since = Instant::now();
    while Instant::now() < end {
        std::thread::sleep(Duration::from_micros(250));
        let (h, t) = (a.rd(RDH)?, a.rd(RDT)?);
        if h != head || h == t {
            head = h;
            still_since = Instant::now();
        } else if still_since.elapsed() >= Duration::from_millis(2) {
            break;
        }
    }
    Ok(())
}

/// Stops the transmit queue and waits until the hardware has sent every packet the kernel
/// half accepted (or `timeout_ms` passes).
pub fn tx_drain(a: &Adapter, timeout_ms: u64) -> Result<(), DriverError> {
    let end = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
    while kernel::ring_quiesce(a.dev, true, false)?.0 > 0 {
        if std::time::Instant::now() > end {
            return Err(DriverError::timeout(
                "the transmit ring to drain",
                timeout_ms,
            ));
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    Ok(())
}

/// The reset task (scheduled by the watchdog on a transmit hang, or by the kernel half's
/// host after a configuration call failed crossing the split): close, reset the device,
/// program it again from the adapter, reopen if the adapter says up.
///
/// The device may be in any state a call that died midway left it in (closed with
/// `a.up` still true, rings freed or parked, transmit frozen, interrupts masked, the
/// loopback test's capture on and PHY in loopback). So nothing here trusts the adapter's
/// flags about the hardware: the kernel half's calls below are harmless with no rings, the
/// reset frees whatever rings the kernel half has and masks interrupts, the capture is
/// stopped, and `open` allocates the rings the adapter asks for (which unfreezes
/// transmit).
#[upcall]
pub fn reset_task(a: &mut Adapter) -> Result<(), DriverError> {
    // Frames go to the stack again, not to a self-test that is no longer there.
    kernel::rx_capture(a.dev, false)?;
    if a.pm.suspended {
        // A suspended device (say a resume died midway and left it half running): reset
        // it and arm wake-up again, so it is what the adapter says until resume.
        reprogram(a)?;
        a.wd.resets += 1;
        return crate::wol::prepare_power_off(a);
    }
    let was_up = a.up;
    if was_up {
        if let Err(e) = tx_drain(a, 100) {
            tracing::warn!(dev = a.dev.0, error = %e, "resetting with packets queued");
        }
        kernel::irq_set_mask(a.dev, 0)?;
        kernel::set_carrier(a.dev, false)?;
        kernel::rings_free(a.dev)?;
        a.up = false;
    }
    reprogram(a)?;
    a.wd.resets += 1;
    if was_up {
        open(a)?;
    }
    Ok(())
}

/// What brings the device back to the adapter's configuration after a configuration call
/// that died crossing the split, short of the full [`reset_task`] (which resets the MAC
/// and renegotiates the link: over 100 ms without traffic, and frames the peer sends
/// meanwhile are missed at the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// A ring resize died: resize again to the adapter's sizes ([`repair_rings`]).
    Rings,
    /// A coalescing change died: program the adapter's moderation again
    /// ([`repair_coalesce`]).
    Coalesce,
}

impl Repair {
    /// Runs the repair.
    pub fn run(self, a: &mut Adapter) -> Result<(), DriverError> {
        match self {
            Repair::Rings => repair_rings(a),
            Repair::Coalesce => repair_coalesce(a),
        }
    }
}

/// Brings the rings back to the adapter's sizes after a resize that died midway (transmit
/// frozen, the receive ring parked, the receiver off, or the rings already swapped to the
/// sizes the failed request asked for): resizes again, live, to the adapter's sizes, and
/// turns the receiver on. Like a resize, it loses no accepted frame.
#[upcall]
pub fn repair_rings(a: &mut Adapter) -> Result<(), DriverError> {
    kernel::rx_capture(a.dev, false)?;
    if !a.up {
        return Ok(());
    }
    resize_live(a)?;
    a.rmw(RCTL, 0, rctl::EN).map(|_| ())
}

/// Programs the adapter's interrupt moderation again (the kernel half's hot parameters
/// and the delay registers) after a coalescing change that died midway.
#[upcall]
pub fn repair_coalesce(a: &mut Adapter) -> Result<(), DriverError> {
    kernel::set_hot_params(a.dev, &hot_params(a))?;
    apply_coalesce(a)
}

/// Resets the (closed) device and programs it again from the adapter, receive filters
/// included (a device reset while closed must not come back with RA[1..], the MTA and the
/// VLAN filter empty). The statistics registers are collected first: the reset clears
/// them (SDM 13.7).
fn reprogram(a: &mut Adapter) -> Result<(), DriverError> {
    if let Err(e) = crate::stats::update(a) {
        tracing::warn!(dev = a.dev.0, error = %e, "statistics before reset lost");
    }
    crate::probe::reset_hw(a)?;
    a.link = a.link.unknown();
    init_hw(a)?;
    set_rx_mode(a)?;
    apply_vlans(a)
}

/// Runs `f` with the interface closed, reopening it afterwards if it was up.
fn with_down(
    a: &mut Adapter,
    f: impl FnOnce(&mut Adapter) -> Result<(), DriverError>,
) -> Result<(), DriverError> {
    let was_up = a.up;
    if was_up {
        close(a)?;
    }
    let r = f(a);
    if was_up {
        open(a)?;
    }
    r
}

/// Re-initialises a running interface (close, then open with the adapter's
/// configuration), as Linux's e1000 does when a receive feature changes; a closed one is
/// left closed (open programs it).
pub fn reinit(a: &mut Adapter) -> Result<(), DriverError> {
    with_down(a, |_| Ok(()))
}

/// Resizes the rings (ethtool -G). While up, nothing the driver accepted is lost, and the
/// receiver keeps running so nothing the NIC accepted is dropped either:
///
/// 1. transmit is frozen (xmit answers `Busy`, the stack retries) and drains;
/// 2. the receive ring is parked: refilled only up to its end, so the NIC fills it to
///    index 0 and then holds further frames in its packet buffer (SDM 13.7.33, RNBC; when
///    the buffer fills past FCRTH it sends XOFF, so a partner honouring flow control
///    waits); the kernel half delivers everything the NIC completed;
/// 3. with the NIC owning no descriptor (head = tail = 0), the kernel half points RDBA and
///    RDLEN at the new ring and gives it buffers: the NIC continues from the new ring's
///    index 0, with what its packet buffer held. RDH is never written while the receiver
///    runs (SDM 13.4.28).
///
/// Step 3 needs traffic to bring the NIC to the ring's end. On a link that stays idle (no
/// progress for [`RESIZE_IDLE_MS`], or not there after [`RESIZE_WAIT_MS`]) the receiver is
/// disabled for the swap instead (as close does: XOFF first, then wait for the FIFO to
/// drain into the ring), but only once the packet buffer is seen empty (RDFPC): a NIC that
/// owns descriptors yet holds frames it has not moved (DMA stalled) would lose them. If it
/// still holds some after [`RESIZE_WAIT_MS`], the resize fails and changes nothing.
#[upcall]
pub fn set_ringparam(a: &mut Adapter, p: &RingParam) -> Result<(), DriverError> {
    kernel::check_ring_size("receive ring size", p.rx)?;
    kernel::check_ring_size("transmit ring size", p.tx)?;
    let old = (a.conf.rx_ring, a.conf.tx_ring);
    (a.conf.rx_ring, a.conf.tx_ring) = (p.rx, p.tx);
    if !a.up {
        return Ok(());
    }
    let r = resize_live(a);
    if r.is_err() {
        (a.conf.rx_ring, a.conf.tx_ring) = old;
        kernel::ring_quiesce(a.dev, false, false)?;
    }
    r
}

/// How long a parked receive ring may make no progress before the link counts as idle.
pub const RESIZE_IDLE_MS: u64 = 100;
/// How long a resize waits for the receive ring to reach its end.
pub const RESIZE_WAIT_MS: u64 = 2000;

fn resize_live(a: &Adapter) -> Result<(), DriverError> {
    use std::time::{Duration, Instant};
    tx_drain(a, 2000)?;
    let start = Instant::now();
    let (mut owned, mut moved) = (u32::MAX, Instant::now());
    loop {
        let (tx, rx) = kernel::ring_quiesce(a.dev, true, true)?;
        if tx == 0 && rx == 0 {
            return kernel::rings_alloc(a.dev, &ring_request(a)).map(|_| ());
        }
        if rx != owned {
            (owned, moved) = (rx, Instant::now());
        }
        let idle = moved.elapsed() > Duration::from_millis(RESIZE_IDLE_MS);
        let late = start.elapsed() > Duration::from_millis(RESIZE_WAIT_MS);
        if idle || late {
            // The NIC owns descriptors and filled none of them for a while: the link looks
            // idle. It is only if the packet buffer is empty too (XOFF first, so that the
            // partner stops): frames the NIC holds without moving them (its DMA stalled,
            // or a device model's thread not scheduled) would be dropped by turning the
            // receiver off. Then wait on, and give up the resize (the rings stay as they
            // were, nothing lost) rather than drop them.
            quiesce_rx(a)?;
            let held = a.rd(RDFPC)?;
            if held == 0 {
                break;
            }
            if late {
                return Err(DriverError::timeout(
                    "the NIC to move the frames its packet buffer holds (resize)",
                    RESIZE_WAIT_MS,
                ));
            }
            tracing::info!(
                dev = a.dev.0,
                held,
                "resize: no receive progress, but the packet buffer holds frames: waiting on"
            );
            moved = Instant::now();
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    // Idle link: swap with the receiver off.
    tracing::info!(
        dev = a.dev.0,
        still_owned = owned,
        waited = ?start.elapsed(),
        "resize: the receive ring made no progress; swapping with the receiver off"
    );
    let rctl = a.rd(RCTL)?;
    a.wr(RCTL, rctl & !rctl::EN)?;
    let r = kernel::ring_quiesce(a.dev, true, true)
        .and_then(|_| kernel::rings_alloc(a.dev, &ring_request(a)));
    a.wr(RCTL, rctl)?;
    r.map(|_| ())
}

/// Current ring sizes.
pub fn get_ringparam(a: &Adapter) -> RingParam {
    RingParam {
        rx: a.conf.rx_ring,
        tx: a.conf.tx_ring,
        rx_max: kernel::MAX_RING,
        tx_max: kernel::MAX_RING,
    }
}

/// Changes the MTU (68..=16110; above 1500 the receiver takes long packets into 4 KiB
/// buffers that frames span). As Linux's e1000, with the interface down the device is
/// reset and programmed again, which puts the packet buffer split and flow-control
/// thresholds for the new frame size into effect ([`crate::fifo`]).
#[upcall]
pub fn change_mtu(a: &mut Adapter, mtu: u32) -> Result<(), DriverError> {
    if !(MIN_MTU..=MAX_MTU).contains(&mtu) {
        return Err(DriverError::invalid(
            "MTU",
            format!("{mtu}: use {MIN_MTU}..={MAX_MTU}"),
        ));
    }
    let old = a.conf.mtu;
    with_down(a, |a| {
        a.conf.mtu = mtu;
        let r = reprogram(a);
        if r.is_err() {
            a.conf.mtu = old;
        }
        r
    })
}

/// Sets the MAC address (`RA[0]`).
#[upcall]
pub fn set_mac(a: &mut Adapter, mac: [u8; 6]) -> Result<(), DriverError> {
    check_mac(mac)?;
    a.mac = mac;
    write_ra(a, 0, Some(mac))
}

/// Sets the receive filtering and programs it.
#[upcall]
pub fn set_rx_mode_to(a: &mut Adapter, mode: &crate::adapter::RxMode) -> Result<(), DriverError> {
    for m in &mode.multicast {
        if m[0] & 1 == 0 {
            return Err(DriverError::invalid(
                "multicast address",
                format!("{m:02x?} is not a multicast address"),
            ));
        }
    }
    for m in &mode.unicast {
        check_mac(*m)?;
    }
    a.conf.rx_mode = mode.clone();
    set_rx_mode(a)
}

/// Programs receive filtering (SDM 13.4 RCTL, RA, MTA), as Linux's e1000 does:
///
/// * `RA[1..16]` take the extra unicast addresses first, then as many multicast groups as
///   still fit (an exact match never lets an unlisted group through); the groups left over
///   are hashed into the MTA with RCTL.MO = 0 (bits 47:36).
/// * UPE for promiscuous or more unicast addresses than `RA[1..16]` holds (the unicast
///   entries are then left to the multicast groups); MPE for promiscuous or all-multicast.
/// * Promiscuous mode also turns the VLAN filter off, so tagged frames of every VLAN
///   arrive (see [`apply_vlans`]).
pub fn set_rx_mode(a: &Adapter) -> Result<(), DriverError> {
    let m = &a.conf.rx_mode;
    let spare = RA_LEN as usize - 1;
    let upe = m.promisc || m.unicast.len() > spare;
    let mpe = m.promisc || m.allmulti;
    let mut set = 0;
    if upe {
        set |= rctl::UPE;
    }
    if mpe {
        set |= rctl::MPE;
    }
    if vlan_filtering(a) {
        set |= rctl::VFE;
    }
    a.rmw(RCTL, rctl::UPE | rctl::MPE | rctl::MO_MASK | rctl::VFE, set)?;
    let unicast = if upe { &[][..] } else { &m.unicast[..] };
    let in_ra = m.multicast.len().min(spare - unicast.len());
    let (exact, hashed) = m.multicast.split_at(in_ra);
    let mut entries = unicast.iter().chain(exact);
    for n in 1..RA_LEN {
        write_ra(a, n, entries.next().copied())?;
    }
    let mut mta = [0u32; MTA_LEN as usize];
    for mac in hashed {
        let h = u32::from(mta_hash(*mac, 0));
        mta[(h >> 5) as usize] |= 1 << (h & 31);
    }
    for (i, v) in mta.iter().enumerate() {
        a.wr(MTA + 4 * i as u32, *v)?;
    }
    Ok(())
}

/// Turns RCTL.VFE on or off as [`vlan_filtering`] says.
fn set_vfe(a: &Adapter) -> Result<(), DriverError> {
    let vfe = if vlan_filtering(a) { rctl::VFE } else { 0 };
    a.rmw(RCTL, rctl::VFE, vfe)?;
    Ok(())
}

/// Whether the VLAN filter is on: some VLAN ids are configured and the interface is not
/// promiscuous (promiscuous means every VLAN too, as on Linux).
fn vlan_filtering(a: &Adapter) -> bool {
    !a.conf.vlans.is_empty() && !a.conf.rx_mode.promisc
}

fn write_vfta_word(a: &Adapter, idx: u32) -> Result<(), DriverError> {
    let v = a
        .conf
        .vlans
        .iter()
        .filter(|&&vid| u32::from(vid) >> 5 == idx)
        .fold(0u32, |acc, &vid| acc | 1 << (vid & 31));
    a.wr(VFTA + 4 * idx, v)
}

/// Programs the VLAN filter (VFTA; RCTL.VFE while [`vlan_filtering`]) and tag offload
/// (CTRL.VME).
pub fn apply_vlans(a: &Adapter) -> Result<(), DriverError> {
    for idx in 0..VFTA_LEN {
        write_vfta_word(a, idx)?;
    }
    set_vfe(a)?;
    let vme = if a.conf.vlan_offload { ctrl::VME } else { 0 };
    a.rmw(CTRL, ctrl::VME, vme)?;
    Ok(())
}

fn check_vid(vid: u16) -> Result<(), DriverError> {
    if vid == 0 || vid >= 4095 {
        return Err(DriverError::invalid(
            "VLAN id",
            format!("{vid}: use 1..=4094"),
        ));
    }
    Ok(())
}

/// Adds a VLAN id to the filter (VFTA bit `vid & 31` of entry `vid >> 5`; RCTL.VFE on).
#[upcall]
pub fn vlan_add(a: &mut Adapter, vid: u16) -> Result<(), DriverError> {
    check_vid(vid)?;
    if let Err(pos) = a.conf.vlans.binary_search(&vid) {
        a.conf.vlans.insert(pos, vid);
    }
    write_vfta_word(a, u32::from(vid) >> 5)?;
    set_vfe(a)
}

/// Removes a VLAN id from the filter (RCTL.VFE off when none remain).
#[upcall]
pub fn vlan_kill(a: &mut Adapter, vid: u16) -> Result<(), DriverError> {
    check_vid(vid)?;
    if let Ok(pos) = a.conf.vlans.binary_search(&vid) {
        a.conf.vlans.remove(pos);
    }
    write_vfta_word(a, u32::from(vid) >> 5)?;
    set_vfe(a)
}

/// Turns VLAN tag stripping/insertion (CTRL.VME) on or off.
#[upcall]
pub fn set_vlan_offload(a: &mut Adapter, on: bool) -> Result<(), DriverError> {
    a.conf.vlan_offload = on;
    a.rmw(CTRL, ctrl::VME, if on { ctrl::VME } else { 0 })?;
    kernel::set_hot_params(a.dev, &hot_params(a))
}
