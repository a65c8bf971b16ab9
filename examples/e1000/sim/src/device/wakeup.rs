//! Wake-up (SDM 6.4, 13.6): link-change and packet wake-up filters.

use super::*;

impl Device {
    // -----------------------------------------------------------------------------------
    // Wake-up (SDM 6.4, 13.6)
    // -----------------------------------------------------------------------------------

    /// A link change wakes with WUC.PME_EN and WUFC.LNKC, if the PHY is powered to see it
    /// and an earlier link change is not still in WUS.
    pub(super) fn wake_on_link_change(&mut self) {
        let armed = self.r(WUC) & wuc::PME_EN != 0 && self.r(WUFC) & wufc::LNKC != 0;
        if armed && !self.phy.powered_down() && self.r(WUS) & wufc::LNKC == 0 {
            self.set(WUS, self.r(WUS) | wufc::LNKC);
            self.set(WUC, self.r(WUC) | wuc::PME_STATUS);
        }
    }

    /// Whether any packet wake-up is armed (ACPI filters with PME_EN, or APM).
    pub(super) fn wake_armed(&self) -> bool {
        let wuc_v = self.r(WUC);
        wuc_v & wuc::APME != 0
            || (wuc_v & wuc::PME_EN != 0 && self.r(WUFC) & wufc::PACKET_MASK != 0)
    }

    /// The wake-up filters see every good frame the PHY receives, whether or not the
    /// receiver's DMA runs (SDM 6.4.2): a frame that passes the standard address filter and
    /// an enabled filter (WUFC with WUC.PME_EN; magic packets also with WUC.APME, the APM
    /// wake-up) sets the filters' WUS bits, is stored in WUPL/WUPM and sets
    /// WUC.PME_STATUS. Until the driver clears WUS's packet bits, later packets do not wake.
    pub(super) fn wake_on_frame(&mut self, f: &WireFrame) {
        let wuc_v = self.r(WUC);
        let acpi = if wuc_v & wuc::PME_EN != 0 {
            self.r(WUFC)
        } else {
            0
        };
        let apm = if wuc_v & wuc::APME != 0 { wufc::MAG } else { 0 };
        let armed = (acpi | apm) & wufc::PACKET_MASK;
        if armed == 0
            || !f.fcs_ok
            || self.phy.link().is_none()
            || self.r(WUS) & wufc::PACKET_MASK != 0
            || f.data.len() < net::ETH_HLEN
        {
            return;
        }
        let dst = net::dst_mac(&f.data);
        let broadcast = dst == net::BROADCAST;
        let passed = self.address_match(&dst);
        let mut hit = 0;
        match passed {
            Some(_) if broadcast => hit |= wufc::BC,
            Some(_) if net::is_multicast(&dst) => hit |= wufc::MC,
            Some(true) => hit |= wufc::EX,
            _ => {}
        }
        // SDM 6.4.3.1.4: a broadcast magic packet passes without RCTL.BAM on the 82540 and
        // later; the 82544 needs BAM (or another filter) for it.
        let magic_dst = passed.is_some() || (broadcast && self.variant != Variant::I82544GC);
        let ra0 = ra_to_mac(self.r(RAL), self.r(RAH));
        if magic_dst && self.r(RAH) & rah::AV != 0 && net::is_magic_packet(&f.data, ra0) {
            hit |= wufc::MAG;
        }
        let hit = hit & armed;
        if hit == 0 {
            return;
        }
        self.set(WUS, self.r(WUS) | hit);
        let len = (f.data.len() + net::FCS_LEN).min(2047) as u32;
        self.set(WUPL, len & WUPL_LEN_MASK);
        for i in 0..WUPM_LEN / 4 {
            let b = |k: u32| f.data.get((4 * i + k) as usize).copied().unwrap_or(0);
            self.set(WUPM + 4 * i, u32::from_le_bytes([b(0), b(1), b(2), b(3)]));
        }
        if hit & acpi != 0 || wuc_v & wuc::APMPME != 0 {
            self.set(WUC, self.r(WUC) | wuc::PME_STATUS);
        }
    }
}
