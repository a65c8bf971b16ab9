//! The internal copper PHY reached through MDIC (8254x SDM ch. 13 "PHY Registers"), with an
//! auto-negotiation that takes time.

use std::time::{Duration, Instant};

use crate::regs::phy::{anar, bmcr, bmsr, gcr, gsr, pscr, pssr};
use crate::regs::phy::{
    ANAR, ANER, ANLPAR, BMCR, BMSR, EPSCR, EXT_STATUS, GCR, GSR, LED_CTRL, NPTX, PHYID1, PHYID2,
    PIER, PISR, PSCR, PSSR, RX_ERR_CNT,
};

/// Link speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speed {
    /// 10 Mb/s.
    M10,
    /// 100 Mb/s.
    M100,
    /// 1000 Mb/s.
    M1000,
}

/// What the PHY resolved when the link came up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// Speed.
    pub speed: Speed,
    /// Full duplex.
    pub full_duplex: bool,
}

/// A manual MASTER-SLAVE setting (IEEE 802.3 40.5.1.1), or automatic resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MasterSlave {
    /// Resolved automatically (port type, then random seeds).
    #[default]
    Auto,
    /// Manually configured MASTER.
    Master,
    /// Manually configured SLAVE.
    Slave,
}

/// An MDI crossover setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Crossover {
    /// Automatic crossover: adapts to the other end.
    #[default]
    Auto,
    /// Fixed MDI.
    Mdi,
    /// Fixed MDI-X.
    MdiX,
}

/// The link partner at the other end of a straight-through cable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkPartner {
    /// Its base page technology and pause bits as they appear in ANLPAR (the selector and
    /// ACK are added by the model).
    pub ability: u16,
    /// 1000BASE-T full duplex capable.
    pub fd1000: bool,
    /// 1000BASE-T half duplex capable.
    pub hd1000: bool,
    /// Its MASTER-SLAVE configuration.
    pub master_slave: MasterSlave,
    /// Its crossover setting.
    pub crossover: Crossover,
    /// The cable length in metres (what the M88's 1000BASE-T DSP estimates).
    pub cable_m: u32,
    /// The receive pair's polarity is reversed (wiring fault the PHY corrects).
    pub polarity_reversed: bool,
}

impl Default for LinkPartner {
    fn default() -> Self {
        Self {
            ability: LP_ABILITY & !(anar::SELECTOR_8023 | anar::ACK),
            fd1000: true,
            hd1000: true,
            master_slave: MasterSlave::Auto,
            crossover: Crossover::Auto,
            cable_m: 20,
            polarity_reversed: false,
        }
    }
}

/// The M88 PSSR cable-length code for a cable of `m` metres.
fn cable_code(m: u32) -> u16 {
    match m {
        0..=49 => 0,
        50..=79 => 1,
        80..=109 => 2,
        110..=139 => 3,
        _ => 4,
    }
}

const BMCR_DEFAULT: u16 = bmcr::AN_ENABLE | bmcr::FD | bmcr::SPEED_MSB;
const BMSR_BASE: u16 = bmsr::CAP_100FD
    | bmsr::CAP_100HD
    | bmsr::CAP_10FD
    | bmsr::CAP_10HD
    | bmsr::EXT_STATUS
    | bmsr::MF_PREAMBLE_SUPPR
    | bmsr::AN_ABILITY
    | bmsr::EXT_CAP;
const ANAR_DEFAULT: u16 =
    anar::SELECTOR_8023 | anar::HD10 | anar::FD10 | anar::HD100 | anar::FD100 | anar::PAUSE;
const GCR_DEFAULT: u16 = gcr::FD1000 | gcr::HD1000;
/// Automatic crossover for all modes and CRS on transmit: the M88 power-on value.
const PSCR_DEFAULT: u16 = 0x0068;
/// Link partner (the simulated peer): everything 10/100, pause, acknowledged.
const LP_ABILITY: u16 = anar::SELECTOR_8023
    | anar::HD10
    | anar::FD10
    | anar::HD100
    | anar::FD100
    | anar::PAUSE
    | anar::ACK;

/// The PHY's state.
#[derive(Debug, Clone)]
pub struct Phy {
    id1: u16,
    id2: u16,
    regs: [u16; 32],
    /// Auto-negotiation (or forced link bring-up) completes at this instant.
    link_at: Option<Instant>,
    link: Option<Resolved>,
    /// BMSR.LINK latches low until BMSR is read.
    latched_low: bool,
    an_time: Duration,
    partner: LinkPartner,
    /// The PSCR value in effect: the M88 applies crossover and polarity settings at a
    /// software reset (BMCR.RESET), not when PSCR is written.
    active_pscr: u16,
    /// Our MDI crossover state on the current link (true = MDI-X).
    mdix: bool,
    /// MASTER-SLAVE resolution of the current 1000BASE-T link (true = MASTER).
    master: bool,
    /// The last negotiation ended in a MASTER-SLAVE configuration fault.
    ms_fault: bool,
    /// GSR.MS_CONFIG_FAULT latched since the last GSR read.
    ms_fault_latched: bool,
    /// 1000BASE-T idle errors since the last GSR read (saturating at 0xFF).
    idle_errors: u8,
}

impl Phy {
    /// A PHY with identifier `id` (`PHYID1 << 16 | PHYID2`) whose auto-negotiation takes
    /// `an_time`.
    pub fn new(id: u32, an_time: Duration) -> Self {
        let mut p = Self {
            id1: (id >> 16) as u16,
            id2: id as u16,
            regs: [0; 32],
            link_at: None,
            link: None,
            latched_low: true,
            an_time,
            partner: LinkPartner::default(),
            active_pscr: PSCR_DEFAULT,
            mdix: false,
            master: false,
            ms_fault: false,
            ms_fault_latched: false,
            idle_errors: 0,
        };
        p.reset_regs();
        p
    }

    fn reset_regs(&mut self) {
        self.regs = [0; 32];
        self.regs[BMCR as usize] = BMCR_DEFAULT;
        self.regs[ANAR as usize] = ANAR_DEFAULT;
        self.regs[GCR as usize] = GCR_DEFAULT;
        self.regs[EXT_STATUS as usize] = 0x3000; // 1000BASE-T FD and HD capable
        self.regs[PSCR as usize] = PSCR_DEFAULT;
        self.active_pscr = PSCR_DEFAULT;
        self.regs[EPSCR as usize] = 0x0C60;
        self.regs[LED_CTRL as usize] = 0x4100;
        self.link = None;
        self.latched_low = true;
    }

    /// Current resolved link, if up.
    pub fn link(&self) -> Option<Resolved> {
        self.link
    }

    /// Whether BMCR.POWER_DOWN is set: no link, no link-change detection.
    pub fn powered_down(&self) -> bool {
        self.regs[BMCR as usize] & bmcr::POWER_DOWN != 0
    }

    /// Whether BMCR.LOOPBACK is set.
    pub fn loopback(&self) -> bool {
        self.regs[BMCR as usize] & bmcr::LOOPBACK != 0
    }

    /// The next instant at which the PHY needs [`tick`](Phy::tick).
    pub fn deadline(&self) -> Option<Instant> {
        self.link_at
    }

    /// Hardware reset (CTRL.PHY_RST released, power-on). Link drops; auto-negotiation
    /// restarts if `wire_up`.
    pub fn hard_reset(&mut self, now: Instant, wire_up: bool) {
        self.reset_regs();
        self.link_at = None;
        self.restart(now, wire_up);
    }

    /// Holds the PHY in reset: no link.
    pub fn hold_reset(&mut self) {
        self.link_at = None;
        if self.link.take().is_some() {
            self.latched_low = true;
        }
    }

    fn restart(&mut self, now: Instant, wire_up: bool) {
        if self.link.take().is_some() {
            self.latched_low = true;
        }
        self.regs[ANLPAR as usize] = 0;
        self.ms_fault = false;
        let loopback = self.loopback();
        let power_down = self.regs[BMCR as usize] & bmcr::POWER_DOWN != 0;
        self.link_at = if power_down || !(wire_up || loopback) {
            None
        } else if loopback {
            // Loopback does not negotiate: the link is "up" at the forced speed at once.
            Some(now)
        } else {
            Some(now + self.an_time)
        };
    }

    /// The wire's carrier changed.
    pub fn wire_changed(&mut self, now: Instant, wire_up: bool) {
        if wire_up {
            if self.link.is_none() && self.link_at.is_none() {
                self.restart(now, true);
            }
        } else if !self.loopback() {
            self.link_at = None;
            if self.link.take().is_some() {
                self.latched_low = true;
            }
            self.regs[ANLPAR as usize] = 0;
            self.ms_fault = false;
        }
    }

    /// Replaces the link partner. A partner that changes its abilities renegotiates, so a
    /// link (or a negotiation in progress) restarts.
    pub fn set_partner(&mut self, partner: LinkPartner, now: Instant, wire_up: bool) {
        self.partner = partner;
        if wire_up && (self.link.is_some() || self.link_at.is_some() || self.ms_fault) {
            self.link_at = None;
            self.restart(now, true);
        }
    }

    /// The link partner.
    pub fn partner(&self) -> LinkPartner {
        self.partner
    }

    /// Counts `n` 1000BASE-T idle errors (GSR bits 7:0 saturate at 0xFF).
    pub fn add_idle_errors(&mut self, n: u32) {
        let sum = u32::from(self.idle_errors).saturating_add(n).min(0xFF);
        self.idle_errors = sum as u8;
    }

    /// Our crossover setting as the PSCR in effect selects it: automatic for 1000BASE-T
    /// only counts as automatic at 1000 Mb/s and as MDI below.
    fn crossover(&self, gigabit: bool) -> Crossover {
        match self.active_pscr & pscr::MDIX_MASK {
            pscr::MDI_MANUAL => Crossover::Mdi,
            pscr::MDIX_MANUAL => Crossover::MdiX,
            pscr::AUTO_X_1000T if !gigabit => Crossover::Mdi,
            _ => Crossover::Auto,
        }
    }

    /// Our MDI-X state on a straight-through cable to the partner, or `None` when both
    /// ends transmit on the same pairs (no link). Two automatic ends settle on MDI here
    /// (hardware picks at random).
    fn resolve_crossover(&self, gigabit: bool) -> Option<bool> {
        match (self.crossover(gigabit), self.partner.crossover) {
            (Crossover::Mdi, Crossover::Mdi) | (Crossover::MdiX, Crossover::MdiX) => None,
            (Crossover::Mdi, _) => Some(false),
            (Crossover::MdiX, _) => Some(true),
            (Crossover::Auto, Crossover::Mdi) => Some(true),
            (Crossover::Auto, Crossover::MdiX | Crossover::Auto) => Some(false),
        }
    }

    /// MASTER-SLAVE resolution (IEEE 802.3 40.5.1.1): `Some(true)` when we are MASTER,
    /// `None` on a configuration fault (both ends manually the same).
    fn resolve_master(&self) -> Option<bool> {
        let g = self.regs[GCR as usize];
        let ours = (g & gcr::MS_ENABLE != 0).then_some(g & gcr::MS_VALUE != 0);
        let theirs = match self.partner.master_slave {
            MasterSlave::Auto => None,
            MasterSlave::Master => Some(true),
            MasterSlave::Slave => Some(false),
        };
        match (ours, theirs) {
            (Some(a), Some(b)) if a == b => None,
            (Some(a), _) => Some(a),
            (None, Some(b)) => Some(!b),
            // Both automatic: a multiport device is MASTER against the single-port
            // partner; between equals the seeds decide (here: SLAVE).
            (None, None) => Some(g & gcr::PORT_TYPE != 0),
        }
    }

    /// Advances time; returns true if the link state changed.
    pub fn tick(&mut self, now: Instant) -> bool {
        match self.link_at {
            Some(t) if now >= t => {
                self.link_at = None;
                let ctl = self.regs[BMCR as usize];
                let resolved = if ctl & bmcr::AN_ENABLE != 0 && !self.loopback() {
                    self.negotiate()
                } else {
                    let speed = match (ctl & bmcr::SPEED_MSB != 0, ctl & bmcr::SPEED_LSB != 0) {
                        (true, _) => Speed::M1000,
                        (false, true) => Speed::M100,
                        (false, false) => Speed::M10,
                    };
                    let up = self.loopback() || {
                        let x = self.resolve_crossover(speed == Speed::M1000);
                        self.mdix = x.unwrap_or(false);
                        x.is_some()
                    };
                    up.then_some(Resolved {
                        speed,
                        full_duplex: ctl & bmcr::FD != 0,
                    })
                };
                let changed = resolved != self.link;
                self.link = resolved;
                changed
            }
            _ => false,
        }
    }

    /// Auto-negotiation with the partner: crossover, the highest common denominator
    /// (IEEE 802.3 Annex 28B.3 priority) and, at 1000 Mb/s, MASTER-SLAVE resolution.
    fn negotiate(&mut self) -> Option<Resolved> {
        let p = self.partner;
        // Without a working crossover no link pulses reach the partner: nothing happens.
        let x = self.resolve_crossover(true)?;
        self.regs[ANLPAR as usize] = p.ability | anar::SELECTOR_8023 | anar::ACK;
        let adv = self.regs[ANAR as usize] & p.ability;
        let g = self.regs[GCR as usize];
        let common_1000 = [
            (g & gcr::FD1000 != 0 && p.fd1000, true),
            (g & gcr::HD1000 != 0 && p.hd1000, false),
        ];
        let hcd = if let Some(&(_, fd)) = common_1000.iter().find(|(ok, _)| *ok) {
            Resolved {
                speed: Speed::M1000,
                full_duplex: fd,
            }
        } else {
            let (speed, full_duplex) = [
                (anar::FD100, Speed::M100, true),
                (anar::HD100, Speed::M100, false),
                (anar::FD10, Speed::M10, true),
                (anar::HD10, Speed::M10, false),
            ]
            .into_iter()
            .find(|(bit, ..)| adv & bit != 0)
            .map(|(_, s, fd)| (s, fd))?;
            Resolved { speed, full_duplex }
        };
        // Automatic 1000BASE-T-only crossover is MDI below 1000 Mb/s.
        let x = if hcd.speed == Speed::M1000 {
            x
        } else {
            self.resolve_crossover(false)?
        };
        if hcd.speed == Speed::M1000 {
            match self.resolve_master() {
                Some(m) => self.master = m,
                None => {
                    self.ms_fault = true;
                    self.ms_fault_latched = true;
                    return None;
                }
            }
        }
        self.mdix = x;
        Some(hcd)
    }

    /// The 1000BASE-T status register; reading it clears the idle error count and the
    /// latched MASTER-SLAVE fault (which a persisting fault sets again at once).
    fn read_gsr(&mut self) -> u16 {
        let mut v = 0;
        if self.regs[ANLPAR as usize] & anar::ACK != 0 {
            if self.partner.fd1000 {
                v |= gsr::LP_FD1000;
            }
            if self.partner.hd1000 {
                v |= gsr::LP_HD1000;
            }
        }
        if self.ms_fault_latched || self.ms_fault {
            v |= gsr::MS_CONFIG_FAULT;
        }
        if self.link.is_some_and(|l| l.speed == Speed::M1000) {
            v |= gsr::LOCAL_RX_OK | gsr::REMOTE_RX_OK;
            if self.master {
                v |= gsr::MS_CONFIG_RES;
            }
        }
        v |= u16::from(std::mem::take(&mut self.idle_errors));
        self.ms_fault_latched = false;
        v
    }

    /// MDIO register read.
    pub fn read(&mut self, reg: u32) -> u16 {
        let r = reg as usize & 31;
        match reg {
            BMSR => {
                let mut v = BMSR_BASE;
                let an_on = self.regs[BMCR as usize] & bmcr::AN_ENABLE != 0;
                if self.link.is_some() {
                    if !self.latched_low {
                        v |= bmsr::LINK;
                    }
                    if an_on && !self.loopback() {
                        v |= bmsr::AN_COMPLETE;
                    }
                }
                // Reading BMSR releases the latched-low link bit.
                self.latched_low = false;
                v
            }
            PHYID1 => self.id1,
            PHYID2 => self.id2,
            ANER => {
                if self.link.is_some() {
                    0x0001 // link partner is auto-negotiation able
                } else {
                    0
                }
            }
            PSSR => match self.link {
                Some(l) => {
                    let sp = match l.speed {
                        Speed::M1000 => pssr::SPEED_1000,
                        Speed::M100 => pssr::SPEED_100,
                        Speed::M10 => 0,
                    };
                    let mut v = sp | pssr::RESOLVED | pssr::LINK;
                    if l.full_duplex {
                        v |= pssr::FD;
                    }
                    if self.mdix {
                        v |= pssr::MDIX;
                    }
                    if self.partner.polarity_reversed
                        && self.active_pscr & pscr::POLARITY_REVERSAL_DISABLE == 0
                    {
                        v |= pssr::REV_POLARITY;
                    }
                    if l.speed == Speed::M1000 {
                        v |= cable_code(self.partner.cable_m) << pssr::CABLE_LENGTH_SHIFT;
                    }
                    v
                }
                None => 0,
            },
            GSR => self.read_gsr(),
            PISR => std::mem::take(&mut self.regs[r]),
            RX_ERR_CNT => 0,
            _ => self.regs[r],
        }
    }

    /// MDIO register write.
    pub fn write(&mut self, reg: u32, v: u16, now: Instant, wire_up: bool) {
        let r = reg as usize & 31;
        match reg {
            BMCR => {
                if v & bmcr::RESET != 0 {
                    // Software reset: self-clearing; restores defaults except that the
                    // new BMCR value's configuration bits take effect (IEEE 22.2.4.1.1).
                    // The M88 keeps its specific control registers across a software
                    // reset and applies them (crossover, polarity) only then.
                    let keep =
                        [ANAR, GCR, PSCR, EPSCR, LED_CTRL].map(|k| (k, self.regs[k as usize]));
                    self.reset_regs();
                    for (k, v) in keep {
                        self.regs[k as usize] = v;
                    }
                    self.active_pscr = self.regs[PSCR as usize];
                    self.regs[BMCR as usize] = v & !(bmcr::RESET | bmcr::RESTART_AN);
                    self.link_at = None;
                    self.restart(now, wire_up);
                    return;
                }
                let old = self.regs[BMCR as usize];
                self.regs[BMCR as usize] = v & !bmcr::RESTART_AN;
                let cfg_mask = bmcr::AN_ENABLE
                    | bmcr::LOOPBACK
                    | bmcr::POWER_DOWN
                    | bmcr::SPEED_LSB
                    | bmcr::SPEED_MSB
                    | bmcr::FD;
                if v & bmcr::RESTART_AN != 0 || (old ^ v) & cfg_mask != 0 {
                    self.restart(now, wire_up);
                }
            }
            BMSR | PHYID1 | PHYID2 | ANLPAR | ANER | GSR | EXT_STATUS | PSSR | PISR
            | RX_ERR_CNT => {}
            ANAR | NPTX | GCR | PSCR | PIER | EPSCR | LED_CTRL => self.regs[r] = v,
            _ => self.regs[r] = v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autoneg_takes_time_and_resolves_1000fd() {
        // 8254x SDM ch. 13 "PHY Registers": PHY Control and Status, auto-negotiation.
        let t0 = Instant::now();
        let mut p = Phy::new(0x0141_0C20, Duration::from_millis(10));
        p.hard_reset(t0, true);
        assert!(!p.tick(t0));
        assert_eq!(p.read(BMSR) & bmsr::LINK, 0);
        assert!(p.tick(t0 + Duration::from_millis(10)));
        assert_eq!(
            p.link(),
            Some(Resolved {
                speed: Speed::M1000,
                full_duplex: true
            })
        );
        let s = p.read(BMSR);
        assert_eq!(
            s & (bmsr::LINK | bmsr::AN_COMPLETE),
            bmsr::LINK | bmsr::AN_COMPLETE
        );
        assert_eq!(p.read(PHYID1), 0x0141);
        assert_eq!(p.read(PHYID2), 0x0C20);
    }

    fn up(p: &mut Phy, t: Instant) -> Instant {
        let t = t + Duration::from_millis(10);
        p.tick(t);
        t
    }

    #[test]
    fn crossover_mode_applies_at_software_reset() {
        // M88: PSCR crossover settings take effect at BMCR.RESET; PSSR bit 6 = MDI-X.
        let t0 = Instant::now();
        let mut p = Phy::new(0x0141_0C20, Duration::from_millis(10));
        p.hard_reset(t0, true);
        let t = up(&mut p, t0);
        assert_eq!(p.read(PSSR) & pssr::MDIX, 0, "auto against auto: MDI");
        p.write(PSCR, pscr::MDIX_MANUAL, t, true);
        p.write(BMCR, bmcr::AN_ENABLE | bmcr::RESTART_AN, t, true);
        let t = up(&mut p, t);
        assert_eq!(p.read(PSSR) & pssr::MDIX, 0, "not applied before a reset");
        p.write(BMCR, bmcr::RESET | bmcr::AN_ENABLE, t, true);
        assert_eq!(p.read(PSCR), pscr::MDIX_MANUAL, "PSCR survives the reset");
        let t = up(&mut p, t);
        assert_ne!(p.read(PSSR) & pssr::MDIX, 0);
        // Both ends fixed MDI-X on a straight cable: no link.
        p.set_partner(
            LinkPartner {
                crossover: Crossover::MdiX,
                ..LinkPartner::default()
            },
            t,
            true,
        );
        up(&mut p, t);
        assert_eq!(p.link(), None);
    }

    #[test]
    fn master_slave_fault_and_gsr_fields() {
        // IEEE 802.3 40.5.1.1: both ends manual MASTER is a configuration fault (10.15,
        // latching high); one manual end decides both.
        let t0 = Instant::now();
        let mut p = Phy::new(0x0141_0C20, Duration::from_millis(10));
        p.hard_reset(t0, true);
        p.set_partner(
            LinkPartner {
                master_slave: MasterSlave::Master,
                cable_m: 95,
                polarity_reversed: true,
                ..LinkPartner::default()
            },
            t0,
            true,
        );
        p.write(GCR, gcr::FD1000 | gcr::MS_ENABLE | gcr::MS_VALUE, t0, true);
        p.write(BMCR, bmcr::AN_ENABLE | bmcr::RESTART_AN, t0, true);
        let t = up(&mut p, t0);
        assert_eq!(p.link(), None);
        assert_ne!(p.read(GSR) & gsr::MS_CONFIG_FAULT, 0);
        assert_ne!(p.read(GSR) & gsr::MS_CONFIG_FAULT, 0, "fault persists");
        p.write(GCR, gcr::FD1000, t, true);
        p.write(BMCR, bmcr::AN_ENABLE | bmcr::RESTART_AN, t, true);
        up(&mut p, t);
        assert!(p.link().is_some());
        p.add_idle_errors(300);
        let g = p.read(GSR);
        assert_eq!(g & gsr::MS_CONFIG_FAULT, 0);
        assert_eq!(g & gsr::MS_CONFIG_RES, 0, "partner is MASTER: we are SLAVE");
        assert_eq!(g & gsr::IDLE_ERR_MASK, 0xFF, "saturates");
        assert_eq!(p.read(GSR) & gsr::IDLE_ERR_MASK, 0, "cleared on read");
        let s = p.read(PSSR);
        assert_eq!((s & pssr::CABLE_LENGTH_MASK) >> pssr::CABLE_LENGTH_SHIFT, 2);
        assert_ne!(s & pssr::REV_POLARITY, 0);
    }
}
