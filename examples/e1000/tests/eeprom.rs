//! The EEPROM's configuration words on the model: what probe decodes and honours (CTRL
//! defaults from ICW1, the default Wake-on-LAN from the APM enable bit, the PBA number),
//! the ID LED modes identify blinks with, and ethtool's EEPROM writes.

mod common;

use std::sync::Arc;

use common::*;
use e1000::eeprom::words::{self, word, ICW2_APM_82544, ICW3_APME};
use e1000::ethtool::{self, IdState};
use e1000::led::{self, LedModes};
use e1000::netdev::{Netdev, Options};
use e1000::regs::{self, ctrl, ledctl};
use e1000::wol::WAKE_MAGIC;
use e1000::DriverError;
use e1000_sim::eeprom::{self as sim_eeprom, fix_checksum};
use e1000_sim::{E1000Sim, Variant};

const VARIANTS: [Variant; 3] = [Variant::I82540EM, Variant::I82545EM, Variant::I82544GC];

/// The model's default image for `v` (what `E1000Sim::new` programs).
fn default_image(sim: &E1000Sim) -> [u16; 64] {
    let (vendor, device) = sim.pci_ids();
    sim_eeprom::image(sim.mac(), vendor, device)
}

/// Starts a model of `v`, reprograms its EEPROM with `edit` applied to the default image
/// (checksum fixed), and probes the driver on it.
fn start_with_image(v: Variant, edit: impl FnOnce(&mut [u16; 64])) -> (Arc<E1000Sim>, Netdev) {
    let (sim, hw) = e1000_sim::start(config(v)).expect("model starts");
    let mut w = default_image(&sim);
    edit(&mut w);
    fix_checksum(&mut w);
    sim.set_eeprom_words(w);
    let nd = Netdev::start(hw, Options::default()).expect("probe succeeds");
    (sim, nd)
}

fn sum(w: &[u16]) -> u16 {
    w.iter().fold(0u16, |s, &x| s.wrapping_add(x))
}

#[test]
fn probe_decodes_the_model_image() {
    for v in VARIANTS {
        let (sim, nd) = start(v);
        let w = sim.eeprom_words();
        let (vendor, device) = sim.pci_ids();
        let c = nd.with_adapter(|a| a.info.eeprom);
        assert!(c.signature_valid(), "{v:?}");
        assert_eq!(c.id_led, w[word::ID_LED]);
        assert_eq!((c.vendor_id, c.device_id), (vendor, device), "{v:?}");
        assert_eq!(c.subsys_vendor, w[word::SUBSYS_VENDOR]);
        assert_eq!(c.subsys_id, w[word::SUBSYS_ID]);
        assert_eq!((c.icw1, c.icw2), (w[word::ICW1], w[word::ICW2]));
        assert_eq!(c.compat, w[word::COMPAT]);
        assert_eq!(c.checksum, w[0x3F]);
        assert_eq!(
            c.pba,
            u32::from(w[word::PBA_HIGH]) << 16 | u32::from(w[word::PBA_LOW])
        );
        let info = nd
            .with_adapter(|a| ethtool::get_drvinfo(a))
            .expect("drvinfo");
        assert_eq!(info.pba, "c91016-006");
        assert_eq!(
            nd.with_adapter(|a| ethtool::get_eeprom_len(a))
                .expect("len"),
            128
        );
        nd.shutdown().expect("remove");
    }
}

#[test]
fn probe_decodes_an_image_a_test_wrote() {
    let (_sim, nd) = start_with_image(Variant::I82540EM, |w| {
        w[word::PBA_HIGH] = 0xA123;
        w[word::PBA_LOW] = 0x4502;
        w[word::ID_LED] = 0x1234;
        w[word::COMPAT] = 0x0041;
    });
    let c = nd.with_adapter(|a| a.info.eeprom);
    assert_eq!(c.pba_string(), "a12345-002");
    assert_eq!(c.id_led, 0x1234);
    assert_eq!(c.compat, 0x0041);
    let info = nd
        .with_adapter(|a| ethtool::get_drvinfo(a))
        .expect("drvinfo");
    assert_eq!(info.pba, "a12345-002");
    nd.shutdown().expect("remove");
}

#[test]
fn icw1_sets_ilos_and_pin_directions_in_ctrl() {
    for v in VARIANTS {
        // The default image: loss of signal not inverted, all pins inputs.
        let (sim, nd) = start(v);
        let c = reg(&sim, regs::CTRL);
        assert_eq!(
            c & (ctrl::ILOS | ctrl::SWDPIO_MASK),
            0,
            "{v:?}: CTRL {c:#x}"
        );
        nd.shutdown().expect("remove");

        let icw1 = words::ICW1_SIGNATURE_VALID
            | words::ICW1_FD
            | words::ICW1_ILOS
            | (0b0110 << words::ICW1_SWDPIO_SHIFT);
        let (sim, nd) = start_with_image(v, |w| w[word::ICW1] = icw1);
        let c = reg(&sim, regs::CTRL);
        assert_ne!(c & ctrl::ILOS, 0, "{v:?}: CTRL.ILOS from ICW1 bit 4");
        assert_eq!(
            c & ctrl::SWDPIO_MASK,
            0b0110 << ctrl::SWDPIO_SHIFT,
            "{v:?}: CTRL.SWDPIO from ICW1 bits 8:5"
        );
        // They hold across a reset (the reset task's, which reinitialises the MAC).
        nd.with_adapter(e1000::config::reset_task).expect("reset");
        assert_eq!(nd.with_adapter(|a| a.wd.resets), 1);
        let c = reg(&sim, regs::CTRL);
        assert_ne!(c & ctrl::ILOS, 0, "{v:?}: after the reset");
        assert_eq!(c & ctrl::SWDPIO_MASK, 0b0110 << ctrl::SWDPIO_SHIFT);
        nd.shutdown().expect("remove");

        // An ICW1 without the valid signature is ignored.
        let (sim, nd) = start_with_image(v, |w| w[word::ICW1] = icw1 | words::ICW1_SIGNATURE_MASK);
        let c = reg(&sim, regs::CTRL);
        assert_eq!(
            c & (ctrl::ILOS | ctrl::SWDPIO_MASK),
            0,
            "{v:?}: CTRL {c:#x}"
        );
        nd.shutdown().expect("remove");
    }
}

#[test]
fn default_wol_follows_the_apm_bit_of_each_part() {
    for v in VARIANTS {
        let (_sim, nd) = start(v);
        let w = nd.with_adapter(|a| ethtool::get_wol(a)).expect("wol");
        assert_eq!(w.wolopts, 0, "{v:?}: APM off in the default image");
        nd.shutdown().expect("remove");

        // The part's own APM word: ICW2 bit 2 on the 82544, ICW3 port A bit 10 otherwise.
        let (sim, nd) = start_with_image(v, |w| match v {
            Variant::I82544GC => w[word::ICW2] |= ICW2_APM_82544,
            _ => w[word::ICW3_PORT_A] |= ICW3_APME,
        });
        let info = nd.with_adapter(|a| ethtool::get_wol(a)).expect("wol");
        let want = if v == Variant::I82545EM {
            0 // no wake-up support on the 82545EM copper adapters
        } else {
            WAKE_MAGIC
        };
        assert!(nd.with_adapter(|a| a.info.eeprom.apm_enable), "{v:?}");
        assert_eq!(info.wolopts, want, "{v:?}");
        // The default is armed at shutdown like a chosen one.
        nd.with_adapter(e1000::probe::shutdown).expect("shutdown");
        let wufc = reg(&sim, regs::WUFC);
        if want != 0 {
            assert_eq!(wufc, regs::wufc::MAG, "{v:?}");
        } else {
            assert_eq!(wufc, 0, "{v:?}");
        }
        nd.shutdown().expect("remove");

        // The other part's APM bit does not count.
        let (_sim, nd) = start_with_image(v, |w| match v {
            Variant::I82544GC => w[word::ICW3_PORT_A] |= ICW3_APME,
            _ => w[word::ICW2] |= ICW2_APM_82544,
        });
        let info = nd.with_adapter(|a| ethtool::get_wol(a)).expect("wol");
        assert_eq!(info.wolopts, 0, "{v:?}: the bit in the wrong word");
        nd.shutdown().expect("remove");
    }
}

#[test]
fn led_modes_from_the_default_word_and_identify_alternates_them() {
    let (sim, nd) = start(Variant::I82540EM);
    let m = nd.with_adapter(|a| a.led.modes);
    // 0xFFFF: the defaults (LED2 dark, LED3 off then on) over LEDCTL's reset value.
    assert_eq!(m.default, ledctl::RESET_VALUE);
    assert_eq!(m.mode1, 0x0F0F_8302);
    assert_eq!(m.mode2, 0x0E0F_8302);
    assert_eq!(reg(&sim, regs::LEDCTL), m.default);

    let hz = nd
        .with_adapter(|a| ethtool::identify(a, IdState::Active))
        .expect("identify");
    assert_eq!(hz, led::BLINKS_PER_SECOND);
    assert_eq!(reg(&sim, regs::LEDCTL), m.mode1, "set up: mode 1");
    for _ in 0..3 {
        nd.with_adapter(|a| ethtool::identify(a, IdState::On))
            .expect("on");
        assert_eq!(reg(&sim, regs::LEDCTL), m.mode2, "on: mode 2");
        nd.with_adapter(|a| ethtool::identify(a, IdState::Off))
            .expect("off");
        assert_eq!(reg(&sim, regs::LEDCTL), m.mode1, "off: mode 1");
    }
    nd.with_adapter(|a| ethtool::identify(a, IdState::Inactive))
        .expect("cleanup");
    assert_eq!(reg(&sim, regs::LEDCTL), m.default, "restored");

    // Blink phases outside identify are refused and change nothing.
    let e = nd
        .with_adapter(|a| ethtool::identify(a, IdState::On))
        .expect_err("not identifying");
    assert!(matches!(e, DriverError::WrongState { .. }), "{e}");
    assert_eq!(reg(&sim, regs::LEDCTL), m.default);
    nd.shutdown().expect("remove");
}

#[test]
fn led_modes_from_a_custom_word() {
    // LED0 on/off, LED1 default/on, LED2 on/default, LED3 off/off.
    let word_04 = led::ID_LED_ON1_OFF2
        | led::ID_LED_DEF1_ON2 << 4
        | led::ID_LED_ON1_DEF2 << 8
        | led::ID_LED_OFF1_OFF2 << 12;
    let (sim, nd) = start_with_image(Variant::I82545EM, |w| w[word::ID_LED] = word_04);
    let m = nd.with_adapter(|a| a.led.modes);
    assert_eq!(m, LedModes::compute(word_04, ledctl::RESET_VALUE));
    assert_eq!(m.mode1, 0x0F0E_830E);
    assert_eq!(m.mode2, 0x0F06_0E0F);
    nd.with_adapter(|a| ethtool::identify(a, IdState::Active))
        .expect("identify");
    nd.with_adapter(|a| ethtool::identify(a, IdState::On))
        .expect("on");
    assert_eq!(reg(&sim, regs::LEDCTL), 0x0F06_0E0F);
    nd.with_adapter(|a| ethtool::identify(a, IdState::Off))
        .expect("off");
    assert_eq!(reg(&sim, regs::LEDCTL), 0x0F0E_830E);
    nd.with_adapter(|a| ethtool::identify(a, IdState::Inactive))
        .expect("cleanup");
    assert_eq!(reg(&sim, regs::LEDCTL), ledctl::RESET_VALUE);
    nd.shutdown().expect("remove");
}

#[test]
fn identify_on_the_82544_drives_software_pin_0() {
    let (sim, nd) = start(Variant::I82544GC);
    let before = reg(&sim, regs::CTRL);
    let led_before = reg(&sim, regs::LEDCTL);
    nd.with_adapter(|a| ethtool::identify(a, IdState::Active))
        .expect("identify");
    nd.with_adapter(|a| ethtool::identify(a, IdState::On))
        .expect("on");
    let c = reg(&sim, regs::CTRL);
    assert_ne!(c & ctrl::SWDPIO0, 0, "pin 0 an output");
    assert_eq!(c & ctrl::SWDPIN0, 0, "driven low: LED lit");
    nd.with_adapter(|a| ethtool::identify(a, IdState::Off))
        .expect("off");
    assert_ne!(
        reg(&sim, regs::CTRL) & ctrl::SWDPIN0,
        0,
        "driven high: dark"
    );
    nd.with_adapter(|a| ethtool::identify(a, IdState::Inactive))
        .expect("cleanup");
    let sdp0 = ctrl::SWDPIN0 | ctrl::SWDPIO0;
    assert_eq!(
        reg(&sim, regs::CTRL) & sdp0,
        before & sdp0,
        "pin 0 restored"
    );
    assert_eq!(reg(&sim, regs::LEDCTL), led_before, "LEDCTL untouched");
    nd.shutdown().expect("remove");
}

#[test]
fn eeprom_writes_keep_neighbour_bytes_and_the_checksum() {
    for v in [Variant::I82540EM, Variant::I82544GC] {
        let (sim, nd) = start(v);
        let before = sim.eeprom_words();
        let magic = nd.with_adapter(|a| ethtool::eeprom_magic(a));
        let (vendor, device) = sim.pci_ids();
        assert_eq!(magic, u32::from(vendor) | u32::from(device) << 16);
        // Odd offset: bytes 0x41..0x45 are the high byte of word 0x20, word 0x21 and the
        // low byte of word 0x22.
        nd.with_adapter(|a| ethtool::set_eeprom(a, magic, 0x41, &[0x11, 0x22, 0x33, 0x44]))
            .expect("write");
        let w = sim.eeprom_words();
        assert_eq!(
            w[0x20],
            (before[0x20] & 0x00FF) | 0x1100,
            "{v:?}: low byte kept"
        );
        assert_eq!(w[0x21], 0x3322);
        assert_eq!(
            w[0x22],
            (before[0x22] & 0xFF00) | 0x0044,
            "{v:?}: high byte kept"
        );
        for i in (0..0x3F).filter(|i| !(0x20..=0x22).contains(i)) {
            assert_eq!(w[i], before[i], "{v:?}: word {i:#x} untouched");
        }
        assert_eq!(sum(&w), 0xBABA, "{v:?}: checksum updated");
        let back = nd
            .with_adapter(|a| ethtool::get_eeprom(a, 0x41, 4))
            .expect("read back");
        assert_eq!(back, [0x11, 0x22, 0x33, 0x44]);
        // Odd length at an even offset: word 0x30 and the low byte of word 0x31.
        nd.with_adapter(|a| ethtool::set_eeprom(a, magic, 0x60, &[0xA5, 0x5A, 0xC3]))
            .expect("write");
        let w2 = sim.eeprom_words();
        assert_eq!(w2[0x30], 0x5AA5);
        assert_eq!(
            w2[0x31],
            (w[0x31] & 0xFF00) | 0x00C3,
            "{v:?}: high byte kept"
        );
        assert_eq!(w2[0x32], w[0x32]);
        assert_eq!(sum(&w2), 0xBABA);
        // One byte, odd offset and length: the high byte of word 0x3E, next to the
        // checksum word.
        nd.with_adapter(|a| ethtool::set_eeprom(a, magic, 0x7D, &[0x7E]))
            .expect("write");
        let w3 = sim.eeprom_words();
        assert_eq!(w3[0x3E], (w2[0x3E] & 0x00FF) | 0x7E00);
        assert_eq!(sum(&w3), 0xBABA);
        // The driver accepts its own EEPROM again (probe validates the checksum).
        nd.shutdown().expect("remove");
        let nd = Netdev::start(e1000_sim::handles(&sim), Options::default())
            .expect("probe after the write");
        nd.shutdown().expect("remove");
    }
}

#[test]
fn bad_eeprom_writes_are_refused_and_change_nothing() {
    let (sim, nd) = start(Variant::I82540EM);
    let before = sim.eeprom_words();
    let magic = nd.with_adapter(|a| ethtool::eeprom_magic(a));
    let refused = |offset: u32, data: &[u8], m: u32| {
        let data = data.to_vec();
        nd.with_adapter(|a| ethtool::set_eeprom(a, m, offset, &data))
            .expect_err("refused")
    };
    // The checksum word, whole or one byte of it, or a range that ends in it.
    for (off, data) in [
        (0x7E, &[0u8, 0][..]),
        (0x7F, &[1][..]),
        (0x7C, &[1, 2, 3][..]),
    ] {
        let e = refused(off, data, magic);
        assert!(matches!(e, DriverError::InvalidArgument { .. }), "{e}");
        assert!(e.to_string().contains("checksum word"), "{e}");
    }
    // Past the end, and an offset beyond it.
    for (off, data) in [(0x7F, &[1, 2][..]), (0x80, &[1][..]), (u32::MAX, &[1][..])] {
        let e = refused(off, data, magic);
        assert!(matches!(e, DriverError::EepromRange { .. }), "{e}");
    }
    // The wrong magic.
    let e = refused(0x40, &[1], magic ^ 1);
    assert!(e.to_string().contains("magic"), "{e}");
    assert_eq!(sim.eeprom_words(), before, "nothing changed");
    assert!(nd
        .with_adapter(|a| ethtool::get_eeprom(a, 0x7F, 2))
        .is_err());
    nd.with_adapter(|a| ethtool::set_eeprom(a, magic, 0x10, &[]))
        .expect("an empty write is a no-op");
    assert_eq!(sim.eeprom_words(), before);
    nd.shutdown().expect("remove");
}
