//! The controller's side of PRPs (NVMe 1.4, 4.3): the data pointer of a command as the
//! list of bus ranges it names.

use nvme_regs::status;

use crate::SimDma;

const PAGE: u64 = nvme_regs::PAGE as u64;

/// The bus ranges `len` bytes at PRP1/PRP2 name, or the status to fail the command with.
/// PRP1 may start inside a page; every further entry must be page-aligned. With more than
/// two pages PRP2 points at a PRP list, whose last entry chains to the next list while
/// entries remain.
pub fn segments(dma: &SimDma, prp1: u64, prp2: u64, len: usize) -> Result<Vec<(u64, usize)>, u16> {
    let mut out = Vec::new();
    if len == 0 {
        return Ok(out);
    }
    let first = len.min((PAGE - prp1 % PAGE) as usize);
    out.push((prp1, first));
    let mut left = len - first;
    if left == 0 {
        return Ok(out);
    }
    if left <= PAGE as usize {
        if !prp2.is_multiple_of(PAGE) {
            return Err(status::INVALID_FIELD);
        }
        out.push((prp2, left));
        return Ok(out);
    }
    if !prp2.is_multiple_of(8) {
        return Err(status::INVALID_FIELD);
    }
    let mut list = prp2;
    loop {
        let room = ((PAGE - list % PAGE) / 8) as usize;
        for i in 0..room {
            let mut e = [0u8; 8];
            dma.bus_read(list + 8 * i as u64, &mut e)
                .map_err(|_| status::DATA_XFER_ERROR)?;
            let entry = u64::from_le_bytes(e);
            let pages_left = left.div_ceil(PAGE as usize);
            if i == room - 1 && pages_left > 1 {
                if entry % 8 != 0 {
                    return Err(status::INVALID_FIELD);
                }
                list = entry;
                break;
            }
            if entry % PAGE != 0 {
                return Err(status::INVALID_FIELD);
            }
            let n = left.min(PAGE as usize);
            out.push((entry, n));
            left -= n;
            if left == 0 {
                return Ok(out);
            }
        }
    }
}

/// Reads `len` bytes the PRPs name.
pub fn read(dma: &SimDma, prp1: u64, prp2: u64, len: usize) -> Result<Vec<u8>, u16> {
    let mut data = vec![0u8; len];
    let mut at = 0;
    for (addr, n) in segments(dma, prp1, prp2, len)? {
        dma.bus_read(addr, &mut data[at..at + n])
            .map_err(|_| status::DATA_XFER_ERROR)?;
        at += n;
    }
    Ok(data)
}

/// Writes `data` where the PRPs point.
pub fn write(dma: &SimDma, prp1: u64, prp2: u64, data: &[u8]) -> Result<(), u16> {
    let mut at = 0;
    for (addr, n) in segments(dma, prp1, prp2, data.len())? {
        dma.bus_write(addr, &data[at..at + n])
            .map_err(|_| status::DATA_XFER_ERROR)?;
        at += n;
    }
    Ok(())
}
