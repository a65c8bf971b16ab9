//! The EEPROM's configuration words (SDM 5.6, "EEPROM Address Map") and what the driver
//! takes from them: typed accessors over the words it uses, decoded once at probe into an
//! [`EepromConfig`] kept in the adapter's [`DeviceInfo`](crate::adapter::DeviceInfo).

use microdriver_rt::Marshal;

use crate::adapter::{Adapter, MacType};
use crate::error::DriverError;
use crate::regs::{ctrl, CTRL};

pub use e1000_regs::eeprom::word;

/// ICW1 bits 15:14: the signature; only `01b` marks the image valid. With any other
/// signature the part ignores the rest of the word (SDM 5.6).
pub const ICW1_SIGNATURE_MASK: u16 = 0xC000;
/// The valid ICW1 signature.
pub const ICW1_SIGNATURE_VALID: u16 = 0x4000;
/// ICW1 bit 4: the default of CTRL.ILOS (invert loss-of-signal).
pub const ICW1_ILOS: u16 = 1 << 4;
/// ICW1 bits 8:5: the default directions of software-definable pins 3:0 (CTRL.SWDPIO).
pub const ICW1_SWDPIO_MASK: u16 = 0xF << 5;
/// Where SWDPIO[3:0] sit in ICW1.
pub const ICW1_SWDPIO_SHIFT: u32 = 5;
/// ICW1 bit 9: the default of CTRL.LRST (link reset).
pub const ICW1_LRST: u16 = 1 << 9;
/// ICW1 bit 10: the default of CTRL.FD (full duplex).
pub const ICW1_FD: u16 = 1 << 10;
/// ICW2 bits 13:12: the PAUSE abilities advertised by default (bit 12 symmetric PAUSE,
/// bit 13 asymmetric direction).
pub const ICW2_PAUSE_MASK: u16 = 0x3000;
/// ICW2 bit 12: symmetric PAUSE.
pub const ICW2_PAUSE: u16 = 1 << 12;
/// ICW2 bit 13: asymmetric PAUSE direction.
pub const ICW2_ASM_DIR: u16 = 1 << 13;
/// ICW2 bit 11: auto-negotiation enabled by default (TBI/SerDes).
pub const ICW2_ANE: u16 = 1 << 11;
/// The 82544's APM wake-up enable: ICW2 (word 0x0F) bit 2.
pub const ICW2_APM_82544: u16 = 1 << 2;
/// The APM wake-up enable of the 82540 and later: ICW3 (word 0x24 for port A) bit 10.
pub const ICW3_APME: u16 = 1 << 10;

/// The configuration the driver takes from the EEPROM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct EepromConfig {
    /// Word 0x03, the compatibility word.
    pub compat: u16,
    /// Word 0x04, the ID LED settings (see [`crate::led`]).
    pub id_led: u16,
    /// Words 0x08 (high) and 0x09 (low): the PBA number.
    pub pba: u32,
    /// Word 0x0A, Initialization Control Word 1.
    pub icw1: u16,
    /// Word 0x0B, the subsystem id.
    pub subsys_id: u16,
    /// Word 0x0C, the subsystem vendor id.
    pub subsys_vendor: u16,
    /// Word 0x0D, the device id.
    pub device_id: u16,
    /// Word 0x0E, the vendor id.
    pub vendor_id: u16,
    /// Word 0x0F, Initialization Control Word 2.
    pub icw2: u16,
    /// The word holding this part's APM enable bit ([`apm_word`]).
    pub apm_word: u16,
    /// Whether APM wake-up is enabled ([`apm_bit`] of [`Self::apm_word`]).
    pub apm_enable: bool,
    /// Word 0x3F, the checksum word.
    pub checksum: u16,
}

/// The word that holds `mac`'s APM enable bit: ICW2 (0x0F) on the 82544, ICW3 port A
/// (0x24) on the 82540 and 82545 (single-port parts, so always port A).
pub fn apm_word(mac: MacType) -> u32 {
    match mac {
        MacType::I82544GC => word::ICW2 as u32,
        MacType::I82540EM | MacType::I82545EM => word::ICW3_PORT_A as u32,
    }
}

/// The APM enable bit within [`apm_word`].
pub fn apm_bit(mac: MacType) -> u16 {
    match mac {
        MacType::I82544GC => ICW2_APM_82544,
        MacType::I82540EM | MacType::I82545EM => ICW3_APME,
    }
}

impl EepromConfig {
    /// Decodes the words of an EEPROM image of `mac` (all 64 of them).
    pub fn decode(mac: MacType, w: &[u16; super::WORDS as usize]) -> Self {
        let apm = w[apm_word(mac) as usize];
        Self {
            compat: w[word::COMPAT],
            id_led: w[word::ID_LED],
            pba: u32::from(w[word::PBA_HIGH]) << 16 | u32::from(w[word::PBA_LOW]),
            icw1: w[word::ICW1],
            subsys_id: w[word::SUBSYS_ID],
            subsys_vendor: w[word::SUBSYS_VENDOR],
            device_id: w[word::DEVICE_ID],
            vendor_id: w[word::VENDOR_ID],
            icw2: w[word::ICW2],
            apm_word: apm,
            apm_enable: apm & apm_bit(mac) != 0,
            checksum: w[super::CHECKSUM_WORD as usize],
        }
    }

    /// Reads and decodes the EEPROM of the adapter's part.
    pub fn read(a: &Adapter) -> Result<Self, DriverError> {
        let v = super::read(a, 0, super::WORDS)?;
        let words: [u16; super::WORDS as usize] =
            v.try_into()
                .map_err(|v: Vec<u16>| DriverError::EepromRange {
                    offset: 0,
                    len: v.len() as u32,
                    size: super::WORDS,
                })?;
        Ok(Self::decode(a.info.mac_type, &words))
    }

    /// Whether ICW1 carries the valid signature (otherwise its settings do not apply).
    pub fn signature_valid(&self) -> bool {
        self.icw1 & ICW1_SIGNATURE_MASK == ICW1_SIGNATURE_VALID
    }

    /// ICW1's invert-loss-of-signal default.
    pub fn ilos(&self) -> bool {
        self.signature_valid() && self.icw1 & ICW1_ILOS != 0
    }

    /// ICW1's software-definable pin directions, SWDPIO[3:0] (1 = output).
    pub fn swdpio(&self) -> u32 {
        if !self.signature_valid() {
            return 0;
        }
        u32::from((self.icw1 & ICW1_SWDPIO_MASK) >> ICW1_SWDPIO_SHIFT)
    }

    /// ICW1's full-duplex default.
    pub fn full_duplex(&self) -> bool {
        self.signature_valid() && self.icw1 & ICW1_FD != 0
    }

    /// ICW2's PAUSE abilities: (symmetric, asymmetric direction).
    pub fn pause(&self) -> (bool, bool) {
        (self.icw2 & ICW2_PAUSE != 0, self.icw2 & ICW2_ASM_DIR != 0)
    }

    /// The CTRL bits ICW1 sets by default: ILOS and SWDPIO[3:0].
    pub fn ctrl_defaults(&self) -> u32 {
        let mut v = self.swdpio() << ctrl::SWDPIO_SHIFT;
        if self.ilos() {
            v |= ctrl::ILOS;
        }
        v
    }

    /// The PBA number as Intel prints it on the board and Linux's e1000 logs it:
    /// six hex digits, a dash, three hex digits (`c91016-006`).
    pub fn pba_string(&self) -> String {
        format!("{:06x}-{:03x}", self.pba >> 8, self.pba & 0xFF)
    }
}

/// Puts the CTRL defaults ICW1 holds (ILOS, SWDPIO[3:0]) into CTRL, as the part loads
/// them from the EEPROM at power-on: after every reset the driver performs, so that they
/// hold whether or not the part reloaded its EEPROM.
pub fn apply_ctrl_defaults(a: &Adapter) -> Result<(), DriverError> {
    a.rmw(
        CTRL,
        ctrl::ILOS | ctrl::SWDPIO_MASK,
        a.info.eeprom.ctrl_defaults(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> [u16; 64] {
        e1000_sim::eeprom::image([0x52, 0x54, 0, 1, 2, 3], 0x8086, 0x100E)
    }

    #[test]
    fn decodes_the_default_image() {
        let c = EepromConfig::decode(MacType::I82540EM, &image());
        assert!(c.signature_valid());
        assert_eq!(c.id_led, 0xFFFF);
        assert_eq!(c.pba_string(), "c91016-006");
        assert_eq!((c.device_id, c.vendor_id), (0x100E, 0x8086));
        assert!(!c.ilos());
        assert_eq!(c.swdpio(), 0);
        assert!(c.full_duplex());
        assert_eq!(c.pause(), (true, true));
        assert!(!c.apm_enable);
    }

    #[test]
    fn icw1_settings_need_the_signature() {
        let mut w = image();
        w[word::ICW1] = ICW1_SIGNATURE_VALID | ICW1_ILOS | (0b1010 << ICW1_SWDPIO_SHIFT);
        let c = EepromConfig::decode(MacType::I82540EM, &w);
        assert_eq!(
            c.ctrl_defaults(),
            ctrl::ILOS | (0b1010 << ctrl::SWDPIO_SHIFT)
        );
        w[word::ICW1] |= ICW1_SIGNATURE_MASK; // signature 11b: not valid
        let c = EepromConfig::decode(MacType::I82540EM, &w);
        assert_eq!(c.ctrl_defaults(), 0);
    }

    #[test]
    fn apm_bit_per_part() {
        let mut w = image();
        w[word::ICW3_PORT_A] |= ICW3_APME;
        assert!(EepromConfig::decode(MacType::I82540EM, &w).apm_enable);
        assert!(EepromConfig::decode(MacType::I82545EM, &w).apm_enable);
        assert!(!EepromConfig::decode(MacType::I82544GC, &w).apm_enable);
        let mut w = image();
        w[word::ICW2] |= ICW2_APM_82544;
        assert!(EepromConfig::decode(MacType::I82544GC, &w).apm_enable);
        assert!(!EepromConfig::decode(MacType::I82540EM, &w).apm_enable);
    }
}
