//! EEPROM access (SDM ch. 5 and 13.4 EECD/EERD): reads through EERD where the part has it,
//! Microwire bit-banging through EECD otherwise (82544) and for writes; checksum check and
//! update (the 64 words sum to 0xBABA); byte-addressed access as ethtool's `-e`/`-E` use
//! it; the configuration words in [`words`].

use crate::adapter::{Adapter, HW_WAIT_MS};
use crate::error::DriverError;
use crate::regs::{eecd, eerd, EECD, EERD};

pub mod words;

pub use words::{apply_ctrl_defaults, EepromConfig};

/// Words in the 93C46-class EEPROM of these parts.
pub const WORDS: u32 = 64;
/// The word that makes the sum come out right.
pub const CHECKSUM_WORD: u32 = 0x3F;
/// What the words must sum to.
pub const CHECKSUM_TARGET: u16 = 0xBABA;

/// Microwire opcodes (with their start bit), 9 bits with the 6-bit address.
const MW_READ: u32 = 0b110 << 6;
const MW_WRITE: u32 = 0b101 << 6;
const MW_EWEN: u32 = (0b100 << 6) | 0b11_0000;
const MW_EWDS: u32 = 0b100 << 6;

fn check_range(offset: u32, len: u32) -> Result<(), DriverError> {
    if offset.checked_add(len).is_none_or(|end| end > WORDS) {
        return Err(DriverError::EepromRange {
            offset,
            len,
            size: WORDS,
        });
    }
    Ok(())
}

/// Reads `len` words starting at `offset`.
pub fn read(a: &Adapter, offset: u32, len: u32) -> Result<Vec<u16>, DriverError> {
    check_range(offset, len)?;
    if a.info.mac_type.has_eerd() {
        (offset..offset + len).map(|w| read_eerd(a, w)).collect()
    } else {
        let mw = Microwire::acquire(a)?;
        let r = (offset..offset + len).map(|w| mw.read(w)).collect();
        mw.release()?;
        r
    }
}

fn read_eerd(a: &Adapter, word: u32) -> Result<u16, DriverError> {
    a.wr(EERD, eerd::START | (word << eerd::ADDR_SHIFT))?;
    let v = a.poll_reg(EERD, "EERD.DONE", HW_WAIT_MS, |v| v & eerd::DONE != 0)?;
    Ok((v >> eerd::DATA_SHIFT) as u16)
}

/// Writes `data` at `offset` and then fixes the checksum word (unless the write covers it).
pub fn write(a: &Adapter, offset: u32, data: &[u16]) -> Result<(), DriverError> {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    check_range(offset, len)?;
    let mw = Microwire::acquire(a)?;
    let r = (|| {
        mw.command(MW_EWEN, 9)?;
        mw.deselect()?;
        for (i, &w) in data.iter().enumerate() {
            mw.command(MW_WRITE | (offset + i as u32), 9)?;
            mw.shift_out(u32::from(w), 16)?;
            mw.deselect()?;
            mw.wait_ready()?;
        }
        mw.command(MW_EWDS, 9)?;
        mw.deselect()
    })();
    mw.release()?;
    r?;
    if !(offset..offset + len).contains(&CHECKSUM_WORD) {
        update_checksum(a)?;
    }
    Ok(())
}

/// The EEPROM's size in bytes (ethtool's `get_eeprom_len`).
pub fn len_bytes(a: &Adapter) -> u32 {
    a.info.eeprom_words * 2
}

/// The words holding bytes `offset..offset + len` (first and last; for an empty range,
/// meaningless), or the range error if they do not fit in the part's EEPROM.
fn byte_span(a: &Adapter, offset: u32, len: u32) -> Result<(u32, u32), DriverError> {
    let size = a.info.eeprom_words;
    let end =
        offset
            .checked_add(len)
            .filter(|&e| e <= size * 2)
            .ok_or(DriverError::EepromRange {
                offset: offset / 2,
                len: len.div_ceil(2),
                size,
            })?;
    Ok((offset / 2, end.saturating_sub(1) / 2))
}

/// Reads bytes `offset..offset + len` (the words are little-endian byte pairs, as ethtool
/// shows them).
pub fn read_bytes(a: &Adapter, offset: u32, len: u32) -> Result<Vec<u8>, DriverError> {
    if len == 0 {
        byte_span(a, offset, 0)?;
        return Ok(Vec::new());
    }
    let (first, last) = byte_span(a, offset, len)?;
    let bytes: Vec<u8> = read(a, first, last - first + 1)?
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    let skip = (offset % 2) as usize;
    Ok(bytes[skip..skip + len as usize].to_vec())
}

/// Writes `data` at byte `offset`, then updates the checksum word and checks the result.
/// A first or last word only partly covered is read first so that its other byte is kept
/// (as Linux's e1000 does). The checksum word itself is the driver's to maintain: a write
/// that covers it is refused, as is one past the end; either changes nothing.
pub fn write_bytes(a: &Adapter, offset: u32, data: &[u8]) -> Result<(), DriverError> {
    if data.is_empty() {
        return Ok(());
    }
    let len = u32::try_from(data.len()).map_err(|_| DriverError::EepromRange {
        offset: offset / 2,
        len: u32::MAX,
        size: a.info.eeprom_words,
    })?;
    let (first, last) = byte_span(a, offset, len)?;
    if (first..=last).contains(&CHECKSUM_WORD) {
        return Err(DriverError::invalid(
            "EEPROM write",
            format!(
                "bytes {offset:#x}..{:#x} cover the checksum word {CHECKSUM_WORD:#x} (bytes \
                 {:#x}-{:#x}), which the driver recomputes after every write: leave it out",
                offset + len,
                CHECKSUM_WORD * 2,
                CHECKSUM_WORD * 2 + 1
            ),
        ));
    }
    let mut bytes: Vec<u8> = read(a, first, last - first + 1)?
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    let skip = (offset % 2) as usize;
    bytes[skip..skip + data.len()].copy_from_slice(data);
    let words: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    write(a, first, &words)?;
    validate_checksum(a)
}

/// The sum of all words.
pub fn sum(words: &[u16]) -> u16 {
    words.iter().fold(0u16, |s, &w| s.wrapping_add(w))
}

/// Checks that the EEPROM's words sum to 0xBABA.
pub fn validate_checksum(a: &Adapter) -> Result<(), DriverError> {
    let s = sum(&read(a, 0, WORDS)?);
    if s != CHECKSUM_TARGET {
        return Err(DriverError::EepromChecksum { sum: s });
    }
    Ok(())
}

/// Rewrites the checksum word so that the words sum to 0xBABA.
pub fn update_checksum(a: &Adapter) -> Result<(), DriverError> {
    let words = read(a, 0, CHECKSUM_WORD)?;
    let fix = CHECKSUM_TARGET.wrapping_sub(sum(&words));
    write(a, CHECKSUM_WORD, &[fix])
}

/// The MAC address in words 0-2 (little-endian byte pairs).
pub fn read_mac(a: &Adapter) -> Result<[u8; 6], DriverError> {
    let w = read(a, 0, 3)?;
    let mut mac = [0u8; 6];
    for (i, word) in w.iter().enumerate() {
        mac[2 * i..2 * i + 2].copy_from_slice(&word.to_le_bytes());
    }
    Ok(mac)
}

/// A Microwire session on the EECD pins (SK clock, CS select, DI to the part, DO from it).
struct Microwire<'a> {
    a: &'a Adapter,
    base: u32,
}

impl<'a> Microwire<'a> {
    /// Requests the EEPROM from the hardware (EE_REQ / EE_GNT on parts that arbitrate).
    fn acquire(a: &'a Adapter) -> Result<Self, DriverError> {
        let mut base = a.rd(EECD)? & !(eecd::SK | eecd::CS | eecd::DI);
        if a.info.mac_type.eeprom_needs_grant() {
            base |= eecd::REQ;
            a.wr(EECD, base)?;
            if let Err(e) = a.poll_reg(EECD, "EECD.EE_GNT", HW_WAIT_MS, |v| v & eecd::GNT != 0) {
                a.wr(EECD, base & !eecd::REQ)?;
                return Err(e);
            }
        }
        a.wr(EECD, base)?;
        Ok(Self { a, base })
    }

    fn release(self) -> Result<(), DriverError> {
        self.a.wr(EECD, self.base & !(eecd::REQ | eecd::CS))
    }

    fn pins(&self, cs: bool, sk: bool, di: bool) -> Result<(), DriverError> {
        let mut v = self.base;
        if cs {
            v |= eecd::CS;
        }
        if sk {
            v |= eecd::SK;
        }
        if di {
            v |= eecd::DI;
        }
        self.a.wr(EECD, v)
    }

    fn shift_out(&self, value: u32, bits: u32) -> Result<(), DriverError> {
        for i in (0..bits).rev() {
            let di = (value >> i) & 1 != 0;
            self.pins(true, false, di)?;
            self.pins(true, true, di)?;
            self.pins(true, false, di)?;
        }
        Ok(())
    }

    fn shift_in(&self, bits: u32) -> Result<u32, DriverError> {
        let mut v = 0;
        for _ in 0..bits {
            self.pins(true, true, false)?;
            v = (v << 1) | u32::from(self.a.rd(EECD)? & eecd::DO != 0);
            self.pins(true, false, false)?;
        }
        Ok(v)
    }

    fn command(&self, op: u32, bits: u32) -> Result<(), DriverError> {
        self.pins(true, false, false)?;
        self.shift_out(op, bits)
    }

    fn deselect(&self) -> Result<(), DriverError> {
        self.pins(false, false, false)
    }

    fn read(&self, word: u32) -> Result<u16, DriverError> {
        self.command(MW_READ | word, 9)?;
        let v = self.shift_in(16)?;
        self.deselect()?;
        Ok(v as u16)
    }

    /// After a write, the part holds DO low while programming (SDM ch. 5).
    fn wait_ready(&self) -> Result<(), DriverError> {
        self.pins(true, false, false)?;
        let r = self
            .a
            .poll_reg(EECD, "EEPROM programming", HW_WAIT_MS, |v| {
                v & eecd::DO != 0
            });
        self.deselect()?;
        r.map(|_| ())
    }
}
