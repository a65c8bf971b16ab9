//! The LEDs and identify (`ethtool -p`), as Linux's e1000 drives them.
//!
//! On the 82540 and later the EEPROM's ID LED word (0x04) says, for each of the four LEDs,
//! what it shows in the two phases of an identify blink: four 4-bit codes, LED0 in bits
//! 3:0, each naming a state for phase 1 ("mode 1") and phase 2 ("mode 2") out of *def*
//! (the LED keeps its normal LEDCTL setting), *on* and *off*. 0x0000 and 0xFFFF are
//! reserved and mean "use [`ID_LED_DEFAULT`]". From the word and the LEDCTL value the part
//! came out of reset with, [`LedModes::compute`] gives three LEDCTL values: the default,
//! mode 1 and mode 2. Identifying writes mode 1, then alternates mode 2 (LED "on") and
//! mode 1 (LED "off") at the rate the caller asks for with [`BLINKS_PER_SECOND`], and
//! restores the default at the end.
//!
//! The 82544 has no ID LED word; its identify LED hangs on software-definable pin 0, lit
//! by driving the pin low (CTRL.SWDPIO0 set, SWDPIN0 clear on copper) and dark by driving
//! it high. Identifying saves the pin's CTRL bits and restores them at the end.

use microdriver_rt::Marshal;

use crate::adapter::{Adapter, MacType};
use crate::error::DriverError;
use crate::regs::{ctrl, ledctl, CTRL, LEDCTL};

/// ID LED code: mode 1 default, mode 2 default.
pub const ID_LED_DEF1_DEF2: u16 = 0x1;
/// ID LED code: mode 1 default, mode 2 on.
pub const ID_LED_DEF1_ON2: u16 = 0x2;
/// ID LED code: mode 1 default, mode 2 off.
pub const ID_LED_DEF1_OFF2: u16 = 0x3;
/// ID LED code: mode 1 on, mode 2 default.
pub const ID_LED_ON1_DEF2: u16 = 0x4;
/// ID LED code: mode 1 on, mode 2 on.
pub const ID_LED_ON1_ON2: u16 = 0x5;
/// ID LED code: mode 1 on, mode 2 off.
pub const ID_LED_ON1_OFF2: u16 = 0x6;
/// ID LED code: mode 1 off, mode 2 default.
pub const ID_LED_OFF1_DEF2: u16 = 0x7;
/// ID LED code: mode 1 off, mode 2 on.
pub const ID_LED_OFF1_ON2: u16 = 0x8;
/// ID LED code: mode 1 off, mode 2 off.
pub const ID_LED_OFF1_OFF2: u16 = 0x9;
/// Bits per LED in the ID LED word.
pub const ID_LED_CODE_BITS: u32 = 4;
/// The settings used when the word is reserved: LED0 and LED1 keep their normal
/// function, LED2 is dark in both phases, LED3 blinks (off in mode 1, on in mode 2).
pub const ID_LED_DEFAULT: u16 =
    ID_LED_OFF1_ON2 << 12 | ID_LED_OFF1_OFF2 << 8 | ID_LED_DEF1_DEF2 << 4 | ID_LED_DEF1_DEF2;
/// Reserved ID LED word values that select [`ID_LED_DEFAULT`].
pub const ID_LED_RESERVED: [u16; 2] = [0x0000, 0xFFFF];

/// On/off cycles per second of an identify blink (what Linux's e1000 asks ethtool for).
pub const BLINKS_PER_SECOND: u32 = 2;

/// What one LED shows in one phase of the blink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedSetting {
    /// Its normal LEDCTL setting.
    Default,
    /// Forced on (LEDCTL mode `LED_ON`).
    On,
    /// Forced off (LEDCTL mode `LED_OFF`).
    Off,
}

/// The phase-1 and phase-2 settings an ID LED code names; codes outside 1..=9 leave the
/// LED alone in both.
pub fn code_settings(code: u16) -> (LedSetting, LedSetting) {
    use LedSetting::{Default as D, Off, On};
    match code {
        ID_LED_DEF1_DEF2 => (D, D),
        ID_LED_DEF1_ON2 => (D, On),
        ID_LED_DEF1_OFF2 => (D, Off),
        ID_LED_ON1_DEF2 => (On, D),
        ID_LED_ON1_ON2 => (On, On),
        ID_LED_ON1_OFF2 => (On, Off),
        ID_LED_OFF1_DEF2 => (Off, D),
        ID_LED_OFF1_ON2 => (Off, On),
        ID_LED_OFF1_OFF2 => (Off, Off),
        _ => (D, D),
    }
}

/// The three LEDCTL values of identify.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct LedModes {
    /// LEDCTL as the part came out of reset: restored when identify ends.
    pub default: u32,
    /// Phase 1 (the LED "off").
    pub mode1: u32,
    /// Phase 2 (the LED "on").
    pub mode2: u32,
}

/// `ledctl` with LED `led`'s byte set for `s`: a forced mode with invert and blink
/// cleared, or unchanged.
fn with_setting(ledctl: u32, led: u32, s: LedSetting) -> u32 {
    let shift = led * ledctl::LED_SHIFT;
    let mode = match s {
        LedSetting::Default => return ledctl,
        LedSetting::On => ledctl::MODE_LED_ON,
        LedSetting::Off => ledctl::MODE_LED_OFF,
    };
    (ledctl & !(0xFF << shift)) | (mode << shift)
}

impl LedModes {
    /// The modes for ID LED word `id_led` over the reset value `ledctl`.
    pub fn compute(id_led: u16, ledctl: u32) -> Self {
        let word = if ID_LED_RESERVED.contains(&id_led) {
            ID_LED_DEFAULT
        } else {
            id_led
        };
        let mut m = Self {
            default: ledctl,
            mode1: ledctl,
            mode2: ledctl,
        };
        for led in 0..ledctl::LEDS {
            let code = (word >> (led * ID_LED_CODE_BITS)) & 0xF;
            let (s1, s2) = code_settings(code);
            m.mode1 = with_setting(m.mode1, led, s1);
            m.mode2 = with_setting(m.mode2, led, s2);
        }
        m
    }
}

/// The LED state the adapter keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct LedState {
    /// The identify modes (82540 and later).
    pub modes: LedModes,
    /// Whether identify is running.
    pub identifying: bool,
    /// The 82544's CTRL SWDPIN0/SWDPIO0 bits before identify started.
    pub saved_sdp0: u32,
}

/// The phases of identify, as ethtool's core drives them (`ethtool_phys_id_state`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub enum IdState {
    /// Identify starts: the LEDs are set up for it.
    Active,
    /// The blink's "on" phase.
    On,
    /// The blink's "off" phase.
    #[default]
    Off,
    /// Identify ends: the LEDs are restored.
    Inactive,
}

/// Whether `mac` takes its identify modes from an ID LED word and LEDCTL.
fn has_id_led(mac: MacType) -> bool {
    mac != MacType::I82544GC
}

/// The 82544's SDP0 bits.
const SDP0: u32 = ctrl::SWDPIN0 | ctrl::SWDPIO0;

/// Computes the identify modes from the EEPROM's ID LED word and LEDCTL as it is now
/// (after a reset: the part's default LED functions). Called after every reset.
pub fn init(a: &mut Adapter) -> Result<(), DriverError> {
    let cur = a.rd(LEDCTL)?;
    a.led.modes = if has_id_led(a.info.mac_type) {
        LedModes::compute(a.info.eeprom.id_led, cur)
    } else {
        LedModes {
            default: cur,
            mode1: cur,
            mode2: cur,
        }
    };
    Ok(())
}

/// Starts identify: mode 1 on the 82540 and later; the 82544 saves its SDP0 bits.
pub fn setup(a: &mut Adapter) -> Result<(), DriverError> {
    if has_id_led(a.info.mac_type) {
        a.wr(LEDCTL, a.led.modes.mode1)?;
    } else if !a.led.identifying {
        a.led.saved_sdp0 = a.rd(CTRL)? & SDP0;
    }
    a.led.identifying = true;
    Ok(())
}

fn check_identifying(a: &Adapter, op: &str) -> Result<(), DriverError> {
    if a.led.identifying {
        return Ok(());
    }
    Err(DriverError::WrongState {
        op: op.into(),
        state: "not identifying".into(),
        needed: "identify started (IdState::Active)".into(),
    })
}

/// The blink's "on" phase: mode 2, or SDP0 driven low on the 82544.
pub fn led_on(a: &Adapter) -> Result<(), DriverError> {
    check_identifying(a, "identify LED on")?;
    if has_id_led(a.info.mac_type) {
        a.wr(LEDCTL, a.led.modes.mode2)
    } else {
        a.rmw(CTRL, ctrl::SWDPIN0, ctrl::SWDPIO0).map(|_| ())
    }
}

/// The blink's "off" phase: mode 1, or SDP0 driven high on the 82544.
pub fn led_off(a: &Adapter) -> Result<(), DriverError> {
    check_identifying(a, "identify LED off")?;
    if has_id_led(a.info.mac_type) {
        a.wr(LEDCTL, a.led.modes.mode1)
    } else {
        a.rmw(CTRL, 0, SDP0).map(|_| ())
    }
}

/// Ends identify: the default LEDCTL, or the 82544's SDP0 bits as they were. Nothing to
/// do if identify is not running.
pub fn cleanup(a: &mut Adapter) -> Result<(), DriverError> {
    if !a.led.identifying {
        return Ok(());
    }
    if has_id_led(a.info.mac_type) {
        a.wr(LEDCTL, a.led.modes.default)?;
    } else {
        a.rmw(CTRL, SDP0, a.led.saved_sdp0)?;
    }
    a.led.identifying = false;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESET: u32 = ledctl::RESET_VALUE;

    #[test]
    fn reserved_words_use_the_defaults() {
        let d = LedModes::compute(ID_LED_DEFAULT, RESET);
        assert_eq!(LedModes::compute(0xFFFF, RESET), d);
        assert_eq!(LedModes::compute(0x0000, RESET), d);
        assert_eq!(d.default, RESET);
        // LED0/LED1 unchanged; LED2 off in both phases; LED3 off then on.
        assert_eq!(d.mode1, 0x0F0F_8302);
        assert_eq!(d.mode2, 0x0E0F_8302);
    }

    #[test]
    fn custom_word_sets_each_led() {
        // LED0 on/off (blinks), LED1 def/on, LED2 on/def, LED3 code 0 (left alone).
        let word = ID_LED_ON1_OFF2 | ID_LED_DEF1_ON2 << 4 | ID_LED_ON1_DEF2 << 8;
        let m = LedModes::compute(word, RESET);
        // Forcing a mode clears the LED's invert and blink bits (LED1's 0x83 -> 0x0E).
        assert_eq!(m.mode1, 0x070E_830E);
        assert_eq!(m.mode2, 0x0706_0E0F);
        assert_eq!(m.default, RESET);
    }
}
