//! The serial EEPROM: a 64-word (93C46-style) Microwire part, reached through EERD or by
//! bit-banging EECD (8254x SDM ch. 5 "EEPROM Interface", and 13.4 EECD/EERD).

/// Number of 16-bit words in the EEPROM of the 82540EM/82545EM/82544GC models.
pub const WORDS: usize = 64;
/// Word index of the checksum word.
pub const CHECKSUM_WORD: usize = 0x3F;
/// Words `0..=0x3F` must sum (mod 2^16) to this value (SDM ch. 5, EEPROM checksum word).
pub const CHECKSUM_TARGET: u16 = 0xBABA;

/// Word offsets of the EEPROM fields (the shared map, `e1000_regs::eeprom::word`).
pub use e1000_regs::eeprom::word;

/// Field values of the default image, as an Intel copper adapter ships them.
pub mod default {
    /// ID LED settings: 0xFFFF, the driver uses its defaults.
    pub const ID_LED: u16 = 0xFFFF;
    /// PBA number C91016-006 (words 0x08, 0x09).
    pub const PBA: [u16; 2] = [0xC910, 0x1606];
    /// ICW1: signature 01b, full duplex, load the subsystem and device ids; loss of
    /// signal not inverted, every software-definable pin an input.
    pub const ICW1: u16 = 0x6403;
    /// ICW2: symmetric and asymmetric PAUSE advertised; APM wake-up off (82544 bit 2).
    pub const ICW2: u16 = 0x3040;
    /// ICW3 port A: APM wake-up off (bit 10).
    pub const ICW3_PORT_A: u16 = 0x4901;
}

/// Words 0x10-0x23 and 0x30-0x32 of the default image (PHY, SMBus and boot agent
/// configuration the driver does not interpret), as on a shipping 82540EM adapter.
const VENDOR_WORDS: [(usize, u16); 23] = [
    (0x10, 0x0008),
    (0x11, 0x2000),
    (0x12, 0x7E14),
    (0x13, 0x0048),
    (0x14, 0x1000),
    (0x15, 0x00D8),
    (0x16, 0x0000),
    (0x17, 0x2700),
    (0x18, 0x6CC9),
    (0x19, 0x3150),
    (0x1A, 0x0722),
    (0x1B, 0x040B),
    (0x1C, 0x0984),
    (0x1D, 0x0000),
    (0x1E, 0xC000),
    (0x1F, 0x0706),
    (0x20, 0x1008),
    (0x21, 0x0000),
    (0x22, 0x0F04),
    (0x23, 0x7FFF),
    (0x30, 0x0100),
    (0x31, 0x4000),
    (0x32, 0x121C),
];

/// Builds a valid EEPROM image for a MAC address and PCI ids: the fields of [`word`] with
/// the values of [`default`], unused words erased (0xFFFF), and the checksum.
pub fn image(mac: [u8; 6], vendor: u16, device: u16) -> [u16; WORDS] {
    let mut w = [0xFFFFu16; WORDS];
    w[word::MAC0] = u16::from_le_bytes([mac[0], mac[1]]);
    w[word::MAC1] = u16::from_le_bytes([mac[2], mac[3]]);
    w[word::MAC2] = u16::from_le_bytes([mac[4], mac[5]]);
    w[word::COMPAT] = 0x0000;
    w[word::ID_LED] = default::ID_LED;
    for v in &mut w[word::IMAGE_VERSION..word::PBA_HIGH] {
        *v = 0x0000;
    }
    w[word::PBA_HIGH] = default::PBA[0];
    w[word::PBA_LOW] = default::PBA[1];
    w[word::ICW1] = default::ICW1;
    w[word::SUBSYS_ID] = device;
    w[word::SUBSYS_VENDOR] = vendor;
    w[word::DEVICE_ID] = device;
    w[word::VENDOR_ID] = vendor;
    w[word::ICW2] = default::ICW2;
    for &(i, v) in &VENDOR_WORDS {
        w[i] = v;
    }
    w[word::ICW3_PORT_A] = default::ICW3_PORT_A;
    fix_checksum(&mut w);
    w
}

/// Recomputes the checksum word so that words `0..=0x3F` sum to 0xBABA.
pub fn fix_checksum(w: &mut [u16; WORDS]) {
    let sum = w[..CHECKSUM_WORD]
        .iter()
        .fold(0u16, |a, &b| a.wrapping_add(b));
    w[CHECKSUM_WORD] = CHECKSUM_TARGET.wrapping_sub(sum);
}

/// Whether the image's checksum is valid.
pub fn checksum_ok(w: &[u16; WORDS]) -> bool {
    w.iter().fold(0u16, |a, &b| a.wrapping_add(b)) == CHECKSUM_TARGET
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the start bit (a 1 on DI with CS high).
    Idle,
    /// Shifting in the 2-bit opcode and 6-bit address.
    Command { bits: u32, value: u32 },
    /// Shifting out a word: `bit` of 16 already presented.
    Reading { addr: usize, bit: u32 },
    /// Shifting in 16 data bits for WRITE (addr = Some) or WRAL (addr = None).
    Writing {
        addr: Option<usize>,
        bits: u32,
        value: u32,
    },
    /// Command complete; ignore further clocks until CS drops.
    Done,
}

/// The Microwire serial protocol engine of a 93C46-class EEPROM (64 x 16 bits, 6 address
/// bits). Data is sampled on the rising edge of SK; DO changes after the rising edge.
#[derive(Debug, Clone)]
pub struct Eeprom {
    words: [u16; WORDS],
    cs: bool,
    sk: bool,
    di: bool,
    dout: bool,
    phase: Phase,
    write_enabled: bool,
    /// A write (or erase) latched, committed when CS falls.
    pending: Option<PendingWrite>,
    /// Number of committed writes (for tests).
    writes: u64,
}

#[derive(Debug, Clone, Copy)]
enum PendingWrite {
    Word(usize, u16),
    All(u16),
}

impl Eeprom {
    /// An EEPROM holding `words`.
    pub fn new(words: [u16; WORDS]) -> Self {
        Self {
            words,
            cs: false,
            sk: false,
            di: false,
            dout: true,
            phase: Phase::Idle,
            write_enabled: false,
            pending: None,
            writes: 0,
        }
    }

    /// Reads word `addr` directly (the EERD path). `addr` wraps at 64 words like the
    /// 6-bit Microwire address does.
    pub fn read_word(&self, addr: usize) -> u16 {
        self.words[addr % WORDS]
    }

    /// All words.
    pub fn words(&self) -> &[u16; WORDS] {
        &self.words
    }

    /// Number of words committed by Microwire WRITE/ERASE/WRAL/ERAL.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// The DO pin as last driven.
    pub fn dout(&self) -> bool {
        self.dout
    }

    /// Drives the pins. Call on every EECD write with the new CS, SK and DI levels.
    pub fn set_pins(&mut self, cs: bool, sk: bool, di: bool) {
        let was_cs = self.cs;
        let rising = cs && sk && !self.sk;
        self.cs = cs;
        self.sk = sk;
        self.di = di;
        if was_cs && !cs {
            // Chip deselect ends any command and starts programming a latched write.
            if let Some(p) = self.pending.take() {
                match p {
                    PendingWrite::Word(a, v) => {
                        self.words[a] = v;
                        self.writes += 1;
                    }
                    PendingWrite::All(v) => {
                        self.words = [v; WORDS];
                        self.writes += WORDS as u64;
                    }
                }
                // Programming is instantaneous here: the part reports ready (DO = 1) as soon
                // as it is selected again.
                self.dout = true;
            }
            self.phase = Phase::Idle;
            return;
        }
        if !cs {
            return;
        }
        if !was_cs {
            self.phase = Phase::Idle;
        }
        if rising {
            self.clock(di);
        }
    }

    fn clock(&mut self, di: bool) {
        let bit = u32::from(di);
        self.phase = match self.phase {
            Phase::Idle if di => Phase::Command { bits: 0, value: 0 },
            Phase::Idle => Phase::Idle,
            Phase::Command { bits, value } => {
                let value = (value << 1) | bit;
                let bits = bits + 1;
                if bits < 8 {
                    Phase::Command { bits, value }
                } else {
                    self.command(value)
                }
            }
            Phase::Reading { addr, bit: b } => {
                self.dout = (self.words[addr] >> (15 - b)) & 1 != 0;
                if b + 1 == 16 {
                    // Sequential read: the address auto-increments while CS stays high.
                    Phase::Reading {
                        addr: (addr + 1) % WORDS,
                        bit: 0,
                    }
                } else {
                    Phase::Reading { addr, bit: b + 1 }
                }
            }
            Phase::Writing { addr, bits, value } => {
                let value = (value << 1) | bit;
                let bits = bits + 1;
                if bits < 16 {
                    Phase::Writing { addr, bits, value }
                } else {
                    if self.write_enabled {
                        self.pending = Some(match addr {
                            Some(a) => PendingWrite::Word(a, value as u16),
                            None => PendingWrite::All(value as u16),
                        });
                        self.dout = false; // busy until programmed
                    }
                    Phase::Done
                }
            }
            Phase::Done => Phase::Done,
        };
    }

    fn command(&mut self, value: u32) -> Phase {
        let op = (value >> 6) & 3;
        let addr = (value & 0x3F) as usize;
        match op {
            // READ: a dummy 0 bit follows the address, then D15..D0.
            0b10 => {
                self.dout = false;
                Phase::Reading { addr, bit: 0 }
            }
            0b01 => Phase::Writing {
                addr: Some(addr),
                bits: 0,
                value: 0,
            },
            0b11 => {
                if self.write_enabled {
                    self.pending = Some(PendingWrite::Word(addr, 0xFFFF));
                    self.dout = false;
                }
                Phase::Done
            }
            _ => match addr >> 4 {
                0b11 => {
                    self.write_enabled = true;
                    Phase::Done
                }
                0b00 => {
                    self.write_enabled = false;
                    Phase::Done
                }
                0b10 => {
                    if self.write_enabled {
                        self.pending = Some(PendingWrite::All(0xFFFF));
                        self.dout = false;
                    }
                    Phase::Done
                }
                _ => Phase::Writing {
                    addr: None,
                    bits: 0,
                    value: 0,
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock_out(e: &mut Eeprom, bits: u32, value: u32) {
        for i in (0..bits).rev() {
            let di = (value >> i) & 1 != 0;
            e.set_pins(true, false, di);
            e.set_pins(true, true, di);
            e.set_pins(true, false, di);
        }
    }

    fn clock_in(e: &mut Eeprom, bits: u32) -> u32 {
        let mut v = 0;
        for _ in 0..bits {
            e.set_pins(true, true, false);
            v = (v << 1) | u32::from(e.dout());
            e.set_pins(true, false, false);
        }
        v
    }

    #[test]
    fn image_checksum() {
        // 8254x SDM ch. 5 (EEPROM checksum word): words 0x00..=0x3F sum to 0xBABA.
        let w = image([0x52, 0x54, 0, 0x12, 0x34, 0x56], 0x8086, 0x100E);
        assert!(checksum_ok(&w));
        assert_eq!(w[0], 0x5452);
        // The ICW1 signature (bits 15:14 = 01b) marks the image valid (SDM 5.6).
        assert_eq!(w[word::ICW1] >> 14, 0b01);
        assert_eq!(w[word::ID_LED], default::ID_LED);
        assert_eq!([w[word::PBA_HIGH], w[word::PBA_LOW]], default::PBA);
        assert_eq!((w[word::DEVICE_ID], w[word::VENDOR_ID]), (0x100E, 0x8086));
        assert_eq!(w[word::ICW3_PORT_A] & 0x0400, 0, "APM wake-up off");
    }

    #[test]
    fn microwire_read_write() {
        // 8254x SDM ch. 5 EEPROM Interface (Microwire READ/EWEN/WRITE/EWDS opcodes).
        let mut e = Eeprom::new(image([1, 2, 3, 4, 5, 6], 0x8086, 0x100E));
        e.set_pins(true, false, false);
        clock_out(&mut e, 3, 0b110); // start + READ
        clock_out(&mut e, 6, 1);
        assert_eq!(clock_in(&mut e, 16), 0x0403);
        assert_eq!(clock_in(&mut e, 16), 0x0605, "sequential read");
        e.set_pins(false, false, false);
        // WRITE without EWEN is ignored.
        e.set_pins(true, false, false);
        clock_out(&mut e, 3, 0b101);
        clock_out(&mut e, 6, 5);
        clock_out(&mut e, 16, 0xBEEF);
        e.set_pins(false, false, false);
        assert_ne!(e.read_word(5), 0xBEEF);
        // EWEN, WRITE, EWDS.
        e.set_pins(true, false, false);
        clock_out(&mut e, 3, 0b100);
        clock_out(&mut e, 6, 0b11_0000);
        e.set_pins(false, false, false);
        e.set_pins(true, false, false);
        clock_out(&mut e, 3, 0b101);
        clock_out(&mut e, 6, 5);
        clock_out(&mut e, 16, 0xBEEF);
        e.set_pins(false, false, false);
        e.set_pins(true, false, false);
        assert!(e.dout(), "ready after programming");
        e.set_pins(false, false, false);
        assert_eq!(e.read_word(5), 0xBEEF);
        assert_eq!(e.writes(), 1);
    }
}
