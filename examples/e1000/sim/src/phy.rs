//! The internal copper PHY reached through MDIC (8254x SDM ch. 13 "PHY Registers"), with an
//! auto-negotiation that takes time.

use std::time::{Duration, Instant};

use crate::regs::phy::{anar, bmcr, bmsr, gcr, gsr, pssr};
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
        self.regs[PSCR as usize] = 0x0068; // auto MDI/MDIX, typical M88 default
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
        self.regs[GSR as usize] = 0;
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
            self.regs[GSR as usize] = 0;
        }
    }

    /// Advances time; returns true if the link state changed.
    pub fn tick(&mut self, now: Instant) -> bool {
        match self.link_at {
            Some(t) if now >= t => {
                self.link_at = None;
                let ctl = self.regs[BMCR as usize];
                let resolved = if ctl & bmcr::AN_ENABLE != 0 && !self.loopback() {
                    self.regs[ANLPAR as usize] = LP_ABILITY;
                    self.regs[GSR as usize] =
                        gsr::LP_FD1000 | gsr::LP_HD1000 | gsr::LOCAL_RX_OK | gsr::REMOTE_RX_OK;
                    // Highest common denominator (IEEE 802.3 Annex 28B.3 priority).
                    let adv = self.regs[ANAR as usize];
                    let g = self.regs[GCR as usize];
                    if g & gcr::FD1000 != 0 {
                        Some(Resolved {
                            speed: Speed::M1000,
                            full_duplex: true,
                        })
                    } else if g & gcr::HD1000 != 0 {
                        Some(Resolved {
                            speed: Speed::M1000,
                            full_duplex: false,
                        })
                    } else if adv & anar::FD100 != 0 {
                        Some(Resolved {
                            speed: Speed::M100,
                            full_duplex: true,
                        })
                    } else if adv & anar::HD100 != 0 {
                        Some(Resolved {
                            speed: Speed::M100,
                            full_duplex: false,
                        })
                    } else if adv & anar::FD10 != 0 {
                        Some(Resolved {
                            speed: Speed::M10,
                            full_duplex: true,
                        })
                    } else if adv & anar::HD10 != 0 {
                        Some(Resolved {
                            speed: Speed::M10,
                            full_duplex: false,
                        })
                    } else {
                        None
                    }
                } else {
                    let speed = match (ctl & bmcr::SPEED_MSB != 0, ctl & bmcr::SPEED_LSB != 0) {
                        (true, _) => Speed::M1000,
                        (false, true) => Speed::M100,
                        (false, false) => Speed::M10,
                    };
                    Some(Resolved {
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
                    sp | if l.full_duplex { pssr::FD } else { 0 } | pssr::RESOLVED | pssr::LINK
                }
                None => 0,
            },
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
                    let keep_an = self.regs[ANAR as usize];
                    let keep_gcr = self.regs[GCR as usize];
                    self.reset_regs();
                    self.regs[ANAR as usize] = keep_an;
                    self.regs[GCR as usize] = keep_gcr;
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
}
