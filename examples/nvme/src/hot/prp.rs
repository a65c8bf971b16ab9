//! PRPs (NVMe 1.4, 4.3): how a command names its data. The driver's data buffers start on
//! a page boundary and are made of pages ([`PageBuf`]), so PRP1 is the first page; PRP2 is
//! the second page when the transfer spans exactly two, and a PRP list (one page of
//! entries, the driver's transfers never need a chained list) when it spans more.

use nvme_regs::PAGE;

use crate::error::NvmeError;
use crate::hw::PageBuf;

/// Most data pages one PRP list page can name (its entries, none used for chaining).
pub const LIST_ENTRIES: usize = PAGE / 8;

/// PRP1 and PRP2 for the first `len` bytes of `data`, writing the list into `list` when
/// more than two pages are needed.
pub fn build(data: &PageBuf, list: &PageBuf, len: usize) -> Result<(u64, u64), NvmeError> {
    let pages = len.div_ceil(PAGE);
    if pages == 0 || pages > data.pages() || pages - 1 > LIST_ENTRIES {
        return Err(NvmeError::invalid(
            "transfer length",
            format!("{len} bytes in a {}-page buffer", data.pages()),
        ));
    }
    let prp2 = match pages {
        1 => 0,
        2 => data.bus(1),
        _ => {
            let entries: Vec<u8> = (1..pages).flat_map(|i| data.bus(i).to_le_bytes()).collect();
            list.write(0, &entries)?;
            list.bus(0)
        }
    };
    Ok((data.bus(0), prp2))
}
