//! Flow control (IEEE 802.3x PAUSE).

use super::*;

impl Device {
    // -----------------------------------------------------------------------------------
    // Flow control (IEEE 802.3x PAUSE; SDM 13.4 FCAL/FCAH/FCT/FCTTV/FCRTL/FCRTH)
    // -----------------------------------------------------------------------------------

    /// Duration of one pause quantum (512 bit times) at the current link speed.
    pub(super) fn pause_quantum(&self) -> Duration {
        let ns = match self.phy.link().map(|l| l.speed) {
            Some(Speed::M10) => 51_200,
            Some(Speed::M100) => 5_120,
            _ => 512,
        };
        Duration::from_nanos(ns)
    }

    /// Queues a PAUSE frame with `time` quanta to the flow control address.
    pub(super) fn send_pause(&mut self, time: u16) {
        let dst = ra_to_mac(self.r(FCAL), self.r(FCAH) & 0xFFFF);
        let src = ra_to_mac(self.r(RAL), self.r(RAH));
        let mut f = net::eth_header(dst, src, (self.r(FCT) & 0xFFFF) as u16);
        f.extend_from_slice(&1u16.to_be_bytes());
        f.extend_from_slice(&time.to_be_bytes());
        f.resize(net::ETH_ZLEN, 0);
        let wire_len = (f.len() + net::FCS_LEN) as u64;
        self.stats.inc(TPT);
        self.stats.add(TOTL, wire_len);
        self.fc_out.push(WireFrame {
            data: f,
            fcs_ok: true,
        });
    }

    /// Sends XOFF when the receive FIFO fills past FCRTH, XON (if FCRTL.XONE) when it
    /// drains below FCRTL, and refreshes XOFF while it stays full (CTRL.TFCE).
    pub(super) fn flow_control(&mut self, now: Instant) {
        if self.r(CTRL) & ctrl::TFCE == 0 || !self.mac_link {
            self.xoff_sent = false;
            self.xoff_refresh_at = None;
            return;
        }
        let high = (self.r(FCRTH) & 0xFFF8) as usize;
        let low = (self.r(FCRTL) & 0xFFF8) as usize;
        let xone = self.r(FCRTL) & (1 << 31) != 0;
        let ttv = (self.r(FCTTV) & 0xFFFF) as u16;
        let occ = self.rx_fifo_bytes;
        let refresh_due = self.xoff_refresh_at.is_none_or(|t| now >= t);
        if high > 0 && occ >= high {
            if !self.xoff_sent || refresh_due {
                self.send_pause(ttv);
                self.stats.inc(XOFFTXC);
                self.xoff_sent = true;
                // Refresh halfway through the pause time if still above the threshold.
                let half = self.pause_quantum() * u32::from(ttv.max(2) / 2);
                self.xoff_refresh_at = Some(now + half);
            }
        } else if self.xoff_sent && occ < low {
            self.xoff_sent = false;
            self.xoff_refresh_at = None;
            if xone {
                self.send_pause(0);
                self.stats.inc(XONTXC);
            }
        } else if self.xoff_refresh_at.is_some() && refresh_due {
            // Between the thresholds: no refresh, but XOFF again if the FIFO refills.
            self.xoff_refresh_at = None;
        }
    }

    /// A received MAC control frame: returns true if it was a PAUSE frame that the MAC
    /// consumed (CTRL.RFCE set).
    pub(super) fn receive_pause(&mut self, f: &[u8], now: Instant) -> bool {
        if self.r(CTRL) & ctrl::RFCE == 0 || f.len() < 18 {
            return false;
        }
        let fct = (self.r(FCT) & 0xFFFF) as u16;
        let fca = ra_to_mac(self.r(FCAL), self.r(FCAH) & 0xFFFF);
        let dst = net::dst_mac(f);
        let station = ra_to_mac(self.r(RAL), self.r(RAH));
        if net::ethertype(f) != fct || (dst != fca && dst != station) {
            return false;
        }
        let opcode = u16::from_be_bytes([f[14], f[15]]);
        if opcode != 1 {
            self.stats.inc(FCRUC);
            return true;
        }
        let time = u16::from_be_bytes([f[16], f[17]]);
        if time == 0 {
            self.stats.inc(XONRXC);
            self.tx_paused_until = None;
        } else {
            self.stats.inc(XOFFRXC);
            self.tx_paused_until = Some(now + self.pause_quantum() * u32::from(time));
        }
        true
    }
}
